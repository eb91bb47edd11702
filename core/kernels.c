/* kernels.c - fp32 math kernels for transformer inference, over OpenBLAS.
 *
 * Legend: N = rows (tokens), D = features, M/K = GEMM sizes, B = batch, H = heads,
 *         Dh = head size, Tq/Tk = query/key lengths, C = channels, S = image side,
 *         p = patch side, G = S / p patches per side.
 * Large element-wise loops run on core/threads (fork-join, no spinning workers) with the
 * caller's gz_compute thread count, the GEMMs on OpenBLAS's own threads. */
#include "core/kernels.h"

#include "core/error.h" /* gz_mul_size */
#include "core/linear.h"
#include "core/threads.h"

#include <assert.h>
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Vector math from glibc's libmvec (expf, a few ulp; erfcf no longer: GELU has its own erf/erfc,
 * see gelu_avx512), reached through -lm, called from AVX-512 / AVX2 functions chosen at run
 * time. The plain libm loops stay as the reference path (gz_compute.simd = 0) and for other
 * platforms. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__GLIBC__) &&                              \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define GZ_MVEC 1
#include <immintrin.h>
#define GZ_AVX512 __attribute__((target("avx512f")))
#define GZ_AVX2 __attribute__((target("avx2,fma")))
GZ_AVX512 __m512 _ZGVeN16v_expf(__m512);
GZ_AVX2 __m256 _ZGVdN8v_expf(__m256);
#else
#define GZ_MVEC 0
#endif

/* Least work per thread for gz_parallel_for, in elements: starting a thread costs tens of
 * microseconds, so each share should take ~0.1 ms or more. */
#define GZ_PAR_MIN ((size_t)1 << 16)

/* Stack scratch for gz_attention when the heap allocation fails (floats). */
#define GZ_ATTN_STACK_FLOATS 4096

gz_compute gz_compute_make(int n_threads, int simd) {
    gz_compute cx;
    cx.n_threads = n_threads > 0 ? n_threads : gz_cpu_count();
    cx.simd = simd ? GZ_SIMD_BEST : 0;
    cx.scratch_limit = 0;
    cx.gemm = simd ? GZ_GEMM_PACKED : GZ_GEMM_REFERENCE;
    cx.pack_after_rows = GZ_PACK_AFTER_ROWS;
    cx.bf16 = 0;
    cx.pool = NULL;
    cx.scratch = NULL;
    cx.balance = 1;
    return cx;
}

int gz_compute_simd_level(const gz_compute *cx) {
    assert(cx);
#if GZ_MVEC
    if (cx->simd >= 2 && __builtin_cpu_supports("avx512f")) return 2;
    if (cx->simd >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#else
    (void)cx;
#endif
    return 0;
}

int gz_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void gz_blas_set_threads(int n) {
    if (n <= 0) n = gz_cpu_count();
    /* Only on a change: OpenBLAS does not document its setter as safe while another thread is
     * inside a BLAS call, so a process whose models share one count never calls it mid-work. */
    if (openblas_get_num_threads() != n) openblas_set_num_threads(n);
}

/* malloc(bytes), or NULL when bytes exceed cx's scratch limit. No message: it may run on a
 * gz_parallel_for worker, whose thread-local message nobody reads. */
static void *scratch_alloc(const gz_compute *cx, size_t bytes) {
    if (cx->scratch_limit && bytes > cx->scratch_limit) return NULL;
    return malloc(bytes ? bytes : 1);
}

/* Rows of Tk scores the stack fallback of gz_attention holds at once (0: not even one). */
static int stack_rows(const gz_compute *cx, int Tk) {
    size_t floats = GZ_ATTN_STACK_FLOATS;
    if (cx->scratch_limit && cx->scratch_limit / sizeof(float) < floats)
        floats = cx->scratch_limit / sizeof(float);
    return (size_t)Tk <= floats ? (int)(floats / (size_t)Tk) : 0;
}

void gz_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* BLAS semantics: C = beta * C (beta 0 overwrites, also NaN). */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gz_sgemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                      int lda, size_t stride_a, const float *B, int ldb, size_t stride_b,
                      float beta, float *C, int ldc, size_t stride_c, int batch) {
    for (int b = 0; b < batch; b++)
        gz_sgemm(trans_a, trans_b, M, N, K, alpha, A + (size_t)b * stride_a, lda,
                 B + (size_t)b * stride_b, ldb, beta, C + (size_t)b * stride_c, ldc);
}

void gz_linear(const float *x, const float *w, const float *b, float *y, int n, int in, int out) {
    /* y(N, out) = x(N, in) · w(out, in)^T */
    if (n <= 0 || out <= 0) return;
    if (b) {
        for (int i = 0; i < n; i++)
            memcpy(y + (size_t)i * out, b, (size_t)out * sizeof *y);
        gz_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
    } else {
        gz_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    }
}

/* Memory-bound: one thread saturates the bandwidth these loops need. */
void gz_add_bias(float *y, const float *b, int n, int d) {
    for (int i = 0; i < n; i++) {
        float *r = y + (size_t)i * d;
        for (int j = 0; j < d; j++)
            r[j] += b[j];
    }
}

void gz_add(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

typedef struct {
    float *y;
    const float *x, *w, *b;
    int d, lvl;
    float eps;
    float *acc;       /* gz_add_layernorm: rows of acc += add before each row's norm; x = acc */
    const float *add; /* NULL: a plain LayerNorm */
} ln_args;

#if GZ_MVEC
/* One LayerNorm row with w and b: the plain loop's two passes in double and its float
 * normalisation, with the sums split over 32 (AVX-512) or 16 (AVX2) independent lanes instead
 * of one serial chain. */
GZ_AVX512 static void layernorm_row_avx512(float *yr, const float *xr, const float *w,
                                           const float *b, int d, float eps) {
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    int j = 0;
    for (; j + 32 <= d; j += 32) {
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm256_loadu_ps(xr + j)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_loadu_ps(xr + j + 8)));
        s2 = _mm512_add_pd(s2, _mm512_cvtps_pd(_mm256_loadu_ps(xr + j + 16)));
        s3 = _mm512_add_pd(s3, _mm512_cvtps_pd(_mm256_loadu_ps(xr + j + 24)));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
    for (; j < d; j++)
        sum += xr[j];
    const double mean = sum / d;
    const __m512d vm = _mm512_set1_pd(mean);
    s0 = s1 = s2 = s3 = _mm512_setzero_pd();
    for (j = 0; j + 32 <= d; j += 32) {
        __m512d t0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xr + j)), vm);
        __m512d t1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xr + j + 8)), vm);
        __m512d t2 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xr + j + 16)), vm);
        __m512d t3 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xr + j + 24)), vm);
        s0 = _mm512_add_pd(s0, _mm512_mul_pd(t0, t0));
        s1 = _mm512_add_pd(s1, _mm512_mul_pd(t1, t1));
        s2 = _mm512_add_pd(s2, _mm512_mul_pd(t2, t2));
        s3 = _mm512_add_pd(s3, _mm512_mul_pd(t3, t3));
    }
    double var = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
    for (; j < d; j++) {
        double t = xr[j] - mean;
        var += t * t;
    }
    var /= d;
    const float fm = (float)mean, fr = (float)(1.0 / sqrt(var + (double)eps));
    const __m512 vfm = _mm512_set1_ps(fm), vfr = _mm512_set1_ps(fr);
    for (j = 0; j < d; j += 16) {
        __mmask16 m = d - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (d - j)) - 1u);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + j), vfm), vfr);
        v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + j)),
                          _mm512_maskz_loadu_ps(m, b + j));
        _mm512_mask_storeu_ps(yr + j, m, v);
    }
}

GZ_AVX2 static void layernorm_row_avx2(float *yr, const float *xr, const float *w, const float *b,
                                       int d, float eps) {
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    int j = 0;
    for (; j + 16 <= d; j += 16) {
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(xr + j)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm_loadu_ps(xr + j + 4)));
        s2 = _mm256_add_pd(s2, _mm256_cvtps_pd(_mm_loadu_ps(xr + j + 8)));
        s3 = _mm256_add_pd(s3, _mm256_cvtps_pd(_mm_loadu_ps(xr + j + 12)));
    }
    double t4[4];
    _mm256_storeu_pd(t4, _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    double sum = (t4[0] + t4[1]) + (t4[2] + t4[3]);
    for (; j < d; j++)
        sum += xr[j];
    const double mean = sum / d;
    const __m256d vm = _mm256_set1_pd(mean);
    s0 = s1 = s2 = s3 = _mm256_setzero_pd();
    for (j = 0; j + 16 <= d; j += 16) {
        __m256d t0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(xr + j)), vm);
        __m256d t1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(xr + j + 4)), vm);
        __m256d t2 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(xr + j + 8)), vm);
        __m256d t3 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(xr + j + 12)), vm);
        s0 = _mm256_add_pd(s0, _mm256_mul_pd(t0, t0));
        s1 = _mm256_add_pd(s1, _mm256_mul_pd(t1, t1));
        s2 = _mm256_add_pd(s2, _mm256_mul_pd(t2, t2));
        s3 = _mm256_add_pd(s3, _mm256_mul_pd(t3, t3));
    }
    _mm256_storeu_pd(t4, _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    double var = (t4[0] + t4[1]) + (t4[2] + t4[3]);
    for (; j < d; j++) {
        double t = xr[j] - mean;
        var += t * t;
    }
    var /= d;
    const float fm = (float)mean, fr = (float)(1.0 / sqrt(var + (double)eps));
    const __m256 vfm = _mm256_set1_ps(fm), vfr = _mm256_set1_ps(fr);
    for (j = 0; j + 8 <= d; j += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + j), vfm), vfr);
        v = _mm256_add_ps(_mm256_mul_ps(v, _mm256_loadu_ps(w + j)), _mm256_loadu_ps(b + j));
        _mm256_storeu_ps(yr + j, v);
    }
    for (; j < d; j++)
        yr[j] = (xr[j] - fm) * fr * w[j] + b[j];
}
#endif

static void layernorm_range(void *ctx, size_t i0, size_t i1) {
    const ln_args *a = ctx;
    const float *w = a->w, *b = a->b;
    int d = a->d;
#if GZ_MVEC
    if (a->lvl > 0 && w && b) {
        for (size_t i = i0; i < i1; i++) {
            if (a->add) gz_add(a->acc + i * d, a->add + i * d, (size_t)d); /* row still in L1 */
            if (a->lvl == 2)
                layernorm_row_avx512(a->y + i * d, a->x + i * d, w, b, d, a->eps);
            else
                layernorm_row_avx2(a->y + i * d, a->x + i * d, w, b, d, a->eps);
        }
        return;
    }
#endif
    for (size_t i = i0; i < i1; i++) {
        if (a->add) gz_add(a->acc + i * d, a->add + i * d, (size_t)d);
        const float *xr = a->x + i * d;
        float *yr = a->y + i * d;
        /* Two passes in double: exact enough that constant rows give variance 0. */
        double sum = 0.0;
        for (int j = 0; j < d; j++)
            sum += xr[j];
        double mean = sum / d;
        double var = 0.0;
        for (int j = 0; j < d; j++) {
            double t = xr[j] - mean;
            var += t * t;
        }
        var /= d;
        double rstd = 1.0 / sqrt(var + (double)a->eps);
        float fm = (float)mean, fr = (float)rstd;
        for (int j = 0; j < d; j++) {
            float v = (xr[j] - fm) * fr;
            yr[j] = v * (w ? w[j] : 1.0f) + (b ? b[j] : 0.0f);
        }
    }
}

void gz_compute_for(const gz_compute *cx, size_t n, size_t min_per_thread, size_t grain,
                    gz_range_fn fn, void *ctx) {
    if (cx->balance)
        gz_pool_for_guided(cx->pool, n, min_per_thread, grain, cx->n_threads, fn, ctx);
    else
        gz_pool_for(cx->pool, n, min_per_thread, cx->n_threads, fn, ctx);
}

/* The element-wise loops claim at least a quarter of a thread's least share. */
static void cx_for(const gz_compute *cx, size_t n, size_t min_per_thread, gz_range_fn fn,
                   void *ctx) {
    gz_compute_for(cx, n, min_per_thread, min_per_thread / 4 + 1, fn, ctx);
}

void gz_layernorm(const gz_compute *cx, float *y, const float *x, const float *w, const float *b,
                  int n, int d, float eps) {
    if (d <= 0 || n <= 0) return;
    ln_args a = {y, x, w, b, d, gz_compute_simd_level(cx), eps, NULL, NULL};
    cx_for(cx, (size_t)n, GZ_PAR_MIN / (size_t)d + 1, layernorm_range, &a);
}

void gz_add_layernorm(const gz_compute *cx, float *acc, const float *add, float *y, const float *w,
                      const float *b, int n, int d, float eps) {
    if (d <= 0 || n <= 0) return;
    ln_args a = {y, acc, w, b, d, gz_compute_simd_level(cx), eps, acc, add};
    cx_for(cx, (size_t)n, GZ_PAR_MIN / (size_t)d + 1, layernorm_range, &a);
}

typedef struct {
    float *y;
    const float *x;
} add_args;

static void add_range(void *ctx, size_t i0, size_t i1) {
    const add_args *a = ctx;
    gz_add(a->y + i0, a->x + i0, i1 - i0);
}

void gz_add_cx(const gz_compute *cx, float *y, const float *x, size_t n) {
    add_args a = {y, x};
    cx_for(cx, n, GZ_PAR_MIN, add_range, &a);
}

/* Element-wise activation ids. */
enum { OP_GELU, OP_GELU_TANH, OP_QUICK_GELU };

#if GZ_MVEC

/* GELU(x) = x/2 erfc(-x/sqrt2) on vectors, without libmvec's erfcf (~2 ns per element here):
 *   |x| < 1/sqrt2 (|z| < 1/2, z = x/sqrt2): x/2 (1 + erf(z)), erf(z) = 2/sqrt(pi) z P(z^2) with
 *     the Taylor series to z^17 (truncation < 1e-11 relative);
 *   else: erfc(|z|) by the Chebyshev fit of Numerical Recipes' erfcc (relative error < 1.2e-7
 *     for all |z| >= 0): t exp(-z^2 - 1.26551223 + t (1.00002368 + ...)), t = 1 / (1 + |z|/2),
 *     and erfc(z) = 2 - erfc(|z|) for x > 0 (no cancellation: the result is in [1, 2]).
 *   z^2 is taken as x^2/2 split into hi + lo with an FMA, so that 1/sqrt2's rounding is not
 *   squared into the exponent. Measured against double erfc: relative error <= 5.2e-7 for
 *   x >= -2, 1e-6 down to -4, 4e-6 down to -10 (the float exponent's rounding; libmvec's erfcf
 *   path measured 3.7e-7, 1.1e-6 and 5.2e-6). */
#define GZ_ERFC_NR(X)                                                                              \
    X(0.17087277f), X(-0.82215223f), X(1.48851587f), X(-1.13520398f), X(0.27886807f),              \
        X(-0.18628806f), X(0.09678418f), X(0.37409196f), X(1.00002368f), X(-1.26551223f)
#define GZ_ERF_TAYLOR(X)                                                                           \
    X(1.0f / 685440.0f), X(-1.0f / 75600.0f), X(1.0f / 9360.0f), X(-1.0f / 1320.0f),               \
        X(1.0f / 216.0f), X(-1.0f / 42.0f), X(1.0f / 10.0f), X(-1.0f / 3.0f), X(1.0f)
#define GZ_IDENT(c) c

/* e^x for x <= 0 (or moderate x): 2^k e^r, r = x - k ln2 in [-ln2/2, ln2/2], Taylor to r^7
 * (truncation < 6e-9); scalef gives 0 / subnormals for very negative x. */
GZ_AVX512 static inline __m512 exp_avx512(__m512 x) {
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), x); /* ln2 hi + lo */
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.428606765330187045e-06f), r);
    static const float c[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24,
                              1.0f / 6,    0.5f,       1.0f,       1.0f};
    __m512 p = _mm512_set1_ps(c[0]);
#pragma GCC unroll 10
    for (int i = 1; i < 8; i++)
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c[i]));
    return _mm512_scalef_ps(p, k);
}

GZ_AVX512 static inline __m512 gelu_avx512(__m512 v) {
    static const float nr[] = {GZ_ERFC_NR(GZ_IDENT)}, ty[] = {GZ_ERF_TAYLOR(GZ_IDENT)};
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    __m512 z = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752440f));
    __m512 a = _mm512_abs_ps(z);
    /* erfc(a) */
    /* a capped so that t stays finite at a = inf (the exponent then gives 0 or NaN) */
    __m512 den = _mm512_fmadd_ps(half, _mm512_min_ps(a, _mm512_set1_ps(1e4f)), one);
    __m512 t = _mm512_rcp14_ps(den); /* 14 bits, one Newton step: ~28 */
    t = _mm512_mul_ps(t, _mm512_fnmadd_ps(den, t, _mm512_set1_ps(2.0f)));
    __m512 p = _mm512_set1_ps(nr[0]);
#pragma GCC unroll 10
    for (int i = 1; i < 10; i++)
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(nr[i]));
    /* x^2 = xx + lo, x clamped to +-20 (erfc is 0 in float beyond) so that inf gives no NaN */
    __m512 vc = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-20.0f)), _mm512_set1_ps(20.0f));
    __m512 xx = _mm512_mul_ps(vc, vc), lo = _mm512_fmsub_ps(vc, vc, xx);
    __m512 arg = _mm512_sub_ps(_mm512_fnmadd_ps(half, xx, p), _mm512_mul_ps(half, lo));
    __m512 e = _mm512_mul_ps(t, exp_avx512(arg));
    e = _mm512_mask_sub_ps(e, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ),
                           _mm512_set1_ps(2.0f), e);
    /* 1 + erf(z) near zero */
    __m512 u = _mm512_mul_ps(z, z), q = _mm512_set1_ps(ty[0]);
#pragma GCC unroll 10
    for (int i = 1; i < 9; i++)
        q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(ty[i]));
    __m512 erfz = _mm512_mul_ps(_mm512_mul_ps(z, _mm512_set1_ps(1.12837916709551257390f)), q);
    e = _mm512_mask_add_ps(e, _mm512_cmp_ps_mask(a, half, _CMP_LT_OQ), one, erfz);
    return _mm512_mul_ps(_mm512_mul_ps(v, half), e);
}

GZ_AVX2 static inline __m256 gelu_avx2(__m256 v) {
    static const float nr[] = {GZ_ERFC_NR(GZ_IDENT)}, ty[] = {GZ_ERF_TAYLOR(GZ_IDENT)};
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752440f));
    __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
    __m256 t =
        _mm256_div_ps(one, _mm256_fmadd_ps(half, _mm256_min_ps(a, _mm256_set1_ps(1e4f)), one));
    __m256 p = _mm256_set1_ps(nr[0]);
#pragma GCC unroll 10
    for (int i = 1; i < 10; i++)
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(nr[i]));
    __m256 vc = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-20.0f)), _mm256_set1_ps(20.0f));
    __m256 xx = _mm256_mul_ps(vc, vc), lo = _mm256_fmsub_ps(vc, vc, xx);
    __m256 arg = _mm256_sub_ps(_mm256_fnmadd_ps(half, xx, p), _mm256_mul_ps(half, lo));
    __m256 e = _mm256_mul_ps(t, _ZGVdN8v_expf(arg));
    e = _mm256_blendv_ps(e, _mm256_sub_ps(_mm256_set1_ps(2.0f), e),
                         _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    __m256 u = _mm256_mul_ps(z, z), q = _mm256_set1_ps(ty[0]);
#pragma GCC unroll 10
    for (int i = 1; i < 9; i++)
        q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(ty[i]));
    __m256 erfz = _mm256_mul_ps(_mm256_mul_ps(z, _mm256_set1_ps(1.12837916709551257390f)), q);
    e = _mm256_blendv_ps(e, _mm256_add_ps(one, erfz), _mm256_cmp_ps(a, half, _CMP_LT_OQ));
    return _mm256_mul_ps(_mm256_mul_ps(v, half), e);
}

GZ_AVX512 static void act_avx512(int op, float *x, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 k0 = _mm512_set1_ps(-2.0f * 0.79788456080286535588f);
    const __m512 k1 = _mm512_set1_ps(0.044715f);
    const __m512 mq = _mm512_set1_ps(-1.702f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i), r;
        if (op == OP_GELU) {
            r = gelu_avx512(v);
        } else if (op == OP_GELU_TANH) {
            __m512 u =
                _mm512_mul_ps(k0, _mm512_fmadd_ps(_mm512_mul_ps(k1, v), _mm512_mul_ps(v, v), v));
            r = _mm512_div_ps(v, _mm512_add_ps(one, _ZGVeN16v_expf(u)));
        } else {
            r = _mm512_div_ps(v, _mm512_add_ps(one, _ZGVeN16v_expf(_mm512_mul_ps(mq, v))));
        }
        _mm512_mask_storeu_ps(x + i, m, r);
    }
}

GZ_AVX2 static void act_avx2(int op, float *x, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 k0 = _mm256_set1_ps(-2.0f * 0.79788456080286535588f);
    const __m256 k1 = _mm256_set1_ps(0.044715f);
    const __m256 mq = _mm256_set1_ps(-1.702f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), r;
        if (op == OP_GELU) {
            r = gelu_avx2(v);
        } else if (op == OP_GELU_TANH) {
            __m256 u =
                _mm256_mul_ps(k0, _mm256_fmadd_ps(_mm256_mul_ps(k1, v), _mm256_mul_ps(v, v), v));
            r = _mm256_div_ps(v, _mm256_add_ps(one, _ZGVdN8v_expf(u)));
        } else {
            r = _mm256_div_ps(v, _mm256_add_ps(one, _ZGVdN8v_expf(_mm256_mul_ps(mq, v))));
        }
        _mm256_storeu_ps(x + i, r);
    }
    if (i < n) { /* tail through a padded buffer so every element takes the same path */
        float t[8] = {0};
        memcpy(t, x + i, (n - i) * sizeof *t);
        act_avx2(op, t, 8);
        memcpy(x + i, t, (n - i) * sizeof *t);
    }
}

#endif

typedef struct {
    int op, lvl;
    float *x;
} act_args;

/* gelu(x) = x/2 (1 + erf(x/sqrt2)) = x/2 erfc(-x/sqrt2): the erfc form keeps full relative
 * accuracy in the negative tail, where 1 + erf cancels. gelu_tanh: x/2 (1 + tanh(u)) computed
 * as x / (1 + exp(-2u)), the same value without the cancellation. */
static void act_range(void *ctx, size_t i0, size_t i1) {
    const act_args *a = ctx;
    float *x = a->x;
#if GZ_MVEC
    if (a->lvl == 2) {
        act_avx512(a->op, x + i0, i1 - i0);
        return;
    }
    if (a->lvl == 1) {
        act_avx2(a->op, x + i0, i1 - i0);
        return;
    }
#endif
    const float inv_sqrt2 = 0.70710678118654752440f;
    const float k0 = 0.79788456080286535588f; /* sqrt(2/pi) */
    const float k1 = 0.044715f;
    for (size_t i = i0; i < i1; i++) {
        float v = x[i];
        switch (a->op) {
        case OP_GELU: x[i] = v * 0.5f * erfcf(-v * inv_sqrt2); break;
        case OP_GELU_TANH: x[i] = v / (1.0f + expf(-2.0f * k0 * (v + k1 * v * v * v))); break;
        default: x[i] = v / (1.0f + expf(-1.702f * v)); break;
        }
    }
}

static void act_run(const gz_compute *cx, int op, float *x, size_t n) {
    act_args a = {op, gz_compute_simd_level(cx), x};
    cx_for(cx, n, 2 * GZ_PAR_MIN, act_range, &a);
}

void gz_gelu(const gz_compute *cx, float *x, size_t n) { act_run(cx, OP_GELU, x, n); }
void gz_gelu_tanh(const gz_compute *cx, float *x, size_t n) { act_run(cx, OP_GELU_TANH, x, n); }
void gz_quick_gelu(const gz_compute *cx, float *x, size_t n) { act_run(cx, OP_QUICK_GELU, x, n); }

static void relu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(x[i] > 0.0f) && !isnan(x[i])) x[i] = 0.0f;
}

void gz_activate_here(const gz_compute *cx, gz_act act, float *x, size_t n) {
    if (act == GZ_ACT_RELU) {
        relu(x, n);
        return;
    }
    int op = act == GZ_ACT_GELU ? OP_GELU : act == GZ_ACT_GELU_TANH ? OP_GELU_TANH : OP_QUICK_GELU;
    act_args a = {op, gz_compute_simd_level(cx), x};
    act_range(&a, 0, n);
}

void gz_activate(const gz_compute *cx, gz_act act, float *x, size_t n) {
    switch (act) {
    case GZ_ACT_GELU: gz_gelu(cx, x, n); break;
    case GZ_ACT_GELU_TANH: gz_gelu_tanh(cx, x, n); break;
    case GZ_ACT_QUICK_GELU: gz_quick_gelu(cx, x, n); break;
    case GZ_ACT_RELU: relu(x, n); break;
    }
}

#if GZ_MVEC
/* r[j] = exp(r[j] - mx) for j < cols; returns the sum. */
GZ_AVX512 static float exp_sub_avx512(float *r, int cols, float mx) {
    const __m512 vm = _mm512_set1_ps(mx);
    __m512 acc = _mm512_setzero_ps();
    for (int j = 0; j < cols; j += 16) {
        __mmask16 m = cols - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - j)) - 1u);
        __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, r + j);
        __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(v, vm));
        _mm512_mask_storeu_ps(r + j, m, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, e));
    }
    return _mm512_reduce_add_ps(acc);
}

GZ_AVX2 static float exp_sub_avx2(float *r, int cols, float mx) {
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= cols; j += 8) {
        __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(r + j), vm));
        _mm256_storeu_ps(r + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float t[8];
    _mm256_storeu_ps(t, acc);
    float sum = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
    if (j < cols) {
        float p[8];
        for (int k = 0; k < 8; k++)
            p[k] = j + k < cols ? r[j + k] : -INFINITY;
        __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(p), vm));
        _mm256_storeu_ps(p, e);
        for (int k = 0; j + k < cols; k++) {
            r[j + k] = p[k];
            sum += p[k];
        }
    }
    return sum;
}
#endif

#if GZ_MVEC
/* Largest r[j] (NaNs skipped, as the plain loop's r[j] > mx does), or -inf. */
GZ_AVX512 static float row_max_avx512(const float *r, int cols) {
    __m512 acc = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < cols; j += 16) {
        __mmask16 m = cols - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - j)) - 1u);
        /* max_ps returns its second operand when either is NaN */
        acc = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, r + j), acc);
    }
    return _mm512_reduce_max_ps(acc);
}

GZ_AVX512 static void row_scale_avx512(float *r, int cols, float s) {
    const __m512 vs = _mm512_set1_ps(s);
    for (int j = 0; j < cols; j += 16) {
        __mmask16 m = cols - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - j)) - 1u);
        _mm512_mask_storeu_ps(r + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, r + j), vs));
    }
}

GZ_AVX2 static float row_max_avx2(const float *r, int cols) {
    __m256 acc = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 8 <= cols; j += 8)
        acc = _mm256_max_ps(_mm256_loadu_ps(r + j), acc);
    float t[8];
    _mm256_storeu_ps(t, acc);
    float mx = t[0];
    for (int k = 1; k < 8; k++)
        if (t[k] > mx) mx = t[k];
    for (; j < cols; j++)
        if (r[j] > mx) mx = r[j];
    return mx;
}

GZ_AVX2 static void row_scale_avx2(float *r, int cols, float s) {
    const __m256 vs = _mm256_set1_ps(s);
    int j = 0;
    for (; j + 8 <= cols; j += 8)
        _mm256_storeu_ps(r + j, _mm256_mul_ps(_mm256_loadu_ps(r + j), vs));
    for (; j < cols; j++)
        r[j] *= s;
}
#endif

/* Softmax of one row in place; a row with no finite maximum (all -inf) becomes uniform. */
static void softmax_row(float *r, int cols, int lvl) {
    float mx = -INFINITY;
#if GZ_MVEC
    if (lvl == 2)
        mx = row_max_avx512(r, cols);
    else if (lvl == 1)
        mx = row_max_avx2(r, cols);
    else
#endif
        for (int j = 0; j < cols; j++)
            if (r[j] > mx) mx = r[j];
    if (mx == -INFINITY) {
        for (int j = 0; j < cols; j++)
            r[j] = 1.0f / (float)cols;
        return;
    }
    float sum = 0.0f;
#if GZ_MVEC
    if (lvl == 2)
        sum = exp_sub_avx512(r, cols, mx);
    else if (lvl == 1)
        sum = exp_sub_avx2(r, cols, mx);
    else
#endif
    {
        (void)lvl;
        for (int j = 0; j < cols; j++) {
            float e = expf(r[j] - mx);
            r[j] = e;
            sum += e;
        }
    }
    float inv = 1.0f / sum;
#if GZ_MVEC
    if (lvl == 2) {
        row_scale_avx512(r, cols, inv);
        return;
    }
    if (lvl == 1) {
        row_scale_avx2(r, cols, inv);
        return;
    }
#endif
    for (int j = 0; j < cols; j++)
        r[j] *= inv;
}

typedef struct {
    float *x;
    int cols, lvl;
} sm_args;

static void softmax_range(void *ctx, size_t i0, size_t i1) {
    const sm_args *a = ctx;
    for (size_t i = i0; i < i1; i++)
        softmax_row(a->x + i * a->cols, a->cols, a->lvl);
}

void gz_softmax_rows(const gz_compute *cx, float *x, int rows, int cols) {
    if (cols <= 0 || rows <= 0) return;
    sm_args a = {x, cols, gz_compute_simd_level(cx)};
    cx_for(cx, (size_t)rows, GZ_PAR_MIN / (size_t)cols + 1, softmax_range, &a);
}

void gz_l2_normalize(float *x, int n, int d, float eps) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        double ss = 0.0;
        for (int j = 0; j < d; j++)
            ss += (double)r[j] * r[j];
        double nrm = sqrt(ss);
        if (nrm < eps) nrm = eps;
        float inv = (float)(1.0 / nrm);
        for (int j = 0; j < d; j++)
            r[j] *= inv;
    }
}

/* Mask (padding, causal) and softmax one score row of query t; mask (Tk) or NULL. */
static void attn_softmax_row(float *r, int t, int Tk, const int32_t *mask, int causal, int lvl) {
    if (mask)
        for (int j = 0; j < Tk; j++)
            if (!mask[j]) r[j] = -INFINITY;
    if (causal)
        for (int j = t + 1; j < Tk; j++)
            r[j] = -INFINITY;
    softmax_row(r, Tk, lvl);
}

typedef struct {
    float *s;            /* (ng, Tq, Tk) scores of pairs p0 .. p0 + ng */
    const int32_t *mask; /* (B, Tk) or NULL */
    size_t p0;
    int Tq, Tk, H, causal, lvl;
} attn_sm_args;

static void attn_softmax_range(void *ctx, size_t r0, size_t r1) {
    const attn_sm_args *a = ctx;
    for (size_t r = r0; r < r1; r++) {
        size_t b = (a->p0 + r / a->Tq) / a->H;
        attn_softmax_row(a->s + r * a->Tk, (int)(r % a->Tq), a->Tk,
                         a->mask ? a->mask + b * a->Tk : NULL, a->causal, a->lvl);
    }
}

/* Fallback for one (batch, head) slice, query rows [t0, t0 + nq), scores in s (nq, Tk). */
static void attention_rows(const float *q, int q_stride, const float *k, const float *v,
                           int kv_stride, float *out, int out_stride, int t0, int nq, int Tk,
                           int Dh, const int32_t *mask, int causal, float scale, float *s) {
    /* s(nq, Tk) = scale * q(nq, Dh) · k(Tk, Dh)^T */
    gz_sgemm(0, 1, nq, Tk, Dh, scale, q + (size_t)t0 * q_stride, q_stride, k, kv_stride, 0.0f, s,
             Tk);
    for (int i = 0; i < nq; i++)
        attn_softmax_row(s + (size_t)i * Tk, t0 + i, Tk, mask, causal, 0);
    /* out(nq, Dh) = s(nq, Tk) · v(Tk, Dh) */
    gz_sgemm(0, 0, nq, Dh, Tk, 1.0f, s, Tk, v, kv_stride, 0.0f, out + (size_t)t0 * out_stride,
             out_stride);
}

/* ---- pair-parallel attention (the vector paths) ----
 * Work items are blocks of query rows of one (batch, head) pair; gz_parallel_for hands each
 * thread a contiguous run of items, and the thread does the items' QK^T, softmax and PV itself
 * with register-blocked AVX-512 / AVX2 tiles: no OpenBLAS call (and so none of its thread
 * hand-offs) per pair. Per pair, the thread packs K into column panels (and V into zero-padded
 * rows when Dh is not a multiple of the vector width): Tk * Dh floats, small next to the pair's
 * 4 * Tq * Tk * Dh flops. Query rows are read in place, except a last partial tile that is
 * copied and zero padded. Each output is one float FMA chain over Dh (scores, then times scale)
 * or over the keys in order (PV), the order OpenBLAS's kernels use: on ViT shapes the result is
 * bit-identical to the reference path. */

#define GZ_AMR 6  /* query rows per register tile */
#define GZ_AQB 48 /* at most this many query rows per work item (multiple of GZ_AMR) */
/* Least work per thread for the attention's gz_parallel_for, in flops (~40 us). */
#define GZ_ATTN_PAR_FLOPS ((size_t)4 << 20)

typedef struct {
    const gz_compute *cx;
    const float *q, *k, *v; /* as gz_attention */
    float *out;
    const int32_t *mask; /* (B, Tk) or NULL */
    int q_stride, kv_stride, Tq, Tk, H, Dh, causal, lvl;
    int nqb, qb;        /* query blocks per pair, rows per block */
    int W;              /* floats per vector: 16 (AVX-512) or 8 (AVX2) */
    int tk_pad, dh_pad; /* Tk, Dh rounded up to W */
    float scale;
    atomic_int *failed; /* set to 1 by a range that had no scratch at all */
} fa_args;

#if GZ_MVEC
#define GZ_INLINE_AVX512 static inline __attribute__((always_inline, target("avx512f")))
#define GZ_INLINE_AVX2 static inline __attribute__((always_inline, target("avx2,fma")))

/* s(GZ_AMR, nv*16) = scale * q(GZ_AMR, Dh; row stride ldq) · panel(Dh, nv*16); nv = 1 or 2. */
GZ_INLINE_AVX512 void qk_tile512(const float *qp, int ldq, int Dh, const float *kp, int nv,
                                 float scale, float *s, int lds) {
    __m512 acc[GZ_AMR][2];
#pragma GCC unroll 8
    for (int r = 0; r < GZ_AMR; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int d = 0; d < Dh; d++) {
        __m512 k0 = _mm512_loadu_ps(kp + (size_t)d * nv * 16);
        __m512 k1 = nv == 2 ? _mm512_loadu_ps(kp + (size_t)d * 32 + 16) : k0;
#pragma GCC unroll 8
        for (int r = 0; r < GZ_AMR; r++) {
            __m512 b = _mm512_set1_ps(qp[(size_t)r * ldq + d]);
            acc[r][0] = _mm512_fmadd_ps(b, k0, acc[r][0]);
            if (nv == 2) acc[r][1] = _mm512_fmadd_ps(b, k1, acc[r][1]);
        }
    }
    const __m512 vs = _mm512_set1_ps(scale);
#pragma GCC unroll 8
    for (int r = 0; r < GZ_AMR; r++) {
        _mm512_storeu_ps(s + (size_t)r * lds, _mm512_mul_ps(acc[r][0], vs));
        if (nv == 2) _mm512_storeu_ps(s + (size_t)r * lds + 16, _mm512_mul_ps(acc[r][1], vs));
    }
}

/* o(GZ_AMR, nv*16) = p(GZ_AMR, Tk) · vp(Tk, nv*16 columns at vp, row stride ldv); nv 1..4. */
GZ_INLINE_AVX512 void pv_tile512(const float *p, int ldp, const float *vp, int ldv, int Tk, int nv,
                                 float *o, int ldo) {
    __m512 acc[GZ_AMR][4];
#pragma GCC unroll 8
    for (int r = 0; r < GZ_AMR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int j = 0; j < Tk; j++) {
        __m512 vv[4];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            vv[c] = c < nv ? _mm512_loadu_ps(vp + (size_t)j * ldv + 16 * c) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int r = 0; r < GZ_AMR; r++) {
            __m512 b = _mm512_set1_ps(p[(size_t)r * ldp + j]);
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                if (c < nv) acc[r][c] = _mm512_fmadd_ps(b, vv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < GZ_AMR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            if (c < nv) _mm512_storeu_ps(o + (size_t)r * ldo + 16 * c, acc[r][c]);
}

/* Scores s(rows, tk_pad) of queries q(rows, Dh; row stride ldq), rows a multiple of GZ_AMR. */
GZ_AVX512 static void qk_rows512(const fa_args *a, const float *qp, int ldq, int rows,
                                 const float *kp, float *s) {
    const int Dh = a->Dh, lds = a->tk_pad;
    for (int r0 = 0; r0 < rows; r0 += GZ_AMR)
        for (int c0 = 0; c0 < lds; c0 += 32) {
            const float *qr = qp + (size_t)r0 * ldq, *kc = kp + (size_t)c0 * Dh;
            float *sr = s + (size_t)r0 * lds + c0;
            if (lds - c0 >= 32)
                qk_tile512(qr, ldq, Dh, kc, 2, a->scale, sr, lds);
            else
                qk_tile512(qr, ldq, Dh, kc, 1, a->scale, sr, lds);
        }
}

/* o(rows, dh_pad; row stride ldo) = p(rows, Tk; row stride tk_pad) · v(Tk, dh_pad; stride ldv),
 * rows a multiple of GZ_AMR. */
GZ_AVX512 static void pv_rows512(const fa_args *a, const float *p, int rows, const float *vp,
                                 int ldv, float *o, int ldo) {
    const int ldp = a->tk_pad, dh = a->dh_pad, Tk = a->Tk;
    for (int r0 = 0; r0 < rows; r0 += GZ_AMR)
        for (int c0 = 0; c0 < dh; c0 += 64) {
            const float *pr = p + (size_t)r0 * ldp;
            float *orow = o + (size_t)r0 * ldo + c0;
            switch ((dh - c0) / 16) {
            case 1: pv_tile512(pr, ldp, vp + c0, ldv, Tk, 1, orow, ldo); break;
            case 2: pv_tile512(pr, ldp, vp + c0, ldv, Tk, 2, orow, ldo); break;
            case 3: pv_tile512(pr, ldp, vp + c0, ldv, Tk, 3, orow, ldo); break;
            default: pv_tile512(pr, ldp, vp + c0, ldv, Tk, 4, orow, ldo); break;
            }
        }
}

/* The AVX2 tiles: 8 floats per vector, GZ_AMR x (nv * 8) with nv = 1 or 2 (12 accumulators). */
GZ_INLINE_AVX2 void qk_tile256(const float *qp, int ldq, int Dh, const float *kp, int nv,
                               float scale, float *s, int lds) {
    __m256 acc[GZ_AMR][2];
#pragma GCC unroll 8
    for (int r = 0; r < GZ_AMR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int d = 0; d < Dh; d++) {
        __m256 k0 = _mm256_loadu_ps(kp + (size_t)d * nv * 8);
        __m256 k1 = nv == 2 ? _mm256_loadu_ps(kp + (size_t)d * 16 + 8) : k0;
#pragma GCC unroll 8
        for (int r = 0; r < GZ_AMR; r++) {
            __m256 b = _mm256_broadcast_ss(qp + (size_t)r * ldq + d);
            acc[r][0] = _mm256_fmadd_ps(b, k0, acc[r][0]);
            if (nv == 2) acc[r][1] = _mm256_fmadd_ps(b, k1, acc[r][1]);
        }
    }
    const __m256 vs = _mm256_set1_ps(scale);
#pragma GCC unroll 8
    for (int r = 0; r < GZ_AMR; r++) {
        _mm256_storeu_ps(s + (size_t)r * lds, _mm256_mul_ps(acc[r][0], vs));
        if (nv == 2) _mm256_storeu_ps(s + (size_t)r * lds + 8, _mm256_mul_ps(acc[r][1], vs));
    }
}

GZ_INLINE_AVX2 void pv_tile256(const float *p, int ldp, const float *vp, int ldv, int Tk, int nv,
                               float *o, int ldo) {
    __m256 acc[GZ_AMR][2];
#pragma GCC unroll 8
    for (int r = 0; r < GZ_AMR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int j = 0; j < Tk; j++) {
        __m256 v0 = _mm256_loadu_ps(vp + (size_t)j * ldv);
        __m256 v1 = nv == 2 ? _mm256_loadu_ps(vp + (size_t)j * ldv + 8) : v0;
#pragma GCC unroll 8
        for (int r = 0; r < GZ_AMR; r++) {
            __m256 b = _mm256_broadcast_ss(p + (size_t)r * ldp + j);
            acc[r][0] = _mm256_fmadd_ps(b, v0, acc[r][0]);
            if (nv == 2) acc[r][1] = _mm256_fmadd_ps(b, v1, acc[r][1]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < GZ_AMR; r++) {
        _mm256_storeu_ps(o + (size_t)r * ldo, acc[r][0]);
        if (nv == 2) _mm256_storeu_ps(o + (size_t)r * ldo + 8, acc[r][1]);
    }
}

GZ_AVX2 static void qk_rows256(const fa_args *a, const float *qp, int ldq, int rows,
                               const float *kp, float *s) {
    const int Dh = a->Dh, lds = a->tk_pad;
    for (int r0 = 0; r0 < rows; r0 += GZ_AMR)
        for (int c0 = 0; c0 < lds; c0 += 16) {
            const float *qr = qp + (size_t)r0 * ldq, *kc = kp + (size_t)c0 * Dh;
            float *sr = s + (size_t)r0 * lds + c0;
            if (lds - c0 >= 16)
                qk_tile256(qr, ldq, Dh, kc, 2, a->scale, sr, lds);
            else
                qk_tile256(qr, ldq, Dh, kc, 1, a->scale, sr, lds);
        }
}

GZ_AVX2 static void pv_rows256(const fa_args *a, const float *p, int rows, const float *vp, int ldv,
                               float *o, int ldo) {
    const int ldp = a->tk_pad, dh = a->dh_pad, Tk = a->Tk;
    for (int r0 = 0; r0 < rows; r0 += GZ_AMR)
        for (int c0 = 0; c0 < dh; c0 += 16) {
            const float *pr = p + (size_t)r0 * ldp;
            float *orow = o + (size_t)r0 * ldo + c0;
            if (dh - c0 >= 16)
                pv_tile256(pr, ldp, vp + c0, ldv, Tk, 2, orow, ldo);
            else
                pv_tile256(pr, ldp, vp + c0, ldv, Tk, 1, orow, ldo);
        }
}
#endif /* GZ_MVEC */

/* Pack k_bh(Tk, Dh) (row stride kv_stride) into column panels of 2W keys (the last one W when
 * tk_pad - c0 == W): panel at c0 is (Dh, width) at kp + c0 * Dh; keys >= Tk are zero. */
static void fa_pack_k(const fa_args *a, const float *k, float *kp) {
    const int Dh = a->Dh, Tk = a->Tk, pw = 2 * a->W;
    for (int c0 = 0; c0 < a->tk_pad; c0 += pw) {
        int w = a->tk_pad - c0 < pw ? a->tk_pad - c0 : pw;
        float *panel = kp + (size_t)c0 * Dh;
        for (int c = 0; c < w; c++) {
            const float *kr = k + (size_t)(c0 + c) * a->kv_stride;
            if (c0 + c < Tk)
                for (int d = 0; d < Dh; d++)
                    panel[(size_t)d * w + c] = kr[d];
            else
                for (int d = 0; d < Dh; d++)
                    panel[(size_t)d * w + c] = 0.0f;
        }
    }
}

/* Pack v_bh(Tk, Dh) into vp(Tk, dh_pad), zero columns >= Dh. */
static void fa_pack_v(const fa_args *a, const float *v, float *vp) {
    for (int j = 0; j < a->Tk; j++) {
        float *r = vp + (size_t)j * a->dh_pad;
        memcpy(r, v + (size_t)j * a->kv_stride, (size_t)a->Dh * sizeof *r);
        for (int c = a->Dh; c < a->dh_pad; c++)
            r[c] = 0.0f;
    }
}

/* Per-thread scratch of fa_range, in floats: kp (tk_pad, Dh), vp (Tk, dh_pad), qp (GZ_AMR, Dh),
 * s (qb + GZ_AMR, tk_pad), o (qb + GZ_AMR, dh_pad). Returns 0 on overflow. */
static size_t fa_scratch_floats(const fa_args *a) {
    size_t kp, vp, qp, s, o, t;
    if (!gz_mul_size((size_t)a->tk_pad, (size_t)a->Dh, &kp) ||
        !gz_mul_size((size_t)a->Tk, (size_t)a->dh_pad, &vp) ||
        !gz_mul_size((size_t)GZ_AMR, (size_t)a->Dh, &qp) ||
        !gz_mul_size((size_t)a->qb + GZ_AMR, (size_t)a->tk_pad, &s) ||
        !gz_mul_size((size_t)a->qb + GZ_AMR, (size_t)a->dh_pad, &o))
        return 0;
    t = kp + vp;
    if (t < kp || t + qp < t || t + qp + s < t + qp || t + qp + s + o < t + qp + s) return 0;
    return t + qp + s + o;
}

/* Items [i0, i1): item i is query block i % nqb of pair i / nqb. */
static void fa_range(void *ctx, size_t i0, size_t i1) {
    const fa_args *a = ctx;
    const int Dh = a->Dh, Tk = a->Tk, H = a->H, D = H * Dh;
    size_t n = fa_scratch_floats(a), bytes;
    float *buf = n && gz_mul_size(n, sizeof(float), &bytes) ? scratch_alloc(a->cx, bytes) : NULL;
    if (!buf) {
        /* Out of memory: the reference rows (OpenBLAS) from the stack, a few rows at a time. */
        float stack_buf[GZ_ATTN_STACK_FLOATS];
        int chunk = stack_rows(a->cx, Tk);
        if (chunk == 0) { /* not one row of scores: gz_attention reports it */
            atomic_store(a->failed, 1);
            return;
        }
        for (size_t i = i0; i < i1; i++) {
            size_t p = i / (size_t)a->nqb, b = p / (size_t)H, h = p % (size_t)H;
            int t0 = (int)(i % (size_t)a->nqb) * a->qb;
            int t1 = t0 + a->qb < a->Tq ? t0 + a->qb : a->Tq;
            float *ob = a->out + b * a->Tq * D + h * Dh;
            for (int t = t0; t < t1; t += chunk)
                attention_rows(a->q + b * a->Tq * a->q_stride + h * Dh, a->q_stride,
                               a->k + b * Tk * a->kv_stride + h * Dh,
                               a->v + b * Tk * a->kv_stride + h * Dh, a->kv_stride, ob, D, t,
                               t1 - t < chunk ? t1 - t : chunk, Tk, Dh,
                               a->mask ? a->mask + b * Tk : NULL, a->causal, a->scale, stack_buf);
        }
        return;
    }
    float *kp = buf;                                     /* (tk_pad, Dh) panels */
    float *vp = kp + (size_t)a->tk_pad * Dh;             /* (Tk, dh_pad) */
    float *qp = vp + (size_t)Tk * a->dh_pad;             /* (GZ_AMR, Dh) */
    float *s = qp + (size_t)GZ_AMR * Dh;                 /* (qb + GZ_AMR, tk_pad) */
    float *o = s + ((size_t)a->qb + GZ_AMR) * a->tk_pad; /* (qb + GZ_AMR, dh_pad) */
    /* V is used in place when its rows need no padding (Dh a multiple of W). */
    const int direct_v = a->dh_pad == Dh;
    size_t packed = (size_t)-1;
    for (size_t i = i0; i < i1; i++) {
        size_t p = i / (size_t)a->nqb, b = p / (size_t)H, h = p % (size_t)H;
        int t0 = (int)(i % (size_t)a->nqb) * a->qb;
        int nq = a->Tq - t0 < a->qb ? a->Tq - t0 : a->qb;
        int full = nq / GZ_AMR * GZ_AMR; /* rows in whole tiles; the rest goes through qp, o */
        const float *vb = a->v + b * Tk * a->kv_stride + h * Dh;
        if (p != packed) {
            fa_pack_k(a, a->k + b * Tk * a->kv_stride + h * Dh, kp);
            if (!direct_v) fa_pack_v(a, vb, vp);
            packed = p;
        }
        const float *vuse = direct_v ? vb : vp;
        const int ldv = direct_v ? a->kv_stride : a->dh_pad;
        const float *qb = a->q + (b * a->Tq + (size_t)t0) * a->q_stride + h * Dh;
        float *ob = a->out + (b * a->Tq + (size_t)t0) * D + h * Dh;
        if (full < nq) { /* the last rows, zero padded to a whole tile */
            for (int r = full; r < nq; r++)
                memcpy(qp + (size_t)(r - full) * Dh, qb + (size_t)r * a->q_stride,
                       (size_t)Dh * sizeof *qp);
            memset(qp + (size_t)(nq - full) * Dh, 0,
                   (size_t)(GZ_AMR - (nq - full)) * Dh * sizeof *qp);
        }
        float *sp = s + (size_t)full * a->tk_pad; /* scores of the padded tile */
        /* s(rows, tk_pad) = scale * q(rows, Dh) · k(Tk, Dh)^T */
#if GZ_MVEC
        if (a->lvl == 2) {
            qk_rows512(a, qb, a->q_stride, full, kp, s);
            if (full < nq) qk_rows512(a, qp, Dh, GZ_AMR, kp, sp);
        } else {
            qk_rows256(a, qb, a->q_stride, full, kp, s);
            if (full < nq) qk_rows256(a, qp, Dh, GZ_AMR, kp, sp);
        }
#endif
        const int32_t *mask = a->mask ? a->mask + b * Tk : NULL;
        for (int r = 0; r < nq; r++)
            attn_softmax_row(s + (size_t)r * a->tk_pad, t0 + r, Tk, mask, a->causal, a->lvl);
        /* out(rows, Dh) = s(rows, Tk) · v(Tk, Dh): whole tiles straight into out when no column
         * padding is needed, else through o; the padded tile's extra rows are dropped. */
        const int direct_o = a->dh_pad == Dh;
#if GZ_MVEC
        if (a->lvl == 2) {
            pv_rows512(a, s, full, vuse, ldv, direct_o ? ob : o, direct_o ? D : a->dh_pad);
            if (full < nq)
                pv_rows512(a, sp, GZ_AMR, vuse, ldv, o + (size_t)full * a->dh_pad, a->dh_pad);
        } else {
            pv_rows256(a, s, full, vuse, ldv, direct_o ? ob : o, direct_o ? D : a->dh_pad);
            if (full < nq)
                pv_rows256(a, sp, GZ_AMR, vuse, ldv, o + (size_t)full * a->dh_pad, a->dh_pad);
        }
#endif
        for (int r = direct_o ? full : 0; r < nq; r++)
            memcpy(ob + (size_t)r * D, o + (size_t)r * a->dh_pad, (size_t)Dh * sizeof *ob);
    }
    free(buf);
}

/* The vector-path attention (lvl 1 or 2); arguments as gz_attention, Tk >= 1. Returns 0, or
 * -1 when some range had no scratch (its rows of out are then not written). */
static int attention_pairs(const gz_compute *cx, const float *q, int q_stride, const float *k,
                           const float *v, int kv_stride, float *out, int B, int Tq, int Tk, int H,
                           int Dh, const int32_t *key_mask, int causal, float scale, int lvl) {
    atomic_int failed = 0;
    fa_args a = {cx, q,      k,   v, out, key_mask,          q_stride, kv_stride, Tq,    Tk,     H,
                 Dh, causal, lvl, 0, 0,   lvl == 2 ? 16 : 8, 0,        0,         scale, &failed};
    a.nqb = (Tq + GZ_AQB - 1) / GZ_AQB;
    int per = (Tq + a.nqb - 1) / a.nqb; /* balance the blocks: 197 rows = 4 x 48 + 5 -> 5 x 42 */
    a.qb = (per + GZ_AMR - 1) / GZ_AMR * GZ_AMR;
    a.tk_pad = (Tk + a.W - 1) / a.W * a.W;
    a.dh_pad = (Dh + a.W - 1) / a.W * a.W;
    size_t items = (size_t)B * H * a.nqb;
    size_t flops = 4 * (size_t)a.qb * a.tk_pad * a.dh_pad;
    /* claims of whole (batch, head) pairs where they can: a range packs K once per pair */
    gz_compute_for(cx, items, GZ_ATTN_PAR_FLOPS / flops + 1, (size_t)a.nqb, fa_range, &a);
    return atomic_load(&failed) ? -1 : 0;
}

/* Scores of at most this many floats (8 MiB) are held at once: a group of (batch, head)
 * pairs is scored, soft-maxed in parallel, then multiplied with V. */
#define GZ_ATTN_GROUP_FLOATS ((size_t)2 << 20)

gz_status gz_attention(const gz_compute *cx, const float *q, int q_stride, const float *k,
                       const float *v, int kv_stride, float *out, int B, int Tq, int Tk, int H,
                       int Dh, const int32_t *key_mask, int causal, float scale) {
    assert(cx);
    if (B <= 0 || Tq <= 0 || H <= 0 || Dh <= 0) return GZ_OK;
    int D = H * Dh;
    if (Tk <= 0) { /* no keys: every output row is an empty sum */
        memset(out, 0, (size_t)B * Tq * D * sizeof *out);
        return GZ_OK;
    }
    int lvl = gz_compute_simd_level(cx);
    if (lvl > 0) {
        if (attention_pairs(cx, q, q_stride, k, v, kv_stride, out, B, Tq, Tk, H, Dh, key_mask,
                            causal, scale, lvl) != 0)
            return GZ_FAIL(GZ_ENOMEM,
                           "attention: no memory for the scores of %d keys (B %d, Tq %d, H %d)", Tk,
                           B, Tq, H);
        return GZ_OK;
    }
    /* The reference path: OpenBLAS GEMMs per pair, softmax rows in parallel. */
    size_t per = (size_t)Tq * Tk; /* scores of one (b, h) pair */
    size_t npairs = (size_t)B * H;
    size_t group = GZ_ATTN_GROUP_FLOATS / per;
    if (group < 1) group = 1;
    if (group > npairs) group = npairs;
    size_t bytes;
    float *s = NULL; /* (group, Tq, Tk) */
    if (gz_mul_size(group, per * sizeof *s, &bytes)) s = scratch_alloc(cx, bytes);
    if (!s) {
        /* Out of memory: a few query rows at a time from the stack. */
        float stack_buf[GZ_ATTN_STACK_FLOATS];
        int chunk = stack_rows(cx, Tk);
        if (chunk == 0)
            return GZ_FAIL(GZ_ENOMEM,
                           "attention: no memory for the scores of %d keys (B %d, Tq %d, H %d)", Tk,
                           B, Tq, H);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int t0 = 0; t0 < Tq; t0 += chunk) {
                    int nq = Tq - t0 < chunk ? Tq - t0 : chunk;
                    attention_rows(q + (size_t)b * Tq * q_stride + (size_t)h * Dh, q_stride,
                                   k + (size_t)b * Tk * kv_stride + (size_t)h * Dh,
                                   v + (size_t)b * Tk * kv_stride + (size_t)h * Dh, kv_stride,
                                   out + (size_t)b * Tq * D + (size_t)h * Dh, D, t0, nq, Tk, Dh,
                                   key_mask ? key_mask + (size_t)b * Tk : NULL, causal, scale,
                                   stack_buf);
                }
        return GZ_OK;
    }
    for (size_t p0 = 0; p0 < npairs; p0 += group) {
        size_t ng = npairs - p0 < group ? npairs - p0 : group;
        /* s[g](Tq, Tk) = scale * q_bh(Tq, Dh) · k_bh(Tk, Dh)^T */
        for (size_t g = 0; g < ng; g++) {
            size_t b = (p0 + g) / H, h = (p0 + g) % H;
            gz_sgemm(0, 1, Tq, Tk, Dh, scale, q + b * Tq * q_stride + h * Dh, q_stride,
                     k + b * Tk * kv_stride + h * Dh, kv_stride, 0.0f, s + g * per, Tk);
        }
        attn_sm_args a = {s, key_mask, p0, Tq, Tk, H, causal, lvl};
        gz_pool_for(cx->pool, ng * Tq, GZ_PAR_MIN / (size_t)Tk + 1, cx->n_threads,
                    attn_softmax_range, &a);
        /* out_bh(Tq, Dh) = s[g](Tq, Tk) · v_bh(Tk, Dh) */
        for (size_t g = 0; g < ng; g++) {
            size_t b = (p0 + g) / H, h = (p0 + g) % H;
            gz_sgemm(0, 0, Tq, Dh, Tk, 1.0f, s + g * per, Tk, v + b * Tk * kv_stride + h * Dh,
                     kv_stride, 0.0f, out + b * Tq * D + h * Dh, D);
        }
    }
    free(s);
    return GZ_OK;
}

/* im2col of nimg images: row r = (image, gy, gx), column (c, y, x) matching the weight layout. */
typedef struct {
    const float *pixels;
    float *cols;
    int C, S, p;
} im2col_args;

static void im2col_range(void *ctx, size_t r0, size_t r1) {
    const im2col_args *a = ctx;
    const float *pixels = a->pixels;
    float *cols = a->cols;
    int C = a->C, S = a->S, p = a->p, G = S / p;
    size_t kk = (size_t)C * p * p;
    for (size_t r = r0; r < r1; r++) {
        size_t b = r / ((size_t)G * G), g = r % ((size_t)G * G);
        size_t gy = g / G, gx = g % G;
        const float *img = pixels + b * C * S * S;
        float *row = cols + r * kk;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < p; y++)
                memcpy(row + ((size_t)c * p + y) * p,
                       img + ((size_t)c * S + gy * p + y) * S + gx * p, (size_t)p * sizeof *row);
    }
}

static void im2col(const gz_compute *cx, const float *pixels, float *cols, int nimg, int C, int S,
                   int p) {
    int G = S / p;
    size_t kk = (size_t)C * p * p;
    im2col_args a = {pixels, cols, C, S, p};
    gz_pool_for(cx->pool, (size_t)nimg * G * G, GZ_PAR_MIN / kk + 1, cx->n_threads, im2col_range,
                &a);
}

/* im2col + one GEMM per `per` images, the columns in cols (per*G*G rows of C*p*p). */
static void patch_embed_cols(const gz_compute *cx, const float *pixels, const float *weight,
                             const float *bias, float *out, int B, int C, int S, int p, int D,
                             float *cols, int per) {
    size_t np = (size_t)(S / p) * (size_t)(S / p), kk = (size_t)C * p * p;
    for (int b0 = 0; b0 < B; b0 += per) {
        int n = B - b0 < per ? B - b0 : per;
        im2col(cx, pixels + (size_t)b0 * C * S * S, cols, n, C, S, p);
        gz_linear_cx(cx, cols, weight, NULL, bias, out + (size_t)b0 * np * D, D, (int)(np * n),
                     (int)kk, D);
    }
}

void gz_patch_embed_cols(const gz_compute *cx, const float *pixels, const float *weight,
                         const float *bias, float *out, int B, int C, int S, int p, int D,
                         float *cols) {
    assert(cols);
    if (B <= 0 || p <= 0 || D <= 0) return;
    patch_embed_cols(cx, pixels, weight, bias, out, B, C, S, p, D, cols, B);
}

void gz_patch_embed(const gz_compute *cx, const float *pixels, const float *weight,
                    const float *bias, float *out, int B, int C, int S, int p, int D) {
    if (B <= 0 || p <= 0 || D <= 0) return;
    int G = S / p;
    size_t np = (size_t)G * G;     /* patches per image */
    size_t kk = (size_t)C * p * p; /* features per patch */
    size_t per_img, all;
    if (!gz_mul_size(np * sizeof(float), kk, &per_img)) per_img = SIZE_MAX;
    if (!gz_mul_size(per_img, (size_t)B, &all)) all = SIZE_MAX;
    /* One GEMM over all images when the columns fit, else one per image. */
    float *cols = all != SIZE_MAX ? scratch_alloc(cx, all) : NULL; /* (B*G*G, C*p*p) */
    int per = B;
    if (!cols && per_img != SIZE_MAX) {
        cols = scratch_alloc(cx, per_img);
        per = 1;
    }
    if (cols) {
        patch_embed_cols(cx, pixels, weight, bias, out, B, C, S, p, D, cols, per);
        free(cols);
        return;
    }
    /* Out of memory: the plain convolution loop. */
    for (int b = 0; b < B; b++) {
        const float *img = pixels + (size_t)b * C * S * S;
        float *ob = out + (size_t)b * np * D;
        for (size_t g = 0; g < np; g++) {
            int gy = (int)(g / G), gx = (int)(g % G);
            for (int d = 0; d < D; d++) {
                const float *wd = weight + (size_t)d * kk;
                float acc = bias ? bias[d] : 0.0f;
                for (int c = 0; c < C; c++)
                    for (int y = 0; y < p; y++)
                        for (int x = 0; x < p; x++)
                            acc += wd[((size_t)c * p + y) * p + x] *
                                   img[((size_t)c * S + gy * p + y) * S + gx * p + x];
                ob[g * D + d] = acc;
            }
        }
    }
}

/* ---- half-precision conversions ---- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float gz_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

float gz_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t gz_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* nan */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {
        /* below the smallest normal half (2^-14): subnormal half = round(|f| * 2^24) */
        if (a < 0x33000000u) return sign; /* below 2^-25: rounds to zero (ties to even 0) */
        uint32_t e = a >> 23;             /* 102..112 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* value = m * 2^(e-150); half = m >> (126 - e) */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    /* normal: rebias exponent, round mantissa 23 -> 10 bits to nearest even */
    uint32_t r = a - 0x38000000u; /* exponent - 112 */
    uint32_t lsb = (r >> 13) & 1u;
    r += 0xfffu + lsb;
    return (uint16_t)(sign | (r >> 13));
}

uint16_t gz_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return (uint16_t)(u >> 16);
}
