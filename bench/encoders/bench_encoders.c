/* bench_encoders.c - time gaze's encoders on full-size BLIP-base models (random weights from
 * make_weights.py), the same inputs and the same measurements as torch_ref.py.
 *
 * Usage: bench_encoders --models DIR [--threads 2] [--out DIR] [--quick] [--only vit224]
 *   DIR holds inputs.safetensors, blip-vit-224/ and blip-base-384/ (make_weights.py).
 *   --out writes the embeddings and ITM logits as raw little-endian float32 files
 *   (vit224_emb.f32 (8,256), vit384_emb.f32 (8,256), text_emb.f32 (32,256),
 *   itm_logits.f32 (16,2)) for torch_ref.py to compare against.
 *   --only vit224 runs just the ViT-B/16@224 forward (batch 8) in a loop, for perf.
 *
 * Output lines (parsed by run.sh):
 *   RESULT <name> <ms per item> <ms per call> <items> <min ms per item>
 *       median (and fastest) of the timed runs after warm-up
 *   RSS <phase> <current MB> <peak MB>                  VmRSS, getrusage ru_maxrss
 * Timed calls: gz_vit_encode (pixels -> normalised embeddings; 384 also keeps last_hidden for
 * ITM), gz_text_tower_encode (token ids -> normalised embeddings, tokenizer excluded as in
 * torch_ref.py), ITM = gz_itm_prepare_image (cross-attention K/V of the image, once) +
 * gz_itm_score of 16 texts, the image's vision forward excluded. */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/config.h"
#include "core/kernels.h"
#include "core/safetensors.h"
#include "fusion/itm.h"
#include "gaze.h"
#include "text_encoder/text_tower.h"
#include "vision_encoder/vit.h"

#define MAX_RUNS 64

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die_if(gz_status s, const char *what) {
    if (s == GZ_OK) return;
    fprintf(stderr, "bench_encoders: %s: %s\n", what, gz_last_error());
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_encoders: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void report_rss(const char *phase) {
    double cur = 0;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) cur = atof(line + 6) / 1024.0;
    if (f) fclose(f);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("RSS %s %.0f %.0f\n", phase, cur, ru.ru_maxrss / 1024.0);
    fflush(stdout);
}

typedef struct {
    double median, best; /* ms per call */
} timing;

static void report(const char *name, timing t, int items) {
    printf("RESULT %s %.2f %.2f %d %.2f\n", name, t.median / items, t.median, items,
           t.best / items);
    fflush(stdout);
}

static void write_f32(const char *dir, const char *name, const float *x, size_t n) {
    if (!dir) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof *x, n, f) != n) {
        fprintf(stderr, "bench_encoders: cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* Copy an I32 tensor (r, c) from the inputs file; *rows, *cols receive its shape. */
static int32_t *get_i32(gz_st_file *f, const char *name, int *rows, int *cols) {
    const gz_st_tensor *t = gz_st_find(f, name);
    if (!t || t->dtype != GZ_DT_I32 || t->ndim != 2) {
        fprintf(stderr, "bench_encoders: inputs: %s missing or not I32 (r, c)\n", name);
        exit(1);
    }
    *rows = (int)t->shape[0];
    *cols = (int)t->shape[1];
    int32_t *out = xmalloc(t->nbytes);
    memcpy(out, t->data, t->nbytes);
    return out;
}

/* Run fn(ctx) warm times untimed, then runs times; return the median and fastest wall times. */
typedef gz_status (*bench_fn)(void *ctx);
static timing bench(bench_fn fn, void *ctx, int warm, int runs, const char *what) {
    double t[MAX_RUNS];
    if (runs > MAX_RUNS) runs = MAX_RUNS;
    for (int i = 0; i < warm; i++) die_if(fn(ctx), what);
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms();
        die_if(fn(ctx), what);
        t[i] = now_ms() - t0;
    }
    double m = median(t, runs); /* sorts t */
    return (timing){m, t[0]};
}

typedef struct {
    const gz_vit *vit;
    const float *pixels; /* (B, 3, S, S) */
    int B;
    float *embeds;       /* (B, E) */
    float *last_hidden;  /* (B, P, D) or NULL */
} vit_job;

static gz_status run_vit(void *ctx) {
    vit_job *j = ctx;
    return gz_vit_encode(j->vit, j->pixels, j->B, j->embeds, NULL, j->last_hidden, NULL, NULL);
}

typedef struct {
    const gz_text_tower *tt;
    const int32_t *ids, *mask; /* (B, T) */
    int B, T;
    float *embeds;             /* (B, E) */
} text_job;

static gz_status run_text(void *ctx) {
    text_job *j = ctx;
    return gz_text_tower_encode(j->tt, j->ids, j->mask, j->B, j->T, j->embeds, NULL, NULL, NULL);
}

typedef struct {
    const gz_itm *itm;
    const float *image_states; /* (Ti, Dv) */
    int Ti;
    const int32_t *ids, *mask; /* (B, T) */
    int B, T;
    float *logits;             /* (B, 2) */
} itm_job;

static gz_status run_itm(void *ctx) {
    itm_job *j = ctx;
    gz_itm_image *im = NULL;
    gz_status s = gz_itm_prepare_image(j->itm, j->image_states, j->Ti, &im);
    if (s == GZ_OK) s = gz_itm_score(j->itm, im, j->ids, j->mask, j->B, j->T, j->logits, NULL, NULL);
    gz_itm_image_free(im);
    return s;
}

static void load_model(const char *models, const char *name, gz_model_config *cfg,
                       gz_st_file **w) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/config.json", models, name);
    die_if(gz_config_load(path, cfg), path);
    snprintf(path, sizeof path, "%s/%s", models, name);
    die_if(gz_st_open_dir(path, w), path);
}

int main(int argc, char **argv) {
    const char *models = NULL, *out = NULL, *only = NULL;
    int threads = 2, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: %s --models DIR [--threads N] [--out DIR] [--quick] "
                            "[--only vit224]\n", argv[0]);
            return 2;
        }
    }
    if (!models) {
        fprintf(stderr, "bench_encoders: --models DIR is required\n");
        return 2;
    }
    gz_set_threads(threads);
    /* timed runs (median) per benchmark; the same counts as torch_ref.py */
    const int r224 = quick ? 1 : 5, r384 = quick ? 1 : 3, r8 = quick ? 1 : 2;
    const int rt1 = quick ? 1 : 10, rt32 = quick ? 1 : 3, ritm = quick ? 1 : 3;
    printf("INFO gaze threads %d openblas core %s config %s\n", gz_get_threads(),
           openblas_get_corename(), openblas_get_config());

    char path[4096];
    snprintf(path, sizeof path, "%s/inputs.safetensors", models);
    gz_st_file *inp = NULL;
    die_if(gz_st_open(path, &inp), path);

    /* ---- ViT-B/16 @ 224 ---- */
    gz_model_config cfg;
    gz_st_file *w = NULL;
    gz_vit *vit = NULL;
    load_model(models, "blip-vit-224", &cfg, &w);
    die_if(gz_vit_load(w, &cfg, &vit), "gz_vit_load 224");
    const float *px = NULL;
    int64_t shp224[4] = {8, 3, 224, 224};
    die_if(gz_st_f32(inp, "pixels_224", 4, shp224, &px), "pixels_224");
    const int E = gz_vit_dim(vit);
    float *emb = xmalloc((size_t)32 * E * sizeof *emb);
    vit_job vj = {vit, px, 1, emb, NULL};
    if (only && !strcmp(only, "vit224")) { /* profiling loop: batch 8, no timing table */
        vj.B = 8;
        for (int i = 0; i < (quick ? 1 : 4); i++) die_if(run_vit(&vj), "vit224");
        gz_vit_free(vit);
        gz_st_close(w);
        gz_st_close(inp);
        free(emb);
        return 0;
    }
    report("vit224_b1", bench(run_vit, &vj, 1, r224, "vit224_b1"), 1);
    vj.B = 8;
    report("vit224_b8", bench(run_vit, &vj, 1, r8, "vit224_b8"), 8);
    write_f32(out, "vit224_emb.f32", emb, (size_t)8 * E);
    report_rss("vit224");
    gz_vit_free(vit);
    gz_st_close(w);

    /* ---- BLIP-base @ 384: vision, text (ITC), ITM ---- */
    load_model(models, "blip-base-384", &cfg, &w);
    die_if(gz_vit_load(w, &cfg, &vit), "gz_vit_load 384");
    gz_text_tower *tt = NULL;
    die_if(gz_text_tower_load(w, &cfg, &tt), "gz_text_tower_load");
    gz_itm *itm = NULL;
    die_if(gz_itm_load(w, &cfg, &itm), "gz_itm_load");
    int64_t shp384[4] = {8, 3, 384, 384};
    die_if(gz_st_f32(inp, "pixels_384", 4, shp384, &px), "pixels_384");
    const int P = gz_vit_tokens(vit), D = gz_vit_hidden(vit);
    float *last = xmalloc((size_t)8 * P * D * sizeof *last); /* (8, P, D) */
    vj = (vit_job){vit, px, 1, emb, NULL};
    report("vit384_b1", bench(run_vit, &vj, 1, r384, "vit384_b1"), 1);
    vj.B = 8;
    vj.last_hidden = last;
    report("vit384_b8", bench(run_vit, &vj, 1, r8, "vit384_b8"), 8);
    write_f32(out, "vit384_emb.f32", emb, (size_t)8 * E);

    int nb, T;
    int32_t *ids = get_i32(inp, "ids", &nb, &T), *mask = get_i32(inp, "mask", &nb, &T);
    int n1 = 0; /* caption 0 alone, unpadded, as torch_ref.py */
    while (n1 < T && mask[n1]) n1++;
    text_job tj = {tt, ids, mask, 1, n1, emb};
    int32_t *ids1 = xmalloc((size_t)n1 * sizeof *ids1);
    memcpy(ids1, ids, (size_t)n1 * sizeof *ids1);
    tj.ids = ids1;
    tj.mask = NULL;
    report("text_b1", bench(run_text, &tj, 2, rt1, "text_b1"), 1);
    tj = (text_job){tt, ids, mask, nb, T, emb};
    report("text_b32", bench(run_text, &tj, 1, rt32, "text_b32"), nb);
    write_f32(out, "text_emb.f32", emb, (size_t)nb * gz_text_tower_dim(tt));

    int ni, Tt;
    int32_t *tids = get_i32(inp, "itm_ids", &ni, &Tt), *tmask = get_i32(inp, "itm_mask", &ni, &Tt);
    float *logits = xmalloc((size_t)ni * 2 * sizeof *logits);
    itm_job ij = {itm, last, P, tids, tmask, ni, Tt, logits}; /* image 0's post-LN states */
    report("itm_1x16", bench(run_itm, &ij, 1, ritm, "itm_1x16"), ni);
    write_f32(out, "itm_logits.f32", logits, (size_t)ni * 2);
    report_rss("blip384");

    free(logits);
    free(tids);
    free(tmask);
    free(ids1);
    free(ids);
    free(mask);
    free(last);
    free(emb);
    gz_itm_free(itm);
    gz_text_tower_free(tt);
    gz_vit_free(vit);
    gz_st_close(w);
    gz_st_close(inp);
    return 0;
}
