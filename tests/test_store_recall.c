/* test_index_recall.c - approximate indexes against exact search: recall@10 of HNSW32 and
 * IVF,Flat through the store, measured here against a brute-force ranking (>= 0.95).
 *
 * Two data sets of 20k 256-d unit vectors: isotropic random (the worst case: no structure, so
 * HNSW needs efSearch 512 and IVF must probe most lists) and clustered random (a mixture of
 * 200 Gaussian blobs, closer to real embeddings: IVF256 with nprobe 16 is enough). IVF-PQ is
 * measured in bench/, not here (its training is slow on a small machine). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gaze.h"
#include "testutil.h"

#define N 20000
#define D 256
#define NQ 200
#define K 10

static int checks;
#define T(c) CHECK_COUNTED(checks, c)
#define T_OK(e) CHECK_OK_COUNTED(checks, e)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) { return gz_test_splitmix64(&rng_state); }
/* center + spread * gaussian, normalised (center NULL: isotropic). */
static void unit_near(float *v, int d, const float *center, double spread) {
    double s = 0;
    for (int i = 0; i < d; i += 2) { /* Box-Muller pairs */
        double u = ((rng() >> 11) + 1.0) / 9007199254740993.0,
               w = (rng() >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u));
        v[i] = (float)(r * cos(6.283185307179586 * w));
        if (i + 1 < d) v[i + 1] = (float)(r * sin(6.283185307179586 * w));
    }
    if (center)
        for (int i = 0; i < d; i++)
            v[i] = (float)(center[i] + spread * v[i]);
    for (int i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    for (int i = 0; i < d; i++)
        v[i] = (float)(v[i] / sqrt(s));
}
static void unit(float *v, int d) { unit_near(v, d, NULL, 0); }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Exact top-K ids per query by brute force (independent of FAISS). */
static void exact(const float *vecs, const int64_t *ids, const float *q, int64_t *out) {
    float best[K];
    for (int j = 0; j < K; j++) {
        best[j] = -INFINITY;
        out[j] = 0;
    }
    for (int i = 0; i < N; i++) {
        float s = 0;
        for (int j = 0; j < D; j++)
            s += vecs[(size_t)i * D + j] * q[j];
        if (s <= best[K - 1]) continue;
        int p = K - 1;
        while (p > 0 && best[p - 1] < s) {
            best[p] = best[p - 1];
            out[p] = out[p - 1];
            p--;
        }
        best[p] = s;
        out[p] = ids[i];
    }
}

static double recall(const char *path, const char *factory, const float *queries,
                     const int64_t *truth, int ef, int nprobe) {
    gz_db_params p = gz_db_default_params();
    p.factory = factory;
    p.hnsw_ef_search = ef;
    p.ivf_nprobe = nprobe;
    gz_db *db = NULL;
    double t0 = now();
    if (gz_db_open(path, &p, &db) != GZ_OK) { /* builds and saves the index */
        fprintf(stderr, "open with %s: %s\n", factory, gz_last_error());
        gz_test_failures++;
        return 0;
    }
    double t1 = now();
    gz_db_index_state is;
    T_OK(gz_db_index_info(db, 1, GZ_ITEM_IMAGE, &is));
    T(strcmp(is.effective, factory) == 0 && is.n_vectors == N);
    int found = 0;
    gz_hit hits[K];
    for (int q = 0; q < NQ; q++) {
        int nh = 0;
        T_OK(gz_db_search(db, 1, GZ_ITEM_IMAGE, queries + (size_t)q * D, D, K, -1.0f, hits, &nh));
        for (int i = 0; i < nh; i++)
            for (int j = 0; j < K; j++)
                if (hits[i].item_id == truth[(size_t)q * K + j]) found++;
    }
    double t2 = now();
    T_OK(gz_db_close(db));
    double r = (double)found / (NQ * K);
    printf("%-14s recall@%d = %.4f (efSearch %d, nprobe %d; build %.1f s, %.2f ms/query)\n",
           factory, K, r, ef, nprobe, t1 - t0, (t2 - t1) * 1e3 / NQ);
    return r;
}

/* Store n vectors as items of model 1 in a new database at path. */
static void make_db(const char *path, const float *vecs, int64_t *ids) {
    gz_db_params p = gz_db_default_params();
    gz_db *db = NULL;
    T_OK(gz_db_open(path, &p, &db));
    if (!db) return;
    int64_t m;
    T_OK(gz_db_register_model(db, "random", "clip", D, "fp-random", &m));
    T(m == 1);
    double t0 = now();
    for (int b = 0; b < N; b += 1000) {
        T_OK(gz_db_begin(db));
        for (int i = b; i < b + 1000; i++) {
            char name[32];
            int len = snprintf(name, sizeof name, "v%05d", i);
            gz_item it = {.kind = GZ_ITEM_IMAGE, .path = name, .path_len = (size_t)len};
            T_OK(gz_db_upsert_item(db, &it));
            ids[i] = it.id;
            T_OK(gz_db_put_embedding(db, it.id, m, vecs + (size_t)i * D, D));
        }
        T_OK(gz_db_commit(db));
    }
    printf("inserted %d items in %.2f s (Flat, 1000 per batch)\n", N, now() - t0);
    T_OK(gz_db_close(db));
}

int main(void) {
    const char *dir = gz_test_tmpdir("index-recall");
    char path[1200];
    float *vecs = malloc(sizeof(float) * N * D), *queries = malloc(sizeof(float) * NQ * D);
    int64_t *ids = malloc(sizeof(int64_t) * N), *truth = malloc(sizeof(int64_t) * NQ * K);

    printf("-- isotropic random vectors, random queries\n");
    snprintf(path, sizeof path, "%s/random.gaze", dir);
    for (int i = 0; i < N; i++)
        unit(vecs + (size_t)i * D, D);
    make_db(path, vecs, ids);
    for (int q = 0; q < NQ; q++) {
        unit(queries + (size_t)q * D, D);
        exact(vecs, ids, queries + (size_t)q * D, truth + (size_t)q * K);
    }
    T(recall(path, "Flat", queries, truth, 0, 0) >= 0.999);
    T(recall(path, "HNSW32", queries, truth, 512, 0) >= 0.95);
    T(recall(path, "IVF64,Flat", queries, truth, 0, 56) >= 0.95);

    printf("-- clustered random vectors (200 blobs), queries near the data\n");
    snprintf(path, sizeof path, "%s/clustered.gaze", dir);
    float *centers = malloc(sizeof(float) * 200 * D);
    for (int c = 0; c < 200; c++)
        unit(centers + (size_t)c * D, D);
    for (int i = 0; i < N; i++)
        unit_near(vecs + (size_t)i * D, D, centers + (size_t)(rng() % 200) * D, 0.06);
    make_db(path, vecs, ids);
    for (int q = 0; q < NQ; q++) {
        unit_near(queries + (size_t)q * D, D, centers + (size_t)(rng() % 200) * D, 0.06);
        exact(vecs, ids, queries + (size_t)q * D, truth + (size_t)q * K);
    }
    T(recall(path, "IVF256,Flat", queries, truth, 0, 16) >= 0.95);
    T(recall(path, "HNSW32", queries, truth, 128, 0) >= 0.95);
    free(centers);
    free(vecs);
    free(queries);
    free(ids);
    free(truth);
    return gz_test_finish("test_index_recall", checks);
}
