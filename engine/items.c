/* items.c - catalogue items as a library call: add or update text items keyed by (catalogue,
 * external id), linked to an optional image, encoded together and stored in one transaction;
 * and the engine's batches (begin / commit / rollback) that group puts and removals.
 *
 * A put runs in three passes over the items: check each (id, text, duplicates, image link,
 * unchanged?), encode the texts that changed in forward passes of GZ_DEFAULT_TEXTS_BATCH,
 * and write. The catalogue name is stored as the text items' path. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine_internal.h"
#include "gaze.h"

gz_status gz_engine_begin(gz_engine *e) { return gz_db_begin(e->db); }
gz_status gz_engine_commit(gz_engine *e) { return gz_db_commit(e->db); }
gz_status gz_engine_rollback(gz_engine *e) { return gz_db_rollback(e->db); }

/* What the check pass decided for one item. */
typedef struct {
    char *text;      /* owned: the text to store (joined parts or a copy) */
    int64_t link;    /* linked image item, 0 = none */
    int64_t old_id;  /* existing item, 0 = new */
    int need_encode; /* 1: text new or changed (or not yet embedded for this model) */
    int need_write;  /* 1: row must be written (new, changed text, link or fields) */
} put_plan;

static void put_error(gz_put_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_error(gz_put_result *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

/* item->text, or its non-empty parts joined with ". "; malloc'd ("" when there is none),
 * NULL when out of memory. */
static char *item_text(const gz_catalog_item *it) {
    if (it->text) return strdup(it->text);
    size_t len = 1;
    for (int i = 0; i < it->n_text_parts; i++)
        if (it->text_parts[i] && it->text_parts[i][0]) len += strlen(it->text_parts[i]) + 2;
    char *out = malloc(len);
    if (!out) return NULL;
    size_t n = 0;
    for (int i = 0; i < it->n_text_parts; i++) {
        const char *p = it->text_parts[i];
        if (!p || !p[0]) continue;
        if (n) memcpy(out + n, ". ", 2), n += 2;
        size_t pl = strlen(p);
        memcpy(out + n, p, pl);
        n += pl;
    }
    out[n] = '\0';
    return out;
}

static int same_str(const char *a, const char *b) {
    if (!a || !*a) return !b || !*b;
    return b && strcmp(a, b) == 0;
}

/* Order of item indices by (catalog, ext_id), to find an id given twice in one call. */
typedef struct {
    const gz_catalog_item *items;
    int i;
} key_ref;

static int cmp_key(const void *a, const void *b) {
    const key_ref *x = a, *y = b;
    const gz_catalog_item *p = &x->items[x->i], *q = &y->items[y->i];
    int c = strcmp(p->catalog, q->catalog);
    if (!c) c = strcmp(p->ext_id, q->ext_id);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Mark as failed every item whose (catalog, ext_id) an earlier item of the call has. */
static gz_status mark_duplicates(const gz_catalog_item *items, int n, gz_put_result *res) {
    key_ref *k = malloc((size_t)n * sizeof *k);
    if (!k) return GZ_FAIL(GZ_ENOMEM, "put items: out of memory");
    int m = 0;
    for (int i = 0; i < n; i++)
        if (res[i].outcome != GZ_PUT_FAILED) k[m].items = items, k[m++].i = i;
    qsort(k, (size_t)m, sizeof *k, cmp_key);
    for (int a = 1; a < m; a++) {
        const gz_catalog_item *p = &items[k[a - 1].i], *q = &items[k[a].i];
        if (strcmp(p->catalog, q->catalog) || strcmp(p->ext_id, q->ext_id)) continue;
        int first = k[a - 1].i;
        while (a < m && !strcmp(items[k[a].i].catalog, p->catalog) &&
               !strcmp(items[k[a].i].ext_id, p->ext_id)) {
            res[k[a].i].outcome = GZ_PUT_FAILED;
            put_error(&res[k[a].i], "duplicate id '%s' (item %d has it; the first one is kept)",
                      p->ext_id, first + 1);
            a++;
        }
    }
    free(k);
    return GZ_OK;
}

/* The image item for path (indexed now if it is not yet, or not embedded for the model).
 * A path that cannot be linked sets r->image_failed and the message; returns a fatal error
 * only. */
static gz_status link_image(gz_engine *e, const char *path, int64_t *link, gz_put_result *r) {
    *link = 0;
    char abs[PATH_MAX];
    if (!realpath(path, abs)) {
        r->image_failed = 1;
        put_error(r, "image '%s': %s", path, strerror(errno));
        return GZ_OK;
    }
    gz_item li;
    memset(&li, 0, sizeof li);
    gz_status ls = gz_db_find_by_path(e->db, GZ_ITEM_IMAGE, abs, strlen(abs), NULL, &li);
    int ready = ls == GZ_OK && li.status == GZ_ITEM_OK &&
                gz_db_get_embedding(e->db, li.id, e->model_id, NULL, 0) == GZ_OK;
    if (ready) *link = li.id;
    gz_item_clear(&li);
    if (ls != GZ_OK && ls != GZ_ENOTFOUND) return ls;
    gz_clear_error();
    if (ready) return GZ_OK;
    gz_status st = gz_engine_index_one(e, abs, link);
    if (st == GZ_OK) return GZ_OK;
    /* the file's own problems come back as EINVAL / ENOTFOUND / EUNSUPPORTED (the image item
       records them); the database's or memory's are fatal for the whole call */
    if (st == GZ_ENOMEM || st == GZ_EIO || st == GZ_ECORRUPT) return st;
    *link = 0;
    r->image_failed = 1;
    put_error(r, "image '%s': %s", path, gz_last_error());
    gz_clear_error();
    return GZ_OK;
}

/* Pass 1 for item i: validate, link its image, compare with the stored item. */
static gz_status plan_item(const gz_catalog_item *it, put_plan *p, gz_put_result *r) {
    if (!it->catalog || !it->catalog[0]) {
        r->outcome = GZ_PUT_FAILED;
        put_error(r, "no catalogue name");
        return GZ_OK;
    }
    if (!it->ext_id || !it->ext_id[0]) {
        r->outcome = GZ_PUT_FAILED;
        put_error(r, "no id");
        return GZ_OK;
    }
    p->text = item_text(it);
    if (!p->text) return GZ_FAIL(GZ_ENOMEM, "put items: out of memory");
    if (!p->text[0]) {
        r->outcome = GZ_PUT_FAILED;
        put_error(r, "no text");
        return GZ_OK;
    }
    if (!gz_utf8_valid(p->text)) {
        r->outcome = GZ_PUT_FAILED;
        put_error(r, "text is not valid UTF-8");
        return GZ_OK;
    }
    return GZ_OK;
}

/* Pass 1b, after duplicates are known: the image link and the stored item. */
static gz_status plan_store(gz_engine *e, const gz_catalog_item *it, put_plan *p,
                            gz_put_result *r) {
    gz_status st = GZ_OK;
    if (it->image && it->image[0]) st = link_image(e, it->image, &p->link, r);
    if (st != GZ_OK) return st;
    r->image_item_id = p->link;
    gz_item old;
    memset(&old, 0, sizeof old);
    st =
        gz_db_find_by_path(e->db, GZ_ITEM_TEXT, it->catalog, strlen(it->catalog), it->ext_id, &old);
    if (st == GZ_ENOTFOUND) {
        gz_clear_error();
        p->need_encode = p->need_write = 1;
        r->outcome = GZ_PUT_ADDED;
        return GZ_OK;
    }
    if (st != GZ_OK) return st;
    p->old_id = old.id;
    int same_text = old.text && strcmp(old.text, p->text) == 0;
    int embedded = gz_db_get_embedding(e->db, old.id, e->model_id, NULL, 0) == GZ_OK;
    gz_clear_error();
    p->need_encode = !same_text || !embedded;
    p->need_write = p->need_encode || old.link_item_id != p->link || old.status != GZ_ITEM_OK ||
                    !same_str(old.meta_json, it->meta_json);
    r->outcome = p->need_write ? GZ_PUT_UPDATED : GZ_PUT_UNCHANGED;
    r->item_id = old.id;
    gz_item_clear(&old);
    return GZ_OK;
}

/* Pass 3 for one item: the row and (vec != NULL) its vector. */
static gz_status write_item(gz_engine *e, const gz_catalog_item *it, const put_plan *p,
                            const float *vec, gz_put_result *r) {
    gz_item row;
    memset(&row, 0, sizeof row);
    row.id = p->old_id;
    row.kind = GZ_ITEM_TEXT;
    row.path = it->catalog;
    row.path_len = strlen(it->catalog);
    row.ext_id = it->ext_id;
    row.text = p->text;
    row.meta_json = it->meta_json;
    row.link_item_id = p->link;
    row.status = GZ_ITEM_OK;
    gz_status st = gz_db_upsert_item(e->db, &row);
    if (st == GZ_OK && vec)
        st = gz_db_put_embedding(e->db, row.id, e->model_id, vec, gz_model_dim(e->model));
    if (st == GZ_OK) r->item_id = row.id;
    return st;
}

/* Passes 2 and 3: encode the changed texts in forward passes and write every row. */
static gz_status encode_and_write(gz_engine *e, const gz_catalog_item *items, int n,
                                  put_plan *plans, gz_put_result *res) {
    int dim = gz_model_dim(e->model);
    int bs = GZ_DEFAULT_TEXTS_BATCH;
    float *vecs = malloc((size_t)bs * (size_t)dim * sizeof *vecs);
    const char **texts = malloc((size_t)bs * sizeof *texts);
    int *idx = malloc((size_t)bs * sizeof *idx);
    gz_status st = vecs && texts && idx ? GZ_OK : GZ_FAIL(GZ_ENOMEM, "put items: out of memory");
    int i = 0;
    while (st == GZ_OK && i < n) {
        int m = 0;
        for (; i < n && m < bs; i++) {
            if (res[i].outcome == GZ_PUT_FAILED || !plans[i].need_write) continue;
            if (!plans[i].need_encode) {
                st = write_item(e, &items[i], &plans[i], NULL, &res[i]);
                if (st != GZ_OK) break;
                continue;
            }
            texts[m] = plans[i].text;
            idx[m++] = i;
        }
        if (st == GZ_OK && m) st = gz_encode_texts(e->model, texts, m, vecs);
        for (int k = 0; k < m && st == GZ_OK; k++)
            st =
                write_item(e, &items[idx[k]], &plans[idx[k]], vecs + (size_t)k * dim, &res[idx[k]]);
    }
    free(vecs);
    free(texts);
    free(idx);
    return st;
}

gz_status gz_engine_put_items(gz_engine *e, const gz_catalog_item *items, int n,
                              gz_put_result *results) {
    if (n < 0 || (n > 0 && (!items || !results)))
        return GZ_FAIL(GZ_EINVAL, "put items: bad arguments");
    if (n == 0) return GZ_OK;
    memset(results, 0, (size_t)n * sizeof *results);
    gz_status st = gz_engine_model(e, NULL, NULL);
    if (st != GZ_OK) return st;
    put_plan *plans = calloc((size_t)n, sizeof *plans);
    if (!plans) return GZ_FAIL(GZ_ENOMEM, "put items: out of memory");
    int own = !gz_db_in_batch(e->db);
    if (own) st = gz_db_begin(e->db);
    for (int i = 0; i < n && st == GZ_OK; i++)
        st = plan_item(&items[i], &plans[i], &results[i]);
    if (st == GZ_OK) st = mark_duplicates(items, n, results);
    for (int i = 0; i < n && st == GZ_OK; i++)
        if (results[i].outcome != GZ_PUT_FAILED)
            st = plan_store(e, &items[i], &plans[i], &results[i]);
    if (st == GZ_OK) st = encode_and_write(e, items, n, plans, results);
    if (st == GZ_OK && own) st = gz_db_commit(e->db);
    if (st != GZ_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", gz_last_error());
        if (gz_db_in_batch(e->db)) gz_db_rollback(e->db);
        for (int i = 0; i < n; i++)
            if (results[i].outcome != GZ_PUT_FAILED) results[i].item_id = 0;
        st = GZ_FAIL(st, "%s", msg);
    }
    for (int i = 0; i < n; i++)
        free(plans[i].text);
    free(plans);
    return st;
}
