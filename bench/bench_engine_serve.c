/* bench_engine_serve.c - helpers of bench/serve/run.sh (not a test):
 *   fill DB MODEL N   store N synthetic image items with random unit vectors for MODEL through
 *                     the store API (registering the model by its fingerprint), so a 100k-item
 *                     index exists without encoding 100k photos;
 *   time MODEL IMAGE  the text and image towers' own single-query times with one thread
 *                     (median of 15 after 2 warm-ups), as JSON: the t of the service targets. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gaze.h"

#define FILL_BATCH 5000 /* items per transaction */
#define TIME_RUNS 15

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* xorshift64* and Box-Muller: reproducible normal samples without libc's rand state */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return ((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
}
static double normal(void) {
    double u = uniform(), v = uniform();
    return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

static int die(const char *what) {
    fprintf(stderr, "bench_engine_serve: %s: %s\n", what, gz_last_error());
    return 1;
}

static int fill(const char *db_path, const char *model_dir, long n) {
    gz_model_params mp = gz_model_default_params();
    gz_model *m = NULL;
    if (gz_model_load(model_dir, &mp, &m) != GZ_OK) return die(model_dir);
    char fp[65], abs[PATH_MAX];
    if (gz_model_fingerprint(m, fp) != GZ_OK) return die("fingerprint");
    int dim = gz_model_dim(m);
    gz_db_params dp = gz_db_default_params();
    gz_db *db = NULL;
    if (gz_db_open(db_path, &dp, &db) != GZ_OK) return die(db_path);
    int64_t mid;
    if (gz_db_register_model(db, realpath(model_dir, abs) ? abs : model_dir,
                             gz_family_name(gz_model_family(m)), dim, fp, &mid) != GZ_OK)
        return die("register");
    float *v = malloc((size_t)dim * sizeof *v);
    double t0 = now();
    for (long i = 0; i < n; i++) {
        if (i % FILL_BATCH == 0 && gz_db_begin(db) != GZ_OK) return die("begin");
        char path[64];
        snprintf(path, sizeof path, "/bench/synthetic/%07ld.jpg", i);
        gz_item it = {.kind = GZ_ITEM_IMAGE,
                      .path = path,
                      .path_len = strlen(path),
                      .size = 100000,
                      .mtime_ns = 1,
                      .content_hash = (uint64_t)i + 1,
                      .width = 384,
                      .height = 384};
        if (gz_db_upsert_item(db, &it) != GZ_OK) return die("upsert");
        double norm = 0;
        for (int d = 0; d < dim; d++) {
            v[d] = (float)normal();
            norm += (double)v[d] * v[d];
        }
        for (int d = 0; d < dim; d++)
            v[d] = (float)(v[d] / sqrt(norm));
        if (gz_db_put_embedding(db, it.id, mid, v, dim) != GZ_OK) return die("embedding");
        if ((i + 1) % FILL_BATCH == 0 || i + 1 == n)
            if (gz_db_commit(db) != GZ_OK) return die("commit");
    }
    if (gz_db_close(db) != GZ_OK) return die("close");
    printf("{\"items\":%ld,\"dim\":%d,\"seconds\":%.1f}\n", n, dim, now() - t0);
    free(v);
    gz_model_free(m);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int time_towers(const char *model_dir, const char *image_path) {
    gz_model_params mp = gz_model_default_params();
    mp.n_threads = 1; /* one request's share: 2 server threads on 2 cores */
    gz_model *m = NULL;
    if (gz_model_load(model_dir, &mp, &m) != GZ_OK) return die(model_dir);
    float *v = malloc((size_t)gz_model_dim(m) * sizeof *v);
    const char *q = "a red car parked on a street at night";
    double tt[TIME_RUNS], ti[TIME_RUNS];
    gz_image_params ip = gz_model_image_params(m);
    for (int r = -2; r < TIME_RUNS; r++) {
        double t0 = now();
        if (gz_encode_texts(m, &q, 1, v) != GZ_OK) return die("text");
        if (r >= 0) tt[r] = now() - t0;
    }
    /* the image search path: decode the file and encode it, as a query image is */
    for (int r = -2; r < TIME_RUNS; r++) {
        double t0 = now();
        gz_image img;
        if (gz_image_load(image_path, &ip, &img) != GZ_OK) return die(image_path);
        gz_status st = gz_encode_images(m, &img, 1, v);
        gz_image_free(&img);
        if (st != GZ_OK) return die("image");
        if (r >= 0) ti[r] = now() - t0;
    }
    qsort(tt, TIME_RUNS, sizeof *tt, cmp_double);
    qsort(ti, TIME_RUNS, sizeof *ti, cmp_double);
    printf("{\"t_text_ms\":%.2f,\"t_image_ms\":%.2f,\"threads\":1}\n", tt[TIME_RUNS / 2] * 1e3,
           ti[TIME_RUNS / 2] * 1e3);
    free(v);
    gz_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "fill") == 0) return fill(argv[2], argv[3], atol(argv[4]));
    if (argc == 4 && strcmp(argv[1], "time") == 0) return time_towers(argv[2], argv[3]);
    fprintf(stderr, "usage: bench_engine_serve fill DB MODEL N | time MODEL IMAGE\n");
    return 2;
}
