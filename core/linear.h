/* linear.h - Linear layers y = x W^T + b on gaze's own kernels: fp32 for a few rows (a text
 * query), bf16 weights with AVX512-BF16 dot products for any rows, OpenBLAS otherwise.
 *
 * Legend: n = rows (tokens), in = input features, out = output features (W is (out, in) as
 *         PyTorch stores it), ldy = row stride of y in floats.
 *
 * Which kernel runs is the caller's gz_compute (core/kernels.h):
 *   - cx->gemm == 0, or no vector paths (simd 0): OpenBLAS cblas_sgemm, the reference;
 *   - wb != NULL and cx->bf16 != 0 and the CPU has AVX512-BF16: bf16 x bf16 dot products with
 *     fp32 accumulation (vdpbf16ps); x is rounded to bf16 (nearest even) per call, W once by
 *     gz_bf16w_pack, so results differ from fp32 by bf16 rounding (~3 significant digits);
 *   - fp32 with n <= GZ_LINEAR_SMALL_N rows: AVX-512 dot products straight from W's rows, no
 *     packing (a text query reads each weight once, so it is bound by memory, not FMAs);
 *   - else OpenBLAS: with a pool (cx->pool), split by 16-column blocks between the pool's
 *     threads, each one call of single-threaded OpenBLAS (the owner of the pool sets OpenBLAS to
 *     one thread: its own threads spin and yield against the pool, 18% of a ViT forward);
 *     without one, one call on OpenBLAS's threads. */
#ifndef GZ_CORE_LINEAR_H
#define GZ_CORE_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "core/kernels.h"
#include "core/safetensors.h"
#include "core/status.h"

/* Most rows the fp32 row-dot kernel takes; above it OpenBLAS's packed GEMM wins. */
#define GZ_LINEAR_SMALL_N 32

/* A weight W(out, in) in bf16, packed for the AVX512-BF16 kernel: 16-column panels of bf16
 * pairs, (ceil(out/16), ceil(in/2), 16, 2), zero padded. Owned by whoever packed it, unless
 * borrowed from a gz_bf16w_cache. */
typedef struct {
    uint16_t *data;
    int out, in;
    int borrowed; /* 1 = a view of a gz_bf16w_cache's copy: gz_bf16w_free only forgets it */
} gz_bf16w;

/* 1 when this CPU runs the bf16 kernel (AVX512-BF16, AVX512-BW/VL). */
int gz_cpu_has_bf16(void);

/* Pack w(out, in) into *pw (converted with round to nearest even). GZ_ENOMEM (message set)
 * when the copy cannot be allocated; *pw is then empty. */
gz_status gz_bf16w_pack(const float *w, int out, int in, gz_bf16w *pw);
void gz_bf16w_free(gz_bf16w *pw);

/* One weight to pack: w(out, in) into *dst. When src is not NULL, w lies in src (a checkpoint's
 * F32 tensor) and its pages are handed back (gz_st_release) once its copy exists: the bf16
 * path reads only the copy, so a bf16 tower holds about half the weight memory of an fp32 one.
 * They go back weight by weight, so the packing never holds a whole tower twice. */
typedef struct {
    const float *w;
    int out, in;
    gz_bf16w *dst;
    const gz_st_file *src; /* borrowed, or NULL: w's pages stay */
} gz_bf16w_job;

/* The bf16 copies of one model's weights, keyed by their fp32 source (address and shape), so
 * that towers running the same weights hold one copy between them: BLIP's text tower and its
 * ITM encoder run the same BERT layers (170 MB of bf16 for BERT-base). Owns every copy; may be
 * used by several threads at once. */
typedef struct gz_bf16w_cache gz_bf16w_cache;

/* An empty cache, or NULL (GZ_ENOMEM message set). */
gz_bf16w_cache *gz_bf16w_cache_new(void);
/* Free c and every copy in it: after every tower that borrowed from it. NULL is a no-op. */
void gz_bf16w_cache_free(gz_bf16w_cache *c);
/* Copies held by c; *bytes (if not NULL) receives their size in bytes. */
size_t gz_bf16w_cache_count(gz_bf16w_cache *c, size_t *bytes);

/* gz_bf16w_pack of every job, split over cx's threads (packing a tower's copy costs as much as
 * many queries). cache NULL: each dst owns its copy. Else each dst becomes a borrowed view of
 * cache's copy of (w, out, in), and only the weights cache lacks are packed (once, even when
 * several jobs name them). All or nothing: on GZ_ENOMEM (message set) every dst is empty and
 * cache holds what it held before. */
gz_status gz_bf16w_pack_all(const gz_compute *cx, gz_bf16w_cache *cache, const gz_bf16w_job *jobs,
                            size_t n);

/* y(n, out) at row stride ldy = x(n, in) · W(out, in)^T + b(out) (b may be NULL), with the
 * kernel cx chooses (see the top of this file); wb is W packed as bf16 or NULL. The bias is
 * added last onto the product except on the OpenBLAS path, which starts from it (torch's addmm
 * order); both are fp32 parity paths. Returns GZ_OK, or GZ_ENOMEM (message set) when the bf16
 * path has no memory for x's bf16 copy; y is then unspecified. */
gz_status gz_linear_cx(const gz_compute *cx, const float *x, const float *w, const gz_bf16w *wb,
                       const float *b, float *y, int ldy, int n, int in, int out);

/* No activation, for gz_linear_act_cx. */
#define GZ_LINEAR_NO_ACT (-1)

/* gz_linear_cx followed by the activation act (a gz_act, or GZ_LINEAR_NO_ACT) on y, the same
 * values as gz_activate after it. With cx->gemm it is fused: each thread applies it to the
 * block of y it has just written, still in cache, instead of a separate pass over y (a ViT
 * MLP's y is 19 MB per batch of 8); without, it is that separate pass (the reference). */
gz_status gz_linear_act_cx(const gz_compute *cx, const float *x, const float *w, const gz_bf16w *wb,
                           const float *b, int act, float *y, int ldy, int n, int in, int out);

#endif
