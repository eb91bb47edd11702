/* ingest.c - `gaze index` as a library call: scan folders, skip unchanged files, reuse
 * vectors of renamed / duplicate files by content hash, decode (on a helper thread, one
 * batch ahead) and encode the rest, commit each batch in one transaction, mark vanished
 * files and prune them on request.
 *
 * A new or changed file is read once: classify reads its bytes to hash them, and the same
 * buffer is what the helper thread decodes. An unchanged (size, mtime) file is not read. */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "core/error.h"
#include "core/fileio.h"
#include "engine/engine_internal.h"
#include "gaze.h"

#define ERRMSG_MAX 1024
/* No cap of our own on an image file's size (gz_image_load has none either): the decoders
 * refuse pictures above max_pixels from their headers. */
#define IMAGE_FILE_MAX (SIZE_MAX - 1)

gz_ingest_opts gz_ingest_default_opts(void) {
    gz_ingest_opts o;
    memset(&o, 0, sizeof o);
    o.exif_orient = -1;
    o.decode_thread = 1;
    return o;
}

gz_image_params gz_engine_image_params(gz_model *m, int exif_orient, int64_t max_pixels) {
    gz_image_params ip = gz_model_image_params(m);
    if (exif_orient >= 0) ip.exif_orient = exif_orient;
    if (max_pixels > 0) ip.max_pixels = max_pixels;
    return ip;
}

typedef enum {
    JOB_SKIP,       /* unchanged and embedded */
    JOB_RESTORE,    /* was marked missing, back unchanged: status OK again */
    JOB_FAILED_OLD, /* unchanged since an earlier failure */
    JOB_REUSE,      /* known content: copy the vector of reuse_from */
    JOB_ENCODE,     /* decode + encode */
    JOB_FAILED,     /* failed this run (hash, decode or encode) */
} job_kind;

typedef struct {
    const gz_walk_file *f;
    job_kind kind;
    int64_t existing_id;
    uint64_t hash;
    int64_t reuse_from;
    unsigned char *data; /* JOB_ENCODE: the file's bytes as hashed, until decoded; owned */
    size_t size;
    gz_image img;
    char error[ERRMSG_MAX];
} job;

typedef struct {
    job *jobs;
    size_t n;
    size_t n_enc; /* jobs that were JOB_ENCODE when encode_chunk ran: rows of vecs */
    gz_image_params ip;
    pthread_t thread;
    int running;
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

/* Decode every JOB_ENCODE image of a chunk from the bytes classify read, and free them
 * (runs on the helper thread: touches no db). */
static void *decode_chunk(void *arg) {
    chunk *c = arg;
    for (size_t i = 0; i < c->n; i++) {
        job *j = &c->jobs[i];
        if (j->kind != JOB_ENCODE) continue;
        gz_status st = gz_image_load_memory(j->data, j->size, j->f->path, &c->ip, &j->img);
        free_job_data(j);
        if (st != GZ_OK) set_job_error(j);
    }
    return NULL;
}

static int needs_decode(const chunk *c) {
    for (size_t i = 0; i < c->n; i++)
        if (c->jobs[i].kind == JOB_ENCODE) return 1;
    return 0;
}

/* Decode a chunk's images on a helper thread (or here when threads are off or failed). */
static void start_decode(chunk *c, int use_thread) {
    if (!needs_decode(c)) return;
    if (use_thread && pthread_create(&c->thread, NULL, decode_chunk, c) == 0)
        c->running = 1;
    else
        decode_chunk(c);
}

static int has_embedding(gz_db *db, int64_t item_id, int64_t model_id) {
    return gz_db_get_embedding(db, item_id, model_id, NULL, 0) == GZ_OK;
}

/* Decide what to do with each file of the chunk (db reads, reading and hashing files). */
static gz_status classify_chunk(gz_engine *e, const gz_ingest_opts *o, job *jobs, size_t n);

/* classify_chunk inside one read transaction: SQLite then takes its file locks once per chunk
 * instead of once per statement, which dominates a no-op re-run. A read transaction, not a
 * write batch: classifying writes nothing, so it need not wait for (or hold off) another
 * process's write lock. On error no job keeps file bytes. */
static gz_status classify(gz_engine *e, const gz_ingest_opts *o, job *jobs, size_t n) {
    if (gz_db_in_batch(e->db)) { /* inside the caller's batch (a catalogue put) */
        gz_status st = classify_chunk(e, o, jobs, n);
        if (st != GZ_OK)
            for (size_t i = 0; i < n; i++)
                free_job_data(&jobs[i]);
        return st;
    }
    gz_status st = gz_db_begin_read(e->db);
    if (st == GZ_OK) {
        st = classify_chunk(e, o, jobs, n);
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
    gz_status st = gz_read_file(j->f->path, IMAGE_FILE_MAX, &j->data, &j->size);
    if (st != GZ_OK) return st;
    j->hash = XXH3_64bits(j->data, j->size);
    return GZ_OK;
}

static gz_status classify_chunk(gz_engine *e, const gz_ingest_opts *o, job *jobs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        job *j = &jobs[i];
        const gz_walk_file *f = j->f;
        gz_item it;
        memset(&it, 0, sizeof it);
        gz_status st =
            gz_db_find_by_path(e->db, GZ_ITEM_IMAGE, f->path, strlen(f->path), NULL, &it);
        if (st == GZ_OK) {
            j->existing_id = it.id;
            int same = it.size == f->size && it.mtime_ns == f->mtime_ns;
            gz_item_status status = it.status;
            if (same && status == GZ_ITEM_FAILED && !o->retry_failed) {
                snprintf(j->error, sizeof j->error, "%s", it.error ? it.error : "failed earlier");
                j->kind = JOB_FAILED_OLD;
                gz_item_clear(&it);
                continue;
            }
            gz_item_clear(&it);
            if (same && status != GZ_ITEM_FAILED &&
                has_embedding(e->db, j->existing_id, e->model_id)) {
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
        int64_t src = 0;
        st = gz_db_find_by_hash(e->db, GZ_ITEM_IMAGE, j->hash, e->model_id, j->existing_id, &src);
        if (st == GZ_OK && has_embedding(e->db, src, e->model_id)) {
            j->kind = JOB_REUSE;
            j->reuse_from = src;
            free_job_data(j); /* the vector is copied: the bytes are not decoded */
            continue;
        }
        if (st != GZ_OK && st != GZ_ENOTFOUND) return st;
        j->kind = JOB_ENCODE; /* j->data goes to decode_chunk */
    }
    return GZ_OK;
}

/* Encode the decoded images of a chunk; vecs gets one row per JOB_ENCODE job in order.
 * A failing batch is retried image by image so one bad image fails alone. */
static gz_status encode_chunk(gz_engine *e, chunk *c, float *vecs) {
    int dim = gz_model_dim(e->model);
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
    gz_status st = gz_encode_images(e->model, imgs, (int)n_enc, vecs);
    if (st != GZ_OK && st != GZ_ENOMEM) {
        for (size_t t = 0; t < n_enc; t++)
            if (gz_encode_images(e->model, &imgs[t], 1, vecs + t * (size_t)dim) != GZ_OK)
                set_job_error(&c->jobs[idx[t]]);
        st = GZ_OK;
    }
    free(imgs);
    free(idx);
    return st;
}

static void image_meta(char *buf, size_t n, const gz_image *img) {
    snprintf(buf, n, "{\"format\":\"%s\",\"orientation\":%d}", img->format, img->orientation);
}

/* Write one chunk's results in one transaction (or in the caller's open batch, which the
 * caller then commits or rolls back). */
static gz_status write_chunk(gz_engine *e, chunk *c, const float *vecs, gz_ingest_stats *s,
                             const gz_ingest_opts *o) {
    int dim = gz_model_dim(e->model);
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
        case JOB_FAILED_OLD:
            s->failed++;
            if (o->file_error) o->file_error(o->user, f->path, j->error);
            break;
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
    /* 0: the model's batch size, so one chunk is one forward pass */
    int bs = o->batch_size > 0          ? o->batch_size
             : e->params.batch_size > 0 ? e->params.batch_size
                                        : GZ_DEFAULT_BATCH;
    int dim = gz_model_dim(e->model);
    job *jobs = calloc(w.n ? w.n : 1, sizeof *jobs);
    float *vecs = malloc((size_t)bs * (size_t)dim * sizeof *vecs);
    if (!jobs || !vecs) {
        free(jobs);
        free(vecs);
        gz_walk_free(&w);
        return GZ_FAIL(GZ_ENOMEM, "index: out of memory");
    }
    for (size_t i = 0; i < w.n; i++)
        jobs[i].f = &w.files[i];
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
        st = classify(e, o, cur.jobs, cur.n);
        if (st == GZ_OK) {
            start_decode(&cur, o->decode_thread);
        }
    }
    while (st == GZ_OK && cur.n) {
        if (cur.running) pthread_join(cur.thread, NULL), cur.running = 0;
        memset(&next, 0, sizeof next);
        if (pos < w.n && !(o->stop && *o->stop)) {
            next.jobs = jobs + pos;
            next.n = (w.n - pos) < (size_t)bs ? (w.n - pos) : (size_t)bs;
            next.ip = ip;
            pos += next.n;
            st = classify(e, o, next.jobs, next.n);
            if (st == GZ_OK) {
                start_decode(&next, o->decode_thread);
            } else {
                next.n = 0;
            }
        }
        if (st == GZ_OK) st = encode_chunk(e, &cur, vecs);
        if (st == GZ_OK) st = write_chunk(e, &cur, vecs, &s, o);
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
    free(jobs);
    free(vecs);
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
    st = classify(e, &o, &j, 1);
    /* decoded as the db's other images were, so that it matches them and image queries */
    chunk c = {.jobs = &j, .n = 1, .ip = gz_engine_query_image_params(e, e->model)};
    int dim = gz_model_dim(e->model);
    float *vec = malloc((size_t)dim * sizeof *vec);
    if (!vec) st = GZ_FAIL(GZ_ENOMEM, "out of memory");
    if (st == GZ_OK) decode_chunk(&c);
    if (st == GZ_OK) st = encode_chunk(e, &c, vec);
    gz_ingest_stats s;
    memset(&s, 0, sizeof s);
    if (st == GZ_OK) st = write_chunk(e, &c, vec, &s, &o);
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
