/* tx_internal.h - pieces shared by the transformer text encoders (bert.c, clip_text.c): weight
 * fetching, the per-token input checks of a forward pass, the scratch size and the token +
 * position embedding sum. Not part of any public API.
 *
 * Legend: B = texts, T = padded length, N = B*T token rows, D = hidden size, F = FFN size. */
#ifndef GZ_TEXT_TX_INTERNAL_H
#define GZ_TEXT_TX_INTERNAL_H

#include <limits.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/kernels.h"
#include "core/safetensors.h"

/* Fetch "<prefix><name>" as F32 with shape (d0) when d1 <= 0, else (d0, d1). */
static inline gz_status tx_get_w(gz_st_file *w, const char *prefix, const char *name, int64_t d0,
                                 int64_t d1, const float **out) {
    int64_t shape[2] = {d0, d1};
    return gz_st_f32_fmt(w, out, d1 > 0 ? 2 : 1, shape, "%s%s", prefix, name);
}

/* Checks of B texts of T tokens before a forward pass, in this order: N = B*T fits an int;
 * per token, its id lies in [0, vocab_size) and, when type_ids is given, its type in
 * [0, type_vocab_size); no mask row (when mask is given) starts with padding. what names the
 * encoder in messages ("BERT forward"). Returns GZ_OK or GZ_EINVAL with the first problem. */
static inline gz_status tx_check_tokens(const char *what, const gz_text_config *cfg,
                                        const int32_t *ids, const int32_t *type_ids,
                                        const int32_t *mask, int B, int T) {
    size_t N = (size_t)B * (size_t)T;
    if (N > (size_t)INT_MAX) return GZ_FAIL(GZ_EINVAL, "%s: batch %d x %d too large", what, B, T);
    for (size_t i = 0; i < N; i++) {
        if (ids[i] < 0 || ids[i] >= cfg->vocab_size)
            return GZ_FAIL(GZ_EINVAL,
                           "token id %d (text %zu, position %zu) outside the vocabulary of %d",
                           ids[i], i / (size_t)T, i % (size_t)T, cfg->vocab_size);
        if (type_ids && (type_ids[i] < 0 || type_ids[i] >= cfg->type_vocab_size))
            return GZ_FAIL(GZ_EINVAL, "token type %d outside [0, %d)", type_ids[i],
                           cfg->type_vocab_size);
    }
    if (mask)
        for (int b = 0; b < B; b++)
            if (!mask[(size_t)b * T])
                return GZ_FAIL(GZ_EINVAL, "text %d: attention mask starts with padding", b);
    return GZ_OK;
}

/* Floats of a forward pass's scratch: N = B*T rows of 6*D + F (six (N, D) buffers and one
 * (N, F)). GZ_ENOMEM (message naming what) when the count overflows; the caller allocates
 * *out floats with gz_malloc_n, which checks the byte size. */
static inline gz_status tx_scratch_floats(const char *what, int B, int T, int D, int F,
                                          size_t *out) {
    size_t N = (size_t)B * (size_t)T, per_row = (size_t)6 * D + (size_t)F;
    if (!gz_mul_size(N, per_row, out))
        return GZ_FAIL(GZ_ENOMEM, "%s: batch %d x %d too large", what, B, T);
    return GZ_OK;
}

/* out (N, D) = tok[ids[i]] (vocab, D) + pos[i % T] (max_pos, D), row by row. */
static inline void tx_embed_sum(const float *tok, const float *pos, const int32_t *ids, size_t N,
                                int T, int D, float *out) {
    for (size_t i = 0; i < N; i++) {
        const float *te = tok + (size_t)ids[i] * D;
        const float *pe = pos + (i % (size_t)T) * D;
        float *r = out + i * D;
        for (int j = 0; j < D; j++)
            r[j] = te[j] + pe[j];
    }
}

#endif
