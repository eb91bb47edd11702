/* bench_linear.c - Linear layer kernels on the real shapes of BERT-base / ViT-B/16: OpenBLAS
 * (the reference) vs gaze's own kernels (core/linear.h): the fp32 default of GZ_GEMM_IN_PLACE
 * (gaze_fp32: row-dot for n <= 32, else OpenBLAS), the packed fp32 kernel (gaze_packed) and the
 * bf16 kernel (gaze_bf16); and,
 * where they were found at configure time, the fp32 GEMMs of oneDNN (dnnl_sgemm, its OpenMP
 * threads), BLIS (bli_sgemm, OpenMP build) and libxsmm (libxsmm_sgemm, one thread: its JIT
 * kernels are for small products and larger ones go to the BLAS it is linked with).
 *
 * Usage: bench_linear [--threads 2] [--runs 20] [--only text|vit] [--methods a,b,...]
 *   --methods: a comma-separated subset of
 *   openblas,gaze_fp32,gaze_bf16,gaze_packed,onednn,blis,libxsmm.
 *   BLIS's OpenMP threads keep spinning after a call and slow every method timed after them:
 *   time BLIS in a run of its own (--methods blis) and the rest without it.
 * Each shape cycles through enough distinct weight copies (>= 64 MiB) that the weights come
 * from memory as in a real forward pass (12 layers), not from the cache.
 * Output: LINEAR <n> <in> <out> <method> <best ms> <median ms> <GFLOP/s at best>
 * Best-of-N is reported beside the median because the machines here are shared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/encoders/bench_util.h"
#include "core/kernels.h"
#include "core/linear.h"

#ifdef GZ_BENCH_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef GZ_BENCH_BLIS
#include <blis.h>
#endif
#ifdef GZ_BENCH_XSMM
#include <libxsmm.h>
#endif
#include <omp.h>

enum { M_BLAS, M_OWN32, M_BF16, M_F32P, M_DNNL, M_BLIS, M_XSMM, M_COUNT };
static const char *method_names[M_COUNT] = {"openblas", "gaze_fp32", "gaze_bf16", "gaze_packed",
                                            "onednn",   "blis",      "libxsmm"};

/* --methods: the methods to run (all present ones by default). */
static int method_wanted[M_COUNT] = {1, 1, 1, 1, 1, 1, 1};

static int method_present(int m) {
    if (!method_wanted[m]) return 0;
    switch (m) {
#ifdef GZ_BENCH_DNNL
    case M_DNNL: return 1;
#endif
#ifdef GZ_BENCH_BLIS
    case M_BLIS: return 1;
#endif
#ifdef GZ_BENCH_XSMM
    case M_XSMM: return 1;
#endif
    case M_BLAS:
    case M_OWN32:
    case M_BF16:
    case M_F32P: return 1;
    default: return 0;
    }
}

/* y(n, out) = x(n, in) · w(out, in)^T + b through another library (b added after, as ours). */
static void other_linear(int m, const float *x, const float *w, const float *b, float *y, int n,
                         int in, int out) {
    const float one = 1.0f, zero = 0.0f;
    (void)one, (void)zero; /* each library's case is built only where the library is found */
    (void)x, (void)w, (void)in;
    switch (m) {
#ifdef GZ_BENCH_DNNL
    case M_DNNL: dnnl_sgemm('N', 'T', n, out, in, 1.0f, x, in, w, in, 0.0f, y, out); break;
#endif
#ifdef GZ_BENCH_BLIS
    case M_BLIS:
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, n, out, in, (float *)&one, (float *)x, in, 1,
                  (float *)w, in, 1, (float *)&zero, y, out, 1);
        break;
#endif
#ifdef GZ_BENCH_XSMM
    case M_XSMM: {
        libxsmm_blasint mm = out, nn = n, kk = in, lw = in, lx = in, ly = out;
        libxsmm_sgemm("T", "N", &mm, &nn, &kk, &one, w, &lw, x, &lx, &zero, y, &ly);
        break;
    }
#endif
    default: break;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < out; j++)
            y[(size_t)i * out + j] += b[j];
}

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.0f - 0.5f) * 0.1f;
}

static void run_shape(int n, int in, int out, int threads, int runs) {
    size_t wsz = (size_t)in * out;
    int copies = (int)((64u << 20) / (wsz * sizeof(float))) + 1;
    if (n > 64) copies = 1; /* compute-bound shapes: the weights are reused by many rows */
    unsigned seed = 12345;
    float *x = xmalloc((size_t)n * in * sizeof *x), *b = xmalloc((size_t)out * sizeof *b);
    float *y = xmalloc((size_t)n * out * sizeof *y);
    float **w = xmalloc((size_t)copies * sizeof *w);
    gz_packw *wb = xmalloc((size_t)copies * sizeof *wb); /* both forms */
    for (size_t i = 0; i < (size_t)n * in; i++)
        x[i] = frand(&seed);
    for (int j = 0; j < out; j++)
        b[j] = frand(&seed);
    for (int c = 0; c < copies; c++) {
        w[c] = xmalloc(wsz * sizeof(float));
        for (size_t i = 0; i < wsz; i++)
            w[c][i] = frand(&seed);
        gz_packw f32;
        if (gz_packw_bf16(w[c], out, in, &wb[c]) != GZ_OK) exit(1);
        if (gz_packw_f32(w[c], out, in, &f32) != GZ_OK) exit(1);
        wb[c].f32 = f32.f32;
    }
    static double t[M_COUNT][256];
    if (runs > 256) runs = 256;
    /* interleaved: method A, B, C, A, B, C ... so that the machine's drift weighs on all */
    for (int r = -2; r < runs; r++)
        for (int mth = 0; mth < M_COUNT; mth++) {
            if (!method_present(mth)) continue;
            gz_compute cx = gz_compute_make(threads, 1);
            cx.gemm = mth == M_OWN32                   ? GZ_GEMM_IN_PLACE
                      : mth == M_BF16 || mth == M_F32P ? GZ_GEMM_PACKED
                                                       : GZ_GEMM_REFERENCE;
            cx.bf16 = mth == M_BF16;
            int c = (r + 2) % copies;
            double t0 = now_ms();
            if (mth <= M_F32P) {
                if (gz_linear_cx(&cx, x, w[c], &wb[c], b, y, out, n, in, out) != GZ_OK) exit(1);
            } else {
                other_linear(mth, x, w[c], b, y, n, in, out);
            }
            if (r >= 0) t[mth][r] = now_ms() - t0;
        }
    for (int mth = 0; mth < M_COUNT; mth++) {
        if (!method_present(mth)) continue;
        qsort(t[mth], (size_t)runs, sizeof(double), cmp_double);
        double gf = 2.0 * n * in * out / (t[mth][0] * 1e6);
        printf("LINEAR %d %d %d %s %.3f %.3f %.1f\n", n, in, out, method_names[mth], t[mth][0],
               t[mth][runs / 2], gf);
    }
    fflush(stdout);
    for (int c = 0; c < copies; c++) {
        free(w[c]);
        gz_packw_free(&wb[c]);
    }
    free(w);
    free(wb);
    free(x);
    free(b);
    free(y);
}

int main(int argc, char **argv) {
    int threads = 2, runs = 20;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--methods") && i + 1 < argc) {
            const char *list = argv[++i];
            for (int m = 0; m < M_COUNT; m++) {
                const char *hit = strstr(list, method_names[m]);
                size_t len = strlen(method_names[m]);
                method_wanted[m] =
                    hit && (hit == list || hit[-1] == ',') && (hit[len] == 0 || hit[len] == ',');
            }
        } else {
            fprintf(stderr,
                    "usage: %s [--threads N] [--runs N] [--only text|vit] [--methods a,b]\n",
                    argv[0]);
            return 2;
        }
    }
    gz_blas_set_threads(threads);
    omp_set_num_threads(threads); /* oneDNN's and BLIS's OpenMP threads */
#ifdef GZ_BENCH_BLIS
    bli_thread_set_num_threads(threads);
#endif
#ifdef GZ_BENCH_XSMM
    libxsmm_init();
#endif
    printf("INFO bf16 kernel %s\n", gz_cpu_has_bf16() ? "available" : "unavailable (fp32 ran)");
    static const int text[][3] = {{16, 768, 768}, {16, 768, 3072}, {16, 3072, 768}, {13, 768, 768}};
    static const int vit[][3] = {{1576, 768, 2304}, {1576, 768, 3072}, {1576, 3072, 768},
                                 {1576, 768, 768},  {197, 768, 2304},  {197, 768, 3072}};
    if (!only || !strcmp(only, "text"))
        for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
            run_shape(text[i][0], text[i][1], text[i][2], threads, runs);
    if (!only || !strcmp(only, "vit"))
        for (size_t i = 0; i < sizeof vit / sizeof vit[0]; i++)
            run_shape(vit[i][0], vit[i][1], vit[i][2], threads, runs < 8 ? runs : 8);
    return 0;
}
