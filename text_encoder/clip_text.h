/* clip_text.h - CLIP text transformer (pre-LN, causal), as Hugging Face CLIPTextTransformer.
 *
 * Legend: B = texts in the batch, T = padded text length, D = hidden size, H = heads,
 *         Dh = D / H, F = MLP size, L = layers.
 *
 *   x = token[id] + position[t]                  (no embedding LayerNorm)
 *   x += out_proj(CausalAttn(LN1(x), padding mask))
 *   x += fc2(act(fc1(LN2(x))))                   (act from config: quick_gelu or gelu)
 *   last_hidden = final_layer_norm(x); pooled = last_hidden[pool index] (gz_clip_pool_index)
 *
 * Weights are borrowed from the gz_st_file (it must outlive the model). After loading the
 * model is immutable; forward passes may run concurrently (scratch per call). */
#ifndef GZ_TEXT_CLIP_TEXT_H
#define GZ_TEXT_CLIP_TEXT_H

#include <stdint.h>

#include "core/config.h"
#include "core/kernels.h"
#include "core/safetensors.h"
#include "core/status.h"

typedef struct gz_clip_text gz_clip_text;

/*
** Load "<prefix>embeddings.token_embedding.weight", "<prefix>encoder.layers.N.self_attn.q_proj.*",
** ..., "<prefix>final_layer_norm.*" (prefix "text_model." in CLIPModel checkpoints), shapes
** checked against cfg. GZ_EINVAL (bad config / shape), GZ_ENOTFOUND (missing tensor), GZ_ENOMEM.
** *out is NULL on error.
*/
gz_status gz_clip_text_load(gz_st_file *w, const char *prefix, const gz_text_config *cfg,
                            gz_clip_text **out);
void gz_clip_text_free(gz_clip_text *m);
int gz_clip_text_hidden_size(const gz_clip_text *m);
int gz_clip_text_num_layers(const gz_clip_text *m);

/*
** Hugging Face's EOS pooling position for one row of T ids: if eos_token_id == 2 (legacy
** openai configs) the first position of the largest id (torch.argmax); otherwise the first
** position holding eos_token_id, or 0 if there is none (argmax of an all-false row).
*/
int gz_clip_pool_index(const int32_t *ids, int T, int eos_token_id);

/*
** Run B texts of T tokens with cx's threads and vector paths.
**   ids  (B, T) in [0, vocab_size); mask (B, T) 1 = token, 0 = padding, or NULL (no padding)
**   hidden (B, T, D) output: final_layer_norm output at every position (padding included)
**   all_hidden (L+1, B, T, D) optional: embeddings, then each layer's output (before the
**   final LayerNorm), as HF's hidden_states
** GZ_EINVAL (bad sizes, ids out of range, T > max positions), GZ_ENOMEM (scratch, attention
** scores); on error hidden and all_hidden hold no result.
*/
gz_status gz_clip_text_forward(const gz_clip_text *m, const gz_compute *cx, const int32_t *ids,
                               const int32_t *mask, int B, int T, float *hidden, float *all_hidden);

/* The same forward for readers of the pooled rows alone (the text embedding): pooled (B, D)
 * receives hidden[b][gz_clip_pool_index(ids[b], T, eos_token_id)]. Only what reaches those
 * rows runs: each text's positions up to its pool index, padding left out (a later row never
 * reaches it through the causal mask, and padding keys are masked), and in the last layer the
 * keys and values of those rows and the rest for the pooled rows alone. The same values, up to
 * the float rounding of a GEMM of other rows. Errors as gz_clip_text_forward. */
gz_status gz_clip_text_forward_pooled(const gz_clip_text *m, const gz_compute *cx,
                                      const int32_t *ids, const int32_t *mask, int B, int T,
                                      int eos_token_id, float *pooled);

#endif
