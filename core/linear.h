/* linear.h - Linear layers y = x W^T + b on gaze's own kernels: fp32 and bf16 weights packed
 * once into 16-column panels, fp32 dot products straight from W for a few rows, OpenBLAS as the
 * reference.
 *
 * Legend: n = rows (tokens), in = input features, out = output features (W is (out, in) as
 *         PyTorch stores it), ldy = row stride of y in floats.
 *
 * Which kernel runs is the caller's gz_compute (core/kernels.h) and the copies wb holds:
 *   - cx->gemm == GZ_GEMM_REFERENCE, or no vector paths (simd 0): OpenBLAS cblas_sgemm;
 *   - cx->bf16, wb->bf16 and a CPU with AVX512-BF16: bf16 x bf16 dot products with fp32
 *     accumulation (vdpbf16ps); x is rounded to bf16 (nearest even) per call, W once by
 *     gz_packw_bf16, so results differ from fp32 by bf16 rounding (~3 significant digits);
 *   - fp32 with wb->f32 (cx->gemm == GZ_GEMM_PACKED packs it): broadcast x times W's panels in
 *     an 8-row x 48-column register tile, any n; no per-call packing, bias and activation
 *     applied while the tile is in registers and cache;
 *   - fp32 with n <= GZ_LINEAR_SMALL_N rows and no packed copy: AVX-512 dot products straight
 *     from W's rows (a text query reads each weight once, so it is bound by memory, not FMAs);
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

/* A weight W(out, in) packed for gaze's kernels, in up to two forms, each zero padded:
 *   bf16: 16-column panels of bf16 pairs, (ceil(out/16), ceil(in/2), 16, 2), for the
 *         AVX512-BF16 kernel;
 *   f32:  16-column panels of floats, (ceil(out/16), in, 16), for the fp32 kernel.
 * NULL = that form was not made. Owned by whoever packed it, unless borrowed from a
 * gz_packw_cache. */
typedef struct {
    uint16_t *bf16;
    float *f32;
    int out, in;
    int borrowed; /* 1 = a view of a gz_packw_cache's copies: gz_packw_free only forgets them */
} gz_packw;

/* The forms of gz_packw. */
typedef enum { GZ_PACK_BF16, GZ_PACK_F32 } gz_pack_kind;

/* 1 when this CPU runs the bf16 kernel (AVX512-BF16, AVX512-BW/VL). */
int gz_cpu_has_bf16(void);

/* 1 when cx's Linear kernels read a packed form of the weights, the form in *kind: bf16 when
 * cx asks for it and the CPU runs it, else f32 with cx->gemm == GZ_GEMM_PACKED; 0 when they read
 * W as stored. Towers pack (gz_packw_pack_all) the form this names before a forward. */
int gz_linear_pack_kind(const gz_compute *cx, gz_pack_kind *kind);

/* 1 when a tower without its kind copies is to make them before a forward, rows = the rows it
 * has run without them plus the forward's own: bf16 at once (its kernel reads nothing else),
 * f32 from cx->pack_after_rows rows on (so one large batch packs before it runs). */
int gz_linear_pack_due(const gz_compute *cx, gz_pack_kind kind, size_t rows);

/* Pack w(out, in) into a fresh *pw holding the one form: bf16 (converted with round to nearest
 * even) or f32 (the same values). GZ_ENOMEM (message set) when the copy cannot be allocated;
 * *pw is then empty. */
gz_status gz_packw_bf16(const float *w, int out, int in, gz_packw *pw);
gz_status gz_packw_f32(const float *w, int out, int in, gz_packw *pw);
/* Free what pw owns (every form) and empty it. */
void gz_packw_free(gz_packw *pw);

/* One weight to pack: w(out, in) into *dst, which keeps the forms it has. When src is not
 * NULL, w lies in src (a checkpoint's F32 tensor) and its pages are handed back
 * (gz_st_release) once its copy exists: the packed kernels read only the copy, so a bf16 tower
 * holds about half the weight memory of an fp32 one and a packed fp32 tower the same. They go
 * back weight by weight, so the packing never holds a whole tower twice. */
typedef struct {
    const float *w;
    int out, in;
    gz_packw *dst;
    const gz_st_file *src; /* borrowed, or NULL: w's pages stay */
} gz_packw_job;

/* The packed copies of one model's weights, keyed by their fp32 source (address and shape), so
 * that towers running the same weights hold one copy between them: BLIP's text tower and its
 * ITM encoder run the same BERT layers (170 MB of bf16 for BERT-base). Owns every copy; may be
 * used by several threads at once. */
typedef struct gz_packw_cache gz_packw_cache;

/* An empty cache, or NULL (GZ_ENOMEM message set). */
gz_packw_cache *gz_packw_cache_new(void);
/* Free c and every copy in it: after every tower that borrowed from it. NULL is a no-op. */
void gz_packw_cache_free(gz_packw_cache *c);
/* Weights c holds copies of; *bytes (if not NULL) receives the size of every form, in bytes. */
size_t gz_packw_cache_count(gz_packw_cache *c, size_t *bytes);

/* The kind form of every job's weight, packed on cx's threads (packing a tower's copy costs as
 * much as many queries). cache NULL: each dst owns its copies. Else each dst becomes a borrowed
 * view of cache's copies of (w, out, in), and only the forms cache lacks are packed (once, even
 * when several jobs name them); a dst is either always a view of one cache or always owns its
 * copies. All or nothing: on GZ_ENOMEM (message set) no dst gained the form and cache holds
 * what it held before. */
gz_status gz_packw_pack_all(const gz_compute *cx, gz_packw_cache *cache, gz_pack_kind kind,
                            const gz_packw_job *jobs, size_t n);

/* y(n, out) at row stride ldy = x(n, in) · W(out, in)^T + b(out) (b may be NULL), with the
 * kernel cx chooses (see the top of this file); wb is W's packed copies or NULL. The bias is
 * added last onto the product except on the OpenBLAS path, which starts from it (torch's addmm
 * order); both are fp32 parity paths. Returns GZ_OK, or GZ_ENOMEM (message set) when the bf16
 * path has no memory for x's bf16 copy; y is then unspecified. */
gz_status gz_linear_cx(const gz_compute *cx, const float *x, const float *w, const gz_packw *wb,
                       const float *b, float *y, int ldy, int n, int in, int out);

/* No activation, for gz_linear_act_cx. */
#define GZ_LINEAR_NO_ACT (-1)

/* gz_linear_cx followed by the activation act (a gz_act, or GZ_LINEAR_NO_ACT) on y, the same
 * values as gz_activate after it. With cx->gemm it is fused: each thread applies it to the
 * block of y it has just written, still in cache, instead of a separate pass over y (a ViT
 * MLP's y is 19 MB per batch of 8); without, it is that separate pass (the reference). */
gz_status gz_linear_act_cx(const gz_compute *cx, const float *x, const float *w, const gz_packw *wb,
                           const float *b, int act, float *y, int ldy, int n, int in, int out);

#endif
