/* text_tower.h - one interface over the text towers: BERT (BLIP in ITC mode, Chinese-CLIP) and
 * the CLIP text transformer, each with its pooling and projection.
 *
 * Usage:
 *   gz_text_tower *t = NULL;
 *   if (gz_text_tower_load(weights, &cfg, &t) != GZ_OK) { ... gz_last_error() ... }
 *   float *e = malloc((size_t)B * gz_text_tower_dim(t) * sizeof *e);
 *   gz_compute cx = gz_compute_make(0, 1);                          // all cores, vector paths
 *   gz_text_tower_encode(t, &cx, ids, mask, B, T, e, NULL, NULL, NULL); // rows L2-normalised
 *   gz_text_tower_free(t);
 *
 * Legend: B = texts, T = padded length, D = hidden size, E = projection size, L = layers.
 * Pooling (as Hugging Face): BLIP and Chinese-CLIP take position 0 ([CLS]); CLIP takes the EOS
 * position (gz_clip_pool_index). Projections: BLIP text_proj (with bias), CLIP/Chinese-CLIP
 * text_projection (no bias). Normalisation: x / max(||x||, 1e-12).
 *
 * Thread safety: after loading, a tower is immutable; gz_text_tower_encode may be called from
 * several threads at once on the same tower. */
#ifndef GZ_TEXT_TEXT_TOWER_H
#define GZ_TEXT_TEXT_TOWER_H

#include <stdint.h>

#include "core/config.h"
#include "core/kernels.h"
#include "core/linear.h"
#include "core/safetensors.h"
#include "core/status.h"

typedef struct gz_text_tower gz_text_tower;

/*
** Load the text tower of cfg->family from w: BLIP "text_encoder." + "text_proj", Chinese-CLIP
** "text_model." + "text_projection", CLIP "text_model." + "text_projection". Weights are
** borrowed: w must outlive the tower. GZ_EUNSUPPORTED for an unknown family, GZ_EINVAL /
** GZ_ENOTFOUND for wrong or missing tensors (message names the tensor), GZ_ENOMEM.
** *out is NULL on error.
*/
gz_status gz_text_tower_load(gz_st_file *w, const gz_model_config *cfg, gz_text_tower **out);
void gz_text_tower_free(gz_text_tower *t);
/* Keep the tower's packed weight copies in cache (borrowed, must outlive t), shared with the
** other towers of the model that run the same weights: see gz_bert_share_packed. BERT towers
** only; a CLIP text tower shares nothing and keeps its own. Call before the first encode. */
void gz_text_tower_share_packed(gz_text_tower *t, gz_packw_cache *cache);

int gz_text_tower_dim(const gz_text_tower *t);         /* E: projection size */
int gz_text_tower_hidden_size(const gz_text_tower *t); /* D */
int gz_text_tower_num_layers(const gz_text_tower *t);  /* L */
int gz_text_tower_max_positions(const gz_text_tower *t);

/*
** Encode B texts of T tokens (right-padded to the longest) with cx's threads and vector paths.
**   ids, mask   (B, T) int32; mask 1 = token, 0 = padding, or NULL (no padding)
**   embeds      (B, E) L2-normalised projections (required)
**   features    (B, E) projections before normalisation, or NULL
**   last_hidden (B, T, D) last hidden state (CLIP: after final_layer_norm), or NULL
**   all_hidden  (L+1, B, T, D) embeddings output then every layer's output, or NULL
** Each text's result does not depend on the others in the batch (up to float rounding).
** Token types are 0 (single segment). GZ_EINVAL (bad sizes, ids outside the vocabulary, T above
** the model's positions), GZ_ENOMEM (scratch, attention scores). On error no output holds a
** result.
*/
gz_status gz_text_tower_encode(const gz_text_tower *t, const gz_compute *cx, const int32_t *ids,
                               const int32_t *mask, int B, int T, float *embeds, float *features,
                               float *last_hidden, float *all_hidden);

#endif
