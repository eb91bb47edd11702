/* bench_util.h - the timing and allocation helpers the encoder benchmarks share (bench_encoders,
 * bench_linear, bench_dnnl_matmul). Header-only: each benchmark is one program of its own. */
#ifndef GZ_BENCH_UTIL_H
#define GZ_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Monotonic time in ms. */
static inline double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* qsort order of doubles, ascending. */
static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* malloc(n), or exit(1) with a message: a benchmark has nothing to recover. */
static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "benchmark: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

#endif
