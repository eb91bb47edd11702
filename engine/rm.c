/* rm.c - `gaze rm` as a library call: remove items by id, path or folder (which need not
 * exist any more), glob, catalogue or catalogue item, in one transaction. The store deletes
 * the rows and vectors and marks them dead in the FAISS indexes (generation bumped), so
 * SQLite and FAISS stay consistent and a search never returns a removed item. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine_internal.h"
#include "gaze.h"

/* Growable list of the item ids to remove. */
typedef struct {
    int64_t *v;
    size_t n, cap;
} id_list;

static gz_status push_id(id_list *l, int64_t id) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        int64_t *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv) return GZ_FAIL(GZ_ENOMEM, "rm: out of memory");
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return GZ_OK;
}

/* Add the items of prefix (prefix_len bytes) of a kind (0 = all) that pass keep(). */
static gz_status collect(gz_db *db, int kind, const char *prefix, size_t prefix_len,
                         int (*keep)(const gz_item *, const void *), const void *arg,
                         id_list *out) {
    int64_t *ids = NULL;
    size_t n = 0;
    gz_status st = gz_db_list_items(db, kind, prefix, prefix_len, -1, &ids, &n);
    for (size_t i = 0; i < n && st == GZ_OK; i++) {
        gz_item it;
        st = gz_db_get_item(db, ids[i], &it);
        if (st == GZ_OK && keep(&it, arg)) st = push_id(out, it.id);
        gz_item_clear(&it);
    }
    free(ids);
    return st;
}

typedef struct {
    const char *path; /* the path itself */
    size_t len;
} path_arg;

/* The item at the path, or under it (the next byte is '/'). */
static int at_or_under(const gz_item *it, const void *arg) {
    const path_arg *p = arg;
    if (it->path_len == p->len) return 1;
    return it->path_len > p->len && (p->len == 1 || it->path[p->len] == '/');
}

static int exact_path(const gz_item *it, const void *arg) {
    const path_arg *p = arg;
    return it->path_len == p->len;
}

/* An image whose path (or base name, for a pattern without '/') matches the pattern. */
static int glob_match(const gz_item *it, const void *arg) {
    const char *pat = arg;
    if (strchr(pat, '/')) return fnmatch(pat, it->path, 0) == 0;
    const char *base = strrchr(it->path, '/');
    return fnmatch(pat, base ? base + 1 : it->path, 0) == 0;
}

/* The literal start of an absolute pattern (up to its first wildcard): the prefix to list. */
static size_t glob_prefix(const char *pat) {
    if (pat[0] != '/') return 0;
    return strcspn(pat, "*?[\\");
}

static gz_status select_items(gz_engine *e, const gz_rm_spec *sp, id_list *ids) {
    gz_db *db = e->db;
    const char *t = sp->target;
    switch (sp->by) {
    case GZ_RM_ID: {
        gz_item it;
        gz_status st = gz_db_get_item(db, sp->item_id, &it);
        if (st == GZ_OK) st = push_id(ids, it.id);
        gz_item_clear(&it);
        return st;
    }
    case GZ_RM_PATH: {
        if (!t || !*t) return GZ_FAIL(GZ_EINVAL, "rm: no path");
        char *abs = gz_engine_resolve_path(t);
        if (!abs) return GZ_FAIL(GZ_EIO, "%s: cannot make an absolute path", t);
        path_arg a = {abs, strlen(abs)};
        gz_status st = collect(db, 0, abs, a.len, at_or_under, &a, ids);
        free(abs);
        return st;
    }
    case GZ_RM_GLOB:
        if (!t || !*t) return GZ_FAIL(GZ_EINVAL, "rm: no pattern");
        return collect(db, GZ_ITEM_IMAGE, t, glob_prefix(t), glob_match, t, ids);
    case GZ_RM_CATALOG: {
        if (!t || !*t) return GZ_FAIL(GZ_EINVAL, "rm: no catalogue name");
        path_arg a = {t, strlen(t)};
        return collect(db, GZ_ITEM_TEXT, t, a.len, exact_path, &a, ids);
    }
    case GZ_RM_CATALOG_ITEM: {
        if (!t || !*t || !sp->ext_id || !*sp->ext_id)
            return GZ_FAIL(GZ_EINVAL, "rm: a catalogue item needs a catalogue name and an id");
        gz_item it;
        gz_status st = gz_db_find_by_path(db, GZ_ITEM_TEXT, t, strlen(t), sp->ext_id, &it);
        if (st == GZ_OK) st = push_id(ids, it.id);
        gz_item_clear(&it);
        if (st == GZ_ENOTFOUND)
            st = GZ_FAIL(GZ_ENOTFOUND, "catalogue '%s' has no item '%s'", t, sp->ext_id);
        return st;
    }
    }
    return GZ_FAIL(GZ_EINVAL, "rm: unknown selection %d", (int)sp->by);
}

static const char *what(const gz_rm_spec *sp) {
    switch (sp->by) {
    case GZ_RM_PATH: return "indexed under that path";
    case GZ_RM_GLOB: return "matches the pattern";
    case GZ_RM_CATALOG: return "in that catalogue";
    default: return "matches";
    }
}

gz_status gz_engine_remove(gz_engine *e, const gz_rm_spec *spec, int dry_run, gz_rm_stats *stats) {
    gz_rm_stats s = {0};
    if (stats) *stats = s;
    if (!spec) return GZ_FAIL(GZ_EINVAL, "rm: no selection");
    id_list ids = {0};
    int own = !dry_run && !gz_db_in_batch(e->db);
    /* select inside the write transaction, so nothing added meanwhile is missed or half-seen */
    gz_status st = own ? gz_db_begin(e->db) : GZ_OK;
    if (st != GZ_OK) return st;
    st = select_items(e, spec, &ids);
    if (st == GZ_OK && ids.n == 0)
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: no item %s", spec->target ? spec->target : "?", what(spec));
    for (size_t i = 0; i < ids.n && st == GZ_OK; i++) {
        gz_item it;
        st = gz_db_get_item(e->db, ids.v[i], &it);
        if (st == GZ_OK) {
            if (it.kind == GZ_ITEM_TEXT)
                s.texts++;
            else
                s.images++;
        }
        gz_item_clear(&it);
        if (st == GZ_OK && !dry_run) st = gz_db_remove_item(e->db, ids.v[i]);
    }
    free(ids.v);
    if (own) {
        if (st == GZ_OK) {
            st = gz_db_commit(e->db);
        } else {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", gz_last_error());
            gz_db_rollback(e->db);
            st = GZ_FAIL(st, "%s", msg);
        }
    }
    if (st == GZ_OK && stats) *stats = s;
    return st;
}
