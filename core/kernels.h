/* kernels.h - fp32 math kernels for transformer inference, over OpenBLAS.
 *
 * Legend: N = rows (tokens), D = features, M/K = GEMM sizes, B = batch, H = heads,
 *         Dh = head size, Tq/Tk = query/key lengths, C = channels, S = image side,
 *         p = patch side, G = S / p patches per side.
 * All matrices are row-major float32. Every kernel has a plain reference loop in the tests.
 *
 * Threads and vector paths are not process state: a kernel that splits its work or has a
 * vectorised path takes a gz_compute, which each model owns (as llama.cpp's context params and
 * whisper_encode's n_threads), so two models never change each other's settings. The one
 * exception is OpenBLAS, whose thread count is process-wide by its design (gz_blas_set_threads).
 * There is no process default to set: tests and benches build their own gz_compute. */
#ifndef GZ_CORE_KERNELS_H
#define GZ_CORE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/scratch.h"
#include "core/status.h"
#include "core/threads.h"

/* Highest vector level: 2 = AVX-512, 1 = AVX2 + FMA, 0 = the plain libm loops. */
#define GZ_SIMD_BEST 2

/* gz_compute.gemm: the Linear kernels (core/linear.h). */
enum {
    GZ_GEMM_REFERENCE = 0, /* OpenBLAS for every product, the reference kept for comparison */
    GZ_GEMM_IN_PLACE = 1,  /* gaze's row-dot kernel for a few rows, OpenBLAS above: W as stored */
    GZ_GEMM_PACKED = 2     /* the default: towers pack W once into panels for gaze's kernel */
};

/* How one caller (a model, a test, a bench) wants its kernels run. Plain data, copied freely. */
typedef struct {
    int n_threads;          /* >= 1: most ranges one gz_parallel_for loop is split into */
    int simd;               /* highest vector level the kernels may use (0..GZ_SIMD_BEST): the
                               AVX-512/AVX2 activations, softmax and LayerNorm with glibc libmvec
                               exp, and attention as pair-parallel register tiles; 0 = the plain
                               libm loops and OpenBLAS attention, kept for comparison. 1 lets a
                               test run the AVX2 paths on an AVX-512 machine. */
    size_t scratch_limit;   /* most bytes of scratch one kernel call may take, heap or stack;
                               0 = no limit. Tests set it to reach the out-of-memory paths. */
    int gemm;               /* which Linear kernels (core/linear.h; the own ones need simd):
                               GZ_GEMM_PACKED, GZ_GEMM_IN_PLACE or GZ_GEMM_REFERENCE */
    size_t pack_after_rows; /* GZ_GEMM_PACKED: a tower packs its fp32 weights before the forward
                               that brings the rows it has run to this many (the copy costs
                               about as much as the rows it then saves, ~0.13 s for BLIP's
                               ViT-384), so a one-off encode runs on them as stored; 0 = pack
                               on the first forward */
    int bf16;               /* 1 = Linear layers with bf16 weights and AVX512-BF16 dot products
                               (fp32 accumulation) where the CPU has them and gemm is on; 0 = fp32 */
    gz_pool *pool;          /* borrowed workers for the parallel loops (core/threads.h), owned by
                               whoever made them (a gz_model); NULL = threads started per loop */
    gz_scratch *scratch;    /* borrowed arena the towers take their forward's scratch from
                               (core/scratch.h), owned like pool; NULL = a fresh mapping per
                               forward */
    int balance;            /* 1 = the packed products, the attention, LayerNorm, softmax and the
                               element-wise passes hand out their work as threads free up
                               (gz_pool_for_guided), so a thread slowed by the system does less
                               of it; 0 = equal fixed ranges, kept for comparison */
} gz_compute;

/* Rows after which the fp32 copies are packed, by default: a ViT-384 image is 577 rows, a
 * batch of 8 4616, a text query about 13. */
#define GZ_PACK_AFTER_ROWS 1024

/* A context of n_threads threads (0 = all cores) and the vector paths and own GEMM kernels on
 * (simd != 0, at the best level the CPU has; GZ_GEMM_PACKED after GZ_PACK_AFTER_ROWS rows) or
 * off (simd == 0); fp32; no scratch limit; balanced loops. */
gz_compute gz_compute_make(int n_threads, int simd);
/* A parallel loop of cx's over [0, n) (core/threads.h): on cx's pool, ranges claimed as
 * threads free up, each at least grain items, when cx->balance (gz_pool_for_guided), else the
 * equal fixed ranges (gz_pool_for). */
void gz_compute_for(const gz_compute *cx, size_t n, size_t min_per_thread, size_t grain,
                    gz_range_fn fn, void *ctx);
/* The vector level cx's kernels actually run: min(cx->simd, what the CPU supports). */
int gz_compute_simd_level(const gz_compute *cx);

/* Processors this process may run on (at least 1). */
int gz_cpu_count(void);
/* Set OpenBLAS's thread count (0 = all cores), only when it differs from the current one.
 * PROCESS-WIDE by OpenBLAS's design: every gz_model encode/match call sets it to its model's
 * n_threads when it starts. */
void gz_blas_set_threads(int n);

/* C(M,N) = alpha * op(A) op(B) + beta * C, op(X) = X or X^T; lda/ldb/ldc are row strides. */
void gz_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* Batched strided GEMM: for b < batch, the same as gz_sgemm with A + b*stride_a, ... */
void gz_sgemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                      int lda, size_t stride_a, const float *B, int ldb, size_t stride_b,
                      float beta, float *C, int ldc, size_t stride_c, int batch);

/* PyTorch Linear: y(N, out) = x(N, in) · W(out, in)^T + b(out); b may be NULL. */
void gz_linear(const float *x, const float *w, const float *b, float *y, int n, int in, int out);

/* y(N, D) += b(D) broadcast over rows. */
void gz_add_bias(float *y, const float *b, int n, int d);
/* y(n) += x(n). */
void gz_add(float *y, const float *x, size_t n);

/* y(n) += x(n) on cx's threads: the same values as gz_add. */
void gz_add_cx(const gz_compute *cx, float *y, const float *x, size_t n);

/* LayerNorm over the last dim: biased variance, eps inside the sqrt (torch semantics).
 * y may equal x. w/b (D). */
void gz_layernorm(const gz_compute *cx, float *y, const float *x, const float *w, const float *b,
                  int n, int d, float eps);
/* A residual add and the LayerNorm after it: acc(n, d) += add, then y = LayerNorm(acc), row by
 * row on cx's threads, each row normalised while its sum is still in cache. The same values as
 * gz_add then gz_layernorm; y may equal add or acc. */
void gz_add_layernorm(const gz_compute *cx, float *acc, const float *add, float *y, const float *w,
                      const float *b, int n, int d, float eps);

/* Activations in place. gelu = exact erf form; gelu_tanh = tanh approximation;
 * quick_gelu = x * sigmoid(1.702 x). */
void gz_gelu(const gz_compute *cx, float *x, size_t n);
void gz_gelu_tanh(const gz_compute *cx, float *x, size_t n);
void gz_quick_gelu(const gz_compute *cx, float *x, size_t n);

typedef enum { GZ_ACT_GELU = 0, GZ_ACT_GELU_TANH, GZ_ACT_QUICK_GELU, GZ_ACT_RELU } gz_act;
void gz_activate(const gz_compute *cx, gz_act act, float *x, size_t n);
/* gz_activate on the calling thread only, with the same values (for fused epilogues, which
 * run inside a parallel loop). */
void gz_activate_here(const gz_compute *cx, gz_act act, float *x, size_t n);

/* Numerically stable softmax of each row of x(rows, cols), in place. */
void gz_softmax_rows(const gz_compute *cx, float *x, int rows, int cols);

/* x(N, D) rows scaled to unit L2 norm: x / max(||x||, eps). eps = 1e-12 matches
 * F.normalize; CLIP's x / ||x|| is the same for any non-zero row. */
void gz_l2_normalize(float *x, int n, int d, float eps);

/* Multi-head scaled dot-product attention.
 *   q: (B, Tq, H*Dh) rows with stride q_stride floats between tokens
 *   k, v: (B, Tk, H*Dh) rows with stride kv_stride
 *   out: (B, Tq, H*Dh) contiguous
 *   key_mask: (B, Tk) 1 = attend, 0 = padding; NULL = all keys valid
 *   causal: 1 = query t sees keys <= t (CLIP text)
 *   scale: multiplies q·k (usually Dh^-0.5)
 * Masked keys get exactly zero weight (as the additive -inf / -10000 masks of HF give in
 * float32 whenever a row keeps at least one key). Row stride lets a fused QKV buffer be
 * passed without copies. Scratch is allocated internally, within cx->scratch_limit.
 * Returns GZ_OK, or GZ_ENOMEM (message set) when the scratch cannot be had, not even a few
 * query rows of it: out is then unspecified and must not be used. */
gz_status gz_attention(const gz_compute *cx, const float *q, int q_stride, const float *k,
                       const float *v, int kv_stride, float *out, int B, int Tq, int Tk, int H,
                       int Dh, const int32_t *key_mask, int causal, float scale);

/* Patch embedding as im2col + GEMM (Conv2d with kernel = stride = p, no padding).
 *   pixels: (B, C, S, S)  weight: (D, C, p, p)  bias: (D) or NULL
 *   out: (B, G*G, D) where G = S / p, patches in row-major (y, x) order.
 * Without memory for the columns (or beyond cx->scratch_limit) it runs the plain convolution
 * loop instead: the same result, slower. */
void gz_patch_embed(const gz_compute *cx, const float *pixels, const float *weight,
                    const float *bias, float *out, int B, int C, int S, int p, int D);
/* The same with the caller's scratch for the columns: cols holds B*G*G*C*p*p floats (a
 * tower's activation scratch that is free at that point), so a call allocates nothing (a 14 MB
 * malloc per ViT-384 batch of 8 raised glibc's mmap threshold and kept the freed heap). */
void gz_patch_embed_cols(const gz_compute *cx, const float *pixels, const float *weight,
                         const float *bias, float *out, int B, int C, int S, int p, int D,
                         float *cols);

/* Half-precision conversions (round trip exact for representable values). */
float gz_f16_to_f32(uint16_t h);
float gz_bf16_to_f32(uint16_t h);
uint16_t gz_f32_to_f16(float f);  /* round to nearest even */
uint16_t gz_f32_to_bf16(float f); /* round to nearest even */

#endif
