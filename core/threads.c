/* threads.c - parallel loops: a persistent pool of workers, or fork-join on short-lived pthreads.
 */
#include "core/threads.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

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

/* ---- the persistent pool ---- */

struct gz_pool {
    int n_workers;               /* threads besides the caller */
    pthread_t *tid;              /* (n_workers) */
    struct pool_worker *workers; /* (n_workers + 1); [0] unused: the caller takes range 0 */
    pthread_mutex_t busy;        /* held by the thread whose loop runs (trylock: never waited) */
    pthread_mutex_t mu;          /* with the two conditions, for sleeping workers and caller */
    pthread_cond_t work, done;
    /* the current loop, written by the caller before gen moves (release), read after */
    gz_range_fn fn;
    void *ctx;
    size_t n, parts;
    size_t grain; /* 0: the static ranges; else ranges are claimed from `claimed` (guided) */
    atomic_size_t claimed; /* first item not yet claimed, when grain != 0 */
    atomic_uint gen;       /* loop number; a change means "new loop" */
    atomic_int left;       /* workers that have not finished the current loop */
    atomic_int stop;       /* set once by gz_pool_free */
    atomic_int sleep;      /* workers asleep or about to sleep on `work` */
    gz_pool *next;         /* the next lane (gz_pool_create_lanes), or NULL; owned */
};

typedef struct pool_worker {
    gz_pool *pool;
    int index; /* 1..n_workers: the range this worker takes */
} pool_worker;

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spin until *v != old or the spin time is over; returns the last value read. */
static unsigned spin_while_equal(atomic_uint *v, unsigned old) {
    double end = 0;
    for (unsigned i = 1;; i++) {
        unsigned cur = atomic_load_explicit(v, memory_order_acquire);
        if (cur != old) return cur;
        cpu_relax();
        if ((i & 63) == 0) {
            double t = now_us();
            if (end == 0)
                end = t + GZ_POOL_SPIN_US;
            else if (t > end)
                return cur;
        }
    }
}

/* Claim the next range of the current loop: a share of what is left (1 / (2 * parts)), at
 * least the grain, so that early claims are long (whole cache blocks) and the last short.
 * Returns 0 when nothing is left. */
static int claim(gz_pool *p, size_t *begin, size_t *end) {
    size_t cur = atomic_load_explicit(&p->claimed, memory_order_relaxed);
    for (;;) {
        if (cur >= p->n) return 0;
        size_t left = p->n - cur, take = left / (2 * p->parts);
        if (take < p->grain) take = p->grain;
        if (take > left) take = left;
        if (atomic_compare_exchange_weak_explicit(&p->claimed, &cur, cur + take,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            *begin = cur;
            *end = cur + take;
            return 1;
        }
    }
}

/* One thread's share of the current loop: range `index` of the static split, or claims until
 * none are left. */
static void run_share(gz_pool *p, size_t index) {
    if (!p->grain) {
        p->fn(p->ctx, p->n * index / p->parts, p->n * (index + 1) / p->parts);
        return;
    }
    size_t b, e;
    while (claim(p, &b, &e))
        p->fn(p->ctx, b, e);
}

static void *pool_main(void *arg) {
    pool_worker *w = arg;
    gz_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = spin_while_equal(&p->gen, seen);
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleep, 1);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->work, &p->mu);
            atomic_fetch_sub(&p->sleep, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = g;
        size_t i = (size_t)w->index;
        if (i < p->parts) run_share(p, i);
        if (atomic_fetch_sub_explicit(&p->left, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

gz_pool *gz_pool_create(int n_threads) {
    if (n_threads <= 0) n_threads = gz_cpu_count();
    if (n_threads > GZ_MAX_FORK) n_threads = GZ_MAX_FORK;
    if (n_threads <= 1) return NULL;
    gz_pool *p = calloc(1, sizeof *p);
    pool_worker *w = calloc((size_t)n_threads, sizeof *w);
    if (p) p->tid = calloc((size_t)n_threads, sizeof *p->tid);
    if (!p || !w || !p->tid) {
        if (p) free(p->tid);
        free(p);
        free(w);
        return NULL;
    }
    pthread_mutex_init(&p->busy, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->left, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->sleep, 0);
    atomic_init(&p->claimed, 0);
    p->workers = w;
    for (int i = 1; i < n_threads; i++) {
        w[i].pool = p;
        w[i].index = i;
        if (pthread_create(&p->tid[p->n_workers], NULL, pool_main, &w[i]) != 0) break;
        p->n_workers++;
    }
    if (p->n_workers == 0) {
        gz_pool_free(p);
        return NULL;
    }
    return p;
}

gz_pool *gz_pool_create_lanes(int n_threads, int lanes) {
    gz_pool *first = NULL, **tail = &first;
    for (int i = 0; i < (lanes > 0 ? lanes : 1); i++) {
        gz_pool *p = gz_pool_create(n_threads);
        if (!p) break; /* fewer lanes: the callers past them start threads per loop */
        *tail = p;
        tail = &p->next;
    }
    return first;
}

static void free_lane(gz_pool *pool);

void gz_pool_free(gz_pool *pool) {
    while (pool) {
        gz_pool *next = pool->next;
        free_lane(pool);
        pool = next;
    }
}

static void free_lane(gz_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->gen, 1); /* wakes the spinners */
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n_workers; i++)
        pthread_join(pool->tid[i], NULL);
    pthread_cond_destroy(&pool->work);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->mu);
    pthread_mutex_destroy(&pool->busy);
    free(pool->workers);
    free(pool->tid);
    free(pool);
}

/* gz_pool_for and gz_pool_for_guided: grain 0 = the static ranges. */
static void pool_loop(gz_pool *pool, size_t n, size_t min_per_thread, size_t grain, int nthreads,
                      gz_range_fn fn, void *ctx) {
    assert(fn);
    if (n == 0) return;
    /* the first lane no other caller holds */
    while (pool && pthread_mutex_trylock(&pool->busy) != 0)
        pool = pool->next;
    if (!pool) {
        gz_parallel_for(n, min_per_thread, nthreads, fn, ctx);
        return;
    }
    if (nthreads <= 0 || nthreads > pool->n_workers + 1) nthreads = pool->n_workers + 1;
    if (min_per_thread < 1) min_per_thread = 1;
    size_t parts = n / min_per_thread;
    if (parts > (size_t)nthreads) parts = (size_t)nthreads;
    if (parts <= 1) {
        pthread_mutex_unlock(&pool->busy);
        fn(ctx, 0, n);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->parts = parts;
    pool->grain = grain;
    atomic_store_explicit(&pool->claimed, 0, memory_order_relaxed);
    /* Every worker takes part in every loop (those past `parts` only acknowledge it), so
     * `left` needs no per-loop bookkeeping of who was woken. */
    atomic_store_explicit(&pool->left, pool->n_workers, memory_order_relaxed);
    atomic_fetch_add(&pool->gen, 1); /* seq_cst: pairs with the sleepers' count */
    if (atomic_load(&pool->sleep) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->work);
        pthread_mutex_unlock(&pool->mu);
    }
    run_share(pool, 0);
    double end = 0;
    for (unsigned i = 1; atomic_load_explicit(&pool->left, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if ((i & 63) == 0) {
            double t = now_us();
            if (end == 0) {
                end = t + GZ_POOL_SPIN_US;
            } else if (t > end) {
                pthread_mutex_lock(&pool->mu);
                while (atomic_load(&pool->left) > 0)
                    pthread_cond_wait(&pool->done, &pool->mu);
                pthread_mutex_unlock(&pool->mu);
                break;
            }
        }
    }
    pthread_mutex_unlock(&pool->busy);
}

void gz_pool_for(gz_pool *pool, size_t n, size_t min_per_thread, int nthreads, gz_range_fn fn,
                 void *ctx) {
    pool_loop(pool, n, min_per_thread, 0, nthreads, fn, ctx);
}

void gz_pool_for_guided(gz_pool *pool, size_t n, size_t min_per_thread, size_t grain, int nthreads,
                        gz_range_fn fn, void *ctx) {
    pool_loop(pool, n, min_per_thread, grain ? grain : 1, nthreads, fn, ctx);
}
