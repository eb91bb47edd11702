/* dups.c - `gaze dups` as a library call: group the database's images into exact duplicates
 * (same content hash) and near duplicates (cosine of the current model's vectors at or above
 * a threshold, found with the FAISS index), as connected components of those links. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine_internal.h"
#include "gaze.h"

/* Union-find over the image indexes 0..n-1, with the lowest link score of each component
 * kept at its root. */
typedef struct {
    size_t *parent;
    float *min_score;
} components;

static size_t find_root(components *c, size_t i) {
    while (c->parent[i] != i) {
        c->parent[i] = c->parent[c->parent[i]]; /* path halving */
        i = c->parent[i];
    }
    return i;
}

static void join(components *c, size_t a, size_t b, float score) {
    size_t ra = find_root(c, a), rb = find_root(c, b);
    if (ra == rb) return;
    if (rb < ra) { /* the lower index stays root: deterministic */
        size_t t = ra;
        ra = rb;
        rb = t;
    }
    c->parent[rb] = ra;
    float m = c->min_score[ra] < c->min_score[rb] ? c->min_score[ra] : c->min_score[rb];
    c->min_score[ra] = score < m ? score : m;
}

static int cmp_path(const gz_dup_member *a, const gz_dup_member *b) {
    size_t n = a->path_len < b->path_len ? a->path_len : b->path_len;
    int c = memcmp(a->path, b->path, n);
    if (c) return c;
    return (a->path_len > b->path_len) - (a->path_len < b->path_len);
}

/* Largest first: the copy a user most likely keeps (full size, least recompressed). */
static int cmp_member(const void *pa, const void *pb) {
    const gz_dup_member *a = pa, *b = pb;
    if (a->size != b->size) return a->size > b->size ? -1 : 1;
    return cmp_path(a, b);
}

static int cmp_group(const void *pa, const void *pb) {
    const gz_dup_group *a = pa, *b = pb;
    if (a->reclaimable_bytes != b->reclaimable_bytes)
        return a->reclaimable_bytes > b->reclaimable_bytes ? -1 : 1;
    if (a->n != b->n) return a->n > b->n ? -1 : 1;
    return cmp_path(&a->members[0], &b->members[0]);
}

/* Index of item_id in the ascending ids, or n when absent. */
static size_t index_of(const int64_t *ids, size_t n, int64_t item_id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < item_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo] == item_id ? lo : n;
}

typedef struct {
    uint64_t hash;
    size_t index;
} hash_index;

static int cmp_hash(const void *pa, const void *pb) {
    const hash_index *a = pa, *b = pb;
    return (a->hash > b->hash) - (a->hash < b->hash);
}

/* Link the images that share a (known) content hash. */
static gz_status join_exact(const gz_dup_member *all, size_t n, components *c) {
    hash_index *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return GZ_FAIL(GZ_ENOMEM, "dups: out of memory");
    for (size_t i = 0; i < n; i++)
        order[i] = (hash_index){all[i].content_hash, i};
    qsort(order, n, sizeof *order, cmp_hash);
    for (size_t i = 1; i < n; i++)
        if (order[i].hash && order[i].hash == order[i - 1].hash)
            join(c, order[i - 1].index, order[i].index, 1.0f);
    free(order);
    return GZ_OK;
}

/* Link each image to its nearest neighbours with cosine >= threshold. */
static gz_status join_near(gz_engine *e, const int64_t *ids, size_t n, float threshold,
                           components *c, gz_dup_groups *out) {
    gz_db_model model;
    gz_status st = gz_db_default_model(e->db, &model);
    if (st == GZ_ENOTFOUND) { /* no model: nothing was embedded, exact matching only */
        gz_clear_error();
        out->n_without_vector = (int64_t)n;
        return GZ_OK;
    }
    if (st != GZ_OK) return st;
    out->model_id = model.id;
    float *vec = malloc((size_t)model.dim * sizeof *vec);
    gz_hit *hits = malloc(GZ_DUPS_NEIGHBOURS * sizeof *hits);
    if (!vec || !hits) st = GZ_FAIL(GZ_ENOMEM, "dups: out of memory");
    for (size_t i = 0; i < n && st == GZ_OK; i++) {
        st = gz_db_get_embedding(e->db, ids[i], model.id, vec, model.dim);
        if (st == GZ_ENOTFOUND) {
            gz_clear_error();
            out->n_without_vector++;
            st = GZ_OK;
            continue;
        }
        int n_hits = 0;
        if (st == GZ_OK)
            st = gz_db_search(e->db, model.id, GZ_ITEM_IMAGE, vec, model.dim, GZ_DUPS_NEIGHBOURS,
                              threshold, hits, &n_hits);
        for (int h = 0; h < n_hits && st == GZ_OK; h++) {
            size_t j = index_of(ids, n, hits[h].item_id);
            if (j < n && j != i) join(c, i, j, hits[h].score);
        }
    }
    free(vec);
    free(hits);
    return st;
}

/* The components of two or more images, as groups, sorted. Takes the members' paths. */
static gz_status make_groups(gz_dup_member *all, size_t n, components *c, gz_dup_groups *out) {
    size_t *count = calloc(n ? n : 1, sizeof *count);
    size_t *slot = malloc((n ? n : 1) * sizeof *slot); /* root -> group index */
    if (!count || !slot) {
        free(count);
        free(slot);
        return GZ_FAIL(GZ_ENOMEM, "dups: out of memory");
    }
    size_t n_groups = 0;
    for (size_t i = 0; i < n; i++)
        count[find_root(c, i)]++;
    for (size_t i = 0; i < n; i++)
        if (count[i] >= 2) slot[i] = n_groups++;
    gz_status st = GZ_OK;
    if (n_groups) {
        out->v = calloc(n_groups, sizeof *out->v);
        if (!out->v) st = GZ_FAIL(GZ_ENOMEM, "dups: out of memory");
    }
    for (size_t i = 0; i < n && st == GZ_OK; i++) {
        if (count[i] < 2) continue;
        gz_dup_group *g = &out->v[slot[i]];
        g->members = calloc(count[i], sizeof *g->members);
        if (!g->members) st = GZ_FAIL(GZ_ENOMEM, "dups: out of memory");
        g->exact = 1;
        g->min_score = c->min_score[i];
        out->n++;
    }
    for (size_t i = 0; i < n && st == GZ_OK; i++) {
        size_t r = find_root(c, i);
        if (count[r] < 2) continue;
        gz_dup_group *g = &out->v[slot[r]];
        g->members[g->n] = all[i];
        all[i].path = NULL; /* now owned by the group */
        if (g->n && (all[i].content_hash == 0 || all[i].content_hash != g->members[0].content_hash))
            g->exact = 0;
        g->total_bytes += all[i].size;
        g->n++;
    }
    for (int k = 0; k < out->n && st == GZ_OK; k++) {
        gz_dup_group *g = &out->v[k];
        if (g->exact) g->min_score = 1.0f;
        qsort(g->members, (size_t)g->n, sizeof *g->members, cmp_member);
        g->reclaimable_bytes = g->total_bytes - g->members[0].size;
    }
    if (st == GZ_OK && out->n > 1) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_group);
    free(count);
    free(slot);
    return st;
}

gz_status gz_engine_dups(gz_engine *e, float threshold, gz_dup_groups *out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "dups: no output");
    memset(out, 0, sizeof *out);
    if (!e) return GZ_FAIL(GZ_EINVAL, "dups: no engine");
    if (isnan(threshold) || threshold < -1.0f)
        return GZ_FAIL(GZ_EINVAL,
                       "dups: threshold %g is not a cosine in [-1, 1] (or > 1 for "
                       "exact duplicates only)",
                       (double)threshold);
    int64_t *ids = NULL;
    size_t n = 0;
    gz_status st = gz_db_list_items(e->db, GZ_ITEM_IMAGE, NULL, 0, GZ_ITEM_OK, &ids, &n);
    if (st != GZ_OK) return st;
    gz_dup_member *all = calloc(n ? n : 1, sizeof *all);
    components c = {malloc((n ? n : 1) * sizeof *c.parent),
                    malloc((n ? n : 1) * sizeof *c.min_score)};
    if (!all || !c.parent || !c.min_score) st = GZ_FAIL(GZ_ENOMEM, "dups: out of memory");
    for (size_t i = 0; i < n && st == GZ_OK; i++) {
        gz_item it;
        st = gz_db_get_item(e->db, ids[i], &it);
        if (st == GZ_OK) {
            all[i] = (gz_dup_member){.item_id = it.id,
                                     .path = malloc(it.path_len + 1),
                                     .path_len = it.path_len,
                                     .size = it.size,
                                     .content_hash = it.content_hash};
            if (all[i].path) {
                memcpy(all[i].path, it.path, it.path_len);
                all[i].path[it.path_len] = '\0';
            } else {
                st = GZ_FAIL(GZ_ENOMEM, "dups: out of memory");
            }
        }
        gz_item_clear(&it);
        c.parent[i] = i;
        c.min_score[i] = 1.0f;
    }
    out->n_images = (int64_t)n;
    if (st == GZ_OK) st = join_exact(all, n, &c);
    if (st == GZ_OK && threshold <= 1.0f) st = join_near(e, ids, n, threshold, &c, out);
    if (st == GZ_OK) st = make_groups(all, n, &c, out);
    for (size_t i = 0; all && i < n; i++)
        free(all[i].path);
    free(all);
    free(c.parent);
    free(c.min_score);
    free(ids);
    if (st != GZ_OK) gz_dup_groups_free(out);
    return st;
}

void gz_dup_groups_free(gz_dup_groups *g) {
    if (!g) return;
    for (int k = 0; k < g->n; k++) {
        for (int i = 0; i < g->v[k].n; i++)
            free(g->v[k].members[i].path);
        free(g->v[k].members);
    }
    /* groups allocated but not yet counted (an error while making them) hold no paths */
    free(g->v);
    memset(g, 0, sizeof *g);
}
