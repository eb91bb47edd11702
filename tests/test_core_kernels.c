/* test_core_kernels.c - every kernel in core/kernels.h against a plain reference loop, and the
 * compute contexts (threads, vector paths, scratch limit) that kernels take.
 * Legend as in kernels.h. Inputs are pseudo-random with a fixed seed; shapes include odd sizes. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/error.h"
#include "core/kernels.h"
#include "core/linear.h"
#include "core/threads.h"
#include "testutil.h"

static int checks;
/* The context the kernel tests run under; main sets its vector level. */
static gz_compute cx;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *rnd(size_t n, float scale) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = frand() * scale;
    return p;
}

static int close_(const char *what, const float *got, const float *want, size_t n, float atol,
                  float rtol) {
    checks++;
    return gz_check_close(what, got, want, n, atol, rtol);
}

/* ---- sgemm ---- */

static void ref_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * b;
            }
            C[(size_t)i * ldc + j] = (float)(alpha * acc + beta * C[(size_t)i * ldc + j]);
        }
}

static void test_sgemm(void) {
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 13, 31}, {64, 48, 33}, {129, 65, 257}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                int pad = 3; /* leading dimensions larger than the matrix width */
                int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
                size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
                float *A = rnd(na, 1), *B = rnd(nb, 1), *C = rnd((size_t)M * ldc, 1);
                float *R = malloc((size_t)M * ldc * sizeof *R);
                memcpy(R, C, (size_t)M * ldc * sizeof *R);
                gz_sgemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C, ldc);
                ref_sgemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, R, ldc);
                char what[64];
                snprintf(what, sizeof what, "sgemm %dx%dx%d ta=%d tb=%d", M, N, K, ta, tb);
                close_(what, C, R, (size_t)M * ldc, 1e-4f, 1e-4f);
                free(A), free(B), free(C), free(R);
            }
    /* batched strided */
    int M = 7, N = 9, K = 11, batch = 3;
    size_t sa = (size_t)M * K + 5, sb = (size_t)K * N + 2, sc = (size_t)M * N + 1;
    float *A = rnd(sa * batch, 1), *B = rnd(sb * batch, 1), *C = rnd(sc * batch, 1);
    float *R = malloc(sc * batch * sizeof *R);
    memcpy(R, C, sc * batch * sizeof *R);
    gz_sgemm_batched(0, 1, M, N, K, 1.0f, A, K, sa, B, K, sb, 0.0f, C, N, sc, batch);
    for (int b = 0; b < batch; b++)
        ref_sgemm(0, 1, M, N, K, 1.0f, A + b * sa, K, B + b * sb, K, 0.0f, R + b * sc, N);
    close_("sgemm_batched", C, R, sc * batch, 1e-4f, 1e-4f);
    free(A), free(B), free(C), free(R);
}

/* ---- linear, bias, add ---- */

static void test_linear(void) {
    const int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {33, 64, 17}, {50, 129, 96}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int with_b = 0; with_b < 2; with_b++) {
            int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            float *x = rnd((size_t)n * in, 1), *w = rnd((size_t)out * in, 1), *b = rnd(out, 1);
            float *y = malloc((size_t)n * out * sizeof *y),
                  *r = malloc((size_t)n * out * sizeof *r);
            for (int i = 0; i < n * out; i++)
                y[i] = NAN; /* output must be overwritten */
            gz_linear(x, w, with_b ? b : NULL, y, n, in, out);
            for (int i = 0; i < n; i++)
                for (int o = 0; o < out; o++) {
                    double acc = with_b ? b[o] : 0.0;
                    for (int k = 0; k < in; k++)
                        acc += (double)x[i * in + k] * w[o * in + k];
                    r[i * out + o] = (float)acc;
                }
            char what[64];
            snprintf(what, sizeof what, "linear %dx%d->%d bias=%d", n, in, out, with_b);
            close_(what, y, r, (size_t)n * out, 1e-4f, 1e-4f);
            free(x), free(w), free(b), free(y), free(r);
        }
    int n = 37, d = 1031;
    float *y = rnd((size_t)n * d, 1), *b = rnd(d, 1), *r = malloc((size_t)n * d * sizeof *r);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            r[i * d + j] = y[i * d + j] + b[j];
    gz_add_bias(y, b, n, d);
    close_("add_bias", y, r, (size_t)n * d, 0, 0);
    float *x = rnd((size_t)n * d, 1);
    for (int i = 0; i < n * d; i++)
        r[i] = y[i] + x[i];
    gz_add(y, x, (size_t)n * d);
    close_("add", y, r, (size_t)n * d, 0, 0);
    free(y), free(b), free(r), free(x);
}

/* ---- core/linear: the own fp32 and bf16 kernels against double loops ---- */

/* Largest |y - want| over |terms| (sum of |x w| plus |b|): the error relative to the magnitude
 * a float sum of these terms can have, whatever its order. Columns from out to ldy must keep
 * their sentinel. Returns -1 when a sentinel was overwritten. */
static double linear_err(const float *y, int ldy, const float *x, const float *w, const float *b,
                         int n, int in, int out, int bf16) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0.0, mag = b ? fabs(b[o]) : 0.0;
            for (int k = 0; k < in; k++) {
                float xv = x[(size_t)i * in + k], wv = w[(size_t)o * in + k];
                if (bf16) { /* the kernel's inputs: both rounded to bf16, nearest even */
                    xv = gz_bf16_to_f32(gz_f32_to_bf16(xv));
                    wv = gz_bf16_to_f32(gz_f32_to_bf16(wv));
                }
                acc += (double)xv * wv;
                mag += fabs((double)xv * wv);
            }
            double e = fabs(y[(size_t)i * ldy + o] - acc) / (mag > 0 ? mag : 1.0);
            if (!(e <= worst)) worst = e; /* NaN propagates */
        }
        for (int o = out; o < ldy; o++)
            if (y[(size_t)i * ldy + o] != 1234.5f) return -1;
    }
    return worst;
}

/* A context for one of the Linear kernels, and the copies it reads packed into *wb:
 * 0 = OpenBLAS (the reference), 1 = own fp32 in place, 2 = bf16, 3 = packed fp32. */
static gz_compute kernel_cx(int kind, const float *w, int out, int in, gz_packw *wb) {
    gz_compute c = gz_compute_make(2, 1);
    c.gemm = kind == 0 ? GZ_GEMM_REFERENCE : kind == 1 ? GZ_GEMM_IN_PLACE : GZ_GEMM_PACKED;
    c.bf16 = kind == 2;
    if (kind == 2) CHECK_OK(gz_packw_bf16(w, out, in, wb));
    if (kind == 3) CHECK_OK(gz_packw_f32(w, out, in, wb));
    return c;
}

/* The fused activation epilogue gives exactly the values of the product followed by
 * gz_activate, on every kernel (OpenBLAS, own fp32 in place, bf16, packed fp32; with and without
 * a pool), for every activation, and leaves the columns past out alone. */
static void test_linear_act(void) {
    const int shapes[][3] = {{5, 70, 33}, {13, 768, 100}, {100, 700, 200}, {70, 96, 77}};
    const gz_act acts[] = {GZ_ACT_GELU, GZ_ACT_GELU_TANH, GZ_ACT_QUICK_GELU, GZ_ACT_RELU};
    gz_pool *pool = gz_pool_create(2);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int mode = 0; mode < 8; mode++)
            for (size_t a = 0; a < 4; a++) {
                int kind = mode % 4, n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
                int ldy = out + 5;
                float *x = rnd((size_t)n * in, 1), *w = rnd((size_t)out * in, 0.5f);
                float *b = rnd(out, 1);
                float *y = malloc((size_t)n * ldy * sizeof *y);
                float *ref = malloc((size_t)n * ldy * sizeof *ref);
                for (size_t i = 0; i < (size_t)n * ldy; i++)
                    y[i] = ref[i] = 1234.5f;
                gz_packw wb = {0};
                gz_compute c = kernel_cx(kind, w, out, in, &wb);
                c.pool = mode >= 4 ? pool : NULL;
                CHECK_OK(gz_linear_cx(&c, x, w, &wb, b, ref, ldy, n, in, out));
                for (int i = 0; i < n; i++)
                    gz_activate(&c, acts[a], ref + (size_t)i * ldy, (size_t)out);
                CHECK_OK(gz_linear_act_cx(&c, x, w, &wb, b, (int)acts[a], y, ldy, n, in, out));
                checks++;
                if (memcmp(y, ref, (size_t)n * ldy * sizeof *y) != 0) {
                    fprintf(stderr, "FAIL linear+act %dx%d->%d mode %d act %d differs\n", n, in,
                            out, mode, (int)acts[a]);
                    gz_test_failures++;
                }
                gz_packw_free(&wb);
                free(x), free(w), free(b), free(y), free(ref);
            }
    gz_pool_free(pool);
}

/* Claimed ranges (gz_compute.balance, the default) give the same bytes as the equal fixed
 * ranges: the packed fp32 and bf16 products split by rows and by column panels, and the
 * attention; a row or a query block is computed alike whichever thread runs it. */
static void test_balance_same_bytes(void) {
    const int shapes[][3] = {{1030, 40, 35}, {100, 700, 200}, {13, 768, 768}, {1500, 96, 64}};
    gz_pool *pool = gz_pool_create(2);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int kind = 2; kind <= 3; kind++) {
            int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            float *x = rnd((size_t)n * in, 1), *w = rnd((size_t)out * in, 0.5f), *b = rnd(out, 1);
            float *y0 = malloc((size_t)n * out * sizeof *y0), *y1 = malloc((size_t)n * out * 4);
            gz_packw wb = {0};
            gz_compute c = kernel_cx(kind, w, out, in, &wb);
            c.pool = pool;
            c.balance = 0;
            CHECK_OK(gz_linear_act_cx(&c, x, w, &wb, b, GZ_ACT_GELU, y0, out, n, in, out));
            c.balance = 1;
            CHECK_OK(gz_linear_act_cx(&c, x, w, &wb, b, GZ_ACT_GELU, y1, out, n, in, out));
            CHECK(memcmp(y0, y1, (size_t)n * out * sizeof *y0) == 0);
            checks++;
            gz_packw_free(&wb);
            free(x), free(w), free(b), free(y0), free(y1);
        }
    const int B = 3, T = 197, H = 12, Dh = 64, D = H * Dh;
    float *qkv = rnd((size_t)B * T * 3 * D, 1);
    float *o0 = malloc((size_t)B * T * D * sizeof *o0), *o1 = malloc((size_t)B * T * D * 4);
    gz_compute c = gz_compute_make(2, 1);
    c.pool = pool;
    c.balance = 0;
    CHECK_OK(gz_attention(&c, qkv, 3 * D, qkv + D, qkv + 2 * D, 3 * D, o0, B, T, T, H, Dh, NULL, 0,
                          0.125f));
    c.balance = 1;
    CHECK_OK(gz_attention(&c, qkv, 3 * D, qkv + D, qkv + 2 * D, 3 * D, o1, B, T, T, H, Dh, NULL, 0,
                          0.125f));
    CHECK(memcmp(o0, o1, (size_t)B * T * D * sizeof *o0) == 0);
    checks++;
    free(qkv), free(o0), free(o1);
    gz_pool_free(pool);
}

static void test_linear_kernels(void) {
    /* odd sizes around the tiles (4 x 4 fp32 row-dot, 8 rows x 3 panels of 16 bf16 and packed
     * fp32), the K blocks (192 pairs, 384 floats), the row split (64) and the text / ViT
     * shapes */
    const int shapes[][3] = {{1, 1, 1},       {3, 5, 7},     {13, 768, 768}, {16, 33, 17},
                             {32, 385, 50},   {33, 64, 49},  {64, 31, 47},   {9, 400, 100},
                             {71, 390, 97},   {200, 96, 64}, {7, 3072, 40},  {100, 700, 200},
                             {300, 512, 131}, {70, 800, 50}, {1030, 40, 35}};
    /* from {100, ...}: bf16 splits rows between threads; {1030, ...}: packed fp32 does */
    const int has_bf16 = gz_cpu_has_bf16();
    if (!has_bf16) fprintf(stderr, "note: no AVX512-BF16 here: the bf16 kernel is not run\n");
    gz_pool *pool = gz_pool_create(2);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int mode = 0; mode < 8; mode++) /* kernel_cx's kinds; +4: on a pool */
            for (int with_b = 0; with_b < 2; with_b++) {
                int kind = mode % 4;
                int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2], ldy = out + 3;
                float *x = rnd((size_t)n * in, 1), *w = rnd((size_t)out * in, 0.5f);
                float *b = rnd(out, 1), *y = malloc((size_t)n * ldy * sizeof *y);
                for (size_t i = 0; i < (size_t)n * ldy; i++)
                    y[i] = 1234.5f; /* sentinel: the product must overwrite, and only out cols */
                gz_packw wb = {0};
                gz_compute c = kernel_cx(kind, w, out, in, &wb);
                c.pool = mode >= 4 ? pool : NULL; /* OpenBLAS split by columns on the pool */
                CHECK_OK(gz_linear_cx(&c, x, w, &wb, with_b ? b : NULL, y, ldy, n, in, out));
                int ran_bf16 = kind == 2 && has_bf16 && gz_compute_simd_level(&c) == 2;
                double e = linear_err(y, ldy, x, w, with_b ? b : NULL, n, in, out, ran_bf16);
                /* fp32: a float sum's rounding (~in * 2^-24 of the magnitude, far below 1e-5
                 * here); bf16: the same on the rounded inputs (fp32 accumulation). */
                checks++;
                if (!(e >= 0 && e <= 2e-6 * (1 + in / 64.0))) {
                    fprintf(stderr, "FAIL linear kernel %dx%d->%d mode %d bias %d: error %g\n", n,
                            in, out, mode, with_b, e);
                    gz_test_failures++;
                }
                if (ran_bf16) { /* and it did round: the fp32 reference misses by more */
                    double e32 = linear_err(y, ldy, x, w, with_b ? b : NULL, n, in, out, 0);
                    checks++;
                    if (in >= 64 && !(e32 > 1e-4)) {
                        fprintf(stderr, "FAIL linear bf16 %dx%d->%d: as exact as fp32 (%g)\n", n,
                                in, out, e32);
                        gz_test_failures++;
                    }
                }
                gz_packw_free(&wb);
                free(x), free(w), free(b), free(y);
            }
    gz_pool_free(pool);
    /* gz_packw_pack_all on 2 threads packs what gz_packw_bf16 and gz_packw_f32 do, byte for
     * byte, the second form beside the first; the f32 form is W's values in panels, 0 past out */
    {
        float *w1 = rnd(40 * 70, 1), *w2 = rnd(17 * 33, 1);
        gz_packw a1 = {0}, a2 = {0}, b1 = {0}, b2 = {0}, f1 = {0}, f2 = {0};
        gz_packw_job jobs[2] = {{w1, 40, 70, &a1, NULL}, {w2, 17, 33, &a2, NULL}};
        gz_compute c = gz_compute_make(2, 1);
        CHECK_OK(gz_packw_pack_all(&c, NULL, GZ_PACK_BF16, jobs, 2));
        CHECK_OK(gz_packw_pack_all(&c, NULL, GZ_PACK_F32, jobs, 2));
        CHECK_OK(gz_packw_bf16(w1, 40, 70, &b1));
        CHECK_OK(gz_packw_bf16(w2, 17, 33, &b2));
        CHECK_OK(gz_packw_f32(w1, 40, 70, &f1));
        CHECK_OK(gz_packw_f32(w2, 17, 33, &f2));
        checks++;
        CHECK(a1.bf16 && a2.bf16 && a1.out == 40 && a1.in == 70 && a2.out == 17 && a2.in == 33);
        CHECK(a1.bf16 && !memcmp(a1.bf16, b1.bf16, (size_t)3 * 35 * 32 * sizeof(uint16_t)));
        CHECK(a2.bf16 && !memcmp(a2.bf16, b2.bf16, (size_t)2 * 17 * 32 * sizeof(uint16_t)));
        CHECK(a1.f32 && !memcmp(a1.f32, f1.f32, (size_t)3 * 16 * 70 * sizeof(float)));
        CHECK(a2.f32 && !memcmp(a2.f32, f2.f32, (size_t)2 * 16 * 33 * sizeof(float)));
        CHECK(!b1.f32 && !f1.bf16 && f2.out == 17 && f2.in == 33);
        int layout_ok = 1;
        for (int row = 0; row < 32; row++)
            for (int k = 0; k < 33; k++)
                layout_ok &= f2.f32[(size_t)(row / 16) * 16 * 33 + (size_t)k * 16 + row % 16] ==
                             (row < 17 ? w2[(size_t)row * 33 + k] : 0.0f);
        CHECK(layout_ok);
        gz_packw_free(&a1), gz_packw_free(&a2), gz_packw_free(&b1), gz_packw_free(&b2);
        gz_packw_free(&f1), gz_packw_free(&f2);
        free(w1), free(w2);
    }
    /* through a gz_packw_cache each source is packed once: a second tower's jobs for the same
     * weight (address and shape) borrow the first copy, byte-identical to an own copy; another
     * shape at the same address and a repeat inside one call are handled; freeing a view
     * leaves the copy (ASan would report a use after free) */
    {
        float *w1 = rnd(40 * 70, 1), *w2 = rnd(17 * 33, 1);
        gz_compute c = gz_compute_make(2, 1);
        gz_packw_cache *cache = gz_packw_cache_new();
        gz_packw a1 = {0}, a2 = {0}, b1 = {0}, b2 = {0}, b3 = {0}, b4 = {0}, own = {0};
        gz_packw_job ja[2] = {{w1, 40, 70, &a1, NULL}, {w2, 17, 33, &a2, NULL}};
        gz_packw_job jb[4] = {{w2, 17, 33, &b2, NULL},
                              {w1, 40, 70, &b1, NULL},
                              {w1, 20, 140, &b3, NULL},
                              {w1, 20, 140, &b4, NULL}};
        size_t bytes = 0;
        checks++;
        CHECK(cache != NULL);
        CHECK_OK(gz_packw_pack_all(&c, cache, GZ_PACK_BF16, ja, 2));
        CHECK(gz_packw_cache_count(cache, &bytes) == 2);
        CHECK(bytes == (size_t)(3 * 35 + 2 * 17) * 32 * sizeof(uint16_t));
        CHECK_OK(gz_packw_pack_all(&c, cache, GZ_PACK_BF16, jb, 4));
        CHECK(gz_packw_cache_count(cache, &bytes) == 3);
        CHECK(bytes == (size_t)(3 * 35 + 2 * 17 + 2 * 70) * 32 * sizeof(uint16_t));
        /* the f32 form of the same weights joins the same entries, each packed once */
        CHECK_OK(gz_packw_pack_all(&c, cache, GZ_PACK_F32, jb, 4));
        CHECK(gz_packw_cache_count(cache, &bytes) == 3);
        CHECK(bytes == (size_t)(3 * 35 + 2 * 17 + 2 * 70) * 32 * sizeof(uint16_t) +
                           (size_t)(48 * 70 + 32 * 33 + 32 * 140) * sizeof(float));
        CHECK(b1.f32 && b2.f32 && b3.f32 && b3.f32 == b4.f32 && !a1.f32 && b1.bf16 == a1.bf16);
        CHECK(a1.bf16 && a1.bf16 == b1.bf16 && a2.bf16 && a2.bf16 == b2.bf16);
        CHECK(b3.bf16 && b3.bf16 == b4.bf16 && b3.bf16 != a1.bf16 && b3.out == 20 && b3.in == 140);
        CHECK(a1.borrowed && b1.borrowed && b3.borrowed && a1.out == 40 && a1.in == 70);
        CHECK_OK(gz_packw_bf16(w1, 40, 70, &own));
        CHECK(!own.borrowed);
        gz_packw_free(&a1);
        CHECK(!a1.bf16 && b1.bf16 && !memcmp(b1.bf16, own.bf16, (size_t)3 * 35 * 32 * 2));
        gz_packw_free(&a2), gz_packw_free(&b1), gz_packw_free(&b2), gz_packw_free(&b3);
        gz_packw_free(&b4), gz_packw_free(&own);
        gz_packw_cache_free(cache);
        free(w1), free(w2);
    }
    /* the scratch limit reaches the bf16 path's out-of-memory return */
    if (has_bf16) {
        float *x = rnd(64 * 100, 1), *w = rnd(20 * 100, 1), *y = malloc(64 * 20 * sizeof *y);
        gz_packw wb = {0};
        CHECK_OK(gz_packw_bf16(w, 20, 100, &wb));
        gz_compute c = gz_compute_make(1, 1);
        c.bf16 = 1;
        c.scratch_limit = 1000;
        checks++;
        CHECK(gz_linear_cx(&c, x, w, &wb, NULL, y, 20, 64, 100, 20) == GZ_ENOMEM);
        gz_packw_free(&wb);
        free(x), free(w), free(y);
    }
}

/* ---- layernorm ---- */

static void ref_layernorm(float *y, const float *x, const float *w, const float *b, int n, int d,
                          float eps) {
    for (int i = 0; i < n; i++) {
        double m = 0, v = 0;
        for (int j = 0; j < d; j++)
            m += x[i * d + j];
        m /= d;
        for (int j = 0; j < d; j++)
            v += (x[i * d + j] - m) * (x[i * d + j] - m);
        v /= d;
        for (int j = 0; j < d; j++)
            y[i * d + j] = (float)((x[i * d + j] - m) / sqrt(v + eps) * w[j] + b[j]);
    }
}

static void test_layernorm(void) {
    const int shapes[][2] = {{1, 1}, {3, 7}, {4, 15}, {17, 64}, {6, 33}, {257, 768}, {5, 1001}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], d = shapes[s][1];
        float *x = rnd((size_t)n * d, 3), *w = rnd(d, 1), *b = rnd(d, 1);
        for (int i = 0; i < n * d; i++)
            x[i] += 5.0f; /* non-zero mean */
        float *y = malloc((size_t)n * d * sizeof *y), *r = malloc((size_t)n * d * sizeof *r);
        /* the vector path (split sums) against the plain loop: the same up to the last bits */
        gz_compute plain = cx;
        plain.simd = 0;
        gz_layernorm(&plain, r, x, w, b, n, d, 1e-5f);
        gz_layernorm(&cx, y, x, w, b, n, d, 1e-5f);
        char what[64];
        snprintf(what, sizeof what, "layernorm %dx%d vector vs plain", n, d);
        close_(what, y, r, (size_t)n * d, 1e-6f, 1e-6f);
        ref_layernorm(r, x, w, b, n, d, 1e-5f);
        snprintf(what, sizeof what, "layernorm %dx%d", n, d);
        close_(what, y, r, (size_t)n * d, 1e-5f, 1e-5f);
        gz_layernorm(&cx, x, x, w, b, n, d, 1e-5f); /* in place gives the same result */
        close_("layernorm in place", x, y, (size_t)n * d, 0, 0);
        /* the residual add fused in: bit-identical to gz_add then gz_layernorm, for y apart,
         * y = add (a ViT's h, a BERT's x) and y = acc; and gz_add_cx to gz_add */
        float *acc0 = rnd((size_t)n * d, 7), *add0 = rnd((size_t)n * d, 2);
        float *acc = malloc((size_t)n * d * sizeof *acc),
              *add = malloc((size_t)n * d * sizeof *add);
        float *racc = malloc((size_t)n * d * sizeof *racc);
        memcpy(racc, acc0, (size_t)n * d * sizeof *racc);
        gz_add(racc, add0, (size_t)n * d);
        gz_layernorm(&cx, r, racc, w, b, n, d, 1e-5f);
        for (int alias = 0; alias < 3; alias++) {
            memcpy(acc, acc0, (size_t)n * d * sizeof *acc);
            memcpy(add, add0, (size_t)n * d * sizeof *add);
            float *out = alias == 0 ? y : alias == 1 ? add : acc;
            gz_add_layernorm(&cx, acc, add, out, w, b, n, d, 1e-5f);
            snprintf(what, sizeof what, "add+layernorm %dx%d (y %s)", n, d,
                     alias == 0   ? "apart"
                     : alias == 1 ? "= add"
                                  : "= acc");
            close_(what, out, r, (size_t)n * d, 0, 0);
            if (alias != 2) close_("add+layernorm: the sum kept", acc, racc, (size_t)n * d, 0, 0);
        }
        memcpy(acc, acc0, (size_t)n * d * sizeof *acc);
        gz_add_cx(&cx, acc, add0, (size_t)n * d);
        close_("gz_add_cx", acc, racc, (size_t)n * d, 0, 0);
        free(acc0), free(add0), free(acc), free(add), free(racc);
        free(x), free(w), free(b), free(y), free(r);
    }
    /* constant rows: variance 0, output = bias exactly (eps 1e-12 as BERT) */
    int d = 768;
    float *x = malloc(2 * d * sizeof *x), *w = rnd(d, 1), *b = rnd(d, 1),
          *y = malloc(2 * d * sizeof *y);
    for (int j = 0; j < d; j++)
        x[j] = 0.1f, x[d + j] = -12345.678f;
    gz_layernorm(&cx, y, x, w, b, 2, d, 1e-12f);
    float want[2 * 768];
    memcpy(want, b, d * sizeof *b);
    memcpy(want + d, b, d * sizeof *b);
    close_("layernorm constant rows", y, want, 2 * (size_t)d, 0, 0);
    free(x), free(w), free(b), free(y);
}

/* ---- activations ---- */

static void test_activations(void) {
    size_t n = 70001; /* odd and above the gz_parallel_for threshold */
    float *x = rnd(n, 8), *y = malloc(n * sizeof *y), *r = malloc(n * sizeof *r);
    x[0] = 0, x[1] = -30, x[2] = 30, x[3] = 1e-6f, x[4] = -1e-6f;
    const gz_act acts[] = {GZ_ACT_GELU, GZ_ACT_GELU_TANH, GZ_ACT_QUICK_GELU, GZ_ACT_RELU};
    const char *names[] = {"gelu", "gelu_tanh", "quick_gelu", "relu"};
    for (int a = 0; a < 4; a++) {
        memcpy(y, x, n * sizeof *y);
        gz_activate(&cx, acts[a], y, n);
        for (size_t i = 0; i < n; i++) {
            double v = x[i];
            switch (acts[a]) {
            case GZ_ACT_GELU: r[i] = (float)(v * 0.5 * erfc(-v / sqrt(2.0))); break;
            case GZ_ACT_GELU_TANH:
                /* 0.5 v (1 + tanh(u)) without cancellation in the double reference either */
                r[i] =
                    (float)(v / (1.0 + exp(-2.0 * sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
                break;
            case GZ_ACT_QUICK_GELU: r[i] = (float)(v / (1.0 + exp(-1.702 * v))); break;
            case GZ_ACT_RELU: r[i] = v > 0 ? (float)v : 0.0f; break;
            }
        }
        /* float vs double reference: a few ulp relative, plus an absolute floor near zero */
        close_(names[a], y, r, n, 1e-7f, 2e-6f);
    }
    /* direct entry points agree with gz_activate */
    memcpy(y, x, n * sizeof *y);
    memcpy(r, x, n * sizeof *r);
    gz_gelu(&cx, y, n);
    gz_activate(&cx, GZ_ACT_GELU, r, n);
    close_("gz_gelu == activate", y, r, n, 0, 0);
    free(x), free(y), free(r);
}

/* GELU over its whole float range against double erfc: a dense sweep of [-20, 20] (every
 * vector lane and both branches of the vector erf/erfc), relative error bounds per band (the
 * float exponent's rounding grows with x^2 on the negative side), plus special values. */
static void test_gelu_range(void) {
    const size_t n = 400001;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = -20.0f + 40.0f * (float)((double)i / (double)(n - 1));
    float *y = malloc(n * sizeof *y);
    memcpy(y, x, n * sizeof *y);
    gz_gelu(&cx, y, n);
    /* bands: [lo, hi) and the largest relative error allowed */
    const struct { double lo, hi, rel; } band[] = {{-2, 21, 1e-6}, {-6, -2, 4e-6}, {-10, -6, 1e-5}};
    double worst[3] = {0};
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double v = x[i], want = v * 0.5 * erfc(-v / sqrt(2.0));
        if (v < -10) { /* |gelu| < 1e-22: absolute */
            ok &= fabs(y[i] - want) <= 1e-22;
            continue;
        }
        double rel = want != 0 ? fabs(y[i] - want) / fabs(want) : fabs(y[i]);
        for (int b = 0; b < 3; b++)
            if (v >= band[b].lo && v < band[b].hi && rel > worst[b]) worst[b] = rel;
    }
    for (int b = 0; b < 3; b++) {
        fprintf(stderr, "  gelu sweep [%g, %g): max relative error %.2e (bound %.0e)\n", band[b].lo,
                band[b].hi, worst[b], band[b].rel);
        ok &= worst[b] <= band[b].rel;
    }
    float sp[5] = {0.0f, INFINITY, NAN, 1e-30f, -1e-30f};
    gz_gelu(&cx, sp, 5);
    ok &= sp[0] == 0.0f && sp[1] == INFINITY && isnan(sp[2]) && sp[3] == 0.5e-30f &&
          sp[4] == -0.5e-30f;
    CHECK(ok);
    checks++;
    free(x), free(y);
}

/* ---- softmax, l2 ---- */

static void test_softmax(void) {
    const int shapes[][2] = {{1, 1}, {4, 3}, {33, 77}, {300, 257}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        float *x = rnd((size_t)rows * cols, 10), *r = malloc((size_t)rows * cols * sizeof *r);
        for (int i = 0; i < rows; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < cols; j++)
                mx = fmax(mx, x[i * cols + j]);
            for (int j = 0; j < cols; j++)
                sum += exp(x[i * cols + j] - mx);
            for (int j = 0; j < cols; j++)
                r[i * cols + j] = (float)(exp(x[i * cols + j] - mx) / sum);
        }
        gz_softmax_rows(&cx, x, rows, cols);
        char what[64];
        snprintf(what, sizeof what, "softmax %dx%d", rows, cols);
        close_(what, x, r, (size_t)rows * cols, 1e-7f, 1e-5f);
        free(x), free(r);
    }
    /* large logits: no overflow, no NaN */
    float big[2][4] = {{1000, 1000, -1000, 999}, {-1000, -1000, -1000, -1001}};
    gz_softmax_rows(&cx, &big[0][0], 2, 4);
    double e = exp(-1.0);
    float want[8] = {(float)(1 / (2 + e)), (float)(1 / (2 + e)), 0,
                     (float)(e / (2 + e)), (float)(1 / (3 + e)), (float)(1 / (3 + e)),
                     (float)(1 / (3 + e)), (float)(e / (3 + e))};
    close_("softmax large logits", &big[0][0], want, 8, 1e-7f, 1e-6f);
    /* -inf entries get exactly zero */
    float m[3] = {-INFINITY, 2.0f, -INFINITY}, mw[3] = {0, 1, 0};
    gz_softmax_rows(&cx, m, 1, 3);
    close_("softmax -inf", m, mw, 3, 0, 0);
}

static void test_l2(void) {
    int n = 9, d = 257;
    float *x = rnd((size_t)n * d, 4), *r = malloc((size_t)n * d * sizeof *r);
    for (int j = 0; j < d; j++)
        x[3 * d + j] = 0; /* zero row stays zero */
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int j = 0; j < d; j++)
            ss += (double)x[i * d + j] * x[i * d + j];
        double nr = fmax(sqrt(ss), 1e-12);
        for (int j = 0; j < d; j++)
            r[i * d + j] = (float)(x[i * d + j] / nr);
    }
    gz_l2_normalize(x, n, d, 1e-12f);
    close_("l2_normalize", x, r, (size_t)n * d, 1e-7f, 1e-6f);
    free(x), free(r);
}

/* ---- attention ---- */

static void ref_attention(const float *q, int qs, const float *k, const float *v, int kvs,
                          float *out, int B, int Tq, int Tk, int H, int Dh, const int32_t *mask,
                          int causal, float scale) {
    double *w = malloc((size_t)Tk * sizeof *w);
    int D = H * Dh;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < Tq; t++) {
                const float *qr = q + ((size_t)b * Tq + t) * qs + h * Dh;
                double mx = -INFINITY;
                for (int j = 0; j < Tk; j++) {
                    int ok = (!mask || mask[b * Tk + j]) && (!causal || j <= t);
                    if (!ok) {
                        w[j] = -INFINITY;
                        continue;
                    }
                    const float *kr = k + ((size_t)b * Tk + j) * kvs + h * Dh;
                    double s = 0;
                    for (int c = 0; c < Dh; c++)
                        s += (double)qr[c] * kr[c];
                    w[j] = s * scale;
                    mx = fmax(mx, w[j]);
                }
                double sum = 0;
                for (int j = 0; j < Tk; j++)
                    sum += w[j] = (w[j] == -INFINITY ? 0 : exp(w[j] - mx));
                for (int c = 0; c < Dh; c++) {
                    double acc = 0;
                    for (int j = 0; j < Tk; j++)
                        acc += w[j] / sum * v[((size_t)b * Tk + j) * kvs + h * Dh + c];
                    out[((size_t)b * Tq + t) * D + h * Dh + c] = (float)acc;
                }
            }
    free(w);
}

static void run_attention(const char *what, int B, int Tq, int Tk, int H, int Dh, int use_mask,
                          int causal, int fused) {
    int D = H * Dh;
    /* fused: q, k, v interleaved in one (B, T, 3D) buffer as a QKV projection writes them */
    int qs = fused ? 3 * D : D, kvs = fused ? 3 * D : D;
    float *qkv = NULL, *q, *k, *v;
    if (fused) {
        qkv = rnd((size_t)B * Tq * 3 * D, 2);
        q = qkv, k = qkv + D, v = qkv + 2 * D;
    } else {
        q = rnd((size_t)B * Tq * D, 2);
        k = rnd((size_t)B * Tk * D, 2);
        v = rnd((size_t)B * Tk * D, 2);
    }
    int32_t *mask = NULL;
    if (use_mask) {
        mask = malloc((size_t)B * Tk * sizeof *mask);
        for (int b = 0; b < B; b++) /* right padding: sequence b keeps Tk - b keys (at least 1) */
            for (int j = 0; j < Tk; j++)
                mask[b * Tk + j] = j < (Tk - b > 0 ? Tk - b : 1);
    }
    if (use_mask) /* masked keys must get exactly zero weight: poison their values */
        for (int b = 0; b < B; b++)
            for (int j = 0; j < Tk; j++)
                if (!mask[b * Tk + j])
                    for (int c = 0; c < D; c++)
                        v[((size_t)b * Tk + j) * kvs + c] = 1e30f;
    float *out = malloc((size_t)B * Tq * D * sizeof *out),
          *ref = malloc((size_t)B * Tq * D * sizeof *ref);
    float scale = 1.0f / sqrtf((float)Dh);
    CHECK_OK(gz_attention(&cx, q, qs, k, v, kvs, out, B, Tq, Tk, H, Dh, mask, causal, scale));
    ref_attention(q, qs, k, v, kvs, ref, B, Tq, Tk, H, Dh, mask, causal, scale);
    close_(what, out, ref, (size_t)B * Tq * D, 1e-5f, 1e-4f);
    if (fused)
        free(qkv);
    else
        free(q), free(k), free(v);
    free(mask), free(out), free(ref);
}

static void test_attention(void) {
    run_attention("attention plain", 2, 7, 7, 4, 8, 0, 0, 0);
    run_attention("attention padding mask", 3, 11, 11, 2, 16, 1, 0, 0);
    run_attention("attention causal", 2, 13, 13, 4, 8, 0, 1, 0);
    run_attention("attention causal+mask fused qkv", 3, 9, 9, 3, 12, 1, 1, 1);
    run_attention("attention cross Tq<Tk", 2, 5, 17, 4, 8, 0, 0, 0);
    run_attention("attention cross Tq>Tk masked", 3, 35, 17, 4, 8, 1, 0, 0);
    run_attention("attention one key", 1, 3, 1, 1, 5, 0, 0, 0);
    run_attention("attention vit-sized", 2, 197, 197, 12, 64, 0, 0, 1);
}

/* The vector path (pair-parallel register tiles) against the reference path (OpenBLAS per pair)
 * and the double reference, on random shapes: odd Tq/Tk/Dh (partial tiles and panels, Dh not a
 * multiple of the vector width), several query blocks per pair, cross-attention Tq != Tk, random
 * key masks, causal, row strides wider than H*Dh, 1-3 threads. Guard floats after the output
 * catch writes past its end. */
/* Tolerances. The double reference is the real check (ATTN_REF_*). The two float paths are also
 * held close to each other, but each carries its own rounding against the double reference:
 * measured up to 1.1e-6 absolute for the AVX2 path and 4.8e-7 for the OpenBLAS path (lvl 1,
 * B=3 Tq=112 Tk=9 H=4 Dh=64, outputs of magnitude ~1 with cancellations to ~3e-4), and the
 * OpenBLAS kernel itself changes with OPENBLAS_CORETYPE (Haswell here, Cooperlake on a bare
 * machine). So the two paths may differ by the sum of both errors: 2e-6 bounds that, and 1e-6
 * (the value before) failed on a bare Debian 12 machine with the same code. */
#define ATTN_PATHS_ATOL 2e-6f
#define ATTN_PATHS_RTOL 1e-5f
#define ATTN_REF_ATOL 1e-5f
#define ATTN_REF_RTOL 1e-4f

static void test_attention_paths(void) {
    const int dhs[] = {1, 5, 8, 12, 16, 24, 40, 64, 72, 80};
    const int guard = 256;
    for (int it = 0; it < 60; it++) {
        int B = 1 + (int)((frand() + 1) * 1.5f), H = 1 + (int)((frand() + 1) * 2.0f);
        int Dh = dhs[(int)((frand() + 1) * 5.0f) % 10];
        int Tq = 1 + (int)((frand() + 1) * 70.0f),
            Tk = it % 3 ? Tq : 1 + (int)((frand() + 1) * 70.0f);
        if (it == 0) Tq = Tk = 197, H = 3, Dh = 64, B = 2; /* ViT-sized, several blocks per pair */
        int causal = frand() > 0.3f, use_mask = frand() > 0.0f;
        int D = H * Dh, qs = D + (it % 4) * 3, kvs = D + (it % 5) * 2;
        int threads = 1 + it % 3;
        float *q = rnd((size_t)B * Tq * qs, 2), *k = rnd((size_t)B * Tk * kvs, 2);
        float *v = rnd((size_t)B * Tk * kvs, 2);
        int32_t *mask = NULL;
        if (use_mask) {
            mask = malloc((size_t)B * Tk * sizeof *mask);
            for (int i = 0; i < B * Tk; i++)
                mask[i] = frand() > -0.4f;
            for (int b = 0; b < B; b++)
                mask[b * Tk] = 1; /* every row keeps a key */
        }
        size_t n = (size_t)B * Tq * D;
        float *fast = malloc((n + guard) * sizeof *fast), *plain = malloc(n * sizeof *plain);
        float *ref = malloc(n * sizeof *ref);
        for (int i = 0; i < guard; i++)
            fast[n + i] = 12345.0f;
        float scale = 1.0f / sqrtf((float)Dh);
        gz_compute cf = cx, cp = cx;
        cf.n_threads = cp.n_threads = threads;
        cp.simd = 0;
        int lvl = gz_compute_simd_level(&cf);
        CHECK_OK(gz_attention(&cf, q, qs, k, v, kvs, fast, B, Tq, Tk, H, Dh, mask, causal, scale));
        CHECK_OK(gz_attention(&cp, q, qs, k, v, kvs, plain, B, Tq, Tk, H, Dh, mask, causal, scale));
        ref_attention(q, qs, k, v, kvs, ref, B, Tq, Tk, H, Dh, mask, causal, scale);
        char what[160];
        snprintf(what, sizeof what,
                 "attention paths lvl %d B=%d Tq=%d Tk=%d H=%d Dh=%d mask=%d causal=%d threads=%d",
                 lvl, B, Tq, Tk, H, Dh, use_mask, causal, threads);
        close_(what, fast, plain, n, ATTN_PATHS_ATOL, ATTN_PATHS_RTOL);
        close_(what, fast, ref, n, ATTN_REF_ATOL, ATTN_REF_RTOL);
        int guard_ok = 1;
        for (int i = 0; i < guard; i++)
            guard_ok &= fast[n + i] == 12345.0f;
        if (!guard_ok) fprintf(stderr, "%s: wrote past the output\n", what);
        CHECK(guard_ok);
        checks++;
        free(q), free(k), free(v), free(mask), free(fast), free(plain), free(ref);
    }
}

/* ---- patch embedding ---- */

static void test_patch_embed(void) {
    const int cfg[][5] = {
        {1, 3, 16, 4, 8}, {2, 3, 48, 12, 48}, {3, 1, 10, 5, 7}, {1, 3, 40, 10, 33}};
    for (size_t s = 0; s < sizeof cfg / sizeof cfg[0]; s++) {
        int B = cfg[s][0], C = cfg[s][1], S = cfg[s][2], p = cfg[s][3], D = cfg[s][4], G = S / p;
        float *px = rnd((size_t)B * C * S * S, 1), *w = rnd((size_t)D * C * p * p, 1),
              *b = rnd(D, 1);
        size_t no = (size_t)B * G * G * D;
        float *out = malloc(no * sizeof *out), *ref = malloc(no * sizeof *ref);
        for (int bi = 0; bi < B; bi++)
            for (int gy = 0; gy < G; gy++)
                for (int gx = 0; gx < G; gx++)
                    for (int d = 0; d < D; d++) {
                        double acc = b[d];
                        for (int c = 0; c < C; c++)
                            for (int y = 0; y < p; y++)
                                for (int x = 0; x < p; x++)
                                    acc += (double)w[((d * C + c) * p + y) * p + x] *
                                           px[(((size_t)bi * C + c) * S + gy * p + y) * S + gx * p +
                                              x];
                        ref[(((size_t)bi * G + gy) * G + gx) * D + d] = (float)acc;
                    }
        gz_patch_embed(&cx, px, w, b, out, B, C, S, p, D);
        char what[64];
        snprintf(what, sizeof what, "patch_embed B%d C%d S%d p%d D%d", B, C, S, p, D);
        close_(what, out, ref, no, 1e-4f, 1e-4f);
        /* no memory for the columns: the plain convolution loop, the same result */
        gz_compute tight = cx;
        tight.scratch_limit = 1;
        memset(out, 0, no * sizeof *out);
        gz_patch_embed(&tight, px, w, b, out, B, C, S, p, D);
        snprintf(what, sizeof what, "patch_embed B%d C%d S%d p%d D%d no scratch", B, C, S, p, D);
        close_(what, out, ref, no, 1e-4f, 1e-4f);
        /* the caller's scratch for the columns (vit.c: its MLP buffer) */
        float *cols = malloc((size_t)B * G * G * C * p * p * sizeof *cols);
        memset(out, 0, no * sizeof *out);
        gz_patch_embed_cols(&cx, px, w, b, out, B, C, S, p, D, cols);
        snprintf(what, sizeof what, "patch_embed_cols B%d C%d S%d p%d D%d", B, C, S, p, D);
        close_(what, out, ref, no, 1e-4f, 1e-4f);
        free(cols);
        free(px), free(w), free(b), free(out), free(ref);
    }
}

/* ---- half precision ---- */

static float bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Exact reference: round a double to the nearest f16 value (ties to even) by search. */
static double ref_round_f16(double x) {
    double a = fabs(x);
    if (a >= 65520.0) return copysign(INFINITY, x);
    int e;
    frexp(a, &e);                         /* a = m * 2^e, m in [0.5, 1) */
    int exp2 = e - 1 < -14 ? -14 : e - 1; /* subnormals share 2^-14's spacing */
    double ulp = ldexp(1.0, exp2 - 10);
    double q = a / ulp, fl = floor(q), r = q - fl;
    if (r > 0.5 || (r == 0.5 && fmod(fl, 2.0) == 1.0)) fl += 1;
    return copysign(fl * ulp, x);
}

static void test_half(void) {
    int bad = 0;
    /* every f16 bit pattern round-trips through f32 exactly (NaNs stay NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = gz_f16_to_f32((uint16_t)h);
        uint16_t back = gz_f32_to_f16(f);
        int isnan16 = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
        if (isnan16 ? !isnan(f) || (back & 0x7c00u) != 0x7c00u || !(back & 0x3ffu) : back != h)
            bad++;
    }
    CHECK(bad == 0);
    checks++;
    /* known values */
    CHECK(gz_f16_to_f32(0x3c00) == 1.0f);
    CHECK(gz_f16_to_f32(0xc000) == -2.0f);
    CHECK(gz_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(gz_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(gz_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
    CHECK(isinf(gz_f16_to_f32(0x7c00)) && gz_f16_to_f32(0xfc00) < 0);
    CHECK(gz_f32_to_f16(65520.0f) == 0x7c00); /* tie rounds up to inf */
    CHECK(gz_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(gz_f32_to_f16(ldexpf(1.0f, -25)) == 0); /* tie to even: 0 */
    CHECK(gz_f32_to_f16(ldexpf(1.5f, -25)) == 1);
    CHECK(gz_f32_to_f16(-0.0f) == 0x8000);
    CHECK(gz_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00);     /* tie to even down */
    CHECK(gz_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02); /* tie to even up */
    checks += 13;
    /* random floats over the whole f16 range against the exact reference */
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        float f = ldexpf(frand(), (int)(frand() * 20.0f) - 6);
        if (i % 7 == 0) f = ldexpf(frand(), -14 - (i % 12)); /* subnormal range */
        double want = ref_round_f16(f);
        float got = gz_f16_to_f32(gz_f32_to_f16(f));
        if ((double)got != want && !(isinf(got) && isinf(want))) {
            if (bad++ < 5) fprintf(stderr, "f16 round %.9g: got %.9g want %.9g\n", f, got, want);
        }
    }
    CHECK(bad == 0);
    checks++;
    /* bf16: every pattern round-trips; rounding to nearest even */
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = gz_bf16_to_f32((uint16_t)h);
        uint16_t back = gz_f32_to_bf16(f);
        int isnan16 = (h & 0x7f80u) == 0x7f80u && (h & 0x7fu);
        if (isnan16 ? !isnan(gz_bf16_to_f32(back)) : back != h) bad++;
    }
    CHECK(bad == 0);
    CHECK(gz_f32_to_bf16(bits(0x3f808000u)) == 0x3f80); /* tie, even stays */
    CHECK(gz_f32_to_bf16(bits(0x3f818000u)) == 0x3f82); /* tie, odd rounds up */
    CHECK(gz_f32_to_bf16(bits(0x3f808001u)) == 0x3f81);
    CHECK(gz_f32_to_bf16(bits(0x7f7fffffu)) == 0x7f80); /* FLT_MAX rounds to inf */
    CHECK(isnan(gz_bf16_to_f32(gz_f32_to_bf16(NAN))));
    checks += 6;
}

static void mark_range(void *ctx, size_t i0, size_t i1) {
    int *hits = ctx;
    for (size_t i = i0; i < i1; i++)
        hits[i]++;
}

/* Every item of [0, n) done exactly once, for a grid of sizes, least shares and thread counts:
 * on threads started per loop (pool NULL: gz_pool_for falls back to gz_parallel_for) or on a
 * pool; with the static ranges (grain 0) or claimed ones (gz_pool_for_guided, grain >= 1). */
static void test_parallel_for(gz_pool *pool) {
    const size_t ns[] = {0, 1, 7, 1000, 100003};
    const size_t mins[] = {1, 3, 500, 1u << 20};
    const size_t grains[] = {0, 1, 4, 999};
    for (size_t a = 0; a < 5; a++)
        for (size_t m = 0; m < 4; m++)
            for (int t = 0; t <= 5; t++)
                for (size_t g = 0; g < 4; g++) {
                    size_t n = ns[a];
                    int *hits = calloc(n + 1, sizeof *hits);
                    if (grains[g])
                        gz_pool_for_guided(pool, n, mins[m], grains[g], t, mark_range, hits);
                    else
                        gz_pool_for(pool, n, mins[m], t, mark_range, hits);
                    int ok = 1;
                    for (size_t i = 0; i < n; i++)
                        ok &= hits[i] == 1;
                    ok &= hits[n] == 0;
                    if (!ok)
                        fprintf(stderr, "%s n=%zu min=%zu threads=%d grain=%zu\n",
                                pool ? "pool_for" : "parallel_for", n, mins[m], t, grains[g]);
                    CHECK(ok);
                    checks++;
                    free(hits);
                }
}

/* Items run by threads other than the loop's caller, each of which sleeps `slow_us` per item
 * (a core the system gives to something else). */
typedef struct {
    pthread_t caller;
    unsigned slow_us;
    atomic_int others;
} slowed_loop;

static void slowed_range(void *ctx, size_t i0, size_t i1) {
    slowed_loop *l = ctx;
    if (pthread_equal(pthread_self(), l->caller)) return;
    atomic_fetch_add(&l->others, (int)(i1 - i0));
    usleep(l->slow_us * (unsigned)(i1 - i0));
}

/* A worker slowed 1 ms per item: with the static split it runs its half (32 of 64 items); with
 * claimed ranges it runs no more than one claim (at most 64 / 4 items) while the caller takes
 * the rest, unless the caller itself is held off the CPU for over 12 ms. */
static void test_pool_guided_balance(void) {
    gz_pool *pool = gz_pool_create(2);
    CHECK(pool != NULL);
    slowed_loop fixed = {pthread_self(), 1000, 0}, claimed = {pthread_self(), 1000, 0};
    gz_pool_for(pool, 64, 1, 2, slowed_range, &fixed);
    gz_pool_for_guided(pool, 64, 1, 1, 2, slowed_range, &claimed);
    printf("  slowed worker: %d of 64 items with the static split, %d claimed\n",
           atomic_load(&fixed.others), atomic_load(&claimed.others));
    CHECK(atomic_load(&fixed.others) == 32);
    CHECK(atomic_load(&claimed.others) <= 16);
    checks += 3;
    gz_pool_free(pool);
}

static void count_range(void *ctx, size_t i0, size_t i1);

/* Items hit by the loops of one pool user; wrong = items hit other than once. */
typedef struct {
    gz_pool *pool;
    int rounds, wrong, nap_every;
} pool_user;

static void *pool_user_main(void *arg) {
    pool_user *u = arg;
    const size_t n = 5000;
    int *hits = malloc((n + 1) * sizeof *hits);
    for (int r = 0; r < u->rounds; r++) {
        memset(hits, 0, (n + 1) * sizeof *hits);
        if (r % 3 == 2)
            gz_pool_for_guided(u->pool, n, 1 + (size_t)r % 700, (size_t)r % 9, 1 + r % 5,
                               mark_range, hits);
        else
            gz_pool_for(u->pool, n, 1 + (size_t)r % 700, 1 + r % 5, mark_range, hits);
        for (size_t i = 0; i <= n; i++)
            u->wrong += hits[i] != (i < n);
        /* now and then longer than the workers spin, so they go to sleep and are woken */
        if (u->nap_every && r % u->nap_every == 0) usleep(2 * GZ_POOL_SPIN_US + 100);
    }
    free(hits);
    return NULL;
}

/* The kernel thread ids that ran ranges, for test_pool_lanes. */
typedef struct {
    pthread_mutex_t mu;
    pid_t tid[64];
    int n, overflow;
} tid_set;

typedef struct {
    gz_pool *pool;
    tid_set *seen;
    pthread_barrier_t *start;
} lane_user;

static void note_tid(void *ctx, size_t i0, size_t i1) {
    tid_set *s = ctx;
    (void)i0, (void)i1;
    pid_t me = (pid_t)syscall(SYS_gettid);
    usleep(300); /* long enough that the two callers' loops overlap */
    pthread_mutex_lock(&s->mu);
    int known = 0;
    for (int i = 0; i < s->n; i++)
        known |= s->tid[i] == me;
    if (!known && s->n < 64) s->tid[s->n++] = me;
    if (!known && s->n >= 64) s->overflow = 1;
    pthread_mutex_unlock(&s->mu);
}

static void *lane_user_main(void *arg) {
    lane_user *u = arg;
    pthread_barrier_wait(u->start);
    for (int r = 0; r < 40; r++)
        gz_pool_for(u->pool, 2, 1, 2, note_tid, u->seen);
    return NULL;
}

/* Two threads running loops at once on a pool of two lanes each get a lane of their own: over
 * 40 loops each, only the two callers and the two lanes' workers ever run a range. With one
 * lane, the caller that finds it busy starts a thread per loop, and far more thread ids run. */
static int threads_seen(int lanes) {
    gz_pool *pool = gz_pool_create_lanes(2, lanes);
    tid_set seen = {.n = 0, .overflow = 0};
    pthread_mutex_init(&seen.mu, NULL);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    lane_user u = {pool, &seen, &start};
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        CHECK(pthread_create(&th[t], NULL, lane_user_main, &u) == 0);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);
    pthread_mutex_destroy(&seen.mu);
    gz_pool_free(pool);
    return seen.overflow ? 64 : seen.n;
}

static void test_pool_lanes(void) {
    int two = threads_seen(2), one = threads_seen(1);
    printf("  pool lanes: %d threads ran ranges with 2 lanes, %d with 1\n", two, one);
    CHECK(two <= 4);
    CHECK(one > 4);
    checks += 2;
}

/* The persistent pool: the same split and contract as gz_parallel_for, thousands of loops in
 * a row (workers spinning) and with pauses (workers asleep, woken), and two threads sharing
 * one pool at once (the second falls back to threads per loop). A lost wake-up hangs here;
 * ctest's timeout turns that into a failure. */
static void test_pool(void) {
    CHECK(gz_pool_create(1) == NULL);
    gz_pool_free(NULL);
    checks += 1;
    gz_pool *pool = gz_pool_create(3);
    CHECK(pool != NULL);
    checks++;
    test_parallel_for(pool);
    /* ranges: at most the pool's size (3), whatever is asked */
    atomic_int ranges = 0;
    gz_pool_for(pool, 1000, 1, 8, count_range, &ranges);
    CHECK(atomic_load(&ranges) == 3);
    atomic_store(&ranges, 0);
    gz_pool_for(pool, 1000, 1, 2, count_range, &ranges);
    CHECK(atomic_load(&ranges) == 2);
    checks += 2;
    pool_user alone = {pool, 3000, 0, 0}, napping = {pool, 40, 0, 4};
    pool_user_main(&alone);
    pool_user_main(&napping);
    CHECK(alone.wrong == 0 && napping.wrong == 0);
    checks++;
    pool_user both[2] = {{pool, 2000, 0, 50}, {pool, 2000, 0, 0}};
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        CHECK(pthread_create(&th[t], NULL, pool_user_main, &both[t]) == 0);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    if (both[0].wrong || both[1].wrong)
        fprintf(stderr, "pool shared by two threads: %d and %d wrong items\n", both[0].wrong,
                both[1].wrong);
    CHECK(both[0].wrong == 0 && both[1].wrong == 0);
    checks += 3;
    gz_pool_free(pool);
    gz_pool_free(gz_pool_create(2)); /* freed while its worker may still spin */
    test_pool_lanes();
    test_pool_guided_balance();
}

static void test_threads(void) {
    test_parallel_for(NULL);
    test_pool();
    CHECK(gz_compute_make(1, 1).n_threads == 1);
    CHECK(gz_compute_make(0, 1).n_threads == gz_cpu_count() && gz_cpu_count() >= 1);
    CHECK(gz_compute_make(3, 0).simd == 0 && gz_compute_make(3, 1).simd == GZ_SIMD_BEST);
    CHECK(gz_compute_make(3, 1).balance == 1);
    checks++;
    /* OpenBLAS's count is the one process-wide setting */
    gz_blas_set_threads(1);
    CHECK(openblas_get_num_threads() == 1);
    gz_blas_set_threads(0);
    CHECK(openblas_get_num_threads() == gz_cpu_count());
    checks += 5;
}

/* ---- compute contexts ---- */

static void count_range(void *ctx, size_t i0, size_t i1) {
    (void)i0, (void)i1;
    atomic_fetch_add((atomic_int *)ctx, 1);
}

/* Ranges gz_parallel_for splits 1000 unit items into under c: min(n_threads, 1000). */
static int ranges_under(const gz_compute *c) {
    atomic_int ranges = 0;
    gz_parallel_for(1000, 1, c->n_threads, count_range, &ranges);
    return atomic_load(&ranges);
}

typedef struct {
    gz_compute c;
    const float *x, *want; /* input, and gelu of it under c computed alone */
    size_t n;
    int rounds, bad_values, bad_ranges;
} ctx_job;

static void *ctx_main(void *arg) {
    ctx_job *j = arg;
    float *y = gz_test_alloc_f(j->n);
    for (int r = 0; r < j->rounds; r++) {
        memcpy(y, j->x, j->n * sizeof *y);
        gz_gelu(&j->c, y, j->n);
        j->bad_values += memcmp(y, j->want, j->n * sizeof *y) != 0;
        j->bad_ranges += ranges_under(&j->c) != j->c.n_threads;
    }
    free(y);
    return NULL;
}

/* Two contexts, one plain and single-threaded, one vectorised with 3 threads, used one after
 * the other and then from two threads at once: each call's result is bit-identical to what
 * its own context gives alone, and gz_parallel_for under each splits into its own count of
 * ranges. With a process-wide switch the interleaved and concurrent calls would mix them. */
static void test_contexts(void) {
    const size_t n = 300001; /* above the activations' split threshold: 2 ranges at 3 threads */
    float *x = rnd(n, 8), *plain = gz_test_alloc_f(n), *vec = gz_test_alloc_f(n);
    float *y = gz_test_alloc_f(n);
    gz_compute cp = gz_compute_make(1, 0), cv = gz_compute_make(3, 1);
    memcpy(plain, x, n * sizeof *x);
    gz_gelu(&cp, plain, n);
    memcpy(vec, x, n * sizeof *x);
    gz_gelu(&cv, vec, n);
    if (gz_compute_simd_level(&cv) > 0) { /* the two paths round differently somewhere */
        CHECK(memcmp(plain, vec, n * sizeof *x) != 0);
        checks++;
    }
    for (int r = 0; r < 4; r++) {
        const gz_compute *c = r % 2 ? &cv : &cp;
        memcpy(y, x, n * sizeof *x);
        gz_gelu(c, y, n);
        CHECK(memcmp(y, r % 2 ? vec : plain, n * sizeof *y) == 0);
        CHECK(ranges_under(c) == c->n_threads);
        checks += 2;
    }
    ctx_job jobs[2] = {{cp, x, plain, n, 20, 0, 0}, {cv, x, vec, n, 20, 0, 0}};
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        CHECK(pthread_create(&th[t], NULL, ctx_main, &jobs[t]) == 0);
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
        if (jobs[t].bad_values || jobs[t].bad_ranges)
            fprintf(stderr, "context %d (threads %d, simd %d): %d wrong results, %d wrong splits\n",
                    t, jobs[t].c.n_threads, jobs[t].c.simd, jobs[t].bad_values, jobs[t].bad_ranges);
        CHECK(jobs[t].bad_values == 0 && jobs[t].bad_ranges == 0);
        checks++;
    }
    free(x), free(plain), free(vec), free(y);
}

/* gz_attention without scratch is an error, never a result: with less scratch than one row
 * of scores (Tk above the stack fallback's 4096 floats, or a scratch limit of a few bytes) it
 * returns GZ_ENOMEM and leaves out as it was (it used to write zeros there, which were stored
 * as a valid embedding). A limit that refuses the heap scratch but leaves room for a few rows
 * takes the row-by-row fallback, which must give the right result. Under cx's vector level. */
static void test_attention_nomem(void) {
    const int B = 2, H = 2, Dh = 8, D = H * Dh;
    const struct {
        int Tq, Tk;
        size_t limit; /* bytes */
    } fail[] = {{3, 5000, 1}, {7, 50, 16}};
    for (size_t i = 0; i < sizeof fail / sizeof fail[0]; i++) {
        int Tq = fail[i].Tq, Tk = fail[i].Tk;
        float *q = rnd((size_t)B * Tq * D, 2), *k = rnd((size_t)B * Tk * D, 2);
        float *v = rnd((size_t)B * Tk * D, 2), *out = gz_test_alloc_f((size_t)B * Tq * D);
        for (size_t j = 0; j < (size_t)B * Tq * D; j++)
            out[j] = 7.0f;
        gz_compute c = cx;
        c.scratch_limit = fail[i].limit;
        gz_status st = gz_attention(&c, q, D, k, v, D, out, B, Tq, Tk, H, Dh, NULL, 0, 0.35f);
        int untouched = 1;
        for (size_t j = 0; j < (size_t)B * Tq * D; j++)
            untouched &= out[j] == 7.0f;
        if (st != GZ_ENOMEM || !untouched)
            fprintf(stderr, "attention no scratch Tq=%d Tk=%d limit %zu: status %d, out %s\n", Tq,
                    Tk, c.scratch_limit, st, untouched ? "untouched" : "written");
        CHECK(st == GZ_ENOMEM && untouched);
        CHECK(strstr(gz_last_error(), "attention") != NULL);
        checks += 2;
        free(q), free(k), free(v), free(out);
    }
    /* heap refused, a few rows of stack allowed: the fallback's result */
    const int Tq = 77, Tk = 77;
    float *q = rnd((size_t)B * Tq * D, 2), *k = rnd((size_t)B * Tk * D, 2);
    float *v = rnd((size_t)B * Tk * D, 2);
    float *out = gz_test_alloc_f((size_t)B * Tq * D), *ref = gz_test_alloc_f((size_t)B * Tq * D);
    int32_t *mask = malloc((size_t)B * Tk * sizeof *mask);
    for (int j = 0; j < B * Tk; j++)
        mask[j] = j % Tk < Tk - 5 * (j / Tk);
    gz_compute c = cx;
    c.scratch_limit = 1024 * sizeof(float); /* 13 rows of 77 scores, below any heap scratch */
    CHECK_OK(gz_attention(&c, q, D, k, v, D, out, B, Tq, Tk, H, Dh, mask, 1, 0.35f));
    ref_attention(q, D, k, v, D, ref, B, Tq, Tk, H, Dh, mask, 1, 0.35f);
    close_("attention row fallback under a scratch limit", out, ref, (size_t)B * Tq * D, 1e-5f,
           1e-4f);
    free(q), free(k), free(v), free(out), free(ref), free(mask);
}

int main(void) {
    test_threads();
    test_contexts();
    test_sgemm();
    test_linear();
    test_linear_kernels();
    test_balance_same_bytes();
    test_linear_act();
    /* the vector paths (AVX-512, AVX2 through simd = 1) and the plain loops */
    for (int level = 2; level >= 0; level--) {
        cx = gz_compute_make(0, 1);
        cx.simd = level;
        fprintf(stderr, "simd level %d (asked %d)\n", gz_compute_simd_level(&cx), level);
        if (level > 0) test_attention_paths(); /* vector vs plain */
        test_layernorm();
        test_activations();
        test_gelu_range();
        test_softmax();
        test_attention();
        test_attention_nomem();
    }
    cx = gz_compute_make(0, 1);
    test_l2();
    test_patch_embed();
    test_half();
    return gz_test_finish("core_kernels", checks);
}
