/* query.c - queries: compose text/image terms into one vector, search the store,
 * re-rank the top K with BLIP ITM (LAVIS' itm + itc score), rank products by a text+image
 * combination. */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"
#include "core/fileio.h"
#include "engine/engine_internal.h"
#include "fusion/score.h"
#include "gaze.h"

gz_query gz_query_default(void) {
    gz_query q;
    memset(&q, 0, sizeof q);
    q.target = GZ_TARGET_IMAGES;
    q.k = GZ_DEFAULT_K;
    q.min_score = GZ_NO_MIN_SCORE;
    q.text_weight = GZ_DEFAULT_TEXT_WEIGHT;
    return q;
}

void gz_results_free(gz_results *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        free(r->v[i].path);
        free(r->v[i].text);
        free(r->v[i].ext_id);
        free(r->v[i].link_path);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

/* ip: gz_engine_query_image_params, the preprocessing of the indexed images */
static gz_status load_query_image(const gz_image_params *ip, const char *path, gz_image *img) {
    memset(img, 0, sizeof *img);
    return gz_image_load(path, ip, img);
}

gz_status gz_engine_query_vector(gz_engine *e, const gz_query_term *terms, int n, float *out) {
    gz_model *m = NULL;
    gz_status st = gz_engine_model_lookup(e, &m, NULL);
    if (st != GZ_OK) return st;
    if (n <= 0) return GZ_FAIL(GZ_EINVAL, "empty query");
    int dim = gz_model_dim(m);
    float *tmp = gz_malloc_n((size_t)dim, sizeof *tmp, "query");
    if (!tmp) return GZ_ENOMEM;
    memset(out, 0, (size_t)dim * sizeof *out);
    const gz_image_params ip = gz_engine_query_image_params(e, m);
    for (int t = 0; t < n && st == GZ_OK; t++) {
        if (terms[t].text) {
            st = gz_encode_texts(m, &terms[t].text, 1, tmp);
        } else if (terms[t].image) {
            gz_image img;
            st = load_query_image(&ip, terms[t].image, &img);
            if (st == GZ_OK) {
                st = gz_encode_images(m, &img, 1, tmp);
                gz_image_free(&img);
            }
        } else {
            st = GZ_FAIL(GZ_EINVAL, "query term %d has neither text nor image", t);
        }
        if (st == GZ_OK)
            for (int d = 0; d < dim; d++)
                out[d] += terms[t].weight * tmp[d];
    }
    free(tmp);
    if (st != GZ_OK) return st;
    double norm = 0;
    for (int d = 0; d < dim; d++)
        norm += (double)out[d] * out[d];
    norm = sqrt(norm);
    if (!(norm > 1e-6))
        return GZ_FAIL(GZ_EINVAL, "the composed query is the zero vector (terms cancel out)");
    for (int d = 0; d < dim; d++)
        out[d] = (float)(out[d] / norm);
    return GZ_OK;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* Fill a result's item fields from the store. */
static gz_status fill_result(gz_db *db, int64_t id, gz_result *r) {
    gz_item it;
    memset(&it, 0, sizeof it);
    gz_status st = gz_db_get_item(db, id, &it);
    if (st != GZ_OK) return st;
    r->item_id = id;
    r->kind = it.kind;
    r->path = dup_or_null(it.path);
    r->text = dup_or_null(it.text);
    r->ext_id = dup_or_null(it.ext_id);
    r->width = it.width;
    r->height = it.height;
    snprintf(r->taken_at, sizeof r->taken_at, "%s", it.taken_at ? it.taken_at : "");
    r->link_item_id = it.link_item_id;
    r->image_score = NAN;
    gz_item_clear(&it);
    if (r->link_item_id > 0) {
        gz_item li;
        memset(&li, 0, sizeof li);
        if (gz_db_get_item(db, r->link_item_id, &li) == GZ_OK) r->link_path = dup_or_null(li.path);
        gz_item_clear(&li);
    }
    return GZ_OK;
}

/* ---- filters ---- */

static int all_digits(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

static int days_in_month(int y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Written by hand: strptime accepts out-of-range fields and partial input, and the stored form
 * is fixed-width, so a check of each character is shorter than undoing strptime's leniency. */
gz_status gz_parse_date(const char *s, char out[20]) {
    size_t n = s ? strlen(s) : 0;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    int ok = (n == 10 || n == 19) && all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2) &&
             s[7] == '-' && all_digits(s + 8, 2);
    if (ok && n == 19)
        ok = (s[10] == 'T' || s[10] == ' ') && all_digits(s + 11, 2) && s[13] == ':' &&
             all_digits(s + 14, 2) && s[16] == ':' && all_digits(s + 17, 2);
    if (ok) {
        y = atoi(s);
        mo = (s[5] - '0') * 10 + (s[6] - '0');
        d = (s[8] - '0') * 10 + (s[9] - '0');
        if (n == 19) {
            h = (s[11] - '0') * 10 + (s[12] - '0');
            mi = (s[14] - '0') * 10 + (s[15] - '0');
            sec = (s[17] - '0') * 10 + (s[18] - '0');
        }
        ok = mo >= 1 && mo <= 12 && d >= 1 && d <= days_in_month(y, mo) && h <= 23 && mi <= 59 &&
             sec <= 59;
    }
    if (!ok)
        return GZ_FAIL(GZ_EINVAL, "'%s' is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS",
                       s ? s : "");
    memcpy(out, s, 10); /* the checked characters, in the stored form */
    out[10] = ' ';
    memcpy(out + 11, n == 19 ? s + 11 : "00:00:00", 8);
    out[19] = '\0';
    return GZ_OK;
}

/* File extension -> format name for --format; the extensions are those the walk indexes. */
static const struct {
    const char *ext, *format;
} FORMAT_EXTS[] = {{"jpg", "jpeg"},  {"jpeg", "jpeg"}, {"jpe", "jpeg"},  {"jfif", "jpeg"},
                   {"png", "png"},   {"webp", "webp"}, {"gif", "gif"},   {"tif", "tiff"},
                   {"tiff", "tiff"}, {"bmp", "bmp"},   {"heic", "heic"}, {"heif", "heic"},
                   {"avif", "avif"}, {"dng", "raw"},   {"cr2", "raw"},   {"cr3", "raw"},
                   {"nef", "raw"},   {"arw", "raw"},   {"raf", "raw"},   {"orf", "raw"}};
#define N_FORMAT_EXTS (sizeof FORMAT_EXTS / sizeof FORMAT_EXTS[0])
#define KNOWN_FORMATS                                                                              \
    "jpeg (jpg), png, webp, gif, tiff (tif), bmp, heic (heif), avif, raw, dng, "                   \
    "cr2, cr3, nef, arw, raf, orf"

/* The format name a --format word stands for: its own, jpg/tif/heif as aliases, a RAW
 * extension as itself (so "dng" selects DNG files only). NULL when unknown. */
static const char *format_word(const char *w, size_t len) {
    static const char *const names[] = {"jpeg", "png", "webp", "gif", "tiff", "bmp", "heic", "avif",
                                        "raw",  "dng", "cr2",  "cr3", "nef",  "arw", "raf",  "orf"};
    if (len == 3 && strncasecmp(w, "jpg", 3) == 0) return "jpeg";
    if (len == 3 && strncasecmp(w, "tif", 3) == 0) return "tiff";
    if (len == 4 && strncasecmp(w, "heif", 4) == 0) return "heic";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == len && strncasecmp(w, names[i], len) == 0) return names[i];
    return NULL;
}

gz_status gz_check_formats(const char *list) {
    const char *p = list ? list : "";
    int words = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (!format_word(p, len))
                return GZ_FAIL(GZ_EINVAL, "unknown image format '%.*s' (known: " KNOWN_FORMATS ")",
                               (int)(len > 64 ? 64 : len), p);
            words++;
        }
        if (!p[len]) break;
        p += len + 1;
    }
    if (!words) return GZ_FAIL(GZ_EINVAL, "no image format given (known: " KNOWN_FORMATS ")");
    return GZ_OK;
}

/* 1 when the file name's extension is one of the formats in list. */
static int format_matches(const char *list, const char *path) {
    const char *base = strrchr(path, '/');
    const char *dot = strrchr(base ? base + 1 : path, '.');
    if (!dot) return 0;
    const char *ext = dot + 1, *fmt = NULL;
    for (size_t i = 0; i < N_FORMAT_EXTS && !fmt; i++)
        if (strcasecmp(ext, FORMAT_EXTS[i].ext) == 0) fmt = FORMAT_EXTS[i].format;
    if (!fmt) return 0;
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        const char *w = len ? format_word(p, len) : NULL;
        if (w && (strcmp(w, fmt) == 0 || strcasecmp(w, ext) == 0)) return 1;
        if (!p[len]) return 0;
        p += len + 1;
    }
}

/* The filters of a query, checked and normalised once. */
typedef struct {
    int active;
    char after[20], before[20]; /* "" = no bound */
    char *folder;               /* resolved; NULL = anywhere */
    size_t folder_len;
    const char *formats;
    int min_width, min_height;
} query_filter;

static gz_status filter_init(const gz_query *q, query_filter *f) {
    memset(f, 0, sizeof *f);
    f->active = q->taken_after || q->taken_before || q->in_folder || q->formats ||
                q->min_width > 0 || q->min_height > 0;
    if (!f->active) return GZ_OK;
    if (q->target != GZ_TARGET_IMAGES)
        return GZ_FAIL(GZ_EINVAL, "filters (capture date, folder, format, size) apply to image "
                                  "searches, not to texts or products");
    gz_status st = GZ_OK;
    if (q->taken_after) st = gz_parse_date(q->taken_after, f->after);
    if (st == GZ_OK && q->taken_before) st = gz_parse_date(q->taken_before, f->before);
    if (st == GZ_OK && q->formats) st = gz_check_formats(q->formats);
    if (st != GZ_OK) return st;
    f->formats = q->formats;
    f->min_width = q->min_width;
    f->min_height = q->min_height;
    if (q->in_folder) {
        if (!*q->in_folder) return GZ_FAIL(GZ_EINVAL, "an empty folder to search in");
        f->folder = gz_engine_resolve_path(q->in_folder);
        if (!f->folder) return GZ_FAIL(GZ_EIO, "%s: cannot make an absolute path", q->in_folder);
        f->folder_len = strlen(f->folder);
        while (f->folder_len > 1 && f->folder[f->folder_len - 1] == '/')
            f->folder[--f->folder_len] = '\0';
    }
    return GZ_OK;
}

/* The capture time compared with the bounds: EXIF's when it has the stored form, else the
 * file's mtime as local time (what a camera's clock would have said). */
static void capture_time(const gz_item *it, char out[20]) {
    const char *t = it->taken_at;
    if (t && strlen(t) == 19 && all_digits(t, 4) && t[4] == '-' && t[10] == ' ') {
        memcpy(out, t, 20);
        return;
    }
    time_t secs = (time_t)(it->mtime_ns / 1000000000);
    struct tm tm;
    if (!localtime_r(&secs, &tm) || !strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm)) out[0] = '\0';
}

static int filter_pass(const query_filter *f, const gz_item *it) {
    if (!it->path) return 0;
    if (f->folder) {
        size_t n = f->folder_len;
        int root = n == 1; /* "/" holds everything */
        if (!root && (strncmp(it->path, f->folder, n) != 0 || (it->path[n] && it->path[n] != '/')))
            return 0;
    }
    if (f->formats && !format_matches(f->formats, it->path)) return 0;
    if (f->min_width > 0 && it->width < f->min_width) return 0;
    if (f->min_height > 0 && it->height < f->min_height) return 0;
    if (f->after[0] || f->before[0]) {
        char when[20];
        capture_time(it, when);
        if (!when[0]) return 0;
        if (f->after[0] && strcmp(when, f->after) < 0) return 0;
        if (f->before[0] && strcmp(when, f->before) >= 0) return 0;
    }
    return 1;
}

/* The best want hits of kind that pass the filter, best first, into *hits (malloc'd). FAISS
 * ranks every vector, not the ones that pass, so the search asks for more candidates (from an
 * estimate of 4 * want, doubling) until want pass or every vector of the kind was returned:
 * the answer is the filtered prefix of the unfiltered ranking, as a brute-force scan would
 * give. */
static gz_status search_filtered(gz_db *db, int64_t mid, gz_item_kind kind, const float *v, int dim,
                                 int want, float min_score, const query_filter *f, gz_hit **hits,
                                 int *n) {
    *hits = NULL;
    *n = 0;
    gz_db_stats ds;
    gz_status st = gz_db_get_stats(db, &ds);
    if (st != GZ_OK) return st;
    int64_t total = ds.n_items[kind];
    if (total <= 0) return GZ_OK;
    if (total > INT_MAX / 2) total = INT_MAX / 2;
    int64_t fetch = (int64_t)want * 4;
    for (;;) {
        if (fetch > total) fetch = total;
        gz_hit *cand = gz_malloc_n((size_t)fetch, sizeof *cand, "search");
        if (!cand) return GZ_ENOMEM;
        int nc = 0, kept = 0;
        st = gz_db_search(db, mid, kind, v, dim, (int)fetch, min_score, cand, &nc);
        for (int i = 0; i < nc && kept < want && st == GZ_OK; i++) {
            gz_item it;
            memset(&it, 0, sizeof it);
            st = gz_db_get_item(db, cand[i].item_id, &it);
            if (st == GZ_OK && filter_pass(f, &it)) cand[kept++] = cand[i];
            gz_item_clear(&it);
        }
        if (st != GZ_OK) {
            free(cand);
            return st;
        }
        if (kept >= want || nc < fetch || fetch >= total) {
            *hits = cand;
            *n = kept;
            return GZ_OK;
        }
        free(cand);
        fetch *= 2;
    }
}

static int cmp_result_score(const void *a, const void *b) {
    const gz_result *x = a, *y = b;
    if (x->score > y->score) return -1;
    if (x->score < y->score) return 1;
    return x->item_id < y->item_id ? -1 : x->item_id > y->item_id;
}

/* Record candidate r's ITM result. Its score is the LAVIS rule (score.h) over the ITC the
 * search found (r->itc), so that score = itm_logit + itc holds for the fields a result shows;
 * the itc in mt comes from encoding the candidate again and is not used. */
static void set_itm(gz_result *r, const gz_match *mt) {
    r->has_itm = 1;
    r->itm_logit = mt->itm_logit[1];
    r->itm_prob = mt->itm_prob;
    r->score = gz_score_rerank(mt->itm_logit[1], r->itc);
}

/* Candidates re-ranked from stored token states per fusion call: decoded states are
 * P * D floats each (1.8 MB for BLIP at 384 px), so a chunk bounds the memory of a large K
 * (113 MB); within a call the fusion reuses its per-image key/value memory (42 MB an image,
 * one model batch of them), which a call per model batch would map and zero again. */
#define RERANK_TOKEN_CHUNK 64

/* Say, before the work starts, that n candidates have no stored token states and will be
 * decoded and encoded again, with the time that should take: the vision tower's time per
 * image measured when the library was indexed (decoding comes on top). */
static void announce_reencode(gz_engine *e, int n) {
    double per_image = gz_engine_encode_cost(e);
    char msg[512];
    double total = n * per_image;
    if (per_image > 0)
        snprintf(msg, sizeof msg,
                 "re-rank: %d candidate%s without stored tokens, re-encoding %s (about %.*f s: "
                 "%.3f s an image for the vision tower as measured when this library was "
                 "indexed, plus decoding; index with --keep-tokens to re-rank from stored "
                 "tokens)",
                 n, n == 1 ? "" : "s", n == 1 ? "it" : "them", total < 10 ? 1 : 0, total,
                 per_image);
    else
        snprintf(msg, sizeof msg,
                 "re-rank: %d candidate%s without stored tokens, re-encoding %s (each is decoded "
                 "and runs the vision tower; no time was measured for this model when indexing; "
                 "index with --keep-tokens to re-rank from stored tokens)",
                 n, n == 1 ? "" : "s", n == 1 ? "it" : "them");
    gz_db_add_notice(e->db, msg);
}

/* Re-rank from stored token states the candidates marked in from_tokens: decode them in
 * chunks and run only the fusion. A candidate whose record cannot be read (damaged) is
 * unmarked, with a notice, and goes the image way. */
static gz_status rerank_from_tokens(gz_engine *e, gz_model *m, int64_t mid, const char *text,
                                    gz_results *res, char *from_tokens) {
    int P = 0, D = 0;
    gz_model_image_token_shape(m, &P, &D);
    const size_t tok_sz = (size_t)P * (size_t)D;
    float *buf = gz_malloc_n((size_t)RERANK_TOKEN_CHUNK * P, (size_t)D * sizeof *buf,
                             "re-rank: token states");
    if (!buf) return GZ_ENOMEM;
    const float *states[RERANK_TOKEN_CHUNK];
    int which[RERANK_TOKEN_CHUNK];
    gz_match mt[RERANK_TOKEN_CHUNK];
    gz_status st = GZ_OK;
    for (int i = 0; i < res->n && st == GZ_OK;) {
        int k = 0;
        for (; i < res->n && k < RERANK_TOKEN_CHUNK; i++) {
            if (!from_tokens[i]) continue;
            float *out = buf + (size_t)k * tok_sz;
            gz_status rs = gz_db_get_tokens(e->db, res->v[i].item_id, mid, out, P, D, NULL);
            if (rs != GZ_OK) {
                char msg[1200];
                snprintf(msg, sizeof msg, "re-rank: %s; re-encoding that image", gz_last_error());
                gz_clear_error();
                gz_db_add_notice(e->db, msg);
                from_tokens[i] = 0;
                continue;
            }
            states[k] = out;
            which[k++] = i;
        }
        if (k == 0) break;
        st = gz_match_text_tokens(m, text, states, k, mt);
        for (int j = 0; j < k && st == GZ_OK; j++)
            set_itm(&res->v[which[j]], &mt[j]);
    }
    free(buf);
    return st;
}

/* Text query over images: ITM of the query text with each candidate image. Candidates with
 * token states stored for the model (gaze index --keep-tokens) run only the fusion; the others
 * are decoded and encoded again, announced first. qvec is the query's embedding, already
 * computed for the search, so the text tower does not run again. One candidate is decoded,
 * matched and freed at a time: K candidates never hold K decoded photos at once (each may be
 * up to the pixel limit). */
static gz_status rerank_images(gz_engine *e, gz_model *m, int64_t mid, const gz_image_params *ip,
                               const char *text, const float *qvec, gz_results *res) {
    char *from_tokens = gz_calloc_n((size_t)res->n, 1, "re-rank");
    if (!from_tokens) return GZ_ENOMEM;
    int n_tokens = 0;
    for (int i = 0; i < res->n; i++) {
        res->v[i].score = -INFINITY;
        if (gz_db_get_tokens(e->db, res->v[i].item_id, mid, NULL, 0, 0, NULL) == GZ_OK)
            from_tokens[i] = 1, n_tokens++;
        else
            gz_clear_error();
    }
    if (n_tokens < res->n) announce_reencode(e, res->n - n_tokens);
    gz_status st = n_tokens ? rerank_from_tokens(e, m, mid, text, res, from_tokens) : GZ_OK;
    /* Candidates whose file is unreadable now keep their itc but score -inf: they sink below. */
    for (int i = 0; i < res->n && st == GZ_OK; i++) {
        if (from_tokens[i]) continue;
        gz_image img;
        if (load_query_image(ip, res->v[i].path, &img) != GZ_OK) continue;
        gz_match mt;
        memset(&mt, 0, sizeof mt);
        st = gz_match_text_images_embedded(m, text, qvec, &img, 1, &mt);
        gz_image_free(&img);
        if (st == GZ_OK) set_itm(&res->v[i], &mt);
    }
    free(from_tokens);
    return st;
}

/* Image query over texts: ITM of the query image with each candidate text. */
static gz_status rerank_texts(gz_model *m, const gz_image_params *ip, const char *image,
                              gz_results *res) {
    const int n = res->n;
    const char **texts = gz_calloc_n((size_t)n, sizeof *texts, "rerank");
    gz_match *mt = gz_calloc_n((size_t)n, sizeof *mt, "rerank");
    gz_status st = texts && mt ? GZ_OK : GZ_ENOMEM;
    gz_image img;
    if (st == GZ_OK) st = load_query_image(ip, image, &img);
    if (st == GZ_OK) {
        for (int i = 0; i < n; i++)
            texts[i] = res->v[i].text ? res->v[i].text : "";
        st = gz_match_image_texts(m, &img, texts, n, mt);
        gz_image_free(&img);
    }
    for (int i = 0; i < n && st == GZ_OK; i++)
        set_itm(&res->v[i], &mt[i]);
    free(texts);
    free(mt);
    return st;
}

/* Re-score the candidates with the ITM head (one text over images, or one image over texts)
 * and sort them by the new score. gz_engine_search has checked that the model has the head.
 * qvec is the search's query vector: for the one positive term re-ranking accepts it is that
 * term's own normalised embedding. */
static gz_status rerank(gz_engine *e, gz_model *m, int64_t mid, const gz_query *q,
                        const float *qvec, gz_results *res) {
    if (q->n_terms != 1 || q->terms[0].weight <= 0)
        return GZ_FAIL(GZ_EINVAL, "re-ranking works on a single query term, not a composed one");
    if (res->n == 0) return GZ_OK;
    gz_status st;
    const gz_image_params ip = gz_engine_query_image_params(e, m); /* as the index's images */
    if (q->target == GZ_TARGET_IMAGES && q->terms[0].text)
        st = rerank_images(e, m, mid, &ip, q->terms[0].text, qvec, res);
    else if (q->target == GZ_TARGET_TEXTS && q->terms[0].image)
        st = rerank_texts(m, &ip, q->terms[0].image, res);
    else
        st = GZ_FAIL(GZ_EINVAL,
                     "re-ranking needs a text query over images or an image query over texts");
    if (st == GZ_OK) qsort(res->v, (size_t)res->n, sizeof *res->v, cmp_result_score);
    return st;
}

static int cmp_hit_id(const void *a, const void *b) {
    const gz_hit *x = a, *y = b;
    return x->item_id < y->item_id ? -1 : x->item_id > y->item_id;
}

/* All hits of a kind (k = every stored item), for the products formula. */
static gz_status search_all(gz_db *db, int64_t mid, gz_item_kind kind, const float *v, int dim,
                            int64_t n_items, gz_hit **hits, int *n) {
    *hits = NULL;
    *n = 0;
    if (n_items <= 0) return GZ_OK;
    if (n_items > 100000000) return GZ_FAIL(GZ_ENOMEM, "products: too many items");
    *hits = gz_malloc_n((size_t)n_items, sizeof **hits, "products");
    if (!*hits) return GZ_ENOMEM;
    return gz_db_search(db, mid, kind, v, dim, (int)n_items, GZ_NO_MIN_SCORE, *hits, n);
}

/* Products: every text item is a candidate; its score mixes its text cosine and its linked
 * image's cosine after standardising each over the candidates (fusion/score.h), so that the
 * modality gap (text-text cosines run higher) does not rank image-less products first. */
static gz_status products(gz_engine *e, const gz_query *q, int64_t mid, const float *v, int dim,
                          gz_results *out) {
    if (q->rerank > 0)
        return GZ_FAIL(GZ_EINVAL, "re-ranking does not apply to products (only to a text query "
                                  "over images or an image query over texts)");
    gz_db_stats ds;
    gz_status st = gz_db_get_stats(e->db, &ds);
    if (st != GZ_OK) return st;
    gz_hit *th = NULL, *ih = NULL;
    int nt = 0, ni = 0;
    st = search_all(e->db, mid, GZ_ITEM_TEXT, v, dim, ds.n_items[GZ_ITEM_TEXT], &th, &nt);
    if (st == GZ_OK)
        st = search_all(e->db, mid, GZ_ITEM_IMAGE, v, dim, ds.n_items[GZ_ITEM_IMAGE], &ih, &ni);
    if (st == GZ_OK && ni) qsort(ih, (size_t)ni, sizeof *ih, cmp_hit_id);
    gz_result *all = st == GZ_OK && nt ? gz_calloc_n((size_t)nt, sizeof *all, "products") : NULL;
    float *tcos = st == GZ_OK && nt ? gz_malloc_n((size_t)nt, sizeof *tcos, "products") : NULL;
    float *icos = st == GZ_OK && nt ? gz_malloc_n((size_t)nt, sizeof *icos, "products") : NULL;
    if (st == GZ_OK && nt && !(all && tcos && icos)) st = GZ_ENOMEM;
    /* pass 1: each candidate's two cosines (NaN: no linked image vector) */
    for (int i = 0; i < nt && st == GZ_OK; i++) {
        gz_item it;
        memset(&it, 0, sizeof it);
        st = gz_db_get_item(e->db, th[i].item_id, &it);
        if (st != GZ_OK) break;
        gz_result *r = &all[i];
        r->item_id = th[i].item_id;
        r->itc = tcos[i] = th[i].score;
        r->image_score = NAN;
        if (it.link_item_id > 0) {
            gz_hit key = {.item_id = it.link_item_id};
            gz_hit *h = ni ? bsearch(&key, ih, (size_t)ni, sizeof *ih, cmp_hit_id) : NULL;
            if (h) r->image_score = h->score;
        }
        icos[i] = r->image_score;
        gz_item_clear(&it);
    }
    /* pass 2: standardise each modality over the candidates, mix, filter */
    int kept = 0;
    if (st == GZ_OK && nt) {
        gz_score_calib ct = gz_score_calibrate(tcos, nt), ci = gz_score_calibrate(icos, nt);
        for (int i = 0; i < nt; i++) {
            gz_result r = all[i];
            r.score = gz_score_product(q->text_weight, gz_score_standardise(ct, r.itc),
                                       gz_score_standardise(ci, r.image_score));
            if (r.score >= q->min_score) all[kept++] = r;
        }
    }
    free(tcos);
    free(icos);
    if (st == GZ_OK && kept) qsort(all, (size_t)kept, sizeof *all, cmp_result_score);
    int k = kept < q->k ? kept : q->k;
    out->v = st == GZ_OK && k > 0 ? gz_calloc_n((size_t)k, sizeof *out->v, "products") : NULL;
    if (st == GZ_OK && k && !out->v) st = GZ_ENOMEM;
    for (int i = 0; i < k && st == GZ_OK; i++) {
        gz_result *r = &out->v[i];
        st = fill_result(e->db, all[i].item_id, r);
        r->score = all[i].score;
        r->itc = all[i].itc;
        r->image_score = all[i].image_score;
        out->n = i + 1;
    }
    free(all);
    free(th);
    free(ih);
    return st;
}

/* A notice when the model in use has vectors for fewer items of kind than the database holds:
 * a second model must not silently search part of the library (#12.5). */
static void note_coverage(gz_engine *e, int64_t mid, gz_item_kind kind) {
    int64_t covered = 0, total = 0;
    if (gz_db_coverage(e->db, mid, kind, &covered, &total) != GZ_OK) {
        gz_clear_error();
        return;
    }
    if (covered >= total) return;
    const char *kn = kind == GZ_ITEM_TEXT ? "texts" : "images";
    char msg[4400];
    snprintf(msg, sizeof msg,
             "the model in use (%s) has vectors for %lld of the %lld %s in the database: the "
             "other %lld are not searched; index their folders (or import their texts) with "
             "this model to include them, or search with the model that indexed them",
             e->model_dir ? e->model_dir : "?", (long long)covered, (long long)total, kn,
             (long long)(total - covered));
    gz_db_add_notice(e->db, msg);
}

gz_status gz_engine_search(gz_engine *e, const gz_query *q, gz_results *out) {
    memset(out, 0, sizeof *out);
    gz_model *m = NULL;
    int64_t mid = 0;
    gz_status st = gz_engine_model_lookup(e, &m, &mid);
    if (st != GZ_OK) return st;
    if (q->k <= 0) return GZ_FAIL(GZ_EINVAL, "k must be positive (got %d)", q->k);
    int dim = gz_model_dim(m);
    if (q->rerank > 0 && !gz_model_has_itm(m))
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "re-ranking needs a model with an image-text matching head (BLIP); this is "
                       "a %s model",
                       gz_family_name(gz_model_family(m)));
    query_filter flt;
    st = filter_init(q, &flt);
    if (st != GZ_OK) {
        free(flt.folder);
        return st;
    }
    float *v = gz_malloc_n((size_t)dim, sizeof *v, "search"); /* the query vector */
    if (!v) {
        free(flt.folder);
        return GZ_ENOMEM;
    }
    st = gz_engine_query_vector(e, q->terms, q->n_terms, v);
    if (st == GZ_OK && q->target == GZ_TARGET_PRODUCTS) {
        st = products(e, q, mid, v, dim, out);
        free(v);
        free(flt.folder);
        if (st != GZ_OK) gz_results_free(out);
        return st;
    }
    gz_item_kind kind = q->target == GZ_TARGET_TEXTS ? GZ_ITEM_TEXT : GZ_ITEM_IMAGE;
    int kk = q->rerank > q->k ? q->rerank : q->k;
    gz_hit *hits = NULL;
    int nh = 0;
    if (flt.active) {
        if (st == GZ_OK)
            st = search_filtered(e->db, mid, kind, v, dim, kk, q->min_score, &flt, &hits, &nh);
    } else {
        hits = st == GZ_OK ? gz_malloc_n((size_t)kk, sizeof *hits, "search") : NULL;
        if (st == GZ_OK && !hits) st = GZ_ENOMEM;
        if (st == GZ_OK) st = gz_db_search(e->db, mid, kind, v, dim, kk, q->min_score, hits, &nh);
    }
    free(flt.folder);
    if (st == GZ_OK && nh) {
        out->v = gz_calloc_n((size_t)nh, sizeof *out->v, "search");
        if (!out->v) st = GZ_ENOMEM;
    }
    for (int i = 0; i < nh && st == GZ_OK; i++) {
        st = fill_result(e->db, hits[i].item_id, &out->v[i]);
        out->v[i].score = out->v[i].itc = hits[i].score;
        out->n = i + 1;
    }
    free(hits);
    if (st == GZ_OK) note_coverage(e, mid, kind);
    if (st == GZ_OK && q->rerank > 0) st = rerank(e, m, mid, q, v, out);
    free(v);
    if (st == GZ_OK && out->n > q->k) {
        for (int i = q->k; i < out->n; i++) {
            free(out->v[i].path);
            free(out->v[i].text);
            free(out->v[i].ext_id);
            free(out->v[i].link_path);
        }
        out->n = q->k;
    }
    if (st != GZ_OK) gz_results_free(out);
    return st;
}
