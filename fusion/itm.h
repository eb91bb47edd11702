/* itm.h - BLIP image-text matching: the BLIP text encoder in multimodal mode (cross-attention
 * to the image's patch states) and the ITM head.
 *
 * Usage:
 *   gz_itm *m = NULL;
 *   gz_itm_load(weights, &cfg, &m);                       // BLIP only
 *   gz_itm_image *im = NULL;
 *   gz_itm_prepare_image(m, &cx, vision_last_hidden, Ti, &im); // once per image
 *   gz_compute cx = gz_compute_make(0, 1);                // all cores, vector paths
 *   gz_itm_score(m, &cx, im, ids, mask, B, T, logits, NULL, NULL); // logits (B, 2)
 *   float p = gz_itm_prob(logits + 2 * b);                // P(match) of text b
 *   // one text against n images: gz_itm_score_pairs(m, &cx, images, ids_repeated, ...)
 *   gz_itm_image_free(im); gz_itm_free(m);
 *
 * Legend: B = texts, T = padded length, D = text hidden size, L = text layers,
 *         Ti = image tokens (class token + patches), Dv = vision hidden (= encoder_hidden_size).
 *
 * Input convention: ids are used as given (Hugging Face: [CLS] ... [SEP]). The original
 * Salesforce BLIP replaces the first id by [ENC] (id from the tokenizer, 30523 for
 * bert-base-uncased + [DEC]/[ENC]); callers wanting that pass enc_token_id to
 * gz_itm_score_ex.
 *
 * Thread safety: a loaded gz_itm and a prepared gz_itm_image are immutable; scoring may run
 * concurrently from several threads (scratch per call). */
#ifndef GZ_FUSION_ITM_H
#define GZ_FUSION_ITM_H

#include <stdint.h>

#include "core/config.h"
#include "core/kernels.h"
#include "core/linear.h"
#include "core/safetensors.h"
#include "core/status.h"

typedef struct gz_itm gz_itm;
typedef struct gz_itm_image gz_itm_image;

/*
** Load the BLIP text encoder with cross-attention ("text_encoder.*") and "itm_head" from w
** (borrowed: w must outlive m). GZ_EUNSUPPORTED if cfg is not a BLIP model (CLIP and
** Chinese-CLIP have no fusion); GZ_EINVAL / GZ_ENOTFOUND for wrong or missing tensors;
** GZ_ENOMEM. *out is NULL on error.
*/
gz_status gz_itm_load(gz_st_file *w, const gz_model_config *cfg, gz_itm **out);
void gz_itm_free(gz_itm *m);
/* Keep the encoder's packed weight copies in cache (borrowed, must outlive m): its
** self-attention and feed-forward weights are the text tower's, so one copy serves both
** (gz_bert_share_packed). Call before the first score. */
void gz_itm_share_packed(gz_itm *m, gz_packw_cache *cache);
int gz_itm_hidden_size(const gz_itm *m);       /* D */
int gz_itm_image_hidden_size(const gz_itm *m); /* Dv */

/*
** Compute an image's cross-attention keys and values for every layer, once, to be reused for
** all texts scored against it. image_states (Ti, Dv) = BLIP vision last_hidden_state of one
** image (post-LayerNorm, class token first), on cx's threads. GZ_EINVAL (Ti <= 0), GZ_ENOMEM.
*/
gz_status gz_itm_prepare_image(const gz_itm *m, const gz_compute *cx, const float *image_states,
                               int Ti, gz_itm_image **out);
/* gz_itm_prepare_image into *im's memory when *im already holds an image of Ti tokens (else
** a new one is made, *im freed first): tens of megabytes an image (BLIP-base at 384 px: 42 MB)
** are then not mapped and zeroed again for every image of a re-rank. On error *im is freed and
** NULL. */
gz_status gz_itm_prepare_image_reuse(const gz_itm *m, const gz_compute *cx,
                                     const float *image_states, int Ti, gz_itm_image **im);
/* An image kept as a copy of its states (Ti, Dv) instead of its keys and values, into *im's
** memory when it already is one of Ti tokens (else *im is freed and a new one made): each
** text's cross-attention then folds its queries into the key and value weights (with
** cx->gemm; the reference path projects the keys and values per call), which costs less
** when few text rows attend to the image (gz_bert_cross_fold_wins). 1.8 MB an image for
** BLIP-384 instead of 42 MB. On error *im is freed and NULL. */
gz_status gz_itm_prepare_image_states(const gz_itm *m, const float *image_states, int Ti,
                                      gz_itm_image **im);
/* For an image that one text of T tokens is scored against (a re-rank: one query, many
** images): gz_itm_prepare_image_states when folding is cheaper for T rows and cx->gemm is
** set, else gz_itm_prepare_image_reuse. BLIP-384 with a query of 9 tokens: 2.5 GFLOP an image
** instead of 16. */
gz_status gz_itm_prepare_image_once(const gz_itm *m, const gz_compute *cx,
                                    const float *image_states, int Ti, int T, gz_itm_image **im);
void gz_itm_image_free(gz_itm_image *im);

/*
** Score B texts (ids, mask (B, T) int32; mask NULL = no padding) against one prepared image,
** with cx's threads and vector paths.
**   logits      (B, 2) ITM head output [no match, match] (required)
**   cls         (B, D) multimodal hidden state at position 0 (the head's input), or NULL
**   last_hidden (B, T, D) multimodal last hidden state, or NULL
** GZ_EINVAL (bad sizes, ids outside the vocabulary, T above max positions), GZ_ENOMEM
** (scratch, attention scores). On error no output holds a result.
*/
gz_status gz_itm_score(const gz_itm *m, const gz_compute *cx, const gz_itm_image *im,
                       const int32_t *ids, const int32_t *mask, int B, int T, float *logits,
                       float *cls, float *last_hidden);
/* As gz_itm_score; enc_token_id >= 0 replaces every text's first id by it (original BLIP's
** [ENC] convention), -1 uses the ids as given. */
gz_status gz_itm_score_ex(const gz_itm *m, const gz_compute *cx, const gz_itm_image *im,
                          const int32_t *ids, const int32_t *mask, int B, int T,
                          int32_t enc_token_id, float *logits, float *cls, float *last_hidden);

/*
** Score B (image, text) pairs in one batch: text row b of ids/mask (B, T) against images[b].
** For one text against n images pass the text's ids n times. Self-attention and the
** feed-forward layers run batched over all pairs; consecutive pairs with the same image share
** one cross-attention call. Outputs and errors as gz_itm_score_ex; results equal scoring each
** pair alone up to float rounding.
*/
gz_status gz_itm_score_pairs(const gz_itm *m, const gz_compute *cx,
                             const gz_itm_image *const *images, const int32_t *ids,
                             const int32_t *mask, int B, int T, int32_t enc_token_id, float *logits,
                             float *cls, float *last_hidden);

/* Match probability softmax(logits)[1] of one (2) logit pair. */
float gz_itm_prob(const float *logits);

#endif
