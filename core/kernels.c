/* kernels.c - fp32 math kernels for transformer inference, over OpenBLAS and OpenMP.
 *
 * Legend: N = rows (tokens), D = features, M/K = GEMM sizes, B = batch, H = heads,
 *         Dh = head size, Tq/Tk = query/key lengths, C = channels, S = image side,
 *         P = patch side, G = S / P patches per side.
 * Element-wise loops use OpenMP when the work is large enough to pay for the fork. */
#include "core/kernels.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Below this many elements an OpenMP fork costs more than it saves. */
#define GZ_PAR_MIN 32768

/* Stack scratch for gz_attention when the heap allocation fails (floats). */
#define GZ_ATTN_STACK_FLOATS 4096

void gz_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    if (n < 1) n = 1;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int gz_get_threads(void) { return omp_get_max_threads(); }

void gz_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* BLAS semantics: C = beta * C (beta 0 overwrites, also NaN). */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gz_sgemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                      int lda, size_t stride_a, const float *B, int ldb, size_t stride_b, float beta,
                      float *C, int ldc, size_t stride_c, int batch) {
    for (int b = 0; b < batch; b++)
        gz_sgemm(trans_a, trans_b, M, N, K, alpha, A + (size_t)b * stride_a, lda,
                 B + (size_t)b * stride_b, ldb, beta, C + (size_t)b * stride_c, ldc);
}

void gz_linear(const float *x, const float *w, const float *b, float *y, int n, int in, int out) {
    /* y(N, out) = x(N, in) · w(out, in)^T */
    if (n <= 0 || out <= 0) return;
    if (b) {
        for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof *y);
        gz_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
    } else {
        gz_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    }
}

void gz_add_bias(float *y, const float *b, int n, int d) {
    #pragma omp parallel for if ((size_t)n * d >= GZ_PAR_MIN)
    for (int i = 0; i < n; i++) {
        float *r = y + (size_t)i * d;
        for (int j = 0; j < d; j++) r[j] += b[j];
    }
}

void gz_add(float *y, const float *x, size_t n) {
    #pragma omp parallel for if (n >= GZ_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void gz_layernorm(float *y, const float *x, const float *w, const float *b, int n, int d,
                  float eps) {
    if (d <= 0) return;
    #pragma omp parallel for if ((size_t)n * d >= GZ_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
        /* Two passes in double: exact enough that constant rows give variance 0. */
        double sum = 0.0;
        for (int j = 0; j < d; j++) sum += xr[j];
        double mean = sum / d;
        double var = 0.0;
        for (int j = 0; j < d; j++) {
            double t = xr[j] - mean;
            var += t * t;
        }
        var /= d;
        double rstd = 1.0 / sqrt(var + (double)eps);
        float fm = (float)mean, fr = (float)rstd;
        for (int j = 0; j < d; j++) {
            float v = (xr[j] - fm) * fr;
            yr[j] = v * (w ? w[j] : 1.0f) + (b ? b[j] : 0.0f);
        }
    }
}

void gz_gelu(float *x, size_t n) {
    const float inv_sqrt2 = 0.70710678118654752440f;
    #pragma omp parallel for if (n >= GZ_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v * 0.5f * (1.0f + erff(v * inv_sqrt2));
    }
}

void gz_gelu_tanh(float *x, size_t n) {
    const float k0 = 0.79788456080286535588f; /* sqrt(2/pi) */
    const float k1 = 0.044715f;
    #pragma omp parallel for if (n >= GZ_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k0 * (v + k1 * v * v * v)));
    }
}

void gz_quick_gelu(float *x, size_t n) {
    #pragma omp parallel for if (n >= GZ_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v / (1.0f + expf(-1.702f * v));
    }
}

static void relu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(x[i] > 0.0f) && !isnan(x[i])) x[i] = 0.0f;
}

void gz_activate(gz_act act, float *x, size_t n) {
    switch (act) {
    case GZ_ACT_GELU: gz_gelu(x, n); break;
    case GZ_ACT_GELU_TANH: gz_gelu_tanh(x, n); break;
    case GZ_ACT_QUICK_GELU: gz_quick_gelu(x, n); break;
    case GZ_ACT_RELU: relu(x, n); break;
    }
}

/* Softmax of one row in place; a row with no finite maximum (all -inf) becomes uniform. */
static void softmax_row(float *r, int cols) {
    float mx = -INFINITY;
    for (int j = 0; j < cols; j++)
        if (r[j] > mx) mx = r[j];
    if (mx == -INFINITY) {
        for (int j = 0; j < cols; j++) r[j] = 1.0f / (float)cols;
        return;
    }
    float sum = 0.0f;
    for (int j = 0; j < cols; j++) {
        float e = expf(r[j] - mx);
        r[j] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < cols; j++) r[j] *= inv;
}

void gz_softmax_rows(float *x, int rows, int cols) {
    if (cols <= 0) return;
    #pragma omp parallel for if ((size_t)rows * cols >= GZ_PAR_MIN)
    for (int i = 0; i < rows; i++) softmax_row(x + (size_t)i * cols, cols);
}

void gz_l2_normalize(float *x, int n, int d, float eps) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        double ss = 0.0;
        for (int j = 0; j < d; j++) ss += (double)r[j] * r[j];
        double nrm = sqrt(ss);
        if (nrm < eps) nrm = eps;
        float inv = (float)(1.0 / nrm);
        for (int j = 0; j < d; j++) r[j] *= inv;
    }
}

/* One (batch, head) slice for query rows [t0, t0 + nq): scores in s (nq, Tk). */
static void attention_rows(const float *q, int q_stride, const float *k, const float *v,
                           int kv_stride, float *out, int out_stride, int t0, int nq, int Tk,
                           int Dh, const int32_t *mask, int causal, float scale, float *s) {
    /* s(nq, Tk) = scale * q(nq, Dh) · k(Tk, Dh)^T */
    gz_sgemm(0, 1, nq, Tk, Dh, scale, q + (size_t)t0 * q_stride, q_stride, k, kv_stride, 0.0f, s,
             Tk);
    for (int i = 0; i < nq; i++) {
        float *r = s + (size_t)i * Tk;
        int t = t0 + i;
        if (mask)
            for (int j = 0; j < Tk; j++)
                if (!mask[j]) r[j] = -INFINITY;
        if (causal)
            for (int j = t + 1; j < Tk; j++) r[j] = -INFINITY;
        softmax_row(r, Tk);
    }
    /* out(nq, Dh) = s(nq, Tk) · v(Tk, Dh) */
    gz_sgemm(0, 0, nq, Dh, Tk, 1.0f, s, Tk, v, kv_stride, 0.0f, out + (size_t)t0 * out_stride,
             out_stride);
}

void gz_attention(const float *q, int q_stride, const float *k, const float *v, int kv_stride,
                  float *out, int B, int Tq, int Tk, int H, int Dh, const int32_t *key_mask,
                  int causal, float scale) {
    if (B <= 0 || Tq <= 0 || H <= 0 || Dh <= 0) return;
    int D = H * Dh;
    if (Tk <= 0) {
        memset(out, 0, (size_t)B * Tq * D * sizeof *out);
        return;
    }
    float stack_buf[GZ_ATTN_STACK_FLOATS];
    float *s = malloc((size_t)Tq * Tk * sizeof *s);
    int chunk = Tq;
    float *buf = s;
    if (!s) {
        /* Out of memory: process a few query rows at a time from the stack. */
        buf = stack_buf;
        chunk = Tk <= GZ_ATTN_STACK_FLOATS ? GZ_ATTN_STACK_FLOATS / Tk : 0;
        if (chunk == 0) {
            memset(out, 0, (size_t)B * Tq * D * sizeof *out);
            return;
        }
    }
    for (int b = 0; b < B; b++) {
        const float *qb = q + (size_t)b * Tq * q_stride;
        const float *kb = k + (size_t)b * Tk * kv_stride;
        const float *vb = v + (size_t)b * Tk * kv_stride;
        const int32_t *mb = key_mask ? key_mask + (size_t)b * Tk : NULL;
        float *ob = out + (size_t)b * Tq * D;
        for (int h = 0; h < H; h++)
            for (int t0 = 0; t0 < Tq; t0 += chunk) {
                int nq = Tq - t0 < chunk ? Tq - t0 : chunk;
                attention_rows(qb + (size_t)h * Dh, q_stride, kb + (size_t)h * Dh,
                               vb + (size_t)h * Dh, kv_stride, ob + (size_t)h * Dh, D, t0, nq, Tk,
                               Dh, mb, causal, scale, buf);
            }
    }
    free(s);
}

void gz_patch_embed(const float *pixels, const float *weight, const float *bias, float *out, int B,
                    int C, int S, int P, int D) {
    if (B <= 0 || P <= 0 || D <= 0) return;
    int G = S / P;
    size_t np = (size_t)G * G;       /* patches per image */
    size_t kk = (size_t)C * P * P;   /* features per patch */
    float *cols = malloc(np * kk * sizeof *cols); /* (G*G, C*P*P) */
    for (int b = 0; b < B; b++) {
        const float *img = pixels + (size_t)b * C * S * S;
        float *ob = out + (size_t)b * np * D;
        if (!cols) {
            /* Out of memory: the plain convolution loop. */
            for (size_t p = 0; p < np; p++) {
                int gy = (int)(p / G), gx = (int)(p % G);
                for (int d = 0; d < D; d++) {
                    const float *wd = weight + (size_t)d * kk;
                    float acc = bias ? bias[d] : 0.0f;
                    for (int c = 0; c < C; c++)
                        for (int y = 0; y < P; y++)
                            for (int x = 0; x < P; x++)
                                acc += wd[((size_t)c * P + y) * P + x] *
                                       img[((size_t)c * S + gy * P + y) * S + gx * P + x];
                    ob[p * D + d] = acc;
                }
            }
            continue;
        }
        /* im2col: row p = (gy, gx), column (c, y, x) matching the weight layout. */
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                float *row = cols + ((size_t)gy * G + gx) * kk;
                for (int c = 0; c < C; c++)
                    for (int y = 0; y < P; y++)
                        memcpy(row + ((size_t)c * P + y) * P,
                               img + ((size_t)c * S + gy * P + y) * S + (size_t)gx * P,
                               (size_t)P * sizeof *row);
            }
        gz_linear(cols, weight, bias, ob, (int)np, (int)kk, D);
    }
    free(cols);
}

/* ---- half-precision conversions ---- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float gz_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

float gz_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t gz_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* nan */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {
        /* below the smallest normal half (2^-14): subnormal half = round(|f| * 2^24) */
        if (a < 0x33000000u) return sign; /* below 2^-25: rounds to zero (ties to even 0) */
        uint32_t e = a >> 23;             /* 102..112 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e;        /* value = m * 2^(e-150); half = m >> (126 - e) */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    /* normal: rebias exponent, round mantissa 23 -> 10 bits to nearest even */
    uint32_t r = a - 0x38000000u; /* exponent - 112 */
    uint32_t lsb = (r >> 13) & 1u;
    r += 0xfffu + lsb;
    return (uint16_t)(sign | (r >> 13));
}

uint16_t gz_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return (uint16_t)(u >> 16);
}
