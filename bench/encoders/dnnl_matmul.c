/* dnnl_matmul.c - would oneDNN's matmul primitive make gaze's fp32 Linear faster? Side A is
 * gaze's own fp32 path, gz_linear_act_cx on a two-thread pool (above 32 rows: the output
 * columns split across the pool, each block one single-threaded OpenBLAS sgemm starting from
 * the bias, GELU applied by each thread to the block it wrote). Side B runs the same shape the
 * same way with oneDNN 2.6: two threads, each a matmul primitive for half of the output
 * columns, its weights reordered once into the primitive's own blocked layout (what a model
 * load would do), the bias and, for fc1, GELU (erf) fused as post-ops, one OpenMP thread per
 * primitive. The runs interleave A, B, A, B...; B is timed between two barriers.
 *
 *   bench_dnnl_matmul [--runs 20]
 *
 * Output: MATMUL <n> <in> <out> <gelu 0|1> <openblas best ms> <median> <onednn best ms> <median>
 * and GFLOP/s at the medians. Not part of gaze: oneDNN is linked by this program only. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/encoders/bench_util.h"
#include "core/kernels.h"
#include "core/linear.h"

#define THREADS 2
#define MAX_RUNS 256

#define DNNL_OK(call)                                                                              \
    do {                                                                                           \
        dnnl_status_t s_ = (call);                                                                 \
        if (s_ != dnnl_success) {                                                                  \
            fprintf(stderr, "bench_dnnl_matmul: %s failed (%d)\n", #call, (int)s_);                \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* One thread's half: y[:, c0:c0+cols] of y(n, ldy). */
typedef struct {
    int n, in, cols, ldy, gelu, runs;
    const float *x, *w, *b; /* x (n, in); w, b: this half's rows of W (out, in) and of b */
    float *y;
    dnnl_engine_t engine;
    pthread_barrier_t *barrier;
} half_job;

static void *half_main(void *arg) {
    half_job *j = arg;
    omp_set_num_threads(1); /* this thread's oneDNN calls run on it alone */
    dnnl_stream_t stream;
    DNNL_OK(dnnl_stream_create(&stream, j->engine, dnnl_stream_default_flags));
    dnnl_memory_desc_t src_md, wany_md, wuser_md, bias_md, dst_md;
    dnnl_dims_t src_d = {j->n, j->in}, w_d = {j->in, j->cols}, b_d = {1, j->cols},
                dst_d = {j->n, j->cols}, w_strides = {1, j->in}, dst_strides = {j->ldy, 1};
    DNNL_OK(dnnl_memory_desc_init_by_tag(&src_md, 2, src_d, dnnl_f32, dnnl_ab));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&wany_md, 2, w_d, dnnl_f32, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_strides(&wuser_md, 2, w_d, dnnl_f32, w_strides));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&bias_md, 2, b_d, dnnl_f32, dnnl_ab));
    DNNL_OK(dnnl_memory_desc_init_by_strides(&dst_md, 2, dst_d, dnnl_f32, dst_strides));
    dnnl_matmul_desc_t desc;
    DNNL_OK(dnnl_matmul_desc_init(&desc, &src_md, &wany_md, &bias_md, &dst_md));
    dnnl_primitive_attr_t attr;
    DNNL_OK(dnnl_primitive_attr_create(&attr));
    if (j->gelu) {
        dnnl_post_ops_t po;
        DNNL_OK(dnnl_post_ops_create(&po));
        DNNL_OK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f));
        DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, po));
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, attr, j->engine, NULL));
    const dnnl_memory_desc_t *packed_md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    /* the weights reordered once into the primitive's layout (what a load would do) */
    dnnl_memory_t w_user, w_packed, src, bias, dst;
    DNNL_OK(dnnl_memory_create(&w_user, &wuser_md, j->engine, (void *)j->w));
    DNNL_OK(dnnl_memory_create(&w_packed, packed_md, j->engine, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    DNNL_OK(
        dnnl_reorder_primitive_desc_create(&rpd, &wuser_md, j->engine, packed_md, j->engine, NULL));
    dnnl_primitive_t reorder, matmul;
    DNNL_OK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, w_user}, {DNNL_ARG_TO, w_packed}};
    DNNL_OK(dnnl_primitive_execute(reorder, stream, 2, rargs));
    DNNL_OK(dnnl_stream_wait(stream));
    DNNL_OK(dnnl_memory_create(&src, &src_md, j->engine, (void *)j->x));
    DNNL_OK(dnnl_memory_create(&bias, &bias_md, j->engine, (void *)j->b));
    DNNL_OK(dnnl_memory_create(&dst, &dst_md, j->engine, j->y));
    DNNL_OK(dnnl_primitive_create(&matmul, pd));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, src},
                               {DNNL_ARG_WEIGHTS, w_packed},
                               {DNNL_ARG_BIAS, bias},
                               {DNNL_ARG_DST, dst}};
    for (int r = -2; r < j->runs; r++) {
        pthread_barrier_wait(j->barrier); /* the main thread timed side A and starts B */
        DNNL_OK(dnnl_primitive_execute(matmul, stream, 4, args));
        DNNL_OK(dnnl_stream_wait(stream));
        pthread_barrier_wait(j->barrier);
    }
    dnnl_primitive_destroy(matmul);
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    dnnl_memory_destroy(w_user);
    dnnl_memory_destroy(w_packed);
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(bias);
    dnnl_memory_destroy(dst);
    dnnl_stream_destroy(stream);
    return NULL;
}

static void run_shape(dnnl_engine_t engine, int n, int in, int out, int gelu, int runs) {
    float *x = xmalloc((size_t)n * in * sizeof *x), *w = xmalloc((size_t)out * in * sizeof *w);
    float *b = xmalloc((size_t)out * sizeof *b), *y = xmalloc((size_t)n * out * sizeof *y);
    unsigned s = 12345;
    for (size_t i = 0; i < (size_t)n * in; i++)
        x[i] = ((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < (size_t)out * in; i++)
        w[i] = (((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f) * 0.05f;
    for (int i = 0; i < out; i++)
        b[i] = 0.01f * (float)i / (float)out;
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, THREADS + 1);
    half_job jobs[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        int c0 = out / THREADS * t, cols = t == THREADS - 1 ? out - c0 : out / THREADS;
        jobs[t] = (half_job){.n = n,
                             .in = in,
                             .cols = cols,
                             .ldy = out,
                             .gelu = gelu,
                             .runs = runs,
                             .x = x,
                             .w = w + (size_t)c0 * in,
                             .b = b + c0,
                             .y = y + c0,
                             .engine = engine,
                             .barrier = &barrier};
        pthread_create(&th[t], NULL, half_main, &jobs[t]);
    }
    /* side A on the main thread while the oneDNN threads wait at the barrier (asleep) */
    gz_compute cx = gz_compute_make(THREADS, 1);
    gz_pool *pool = gz_pool_create(THREADS);
    cx.pool = pool;
    double tb[MAX_RUNS], td[MAX_RUNS];
    for (int r = -2; r < runs; r++) {
        double t0 = now_ms();
        if (gz_linear_act_cx(&cx, x, w, NULL, b, gelu ? (int)GZ_ACT_GELU : GZ_LINEAR_NO_ACT, y, out,
                             n, in, out) != GZ_OK)
            exit(1);
        double t1 = now_ms();
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier);
        double t2 = now_ms();
        if (r >= 0) tb[r] = t1 - t0, td[r] = t2 - t1;
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    gz_pool_free(pool);
    qsort(tb, (size_t)runs, sizeof *tb, cmp_double);
    qsort(td, (size_t)runs, sizeof *td, cmp_double);
    double gflop = 2.0 * n * in * out / 1e9;
    printf("MATMUL %d %d %d %d %.3f %.3f %.3f %.3f  (%.0f vs %.0f GFLOP/s at the medians)\n", n, in,
           out, gelu, tb[0], tb[runs / 2], td[0], td[runs / 2], gflop / tb[runs / 2] * 1e3,
           gflop / td[runs / 2] * 1e3);
    fflush(stdout);
    pthread_barrier_destroy(&barrier);
    free(x);
    free(w);
    free(b);
    free(y);
}

int main(int argc, char **argv) {
    int runs = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--runs N]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS) runs = 20;
    openblas_set_num_threads(1); /* as a gaze model with a pool sets it */
    dnnl_engine_t engine;
    DNNL_OK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    /* ViT-B/16: batch 8 at 224 px (1576 rows), batch 1 (197 rows); QKV, fc1 (+GELU), fc2,
     * attention output */
    static const int shapes[][4] = {
        {1576, 768, 2304, 0}, {1576, 768, 3072, 1}, {1576, 3072, 768, 0}, {1576, 768, 768, 0},
        {197, 768, 2304, 0},  {197, 768, 3072, 1},  {197, 3072, 768, 0},  {197, 768, 768, 0}};
    printf("# MATMUL n in out gelu openblas_best openblas_median onednn_best onednn_median (ms); "
           "side A = gaze fp32\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        run_shape(engine, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], runs);
    dnnl_engine_destroy(engine);
    return 0;
}
