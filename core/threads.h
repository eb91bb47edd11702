/* threads.h - fork-join parallel loops for the compute kernels.
 *
 * Workers are short-lived pthreads started per call, so nothing spins between calls: on a
 * 2-core machine, OpenMP's spinning workers competing with OpenBLAS's threads cost up to 2x
 * in CPU time in a transformer layer, while starting a thread costs tens of microseconds.
 * Use it only for work of at least ~0.1 ms per thread (min_per_thread says how much).
 * Thread count: the caller's (kernels pass their gz_compute's n_threads, core/kernels.h);
 * nothing here is process state, so loops of different models never limit each other. */
#ifndef GZ_CORE_THREADS_H
#define GZ_CORE_THREADS_H

#include <stddef.h>

/* Process the items [begin, end) of a parallel loop. */
typedef void (*gz_range_fn)(void *ctx, size_t begin, size_t end);

/* Split [0, n) into at most nthreads contiguous ranges of at least min_per_thread items (at
 * most gz_cpu_count() of them when nthreads <= 0), run fn on each (the calling thread takes
 * the first), and return when all are done. Runs fn(ctx, 0, n) on the calling thread when the
 * work is too small to split or a thread cannot be started; fn must therefore accept any
 * range. fn may not call gz_parallel_for itself. */
void gz_parallel_for(size_t n, size_t min_per_thread, int nthreads, gz_range_fn fn, void *ctx);

#endif
