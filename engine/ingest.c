/* ingest.c - `gaze index` as a library call: scan folders, skip unchanged files, reuse
 * vectors of renamed / duplicate files by content hash, decode (on a helper thread, one
 * batch ahead, by default) and encode the rest, commit each batch in one transaction, mark
 * vanished files and prune them on request.
 *
 * A new or changed file is read once: classify reads its bytes to hash them, and the same
 * buffer is what the decoding threads read. An unchanged (size, mtime) file is not read. */
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "core/error.h"
#include "core/fileio.h"
#include "engine/engine_internal.h"
#include "gaze.h"
#include "vision_encoder/image.h"

#define ERRMSG_MAX 1024

gz_ingest_opts gz_ingest_default_opts(void) {
    gz_ingest_opts o;
    memset(&o, 0, sizeof o);
    o.exif_orient = -1;
    o.decode = GZ_DECODE_OVERLAP;
    return o;
}

gz_image_params gz_engine_image_params(gz_model *m, int exif_orient, int64_t max_pixels) {
    gz_image_params ip = gz_model_image_params(m);
    if (exif_orient >= 0) ip.exif_orient = exif_orient;
    if (max_pixels > 0) ip.max_pixels = max_pixels;
    return ip;
}

/* meta key of the per-image encode time measured for a model (gz_engine_encode_cost) */
static void encode_cost_key(const char *fingerprint, char *key, size_t n) {
    snprintf(key, n, "encode_seconds.%s", fingerprint);
}

gz_status gz_engine_record_encode_cost(gz_engine *e, double seconds) {
    if (!(seconds > 0) || !isfinite(seconds)) return GZ_OK;
    char key[128], value[64];
    encode_cost_key(e->fingerprint, key, sizeof key);
    snprintf(value, sizeof value, "%.6f", seconds);
    return gz_db_set_meta(e->db, key, value);
}

double gz_engine_encode_cost(gz_engine *e) {
    char key[128], *v = NULL;
    encode_cost_key(e->fingerprint, key, sizeof key);
    if (gz_db_get_meta(e->db, key, &v) != GZ_OK) {
        gz_clear_error();
        return 0;
    }
    char *end = NULL;
    double s = strtod(v, &end);
    int ok = end != v && *end == '\0' && s > 0 && isfinite(s);
    free(v);
    return ok ? s : 0;
}

typedef enum {
    JOB_SKIP,       /* unchanged and embedded */
    JOB_RESTORE,    /* was marked missing, back unchanged: status OK again */
    JOB_FAILED_OLD, /* unchanged since an earlier failure */
    JOB_REUSE,      /* known content: copy the vector of reuse_from */
    JOB_ENCODE,     /* decode + encode */
    JOB_FAILED,     /* failed this run (hash, decode or encode) */
    JOB_DUP,        /* same content as an earlier file of this run (dup_of): its vector */
} job_kind;

typedef struct job job;
struct job {
    const gz_walk_file *f;
    job_kind kind;
    int64_t existing_id;
    uint64_t hash;
    int64_t reuse_from;
    unsigned char *data; /* JOB_ENCODE: the file's bytes as hashed, until decoded; owned */
    size_t size;
    gz_image img;
    char error[ERRMSG_MAX];
    const job *dup_of; /* JOB_DUP: the first file of this run with the same content */
};

/* Content hash -> the first job of this run that will encode it (open addressing, NULL value
 * = empty), so that duplicates inside one run are encoded once whatever the batch timing:
 * the next chunk is classified before the current one is written. */
typedef struct {
    uint64_t *keys;
    const job **vals;
    size_t cap;
} dup_map;

static gz_status dup_map_init(dup_map *m, size_t n_files) {
    m->cap = 16;
    while (m->cap < n_files * 2)
        m->cap *= 2;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->vals = calloc(m->cap, sizeof *m->vals);
    if (!m->keys || !m->vals) return GZ_FAIL(GZ_ENOMEM, "index: out of memory");
    return GZ_OK;
}

static void dup_map_free(dup_map *m) {
    free(m->keys);
    free(m->vals);
}

/* The first job with this hash, after recording j as it when there is none. */
static const job *dup_map_first(dup_map *m, uint64_t hash, const job *j) {
    size_t i = (size_t)(hash ^ (hash >> 29)) & (m->cap - 1);
    while (m->vals[i] && m->keys[i] != hash)
        i = (i + 1) & (m->cap - 1);
    if (m->vals[i]) return m->vals[i];
    m->keys[i] = hash; /* cap >= 2 * files: never full */
    m->vals[i] = j;
    return NULL;
}

typedef struct {
    job *jobs;
    size_t n;
    size_t n_enc; /* jobs that were JOB_ENCODE when encode_chunk ran: rows of vecs */
    gz_image_params ip;
    pthread_t thread;
    int running;
    atomic_size_t next; /* GZ_DECODE_PARALLEL: the next job a decoding thread takes */
} chunk;

static void free_job_data(job *j) {
    free(j->data);
    j->data = NULL;
    j->size = 0;
}

static void set_job_error(job *j) {
    snprintf(j->error, sizeof j->error, "%s", gz_last_error());
    j->kind = JOB_FAILED;
}

/* Decode the JOB_ENCODE images of a chunk from the bytes classify read, and free them, taking
 * jobs from c->next until none is left: one thread or several at once (each job is decoded by
 * the one thread that took it; touches no db). gz_last_error is per thread, so each job's
 * message is its own. */
static void *decode_chunk(void *arg) {
    chunk *c = arg;
    for (size_t i; (i = atomic_fetch_add(&c->next, 1)) < c->n;) {
        job *j = &c->jobs[i];
        if (j->kind != JOB_ENCODE) continue;
        gz_status st = gz_image_load_memory(j->data, j->size, j->f->path, &c->ip, &j->img);
        free_job_data(j);
        if (st != GZ_OK) set_job_error(j);
    }
    return NULL;
}

static size_t needs_decode(const chunk *c) {
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->jobs[i].kind == JOB_ENCODE;
    return n;
}

/* GZ_DECODE_OVERLAP: decode a chunk's images on a helper thread, joined before the chunk
 * encodes (here when the thread cannot start). */
static void start_decode(chunk *c) {
    atomic_init(&c->next, 0);
    if (!needs_decode(c)) return;
    if (pthread_create(&c->thread, NULL, decode_chunk, c) == 0)
        c->running = 1;
    else
        decode_chunk(c);
}

/* GZ_DECODE_PARALLEL / INLINE: decode a chunk's images now, on up to threads threads (this one
 * among them; fewer when it has fewer images or a thread cannot start). */
static void decode_now(chunk *c, int threads) {
    atomic_init(&c->next, 0);
    size_t n = needs_decode(c);
    if (n == 0) return;
    enum { MAX_HELPERS = 63 };
    pthread_t helper[MAX_HELPERS];
    size_t want = threads > 1 ? (size_t)threads - 1 : 0, started = 0;
    if (want > n - 1) want = n - 1;
    if (want > MAX_HELPERS) want = MAX_HELPERS;
    while (started < want && pthread_create(&helper[started], NULL, decode_chunk, c) == 0)
        started++;
    decode_chunk(c);
    for (size_t i = 0; i < started; i++)
        pthread_join(helper[i], NULL);
}

static int has_embedding(gz_db *db, int64_t item_id, int64_t model_id) {
    return gz_db_get_embedding(db, item_id, model_id, NULL, 0) == GZ_OK;
}

/* 1 when the item has what this run keeps: its vector and, with keep_tokens, token states in
 * that format (tokens in another format are made again, as asked). */
static int has_what_we_keep(gz_db *db, int64_t item_id, int64_t model_id, gz_tokens_format keep) {
    if (!has_embedding(db, item_id, model_id)) return 0;
    if (keep == GZ_TOKENS_NONE) return 1;
    gz_tokens_format f = GZ_TOKENS_NONE;
    if (gz_db_get_tokens(db, item_id, model_id, NULL, 0, 0, &f) != GZ_OK) {
        gz_clear_error();
        return 0;
    }
    return f == keep;
}

/* Decide what to do with each file of the chunk (db reads, reading and hashing files). */
static gz_status classify_chunk(gz_engine *e, const gz_ingest_opts *o, job *jobs, size_t n,
                                dup_map *dups);

/* classify_chunk inside one read transaction: SQLite then takes its file locks once per chunk
 * instead of once per statement, which dominates a no-op re-run. A read transaction, not a
 * write batch: classifying writes nothing, so it need not wait for (or hold off) another
 * process's write lock. On error no job keeps file bytes. */
static gz_status classify(gz_engine *e, const gz_ingest_opts *o, job *jobs, size_t n,
                          dup_map *dups) {
    if (gz_db_in_batch(e->db)) { /* inside the caller's batch (a catalogue put) */
        gz_status st = classify_chunk(e, o, jobs, n, dups);
        if (st != GZ_OK)
            for (size_t i = 0; i < n; i++)
                free_job_data(&jobs[i]);
        return st;
    }
    gz_status st = gz_db_begin_read(e->db);
    if (st == GZ_OK) {
        st = classify_chunk(e, o, jobs, n, dups);
        if (st == GZ_OK)
            st = gz_db_commit(e->db);
        else
            gz_db_rollback(e->db);
    }
    if (st != GZ_OK)
        for (size_t i = 0; i < n; i++)
            free_job_data(&jobs[i]);
    return st;
}

/* Read a file's bytes into j->data and hash them: the same XXH3-64 as gz_hash_file. */
static gz_status read_and_hash(job *j) {
    /* capped by the format's maximum file size, before the bytes are read */
    gz_status st = gz_image_read_file(j->f->path, &j->data, &j->size);
    if (st != GZ_OK) return st;
    j->hash = XXH3_64bits(j->data, j->size);
    return GZ_OK;
}

/* The max_pixels a failed item was tried with (its meta_json {"max_pixels":N}), or 0. */
static int64_t failed_max_pixels(const char *meta) {
    const char *k = meta ? strstr(meta, "\"max_pixels\":") : NULL;
    return k ? strtoll(k + strlen("\"max_pixels\":"), NULL, 10) : 0;
}

static int64_t cur_max_pixels(gz_engine *e, const gz_ingest_opts *o) {
    return gz_engine_image_params(e->model, o->exif_orient, o->max_pixels).max_pixels;
}

static gz_status classify_chunk(gz_engine *e, const gz_ingest_opts *o, job *jobs, size_t n,
                                dup_map *dups) {
    for (size_t i = 0; i < n; i++) {
        job *j = &jobs[i];
        const gz_walk_file *f = j->f;
        gz_item it;
        memset(&it, 0, sizeof it);
        gz_status st =
            gz_db_find_by_path(e->db, GZ_ITEM_IMAGE, f->path, strlen(f->path), NULL, &it);
        uint64_t own_hash = 0; /* the stored content of this path (a touch keeps it) */
        int own_ok = 0;
        if (st == GZ_OK) {
            j->existing_id = it.id;
            own_hash = it.content_hash;
            own_ok = it.status != GZ_ITEM_FAILED;
            int same = it.size == f->size && it.mtime_ns == f->mtime_ns;
            gz_item_status status = it.status;
            /* a failure under other limits is retried: the limit may be what failed it */
            int same_limits = failed_max_pixels(it.meta_json) == cur_max_pixels(e, o);
            if (same && status == GZ_ITEM_FAILED && !o->retry_failed && same_limits) {
                snprintf(j->error, sizeof j->error, "%s", it.error ? it.error : "failed earlier");
                j->kind = JOB_FAILED_OLD;
                gz_item_clear(&it);
                continue;
            }
            gz_item_clear(&it);
            if (same && status != GZ_ITEM_FAILED &&
                has_what_we_keep(e->db, j->existing_id, e->model_id, o->keep_tokens)) {
                j->kind = status == GZ_ITEM_OK ? JOB_SKIP : JOB_RESTORE;
                continue;
            }
        } else if (st != GZ_ENOTFOUND) {
            return st;
        }
        gz_clear_error();
        if (read_and_hash(j) != GZ_OK) {
            set_job_error(j);
            continue;
        }
        if (own_ok && own_hash == j->hash &&
            has_what_we_keep(e->db, j->existing_id, e->model_id, o->keep_tokens)) {
            /* touched or restored with the same bytes: keep the file's own vector */
            j->kind = JOB_REUSE;
            j->reuse_from = j->existing_id;
            free_job_data(j);
            continue;
        }
        int64_t src = 0;
        st = gz_db_find_by_hash(e->db, GZ_ITEM_IMAGE, j->hash, e->model_id, j->existing_id, &src);
        if (st == GZ_OK && has_what_we_keep(e->db, src, e->model_id, o->keep_tokens)) {
            j->kind = JOB_REUSE;
            j->reuse_from = src;
            free_job_data(j); /* the vector is copied: the bytes are not decoded */
            continue;
        }
        if (st != GZ_OK && st != GZ_ENOTFOUND) return st;
        gz_clear_error();
        const job *first = dups ? dup_map_first(dups, j->hash, j) : NULL;
        if (first) {
            j->kind = JOB_DUP;
            j->dup_of = first;
            free_job_data(j);
            continue;
        }
        j->kind = JOB_ENCODE; /* j->data goes to decode_chunk */
    }
    return GZ_OK;
}

/* The encoder's time, summed over a run's batches, for the per-image cost recorded in the
 * db (gz_engine_encode_cost). */
typedef struct {
    double seconds;
    long images;
} encode_timing;

/* 1 when every value is finite. */
static int all_finite(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* Encode images (and their token states when toks is not NULL: (n, P, D)). */
static gz_status encode_some(gz_engine *e, const gz_image *imgs, size_t n, float *vecs,
                             float *toks) {
    if (toks) return gz_encode_images_tokens(e->model, imgs, (int)n, vecs, toks);
    return gz_encode_images(e->model, imgs, (int)n, vecs);
}

/* Encode the decoded images of a chunk; vecs gets one row per JOB_ENCODE job in order, and
 * toks (NULL: no tokens kept) their token states (P, D) each. A failing batch is retried
 * image by image so one bad image fails alone. timing (may be NULL) accumulates the time. */
static gz_status encode_chunk(gz_engine *e, chunk *c, float *vecs, float *toks,
                              encode_timing *timing) {
    int dim = gz_model_dim(e->model);
    int P = 0, D = 0;
    gz_model_image_token_shape(e->model, &P, &D);
    const size_t tok_sz = (size_t)P * (size_t)D;
    size_t n_enc = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->jobs[i].kind == JOB_ENCODE) n_enc++;
    c->n_enc = n_enc;
    if (n_enc == 0) return GZ_OK;
    gz_image *imgs = malloc(n_enc * sizeof *imgs);
    size_t *idx = malloc(n_enc * sizeof *idx);
    if (!imgs || !idx) {
        free(imgs);
        free(idx);
        return GZ_FAIL(GZ_ENOMEM, "index: out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->jobs[i].kind == JOB_ENCODE) imgs[k] = c->jobs[i].img, idx[k++] = i;
    /* Any failure of the batch, out of memory included (one picture's preprocessing can ask for
     * more than the machine has), is retried image by image, so that it fails that file only;
     * the run goes on with the next files. */
    double t0 = gz_monotonic_seconds();
    if (encode_some(e, imgs, n_enc, vecs, toks) != GZ_OK) {
        for (size_t t = 0; t < n_enc; t++)
            if (encode_some(e, &imgs[t], 1, vecs + t * (size_t)dim,
                            toks ? toks + t * tok_sz : NULL) != GZ_OK)
                set_job_error(&c->jobs[idx[t]]);
    }
    if (timing) {
        timing->seconds += gz_monotonic_seconds() - t0;
        timing->images += (long)n_enc;
    }
    /* A vector with a NaN or infinity (overflow in a broken picture's activations) fails its
     * file; the store would refuse it and end the run. */
    for (size_t t = 0; t < n_enc; t++) {
        job *j = &c->jobs[idx[t]];
        if (j->kind != JOB_ENCODE) continue;
        const float *v = vecs + t * (size_t)dim;
        for (int d = 0; d < dim; d++)
            if (!isfinite(v[d])) {
                snprintf(j->error, sizeof j->error, "%s: embedding element %d is not finite",
                         j->f->path, d);
                j->kind = JOB_FAILED;
                break;
            }
        if (j->kind == JOB_ENCODE && toks && !all_finite(toks + t * tok_sz, tok_sz)) {
            snprintf(j->error, sizeof j->error, "%s: a vision token state is not finite",
                     j->f->path);
            j->kind = JOB_FAILED;
        }
    }
    free(imgs);
    free(idx);
    return GZ_OK;
}

static void image_meta(char *buf, size_t n, const gz_image *img) {
    snprintf(buf, n, "{\"format\":\"%s\",\"orientation\":%d}", img->format, img->orientation);
}

/* Write one chunk's results in one transaction (or in the caller's open batch, which the
 * caller then commits or rolls back). */
static gz_status write_chunk(gz_engine *e, chunk *c, const float *vecs, const float *toks,
                             gz_ingest_stats *s, const gz_ingest_opts *o) {
    int dim = gz_model_dim(e->model);
    int P = 0, D = 0;
    gz_model_image_token_shape(e->model, &P, &D);
    const size_t tok_sz = (size_t)P * (size_t)D;
    int need_tx = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->jobs[i].kind != JOB_SKIP && c->jobs[i].kind != JOB_FAILED_OLD) need_tx = 1;
    gz_status st = GZ_OK;
    float *tmp = malloc((size_t)dim * sizeof *tmp);
    if (!tmp) return GZ_FAIL(GZ_ENOMEM, "index: out of memory");
    if (gz_db_in_batch(e->db)) need_tx = 0;
    if (need_tx && (st = gz_db_begin(e->db)) != GZ_OK) {
        free(tmp);
        return st;
    }
    size_t v = 0; /* row in vecs: counts jobs that were JOB_ENCODE before encoding */
    for (size_t i = 0; i < c->n && st == GZ_OK; i++) {
        job *j = &c->jobs[i];
        const gz_walk_file *f = j->f;
        gz_item it;
        memset(&it, 0, sizeof it);
        it.id = j->existing_id;
        it.kind = GZ_ITEM_IMAGE;
        it.path = f->path;
        it.path_len = strlen(f->path);
        it.size = f->size;
        it.mtime_ns = f->mtime_ns;
        it.content_hash = j->hash;
        char meta[256];
        int decoded = j->img.rgb != NULL;
        switch (j->kind) {
        case JOB_SKIP: s->skipped++; break;
        case JOB_FAILED_OLD: s->failed_known++; break; /* a count, not a list */
        case JOB_RESTORE: {
            gz_item old;
            memset(&old, 0, sizeof old);
            st = gz_db_get_item(e->db, j->existing_id, &old);
            if (st == GZ_OK) {
                old.status = GZ_ITEM_OK;
                st = gz_db_upsert_item(e->db, &old);
            }
            gz_item_clear(&old);
            s->skipped++;
            break;
        }
        case JOB_DUP:
            if (j->dup_of->kind == JOB_FAILED || j->dup_of->existing_id <= 0) {
                snprintf(j->error, sizeof j->error, "%s", j->dup_of->error);
                it.status = GZ_ITEM_FAILED;
                it.error = j->error;
                st = gz_db_upsert_item(e->db, &it);
                s->failed++;
                if (o->file_error) o->file_error(o->user, f->path, j->error);
                break;
            }
            j->reuse_from = j->dup_of->existing_id; /* written before: earlier in order */
            /* fall through */
        case JOB_REUSE: {
            gz_item src;
            memset(&src, 0, sizeof src);
            st = gz_db_get_item(e->db, j->reuse_from, &src);
            if (st != GZ_OK) break;
            it.width = src.width;
            it.height = src.height;
            it.taken_at = src.taken_at;
            it.meta_json = src.meta_json;
            it.status = GZ_ITEM_OK;
            st = gz_db_upsert_item(e->db, &it);
            if (st == GZ_OK) st = gz_db_get_embedding(e->db, j->reuse_from, e->model_id, tmp, dim);
            if (st == GZ_OK) st = gz_db_put_embedding(e->db, it.id, e->model_id, tmp, dim);
            /* the same content: its token states too, when the source has them */
            if (st == GZ_OK) st = gz_db_copy_tokens(e->db, j->reuse_from, it.id, e->model_id);
            gz_item_clear(&src);
            s->reused++;
            break;
        }
        case JOB_ENCODE: {
            assert(v < c->n_enc);
            /* the photo's real size (the decode may be DCT-scaled for the model) */
            it.width = j->img.src_width;
            it.height = j->img.src_height;
            it.taken_at = j->img.taken_at[0] ? j->img.taken_at : NULL;
            image_meta(meta, sizeof meta, &j->img);
            it.meta_json = meta;
            it.status = GZ_ITEM_OK;
            st = gz_db_upsert_item(e->db, &it);
            if (st == GZ_OK)
                st = gz_db_put_embedding(e->db, it.id, e->model_id, vecs + v * (size_t)dim, dim);
            /* in the same transaction as the vector: a kill keeps both or neither */
            if (st == GZ_OK && toks)
                st = gz_db_put_tokens(e->db, it.id, e->model_id, o->keep_tokens, toks + v * tok_sz,
                                      P, D);
            v++;
            s->encoded++;
            break;
        }
        case JOB_FAILED:
            if (decoded) v++; /* decoded, then failed in the encoder: its row is unused */
            if (decoded) {
                it.width = j->img.src_width;
                it.height = j->img.src_height;
            }
            it.status = GZ_ITEM_FAILED;
            it.error = j->error;
            snprintf(meta, sizeof meta, "{\"max_pixels\":%lld}", (long long)c->ip.max_pixels);
            it.meta_json = meta; /* the limit it failed under: a new limit retries it */
            st = gz_db_upsert_item(e->db, &it);
            s->failed++;
            if (o->file_error) o->file_error(o->user, f->path, j->error);
            break;
        }
        if (it.id > 0) j->existing_id = it.id; /* the file's item, for mark_vanished */
        s->done++;
    }
    /* Every row encode_chunk wrote was consumed by exactly one job. */
    assert(st != GZ_OK || v == c->n_enc);
    free(tmp);
    if (need_tx) {
        if (st == GZ_OK)
            st = gz_db_commit(e->db);
        else
            gz_db_rollback(e->db);
    }
    return st;
}

/* Free what a chunk's jobs hold: decoded images and bytes not decoded (stop, error). */
static void free_chunk_images(chunk *c) {
    for (size_t i = 0; i < c->n; i++) {
        if (c->jobs[i].img.rgb) gz_image_free(&c->jobs[i].img);
        free_job_data(&c->jobs[i]);
    }
}

static int cmp_id(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Mark indexed images under a root that the scan did not see; prune them if asked. The
 * items of the files seen are known by id (jobs), so only vanished ones are read. */
static gz_status mark_vanished(gz_engine *e, const gz_walk_result *w, const job *jobs,
                               const gz_ingest_opts *o, gz_ingest_stats *s) {
    int64_t *seen = malloc((w->n ? w->n : 1) * sizeof *seen);
    if (!seen) return GZ_FAIL(GZ_ENOMEM, "index: out of memory");
    size_t ns = 0;
    for (size_t i = 0; i < w->n; i++)
        if (jobs[i].existing_id > 0) seen[ns++] = jobs[i].existing_id;
    qsort(seen, ns, sizeof *seen, cmp_id);
    gz_status st = GZ_OK;
    for (size_t r = 0; r < w->n_roots && st == GZ_OK; r++) {
        const char *root = w->roots[r];
        size_t rl = strlen(root);
        char *prefix = malloc(rl + 2);
        if (!prefix) {
            st = GZ_FAIL(GZ_ENOMEM, "index: out of memory");
            break;
        }
        memcpy(prefix, root, rl);
        if (rl == 0 || root[rl - 1] != '/') prefix[rl++] = '/';
        prefix[rl] = '\0';
        int64_t *ids = NULL;
        size_t n = 0;
        st = gz_db_list_items(e->db, GZ_ITEM_IMAGE, prefix, rl, -1, &ids, &n);
        int in_tx = 0;
        for (size_t i = 0; i < n && st == GZ_OK; i++) {
            if (ns && bsearch(&ids[i], seen, ns, sizeof *seen, cmp_id)) continue;
            gz_item it;
            memset(&it, 0, sizeof it);
            st = gz_db_get_item(e->db, ids[i], &it);
            if (st != GZ_OK) break;
            if (it.status != GZ_ITEM_MISSING) {
                if (!in_tx) st = gz_db_begin(e->db), in_tx = st == GZ_OK;
                if (st == GZ_OK) st = gz_db_mark_missing(e->db, ids[i]);
            }
            s->missing++;
            gz_item_clear(&it);
        }
        if (in_tx) {
            if (st == GZ_OK)
                st = gz_db_commit(e->db);
            else
                gz_db_rollback(e->db);
        }
        free(ids);
        if (st == GZ_OK && o->prune) {
            int64_t removed = 0;
            st = gz_db_prune_missing(e->db, prefix, rl, &removed);
            s->pruned += removed;
        }
        free(prefix);
    }
    free(seen);
    return st;
}

gz_status gz_engine_index(gz_engine *e, const char *const *roots, int n_roots,
                          const gz_ingest_opts *o, gz_ingest_stats *stats) {
    gz_ingest_opts defaults = gz_ingest_default_opts();
    if (!o) o = &defaults;
    gz_ingest_stats s;
    memset(&s, 0, sizeof s);
    double t0 = gz_monotonic_seconds();
    gz_status st = gz_engine_model(e, NULL, NULL);
    if (st == GZ_OK && o->keep_tokens != GZ_TOKENS_NONE && o->keep_tokens != GZ_TOKENS_INT8 &&
        o->keep_tokens != GZ_TOKENS_BF16)
        st = GZ_FAIL(GZ_EINVAL, "keep_tokens: unknown format %d", (int)o->keep_tokens);
    if (st == GZ_OK && o->keep_tokens && !gz_model_has_itm(e->model))
        st = GZ_FAIL(GZ_EUNSUPPORTED,
                     "keeping token states is for re-ranking with BLIP's image-text matching "
                     "head; a %s model has none (nothing was indexed)",
                     gz_family_name(gz_model_family(e->model)));
    if (st != GZ_OK) {
        if (stats) *stats = s;
        return st;
    }
    gz_walk_result w;
    st = gz_walk(roots, n_roots, &o->walk, &w);
    if (st != GZ_OK) {
        if (stats) *stats = s;
        return st;
    }
    for (size_t i = 0; i < w.n_errors && o->file_error; i++)
        o->file_error(o->user, "", w.errors[i]);
    s.total = (long)w.n;
    for (int r = 0; r < GZ_SKIP_REASONS; r++)
        s.skipped_by[r] = w.skipped[r];
    /* 0: the model's batch size, so one chunk is one forward pass */
    int bs = o->batch_size > 0          ? o->batch_size
             : e->params.batch_size > 0 ? e->params.batch_size
                                        : GZ_DEFAULT_BATCH;
    int dim = gz_model_dim(e->model);
    int P = 0, D = 0;
    gz_model_image_token_shape(e->model, &P, &D);
    job *jobs = calloc(w.n ? w.n : 1, sizeof *jobs);
    float *vecs = malloc((size_t)bs * (size_t)dim * sizeof *vecs);
    float *toks = o->keep_tokens
                      ? gz_malloc_n((size_t)bs * P, (size_t)D * sizeof *toks, "index: token states")
                      : NULL;
    if (!jobs || !vecs || (o->keep_tokens && !toks)) {
        free(jobs);
        free(vecs);
        free(toks);
        gz_walk_free(&w);
        return GZ_FAIL(GZ_ENOMEM, "index: out of memory");
    }
    encode_timing timing = {0, 0};
    for (size_t i = 0; i < w.n; i++)
        jobs[i].f = &w.files[i];
    dup_map dups = {0};
    if ((st = dup_map_init(&dups, w.n)) != GZ_OK) {
        dup_map_free(&dups);
        free(jobs);
        free(vecs);
        free(toks);
        gz_walk_free(&w);
        return st;
    }
    gz_image_params ip = gz_engine_image_params(e->model, o->exif_orient, o->max_pixels);

    chunk cur = {0}, next = {0};
    size_t pos = 0;
    int stopped = 0;
    /* Prime: classify and start decoding the first chunk. */
    if (pos < w.n) {
        cur.jobs = jobs + pos;
        cur.n = (w.n - pos) < (size_t)bs ? (w.n - pos) : (size_t)bs;
        cur.ip = ip;
        pos += cur.n;
        st = classify(e, o, cur.jobs, cur.n, &dups);
        if (st == GZ_OK && o->decode == GZ_DECODE_OVERLAP) start_decode(&cur);
    }
    const int decode_threads = o->decode == GZ_DECODE_PARALLEL ? gz_model_threads(e->model) : 1;
    while (st == GZ_OK && cur.n) {
        if (cur.running) pthread_join(cur.thread, NULL), cur.running = 0;
        memset(&next, 0, sizeof next);
        if (pos < w.n && !(o->stop && *o->stop)) {
            next.jobs = jobs + pos;
            next.n = (w.n - pos) < (size_t)bs ? (w.n - pos) : (size_t)bs;
            next.ip = ip;
            pos += next.n;
            st = classify(e, o, next.jobs, next.n, &dups);
            if (st != GZ_OK)
                next.n = 0;
            else if (o->decode == GZ_DECODE_OVERLAP)
                start_decode(&next);
        }
        if (st == GZ_OK && o->decode != GZ_DECODE_OVERLAP) decode_now(&cur, decode_threads);
        if (st == GZ_OK) st = encode_chunk(e, &cur, vecs, toks, &timing);
        if (st == GZ_OK) st = write_chunk(e, &cur, vecs, toks, &s, o);
        free_chunk_images(&cur);
        if (o->progress) o->progress(o->user, &s);
        if (st == GZ_OK && o->stop && *o->stop) {
            stopped = 1;
            if (next.running) pthread_join(next.thread, NULL), next.running = 0;
            free_chunk_images(&next);
            break;
        }
        cur = next;
    }
    if (next.running) pthread_join(next.thread, NULL);
    if (st != GZ_OK) {
        free_chunk_images(&cur);
        free_chunk_images(&next);
    }
    if (st == GZ_OK && !stopped) st = mark_vanished(e, &w, jobs, o, &s);
    /* encoded batches are committed even when the run stops early: record how they were made */
    if (s.encoded > 0) {
        gz_status rst = gz_engine_record_preprocess(e, &ip);
        if (st == GZ_OK) st = rst;
    }
    if (timing.images > 0) {
        gz_status rst = gz_engine_record_encode_cost(e, timing.seconds / (double)timing.images);
        if (st == GZ_OK) st = rst;
    }
    dup_map_free(&dups);
    free(jobs);
    free(vecs);
    free(toks);
    gz_walk_free(&w);
    s.seconds = gz_monotonic_seconds() - t0;
    if (stats) *stats = s;
    if (st == GZ_OK && stopped)
        return GZ_FAIL(GZ_EINTERRUPTED,
                       "interrupted: stopped after %ld of %ld files; run "
                       "again to continue",
                       s.done, s.total);
    return st;
}

gz_status gz_engine_index_one(gz_engine *e, const char *abs_path, int64_t *item_id) {
    gz_status st = gz_engine_model(e, NULL, NULL);
    if (st != GZ_OK) return st;
    gz_walk_file f;
    gz_walk_result w;
    const char *roots[1] = {abs_path};
    gz_walk_opts wo = {0};
    st = gz_walk(roots, 1, &wo, &w);
    if (st != GZ_OK) return st;
    if (w.n != 1) {
        gz_walk_free(&w);
        return GZ_FAIL(GZ_EINVAL, "%s: not an image file", abs_path);
    }
    f = w.files[0];
    job j;
    memset(&j, 0, sizeof j);
    j.f = &f;
    gz_ingest_opts o = gz_ingest_default_opts();
    o.retry_failed = 1;
    st = classify(e, &o, &j, 1, NULL);
    /* decoded as the db's other images were, so that it matches them and image queries */
    chunk c = {.jobs = &j, .n = 1, .ip = gz_engine_query_image_params(e, e->model)};
    int dim = gz_model_dim(e->model);
    float *vec = malloc((size_t)dim * sizeof *vec);
    if (!vec) st = GZ_FAIL(GZ_ENOMEM, "out of memory");
    if (st == GZ_OK) decode_chunk(&c);
    if (st == GZ_OK) st = encode_chunk(e, &c, vec, NULL, NULL);
    gz_ingest_stats s;
    memset(&s, 0, sizeof s);
    if (st == GZ_OK) st = write_chunk(e, &c, vec, NULL, &s, &o);
    free_chunk_images(&c);
    free(vec);
    if (st == GZ_OK && s.encoded) st = gz_engine_record_preprocess(e, &c.ip);
    if (st == GZ_OK && j.kind == JOB_FAILED_OLD) j.kind = JOB_FAILED;
    if (st == GZ_OK && j.kind == JOB_FAILED) st = GZ_FAIL(GZ_EINVAL, "%s", j.error);
    if (st == GZ_OK) {
        gz_item it;
        memset(&it, 0, sizeof it);
        st = gz_db_find_by_path(e->db, GZ_ITEM_IMAGE, f.path, strlen(f.path), NULL, &it);
        if (st == GZ_OK) *item_id = it.id;
        gz_item_clear(&it);
    }
    gz_walk_free(&w);
    return st;
}
