/* kernels.h - fp32 math kernels for transformer inference, over OpenBLAS.
 *
 * Legend: N = rows (tokens), D = features, M/K = GEMM sizes, B = batch, H = heads,
 *         Dh = head size, Tq/Tk = query/key lengths.
 * All matrices are row-major float32. Every kernel has a plain reference loop in the tests.
 * Thread count is process-wide for OpenBLAS (gz_set_threads). */
#ifndef GZ_CORE_KERNELS_H
#define GZ_CORE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Tell OpenBLAS (and our own OpenMP loops) how many threads to use; 0 = all cores. */
void gz_set_threads(int n);
int gz_get_threads(void);

/* Process-wide switch for the vectorised paths (AVX-512/AVX2: activations, softmax and LayerNorm,
 * with glibc libmvec exp; attention as pair-parallel register tiles instead of OpenBLAS calls per
 * (batch, head)); 1 = on (default), 0 = the plain libm loops and OpenBLAS attention, kept for
 * comparison.
 * gz_simd_level: 2 = AVX-512, 1 = AVX2, 0 = plain loops in use. */
void gz_set_simd(int on);
int gz_simd_level(void);
/* Cap the vector level at max_level (2 = no cap, the default; 1 = AVX2 at most, so that tests
 * run the AVX2 paths on an AVX-512 machine; 0 = plain loops). Process-wide, like gz_set_simd. */
void gz_set_simd_max(int max_level);

/* C(M,N) = alpha * op(A) op(B) + beta * C, op(X) = X or X^T; lda/ldb/ldc are row strides. */
void gz_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* Batched strided GEMM: for b < batch, the same as gz_sgemm with A + b*stride_a, ... */
void gz_sgemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                      int lda, size_t stride_a, const float *B, int ldb, size_t stride_b, float beta,
                      float *C, int ldc, size_t stride_c, int batch);

/* PyTorch Linear: y(N, out) = x(N, in) · W(out, in)^T + b(out); b may be NULL. */
void gz_linear(const float *x, const float *w, const float *b, float *y, int n, int in, int out);

/* y(N, D) += b(D) broadcast over rows. */
void gz_add_bias(float *y, const float *b, int n, int d);
/* y(n) += x(n). */
void gz_add(float *y, const float *x, size_t n);

/* LayerNorm over the last dim: biased variance, eps inside the sqrt (torch semantics).
 * y may equal x. w/b (D). */
void gz_layernorm(float *y, const float *x, const float *w, const float *b, int n, int d, float eps);

/* Activations in place. gelu = exact erf form; gelu_tanh = tanh approximation;
 * quick_gelu = x * sigmoid(1.702 x). */
void gz_gelu(float *x, size_t n);
void gz_gelu_tanh(float *x, size_t n);
void gz_quick_gelu(float *x, size_t n);

typedef enum { GZ_ACT_GELU = 0, GZ_ACT_GELU_TANH, GZ_ACT_QUICK_GELU, GZ_ACT_RELU } gz_act;
void gz_activate(gz_act act, float *x, size_t n);

/* Numerically stable softmax of each row of x(rows, cols), in place. */
void gz_softmax_rows(float *x, int rows, int cols);

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
 * passed without copies. Scratch is allocated internally. */
void gz_attention(const float *q, int q_stride, const float *k, const float *v, int kv_stride,
                  float *out, int B, int Tq, int Tk, int H, int Dh, const int32_t *key_mask,
                  int causal, float scale);

/* Patch embedding as im2col + GEMM (Conv2d with kernel = stride = P, no padding).
 *   pixels: (B, C, S, S)  weight: (D, C, P, P)  bias: (D) or NULL
 *   out: (B, G*G, D) where G = S / P, patches in row-major (y, x) order. */
void gz_patch_embed(const float *pixels, const float *weight, const float *bias, float *out, int B,
                    int C, int S, int P, int D);

/* Half-precision conversions (round trip exact for representable values). */
float gz_f16_to_f32(uint16_t h);
float gz_bf16_to_f32(uint16_t h);
uint16_t gz_f32_to_f16(float f);  /* round to nearest even */
uint16_t gz_f32_to_bf16(float f); /* round to nearest even */

#endif
