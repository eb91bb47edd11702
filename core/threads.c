/* threads.c - fork-join parallel loops on short-lived pthreads (no workers spinning between calls).
 */
#include "core/threads.h"

#include <assert.h>
#include <pthread.h>

#include "core/kernels.h" /* gz_cpu_count */

/* At most this many ranges per call (the machines here have 2 cores; big hosts 16-64). */
#define GZ_MAX_FORK 64

typedef struct {
    gz_range_fn fn;
    void *ctx;
    size_t begin, end;
} range_job;

static void *run_range(void *arg) {
    range_job *j = arg;
    j->fn(j->ctx, j->begin, j->end);
    return NULL;
}

void gz_parallel_for(size_t n, size_t min_per_thread, int nthreads, gz_range_fn fn, void *ctx) {
    assert(fn);
    if (n == 0) return;
    if (nthreads <= 0) nthreads = gz_cpu_count();
    if (nthreads > GZ_MAX_FORK) nthreads = GZ_MAX_FORK;
    if (min_per_thread < 1) min_per_thread = 1;
    size_t parts = n / min_per_thread;
    if (parts > (size_t)nthreads) parts = (size_t)nthreads;
    if (parts <= 1) {
        fn(ctx, 0, n);
        return;
    }
    range_job jobs[GZ_MAX_FORK];
    pthread_t tid[GZ_MAX_FORK];
    int started[GZ_MAX_FORK] = {0};
    assert(parts <= GZ_MAX_FORK);
    for (size_t p = 0; p < parts; p++) {
        jobs[p].fn = fn;
        jobs[p].ctx = ctx;
        jobs[p].begin = n * p / parts;
        jobs[p].end = n * (p + 1) / parts;
    }
    for (size_t p = 1; p < parts; p++)
        started[p] = pthread_create(&tid[p], NULL, run_range, &jobs[p]) == 0;
    run_range(&jobs[0]);
    for (size_t p = 1; p < parts; p++) {
        if (started[p])
            pthread_join(tid[p], NULL);
        else
            run_range(&jobs[p]); /* could not start a thread: do its share here */
    }
}
