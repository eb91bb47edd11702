/* fma_peak.c - the machine's measured multiply-add peak, for bench/encoders/run.sh's "fraction
 * of peak" column: N threads each run independent chains of AVX-512 FMAs (fp32) and of
 * AVX512-BF16 dot products (vdpbf16ps, fp32 accumulation) for a fixed time, and the best
 * GFLOP/s of a few tries is printed. Enough independent accumulators hide the instruction
 * latency, so the loop is bound by the FMA ports only: no program can exceed it.
 *
 * (The empty asm keeps the compiler from folding the chains, which it may do for constants.)
 *
 * Usage: fma_peak [THREADS]   prints "PEAK fp32 <GFLOP/s>" and "PEAK bf16 <GFLOP/s>" (or
 * "PEAK bf16 none" without AVX512-BF16), then "PEAK read <GB/s>": the memory read bandwidth of
 * THREADS threads (read_peak). */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12        /* independent accumulators per thread */
#define STEPS 1000000ull /* loop trips per try (x CHAINS instructions) */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float sink[64]; /* keeps the results alive */

/* Twelve named accumulators, each step one instruction per accumulator: named variables stay
 * in registers (an array with the asm barrier was kept in memory). */
#define STEP12(OP)                                                                                 \
    OP(a0), OP(a1), OP(a2), OP(a3), OP(a4), OP(a5), OP(a6), OP(a7), OP(a8), OP(a9), OP(a10), OP(a11)
#define KEEP(x) __asm__ volatile("" : "+v"(x))

__attribute__((target("avx512f"))) static void *fp32_loop(void *arg) {
    int id = (int)(size_t)arg;
    const __m512 m = _mm512_set1_ps(0.999f), d = _mm512_set1_ps(1e-7f);
    __m512 a0 = m, a1 = m, a2 = m, a3 = m, a4 = m, a5 = m, a6 = m, a7 = m, a8 = m, a9 = m, a10 = m,
           a11 = m;
#define FMA32(x) (x = _mm512_fmadd_ps(x, m, d))
    for (unsigned long long i = 0; i < STEPS; i++) {
        STEP12(FMA32);
        KEEP(a0);
        KEEP(a1);
        KEEP(a2);
        KEEP(a3);
        KEEP(a4);
        KEEP(a5);
        KEEP(a6);
        KEEP(a7);
        KEEP(a8);
        KEEP(a9);
        KEEP(a10);
        KEEP(a11);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    sink[id] = _mm512_reduce_add_ps(s);
    return NULL;
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void *bf16_loop(void *arg) {
    int id = (int)(size_t)arg;
    const __m512bh p = (__m512bh)_mm512_set1_epi16(0x3f80), q = (__m512bh)_mm512_set1_epi16(0x3380);
    const __m512 z = _mm512_setzero_ps();
    __m512 a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z, a8 = z, a9 = z, a10 = z,
           a11 = z;
#define DPBF(x) (x = _mm512_dpbf16_ps(x, p, q))
    for (unsigned long long i = 0; i < STEPS; i++) {
        STEP12(DPBF);
        KEEP(a0);
        KEEP(a1);
        KEEP(a2);
        KEEP(a3);
        KEEP(a4);
        KEEP(a5);
        KEEP(a6);
        KEEP(a7);
        KEEP(a8);
        KEEP(a9);
        KEEP(a10);
        KEEP(a11);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    sink[id] = _mm512_reduce_add_ps(s);
    return NULL;
}

/* The read bandwidth: each thread sums its share of a buffer far larger than the caches, with
 * four independent accumulators, so the loads, not the adds, set the pace. A text query streams
 * every weight of its tower once, so this is its floor (bytes / bandwidth). */
#define READ_BYTES ((size_t)1 << 30)
static float *read_buf;
static int read_threads;

__attribute__((target("avx512f"))) static void *read_loop(void *arg) {
    int id = (int)(size_t)arg;
    size_t per = READ_BYTES / sizeof(float) / (size_t)read_threads / 64 * 64;
    const float *p = read_buf + (size_t)id * per;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < per; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    __m512 sum = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    KEEP(sum); /* sink alone is never read, so its store and the loop could be dropped */
    sink[id] = _mm512_reduce_add_ps(sum);
    return NULL;
}

/* Best GB/s of 5 passes of n threads over READ_BYTES (touched first, so no page faults). */
static double read_peak(int n) {
    read_buf = aligned_alloc(64, READ_BYTES);
    if (!read_buf) return 0;
    for (size_t i = 0; i < READ_BYTES / sizeof(float); i++)
        read_buf[i] = 1.0f;
    read_threads = n;
    size_t per = READ_BYTES / sizeof(float) / (size_t)n / 64 * 64;
    double best = 0;
    for (int t = 0; t < 5; t++) {
        pthread_t th[64];
        double t0 = now_s();
        for (int i = 0; i < n; i++)
            if (pthread_create(&th[i], NULL, read_loop, (void *)(size_t)i) != 0) exit(1);
        for (int i = 0; i < n; i++)
            pthread_join(th[i], NULL);
        double g = (double)n * per * sizeof(float) / (now_s() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(read_buf);
    return best;
}

/* Best GFLOP/s of 5 tries of n threads; flops_per_insn per instruction and lane group. */
static double peak(void *(*fn)(void *), int n, double flops_per_insn) {
    double best = 0;
    for (int t = 0; t < 5; t++) {
        pthread_t th[64];
        double t0 = now_s();
        for (int i = 0; i < n; i++)
            if (pthread_create(&th[i], NULL, fn, (void *)(size_t)i) != 0) exit(1);
        for (int i = 0; i < n; i++)
            pthread_join(th[i], NULL);
        double g = (double)n * STEPS * CHAINS * flops_per_insn / (now_s() - t0) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2;
    if (n < 1 || n > 64) {
        fprintf(stderr, "usage: fma_peak [THREADS 1..64]\n");
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        printf("PEAK fp32 none\nPEAK bf16 none\n");
        return 0;
    }
    printf("PEAK fp32 %.1f\n", peak(fp32_loop, n, 16 * 2)); /* 16 lanes x (mul + add) */
    /* vdpbf16ps: 16 lanes x 2 bf16 pairs x (mul + add) */
    if (__builtin_cpu_supports("avx512bf16"))
        printf("PEAK bf16 %.1f\n", peak(bf16_loop, n, 16 * 2 * 2));
    else
        printf("PEAK bf16 none\n");
    printf("PEAK read %.1f\n", read_peak(n)); /* GB/s */
    return 0;
}
