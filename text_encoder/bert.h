/* bert.h - BERT text encoder (post-LN), optionally with cross-attention: BLIP's text encoder
 * (ITC mode without, ITM mode with cross-attention to image states) and Chinese-CLIP's text
 * model.
 *
 * Legend: B = texts in the batch, T = padded text length, D = hidden size, H = heads,
 *         Dh = D / H, F = intermediate (FFN) size, L = layers, Ti = image tokens,
 *         De = encoder (image) hidden size.
 *
 * Layer (post-LN, as Hugging Face BertLayer / BlipTextLayer):
 *   x = LN(x + Wo·SelfAttn(x, padding mask))
 *   x = LN(x + Wco·CrossAttn(q = x, k/v = image states))      (only in ITM mode)
 *   x = LN(x + W2·act(W1·x))
 * Embeddings: LN(word[id] + position[t] (+ token_type[type])).
 *
 * Weights are borrowed from the gz_st_file (it must outlive the encoder). After loading, a
 * gz_bert is immutable: forward passes may run concurrently from several threads; every call
 * allocates its own scratch. */
#ifndef GZ_TEXT_BERT_H
#define GZ_TEXT_BERT_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/kernels.h"
#include "core/linear.h"
#include "core/safetensors.h"
#include "core/status.h"

typedef struct gz_bert gz_bert;

/*
** Load a BERT encoder whose tensors are named "<prefix>embeddings.word_embeddings.weight",
** "<prefix>encoder.layer.N.attention.self.query.weight", ... (prefix e.g. "text_encoder." for
** BLIP, "text_model." for Chinese-CLIP). Token-type embeddings are loaded when
** cfg->type_vocab_size > 0. with_cross = 1 also loads every layer's "crossattention.*" weights
** (key/value input size cfg->encoder_hidden_size). Every tensor's shape is checked against cfg.
** Returns GZ_OK and sets *out; GZ_EINVAL for a bad config or a wrong shape, GZ_ENOTFOUND for a
** missing tensor (message names it), GZ_ENOMEM. *out is NULL on error.
*/
gz_status gz_bert_load(gz_st_file *w, const char *prefix, const gz_text_config *cfg, int with_cross,
                       gz_bert **out);
void gz_bert_free(gz_bert *m);

/*
** Keep this encoder's packed copies (bf16, or fp32 panels: core/linear.h; made on the first
** forward that reads them) in cache, shared with every encoder that runs the same weights,
** instead of owning them: BLIP's text tower and ITM encoder load the same "text_encoder."
** layers. cache is borrowed (it must outlive m; NULL goes back to owned copies). Call before the
** first forward; results do not change.
*/
void gz_bert_share_packed(gz_bert *m, gz_packw_cache *cache);

int gz_bert_hidden_size(const gz_bert *m); /* D */
int gz_bert_num_layers(const gz_bert *m);  /* L */
int gz_bert_has_cross(const gz_bert *m);   /* 1 if loaded with cross-attention weights */

/* Floats needed for the cross-attention keys and values of Ti image tokens: 2 * L * Ti * D
** (0 on overflow). */
size_t gz_bert_cross_kv_floats(const gz_bert *m, int Ti);

/*
** Project image states enc (Ti, De) through every layer's cross-attention key and value
** projections on cx's threads and kernels (bf16 weights when cx asks for bf16): kv = (L, 2, Ti,
** D) (per layer keys then values), gz_bert_cross_kv_floats floats.
** GZ_EINVAL if the model has no cross-attention weights or Ti <= 0.
*/
gz_status gz_bert_cross_kv(const gz_bert *m, const gz_compute *cx, const float *enc, int Ti,
                           float *kv);

/* The image one text cross-attends to: keys/values from gz_bert_cross_kv, or (kv NULL) the
** image's states themselves, and each layer folds the texts' queries into its key and value
** weights instead (gz_bert_cross_fold_wins says when that is cheaper). */
typedef struct {
    const float *kv;     /* (L, 2, Ti, D), or NULL */
    const float *states; /* (Ti, De) when kv is NULL */
    int Ti;              /* image tokens (no image mask: every token is attended) */
} gz_bert_cross;

/* 1 when rows query rows attending once to Ti image tokens cost fewer multiply-adds folded
** (per layer and head, the rows' queries times the key weights, against the Ti states; the
** weighted states times the value weights) than with the image's keys and values projected:
** about when rows < D / H. A re-rank scores one short query (rows = its tokens) against each
** image once, and BLIP-384 then spends 1.4 GFLOP per layer projecting 577 tokens. */
int gz_bert_cross_fold_wins(const gz_bert *m, int Ti, int rows);

/*
** Run the encoder on B texts of T tokens with cx's threads and vector paths.
**   ids      (B, T) token ids, each in [0, vocab_size)
**   mask     (B, T) 1 = token, 0 = padding; NULL = all tokens real. Each row must keep its
**            first token (padding is on the right).
**   type_ids (B, T) token types or NULL (= all 0); ignored when the model has none
**   cross    (B) the image each text attends to (ITM mode), or NULL for text-only (ITC) mode.
**            Consecutive texts with the same image (kv and states pointers) share one
**            attention call. An image given by its states is folded with cx->gemm, and with
**            the reference path (cx->gemm 0) has its keys and values projected for the call.
**   hidden   (B, T, D) output: last hidden state (all positions, padding included)
**   all_hidden (L+1, B, T, D) optional: embeddings output then every layer's output
** GZ_EINVAL for bad sizes, ids out of range, T > max positions, an all-padding row, or cross
** given to a model without cross-attention; GZ_ENOMEM (scratch, attention scores). On error
** hidden and all_hidden hold no result.
*/
gz_status gz_bert_forward(const gz_bert *m, const gz_compute *cx, const int32_t *ids,
                          const int32_t *mask, const int32_t *type_ids, int B, int T,
                          const gz_bert_cross *cross, float *hidden, float *all_hidden);

/* The same forward for readers of each text's first token alone ([CLS]: the text embedding,
 * the ITM head): first (B, D) receives hidden[b][0]. Since no padding position's state is
 * read, padding rows are left out of every layer (a text's tokens attend to its tokens alone,
 * as the mask makes them do); and the last layer runs every token's keys and values and the
 * rest for the first rows alone (1/L less work for a long text). The same values, up to the
 * float rounding of a GEMM of other rows. Errors as gz_bert_forward. */
gz_status gz_bert_forward_first(const gz_bert *m, const gz_compute *cx, const int32_t *ids,
                                const int32_t *mask, const int32_t *type_ids, int B, int T,
                                const gz_bert_cross *cross, float *first);

#endif
