/* vit.h - ViT image encoder of the BLIP, CLIP and Chinese-CLIP vision towers.
 *
 * Usage:
 *   gz_vit *v = NULL;
 *   if (gz_vit_load(weights, &cfg, &v) != GZ_OK) ...       // weights must outlive v
 *   gz_compute cx = gz_compute_make(0, 1);                 // all cores, vector paths
 *   gz_vit_encode(v, &cx, pixels, B, embeds, NULL, NULL, NULL, NULL);
 *   gz_vit_free(v);
 *
 * Legend: B = images, S = image side, p = patch side, P = tokens per image ((S/p)^2 patches
 *         + 1 class token), D = vision hidden size, L = layers, E = embedding (projection) size.
 * A loaded gz_vit is read-only: any number of threads may call gz_vit_encode at once
 * (each call allocates its own scratch). Weights are borrowed from the gz_st_file. */
#ifndef GZ_VISION_VIT_H
#define GZ_VISION_VIT_H

#include "core/config.h"
#include "core/kernels.h"
#include "core/safetensors.h"
#include "gaze.h"

typedef struct gz_vit gz_vit;

/* Bind the vision tower and its projection from w according to cfg (cfg->family picks the
 * tensor names). Every tensor's shape is checked against the config. w is borrowed and
 * must outlive the returned model. GZ_ENOTFOUND/GZ_EINVAL name the tensor; *out is NULL
 * on error. */
gz_status gz_vit_load(gz_st_file *w, const gz_model_config *cfg, gz_vit **out);
void gz_vit_free(gz_vit *v);

/* Run B images through the tower with cx's threads and vector paths.
 *   pixels      (B, 3, S, S) preprocessed, NCHW float32
 *   embeds      (B, E) L2-normalised projection, or NULL
 *   features    (B, E) unnormalised projection, or NULL
 *   last_hidden (B, P, D) or NULL. BLIP: post_layernorm on every token (the states ITM
 *               cross-attends to); CLIP/Chinese-CLIP: encoder output WITHOUT post-LN
 *               (HF last_hidden_state)
 *   all_hidden  (L+1, B, P, D) or NULL: [0] = encoder input, [l] = output of layer l
 *   pooled      (B, D) or NULL. CLIP: post_layernorm(x[:, 0]); BLIP: last_hidden[:, 0]
 * Large batches are processed in chunks; rows are independent of the batch they are in up
 * to float rounding of the GEMMs. Without last_hidden and all_hidden, the last block runs the
 * CLS rows alone past its keys and values (the only rows the other outputs read): the same
 * values, 1/L less work; asking for last_hidden runs every row (the reference). GZ_EINVAL for bad
 * arguments, GZ_ENOMEM if scratch (or the attention's) cannot be allocated; on error no output
 * holds a result. */
gz_status gz_vit_encode(const gz_vit *v, const gz_compute *cx, const float *pixels, int B,
                        float *embeds, float *features, float *last_hidden, float *all_hidden,
                        float *pooled);

/* Sizes: image side S, tokens P, hidden size D, layers L, embedding size E. */
int gz_vit_image_size(const gz_vit *v);
int gz_vit_tokens(const gz_vit *v);
int gz_vit_hidden(const gz_vit *v);
int gz_vit_layers(const gz_vit *v);
int gz_vit_dim(const gz_vit *v);

#endif
