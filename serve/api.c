/* api.c - the JSON endpoints: search, embed, match, info, thumbnails and metrics. Each parses
 * and checks its request, calls the engine / model API of gaze.h and formats the answer; no
 * search logic lives here. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>
#include <openssl/evp.h>

#include "serve/serve_internal.h"

#define THUMB_SIDE 256     /* thumbnails for the page's grid */
#define THUMB_QUALITY 85   /* JPEG quality of thumbnails */
#define MAX_TERMS 16       /* composed query terms per request */
#define MAX_EMBED_ITEMS 64 /* texts + images of one embed / match request */

double serve_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void serve_json(serve_reply *r, int status, json_t *o) {
    r->status = status;
    r->content_type = "application/json";
    /* 9 significant digits: every float (scores, vectors) round-trips, as in gaze search --json */
    r->body = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    if (!r->body) {
        r->status = 500;
        r->body = strdup("{\"error\":{\"status\":500,\"message\":\"out of memory\"}}");
    }
    r->len = r->body ? strlen(r->body) : 0;
}

void serve_error(serve_reply *r, int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    serve_json(r, status, json_pack("{s:{s:i,s:s}}", "error", "status", status, "message", msg));
}

int serve_status_of(gz_status st) {
    switch (st) {
    case GZ_EINVAL: return 400;
    case GZ_ENOTFOUND: return 404;
    case GZ_EUNSUPPORTED: return 422;
    case GZ_ENOMEM: return 413;
    default: return 500;
    }
}

gz_status serve_base64_decode(const char *s, unsigned char **out, size_t *n) {
    *out = NULL;
    *n = 0;
    /* A data URL as a browser's FileReader gives it: keep what follows "base64,". */
    if (strncmp(s, "data:", 5) == 0) {
        const char *comma = strstr(s, ";base64,");
        if (!comma) return GZ_EINVAL;
        s = comma + 8;
    }
    size_t len = strlen(s);
    /* OpenSSL's decoder wants padded input whose length is a multiple of 4. */
    size_t padded = (len + 3) / 4 * 4;
    char *in = malloc(padded + 1);
    unsigned char *buf = malloc(padded / 4 * 3 + 1);
    if (!in || !buf || len == 0) {
        free(in);
        free(buf);
        return len == 0 ? GZ_EINVAL : GZ_ENOMEM;
    }
    memcpy(in, s, len);
    memset(in + len, '=', padded - len);
    in[padded] = 0;
    int got = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)padded);
    if (got < 0) {
        free(in);
        free(buf);
        return GZ_EINVAL;
    }
    /* EVP_DecodeBlock counts the bytes of the padding too. */
    size_t pad = 0;
    for (size_t i = padded; i > 0 && in[i - 1] == '=' && pad < 2; i--)
        pad++;
    free(in);
    *out = buf;
    *n = (size_t)got - pad;
    return GZ_OK;
}

/* ---- request checks ---- */

/* "unknown field" for any member of o not in allowed (NULL-terminated). */
static int check_fields(const json_t *o, const char *const *allowed, serve_reply *r,
                        const char *where) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            serve_error(r, 400, "%sunknown field '%s'", where, key);
            return 0;
        }
    }
    return 1;
}

static json_t *parse_body(const char *body, size_t len, serve_reply *r) {
    json_error_t err;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!o) {
        serve_error(r, 400, "malformed JSON at line %d column %d: %s", err.line, err.column,
                    err.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        serve_error(r, 400, "the request body must be a JSON object");
        return NULL;
    }
    return o;
}

/* ---- uploaded query images ---- */

/* Write an uploaded image to a fresh file of the private folder (the engine reads query images
 * by path, decoding them as the index was decoded); path receives its name. */
static gz_status save_upload(serve_ctx *c, const unsigned char *data, size_t n, char *path,
                             size_t cap) {
    pthread_mutex_lock(&c->tmp_mu);
    long long id = ++c->tmp_counter;
    pthread_mutex_unlock(&c->tmp_mu);
    snprintf(path, cap, "%s/q%lld", c->tmp_dir, id);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return GZ_EIO;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, data + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    close(fd);
    if (done != n) {
        unlink(path);
        return GZ_EIO;
    }
    return GZ_OK;
}

/* The library's message with the private file name replaced by what the client sent. */
static void message_for_client(const char *msg, const char *tmp_path, const char *name, char *out,
                               size_t cap) {
    const char *hit = tmp_path[0] ? strstr(msg, tmp_path) : NULL;
    if (!hit) {
        snprintf(out, cap, "%s", msg);
        return;
    }
    snprintf(out, cap, "%.*s%s%s", (int)(hit - msg), msg, name, hit + strlen(tmp_path));
}

/* ---- search ---- */

typedef struct {
    gz_query q;
    gz_query_term terms[MAX_TERMS];
    char names[MAX_TERMS][48];     /* how the client named each image term */
    char uploads[MAX_TERMS][1100]; /* private files to delete afterwards, "" = none */
    char *owned[MAX_TERMS * 2];    /* strings copied from the store */
    int n_owned;
    int mode_set;
} search_req;

static void search_req_free(search_req *s) {
    for (int i = 0; i < MAX_TERMS; i++)
        if (s->uploads[i][0]) unlink(s->uploads[i]);
    for (int i = 0; i < s->n_owned; i++)
        free(s->owned[i]);
}

static int add_image_term(serve_ctx *c, search_req *s, const unsigned char *data, size_t n,
                          float weight, const char *name, serve_reply *r) {
    int t = s->q.n_terms;
    if (t >= MAX_TERMS) {
        serve_error(r, 400, "at most %d query terms", MAX_TERMS);
        return 0;
    }
    if (save_upload(c, data, n, s->uploads[t], sizeof s->uploads[t]) != GZ_OK) {
        s->uploads[t][0] = 0;
        serve_error(r, 500, "cannot store the uploaded image: %s", strerror(errno));
        return 0;
    }
    snprintf(s->names[t], sizeof s->names[t], "%s", name);
    s->terms[t] = (gz_query_term){.image = s->uploads[t], .weight = weight};
    s->q.n_terms++;
    return 1;
}

static int add_b64_image_term(serve_ctx *c, search_req *s, const char *b64, float weight,
                              const char *name, serve_reply *r) {
    unsigned char *data = NULL;
    size_t n = 0;
    gz_status st = serve_base64_decode(b64, &data, &n);
    if (st != GZ_OK) {
        serve_error(r, st == GZ_ENOMEM ? 500 : 400, "%s: not base64 image data", name);
        return 0;
    }
    int ok = add_image_term(c, s, data, n, weight, name, r);
    free(data);
    return ok;
}

static int add_text_term(search_req *s, const char *text, float weight, serve_reply *r) {
    if (s->q.n_terms >= MAX_TERMS) {
        serve_error(r, 400, "at most %d query terms", MAX_TERMS);
        return 0;
    }
    s->terms[s->q.n_terms++] = (gz_query_term){.text = text, .weight = weight};
    return 1;
}

/* An indexed item as a term ("similar"): an image by its stored path, a text by its text and,
 * when linked, its image too. The path comes from the store, never from the request. */
static int add_item_term(gz_engine *e, search_req *s, json_int_t id, float weight, serve_reply *r) {
    gz_item it;
    memset(&it, 0, sizeof it);
    gz_status st = gz_db_get_item(gz_engine_db(e), (int64_t)id, &it);
    if (st != GZ_OK) {
        serve_error(r, 404, "no item %lld", (long long)id);
        return 0;
    }
    int ok = 1;
    if (it.kind == GZ_ITEM_IMAGE) {
        s->owned[s->n_owned] = strdup(it.path);
        ok = s->q.n_terms < MAX_TERMS && s->owned[s->n_owned];
        if (ok)
            s->terms[s->q.n_terms++] =
                (gz_query_term){.image = s->owned[s->n_owned++], .weight = weight};
    } else {
        s->owned[s->n_owned] = strdup(it.text ? it.text : "");
        ok = s->owned[s->n_owned] != NULL;
        if (ok) ok = add_text_term(s, s->owned[s->n_owned++], weight, r);
        if (ok && it.link_item_id > 0) {
            gz_item li;
            memset(&li, 0, sizeof li);
            if (gz_db_get_item(gz_engine_db(e), it.link_item_id, &li) == GZ_OK && li.path &&
                s->q.n_terms < MAX_TERMS) {
                s->owned[s->n_owned] = strdup(li.path);
                if (s->owned[s->n_owned])
                    s->terms[s->q.n_terms++] =
                        (gz_query_term){.image = s->owned[s->n_owned++], .weight = weight};
            }
            gz_item_clear(&li);
        }
    }
    gz_item_clear(&it);
    if (!ok && !r->body) serve_error(r, 400, "at most %d query terms", MAX_TERMS);
    return ok;
}

static int json_number(const json_t *v, double *out) {
    if (!json_is_number(v)) return 0;
    *out = json_number_value(v);
    return isfinite(*out);
}

/* The options shared by the JSON and form requests. */
static int search_options(const json_t *o, search_req *s, serve_reply *r) {
    const json_t *v;
    double d;
    if ((v = json_object_get(o, "k"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > GZ_SERVE_MAX_K) {
            serve_error(r, 400, "k must be an integer in [1, %d]", GZ_SERVE_MAX_K);
            return 0;
        }
        s->q.k = (int)json_integer_value(v);
    }
    if ((v = json_object_get(o, "min_score"))) {
        if (!json_number(v, &d)) {
            serve_error(r, 400, "min_score must be a number");
            return 0;
        }
        s->q.min_score = (float)d;
    }
    if ((v = json_object_get(o, "rerank"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > GZ_SERVE_MAX_RERANK) {
            serve_error(r, 400, "rerank must be an integer in [0, %d]", GZ_SERVE_MAX_RERANK);
            return 0;
        }
        s->q.rerank = (int)json_integer_value(v);
    }
    if ((v = json_object_get(o, "text_weight"))) {
        if (!json_number(v, &d) || d < 0 || d > 1) {
            serve_error(r, 400, "text_weight must be a number in [0, 1]");
            return 0;
        }
        s->q.text_weight = (float)d;
    }
    /* filters, as gaze search's flags; the strings live in o, which outlives the search */
    static const char *const FILTER_STRINGS[] = {"taken_after", "taken_before", "in", "format"};
    const char **filter_fields[] = {&s->q.taken_after, &s->q.taken_before, &s->q.in_folder,
                                    &s->q.formats};
    for (int i = 0; i < 4; i++) {
        if (!(v = json_object_get(o, FILTER_STRINGS[i]))) continue;
        const char *str = json_string_value(v);
        if (!str || !*str) {
            serve_error(r, 400, "%s must be a non-empty string", FILTER_STRINGS[i]);
            return 0;
        }
        char date[20];
        gz_status fst = i < 2 ? gz_parse_date(str, date) : i == 3 ? gz_check_formats(str) : GZ_OK;
        if (fst != GZ_OK) {
            serve_error(r, 400, "%s: %s", FILTER_STRINGS[i], gz_last_error());
            return 0;
        }
        *filter_fields[i] = str;
    }
    static const char *const FILTER_SIZES[] = {"min_width", "min_height"};
    int *size_fields[] = {&s->q.min_width, &s->q.min_height};
    for (int i = 0; i < 2; i++) {
        if (!(v = json_object_get(o, FILTER_SIZES[i]))) continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT_MAX) {
            serve_error(r, 400, "%s must be an integer of 0 or more pixels", FILTER_SIZES[i]);
            return 0;
        }
        *size_fields[i] = (int)json_integer_value(v);
    }
    if ((v = json_object_get(o, "mode"))) {
        const char *m = json_string_value(v);
        if (m && strcmp(m, "images") == 0)
            s->q.target = GZ_TARGET_IMAGES;
        else if (m && strcmp(m, "texts") == 0)
            s->q.target = GZ_TARGET_TEXTS;
        else if (m && strcmp(m, "products") == 0)
            s->q.target = GZ_TARGET_PRODUCTS;
        else {
            serve_error(r, 400, "mode must be \"images\", \"texts\" or \"products\"");
            return 0;
        }
    }
    return 1;
}

static json_t *json_float(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *json_str_or_null(const char *s) {
    /* jansson refuses invalid UTF-8: such bytes (a non-UTF-8 file name) become U+FFFD. */
    if (!s) return json_null();
    json_t *j = json_string(s);
    if (j) return j;
    size_t n = strlen(s);
    char *fixed = malloc(n * 3 + 1), *o = fixed;
    if (!fixed) return json_null();
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80) {
            *o++ = (char)ch;
        } else {
            *o++ = (char)0xEF, *o++ = (char)0xBF, *o++ = (char)0xBD;
        }
    }
    *o = 0;
    j = json_string(fixed);
    free(fixed);
    return j ? j : json_null();
}

/* One result with the fields and names of `gaze search --json`. */
static json_t *result_json(const gz_result *h, int rank, int products) {
    json_t *o = json_object();
    json_object_set_new(o, "rank", json_integer(rank));
    json_object_set_new(o, "item_id", json_integer(h->item_id));
    json_object_set_new(o, "kind", json_string(h->kind == GZ_ITEM_TEXT ? "text" : "image"));
    json_object_set_new(o, "score", json_float(h->score));
    json_object_set_new(o, "itc", json_float(h->itc));
    if (h->has_itm) {
        json_object_set_new(o, "itm_logit", json_float(h->itm_logit));
        json_object_set_new(o, "itm_prob", json_float(h->itm_prob));
    }
    if (products) {
        json_object_set_new(o, "text_score", json_float(h->itc));
        json_object_set_new(o, "image_score", json_float(h->image_score));
    }
    json_object_set_new(o, "path", json_str_or_null(h->path));
    /* As gaze search --json: whether the file (a text item's linked image) is still there. */
    const char *file = h->kind == GZ_ITEM_TEXT ? h->link_path : h->path;
    struct stat sb;
    if (file) json_object_set_new(o, "exists", json_boolean(stat(file, &sb) == 0));
    if (h->kind == GZ_ITEM_TEXT) {
        json_object_set_new(o, "text", json_str_or_null(h->text));
        json_object_set_new(o, "id", json_str_or_null(h->ext_id));
        json_object_set_new(o, "image", json_str_or_null(h->link_path));
    } else {
        json_object_set_new(o, "width", json_integer(h->width));
        json_object_set_new(o, "height", json_integer(h->height));
        json_object_set_new(o, "taken_at", json_str_or_null(h->taken_at[0] ? h->taken_at : NULL));
    }
    return o;
}

/* Run the parsed query on an engine of the pool and reply. */
static void run_search(serve_ctx *c, gz_engine *e, search_req *s, double t0, serve_reply *r) {
    if (s->q.n_terms == 0) {
        serve_error(r, 400, "give a text, an image or terms");
        return;
    }
    s->q.terms = s->terms;
    gz_results res = {0};
    double t1 = serve_now();
    gz_status st = gz_engine_search(e, &s->q, &res);
    double t2 = serve_now();
    if (st != GZ_OK) {
        char msg[1024];
        const char *err = gz_last_error();
        int status = serve_status_of(st);
        snprintf(msg, sizeof msg, "%s", err);
        for (int t = 0; t < s->q.n_terms; t++)
            if (s->uploads[t][0] && strstr(err, s->uploads[t])) {
                message_for_client(err, s->uploads[t], s->names[t], msg, sizeof msg);
                /* an image the decoder refuses is the client's: 413 over the pixel limit,
                 * 422 undecodable */
                status = st == GZ_ENOMEM ? 413 : 422;
            }
        if (st == GZ_ENOTFOUND && strstr(err, "no vectors")) status = 409;
        serve_error(r, status, "%s", msg);
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < res.n; i++)
        json_array_append_new(arr,
                              result_json(&res.v[i], i + 1, s->q.target == GZ_TARGET_PRODUCTS));
    gz_results_free(&res);
    (void)c;
    serve_json(r, 200,
               json_pack("{s:o,s:{s:f,s:f}}", "results", arr, "timing", "search_ms",
                         (t2 - t1) * 1e3, "total_ms", (serve_now() - t0) * 1e3));
}

static const char *const SEARCH_FIELDS[] = {"text",         "image",       "terms",  "k",
                                            "min_score",    "rerank",      "mode",   "text_weight",
                                            "taken_before", "in",          "format", "min_width",
                                            "min_height",   "taken_after", NULL};
static const char *const TERM_FIELDS[] = {"text", "image", "item_id", "weight", NULL};

void serve_search_json(serve_ctx *c, const char *body, size_t len, serve_reply *r) {
    double t0 = serve_now();
    json_t *o = parse_body(body, len, r);
    if (!o) return;
    search_req s;
    memset(&s, 0, sizeof s);
    s.q = gz_query_default();
    gz_engine *e = NULL;
    int slot = -1;
    if (!check_fields(o, SEARCH_FIELDS, r, "") || !search_options(o, &s, r)) goto done;
    const json_t *v;
    if ((v = json_object_get(o, "text"))) {
        if (!json_is_string(v) || !json_string_length(v)) {
            serve_error(r, 400, "text must be a non-empty string");
            goto done;
        }
        if (!add_text_term(&s, json_string_value(v), 1, r)) goto done;
    }
    if ((v = json_object_get(o, "image"))) {
        if (!json_is_string(v)) {
            serve_error(r, 400, "image must be a base64 string");
            goto done;
        }
        if (!add_b64_image_term(c, &s, json_string_value(v), 1, "image", r)) goto done;
    }
    gz_status st = serve_pool_get(&c->pool, &e, &slot);
    if (st != GZ_OK) {
        serve_error(r, 503, "%s", gz_last_error());
        goto done;
    }
    if ((v = json_object_get(o, "terms"))) {
        if (!json_is_array(v)) {
            serve_error(r, 400, "terms must be an array");
            goto done;
        }
        size_t i;
        json_t *t;
        json_array_foreach(v, i, t) {
            char where[48], name[48];
            snprintf(where, sizeof where, "terms[%zu]: ", i);
            snprintf(name, sizeof name, "terms[%zu].image", i);
            if (!json_is_object(t)) {
                serve_error(r, 400, "terms[%zu] must be an object", i);
                goto done;
            }
            if (!check_fields(t, TERM_FIELDS, r, where)) goto done;
            double w = 1;
            const json_t *wv = json_object_get(t, "weight");
            if (wv && !json_number(wv, &w)) {
                serve_error(r, 400, "terms[%zu].weight must be a number", i);
                goto done;
            }
            const json_t *tx = json_object_get(t, "text"), *im = json_object_get(t, "image"),
                         *id = json_object_get(t, "item_id");
            if (!!tx + !!im + !!id != 1) {
                serve_error(r, 400, "terms[%zu] needs exactly one of text, image, item_id", i);
                goto done;
            }
            if (tx && (!json_is_string(tx) || !json_string_length(tx))) {
                serve_error(r, 400, "terms[%zu].text must be a non-empty string", i);
                goto done;
            }
            if (im && !json_is_string(im)) {
                serve_error(r, 400, "terms[%zu].image must be a base64 string", i);
                goto done;
            }
            if (id && !json_is_integer(id)) {
                serve_error(r, 400, "terms[%zu].item_id must be an integer", i);
                goto done;
            }
            int ok = tx   ? add_text_term(&s, json_string_value(tx), (float)w, r)
                     : im ? add_b64_image_term(c, &s, json_string_value(im), (float)w, name, r)
                          : add_item_term(e, &s, json_integer_value(id), (float)w, r);
            if (!ok) goto done;
        }
    }
    run_search(c, e, &s, t0, r);
done:
    if (slot >= 0) serve_pool_put(&c->pool, slot);
    search_req_free(&s);
    json_decref(o);
}

void serve_search_form(serve_ctx *c, json_t *fields, const unsigned char *image, size_t image_len,
                       serve_reply *r) {
    double t0 = serve_now();
    search_req s;
    memset(&s, 0, sizeof s);
    s.q = gz_query_default();
    gz_engine *e = NULL;
    int slot = -1;
    /* Form fields arrive as strings: numbers are converted here, then checked as for JSON. */
    json_t *o = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(fields, key, v) {
        const char *sv = json_string_value(v);
        if (strcmp(key, "k") == 0 || strcmp(key, "rerank") == 0 || strcmp(key, "min_width") == 0 ||
            strcmp(key, "min_height") == 0) {
            char *end = NULL;
            long long x = strtoll(sv, &end, 10);
            json_object_set_new(o, key, *sv && !*end ? json_integer(x) : json_string(sv));
        } else if (strcmp(key, "min_score") == 0 || strcmp(key, "text_weight") == 0) {
            char *end = NULL;
            double x = strtod(sv, &end);
            json_object_set_new(o, key, *sv && !*end ? json_real(x) : json_string(sv));
        } else {
            json_object_set(o, key, v);
        }
    }
    static const char *const FORM_FIELDS[] = {
        "text",         "k",  "min_score", "rerank",    "mode",       "text_weight", "taken_after",
        "taken_before", "in", "format",    "min_width", "min_height", NULL};
    if (!check_fields(o, FORM_FIELDS, r, "") || !search_options(o, &s, r)) goto done;
    const char *text = json_string_value(json_object_get(o, "text"));
    if (text && *text && !add_text_term(&s, text, 1, r)) goto done;
    if (image && !add_image_term(c, &s, image, image_len, 1, "image", r)) goto done;
    if (serve_pool_get(&c->pool, &e, &slot) != GZ_OK) {
        serve_error(r, 503, "%s", gz_last_error());
        goto done;
    }
    run_search(c, e, &s, t0, r);
done:
    if (slot >= 0) serve_pool_put(&c->pool, slot);
    search_req_free(&s);
    json_decref(o);
}

/* ---- embed and match ---- */

/* Decode a base64 image of a request with the shared model's decode parameters. */
static int decode_request_image(serve_ctx *c, const json_t *v, const char *name, gz_image *img,
                                serve_reply *r) {
    memset(img, 0, sizeof *img);
    if (!json_is_string(v)) {
        serve_error(r, 400, "%s must be a base64 string", name);
        return 0;
    }
    unsigned char *data = NULL;
    size_t n = 0;
    if (serve_base64_decode(json_string_value(v), &data, &n) != GZ_OK) {
        serve_error(r, 400, "%s: not base64 image data", name);
        return 0;
    }
    gz_image_params ip = gz_model_image_params(c->model);
    gz_status st = gz_image_load_memory(data, n, name, &ip, img);
    free(data);
    if (st != GZ_OK) {
        serve_error(r, st == GZ_ENOMEM ? 413 : 422, "%s", gz_last_error());
        return 0;
    }
    return 1;
}

static json_t *vector_json(const float *v, int dim) {
    json_t *a = json_array();
    for (int d = 0; d < dim; d++)
        json_array_append_new(a, json_real(v[d]));
    return a;
}

void serve_embed(serve_ctx *c, const char *body, size_t len, serve_reply *r) {
    static const char *const FIELDS[] = {"texts", "images", NULL};
    json_t *o = parse_body(body, len, r);
    if (!o) return;
    json_t *out = NULL;
    float *vec = NULL;
    if (!check_fields(o, FIELDS, r, "")) goto done;
    const json_t *texts = json_object_get(o, "texts"), *images = json_object_get(o, "images");
    if ((texts && !json_is_array(texts)) || (images && !json_is_array(images))) {
        serve_error(r, 400, "texts and images must be arrays");
        goto done;
    }
    size_t nt = json_array_size(texts), ni = json_array_size(images);
    if (nt + ni == 0 || nt + ni > MAX_EMBED_ITEMS) {
        serve_error(r, 400, "give 1 to %d texts and images", MAX_EMBED_ITEMS);
        goto done;
    }
    int dim = gz_model_dim(c->model);
    vec = malloc((size_t)dim * sizeof *vec);
    if (!vec) {
        serve_error(r, 500, "out of memory");
        goto done;
    }
    out = json_pack("{s:s,s:i,s:[],s:[]}", "model", c->model_dir, "dim", dim, "texts", "images");
    for (size_t i = 0; i < nt; i++) {
        const char *t = json_string_value(json_array_get(texts, i));
        if (!t) {
            serve_error(r, 400, "texts[%zu] must be a string", i);
            goto done;
        }
        gz_status st = gz_encode_texts(c->model, &t, 1, vec);
        if (st != GZ_OK) {
            serve_error(r, serve_status_of(st), "texts[%zu]: %s", i, gz_last_error());
            goto done;
        }
        json_array_append_new(json_object_get(out, "texts"), vector_json(vec, dim));
    }
    for (size_t i = 0; i < ni; i++) {
        char name[32];
        snprintf(name, sizeof name, "images[%zu]", i);
        gz_image img;
        if (!decode_request_image(c, json_array_get(images, i), name, &img, r)) goto done;
        gz_status st = gz_encode_images(c->model, &img, 1, vec);
        gz_image_free(&img);
        if (st != GZ_OK) {
            serve_error(r, serve_status_of(st), "%s: %s", name, gz_last_error());
            goto done;
        }
        json_array_append_new(json_object_get(out, "images"), vector_json(vec, dim));
    }
    serve_json(r, 200, out);
    out = NULL;
done:
    json_decref(out);
    free(vec);
    json_decref(o);
}

void serve_match(serve_ctx *c, const char *body, size_t len, serve_reply *r) {
    static const char *const FIELDS[] = {"image", "texts", NULL};
    json_t *o = parse_body(body, len, r);
    if (!o) return;
    gz_image img;
    memset(&img, 0, sizeof img);
    const char **tv = NULL;
    gz_match *m = NULL;
    if (!check_fields(o, FIELDS, r, "")) goto done;
    const json_t *texts = json_object_get(o, "texts");
    size_t nt = json_array_size(texts);
    if (!json_is_array(texts) || nt == 0 || nt > MAX_EMBED_ITEMS) {
        serve_error(r, 400, "texts must be an array of 1 to %d strings", MAX_EMBED_ITEMS);
        goto done;
    }
    if (!json_object_get(o, "image")) {
        serve_error(r, 400, "give the image (base64) to match the texts against");
        goto done;
    }
    tv = calloc(nt, sizeof *tv);
    m = calloc(nt, sizeof *m);
    if (!tv || !m) {
        serve_error(r, 500, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nt; i++)
        if (!(tv[i] = json_string_value(json_array_get(texts, i)))) {
            serve_error(r, 400, "texts[%zu] must be a string", i);
            goto done;
        }
    if (!decode_request_image(c, json_object_get(o, "image"), "image", &img, r)) goto done;
    gz_status st = gz_match_image_texts(c->model, &img, tv, (int)nt, m);
    if (st != GZ_OK) {
        serve_error(r, serve_status_of(st), "%s", gz_last_error());
        goto done;
    }
    json_t *arr = json_array();
    int itm = gz_model_has_itm(c->model);
    for (size_t i = 0; i < nt; i++) {
        json_t *x = json_pack("{s:s,s:o,s:o,s:o}", "text", tv[i], "itc", json_float(m[i].itc),
                              "logit", json_float(m[i].logit), "score", json_float(m[i].score));
        if (itm) {
            json_object_set_new(
                x, "itm_logit",
                json_pack("[o,o]", json_float(m[i].itm_logit[0]), json_float(m[i].itm_logit[1])));
            json_object_set_new(x, "itm_prob", json_float(m[i].itm_prob));
        }
        json_array_append_new(arr, x);
    }
    serve_json(r, 200,
               json_pack("{s:s,s:o}", "family", gz_family_name(gz_model_family(c->model)),
                         "results", arr));
done:
    gz_image_free(&img);
    free(tv);
    free(m);
    json_decref(o);
}

/* ---- info, metrics ---- */

/* The store's counts and every index's generation, from one engine of the pool. */
static json_t *store_json(gz_engine *e) {
    gz_db *db = gz_engine_db(e);
    gz_db_stats s;
    json_t *o = json_object();
    if (gz_db_get_stats(db, &s) == GZ_OK)
        json_object_set_new(o, "items",
                            json_pack("{s:I,s:I,s:I}", "all", (json_int_t)s.n_items[0], "images",
                                      (json_int_t)s.n_items[GZ_ITEM_IMAGE], "texts",
                                      (json_int_t)s.n_items[GZ_ITEM_TEXT]));
    gz_db_model *ms = NULL;
    int n = 0;
    json_t *idx = json_array();
    if (gz_db_models(db, &ms, &n) == GZ_OK)
        for (int i = 0; i < n; i++)
            for (int kind = GZ_ITEM_IMAGE; kind <= GZ_ITEM_TEXT; kind++) {
                gz_db_index_state is;
                if (gz_db_index_info(db, ms[i].id, (gz_item_kind)kind, &is) != GZ_OK) continue;
                json_array_append_new(idx,
                                      json_pack("{s:I,s:s,s:s,s:I,s:I,s:s}", "model_id",
                                                (json_int_t)ms[i].id, "model", ms[i].name, "kind",
                                                kind == GZ_ITEM_TEXT ? "text" : "image",
                                                "generation", (json_int_t)is.generation, "vectors",
                                                (json_int_t)is.n_vectors, "factory", is.effective));
            }
    free(ms);
    json_object_set_new(o, "indexes", idx);
    return o;
}

void serve_info(serve_ctx *c, serve_reply *r) {
    gz_engine *e = NULL;
    int slot;
    if (serve_pool_get(&c->pool, &e, &slot) != GZ_OK) {
        serve_error(r, 503, "%s", gz_last_error());
        return;
    }
    json_t *store = store_json(e);
    serve_pool_put(&c->pool, slot);
    const gz_serve_params *p = c->params;
    serve_json(r, 200,
               json_pack("{s:s,s:{s:s,s:s,s:i,s:b},s:s,s:o,s:b,s:i,s:b,s:f}", "version",
                         gz_version(), "model", "dir", c->model_dir, "family",
                         gz_family_name(gz_model_family(c->model)), "dim", gz_model_dim(c->model),
                         "itm", gz_model_has_itm(c->model), "db", p->engine.db_path, "store", store,
                         "read_only", p->read_only, "threads", p->threads, "auth",
                         p->api_key != NULL, "uptime_s", serve_now() - c->started));
}

void serve_metrics_reply(serve_ctx *c, serve_reply *r) {
    char *extra = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&extra, &len);
    gz_engine *e = NULL;
    int slot;
    if (f && serve_pool_get(&c->pool, &e, &slot) == GZ_OK) {
        json_t *s = store_json(e);
        serve_pool_put(&c->pool, slot);
        json_t *items = json_object_get(s, "items");
        fputs("# HELP gaze_items Items in the database, by kind.\n# TYPE gaze_items gauge\n", f);
        fprintf(f, "gaze_items{kind=\"image\"} %lld\ngaze_items{kind=\"text\"} %lld\n",
                (long long)json_integer_value(json_object_get(items, "images")),
                (long long)json_integer_value(json_object_get(items, "texts")));
        fputs("# HELP gaze_index_generation SQLite generation of each index.\n"
              "# TYPE gaze_index_generation gauge\n",
              f);
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(s, "indexes"), i, x) {
            long long mid = (long long)json_integer_value(json_object_get(x, "model_id"));
            fprintf(f, "gaze_index_generation{model_id=\"%lld\",kind=\"%s\"} %lld\n", mid,
                    json_string_value(json_object_get(x, "kind")),
                    (long long)json_integer_value(json_object_get(x, "generation")));
            fprintf(f, "gaze_index_vectors{model_id=\"%lld\",kind=\"%s\"} %lld\n", mid,
                    json_string_value(json_object_get(x, "kind")),
                    (long long)json_integer_value(json_object_get(x, "vectors")));
        }
        json_decref(s);
    }
    if (f) fclose(f);
    char *text = serve_metrics_text(&c->metrics, extra);
    free(extra);
    if (!text) {
        serve_error(r, 500, "out of memory");
        return;
    }
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4";
    r->body = text;
    r->len = strlen(text);
}

/* ---- thumbnails ---- */

/* JPEG-encode an RGB image into memory (libjpeg-turbo, as the decoders use). */
static int encode_jpeg(const gz_image *img, unsigned char **out, unsigned long *n) {
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    *out = NULL;
    *n = 0;
    jpeg_mem_dest(&cinfo, out, n);
    cinfo.image_width = (JDIMENSION)img->width;
    cinfo.image_height = (JDIMENSION)img->height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, THUMB_QUALITY, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = img->rgb + (size_t)cinfo.next_scanline * (size_t)img->width * 3;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return *out != NULL;
}

void serve_thumbnail(serve_ctx *c, const char *id_text, serve_reply *r) {
    /* Only a decimal item id: nothing from the request reaches the file system. */
    char *end = NULL;
    errno = 0;
    long long id = strtoll(id_text, &end, 10);
    if (!*id_text || *end || errno || id <= 0 || id_text[0] == '+' || id_text[0] == ' ') {
        serve_error(r, 404, "not an item id: '%.64s'", id_text);
        return;
    }
    gz_engine *e = NULL;
    int slot;
    if (serve_pool_get(&c->pool, &e, &slot) != GZ_OK) {
        serve_error(r, 503, "%s", gz_last_error());
        return;
    }
    gz_db *db = gz_engine_db(e);
    gz_item it;
    memset(&it, 0, sizeof it);
    gz_status st = gz_db_get_item(db, id, &it);
    if (st == GZ_OK && it.kind == GZ_ITEM_TEXT && it.link_item_id > 0) {
        int64_t link = it.link_item_id;
        gz_item_clear(&it);
        st = gz_db_get_item(db, link, &it);
    }
    serve_pool_put(&c->pool, slot);
    if (st != GZ_OK || it.kind != GZ_ITEM_IMAGE || it.status != GZ_ITEM_OK) {
        gz_item_clear(&it);
        serve_error(r, 404, "no indexed image for item %lld", id);
        return;
    }
    gz_image_params ip = gz_image_default_params();
    ip.min_size = THUMB_SIDE; /* a DCT-scaled JPEG decode is plenty for a thumbnail */
    gz_image img, th;
    memset(&th, 0, sizeof th);
    st = gz_image_load(it.path, &ip, &img);
    gz_item_clear(&it);
    if (st == GZ_OK) {
        st = gz_image_thumbnail(&img, THUMB_SIDE, &th);
        gz_image_free(&img);
    }
    if (st != GZ_OK) {
        serve_error(r, 500, "item %lld: %s", id, gz_last_error());
        return;
    }
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    int ok = encode_jpeg(&th, &jpg, &n);
    gz_image_free(&th);
    if (!ok) {
        serve_error(r, 500, "item %lld: JPEG encoding failed", id);
        return;
    }
    /* the reply owns a malloc'd copy (libjpeg's buffer is freed with free() as well) */
    r->status = 200;
    r->content_type = "image/jpeg";
    r->body = (char *)jpg;
    r->len = n;
}
