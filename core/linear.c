/* linear.c - Linear layers on gaze's own AVX-512 / AVX512-BF16 kernels, OpenBLAS otherwise.
 *
 * Legend: n = rows, in = input features, out = output features, W (out, in) row-major,
 *         kp = ceil(in/2) bf16 pairs per row, MR x NR = register tile (rows x 16-column panels),
 *         MC / KC = rows / pairs (bf16) or values (fp32) of one cache block.
 * Hand-written rather than oneDNN / libxsmm / OpenBLAS: measured on the real shapes
 * (bench/encoders/RESULTS.md), a text query is bound by reading the weights, which a plain
 * dot-product loop over W's own rows does once with no packing copy; the bf16 and the packed
 * fp32 kernels are a few dozen lines of intrinsics each over weights packed once per model,
 * where OpenBLAS packs W and x again on every call (8% of a ViT forward) and starts from the
 * bias (2%), and oneDNN's matmul needs a primitive per row count for a 6% gain. */
#include "core/linear.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/threads.h"

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11)
#define GZ_LINEAR_X86 1
#include <immintrin.h>
#define GZ_F32K __attribute__((target("avx512f")))
#define GZ_BF16K __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define GZ_INLINE static inline __attribute__((always_inline))
#else
#define GZ_LINEAR_X86 0
#endif

/* Register tile of the packed kernels (bf16 and fp32): 8 rows x 3 panels = 24 accumulators of
 * the 32 zmm; cache blocks of PK_MC rows. */
#define PK_MR 8
/* Few rows (a text query: up to PK_FEW_ROWS) take tiles of up to PK_MR_FEW rows: 9 rows x 3
 * panels still fit the 32 zmm (27 accumulators), and a 9-token query then streams each block
 * of W once instead of twice (8 rows, then 1 from L2): one text query 7.4-7.7 -> 6.2-6.4 ms. */
#define PK_MR_FEW 9
#define PK_FEW_ROWS 64
#define PK_NR 3
#define PK_MC 192
/* K blocks: BF_KC pairs x 48 columns of bf16 W (24 KiB) stay in L1 while the rows pass over
 * them; FP_KC floats x 48 columns of fp32 W (72 KiB, in L2), 384 measured fastest of 64-768 on
 * the ViT shapes (bench_linear, one thread). */
#define BF_KC 192
#define FP_KC 384
/* The kernels ask for W's cache line this many steps of k ahead (64 bytes a step and panel, or
 * W row): a product of few rows streams W from memory, faster than the hardware prefetcher
 * alone brings it (one text query 8.3-8.9 -> 7.6-7.9 ms; 16 and 64 were slower than 32). */
#define PK_PREFETCH 32
/* Transparent huge page size (x86-64), the alignment of large packed copies. */
#define GZ_HUGE_PAGE ((size_t)2 << 20)
/* Rows from which the kernels split rows between threads (else column panels). fp32 splits
 * columns longer: they share out evenly where 8-row tiles do not (197 rows = 25 tiles), 3-6%
 * faster at ViT batch 1 (bench_encoders), the same at batch 8. */
#define BF_SPLIT_ROWS 64
#define FP_SPLIT_ROWS 1024
/* Least weight bytes per thread when the columns are split: below it a thread's start costs
 * more than its share of the reading. */
#define GZ_LINEAR_MIN_BYTES ((size_t)512 << 10)
/* Least flops per thread when an OpenBLAS product is split between the pool's threads (~20 us
 * on one core): below it the hand-off costs more than the share saves. */
#define GZ_LINEAR_SPLIT_FLOPS ((size_t)4 << 20)

#if GZ_LINEAR_X86
/* row_to_pairs on AVX512-BF16: 32 floats to 32 bf16 per step (vcvtne2ps2bf16, nearest even). */
GZ_BF16K static void row_to_pairs_bf16(const float *wr, int in, uint32_t *pairs, int kp) {
    const int width = 2 * kp;
    uint16_t *o = (uint16_t *)pairs;
    for (int k = 0; k < width; k += 32) {
        int c0 = in - k, c1 = in - k - 16;
        __mmask16 m0 = c0 >= 16 ? 0xffff : (__mmask16)((1u << c0) - 1u);
        __mmask16 m1 = c1 >= 16 ? 0xffff : c1 <= 0 ? 0 : (__mmask16)((1u << c1) - 1u);
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, wr + k + 16),
                                         _mm512_maskz_loadu_ps(m0, wr + k));
        int c = width - k;
        __mmask32 ms = c >= 32 ? 0xffffffffu : (__mmask32)((1u << c) - 1u);
        _mm512_mask_storeu_epi16(o + k, ms, (__m512i)v);
    }
}
#endif

int gz_cpu_has_bf16(void) {
#if GZ_LINEAR_X86
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

int gz_linear_pack_kind(const gz_compute *cx, gz_pack_kind *kind) {
    assert(cx && kind);
    if (!cx->gemm || gz_compute_simd_level(cx) < 2) return 0;
    if (cx->bf16 && gz_cpu_has_bf16()) {
        *kind = GZ_PACK_BF16;
        return 1;
    }
    if (cx->gemm != GZ_GEMM_PACKED) return 0;
    *kind = GZ_PACK_F32;
    return 1;
}

int gz_linear_pack_due(const gz_compute *cx, gz_pack_kind kind, size_t rows) {
    assert(cx);
    return kind == GZ_PACK_BF16 || rows >= cx->pack_after_rows;
}

/* One row of W rounded to bf16 pairs (nearest even, the odd column padded with 0): pairs[kp]. */
static void row_to_pairs(const float *wr, int in, uint32_t *pairs, int kp) {
#if GZ_LINEAR_X86
    if (gz_cpu_has_bf16()) {
        row_to_pairs_bf16(wr, in, pairs, kp);
        return;
    }
#endif
    for (int kk = 0; kk < kp; kk++) {
        uint32_t lo = gz_f32_to_bf16(wr[2 * kk]);
        uint32_t hi = 2 * kk + 1 < in ? gz_f32_to_bf16(wr[2 * kk + 1]) : 0;
        pairs[kk] = lo | hi << 16;
    }
}

/* A packed copy's memory: bytes (> 0) on 2 MiB boundaries from 2 MiB up, as transparent huge
 * pages where the kernel offers them on request (a BERT-base bf16 copy is 170 MB, and faulting
 * it in 4 KiB pages cost as much as converting it). The hint (failure is harmless) covers the
 * whole huge pages inside the copy only: the last, partly used one would be resident in full
 * from its first touch (up to 1.5 MB per 4.5 MB MLP weight, ~30 MB per BERT tower), so the
 * tail stays on 4 KiB pages. NULL when out of memory. Free with free(). */
static void *alloc_packed(size_t bytes) {
    size_t align = bytes >= GZ_HUGE_PAGE ? GZ_HUGE_PAGE : 64;
    size_t alloc = (bytes + align - 1) / align * align;
    void *d = aligned_alloc(align, alloc);
#ifdef MADV_HUGEPAGE
    if (d && align == GZ_HUGE_PAGE) madvise(d, bytes / GZ_HUGE_PAGE * GZ_HUGE_PAGE, MADV_HUGEPAGE);
#endif
    return d;
}

/* Bytes of the bf16 and the f32 form of a (out, in) weight; 0 when they overflow size_t. */
static size_t bf16_form_bytes(size_t out, size_t in) {
    size_t bytes;
    if (!gz_mul_size((out + 15) / 16 * ((in + 1) / 2), 32 * sizeof(uint16_t), &bytes)) return 0;
    return bytes;
}

static size_t f32_form_bytes(size_t out, size_t in) {
    size_t bytes;
    if (!gz_mul_size((out + 15) / 16 * 16, in * sizeof(float), &bytes)) return 0;
    return bytes;
}

gz_status gz_packw_bf16(const float *w, int out, int in, gz_packw *pw) {
    assert(w && pw && out > 0 && in > 0);
    memset(pw, 0, sizeof *pw);
    size_t panels = ((size_t)out + 15) / 16, kp = ((size_t)in + 1) / 2;
    size_t bytes = bf16_form_bytes((size_t)out, (size_t)in);
    if (!bytes) return GZ_FAIL(GZ_ENOMEM, "bf16 weights (%d, %d) too large", out, in);
    uint16_t *d = alloc_packed(bytes);
    uint32_t *pairs = malloc(kp * sizeof *pairs);
    if (!d || !pairs) {
        free(d);
        free(pairs);
        return GZ_FAIL(GZ_ENOMEM, "out of memory for bf16 weights (%d, %d)", out, in);
    }
    uint32_t *d32 = (uint32_t *)d; /* (panels, kp, 16) pairs */
    for (size_t row = 0; row < panels * 16; row++) {
        size_t p = row / 16, c = row % 16;
        if (row < (size_t)out)
            row_to_pairs(w + row * (size_t)in, in, pairs, (int)kp);
        else
            memset(pairs, 0, kp * sizeof *pairs);
        uint32_t *dst = d32 + p * kp * 16 + c;
        for (size_t kk = 0; kk < kp; kk++)
            dst[kk * 16] = pairs[kk];
    }
    free(pairs);
    pw->bf16 = d;
    pw->out = out;
    pw->in = in;
    return GZ_OK;
}

gz_status gz_packw_f32(const float *w, int out, int in, gz_packw *pw) {
    assert(w && pw && out > 0 && in > 0);
    memset(pw, 0, sizeof *pw);
    size_t panels = ((size_t)out + 15) / 16, bytes = f32_form_bytes((size_t)out, (size_t)in);
    if (!bytes) return GZ_FAIL(GZ_ENOMEM, "fp32 weights (%d, %d) too large", out, in);
    float *d = alloc_packed(bytes);
    if (!d) return GZ_FAIL(GZ_ENOMEM, "out of memory for packed fp32 weights (%d, %d)", out, in);
    /* (panels, in, 16): a panel's 16 rows of W interleaved, each panel written while it is in
     * cache (48 KiB for in = 768) */
    for (size_t p = 0; p < panels; p++) {
        float *panel = d + p * (size_t)in * 16;
        for (size_t c = 0; c < 16; c++) {
            size_t row = p * 16 + c;
            const float *wr = row < (size_t)out ? w + row * (size_t)in : NULL;
            for (size_t k = 0; k < (size_t)in; k++)
                panel[k * 16 + c] = wr ? wr[k] : 0.0f;
        }
    }
    pw->f32 = d;
    pw->out = out;
    pw->in = in;
    return GZ_OK;
}

void gz_packw_free(gz_packw *pw) {
    if (!pw) return;
    if (!pw->borrowed) {
        free(pw->bf16);
        free(pw->f32);
    }
    memset(pw, 0, sizeof *pw);
}

/* The kind form of pw, or NULL. */
static void *form_of(const gz_packw *pw, gz_pack_kind kind) {
    return kind == GZ_PACK_BF16 ? (void *)pw->bf16 : (void *)pw->f32;
}

/* Set dst's kind form to src's (keeping dst's other form): a fresh copy moved in, or a view of
 * a cache entry's. */
static void take_form(gz_packw *dst, const gz_packw *src, gz_pack_kind kind) {
    if (kind == GZ_PACK_BF16)
        dst->bf16 = src->bf16;
    else
        dst->f32 = src->f32;
    dst->out = src->out;
    dst->in = src->in;
}

/* Free the kind form of an owned *pw only. */
static void drop_form(gz_packw *pw, gz_pack_kind kind) {
    if (kind == GZ_PACK_BF16) {
        free(pw->bf16);
        pw->bf16 = NULL;
    } else {
        free(pw->f32);
        pw->f32 = NULL;
    }
}

typedef struct {
    const gz_packw_job *jobs;
    gz_pack_kind kind;
    atomic_int failed;
} pack_all_args;

static void pack_range(void *ctx, size_t i0, size_t i1) {
    pack_all_args *a = ctx;
    for (size_t i = i0; i < i1; i++) {
        const gz_packw_job *j = &a->jobs[i];
        gz_packw fresh;
        gz_status st = a->kind == GZ_PACK_BF16 ? gz_packw_bf16(j->w, j->out, j->in, &fresh)
                                               : gz_packw_f32(j->w, j->out, j->in, &fresh);
        if (st != GZ_OK) {
            atomic_store(&a->failed, 1);
            continue;
        }
        take_form(j->dst, &fresh, a->kind);
        if (j->src) gz_st_release(j->src, j->w, (size_t)j->out * (size_t)j->in * sizeof(float));
    }
}

/* Pack the kind form of every job into its dst's own copy, on cx's threads; all or nothing. */
static gz_status pack_owned(const gz_compute *cx, gz_pack_kind kind, const gz_packw_job *jobs,
                            size_t n) {
    pack_all_args a = {jobs, kind, 0};
    gz_pool_for(cx->pool, n, 1, cx->n_threads, pack_range, &a);
    if (!atomic_load(&a.failed)) return GZ_OK;
    for (size_t i = 0; i < n; i++)
        drop_form(jobs[i].dst, kind);
    return GZ_FAIL(GZ_ENOMEM, "out of memory for the packed copy of %zu weights", n);
}

/* One weight of a cache: the packed forms of src (out, in). */
typedef struct {
    const float *src;
    gz_packw w; /* owned */
} cache_entry;

struct gz_packw_cache {
    pthread_mutex_t lock; /* guards every field below */
    cache_entry *entries; /* (cap) owned; the first n used */
    size_t n, cap;
};

gz_packw_cache *gz_packw_cache_new(void) {
    gz_packw_cache *c = calloc(1, sizeof *c);
    if (!c) {
        GZ_FAIL(GZ_ENOMEM, "out of memory for the packed weight cache");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void gz_packw_cache_free(gz_packw_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++)
        gz_packw_free(&c->entries[i].w);
    pthread_mutex_destroy(&c->lock);
    free(c->entries);
    free(c);
}

size_t gz_packw_cache_count(gz_packw_cache *c, size_t *bytes) {
    assert(c);
    pthread_mutex_lock(&c->lock);
    size_t n = c->n, total = 0;
    for (size_t i = 0; i < n; i++) {
        const gz_packw *w = &c->entries[i].w; /* the sizes gz_packw_bf16/_f32 allocated */
        if (w->bf16) total += bf16_form_bytes((size_t)w->out, (size_t)w->in);
        if (w->f32) total += f32_form_bytes((size_t)w->out, (size_t)w->in);
    }
    pthread_mutex_unlock(&c->lock);
    if (bytes) *bytes = total;
    return n;
}

/* The entry of (src, out, in) among entries [0, n), or NULL. A linear search: a model has a few
 * hundred weights and looks them up once per tower. */
static cache_entry *cache_find(cache_entry *e, size_t n, const float *src, int out, int in) {
    for (size_t i = 0; i < n; i++)
        if (e[i].src == src && e[i].w.out == out && e[i].w.in == in) return &e[i];
    return NULL;
}

/* pack_all through cache: called with its lock held. */
static gz_status pack_cached(const gz_compute *cx, gz_packw_cache *c, gz_pack_kind kind,
                             const gz_packw_job *jobs, size_t n) {
    /* Room for every job first, so nothing can fail once the copies exist. */
    if (c->cap - c->n < n) {
        size_t cap, bytes;
        if (!gz_add_size(c->n, n, &cap) || !gz_mul_size(cap, sizeof(cache_entry), &bytes))
            return GZ_FAIL(GZ_ENOMEM, "packed weight cache: too many weights");
        cache_entry *e = realloc(c->entries, bytes ? bytes : 1);
        if (!e) return GZ_FAIL(GZ_ENOMEM, "out of memory for the packed weight cache");
        c->entries = e;
        c->cap = cap;
    }
    /* The forms the cache lacks, each once: into the entries that have the weight in its other
     * form, and into new entries in the slots past n. */
    gz_packw_job *todo = gz_malloc_n(n ? n : 1, sizeof *todo, "packed weight cache");
    if (!todo) return GZ_ENOMEM;
    size_t k = 0, added = 0;
    for (size_t i = 0; i < n; i++) {
        const gz_packw_job *j = &jobs[i];
        cache_entry *e = cache_find(c->entries, c->n + added, j->w, j->out, j->in);
        if (e && form_of(&e->w, kind)) continue;
        int queued = 0;
        for (size_t q = 0; e && q < k && !queued; q++)
            queued = todo[q].dst == &e->w;
        if (queued) continue;
        if (!e) {
            e = &c->entries[c->n + added++];
            memset(e, 0, sizeof *e);
            e->src = j->w;
            e->w.out = j->out; /* the key, until the copy is made */
            e->w.in = j->in;
        }
        todo[k++] = (gz_packw_job){j->w, j->out, j->in, &e->w, j->src};
    }
    gz_status st = pack_owned(cx, kind, todo, k);
    free(todo);
    if (st != GZ_OK) return st;
    c->n += added;
    for (size_t i = 0; i < n; i++) {
        const cache_entry *e = cache_find(c->entries, c->n, jobs[i].w, jobs[i].out, jobs[i].in);
        assert(e && form_of(&e->w, kind));
        take_form(jobs[i].dst, &e->w, kind);
        jobs[i].dst->borrowed = 1;
    }
    return GZ_OK;
}

gz_status gz_packw_pack_all(const gz_compute *cx, gz_packw_cache *cache, gz_pack_kind kind,
                            const gz_packw_job *jobs, size_t n) {
    assert(cx && (jobs || n == 0));
    if (!cache) return pack_owned(cx, kind, jobs, n);
    pthread_mutex_lock(&cache->lock); /* packing under it: a second tower waits for the copies */
    gz_status st = pack_cached(cx, cache, kind, jobs, n);
    pthread_mutex_unlock(&cache->lock);
    return st;
}

/* The reference: OpenBLAS from the bias (torch's addmm order). */
static void linear_blas(const float *x, const float *w, const float *b, float *y, int ldy, int n,
                        int in, int out) {
    if (b)
        for (int i = 0; i < n; i++)
            memcpy(y + (size_t)i * ldy, b, (size_t)out * sizeof *y);
    gz_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, ldy);
}

/* The fused epilogue: act on rows [0, rows) x columns [0, cols) of y (row stride ldy), on the
 * calling thread while that block is still in cache. act < 0: nothing. */
static void act_block(const gz_compute *cx, int act, float *y, int ldy, int rows, int cols) {
    if (act < 0) return;
    for (int i = 0; i < rows; i++)
        gz_activate_here(cx, (gz_act)act, y + (size_t)i * ldy, (size_t)cols);
}

/* Columns [16 c0, 16 c1) of y by one single-threaded OpenBLAS call (items: 16 columns). */
typedef struct {
    const float *x, *w, *b;
    float *y;
    int ldy, n, in, out;
    const gz_compute *cx;
    int act;
} blas_cols_args;

static void blas_cols_range(void *ctx, size_t c0, size_t c1) {
    const blas_cols_args *a = ctx;
    int j0 = (int)c0 * 16, j1 = (int)c1 * 16 < a->out ? (int)c1 * 16 : a->out;
    linear_blas(a->x, a->w + (size_t)j0 * a->in, a->b ? a->b + j0 : NULL, a->y + j0, a->ldy, a->n,
                a->in, j1 - j0);
    act_block(a->cx, a->act, a->y + j0, a->ldy, a->n, j1 - j0);
}

typedef struct lin_args lin_args;
/* One register tile of a packed kernel (packed_block). */
typedef void (*tile_fn)(const lin_args *a, int i, int mr, int nr, int pg, int k0, int k1, int cols,
                        int first, const float *bias);

struct lin_args {
    const float *x, *w, *b;
    float *y;
    int ldy, n, in, out;
    const uint32_t *xa; /* bf16 pairs (n, kp) */
    const gz_packw *wb;
    int kp, split_rows;
    const gz_compute *cx;
    int act;      /* fused epilogue: a gz_act, or < 0 for none */
    tile_fn tile; /* the packed kernel's tile, over klen steps of k blocked by kc */
    int klen, kc;
    int mr; /* rows per tile: PK_MR, or PK_MR_FEW for few rows (run_packed) */
};

#if GZ_LINEAR_X86

/* ---- fp32, few rows: mr x nj dot products of x's rows with W's rows, along k ---- */

GZ_INLINE GZ_F32K void f32_tile(int mr, int nj, const float *x, const float *w, int in, float *r) {
    __m512 acc[4][4];
#pragma GCC unroll 8
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 8
        for (int j = 0; j < 4; j++)
            acc[i][j] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= in; k += 16) {
        __m512 wv[4];
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++)
            _mm_prefetch((const char *)(w + (size_t)j * in + k + 16 * PK_PREFETCH), _MM_HINT_T0);
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++)
            wv[j] = _mm512_loadu_ps(w + (size_t)j * in + k);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)i * in + k);
#pragma GCC unroll 8
            for (int j = 0; j < nj; j++)
                acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
    if (k < in) {
        __mmask16 m = (__mmask16)((1u << (in - k)) - 1u);
        __m512 wv[4];
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++)
            wv[j] = _mm512_maskz_loadu_ps(m, w + (size_t)j * in + k);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)i * in + k);
#pragma GCC unroll 8
            for (int j = 0; j < nj; j++)
                acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++)
            r[i * 4 + j] = _mm512_reduce_add_ps(acc[i][j]);
}

#define F32_TILE_CASE(MR, NJ)                                                                      \
    case (MR)*8 + (NJ): f32_tile(MR, NJ, x, w, in, r); break

GZ_F32K static void f32_tile_any(int mr, int nj, const float *x, const float *w, int in, float *r) {
    switch (mr * 8 + nj) {
        F32_TILE_CASE(4, 4);
        F32_TILE_CASE(4, 3);
        F32_TILE_CASE(4, 2);
        F32_TILE_CASE(4, 1);
        F32_TILE_CASE(3, 4);
        F32_TILE_CASE(3, 3);
        F32_TILE_CASE(3, 2);
        F32_TILE_CASE(3, 1);
        F32_TILE_CASE(2, 4);
        F32_TILE_CASE(2, 3);
        F32_TILE_CASE(2, 2);
        F32_TILE_CASE(2, 1);
        F32_TILE_CASE(1, 4);
        F32_TILE_CASE(1, 3);
        F32_TILE_CASE(1, 2);
        F32_TILE_CASE(1, 1);
    default: assert(0);
    }
}

/* Columns [4*q0, 4*q1) of y: W's rows stream once from memory, x (n <= 32 rows) stays in L2. */
static void f32_small_range(void *ctx, size_t q0, size_t q1) {
    const lin_args *a = ctx;
    const int n = a->n, in = a->in, out = a->out;
    float r[16];
    for (size_t q = q0; q < q1; q++) {
        int j0 = (int)q * 4, nj = out - j0 < 4 ? out - j0 : 4;
        const float *wj = a->w + (size_t)j0 * in;
        for (int i0 = 0; i0 < n; i0 += 4) {
            int mr = n - i0 < 4 ? n - i0 : 4;
            f32_tile_any(mr, nj, a->x + (size_t)i0 * in, wj, in, r);
            for (int i = 0; i < mr; i++) {
                float *yr = a->y + (size_t)(i0 + i) * a->ldy + j0;
                for (int j = 0; j < nj; j++)
                    yr[j] = r[i * 4 + j] + (a->b ? a->b[j0 + j] : 0.0f);
            }
        }
    }
    int c0 = (int)q0 * 4, c1 = (int)q1 * 4 < out ? (int)q1 * 4 : out;
    act_block(a->cx, a->act, a->y + c0, a->ldy, n, c1 - c0);
}

/* ---- bf16: broadcast x pairs times 16-column panels of W pairs, fp32 accumulators ---- */

/* y rows [0, mr) x panels [0, nr) (cols valid of them) over pairs [k0, k1): first = the first
 * k block (else add onto y), bias added on the last block. */
GZ_INLINE GZ_BF16K void bf16_tile(int mr, int nr, const uint32_t *xa, int kp, const uint16_t *wp,
                                  size_t pstride, int k0, int k1, float *y, int ldy, int cols,
                                  int first, const float *bias) {
    __m512 acc[PK_MR_FEW][PK_NR];
#pragma GCC unroll 8
    for (int i = 0; i < PK_MR_FEW; i++)
#pragma GCC unroll 8
        for (int j = 0; j < PK_NR; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int kk = k0; kk < k1; kk++) {
        __m512bh wv[PK_NR];
#pragma GCC unroll 8
        for (int j = 0; j < nr; j++)
            _mm_prefetch((const char *)(wp + j * pstride + (size_t)(kk + PK_PREFETCH) * 32),
                         _MM_HINT_T0);
#pragma GCC unroll 8
        for (int j = 0; j < nr; j++)
            wv[j] = (__m512bh)_mm512_load_si512((const void *)(wp + j * pstride + (size_t)kk * 32));
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512bh xv = (__m512bh)_mm512_set1_epi32((int)xa[(size_t)i * kp + kk]);
#pragma GCC unroll 8
            for (int j = 0; j < nr; j++)
                acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < nr; j++) {
        int c = cols - 16 * j;
        __mmask16 m = c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << c) - 1u);
        __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + 16 * j) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            float *yp = y + (size_t)i * ldy + 16 * j;
            __m512 v = _mm512_add_ps(acc[i][j], bv);
            if (!first) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, yp));
            _mm512_mask_storeu_ps(yp, m, v);
        }
    }
}

#define BF16_TILE_CASE(MR, NR)                                                                     \
    case (MR)*4 + (NR):                                                                            \
        bf16_tile(MR, NR, xa, kp, wp, pstride, k0, k1, y, ldy, cols, first, bias);                 \
        break
#define BF16_TILE_CASES(MR)                                                                        \
    BF16_TILE_CASE(MR, 3);                                                                         \
    BF16_TILE_CASE(MR, 2);                                                                         \
    BF16_TILE_CASE(MR, 1)

GZ_BF16K static void bf16_tile_any(int mr, int nr, const uint32_t *xa, int kp, const uint16_t *wp,
                                   size_t pstride, int k0, int k1, float *y, int ldy, int cols,
                                   int first, const float *bias) {
    switch (mr * 4 + nr) {
        BF16_TILE_CASES(9);
        BF16_TILE_CASES(8);
        BF16_TILE_CASES(7);
        BF16_TILE_CASES(6);
        BF16_TILE_CASES(5);
        BF16_TILE_CASES(4);
        BF16_TILE_CASES(3);
        BF16_TILE_CASES(2);
        BF16_TILE_CASES(1);
    default: assert(0);
    }
}

/* x rows [r0, r1) rounded to bf16 pairs (nearest even), the odd column padded with 0. */
static void to_bf16_range(void *ctx, size_t r0, size_t r1) {
    const lin_args *a = ctx;
    for (size_t r = r0; r < r1; r++)
        row_to_pairs_bf16(a->x + r * a->in, a->in, (uint32_t *)a->xa + r * a->kp, a->kp);
}

/* ---- fp32, many rows: broadcast x times 16-column panels of W, as the bf16 kernel ---- */

/* y rows [0, mr) x panels [0, nr) over k in [k0, k1), as bf16_tile. */
GZ_INLINE GZ_F32K void f32p_tile(int mr, int nr, const float *x, int ldx, const float *wp,
                                 size_t pstride, int k0, int k1, float *y, int ldy, int cols,
                                 int first, const float *bias) {
    __m512 acc[PK_MR_FEW][PK_NR];
#pragma GCC unroll 16
    for (int i = 0; i < PK_MR_FEW; i++)
#pragma GCC unroll 8
        for (int j = 0; j < PK_NR; j++)
            acc[i][j] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int kk = k0; kk < k1; kk++) {
        __m512 wv[PK_NR];
#pragma GCC unroll 8
        for (int j = 0; j < nr; j++)
            _mm_prefetch((const char *)(wp + j * pstride + (size_t)(kk + PK_PREFETCH) * 16),
                         _MM_HINT_T0);
#pragma GCC unroll 8
        for (int j = 0; j < nr; j++)
            wv[j] = _mm512_load_ps(wp + j * pstride + (size_t)kk * 16);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            __m512 xv = _mm512_set1_ps(x[(size_t)i * ldx + kk]);
#pragma GCC unroll 8
            for (int j = 0; j < nr; j++)
                acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < nr; j++) {
        int c = cols - 16 * j;
        __mmask16 m = c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << c) - 1u);
        __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + 16 * j) : _mm512_setzero_ps();
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            float *yp = y + (size_t)i * ldy + 16 * j;
            __m512 v = acc[i][j];
            if (!first) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, yp));
            _mm512_mask_storeu_ps(yp, m, _mm512_add_ps(v, bv));
        }
    }
}

#define F32P_TILE_CASE(MR, NR)                                                                     \
    case (MR)*4 + (NR):                                                                            \
        f32p_tile(MR, NR, x, ldx, wp, pstride, k0, k1, y, ldy, cols, first, bias);                 \
        break
#define F32P_TILE_CASES(MR)                                                                        \
    F32P_TILE_CASE(MR, 3);                                                                         \
    F32P_TILE_CASE(MR, 2);                                                                         \
    F32P_TILE_CASE(MR, 1)

GZ_F32K static void f32p_tile_any(int mr, int nr, const float *x, int ldx, const float *wp,
                                  size_t pstride, int k0, int k1, float *y, int ldy, int cols,
                                  int first, const float *bias) {
    switch (mr * 4 + nr) {
        F32P_TILE_CASES(9);
        F32P_TILE_CASES(8);
        F32P_TILE_CASES(7);
        F32P_TILE_CASES(6);
        F32P_TILE_CASES(5);
        F32P_TILE_CASES(4);
        F32P_TILE_CASES(3);
        F32P_TILE_CASES(2);
        F32P_TILE_CASES(1);
    default: assert(0);
    }
}

/* ---- the packed kernels' cache blocking, the same for bf16 and fp32 ---- */

/* The tile at rows [i, i + mr) x panels [pg, pg + nr) (cols valid of them) over k [k0, k1) of
 * one packed kernel: first = the first k block (else add onto y), bias added on the last. */
GZ_BF16K static void bf16_tile_at(const lin_args *a, int i, int mr, int nr, int pg, int k0, int k1,
                                  int cols, int first, const float *bias) {
    const size_t pstride = (size_t)a->kp * 32; /* bf16 values per panel */
    bf16_tile_any(mr, nr, a->xa + (size_t)i * a->kp, a->kp, a->wb->bf16 + (size_t)pg * pstride,
                  pstride, k0, k1, a->y + (size_t)i * a->ldy + pg * 16, a->ldy, cols, first, bias);
}

GZ_F32K static void f32p_tile_at(const lin_args *a, int i, int mr, int nr, int pg, int k0, int k1,
                                 int cols, int first, const float *bias) {
    const size_t pstride = (size_t)a->in * 16; /* floats per panel */
    f32p_tile_any(mr, nr, a->x + (size_t)i * a->in, a->in, a->wb->f32 + (size_t)pg * pstride,
                  pstride, k0, k1, a->y + (size_t)i * a->ldy + pg * 16, a->ldy, cols, first, bias);
}

/* Rows [r0, r1) x panels [p0, p1) of y, blocked PK_MC rows x a->kc steps of k x PK_NR panels:
 * one slice of W stays in cache while the row tiles pass over it. */
static void packed_block(const lin_args *a, int r0, int r1, int p0, int p1) {
    const int out = a->out, klen = a->klen;
    for (int mc = r0; mc < r1; mc += PK_MC) {
        int mc1 = mc + PK_MC < r1 ? mc + PK_MC : r1;
        for (int pg = p0; pg < p1; pg += PK_NR) {
            int nr = p1 - pg < PK_NR ? p1 - pg : PK_NR;
            int c0 = pg * 16, cols = out - c0 < nr * 16 ? out - c0 : nr * 16;
            for (int k0 = 0; k0 < klen; k0 += a->kc) {
                int k1 = k0 + a->kc < klen ? k0 + a->kc : klen;
                const float *bias = k1 == klen && a->b ? a->b + c0 : NULL;
                for (int i = mc; i < mc1; i += a->mr) {
                    int mr = mc1 - i < a->mr ? mc1 - i : a->mr;
                    a->tile(a, i, mr, nr, pg, k0, k1, cols, k0 == 0, bias);
                    if (k1 == klen)
                        act_block(a->cx, a->act, a->y + (size_t)i * a->ldy + c0, a->ldy, mr, cols);
                }
            }
        }
    }
}

static void packed_range(void *ctx, size_t i0, size_t i1) {
    const lin_args *a = ctx;
    int panels = (a->out + 15) / 16;
    if (a->split_rows) /* items: tiles of PK_MR rows */
        packed_block(a, (int)i0 * PK_MR, (int)i1 * PK_MR < a->n ? (int)i1 * PK_MR : a->n, 0,
                     panels);
    else /* items: groups of PK_NR panels */
        packed_block(a, 0, a->n, (int)i0 * PK_NR,
                     (int)i1 * PK_NR < panels ? (int)i1 * PK_NR : panels);
}

/* Least row tiles one claim of a balanced row split takes: 32 rows keep W's slices in cache
 * for a few tiles even at the loop's end. */
#define PK_GRAIN_TILES 4

/* a's product on cx's threads: rows split between them from split_from rows on, else groups
 * of panels, each worth at least GZ_LINEAR_MIN_BYTES of W (w_bytes per value). */
static void run_packed(const gz_compute *cx, lin_args *a, int split_from, size_t w_bytes) {
    int panels = (a->out + 15) / 16, groups = (panels + PK_NR - 1) / PK_NR;
    a->split_rows = a->n >= split_from;
    a->mr = a->n <= PK_FEW_ROWS && !a->split_rows ? PK_MR_FEW : PK_MR;
    size_t items, min_items, grain;
    if (a->split_rows) {
        items = (size_t)(a->n + PK_MR - 1) / PK_MR;
        min_items = 1;
        grain = PK_GRAIN_TILES;
    } else {
        size_t per_group = (size_t)PK_NR * 16 * (size_t)a->in * w_bytes;
        items = (size_t)groups;
        min_items = GZ_LINEAR_MIN_BYTES / per_group + 1;
        grain = 1;
    }
    gz_compute_for(cx, items, min_items, grain, packed_range, a);
}

#endif /* GZ_LINEAR_X86 */

gz_status gz_linear_cx(const gz_compute *cx, const float *x, const float *w, const gz_packw *wb,
                       const float *b, float *y, int ldy, int n, int in, int out) {
    return gz_linear_act_cx(cx, x, w, wb, b, GZ_LINEAR_NO_ACT, y, ldy, n, in, out);
}

gz_status gz_linear_act_cx(const gz_compute *cx, const float *x, const float *w, const gz_packw *wb,
                           const float *b, int act, float *y, int ldy, int n, int in, int out) {
    assert(cx && x && w && y && ldy >= out);
    if (n <= 0 || out <= 0) return GZ_OK;
    int lvl = gz_compute_simd_level(cx);
    if (!cx->gemm && act >= 0) { /* the reference: the product, then the activation's own pass */
        gz_status st = gz_linear_act_cx(cx, x, w, wb, b, GZ_LINEAR_NO_ACT, y, ldy, n, in, out);
        if (st == GZ_OK) {
            if (ldy == out)
                gz_activate(cx, (gz_act)act, y, (size_t)n * (size_t)out);
            else
                act_block(cx, act, y, ldy, n, out);
        }
        return st;
    }
#if GZ_LINEAR_X86
    lin_args a = {x, w,  b,   y,    ldy, n, in,   out, NULL, wb, (in + 1) / 2,
                  0, cx, act, NULL, 0,   0, PK_MR};
    if (cx->gemm && lvl >= 2 && in > 0 && cx->bf16 && wb && wb->bf16 && gz_cpu_has_bf16()) {
        assert(wb->out == out && wb->in == in);
        size_t bytes;
        if (!gz_mul_size((size_t)n * (size_t)a.kp, sizeof(uint32_t), &bytes))
            return GZ_FAIL(GZ_ENOMEM, "linear: %d x %d input too large", n, in);
        uint32_t *xa = NULL;
        if (!cx->scratch_limit || bytes <= cx->scratch_limit) xa = malloc(bytes ? bytes : 1);
        if (!xa) return GZ_FAIL(GZ_ENOMEM, "linear: no memory for %d x %d bf16 inputs", n, in);
        a.xa = xa;
        gz_pool_for(cx->pool, (size_t)n, ((size_t)1 << 16) / (size_t)in + 1, cx->n_threads,
                    to_bf16_range, &a);
        a.tile = bf16_tile_at;
        a.klen = a.kp;
        a.kc = BF_KC;
        run_packed(cx, &a, BF_SPLIT_ROWS, sizeof(uint16_t));
        free(xa);
        return GZ_OK;
    }
    if (cx->gemm == GZ_GEMM_PACKED && lvl >= 2 && in > 0 && wb && wb->f32) {
        assert(wb->out == out && wb->in == in);
        a.tile = f32p_tile_at;
        a.klen = in;
        a.kc = FP_KC;
        run_packed(cx, &a, FP_SPLIT_ROWS, sizeof(float));
        return GZ_OK;
    }
    if (cx->gemm && lvl >= 2 && n <= GZ_LINEAR_SMALL_N && in > 0) {
        size_t per_q = (size_t)4 * (size_t)in * sizeof(float); /* weight bytes of 4 columns */
        gz_pool_for(cx->pool, ((size_t)out + 3) / 4, GZ_LINEAR_MIN_BYTES / per_q + 1, cx->n_threads,
                    f32_small_range, &a);
        return GZ_OK;
    }
#else
    (void)wb;
    (void)lvl;
#endif
    if (cx->pool) { /* OpenBLAS on the pool's threads, one column block each */
        blas_cols_args ba = {x, w, b, y, ldy, n, in, out, cx, act};
        size_t block_flops = (size_t)2 * 16 * (size_t)n * (size_t)in;
        gz_pool_for(cx->pool, ((size_t)out + 15) / 16, GZ_LINEAR_SPLIT_FLOPS / block_flops + 1,
                    cx->n_threads, blas_cols_range, &ba);
        return GZ_OK;
    }
    linear_blas(x, w, b, y, ldy, n, in, out);
    act_block(cx, act, y, ldy, n, out);
    return GZ_OK;
}
