/* test_engine_dups.c - gz_engine_dups on hand-made items and vectors (no model weights):
 * exact groups by content hash, near groups by cosine at a threshold with a chain joined
 * through its middle (union-find), items without a vector matched exactly only, missing
 * items left out, sizes and the order of groups and members, a database without any model,
 * and bad thresholds. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gaze.h"
#include "testutil.h"

static int checks = 0;
#define T(cond) CHECK_COUNTED(checks, cond)

enum { DIM = 4 };

/* Store an image item; vec NULL = no embedding. Returns its id. */
static int64_t put(gz_db *db, int64_t model_id, const char *path, int64_t size, uint64_t hash,
                   gz_item_status status, const float *vec) {
    gz_item it = {.kind = GZ_ITEM_IMAGE,
                  .path = path,
                  .path_len = strlen(path),
                  .size = size,
                  .content_hash = hash,
                  .status = GZ_ITEM_OK};
    CHECK_OK(gz_db_upsert_item(db, &it));
    if (vec && model_id) CHECK_OK(gz_db_put_embedding(db, it.id, model_id, vec, DIM));
    if (status == GZ_ITEM_MISSING) CHECK_OK(gz_db_mark_missing(db, it.id));
    return it.id;
}

/* The group holding path, or NULL. */
static const gz_dup_group *group_of(const gz_dup_groups *g, const char *path) {
    for (int k = 0; k < g->n; k++)
        for (int i = 0; i < g->v[k].n; i++)
            if (strcmp(g->v[k].members[i].path, path) == 0) return &g->v[k];
    return NULL;
}

/* A unit vector at angle a (radians) in the plane of the first two axes. */
static void at_angle(float *v, double a) {
    v[0] = (float)cos(a);
    v[1] = (float)sin(a);
    v[2] = v[3] = 0;
}

static void test_no_model(const char *dir) {
    char db_path[2048];
    snprintf(db_path, sizeof db_path, "%s/nomodel.db", dir);
    gz_engine_params ep = gz_engine_default_params();
    ep.db_path = db_path;
    gz_engine *e = NULL;
    CHECK_OK(gz_engine_open(&ep, &e));
    checks++;
    if (!e) return;
    gz_dup_groups g;
    CHECK_OK(gz_engine_dups(e, 0.9f, &g));
    checks++;
    T(g.n == 0 && g.n_images == 0 && g.model_id == 0);
    gz_dup_groups_free(&g);
    put(gz_engine_db(e), 0, "/x/one.jpg", 10, 7, GZ_ITEM_OK, NULL);
    put(gz_engine_db(e), 0, "/x/two.jpg", 10, 7, GZ_ITEM_OK, NULL);
    CHECK_OK(gz_engine_dups(e, 0.9f, &g));
    checks++;
    /* no model registered: exact matching still works, every image counted without a vector */
    T(g.n == 1 && g.v[0].exact && g.v[0].n == 2 && g.n_without_vector == 2);
    gz_dup_groups_free(&g);
    gz_engine_close(e);
}

int main(void) {
    const char *dir = gz_test_tmpdir("engine_dups");
    char db_path[2048];
    snprintf(db_path, sizeof db_path, "%s/d.db", dir);
    gz_engine_params ep = gz_engine_default_params();
    ep.db_path = db_path;
    gz_engine *e = NULL;
    CHECK_OK(gz_engine_open(&ep, &e));
    checks++;
    if (!e) return gz_test_finish("engine_dups", checks);
    gz_db *db = gz_engine_db(e);
    int64_t mid = 0;
    CHECK_OK(gz_db_register_model(
        db, "tiny", "clip", DIM, "00000000000000000000000000000000000000000000000000000000000000aa",
        &mid));
    checks++;
    float v[DIM];
    /* a chain: a-b and b-c are 0.1 rad apart (cosine 0.995), a-c 0.2 rad (cosine 0.980) */
    at_angle(v, 0.0);
    put(db, mid, "/lib/a.jpg", 300, 1, GZ_ITEM_OK, v);
    at_angle(v, 0.1);
    put(db, mid, "/lib/b.jpg", 200, 2, GZ_ITEM_OK, v);
    at_angle(v, 0.2);
    put(db, mid, "/lib/c.jpg", 100, 3, GZ_ITEM_OK, v);
    /* far from the chain (cosine 0 to a) */
    at_angle(v, 1.5707963);
    put(db, mid, "/lib/far.jpg", 50, 4, GZ_ITEM_OK, v);
    /* exact copies with unrelated vectors (as a re-encoded vector would never be) */
    const float d_vec[DIM] = {0, 0, 1, 0}, e_vec[DIM] = {0, 0, 0, 1};
    put(db, mid, "/lib/d.jpg", 1000, 9, GZ_ITEM_OK, d_vec);
    put(db, mid, "/lib/sub/d copy.jpg", 1000, 9, GZ_ITEM_OK, e_vec);
    /* an exact copy of d that is missing: left out */
    put(db, mid, "/gone/d.jpg", 1000, 9, GZ_ITEM_MISSING, d_vec);
    /* exact copies, one without a vector */
    const float f_vec[DIM] = {0, -1, 0, 0};
    put(db, mid, "/lib/f.jpg", 40, 11, GZ_ITEM_OK, f_vec);
    put(db, mid, "/lib/f2.jpg", 40, 11, GZ_ITEM_OK, NULL);
    /* unknown hash (0) is never an exact match */
    const float g_vec[DIM] = {0, 0, -1, 0}, h_vec[DIM] = {0, 0, 0, -1};
    put(db, mid, "/lib/g.jpg", 5, 0, GZ_ITEM_OK, g_vec);
    put(db, mid, "/lib/h.jpg", 5, 0, GZ_ITEM_OK, h_vec);

    gz_dup_groups g;
    /* exact only */
    CHECK_OK(gz_engine_dups(e, 2.0f, &g));
    checks++;
    T(g.n == 2);
    T(g.n_images == 10);
    if (g.n == 2) {
        /* d's group frees 1000 bytes, f's 40: d first */
        T(g.v[0].n == 2 && g.v[0].exact && g.v[0].reclaimable_bytes == 1000 &&
          g.v[0].total_bytes == 2000 && g.v[0].min_score == 1.0f);
        T(strcmp(g.v[0].members[0].path, "/lib/d.jpg") == 0); /* equal sizes: path order */
        T(g.v[1].n == 2 && g.v[1].exact && g.v[1].reclaimable_bytes == 40);
    }
    T(group_of(&g, "/gone/d.jpg") == NULL);
    T(group_of(&g, "/lib/g.jpg") == NULL);
    gz_dup_groups_free(&g);
    T(g.n == 0 && g.v == NULL);

    /* near at 0.99: a-b-c is one group through b although a-c is 0.980 */
    CHECK_OK(gz_engine_dups(e, 0.99f, &g));
    checks++;
    T(g.n == 3);
    T(g.model_id == mid);
    T(g.n_without_vector == 1);
    const gz_dup_group *chain = group_of(&g, "/lib/a.jpg");
    T(chain && chain->n == 3 && !chain->exact);
    if (chain && chain->n == 3) {
        /* largest first; keeping a (300 bytes) frees b and c */
        T(strcmp(chain->members[0].path, "/lib/a.jpg") == 0 &&
          strcmp(chain->members[1].path, "/lib/b.jpg") == 0 &&
          strcmp(chain->members[2].path, "/lib/c.jpg") == 0);
        T(chain->reclaimable_bytes == 300 && chain->total_bytes == 600);
        T(chain->min_score > 0.994f && chain->min_score < 0.996f);
        T(chain->members[0].size == 300 && chain->members[0].content_hash == 1);
    }
    T(group_of(&g, "/lib/far.jpg") == NULL);
    /* d and its copy stay one exact group although their vectors are orthogonal */
    const gz_dup_group *dg = group_of(&g, "/lib/sub/d copy.jpg");
    T(dg && dg->exact && dg->n == 2);
    /* order: d (1000 reclaimable), the chain (300), f (40) */
    T(g.n == 3 && g.v[0].reclaimable_bytes == 1000 && g.v[1].reclaimable_bytes == 300 &&
      g.v[2].reclaimable_bytes == 40);
    gz_dup_groups_free(&g);

    /* at 0.999 nothing is near: the exact groups only */
    CHECK_OK(gz_engine_dups(e, 0.999f, &g));
    checks++;
    T(g.n == 2 && group_of(&g, "/lib/a.jpg") == NULL);
    gz_dup_groups_free(&g);

    /* at 0.97 a-c links directly too: still one group of three, lowest link 0.980 */
    CHECK_OK(gz_engine_dups(e, 0.97f, &g));
    checks++;
    chain = group_of(&g, "/lib/c.jpg");
    T(chain && chain->n == 3 && chain->min_score > 0.979f && chain->min_score < 0.996f);
    gz_dup_groups_free(&g);

    /* bad thresholds */
    CHECK_STATUS_COUNTED(checks, gz_engine_dups(e, NAN, &g), GZ_EINVAL);
    T(g.n == 0 && g.v == NULL);
    CHECK_STATUS_COUNTED(checks, gz_engine_dups(e, -1.5f, &g), GZ_EINVAL);
    CHECK_STATUS_COUNTED(checks, gz_engine_dups(e, 0.9f, NULL), GZ_EINVAL);
    gz_dup_groups_free(NULL);

    CHECK_OK(gz_engine_close(e));
    checks++;
    test_no_model(dir);
    return gz_test_finish("engine_dups", checks);
}
