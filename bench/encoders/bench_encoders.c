/* bench_encoders.c - time gaze's encoders on full-size BLIP-base models (random weights from
 * make_weights.py), the same inputs and the same measurements as torch_ref.py.
 *
 * Usage: bench_encoders --models DIR [--threads 2] [--out DIR] [--quick] [--only vit224]
 *   DIR holds inputs.safetensors, blip-vit-224/ and blip-base-384/ (make_weights.py).
 *   --out writes the embeddings and ITM logits as raw little-endian float32 files
 *   (vit224_emb.f32 (8,256), vit384_emb.f32 (8,256), text_emb.f32 (32,256),
 *   itm_logits.f32 (16,2)) for torch_ref.py to compare against.
 *   --only block224|block384 times one ViT block's kernels at batch 8 op by op (KERNEL lines),
 *   with a pair-parallel attention prototype beside gz_attention.
 *   --only vit224 times just the ViT-B/16@224 forward at batch 8 (1 warm-up + 4 runs, or --runs),
 *   for perf and A/B experiments; --only vit224b1 the same at batch 1.
 *   --precision bf16: bf16 weights and AVX512-BF16 Linear kernels (fp32 default); --reference:
 *   OpenBLAS for every Linear layer (GZ_GEMM_REFERENCE), the path before gaze's own kernels;
 *   --in-place: fp32 weights as stored (GZ_GEMM_IN_PLACE: the row-dot kernel for a few rows,
 *   OpenBLAS above), the default before the packed fp32 kernel.
 *   --no-pool: threads started per parallel loop instead of the persistent pool (core/threads.h).
 *   --fresh-scratch: a fresh scratch mapping per forward instead of one kept arena
 *   (core/scratch.h).
 *   --static-split: equal fixed ranges per thread in every kernel loop (gz_compute.balance = 0),
 *   where by default threads claim ranges as they free up.
 *   --full-last-layer: every ViT, text and ITM call also returns the token states, so the last
 *   layer runs every row (vit.h, bert.h), where the embeddings or logits alone let it run the
 *   CLS rows only.
 *   --only text times just one text query (caption 0, batch 1; 3 warm-ups + 40 runs, or --runs)
 * and the 32 padded captions (10 runs, or --runs), the BLIP 384 vision tower not loaded, for
 * perf and A/B experiments.
 *   --only itm times just the ITM row (the image states computed once, untimed); --only vit384
 *   just the BLIP ViT-B/16@384 forward at batch 8, embeddings only (the index's encoder).
 *
 * Output lines (parsed by run.sh):
 *   RESULT <name> <ms per item> <ms per call> <items> <min ms per item>
 *       median (and fastest) of the timed runs after warm-up
 *   RSS <phase> <current MB> <peak MB>                  VmRSS, getrusage ru_maxrss (MiB)
 * Timed calls: gz_vit_encode (pixels -> normalised embeddings, the last block on the CLS rows
 * alone; vit384_b8_states also returns last_hidden, for the ITM, so every row runs there),
 * gz_text_tower_encode (token ids -> normalised embeddings, tokenizer excluded as in torch_ref.py),
 * ITM = gz_itm_prepare_image (cross-attention K/V of the image, once) + gz_itm_score of 16 texts,
 * the image's vision forward excluded; itm_pairs = the same 16 texts each against its own copy of
 * the image (gz_itm_prepare_image_once + gz_itm_score_pairs, the form of a re-rank: no keys/values
 * shared between pairs). */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/encoders/bench_util.h"
#include "core/config.h"
#include "core/kernels.h"
#include "core/linear.h"
#include "core/safetensors.h"
#include "core/threads.h"
#include "fusion/itm.h"
#include "gaze.h"
#include "text_encoder/text_tower.h"
#include "vision_encoder/vit.h"

#define MAX_RUNS 2000

/* The compute context of every timed call (threads from --threads, vector paths on). */
static gz_compute bench_cx;

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die_if(gz_status s, const char *what) {
    if (s == GZ_OK) return;
    fprintf(stderr, "bench_encoders: %s: %s\n", what, gz_last_error());
    exit(1);
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
    double median, best;  /* ms per call */
    double all[MAX_RUNS]; /* every timed run, ms per call, sorted */
    int runs;
} timing;

static void report(const char *name, timing t, int items) {
    printf("RESULT %s %.2f %.2f %d %.2f\n", name, t.median / items, t.median, items,
           t.best / items);
    printf("TIMES %s %d", name, items); /* run.sh pools these over its rounds */
    for (int i = 0; i < t.runs; i++)
        printf(" %.3f", t.all[i]);
    printf("\n");
    fflush(stdout);
}

/* Multiply-adds x 2 of the work each row times, per item (image, text, pair): the Linear
 * layers, the attention products and the patch embedding; softmax, LayerNorm and activations
 * are not counted. The same work for every program, so GFLOP/s compare like ms. */
static double layer_flops(double N, double D, double F) { /* one pre/post-LN block, N tokens */
    return 2.0 * N * (4.0 * D * D + 2.0 * D * F) + 4.0 * N * N * D;
}
static void report_flops_vit(const char *name, const gz_model_config *c) {
    const gz_vision_config *v = &c->vision;
    double G = (double)(v->image_size / v->patch_size), N = G * G + 1, D = v->hidden_size;
    double f = v->num_layers * layer_flops(N, D, v->intermediate_size) +
               2.0 * G * G * D * v->num_channels * v->patch_size * v->patch_size;
    printf("FLOPS %s %.4f\n", name, f / 1e9);
}
static void report_flops_text(const char *name, const gz_model_config *c, int T) {
    const gz_text_config *t = &c->text;
    double f = t->num_layers * layer_flops(T, t->hidden_size, t->intermediate_size);
    printf("FLOPS %s %.4f\n", name, f / 1e9);
}
/* The bytes of Linear weights and biases one forward reads (each once: a text query streams
 * them from memory), in MB, for summarize.py's floor at the measured read bandwidth. */
static void report_weights_text(const char *name, const gz_model_config *c) {
    const gz_text_config *t = &c->text;
    double D = t->hidden_size, F = t->intermediate_size;
    double w = 4.0 * D * D + 2.0 * D * F, b = 4.0 * D + F + D;
    printf("WEIGHTS %s %.1f\n", name,
           t->num_layers * (w * (bench_cx.bf16 && gz_cpu_has_bf16() ? 2 : 4) + b * 4) / 1e6);
}
/* ITM per pair: B texts of T tokens with self- and cross-attention to Ti image tokens, plus
 * the image's cross-attention keys/values (made once, shared by the B pairs). */
static void report_flops_itm(const char *name, const gz_model_config *c, int T, int Ti, int B) {
    const gz_text_config *t = &c->text;
    double D = t->hidden_size, De = t->encoder_hidden_size ? t->encoder_hidden_size : D;
    double per_layer =
        layer_flops(T, D, t->intermediate_size) + 2.0 * T * 2.0 * D * D + 4.0 * T * (double)Ti * D;
    double kv = 2.0 * 2.0 * (double)Ti * De * D;
    printf("FLOPS %s %.4f\n", name, t->num_layers * (per_layer + kv / B) / 1e9);
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
    for (int i = 0; i < warm; i++)
        die_if(fn(ctx), what);
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms();
        die_if(fn(ctx), what);
        t[i] = now_ms() - t0;
    }
    double m = median(t, runs); /* sorts t */
    timing r = {m, t[0], {0}, runs};
    memcpy(r.all, t, (size_t)runs * sizeof *t);
    return r;
}

typedef struct {
    const gz_vit *vit;
    const float *pixels; /* (B, 3, S, S) */
    int B;
    float *embeds;      /* (B, E) */
    float *last_hidden; /* (B, P, D) or NULL */
} vit_job;

/* --full-last-layer: token states for every ViT, text and ITM call, so the last layer runs
 * every row (the reference) even where only the embeddings or logits are timed; (8, 577, 768)
 * floats (more than 32 texts of 64 tokens need), else NULL. */
static float *full_last_states;

static gz_status run_vit(void *ctx) {
    vit_job *j = ctx;
    float *last = j->last_hidden ? j->last_hidden : full_last_states;
    return gz_vit_encode(j->vit, &bench_cx, j->pixels, j->B, j->embeds, NULL, last, NULL, NULL);
}

typedef struct {
    const gz_text_tower *tt;
    const int32_t *ids, *mask; /* (B, T) */
    int B, T;
    float *embeds; /* (B, E) */
} text_job;

static gz_status run_text(void *ctx) {
    text_job *j = ctx;
    return gz_text_tower_encode(j->tt, &bench_cx, j->ids, j->mask, j->B, j->T, j->embeds, NULL,
                                full_last_states, NULL);
}

typedef struct {
    const gz_itm *itm;
    const float *image_states; /* (Ti, Dv) */
    int Ti;
    const int32_t *ids, *mask; /* (B, T) */
    int B, T;
    float *logits; /* (B, 2) */
} itm_job;

static gz_status run_itm(void *ctx) {
    itm_job *j = ctx;
    gz_itm_image *im = NULL;
    gz_status s = gz_itm_prepare_image(j->itm, &bench_cx, j->image_states, j->Ti, &im);
    if (s == GZ_OK)
        s = gz_itm_score(j->itm, &bench_cx, im, j->ids, j->mask, j->B, j->T, j->logits, NULL,
                         full_last_states);
    gz_itm_image_free(im);
    return s;
}

/* The re-rank form: each of the B texts against its own image (here B copies of one image's
 * states, as a re-rank of B candidates would have B images), each image made with
 * gz_itm_prepare_image_once inside the timed call, as gaze search --rerank makes them. */
static gz_status run_itm_pairs(void *ctx) {
    itm_job *j = ctx;
    gz_itm_image **ims = calloc((size_t)j->B, sizeof *ims);
    if (!ims) return GZ_ENOMEM;
    gz_status s = GZ_OK;
    for (int b = 0; s == GZ_OK && b < j->B; b++)
        s = gz_itm_prepare_image_once(j->itm, &bench_cx, j->image_states, j->Ti, j->T, &ims[b]);
    if (s == GZ_OK)
        s = gz_itm_score_pairs(j->itm, &bench_cx, (const gz_itm_image *const *)ims, j->ids, j->mask,
                               j->B, j->T, -1, j->logits, NULL, full_last_states);
    for (int b = 0; b < j->B; b++)
        gz_itm_image_free(ims[b]);
    free(ims);
    return s;
}

/* ---- --only block224 / block384: one ViT-B/16 block's kernels at batch 8, op by op ---- */

typedef struct {
    const float *qkv; /* (n, P, 3D) */
    float *out;       /* (n, P, D) */
    float *scratch;   /* (2 threads max, P, P) */
    int P, H, Dh;
    float scale;
} pair_attn_args;

/* Prototype of a pair-parallel attention: each thread takes whole (image, head) pairs and runs
 * both GEMMs single-threaded (OpenBLAS set to 1 thread by the caller), instead of one
 * multi-threaded OpenBLAS call per pair and GEMM. Same math as gz_attention without mask. */
static void pair_attn_range(void *ctx, size_t p0, size_t p1) {
    const pair_attn_args *a = ctx;
    const int P = a->P, H = a->H, Dh = a->Dh, D = H * Dh;
    float *s = a->scratch + (p0 == 0 ? 0 : (size_t)P * P); /* 2 ranges at most */
    for (size_t p = p0; p < p1; p++) {
        size_t b = p / (size_t)H, h = p % (size_t)H;
        const float *q = a->qkv + b * (size_t)P * 3 * D + h * (size_t)Dh;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, P, Dh, a->scale, q, 3 * D, q + D,
                    3 * D, 0.0f, s, P);
        gz_softmax_rows(&bench_cx, s, P, P);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, Dh, P, 1.0f, s, P, q + 2 * D,
                    3 * D, 0.0f, a->out + b * (size_t)P * D + h * (size_t)Dh, D);
    }
}

typedef struct {
    int n, P, D, F, H;
    float *x, *h, *qkv, *att, *att2, *mlp, *scratch;
    const float *w_qkv, *w_out, *w_fc1, *w_fc2, *b_qkv, *b_out, *b_fc1, *b_fc2, *ln_w, *ln_b;
} block_job;

static gz_status op_ln(void *ctx) {
    block_job *j = ctx;
    gz_layernorm(&bench_cx, j->h, j->x, j->ln_w, j->ln_b, j->n * j->P, j->D, 1e-5f);
    return GZ_OK;
}

/* Prototype LayerNorm for the report: the same two passes in double as gz_layernorm but with 8
 * independent accumulators (no serial add chain, vectorisable), one thread. */
static void ln_proto_rows(float *y, const float *x, const float *w, const float *b, int n, int d,
                          float eps) {
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
        double acc[8] = {0}, sum = 0, var = 0;
        int j = 0;
        for (; j + 8 <= d; j += 8)
            for (int k = 0; k < 8; k++)
                acc[k] += xr[j + k];
        for (int k = 0; k < 8; k++)
            sum += acc[k];
        for (; j < d; j++)
            sum += xr[j];
        const double mean = sum / d;
        for (int k = 0; k < 8; k++)
            acc[k] = 0;
        for (j = 0; j + 8 <= d; j += 8)
            for (int k = 0; k < 8; k++) {
                double t = xr[j + k] - mean;
                acc[k] += t * t;
            }
        for (int k = 0; k < 8; k++)
            var += acc[k];
        for (; j < d; j++)
            var += (xr[j] - mean) * (xr[j] - mean);
        const float fm = (float)mean, fr = (float)(1.0 / sqrt(var / d + (double)eps));
        for (j = 0; j < d; j++)
            yr[j] = (xr[j] - fm) * fr * w[j] + b[j];
    }
}

static gz_status op_ln_proto(void *ctx) {
    block_job *j = ctx;
    ln_proto_rows(j->att2, j->x, j->ln_w, j->ln_b, j->n * j->P, j->D, 1e-5f);
    return GZ_OK;
}

static gz_status op_qkv(void *ctx) {
    block_job *j = ctx;
    gz_linear(j->h, j->w_qkv, j->b_qkv, j->qkv, j->n * j->P, j->D, 3 * j->D);
    return GZ_OK;
}
static gz_status op_attn(void *ctx) {
    block_job *j = ctx;
    const int D = j->D, Dh = D / j->H;
    return gz_attention(&bench_cx, j->qkv, 3 * D, j->qkv + D, j->qkv + 2 * D, 3 * D, j->att, j->n,
                        j->P, j->P, j->H, Dh, NULL, 0, 1.0f / sqrtf((float)Dh));
}
static gz_status op_attn_pairs(void *ctx) {
    block_job *j = ctx;
    const int Dh = j->D / j->H, threads = bench_cx.n_threads;
    pair_attn_args a = {j->qkv, j->att2, j->scratch, j->P, j->H, Dh, 1.0f / sqrtf((float)Dh)};
    openblas_set_num_threads(1);
    gz_parallel_for((size_t)j->n * j->H, 1, threads > 2 ? 2 : threads, pair_attn_range, &a);
    openblas_set_num_threads(threads);
    return GZ_OK;
}
static gz_status op_out(void *ctx) {
    block_job *j = ctx;
    gz_linear(j->att, j->w_out, j->b_out, j->h, j->n * j->P, j->D, j->D);
    return GZ_OK;
}
static gz_status op_add(void *ctx) {
    block_job *j = ctx;
    gz_add(j->x, j->h, (size_t)j->n * j->P * j->D);
    return GZ_OK;
}
static gz_status op_fc1(void *ctx) {
    block_job *j = ctx;
    gz_linear(j->h, j->w_fc1, j->b_fc1, j->mlp, j->n * j->P, j->D, j->F);
    return GZ_OK;
}
static gz_status op_gelu(void *ctx) {
    block_job *j = ctx;
    gz_gelu(&bench_cx, j->mlp, (size_t)j->n * j->P * j->F);
    return GZ_OK;
}
static gz_status op_fc2(void *ctx) {
    block_job *j = ctx;
    gz_linear(j->mlp, j->w_fc2, j->b_fc2, j->h, j->n * j->P, j->F, j->D);
    return GZ_OK;
}

/* Time each kernel of one pre-LN block (layer 0's weights) on n images of size S; print
 * "KERNEL <op> <ms per block> <GFLOP/s>" (median of runs) and the pair-parallel attention
 * prototype's time and its max difference from gz_attention. */
static void bench_block(gz_st_file *w, const gz_model_config *cfg, int n, int runs) {
    const int D = cfg->vision.hidden_size, F = cfg->vision.intermediate_size;
    const int H = cfg->vision.num_heads, G = cfg->vision.image_size / cfg->vision.patch_size;
    const int P = G * G + 1, N = n * P;
    block_job j = {0};
    j.n = n;
    j.P = P;
    j.D = D;
    j.F = F;
    j.H = H;
    const size_t nd = (size_t)N * D;
    j.x = xmalloc(nd * sizeof(float));
    j.h = xmalloc(nd * sizeof(float));
    j.att = xmalloc(nd * sizeof(float));
    j.att2 = xmalloc(nd * sizeof(float));
    j.qkv = xmalloc(3 * nd * sizeof(float));
    j.mlp = xmalloc((size_t)N * F * sizeof(float));
    j.scratch = xmalloc((size_t)2 * P * P * sizeof(float));
    uint32_t r = 12345;
    for (size_t i = 0; i < nd; i++) {
        r = r * 1664525u + 1013904223u;
        j.x[i] = (float)(r >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    const char *pre = "vision_model.encoder.layers.0.";
    char name[256];
#define GETW(dst, suffix)                                                                          \
    do {                                                                                           \
        snprintf(name, sizeof name, "%s%s", pre, suffix);                                          \
        die_if(gz_st_f32(w, name, 0, NULL, &(dst)), name);                                         \
    } while (0)
    GETW(j.w_qkv, "self_attn.qkv.weight");
    GETW(j.b_qkv, "self_attn.qkv.bias");
    GETW(j.w_out, "self_attn.projection.weight");
    GETW(j.b_out, "self_attn.projection.bias");
    GETW(j.w_fc1, "mlp.fc1.weight");
    GETW(j.b_fc1, "mlp.fc1.bias");
    GETW(j.w_fc2, "mlp.fc2.weight");
    GETW(j.b_fc2, "mlp.fc2.bias");
    GETW(j.ln_w, "layer_norm1.weight");
    GETW(j.ln_b, "layer_norm1.bias");
#undef GETW
    const double lin = 2.0 * N * D, att_fl = 4.0 * n * (double)P * P * D;
    struct {
        const char *name;
        bench_fn fn;
        double flops;
        int per_block; /* times per block */
    } ops[] = {
        {"layernorm", op_ln, 0, 2},
        {"linear_qkv", op_qkv, lin * 3 * D, 1},
        {"attention", op_attn, att_fl, 1},
        {"linear_out", op_out, lin * D, 1},
        {"residual_add", op_add, 0, 2},
        {"linear_fc1", op_fc1, lin * F, 1},
        {"gelu", op_gelu, 0, 1},
        {"linear_fc2", op_fc2, lin * F, 1},
        {"attn_pairs_proto", op_attn_pairs, att_fl, 0},
        {"ln_proto_1thr", op_ln_proto, 0, 0},
    };
    double total = 0;
    op_ln(&j);
    op_qkv(&j); /* inputs for attention */
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        timing t = bench(ops[i].fn, &j, 1, runs, ops[i].name);
        double ms = t.median * (ops[i].per_block ? ops[i].per_block : 1);
        total += t.median * ops[i].per_block;
        printf("KERNEL %-16s %8.2f ms/block (best %.2f) %7.1f GFLOP/s\n", ops[i].name, ms,
               t.best * (ops[i].per_block ? ops[i].per_block : 1),
               ops[i].flops > 0 ? ops[i].flops / (t.median * 1e6) : 0.0);
    }
    op_ln(&j);
    op_ln_proto(&j);
    float dln = 0;
    for (size_t i = 0; i < nd; i++) {
        float e = fabsf(j.h[i] - j.att2[i]);
        if (e > dln) dln = e;
    }
    printf("KERNEL ln_proto_1thr max|diff| vs gz_layernorm %.2e (ms above: one call, 1 thread)\n",
           dln);
    op_attn(&j);
    op_attn_pairs(&j);
    float d = 0;
    for (size_t i = 0; i < nd; i++) {
        float e = fabsf(j.att[i] - j.att2[i]);
        if (e > d) d = e;
    }
    printf("KERNEL sum_of_block_ops %8.2f ms/block (x%d layers = %.0f ms for %d images); "
           "attn_pairs_proto max|diff| vs gz_attention %.2e\n",
           total, cfg->vision.num_layers, total * cfg->vision.num_layers, n, d);
    free(j.x);
    free(j.h);
    free(j.att);
    free(j.att2);
    free(j.qkv);
    free(j.mlp);
    free(j.scratch);
}

static void load_model(const char *models, const char *name, gz_model_config *cfg, gz_st_file **w) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/config.json", models, name);
    die_if(gz_config_load(path, cfg), path);
    snprintf(path, sizeof path, "%s/%s", models, name);
    die_if(gz_st_open_dir(path, w), path);
}

/* --only text: one query of caption 0 alone (unpadded), as the text_b1 row, then the 32
 * captions padded to one length, as the text_b32 row. */
static void bench_text_only(const char *models, gz_st_file *inp, int quick, int runs) {
    gz_model_config cfg;
    gz_st_file *w = NULL;
    gz_text_tower *tt = NULL;
    load_model(models, "blip-base-384", &cfg, &w);
    die_if(gz_text_tower_load(w, &cfg, &tt), "gz_text_tower_load");
    int nb, T;
    int32_t *ids = get_i32(inp, "ids", &nb, &T), *mask = get_i32(inp, "mask", &nb, &T);
    int n1 = 0;
    while (n1 < T && mask[n1])
        n1++;
    float *emb = xmalloc((size_t)nb * gz_text_tower_dim(tt) * sizeof *emb);
    text_job tj = {tt, ids, NULL, 1, n1, emb};
    report_weights_text("text_b1", &cfg);
    report("text_b1", bench(run_text, &tj, 3, runs ? runs : quick ? 1 : 40, "text_b1"), 1);
    tj = (text_job){tt, ids, mask, nb, T, emb};
    report("text_b32", bench(run_text, &tj, 1, runs ? runs : quick ? 1 : 10, "text_b32"), nb);
    report_rss("text");
    free(emb);
    free(ids);
    free(mask);
    gz_text_tower_free(tt);
    gz_st_close(w);
}

int main(int argc, char **argv) {
    const char *models = NULL, *out = NULL, *only = NULL;
    int threads = 2, quick = 0, bf16 = 0, reference = 0, in_place = 0, only_runs = 0, no_pool = 0,
        fresh_scratch = 0, static_split = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--models") && i + 1 < argc)
            models = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc)
            bf16 = !strcmp(argv[++i], "bf16");
        else if (!strcmp(argv[i], "--reference"))
            reference = 1;
        else if (!strcmp(argv[i], "--in-place"))
            in_place = 1;
        else if (!strcmp(argv[i], "--no-pool"))
            no_pool = 1;
        else if (!strcmp(argv[i], "--fresh-scratch"))
            fresh_scratch = 1;
        else if (!strcmp(argv[i], "--static-split"))
            static_split = 1;
        else if (!strcmp(argv[i], "--full-last-layer"))
            full_last_states = xmalloc((size_t)8 * 577 * 768 * sizeof *full_last_states);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            only_runs = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s --models DIR [--threads N] [--out DIR] [--quick] "
                    "[--only vit224|vit224b1|vit384|block224|block384|text|itm [--runs N]] "
                    "[--precision "
                    "fp32|bf16] "
                    "[--reference | --in-place] [--no-pool] [--fresh-scratch] [--static-split] "
                    "[--full-last-layer]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!models) {
        fprintf(stderr, "bench_encoders: --models DIR is required\n");
        return 2;
    }
    bench_cx = gz_compute_make(threads, 1);
    bench_cx.bf16 = bf16; /* --precision bf16 */
    bench_cx.gemm = reference ? GZ_GEMM_REFERENCE : in_place ? GZ_GEMM_IN_PLACE : GZ_GEMM_PACKED;
    bench_cx.pack_after_rows = 0; /* packed in the warm-up, as in a long run */
    bench_cx.balance = !static_split;
    /* --no-pool: threads started per parallel loop, as before the pool */
    bench_cx.pool = no_pool ? NULL : gz_pool_create(bench_cx.n_threads);
    gz_blas_set_threads(bench_cx.pool ? 1 : bench_cx.n_threads);
    /* one scratch arena for every tower, as a gz_model has; --fresh-scratch: a fresh mapping
     * per forward, as before the arena. Kept until exit, as the pool. */
    bench_cx.scratch = fresh_scratch ? NULL : gz_scratch_new(GZ_SCRATCH_KEEP_BYTES);
    /* timed runs (median) per benchmark; the same counts as torch_ref.py */
    const int r224 = quick ? 1 : 5, r384 = quick ? 1 : 3, r8 = quick ? 1 : 3;
    const int rt1 = quick ? 1 : 10, rt32 = quick ? 1 : 3, ritm = quick ? 1 : 3;
    printf("INFO gaze threads %d openblas core %s config %s\n", bench_cx.n_threads,
           openblas_get_corename(), openblas_get_config());

    char path[4096];
    snprintf(path, sizeof path, "%s/inputs.safetensors", models);
    gz_st_file *inp = NULL;
    die_if(gz_st_open(path, &inp), path);

    gz_model_config cfg;
    gz_st_file *w = NULL;
    if (only && (!strcmp(only, "block224") || !strcmp(only, "block384"))) {
        load_model(models, only[5] == '2' ? "blip-vit-224" : "blip-base-384", &cfg, &w);
        bench_block(w, &cfg, 8, quick ? 1 : 5);
        gz_st_close(w);
        gz_st_close(inp);
        return 0;
    }

    if (only && !strcmp(only, "text")) {
        bench_text_only(models, inp, quick, only_runs);
        gz_st_close(inp);
        return 0;
    }

    const int only_itm = only && !strcmp(only, "itm");
    const int only_vit384 = only && !strcmp(only, "vit384");
    gz_vit *vit = NULL;
    const float *px = NULL;
    float *emb = NULL;
    vit_job vj;
    if (only_itm || only_vit384) goto blip384;

    /* ---- ViT-B/16 @ 224 ---- */
    load_model(models, "blip-vit-224", &cfg, &w);
    die_if(gz_vit_load(w, &cfg, &vit), "gz_vit_load 224");
    int64_t shp224[4] = {8, 3, 224, 224};
    die_if(gz_st_f32(inp, "pixels_224", 4, shp224, &px), "pixels_224");
    const int E = gz_vit_dim(vit);
    emb = xmalloc((size_t)32 * E * sizeof *emb);
    vj = (vit_job){vit, px, 1, emb, NULL};
    if (only && (!strcmp(only, "vit224") || !strcmp(only, "vit224b1"))) {
        /* A/B and perf loop: batch 8 alone, or batch 1 alone (vit224b1) */
        vj.B = strcmp(only, "vit224b1") ? 8 : 1;
        const char *row = vj.B == 8 ? "vit224_b8" : "vit224_b1";
        report(row, bench(run_vit, &vj, 1, only_runs ? only_runs : quick ? 1 : 4, row), vj.B);
        gz_vit_free(vit);
        gz_st_close(w);
        gz_st_close(inp);
        free(emb);
        return 0;
    }
    report_flops_vit("vit224_b1", &cfg);
    report_flops_vit("vit224_b8", &cfg);
    report("vit224_b1", bench(run_vit, &vj, 1, r224, "vit224_b1"), 1);
    vj.B = 8;
    report("vit224_b8", bench(run_vit, &vj, 1, r8, "vit224_b8"), 8);
    write_f32(out, "vit224_emb.f32", emb, (size_t)8 * E);
    report_rss("vit224");
    gz_vit_free(vit);
    gz_st_close(w);
    /* The 224 pixels are not read again: their pages of the inputs file leave this process, as
     * the 224 model's do, so the blip384 phase's RSS counts its own inputs only. */
    gz_st_release(inp, px, sizeof(float) * 8 * 3 * 224 * 224);

    /* ---- BLIP-base @ 384: vision, text (ITC), ITM ---- */
blip384:
    load_model(models, "blip-base-384", &cfg, &w);
    die_if(gz_vit_load(w, &cfg, &vit), "gz_vit_load 384");
    gz_text_tower *tt = NULL;
    die_if(gz_text_tower_load(w, &cfg, &tt), "gz_text_tower_load");
    gz_itm *itm = NULL;
    die_if(gz_itm_load(w, &cfg, &itm), "gz_itm_load");
    /* one packed copy of the BERT layers the two share, as a gz_model holds them */
    gz_packw_cache *packed = gz_packw_cache_new();
    if (!packed) die_if(GZ_ENOMEM, "gz_packw_cache_new");
    gz_text_tower_share_packed(tt, packed);
    gz_itm_share_packed(itm, packed);
    int64_t shp384[4] = {8, 3, 384, 384};
    die_if(gz_st_f32(inp, "pixels_384", 4, shp384, &px), "pixels_384");
    const int P = gz_vit_tokens(vit), D = gz_vit_hidden(vit);
    float *last = xmalloc((size_t)8 * P * D * sizeof *last); /* (8, P, D) */
    if (!emb) emb = xmalloc((size_t)32 * gz_vit_dim(vit) * sizeof *emb);
    vj = (vit_job){vit, px, 8, emb, last};
    report_flops_vit("vit384_b1", &cfg);
    report_flops_vit("vit384_b8", &cfg);
    report_flops_vit("vit384_b8_states", &cfg);
    if (only_vit384) { /* --only vit384: the batch-8 forward alone, embeddings only, as
                        * `gaze index` computes without --keep-tokens (bench/index/run.sh) */
        vj.last_hidden = NULL;
        report("vit384_b8", bench(run_vit, &vj, 1, only_runs ? only_runs : r8, "vit384_b8"), 8);
        report_rss("vit384");
        free(last);
        free(emb);
        gz_itm_free(itm);
        gz_text_tower_free(tt);
        gz_packw_cache_free(packed);
        gz_vit_free(vit);
        gz_st_close(w);
        gz_st_close(inp);
        return 0;
    }
    if (only_itm) { /* --only itm: the image states once, untimed, then the ITM alone */
        die_if(run_vit(&vj), "vit384");
    } else {
        vj.B = 1;
        vj.last_hidden = NULL;
        report("vit384_b1", bench(run_vit, &vj, 1, r384, "vit384_b1"), 1);
        vj.B = 8; /* the embeddings alone, as `gaze index` computes them */
        report("vit384_b8", bench(run_vit, &vj, 1, r8, "vit384_b8"), 8);
        vj.last_hidden = last; /* and with every token's states, for the ITM below (and for
                                * --keep-tokens): every row of the last block runs */
        report("vit384_b8_states", bench(run_vit, &vj, 1, r8, "vit384_b8_states"), 8);
        write_f32(out, "vit384_emb.f32", emb, (size_t)8 * gz_vit_dim(vit));
    }

    int nb, T;
    int32_t *ids = get_i32(inp, "ids", &nb, &T), *mask = get_i32(inp, "mask", &nb, &T);
    int32_t *ids1 = NULL;
    if (only_itm) goto itm;
    int n1 = 0; /* caption 0 alone, unpadded, as torch_ref.py */
    while (n1 < T && mask[n1])
        n1++;
    text_job tj = {tt, ids, mask, 1, n1, emb};
    ids1 = xmalloc((size_t)n1 * sizeof *ids1);
    memcpy(ids1, ids, (size_t)n1 * sizeof *ids1);
    tj.ids = ids1;
    tj.mask = NULL;
    report_flops_text("text_b1", &cfg, n1);
    report_weights_text("text_b1", &cfg);
    report_flops_text("text_b32", &cfg, T);
    report("text_b1", bench(run_text, &tj, 2, rt1, "text_b1"), 1);
    tj = (text_job){tt, ids, mask, nb, T, emb};
    report("text_b32", bench(run_text, &tj, 1, rt32, "text_b32"), nb);
    write_f32(out, "text_emb.f32", emb, (size_t)nb * gz_text_tower_dim(tt));

itm:;
    int ni, Tt;
    int32_t *tids = get_i32(inp, "itm_ids", &ni, &Tt), *tmask = get_i32(inp, "itm_mask", &ni, &Tt);
    float *logits = xmalloc((size_t)ni * 2 * sizeof *logits);
    itm_job ij = {itm, last, P, tids, tmask, ni, Tt, logits}; /* image 0's post-LN states */
    report_flops_itm("itm_1x16", &cfg, Tt, P, ni);
    report("itm_1x16", bench(run_itm, &ij, 1, only_itm && only_runs ? only_runs : ritm, "itm_1x16"),
           ni);
    write_f32(out, "itm_logits.f32", logits, (size_t)ni * 2);
    /* the same 16 pairs, each text against its own image (a re-rank's form) */
    float *shared_logits = xmalloc((size_t)ni * 2 * sizeof *shared_logits);
    memcpy(shared_logits, logits, (size_t)ni * 2 * sizeof *logits);
    report("itm_pairs",
           bench(run_itm_pairs, &ij, 1, only_itm && only_runs ? only_runs : ritm, "itm_pairs"), ni);
    double worst = 0;
    for (int i = 0; i < ni * 2; i++)
        worst = fmax(worst, fabs((double)logits[i] - shared_logits[i]));
    printf("AGREE itm_pairs vs itm_1x16 (gaze, same pairs) max |d logit| %.3g\n", worst);
    free(shared_logits);
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
    gz_packw_cache_free(packed);
    gz_vit_free(vit);
    gz_st_close(w);
    gz_st_close(inp);
    return 0;
}
