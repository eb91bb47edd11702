/* items.c - catalogue writes over HTTP: PUT / DELETE /v1/items/{catalog}/{id} and the bulk JSONL
 * POST /v1/items/{catalog}. Every write goes through one writer thread with its own writable
 * engine; the jobs waiting when it wakes are applied in one batch (one transaction) and each
 * request is answered only after that commit, so nothing acknowledged can be lost and a reader
 * sees all of a request's items or none. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "serve/serve_internal.h"

#define MAX_GROUP_JOBS 64 /* jobs committed together at most */

/* One operation of a job: a put or a delete of catalogue item (catalog, ext_id). */
typedef struct {
    int del;
    gz_catalog_item item;
    char *owned[8]; /* strings the item points into */
    int n_owned;
    const char *text_parts[2];
    long line;       /* bulk: 1-based line */
    gz_put_result r; /* put: the engine's answer */
    gz_status del_st;
    char del_error[512];
    int skip; /* a malformed bulk line: error already in r.error */
} write_op;

struct serve_job {
    write_op *ops;
    int n;
    gz_status st; /* fatal error of the batch, else GZ_OK */
    char error[1024];
    int done;
    struct serve_job *next;
};

static void op_free(write_op *op) {
    for (int i = 0; i < op->n_owned; i++)
        free(op->owned[i]);
}

static const char *own(write_op *op, const char *s) {
    if (!s || op->n_owned >= (int)(sizeof op->owned / sizeof op->owned[0])) return NULL;
    char *d = strdup(s);
    if (d) op->owned[op->n_owned++] = d;
    return d;
}

/* ---- the writer thread ---- */

/* Apply the ops of jobs[0..n) in the open batch. Returns the first fatal status. */
static gz_status apply_jobs(gz_engine *e, struct serve_job **jobs, int n) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < jobs[j]->n; i++) {
            write_op *op = &jobs[j]->ops[i];
            if (op->skip) continue;
            if (op->del) {
                gz_rm_spec rm = {.by = GZ_RM_CATALOG_ITEM,
                                 .target = op->item.catalog,
                                 .ext_id = op->item.ext_id};
                op->del_st = gz_engine_remove(e, &rm, 0, NULL);
                if (op->del_st != GZ_OK)
                    snprintf(op->del_error, sizeof op->del_error, "%s", gz_last_error());
                if (op->del_st != GZ_OK && op->del_st != GZ_ENOTFOUND) return op->del_st;
            } else {
                gz_status st = gz_engine_put_items(e, &op->item, 1, &op->r);
                if (st != GZ_OK) return st;
            }
        }
    return GZ_OK;
}

/* One batch for the group; on a fatal error, each job alone, so one bad job fails alone. */
static void run_group(serve_writer *w, struct serve_job **jobs, int n) {
    gz_status st = gz_engine_begin(w->engine);
    if (st == GZ_OK) st = apply_jobs(w->engine, jobs, n);
    if (st == GZ_OK) st = gz_engine_commit(w->engine);
    if (st == GZ_OK) {
        for (int j = 0; j < n; j++)
            jobs[j]->st = GZ_OK;
        return;
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", gz_last_error());
    if (gz_db_in_batch(gz_engine_db(w->engine))) gz_engine_rollback(w->engine);
    if (n == 1) {
        jobs[0]->st = st;
        snprintf(jobs[0]->error, sizeof jobs[0]->error, "%s", msg);
        return;
    }
    for (int j = 0; j < n; j++)
        run_group(w, &jobs[j], 1);
}

static void *writer_main(void *arg) {
    serve_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head && w->stopping) break;
        struct serve_job *group[MAX_GROUP_JOBS];
        int n = 0;
        while (w->head && n < MAX_GROUP_JOBS) {
            group[n++] = w->head;
            w->head = w->head->next;
        }
        if (!w->head) w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        run_group(w, group, n);
        pthread_mutex_lock(&w->mu);
        w->batches++;
        for (int j = 0; j < n; j++)
            group[j]->done = 1;
        pthread_cond_broadcast(&w->done_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

gz_status serve_writer_start(serve_writer *w, const gz_engine_params *ep, const char *upload_dir,
                             const char *image_root, int warmup) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    snprintf(w->upload_dir, sizeof w->upload_dir, "%s", upload_dir);
    if (image_root) snprintf(w->image_root, sizeof w->image_root, "%s", image_root);
    gz_engine_params p = *ep;
    p.db.readonly = 0;
    gz_status st = gz_engine_open(&p, &w->engine);
    if (st != GZ_OK) return st;
    /* load and register the model now, so the first write does not pay for it */
    if (warmup && (st = gz_engine_model(w->engine, NULL, NULL)) != GZ_OK) {
        gz_engine_close(w->engine);
        w->engine = NULL;
        return st;
    }
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        gz_engine_close(w->engine);
        w->engine = NULL;
        return GZ_ENOMEM;
    }
    w->running = 1;
    return GZ_OK;
}

gz_status serve_writer_stop(serve_writer *w) {
    gz_status st = GZ_OK;
    if (w->running) {
        pthread_mutex_lock(&w->mu);
        w->stopping = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL); /* the queue is empty when it returns */
        w->running = 0;
    }
    if (w->engine) st = gz_engine_close(w->engine); /* writes the FAISS files */
    w->engine = NULL;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->done_cv);
    return st;
}

/* Queue the job and wait until its batch is committed (or failed). */
static void submit(serve_writer *w, struct serve_job *job) {
    pthread_mutex_lock(&w->mu);
    job->next = NULL;
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    pthread_cond_signal(&w->cv);
    while (!job->done)
        pthread_cond_wait(&w->done_cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* ---- request parsing ---- */

/* Store uploaded image bytes under the upload folder, named by their SHA-256 (the same bytes
 * twice are one file); path receives the absolute name. */
static gz_status store_upload(serve_writer *w, const unsigned char *data, size_t n, char *path,
                              size_t cap, char *err, size_t err_cap) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data, n, md);
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (mkdir(w->upload_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_cap, "%.700s: %s", w->upload_dir, strerror(errno));
        return GZ_EIO;
    }
    snprintf(path, cap, "%s/%s.img", w->upload_dir, hex);
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (size_t)sb.st_size == n) return GZ_OK;
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)pthread_self() % 100000);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, err_cap, "%.700s: %s", tmp, strerror(errno));
        return GZ_EIO;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(fd, data + done, n - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        done += (size_t)k;
    }
    int ok = done == n && fsync(fd) == 0;
    ok &= close(fd) == 0;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, err_cap, "%.700s: %s", path, strerror(errno));
        unlink(tmp);
        return GZ_EIO;
    }
    return GZ_OK;
}

/* image_path of a request: only a file under --image-root (after resolving links). */
static int allowed_path(serve_writer *w, const char *p, char *out, size_t cap, char *err,
                        size_t err_cap) {
    if (!w->image_root[0]) {
        snprintf(err, err_cap, "image_path is refused: the server has no --image-root");
        return 0;
    }
    char real[PATH_MAX];
    char joined[PATH_MAX * 2];
    if (p[0] != '/')
        snprintf(joined, sizeof joined, "%s/%s", w->image_root, p);
    else
        snprintf(joined, sizeof joined, "%s", p);
    size_t rl = strlen(w->image_root);
    if (!realpath(joined, real) || strncmp(real, w->image_root, rl) != 0 ||
        (real[rl] != '/' && real[rl] != 0)) {
        snprintf(err, err_cap, "image_path '%.200s' is not a file under the image root", p);
        return 0;
    }
    snprintf(out, cap, "%s", real);
    return 1;
}

static const char *const PUT_FIELDS[] = {"text",       "title", "description", "image",
                                         "image_path", "meta",  NULL};

/* Fill a put op from its JSON object (PUT body or bulk line). 1 ok; 0 with err set. */
static int parse_put(serve_ctx *c, const json_t *o, write_op *op, char *err, size_t err_cap,
                     int *status) {
    *status = 400;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        int known = 0;
        for (int i = 0; PUT_FIELDS[i] && !known; i++)
            known = strcmp(key, PUT_FIELDS[i]) == 0;
        if (!known && strcmp(key, "id") != 0 && strcmp(key, "delete") != 0) {
            snprintf(err, err_cap, "unknown field '%.100s'", key);
            return 0;
        }
    }
    const json_t *text = json_object_get(o, "text"), *title = json_object_get(o, "title"),
                 *desc = json_object_get(o, "description"), *img = json_object_get(o, "image"),
                 *ipath = json_object_get(o, "image_path"), *meta = json_object_get(o, "meta");
    if ((text && !json_is_string(text)) || (title && !json_is_string(title)) ||
        (desc && !json_is_string(desc))) {
        snprintf(err, err_cap, "text, title and description must be strings");
        return 0;
    }
    if (!text && !title && !desc) {
        snprintf(err, err_cap, "give text, or title and/or description");
        return 0;
    }
    if (img && ipath) {
        snprintf(err, err_cap, "give image or image_path, not both");
        return 0;
    }
    if (meta && !json_is_object(meta)) {
        snprintf(err, err_cap, "meta must be an object");
        return 0;
    }
    if (text) {
        op->item.text = own(op, json_string_value(text));
    } else {
        int n = 0;
        if (title) op->text_parts[n++] = own(op, json_string_value(title));
        if (desc) op->text_parts[n++] = own(op, json_string_value(desc));
        op->item.text_parts = op->text_parts;
        op->item.n_text_parts = n;
    }
    if (meta) {
        char *m = json_dumps(meta, JSON_COMPACT);
        op->item.meta_json = own(op, m);
        free(m);
    }
    char path[PATH_MAX];
    if (img) {
        unsigned char *data = NULL;
        size_t n = 0;
        if (!json_is_string(img) ||
            serve_base64_decode(json_string_value(img), &data, &n) != GZ_OK) {
            snprintf(err, err_cap, "image: not base64 image data");
            return 0;
        }
        /* refuse what cannot be decoded before storing it (and the pixel limit) */
        gz_image probe;
        gz_image_params ip = gz_model_image_params(c->model);
        ip.min_size = 64; /* a check, not the encoding: a DCT-scaled decode is enough */
        gz_status st = gz_image_load_memory(data, n, "image", &ip, &probe);
        if (st != GZ_OK) {
            snprintf(err, err_cap, "%s", gz_last_error());
            *status = st == GZ_ENOMEM ? 413 : 422;
            free(data);
            return 0;
        }
        gz_image_free(&probe);
        st = store_upload(&c->writer, data, n, path, sizeof path, err, err_cap);
        free(data);
        if (st != GZ_OK) {
            *status = 500;
            return 0;
        }
        op->item.image = own(op, path);
    } else if (ipath) {
        if (!json_is_string(ipath) ||
            !allowed_path(&c->writer, json_string_value(ipath), path, sizeof path, err, err_cap)) {
            if (!json_is_string(ipath)) snprintf(err, err_cap, "image_path must be a string");
            *status = 403;
            return 0;
        }
        op->item.image = own(op, path);
    }
    return 1;
}

static const char *outcome_name(gz_put_outcome o) {
    switch (o) {
    case GZ_PUT_ADDED: return "added";
    case GZ_PUT_UPDATED: return "updated";
    case GZ_PUT_UNCHANGED: return "unchanged";
    default: return "failed";
    }
}

static json_t *op_json(const write_op *op) {
    json_t *o = json_pack("{s:s,s:s}", "catalog", op->item.catalog ? op->item.catalog : "", "id",
                          op->item.ext_id ? op->item.ext_id : "");
    if (op->line) json_object_set_new(o, "line", json_integer(op->line));
    if (op->skip) {
        json_object_set_new(o, "outcome", json_string("failed"));
        json_object_set_new(o, "error", json_string(op->r.error));
    } else if (op->del) {
        json_object_set_new(o, "outcome",
                            json_string(op->del_st == GZ_OK          ? "deleted"
                                        : op->del_st == GZ_ENOTFOUND ? "not_found"
                                                                     : "failed"));
        if (op->del_st != GZ_OK) json_object_set_new(o, "error", json_string(op->del_error));
    } else {
        json_object_set_new(o, "outcome", json_string(outcome_name(op->r.outcome)));
        json_object_set_new(o, "item_id", json_integer(op->r.item_id));
        if (op->r.image_item_id)
            json_object_set_new(o, "image_item_id", json_integer(op->r.image_item_id));
        if (op->r.error[0]) json_object_set_new(o, "error", json_string(op->r.error));
        if (op->r.image_failed) json_object_set_new(o, "image_failed", json_true());
    }
    return o;
}

/* "/v1/items/{catalog}" or "/v1/items/{catalog}/{id}": split (URL-decoded already). */
static int split_item_url(const char *url, char *catalog, size_t ccap, char *id, size_t icap) {
    const char *p = url + strlen("/v1/items/");
    const char *slash = strchr(p, '/');
    size_t cl = slash ? (size_t)(slash - p) : strlen(p);
    if (cl == 0 || cl >= ccap) return 0;
    memcpy(catalog, p, cl);
    catalog[cl] = 0;
    id[0] = 0;
    if (slash) {
        const char *q = slash + 1;
        size_t il = strlen(q);
        if (il == 0 || il >= icap || strchr(q, '/')) return 0;
        memcpy(id, q, il + 1);
    }
    return 1;
}

void serve_items(serve_ctx *c, const char *method, const char *url, const char *body, size_t len,
                 serve_reply *r) {
    char catalog[256], id[512];
    if (!split_item_url(url, catalog, sizeof catalog, id, sizeof id)) {
        serve_error(r, 404,
                    "items are /v1/items/{catalog}/{id} (PUT, DELETE) or "
                    "/v1/items/{catalog} (POST, JSON lines)");
        return;
    }
    int bulk = strcmp(method, "POST") == 0 && !id[0];
    int put = strcmp(method, "PUT") == 0 && id[0];
    int del = strcmp(method, "DELETE") == 0 && id[0];
    if (!bulk && !put && !del) {
        serve_error(r, 405, "%s: PUT or DELETE /v1/items/{catalog}/{id}, POST /v1/items/{catalog}",
                    method);
        return;
    }
    struct serve_job job;
    memset(&job, 0, sizeof job);
    char err[1024];
    int status = 400;
    if (put || del) {
        job.ops = calloc(1, sizeof *job.ops);
        if (!job.ops) {
            serve_error(r, 500, "out of memory");
            return;
        }
        job.n = 1;
        write_op *op = &job.ops[0];
        op->del = del;
        op->item.catalog = own(op, catalog);
        op->item.ext_id = own(op, id);
        if (put) {
            json_error_t je;
            json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
            int ok = 0;
            if (!o)
                snprintf(err, sizeof err, "malformed JSON at line %d column %d: %s", je.line,
                         je.column, je.text);
            else if (!json_is_object(o))
                snprintf(err, sizeof err, "the request body must be a JSON object");
            else
                ok = parse_put(c, o, op, err, sizeof err, &status);
            json_decref(o);
            if (!ok) {
                op_free(op);
                free(job.ops);
                serve_error(r, status, "%s", err);
                return;
            }
        }
    } else {
        /* JSON lines: {"id": ..., fields of PUT} or {"id": ..., "delete": true} */
        int cap = 1;
        for (size_t i = 0; i < len; i++)
            cap += body[i] == '\n';
        job.ops = calloc((size_t)cap, sizeof *job.ops);
        if (!job.ops) {
            serve_error(r, 500, "out of memory");
            return;
        }
        const char *p = body, *end = body + len;
        long line = 0;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
            line++;
            const char *s = p;
            p = nl ? nl + 1 : end;
            size_t k = 0;
            while (k < ll && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r'))
                k++;
            if (k == ll) continue; /* blank line */
            write_op *op = &job.ops[job.n++];
            op->line = line;
            op->item.catalog = own(op, catalog);
            json_error_t je;
            json_t *o = json_loadb(s, ll, JSON_REJECT_DUPLICATES, &je);
            const json_t *jid = o ? json_object_get(o, "id") : NULL;
            const json_t *jdel = o ? json_object_get(o, "delete") : NULL;
            if (!json_is_object(o)) {
                snprintf(op->r.error, sizeof op->r.error, "line %ld: %.300s", line,
                         o ? "not a JSON object" : je.text);
                op->skip = 1;
            } else if (!json_is_string(jid) || !json_string_length(jid)) {
                snprintf(op->r.error, sizeof op->r.error, "line %ld: no string \"id\"", line);
                op->skip = 1;
            } else {
                op->item.ext_id = own(op, json_string_value(jid));
                if (json_is_true(jdel)) {
                    op->del = 1;
                } else if (!parse_put(c, o, op, err, sizeof err, &status)) {
                    snprintf(op->r.error, sizeof op->r.error, "line %ld: %.600s", line, err);
                    op->skip = 1;
                }
            }
            json_decref(o);
        }
        if (job.n == 0) {
            free(job.ops);
            serve_error(r, 400, "no items: the body holds no JSON lines");
            return;
        }
    }
    submit(&c->writer, &job);
    if (job.st != GZ_OK) {
        serve_error(r, 500, "nothing was written: %s", job.error);
    } else if (!bulk) {
        write_op *op = &job.ops[0];
        int code = 200;
        if (del && op->del_st == GZ_ENOTFOUND) code = 404;
        if (put && op->r.outcome == GZ_PUT_ADDED) code = 201;
        if (put && op->r.outcome == GZ_PUT_FAILED) code = 422;
        serve_json(r, code, op_json(op));
    } else {
        json_t *arr = json_array();
        long counts[7] = {0};
        for (int i = 0; i < job.n; i++) {
            write_op *op = &job.ops[i];
            json_array_append_new(arr, op_json(op));
            /* 1..3 put outcomes, 4 failed, 5 deleted, 6 not found */
            int idx = op->skip                         ? 4
                      : op->del                        ? (op->del_st == GZ_OK          ? 5
                                                          : op->del_st == GZ_ENOTFOUND ? 6
                                                                                       : 4)
                      : op->r.outcome == GZ_PUT_FAILED ? 4
                                                       : (int)op->r.outcome;
            counts[idx]++;
        }
        serve_json(r, 200,
                   json_pack("{s:o,s:i,s:i,s:i,s:i,s:i,s:i}", "results", arr, "added",
                             (int)counts[1], "updated", (int)counts[2], "unchanged", (int)counts[3],
                             "deleted", (int)counts[5], "not_found", (int)counts[6], "failed",
                             (int)counts[4]));
    }
    for (int i = 0; i < job.n; i++)
        op_free(&job.ops[i]);
    free(job.ops);
}
