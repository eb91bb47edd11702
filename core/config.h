/* config.h - typed model and preprocessor configuration from Hugging Face JSON files.
 *
 * config.json written by transformers only holds values that differ from the config class
 * defaults, so every missing key takes the default of the matching transformers class
 * (BlipConfig/BlipTextConfig/BlipVisionConfig, CLIPConfig/..., ChineseCLIPConfig/...,
 * transformers 4.40). Unknown model_type -> GZ_EUNSUPPORTED listing the supported ones. */
#ifndef GZ_CORE_CONFIG_H
#define GZ_CORE_CONFIG_H

#include "core/kernels.h" /* gz_act */
#include "core/status.h"

typedef struct {
    int hidden_size, num_layers, num_heads, intermediate_size;
    int vocab_size, max_position_embeddings, type_vocab_size; /* type_vocab_size 0 = none */
    gz_act act;
    float layer_norm_eps;
    int encoder_hidden_size; /* BLIP: vision hidden size for cross-attention; else 0 */
    int pad_token_id, bos_token_id, eos_token_id;
} gz_text_config;

typedef struct {
    int hidden_size, num_layers, num_heads, intermediate_size;
    int image_size, patch_size, num_channels;
    gz_act act;
    float layer_norm_eps;
} gz_vision_config;

typedef struct {
    gz_family family;
    char model_type[32];   /* "blip", "clip", "chinese_clip" */
    char architecture[64]; /* architectures[0] or "" */
    gz_text_config text;
    gz_vision_config vision;
    int projection_dim;     /* BLIP: image_text_hidden_size; CLIP: projection_dim */
    float logit_scale_init; /* logit_scale_init_value (the weight file holds the real one) */
} gz_model_config;

/* Parse a config.json. GZ_EIO if unreadable, GZ_EINVAL for bad JSON or values (message
 * names the file and key), GZ_EUNSUPPORTED for an unknown model_type. */
gz_status gz_config_load(const char *path, gz_model_config *out);
const char *gz_act_name(gz_act a);

typedef struct {
    int do_resize;
    int size_shortest_edge;      /* > 0: CLIP-style, short side -> this, keep aspect */
    int size_height, size_width; /* used when size_shortest_edge == 0 */
    int do_center_crop;
    int crop_height, crop_width;
    int do_rescale;
    double rescale_factor;
    int do_normalize;
    float image_mean[3], image_std[3];
    int resample; /* PIL filter id; 3 = BICUBIC (the only one we support) */
    int do_convert_rgb;
} gz_preproc_config;

/* Parse preprocessor_config.json (unknown keys ignored). family picks the defaults. */
gz_status gz_preproc_config_load(const char *path, gz_family family, gz_preproc_config *out);

#endif
