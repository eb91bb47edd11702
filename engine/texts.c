/* texts.c - `gaze add-texts` as a library call: import the captions / product records of a
 * record file (records.c) as the items of a catalogue (items.c), optionally linked to image
 * items, and embed them.
 *
 * One import runs in phases: open (model, paths, reader, buffers), one row at a time (id,
 * duplicate check, text fields, image path, queue), a batch put (gz_engine_put_items: encode +
 * one transaction) each time the queue is full, a final put, and with sync the removal of
 * the catalogue's items that are no longer in the file. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/error.h"
#include "core/fileio.h"
#include "engine/engine_internal.h"
#include "gaze.h"

#define TEXT_FIELDS_MAX 32 /* fields a --text-field list may join */

gz_texts_opts gz_texts_default_opts(void) {
    gz_texts_opts o;
    memset(&o, 0, sizeof o);
    o.id_field = "id";
    o.text_field = "text";
    o.batch_size = GZ_DEFAULT_TEXTS_BATCH;
    return o;
}

/* A row waiting for its batch; strings owned. */
typedef struct {
    long line;
    char *ext_id, *text, *meta, *image;
} pending;

/* The ids seen in the file (open addressing on XXH3, NULL key = empty): duplicates and sync. */
typedef struct {
    char **keys;
    long *lines;
    size_t cap, n;
} id_set;

/* One import in progress. */
typedef struct {
    gz_engine *e;
    const gz_texts_opts *o;
    const char *file;       /* as given: row messages name it */
    char abs[PATH_MAX];     /* absolute path: the default catalogue name */
    char dir_buf[PATH_MAX]; /* storage of dir */
    const char *dir;        /* the file's folder: linked image paths are relative to it */
    const char *catalog;
    const char *id_field; /* resolved defaults */
    const char *text_field;
    gz_records *r;
    pending *p; /* (bs) queued rows, np of them */
    int np, bs;
    gz_catalog_item *items; /* (bs) */
    gz_put_result *res;     /* (bs) */
    id_set seen;
    long unreadable;  /* rows whose id is unknown (malformed) */
    int named_fields; /* 1 once a missing-id message listed the file's fields */
    gz_texts_stats s;
} texts_import;

/* Find id in the set: its slot (key NULL when absent). */
static size_t set_slot(const id_set *set, const char *id) {
    size_t mask = set->cap - 1, i = (size_t)XXH3_64bits(id, strlen(id)) & mask;
    while (set->keys[i] && strcmp(set->keys[i], id) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Add id seen at line; *first_line = the line it was first seen at when it is a duplicate
 * (0 when new). */
static gz_status set_add(id_set *set, const char *id, long line, long *first_line) {
    *first_line = 0;
    if ((set->n + 1) * 2 > set->cap) {
        size_t ncap = set->cap ? set->cap * 2 : 1024;
        id_set big = {calloc(ncap, sizeof(char *)), calloc(ncap, sizeof(long)), ncap, set->n};
        if (!big.keys || !big.lines) {
            free(big.keys);
            free(big.lines);
            return GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
        }
        for (size_t i = 0; i < set->cap; i++)
            if (set->keys[i]) {
                size_t j = set_slot(&big, set->keys[i]);
                big.keys[j] = set->keys[i];
                big.lines[j] = set->lines[i];
            }
        free(set->keys);
        free(set->lines);
        *set = big;
    }
    size_t i = set_slot(set, id);
    if (set->keys[i]) {
        *first_line = set->lines[i];
        return GZ_OK;
    }
    if (!(set->keys[i] = strdup(id))) return GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
    set->lines[i] = line;
    set->n++;
    return GZ_OK;
}

static int set_has(const id_set *set, const char *id) {
    return set->cap && set->keys[set_slot(set, id)] != NULL;
}

static void set_free(id_set *set) {
    for (size_t i = 0; i < set->cap; i++)
        free(set->keys[i]);
    free(set->keys);
    free(set->lines);
    memset(set, 0, sizeof *set);
}

static void free_pending(pending *p, int n) {
    for (int i = 0; i < n; i++) {
        free(p[i].ext_id);
        free(p[i].text);
        free(p[i].meta);
        free(p[i].image);
    }
}

/* A bad row: counted as failed and reported; the import goes on. */
static void report_row(texts_import *t, long line, const char *msg) {
    t->s.failed++;
    if (t->o->row_error) t->o->row_error(t->o->user, t->file, line, msg);
}

/* Put the queued rows (one transaction) and count their outcomes; empties the queue. */
static gz_status flush_queue(texts_import *t) {
    if (t->np == 0) return GZ_OK;
    for (int i = 0; i < t->np; i++) {
        pending *q = &t->p[i];
        t->items[i] = (gz_catalog_item){.catalog = t->catalog,
                                        .ext_id = q->ext_id,
                                        .text = q->text,
                                        .image = q->image,
                                        .meta_json = q->meta};
    }
    gz_status st = gz_engine_put_items(t->e, t->items, t->np, t->res);
    for (int i = 0; i < t->np && st == GZ_OK; i++) {
        const gz_put_result *r = &t->res[i];
        switch (r->outcome) {
        case GZ_PUT_ADDED: t->s.added++; break;
        case GZ_PUT_UPDATED: t->s.updated++; break;
        case GZ_PUT_UNCHANGED: t->s.unchanged++; break;
        case GZ_PUT_FAILED: report_row(t, t->p[i].line, r->error); continue;
        }
        if (r->image_item_id) t->s.linked++;
        if (r->image_failed) {
            t->s.image_failed++;
            char msg[GZ_PUT_ERROR_MAX + 64];
            snprintf(msg, sizeof msg, "%s; the text is imported without it", r->error);
            if (t->o->row_warning) t->o->row_warning(t->o->user, t->file, t->p[i].line, msg);
        }
    }
    free_pending(t->p, t->np);
    t->np = 0;
    return st;
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
    if (o->catalog && !o->catalog[0]) return GZ_FAIL(GZ_EINVAL, "add-texts: empty catalogue name");
    t->catalog = o->catalog ? o->catalog : t->abs;
    snprintf(t->s.catalog, sizeof t->s.catalog, "%s", t->catalog);
    snprintf(t->dir_buf, sizeof t->dir_buf, "%s", t->abs);
    t->dir = dirname(t->dir_buf);
    st = gz_records_open(file, o->format, &t->r);
    if (st != GZ_OK) return st;
    t->id_field = o->id_field ? o->id_field : "id";
    t->text_field = o->text_field ? o->text_field : "text";
    t->bs = o->batch_size > 0 ? o->batch_size : GZ_DEFAULT_TEXTS_BATCH;
    t->p = calloc((size_t)t->bs, sizeof *t->p);
    t->items = calloc((size_t)t->bs, sizeof *t->items);
    t->res = calloc((size_t)t->bs, sizeof *t->res);
    if (!t->p || !t->items || !t->res) return GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
    return GZ_OK;
}

/* The text of a record: the named fields (comma-separated list) joined with ". ". The first
 * absent or empty field's name goes to missing (missing[0] = 0 if none). */
static char *record_text(gz_records *r, const char *fields, char missing[128]) {
    const char *parts[TEXT_FIELDS_MAX];
    int n = 0;
    missing[0] = '\0';
    for (const char *f = fields; *f && n < TEXT_FIELDS_MAX;) {
        const char *c = strchr(f, ',');
        size_t fl = c ? (size_t)(c - f) : strlen(f);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(fl < 127 ? fl : 127), f);
        const char *v = gz_records_get(r, name);
        if (v && *v)
            parts[n++] = v;
        else if (!missing[0])
            snprintf(missing, 128, "%s", name);
        f += fl;
        if (*f == ',') f++;
    }
    return gz_engine_join_text(parts, n);
}

/* The row's id, or NULL after reporting the row (the first report names the file's fields). */
static const char *row_id(texts_import *t, long line) {
    const char *id = gz_records_get(t->r, t->id_field);
    if (id && *id) return id;
    char msg[1024], fields[512];
    if (!t->named_fields) {
        gz_records_field_names(t->r, fields, sizeof fields);
        snprintf(msg, sizeof msg,
                 "no '%s' field: every row needs an id (this row has the fields: %s; pick one "
                 "with --id-field)",
                 t->id_field, fields[0] ? fields : "none");
        t->named_fields = 1;
    } else {
        snprintf(msg, sizeof msg, "no '%s' field", t->id_field);
    }
    report_row(t, line, msg);
    return NULL;
}

/* Phase 2: one record, rc as gz_records_next returned it (1 or a negative status). Bad rows
 * are reported and skipped; a good row is queued, and a full queue put. Returns a fatal
 * error only (out of memory, db, model). */
static gz_status import_row(texts_import *t, int rc, long line) {
    t->s.rows++;
    if (rc < 0) {
        t->unreadable++;
        report_row(t, line, gz_records_error(t->r));
        return GZ_OK;
    }
    const char *id = row_id(t, line);
    if (!id) return GZ_OK;
    long first = 0;
    gz_status st = set_add(&t->seen, id, line, &first);
    if (st != GZ_OK) return st;
    if (first) {
        char msg[512];
        snprintf(msg, sizeof msg, "duplicate id '%.200s' (first at line %ld, which is kept)", id,
                 first);
        report_row(t, line, msg);
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
    pending *q = &t->p[t->np++]; /* counted now so that the clean-up frees it */
    memset(q, 0, sizeof *q);
    q->line = line;
    q->text = text;
    q->ext_id = strdup(id);
    q->meta = gz_records_meta_json(t->r);
    const char *img = t->o->image_field ? gz_records_get(t->r, t->o->image_field) : NULL;
    if (img && *img) q->image = gz_path_join(t->dir, img);
    if (!q->ext_id || (img && *img && !q->image))
        return GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
    if (q->image && !t->o->allow_outside && !gz_path_resolves_inside(t->dir, q->image)) {
        t->s.image_failed++;
        if (t->o->row_warning) {
            char msg[PATH_MAX + 160];
            snprintf(msg, sizeof msg,
                     "image '%s' is outside the catalogue's folder (allowed with "
                     "--allow-outside); the text is imported without it",
                     img);
            t->o->row_warning(t->o->user, t->file, line, msg);
        }
        free(q->image);
        q->image = NULL;
    }
    if (t->np == t->bs) return flush_queue(t);
    return GZ_OK;
}

/* Phase 3b (sync): remove the catalogue's items whose id was not in the file, in one
 * transaction. */
static gz_status sync_catalog(texts_import *t) {
    if (t->unreadable) {
        t->s.sync_skipped = 1;
        return GZ_OK;
    }
    gz_engine *e = t->e;
    gz_db *db = gz_engine_db(e);
    int64_t *ids = NULL;
    size_t n = 0;
    size_t cl = strlen(t->catalog);
    gz_status st = gz_db_list_items(db, GZ_ITEM_TEXT, t->catalog, cl, -1, &ids, &n);
    if (st == GZ_OK) st = gz_engine_begin(e);
    if (st != GZ_OK) {
        free(ids);
        return st;
    }
    for (size_t i = 0; i < n && st == GZ_OK; i++) {
        gz_item it;
        st = gz_db_get_item(db, ids[i], &it);
        if (st == GZ_OK && it.path_len == cl && !set_has(&t->seen, it.ext_id ? it.ext_id : "")) {
            gz_rm_spec rm = {.by = GZ_RM_ID, .item_id = it.id};
            st = gz_engine_remove(e, &rm, 0, NULL);
            if (st == GZ_OK) t->s.removed++;
        }
        gz_item_clear(&it);
    }
    free(ids);
    if (st == GZ_OK) return gz_engine_commit(e);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", gz_last_error());
    gz_engine_rollback(e);
    t->s.removed = 0;
    return GZ_FAIL(st, "%s", msg);
}

/* Phase 3: put what is queued (unless an error stopped the import), sync, free everything
 * and hand back the stats. Returns st or the first error of these steps. */
static gz_status import_close(texts_import *t, gz_status st, gz_texts_stats *stats) {
    if (st == GZ_OK) st = flush_queue(t);
    if (st == GZ_OK && t->o->sync) st = sync_catalog(t);
    if (t->p) free_pending(t->p, t->np);
    free(t->p);
    free(t->items);
    free(t->res);
    set_free(&t->seen);
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
    if (st != GZ_OK && !t.r) { /* nothing read yet: stats stay zero */
        free(t.p);
        free(t.items);
        free(t.res);
        return st;
    }
    while (st == GZ_OK) {
        long line = 0;
        int rc = gz_records_next(t.r, &line);
        if (rc == 0) break;
        st = import_row(&t, rc, line);
    }
    return import_close(&t, st, stats);
}
