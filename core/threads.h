/* threads.h - parallel loops for the compute kernels: a persistent pool, or fork-join threads.
 *
 * A gz_pool keeps n_threads - 1 workers for the life of its owner (a gz_model, a bench). They
 * spin for at most GZ_POOL_SPIN_US after each loop, because a transformer forward issues its
 * loops back to back (hundreds per text query, each a few tens of microseconds), then sleep on
 * a condition variable, so an idle pool costs nothing. Starting a thread per loop cost 30-50 us
 * per loop, a third of a small Linear's time. Without a pool (NULL), or when other threads
 * are already running loops on all its lanes, the loop runs on short-lived pthreads started
 * per call (a text query 40% slower than on a pool).
 * Thread counts are the caller's (kernels pass their gz_compute's n_threads, core/kernels.h);
 * nothing here is process state, so loops of different models never limit each other.
 *
 * Usage:
 *   gz_pool *p = gz_pool_create(4);            // NULL when threads cannot be started: fine
 *   gz_pool_for(p, n, 1024, 4, fn, ctx);       // fn(ctx, begin, end) over [0, n)
 *   gz_pool_free(p); */
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

typedef struct gz_pool gz_pool; /* opaque: the workers and the loop they run */

/* Longest a worker spins for the next loop before it sleeps. */
#define GZ_POOL_SPIN_US 100

/* A pool of n_threads - 1 workers (n_threads <= 0: gz_cpu_count()); the caller of a loop is
 * the n_threads-th. NULL when n_threads is 1 or no worker could be started; gz_pool_for
 * accepts NULL. The caller owns it and frees it with gz_pool_free. */
gz_pool *gz_pool_create(int n_threads);
/* A pool of lanes for callers that run loops at once (a model shared by gaze serve's request
 * threads): each lane is a gz_pool_create(n_threads), and a loop runs on the first lane no
 * other caller holds. Fewer lanes when threads run out; NULL as gz_pool_create. */
gz_pool *gz_pool_create_lanes(int n_threads, int lanes);
/* Stop and join the workers of every lane; NULL is fine. No loop may be running on it. */
void gz_pool_free(gz_pool *pool);
/* gz_parallel_for on the pool's workers: the same split and contract (the ranges are the
 * same), at most the pool's size in ranges. Takes the first lane free of another thread's
 * loop; falls back to gz_parallel_for when pool is NULL or every lane is busy (a model shared
 * by more threads than lanes), so it never waits for another caller. fn may not call
 * gz_pool_for itself. */
void gz_pool_for(gz_pool *pool, size_t n, size_t min_per_thread, int nthreads, gz_range_fn fn,
                 void *ctx);
/* gz_pool_for with the same number of threads taking part (min_per_thread and nthreads decide
 * it), but each thread claims its next range when it is done with the last: a share of what
 * is left, at least `grain` items (0 counts as 1), so a thread that the system slows (another
 * program, a host that takes a vCPU away) does less of the loop instead of holding the others
 * at its end. Ranges are contiguous, disjoint and cover [0, n); their number and bounds vary
 * from call to call. Without the pool's workers, the static ranges of gz_parallel_for. */
void gz_pool_for_guided(gz_pool *pool, size_t n, size_t min_per_thread, size_t grain, int nthreads,
                        gz_range_fn fn, void *ctx);

#endif
