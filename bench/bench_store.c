/* bench_store.c - store + FAISS benchmark: insert throughput (SQLite commit included), index
 * build time (rebuild from SQLite at open, training included), index size (the FAISS file, about
 * its size in memory), peak process memory, single-query search latency and recall@10 against
 * exact search, for several factory strings, on random unit vectors (efSearch / nprobe as given).
 *
 * Usage: bench_store [--n N] [--dim D] [--queries Q] [--factories "Flat;HNSW32;IVF1024,PQ32"]
 *                    [--ef EF] [--nprobe NP] [--dir DIR] [--clustered]
 * The database (DIR/bench-N-D.gaze) is reused when it already holds N vectors, so factories can
 * be run in separate invocations. Exact top-10 comes from the Flat index (tests check that Flat
 * equals brute force), so "Flat" is always run first. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gaze.h"

#define K 10
#define BATCH 1000

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rng(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static void unit_near(float *v, int d, const float *center, double spread) {
    double s = 0;
    for (int i = 0; i < d; i++) {
        double u = ((rng() >> 11) + 1.0) / 9007199254740993.0,
               w = (rng() >> 11) / 9007199254740992.0;
        v[i] = (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w));
        if (center) v[i] = (float)(center[i] + spread * v[i]);
        s += (double)v[i] * v[i];
    }
    for (int i = 0; i < d; i++)
        v[i] = (float)(v[i] / sqrt(s));
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long rss_mb(const char *field) { /* e.g. VmHWM (peak RSS) from /proc/self/status, MiB */
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0) kb = atol(line + fl + 1);
    if (f) fclose(f);
    return kb / 1024;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what) {
    fprintf(stderr, "bench_store: %s: %s\n", what, gz_last_error());
    exit(1);
}

int main(int argc, char **argv) {
    int n = 100000, dim = 256, nq = 200, ef = 128, nprobe = 16, clustered = 0;
    const char *factories = "Flat;HNSW32;IVF1024,PQ32", *dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--clustered")) {
            clustered = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_store: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--n"))
            n = atoi(v);
        else if (!strcmp(a, "--dim"))
            dim = atoi(v);
        else if (!strcmp(a, "--queries"))
            nq = atoi(v);
        else if (!strcmp(a, "--factories"))
            factories = v;
        else if (!strcmp(a, "--ef"))
            ef = atoi(v);
        else if (!strcmp(a, "--nprobe"))
            nprobe = atoi(v);
        else if (!strcmp(a, "--dir"))
            dir = v;
        else {
            fprintf(stderr, "bench_store: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (n <= 0 || dim <= 0 || nq <= 0) return 2;
    char path[1024];
    snprintf(path, sizeof path, "%s/bench-%d-%d%s.gaze", dir, n, dim, clustered ? "c" : "");
    printf("bench_store: n %d dim %d queries %d %s, db %s\n", n, dim, nq,
           clustered ? "clustered (1000 blobs)" : "isotropic random", path);

    float *centers = NULL;
    if (clustered) {
        centers = malloc(sizeof(float) * 1000 * (size_t)dim);
        for (int c = 0; c < 1000; c++)
            unit_near(centers + (size_t)c * dim, dim, NULL, 0);
    }
    gz_db_params p = gz_db_default_params();
    p.factory = "Flat";
    gz_db *db = NULL;
    if (gz_db_open(path, &p, &db) != GZ_OK) die("open");
    gz_db_stats st;
    if (gz_db_get_stats(db, &st) != GZ_OK) die("stats");
    int64_t model = 0;
    if (gz_db_register_model(db, "bench", "clip", dim, "bench-fingerprint", &model) != GZ_OK)
        die("register");
    if (st.n_embeddings != n) {
        if (st.n_embeddings != 0) {
            fprintf(stderr, "bench_store: %s holds %lld vectors, not %d: remove it\n", path,
                    (long long)st.n_embeddings, n);
            return 1;
        }
        float *v = malloc(sizeof(float) * (size_t)dim);
        double t0 = now();
        for (int b = 0; b < n; b += BATCH) {
            if (gz_db_begin(db) != GZ_OK) die("begin");
            for (int i = b; i < n && i < b + BATCH; i++) {
                char name[32];
                int len = snprintf(name, sizeof name, "img/%08d.jpg", i);
                gz_item it = {.kind = GZ_ITEM_IMAGE,
                              .path = name,
                              .path_len = (size_t)len,
                              .size = 100000 + i,
                              .mtime_ns = 1700000000000000000LL + i,
                              .content_hash = rng(),
                              .width = 640,
                              .height = 480};
                unit_near(v, dim, centers ? centers + (size_t)(rng() % 1000) * dim : NULL, 0.04);
                if (gz_db_upsert_item(db, &it) != GZ_OK) die("upsert");
                if (gz_db_put_embedding(db, it.id, model, v, dim) != GZ_OK) die("put");
            }
            if (gz_db_commit(db) != GZ_OK) die("commit");
        }
        double t1 = now();
        if (gz_db_close(db) != GZ_OK) die("close"); /* writes the Flat file */
        double t2 = now();
        printf("insert: %d items in %.2f s = %.0f items/s (upsert item + vector, commit per %d; "
               "Flat index kept in step); close (write index file) %.2f s\n",
               n, t1 - t0, n / (t1 - t0), BATCH, t2 - t1);
        free(v);
        db = NULL;
    } else {
        printf("insert: reusing %lld stored vectors\n", (long long)st.n_embeddings);
        if (gz_db_close(db) != GZ_OK) die("close");
    }
    struct stat sb;
    if (stat(path, &sb) == 0) printf("database file: %.1f MiB\n", sb.st_size / 1048576.0);

    float *queries = malloc(sizeof(float) * (size_t)nq * dim);
    for (int q = 0; q < nq; q++)
        unit_near(queries + (size_t)q * dim, dim,
                  centers ? centers + (size_t)(rng() % 1000) * dim : NULL, 0.04);
    int64_t *truth = malloc(sizeof(int64_t) * (size_t)nq * K);
    int have_truth = 0;
    double *lat = malloc(sizeof(double) * (size_t)nq);
    printf("%-22s %9s %10s %9s %9s %9s %10s\n", "factory", "build s", "index MiB", "mean ms",
           "p50 ms", "p99 ms", "recall@10");
    char list[512];
    snprintf(list, sizeof list, "%s", factories);
    for (char *save = NULL, *f = strtok_r(list, ";", &save); f; f = strtok_r(NULL, ";", &save)) {
        gz_db_params fp = gz_db_default_params();
        fp.factory = f;
        fp.hnsw_ef_search = ef;
        fp.ivf_nprobe = nprobe;
        double t0 = now();
        if (gz_db_open(path, &fp, &db) != GZ_OK) die(f); /* rebuilds for a new factory */
        double t1 = now();
        gz_db_index_state is;
        if (gz_db_index_info(db, model, GZ_ITEM_IMAGE, &is) != GZ_OK) die("index info");
        int found = 0;
        gz_hit hits[K];
        for (int q = 0; q < nq; q++) {
            int nh = 0;
            double a = now();
            if (gz_db_search(db, model, GZ_ITEM_IMAGE, queries + (size_t)q * dim, dim, K, -1.0f,
                             hits, &nh) != GZ_OK)
                die("search");
            lat[q] = (now() - a) * 1e3;
            if (!have_truth && !strcmp(f, "Flat")) {
                for (int i = 0; i < K; i++)
                    truth[(size_t)q * K + i] = i < nh ? hits[i].item_id : 0;
            }
            for (int i = 0; i < nh; i++)
                for (int j = 0; j < K; j++)
                    if (hits[i].item_id == truth[(size_t)q * K + j]) found++;
        }
        if (!strcmp(f, "Flat")) have_truth = 1;
        double mean = 0;
        for (int q = 0; q < nq; q++)
            mean += lat[q] / nq;
        qsort(lat, (size_t)nq, sizeof *lat, cmp_double);
        char name[96];
        snprintf(name, sizeof name, "%s%s", is.effective,
                 strcmp(is.effective, f) ? " (fallback)" : "");
        printf("%-22s %9.1f %10.1f %9.3f %9.3f %9.3f %10.4f\n", name, t1 - t0,
               is.file_bytes / 1048576.0, mean, lat[nq / 2], lat[(nq * 99) / 100],
               (double)found / ((double)nq * K));
        fflush(stdout);
        if (gz_db_close(db) != GZ_OK) die("close");
        db = NULL;
    }
    printf("peak RSS %ld MiB\n", rss_mb("VmHWM:"));
    free(queries);
    free(truth);
    free(lat);
    free(centers);
    return 0;
}
