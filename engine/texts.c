/* texts.c - `gaze add-texts` as a library call: import the captions / product records of a
 * record file (records.c) as text items, optionally linked to image items, and embed them.
 *
 * One import runs in phases: open (model, paths, reader, buffers), one row at a time (text,
 * id, linked image, unchanged check, queue), a batch flush (encode + one transaction) each
 * time the queue is full, and a final flush and clean-up that hands back the stats. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine_internal.h"
#include "gaze.h"

gz_texts_opts gz_texts_default_opts(void) {
    gz_texts_opts o;
    memset(&o, 0, sizeof o);
    o.id_field = "id";
    o.text_field = "text";
    o.batch_size = GZ_DEFAULT_TEXTS_BATCH;
    return o;
}

/* A row waiting for its batch's forward pass; strings owned. */
typedef struct {
    char *ext_id, *text, *meta;
    int64_t link;
} pending;

/* One import in progress. */
typedef struct {
    gz_engine *e;
    const gz_texts_opts *o;
    const char *file;       /* as given: row messages name it */
    char abs[PATH_MAX];     /* absolute path: the items' path */
    char dir_buf[PATH_MAX]; /* storage of dir */
    const char *dir;        /* the file's folder: linked image paths are relative to it */
    const char *id_field;   /* resolved defaults */
    const char *text_field;
    gz_records *r;
    pending *p; /* (bs) queued rows, np of them */
    int np, bs;
    float *vecs; /* (bs, dim) */
    gz_texts_stats s;
} texts_import;

/* The text of a record: the named fields (comma-separated list) joined with ". ". The first
 * absent or empty field's name goes to missing (missing[0] = 0 if none). */
static char *record_text(gz_records *r, const char *fields, char missing[128]) {
    size_t cap = 64, n = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[0] = '\0';
    const char *f = fields;
    missing[0] = '\0';
    while (*f) {
        const char *c = strchr(f, ',');
        size_t fl = c ? (size_t)(c - f) : strlen(f);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(fl < 127 ? fl : 127), f);
        const char *v = gz_records_get(r, name);
        if (v && *v) {
            size_t vl = strlen(v);
            if (n + vl + 3 > cap) {
                while (n + vl + 3 > cap)
                    cap *= 2;
                char *no = realloc(out, cap);
                if (!no) {
                    free(out);
                    return NULL;
                }
                out = no;
            }
            if (n) memcpy(out + n, ". ", 2), n += 2;
            memcpy(out + n, v, vl);
            n += vl;
            out[n] = '\0';
        } else if (!missing[0]) {
            snprintf(missing, 128, "%s", name);
        }
        f += fl;
        if (*f == ',') f++;
    }
    return out;
}

static void free_pending(pending *p, int n) {
    for (int i = 0; i < n; i++) {
        free(p[i].ext_id);
        free(p[i].text);
        free(p[i].meta);
    }
}

/* Encode the n queued rows and store them (items + embeddings) in one transaction. */
static gz_status flush_texts(gz_engine *e, const char *abs, pending *p, int n, float *vecs,
                             gz_texts_stats *s) {
    if (n == 0) return GZ_OK;
    int dim = gz_model_dim(e->model);
    const char **texts = malloc((size_t)n * sizeof *texts);
    if (!texts) return GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
    for (int i = 0; i < n; i++)
        texts[i] = p[i].text;
    gz_status st = gz_encode_texts(e->model, texts, n, vecs);
    free(texts);
    if (st == GZ_OK) st = gz_db_begin(e->db);
    if (st != GZ_OK) return st;
    for (int i = 0; i < n && st == GZ_OK; i++) {
        gz_item it;
        memset(&it, 0, sizeof it);
        it.kind = GZ_ITEM_TEXT;
        it.path = abs;
        it.path_len = strlen(abs);
        it.ext_id = p[i].ext_id;
        it.text = p[i].text;
        it.meta_json = p[i].meta;
        it.link_item_id = p[i].link;
        it.status = GZ_ITEM_OK;
        st = gz_db_upsert_item(e->db, &it);
        if (st == GZ_OK)
            st = gz_db_put_embedding(e->db, it.id, e->model_id, vecs + (size_t)i * dim, dim);
        if (st == GZ_OK) {
            s->added++;
            if (p[i].link) s->linked++;
        }
    }
    if (st == GZ_OK)
        st = gz_db_commit(e->db);
    else
        gz_db_rollback(e->db);
    return st;
}

/* Flush the queue and empty it (also on failure: the rows are then lost with the error). */
static gz_status flush_queue(texts_import *t) {
    gz_status st = flush_texts(t->e, t->abs, t->p, t->np, t->vecs, &t->s);
    free_pending(t->p, t->np);
    t->np = 0;
    return st;
}

/* A bad row: counted as failed and reported; the import goes on. */
static void report_row(texts_import *t, long line, const char *msg) {
    t->s.failed++;
    if (t->o->row_error) t->o->row_error(t->o->user, t->file, line, msg);
}

/* Phase 1: load and register the model, resolve the file's paths, open the reader and
 * allocate the batch. On error nothing is left open in t. */
static gz_status import_open(texts_import *t, gz_engine *e, const char *file,
                             const gz_texts_opts *o) {
    memset(t, 0, sizeof *t);
    t->e = e;
    t->o = o;
    t->file = file;
    gz_status st = gz_engine_model(e, NULL, NULL);
    if (st != GZ_OK) return st;
    if (!realpath(file, t->abs))
        return GZ_FAIL(errno == ENOENT ? GZ_ENOTFOUND : GZ_EIO, "%s: %s", file, strerror(errno));
    snprintf(t->dir_buf, sizeof t->dir_buf, "%s", t->abs);
    t->dir = dirname(t->dir_buf);
    st = gz_records_open(file, o->format, &t->r);
    if (st != GZ_OK) return st;
    t->id_field = o->id_field ? o->id_field : "id";
    t->text_field = o->text_field ? o->text_field : "text";
    t->bs = o->batch_size > 0 ? o->batch_size : GZ_DEFAULT_TEXTS_BATCH;
    int dim = gz_model_dim(e->model);
    t->p = calloc((size_t)t->bs, sizeof *t->p);
    t->vecs = malloc((size_t)t->bs * (size_t)dim * sizeof *t->vecs);
    if (!t->p || !t->vecs) return GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
    return GZ_OK;
}

/* Phase 2b: the image a row links to (image_field), as an item id in *link (0: none). An
 * image not yet embedded is indexed now. A bad link is a bad row: *skip = 1 (reported).
 * Returns a fatal (db) error only. */
static gz_status link_image(texts_import *t, long line, int64_t *link, int *skip) {
    *link = 0;
    *skip = 0;
    if (!t->o->image_field) return GZ_OK;
    const char *img = gz_records_get(t->r, t->o->image_field);
    if (!img || !*img) return GZ_OK;
    char joined[PATH_MAX * 2], ipath[PATH_MAX];
    if (img[0] == '/')
        snprintf(joined, sizeof joined, "%s", img);
    else
        snprintf(joined, sizeof joined, "%s/%s", t->dir, img);
    if (!realpath(joined, ipath)) {
        char msg[PATH_MAX + 64];
        snprintf(msg, sizeof msg, "image '%s': %s", img, strerror(errno));
        report_row(t, line, msg);
        *skip = 1;
        return GZ_OK;
    }
    gz_engine *e = t->e;
    gz_item li;
    memset(&li, 0, sizeof li);
    gz_status ls = gz_db_find_by_path(e->db, GZ_ITEM_IMAGE, ipath, strlen(ipath), NULL, &li);
    int ready = ls == GZ_OK && li.status == GZ_ITEM_OK &&
                gz_db_get_embedding(e->db, li.id, e->model_id, NULL, 0) == GZ_OK;
    if (ready) *link = li.id;
    gz_item_clear(&li);
    if (ls != GZ_OK && ls != GZ_ENOTFOUND) return ls;
    if (!ready && gz_engine_index_one(e, ipath, link) != GZ_OK) {
        char msg[GZ_RECORDS_ERR_MAX + 64];
        snprintf(msg, sizeof msg, "image '%s': %s", img, gz_last_error());
        report_row(t, line, msg);
        *skip = 1;
    }
    return GZ_OK;
}

/* 1 if the text item (file, id) already holds this text and link and is embedded. */
static int text_unchanged(texts_import *t, const char *id, const char *text, int64_t link) {
    gz_engine *e = t->e;
    gz_item old;
    memset(&old, 0, sizeof old);
    if (gz_db_find_by_path(e->db, GZ_ITEM_TEXT, t->abs, strlen(t->abs), id, &old) != GZ_OK)
        return 0;
    int same = old.text && strcmp(old.text, text) == 0 && old.link_item_id == link &&
               old.status == GZ_ITEM_OK &&
               gz_db_get_embedding(e->db, old.id, e->model_id, NULL, 0) == GZ_OK;
    gz_item_clear(&old);
    return same;
}

/* Phase 2: one record, rc as gz_records_next returned it (1 or a negative status). Bad rows
 * are reported and skipped; a good changed row is queued, and a full queue flushed. Returns
 * a fatal error only (out of memory, db, model). */
static gz_status import_row(texts_import *t, int rc, long line) {
    t->s.rows++;
    if (rc < 0) {
        report_row(t, line, gz_records_error(t->r));
        return GZ_OK;
    }
    char missing[128];
    char *text = record_text(t->r, t->text_field, missing);
    if (!text) return GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
    if (!text[0]) {
        char msg[256];
        snprintf(msg, sizeof msg, "no text: field '%s' is missing or empty",
                 missing[0] ? missing : t->text_field);
        report_row(t, line, msg);
        free(text);
        return GZ_OK;
    }
    if (!gz_utf8_valid(text)) {
        report_row(t, line, "text is not valid UTF-8");
        free(text);
        return GZ_OK;
    }
    char idbuf[32];
    const char *id = gz_records_get(t->r, t->id_field);
    if (!id || !*id) {
        snprintf(idbuf, sizeof idbuf, "line:%ld", line);
        id = idbuf;
    }
    int64_t link = 0;
    int skip = 0;
    gz_status st = link_image(t, line, &link, &skip);
    if (st != GZ_OK || skip) {
        free(text);
        return st;
    }
    if (text_unchanged(t, id, text, link)) {
        t->s.unchanged++;
        free(text);
        return GZ_OK;
    }
    gz_clear_error();
    pending *q = &t->p[t->np++]; /* counted now so that the clean-up frees it */
    q->ext_id = strdup(id);
    q->text = text;
    q->meta = gz_records_meta_json(t->r);
    q->link = link;
    if (!q->ext_id) return GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
    if (t->np == t->bs) return flush_queue(t);
    return GZ_OK;
}

/* Phase 3: flush what is queued (unless an error stopped the import), free everything and
 * hand back the stats. Returns st or the flush's error. */
static gz_status import_close(texts_import *t, gz_status st, gz_texts_stats *stats) {
    if (st == GZ_OK) st = flush_texts(t->e, t->abs, t->p, t->np, t->vecs, &t->s);
    if (t->p) free_pending(t->p, t->np);
    free(t->p);
    free(t->vecs);
    gz_records_close(t->r);
    if (stats) *stats = t->s;
    return st;
}

gz_status gz_engine_add_texts(gz_engine *e, const char *file, const gz_texts_opts *o,
                              gz_texts_stats *stats) {
    gz_texts_opts defaults = gz_texts_default_opts();
    if (!o) o = &defaults;
    if (stats) memset(stats, 0, sizeof *stats);
    texts_import t;
    gz_status st = import_open(&t, e, file, o);
    if (st != GZ_OK && !t.r) return st; /* nothing opened yet: stats stay zero */
    while (st == GZ_OK) {
        long line = 0;
        int rc = gz_records_next(t.r, &line);
        if (rc == 0) break;
        st = import_row(&t, rc, line);
    }
    return import_close(&t, st, stats);
}
