/* config.c - config.json / preprocessor_config.json parsing with transformers 4.40 defaults.
 *
 * transformers writes only the keys that differ from the config class defaults, so each family
 * starts from a table of class defaults (BlipTextConfig, BlipVisionConfig, CLIPTextConfig,
 * CLIPVisionConfig, ChineseCLIPTextConfig, ChineseCLIPVisionConfig and the matching image
 * processors) and the file's keys override them. */
#include "core/config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"

/* config.json and preprocessor_config.json are a few KiB; anything near this is not a config. */
#define CONFIG_MAX_BYTES ((size_t)64 << 20)

#define OPENAI_CLIP_MEAN                                                                           \
    { 0.48145466f, 0.4578275f, 0.40821073f }
#define OPENAI_CLIP_STD                                                                            \
    { 0.26862954f, 0.26130258f, 0.27577711f }

/* ---- class defaults (transformers 4.40) ---- */

/* BlipTextConfig */
static const gz_text_config blip_text_defaults = {.hidden_size = 768,
                                                  .num_layers = 12,
                                                  .num_heads = 8,
                                                  .intermediate_size = 3072,
                                                  .vocab_size = 30524,
                                                  .max_position_embeddings = 512,
                                                  .type_vocab_size = 0,
                                                  .act = GZ_ACT_GELU,
                                                  .layer_norm_eps = 1e-12f,
                                                  .encoder_hidden_size = 768,
                                                  .pad_token_id = 0,
                                                  .bos_token_id = 30522,
                                                  .eos_token_id = 2};
/* BlipVisionConfig */
static const gz_vision_config blip_vision_defaults = {.hidden_size = 768,
                                                      .num_layers = 12,
                                                      .num_heads = 12,
                                                      .intermediate_size = 3072,
                                                      .image_size = 384,
                                                      .patch_size = 16,
                                                      .num_channels = 3,
                                                      .act = GZ_ACT_GELU,
                                                      .layer_norm_eps = 1e-5f};
/* CLIPTextConfig */
static const gz_text_config clip_text_defaults = {.hidden_size = 512,
                                                  .num_layers = 12,
                                                  .num_heads = 8,
                                                  .intermediate_size = 2048,
                                                  .vocab_size = 49408,
                                                  .max_position_embeddings = 77,
                                                  .type_vocab_size = 0,
                                                  .act = GZ_ACT_QUICK_GELU,
                                                  .layer_norm_eps = 1e-5f,
                                                  .encoder_hidden_size = 0,
                                                  .pad_token_id = 1,
                                                  .bos_token_id = 49406,
                                                  .eos_token_id = 49407};
/* CLIPVisionConfig, and ChineseCLIPVisionConfig (same defaults) */
static const gz_vision_config clip_vision_defaults = {.hidden_size = 768,
                                                      .num_layers = 12,
                                                      .num_heads = 12,
                                                      .intermediate_size = 3072,
                                                      .image_size = 224,
                                                      .patch_size = 32,
                                                      .num_channels = 3,
                                                      .act = GZ_ACT_QUICK_GELU,
                                                      .layer_norm_eps = 1e-5f};
/* ChineseCLIPTextConfig (bos/eos are None: -1 here) */
static const gz_text_config cnclip_text_defaults = {.hidden_size = 768,
                                                    .num_layers = 12,
                                                    .num_heads = 12,
                                                    .intermediate_size = 3072,
                                                    .vocab_size = 30522,
                                                    .max_position_embeddings = 512,
                                                    .type_vocab_size = 2,
                                                    .act = GZ_ACT_GELU,
                                                    .layer_norm_eps = 1e-12f,
                                                    .encoder_hidden_size = 0,
                                                    .pad_token_id = 0,
                                                    .bos_token_id = -1,
                                                    .eos_token_id = -1};

const char *gz_act_name(gz_act a) {
    switch (a) {
    case GZ_ACT_GELU: return "gelu";
    case GZ_ACT_GELU_TANH: return "gelu_tanh";
    case GZ_ACT_QUICK_GELU: return "quick_gelu";
    case GZ_ACT_RELU: return "relu";
    }
    return "?";
}

/* ---- typed getters: absent key (or null for nullable ones) keeps the default ---- */

static gz_status get_int(const json_t *o, const char *key, int *v, int nullable, const char *path,
                         const char *sect) {
    const json_t *j = json_object_get(o, key);
    if (!j) return GZ_OK;
    if (json_is_null(j) && nullable) {
        *v = -1;
        return GZ_OK;
    }
    if (!json_is_integer(j) || json_integer_value(j) < (nullable ? -1 : 0) ||
        json_integer_value(j) > 0x7fffffff)
        return GZ_FAIL(GZ_EINVAL, "%s: %s%s is not a valid integer", path, sect, key);
    *v = (int)json_integer_value(j);
    return GZ_OK;
}

static gz_status get_num(const json_t *o, const char *key, double *v, const char *path,
                         const char *sect) {
    const json_t *j = json_object_get(o, key);
    if (!j) return GZ_OK;
    if (!json_is_number(j) || !isfinite(json_number_value(j)))
        return GZ_FAIL(GZ_EINVAL, "%s: %s%s is not a number", path, sect, key);
    *v = json_number_value(j);
    return GZ_OK;
}

static gz_status get_bool(const json_t *o, const char *key, int *v, const char *path) {
    const json_t *j = json_object_get(o, key);
    if (!j || json_is_null(j)) return GZ_OK;
    if (!json_is_boolean(j)) return GZ_FAIL(GZ_EINVAL, "%s: %s is not true/false", path, key);
    *v = json_is_true(j);
    return GZ_OK;
}

static gz_status get_act(const json_t *o, gz_act *act, const char *path, const char *sect) {
    const json_t *j = json_object_get(o, "hidden_act");
    if (!j) return GZ_OK;
    const char *s = json_string_value(j);
    if (!s) return GZ_FAIL(GZ_EINVAL, "%s: %shidden_act is not a string", path, sect);
    if (strcmp(s, "gelu") == 0)
        *act = GZ_ACT_GELU;
    else if (strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0)
        *act = GZ_ACT_GELU_TANH;
    else if (strcmp(s, "quick_gelu") == 0)
        *act = GZ_ACT_QUICK_GELU;
    else if (strcmp(s, "relu") == 0)
        *act = GZ_ACT_RELU;
    else
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "%s: %shidden_act '%s' is not supported (gelu, gelu_new, "
                       "gelu_pytorch_tanh, quick_gelu, relu)",
                       path, sect, s);
    return GZ_OK;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        gz_status st_ = (expr);                                                                    \
        if (st_ != GZ_OK) return st_;                                                              \
    } while (0)

/* A sub-config absent or null (a config saved with text_config=None) keeps the class defaults,
 * as the transformers config classes do. */
static gz_status parse_text(const json_t *o, gz_text_config *t, gz_family fam, const char *path,
                            const char *sect) {
    if (!o || json_is_null(o)) return GZ_OK;
    if (!json_is_object(o))
        return GZ_FAIL(GZ_EINVAL, "%s: %.*s is not an object", path, (int)strlen(sect) - 1, sect);
    TRY(get_int(o, "hidden_size", &t->hidden_size, 0, path, sect));
    TRY(get_int(o, "num_hidden_layers", &t->num_layers, 0, path, sect));
    TRY(get_int(o, "num_attention_heads", &t->num_heads, 0, path, sect));
    TRY(get_int(o, "intermediate_size", &t->intermediate_size, 0, path, sect));
    TRY(get_int(o, "vocab_size", &t->vocab_size, 0, path, sect));
    TRY(get_int(o, "max_position_embeddings", &t->max_position_embeddings, 0, path, sect));
    if (fam == GZ_FAMILY_CHINESE_CLIP)
        TRY(get_int(o, "type_vocab_size", &t->type_vocab_size, 0, path, sect));
    if (fam == GZ_FAMILY_BLIP)
        TRY(get_int(o, "encoder_hidden_size", &t->encoder_hidden_size, 0, path, sect));
    TRY(get_act(o, &t->act, path, sect));
    double eps = t->layer_norm_eps;
    TRY(get_num(o, "layer_norm_eps", &eps, path, sect));
    t->layer_norm_eps = (float)eps;
    TRY(get_int(o, "pad_token_id", &t->pad_token_id, 1, path, sect));
    TRY(get_int(o, "bos_token_id", &t->bos_token_id, 1, path, sect));
    TRY(get_int(o, "eos_token_id", &t->eos_token_id, 1, path, sect));
    return GZ_OK;
}

static gz_status parse_vision(const json_t *o, gz_vision_config *v, gz_family fam, const char *path,
                              const char *sect) {
    if (!o || json_is_null(o)) return GZ_OK;
    if (!json_is_object(o))
        return GZ_FAIL(GZ_EINVAL, "%s: %.*s is not an object", path, (int)strlen(sect) - 1, sect);
    TRY(get_int(o, "hidden_size", &v->hidden_size, 0, path, sect));
    TRY(get_int(o, "num_hidden_layers", &v->num_layers, 0, path, sect));
    TRY(get_int(o, "num_attention_heads", &v->num_heads, 0, path, sect));
    TRY(get_int(o, "intermediate_size", &v->intermediate_size, 0, path, sect));
    TRY(get_int(o, "image_size", &v->image_size, 0, path, sect));
    TRY(get_int(o, "patch_size", &v->patch_size, 0, path, sect));
    /* BlipVisionEmbeddings hard-codes 3 input channels. */
    if (fam != GZ_FAMILY_BLIP) TRY(get_int(o, "num_channels", &v->num_channels, 0, path, sect));
    TRY(get_act(o, &v->act, path, sect));
    double eps = v->layer_norm_eps;
    TRY(get_num(o, "layer_norm_eps", &eps, path, sect));
    v->layer_norm_eps = (float)eps;
    return GZ_OK;
}

/* Bounds on the sizes a config may declare, far above any released checkpoint: every size
 * product later computed in int (patches = side * side, hidden * intermediate ...) stays in
 * range, so a hostile config is refused here, not overflowed (gaze info printed a negative
 * patch count for image_size 2147483646). */
#define MAX_WIDTH (1 << 16)     /* hidden_size, intermediate_size, heads */
#define MAX_LAYERS 1024         /* num_hidden_layers */
#define MAX_IMAGE_SIDE 16384    /* image_size, pixels per side */
#define MAX_VOCAB (1 << 24)     /* vocab_size */
#define MAX_POSITIONS (1 << 20) /* max_position_embeddings */

static gz_status check_dims(const char *path, const char *what, int hidden, int layers, int heads,
                            int inter, float eps) {
    if (hidden <= 0 || layers <= 0 || heads <= 0 || inter <= 0)
        return GZ_FAIL(GZ_EINVAL, "%s: %s sizes must be positive", path, what);
    if (hidden > MAX_WIDTH || inter > MAX_WIDTH || heads > MAX_WIDTH || layers > MAX_LAYERS)
        return GZ_FAIL(GZ_EINVAL,
                       "%s: %s sizes above the limits (hidden_size and intermediate_size at "
                       "most %d, num_hidden_layers at most %d)",
                       path, what, MAX_WIDTH, MAX_LAYERS);
    if (hidden % heads != 0)
        return GZ_FAIL(GZ_EINVAL,
                       "%s: %s hidden_size %d is not a multiple of num_attention_heads %d", path,
                       what, hidden, heads);
    if (!(eps > 0.0f)) return GZ_FAIL(GZ_EINVAL, "%s: %s layer_norm_eps must be > 0", path, what);
    return GZ_OK;
}

static gz_status parse_model(const json_t *root, const char *path, gz_model_config *out) {
    if (!json_is_object(root)) return GZ_FAIL(GZ_EINVAL, "%s: not a JSON object", path);
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    if (!mt)
        return GZ_FAIL(GZ_EINVAL,
                       "%s: missing \"model_type\" (supported: blip, clip, "
                       "chinese_clip)",
                       path);
    memset(out, 0, sizeof *out);
    double proj = 0;
    if (strcmp(mt, "blip") == 0) {
        out->family = GZ_FAMILY_BLIP;
        out->text = blip_text_defaults;
        out->vision = blip_vision_defaults;
        proj = 256; /* BlipConfig.image_text_hidden_size */
    } else if (strcmp(mt, "clip") == 0) {
        out->family = GZ_FAMILY_CLIP;
        out->text = clip_text_defaults;
        out->vision = clip_vision_defaults;
        proj = 512;
    } else if (strcmp(mt, "chinese_clip") == 0) {
        out->family = GZ_FAMILY_CHINESE_CLIP;
        out->text = cnclip_text_defaults;
        out->vision = clip_vision_defaults;
        proj = 512;
    } else {
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "%s: model_type '%s' is not supported (supported: blip, clip, chinese_clip)",
                       path, mt);
    }
    snprintf(out->model_type, sizeof out->model_type, "%s", mt);
    const json_t *arch = json_object_get(root, "architectures");
    if (json_is_array(arch) && json_is_string(json_array_get(arch, 0)))
        snprintf(out->architecture, sizeof out->architecture, "%s",
                 json_string_value(json_array_get(arch, 0)));
    gz_family fam = out->family;
    TRY(parse_text(json_object_get(root, "text_config"), &out->text, fam, path, "text_config."));
    TRY(parse_vision(json_object_get(root, "vision_config"), &out->vision, fam, path,
                     "vision_config."));
    /* Old CLIP configs carry *_config_dict, which CLIPConfig lets override *_config. */
    const json_t *td = json_object_get(root, "text_config_dict");
    const json_t *vd = json_object_get(root, "vision_config_dict");
    if (fam != GZ_FAMILY_BLIP && json_is_object(td))
        TRY(parse_text(td, &out->text, fam, path, "text_config_dict."));
    if (fam != GZ_FAMILY_BLIP && json_is_object(vd))
        TRY(parse_vision(vd, &out->vision, fam, path, "vision_config_dict."));
    /* BlipConfig sets text_config.encoder_hidden_size = vision_config.hidden_size. */
    if (fam == GZ_FAMILY_BLIP) out->text.encoder_hidden_size = out->vision.hidden_size;
    TRY(get_num(root, fam == GZ_FAMILY_BLIP ? "image_text_hidden_size" : "projection_dim", &proj,
                path, ""));
    if (proj < 1 || proj > 1e6 || proj != floor(proj))
        return GZ_FAIL(GZ_EINVAL, "%s: bad projection size %g", path, proj);
    out->projection_dim = (int)proj;
    double ls = 2.6592;
    TRY(get_num(root, "logit_scale_init_value", &ls, path, ""));
    out->logit_scale_init = (float)ls;
    const gz_text_config *t = &out->text;
    const gz_vision_config *v = &out->vision;
    TRY(check_dims(path, "text", t->hidden_size, t->num_layers, t->num_heads, t->intermediate_size,
                   t->layer_norm_eps));
    TRY(check_dims(path, "vision", v->hidden_size, v->num_layers, v->num_heads,
                   v->intermediate_size, v->layer_norm_eps));
    if (t->vocab_size <= 0 || t->max_position_embeddings <= 0)
        return GZ_FAIL(GZ_EINVAL, "%s: text vocab_size and max_position_embeddings must be > 0",
                       path);
    if (t->vocab_size > MAX_VOCAB || t->max_position_embeddings > MAX_POSITIONS)
        return GZ_FAIL(GZ_EINVAL,
                       "%s: text vocab_size %d or max_position_embeddings %d above the limits "
                       "(%d, %d)",
                       path, t->vocab_size, t->max_position_embeddings, MAX_VOCAB, MAX_POSITIONS);
    if (v->image_size > MAX_IMAGE_SIDE)
        return GZ_FAIL(GZ_EINVAL, "%s: vision image_size %d above the limit %d", path,
                       v->image_size, MAX_IMAGE_SIDE);
    if (v->patch_size <= 0 || v->image_size < v->patch_size || v->image_size % v->patch_size ||
        v->num_channels <= 0)
        return GZ_FAIL(GZ_EINVAL,
                       "%s: vision image_size %d must be a positive multiple of patch_size %d",
                       path, v->image_size, v->patch_size);
    return GZ_OK;
}

static gz_status load_json(const char *path, json_t **out) {
    *out = NULL;
    unsigned char *text;
    size_t len;
    gz_status st = gz_read_file(path, CONFIG_MAX_BYTES, &text, &len);
    /* A missing file has always been GZ_EIO here: callers name the file, not a lookup. */
    if (st == GZ_ENOTFOUND) st = GZ_EIO;
    if (st != GZ_OK) return st;
    json_error_t err;
    json_t *root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (!root)
        return GZ_FAIL(GZ_EINVAL, "%s: invalid JSON at line %d column %d: %s", path, err.line,
                       err.column, err.text);
    *out = root;
    return GZ_OK;
}

gz_status gz_config_load(const char *path, gz_model_config *out) {
    if (!path || !out) return GZ_FAIL(GZ_EINVAL, "gz_config_load: NULL argument");
    json_t *root;
    gz_status s = load_json(path, &root);
    if (s != GZ_OK) return s;
    s = parse_model(root, path, out);
    json_decref(root);
    return s;
}

/* ---- preprocessor_config.json ---- */

/* Read "size"/"crop_size": an int (square, or shortest edge when shortest_ok) or an object
 * with "shortest_edge" or "height"/"width". */
static gz_status get_size(const json_t *o, const char *key, int shortest_ok, int *shortest, int *h,
                          int *w, const char *path) {
    const json_t *j = json_object_get(o, key);
    if (!j || json_is_null(j)) return GZ_OK;
    if (json_is_integer(j)) {
        json_int_t x = json_integer_value(j);
        if (x <= 0 || x > 1000000)
            return GZ_FAIL(GZ_EINVAL, "%s: %s %lld is out of range", path, key, (long long)x);
        if (shortest_ok) {
            *shortest = (int)x;
        } else {
            *h = *w = (int)x;
        }
        return GZ_OK;
    }
    if (!json_is_object(j))
        return GZ_FAIL(GZ_EINVAL, "%s: %s is neither an integer nor an object", path, key);
    int se = 0, hh = 0, ww = 0;
    TRY(get_int(j, "shortest_edge", &se, 0, path, key));
    TRY(get_int(j, "height", &hh, 0, path, key));
    TRY(get_int(j, "width", &ww, 0, path, key));
    if (se > 0 && shortest_ok) {
        *shortest = se;
        return GZ_OK;
    }
    if (hh > 0 && ww > 0) {
        if (shortest_ok) *shortest = 0;
        *h = hh;
        *w = ww;
        return GZ_OK;
    }
    return GZ_FAIL(GZ_EINVAL, "%s: %s needs %s\"height\" and \"width\"", path, key,
                   shortest_ok ? "\"shortest_edge\" or " : "");
}

static gz_status get_triple(const json_t *o, const char *key, float v[3], const char *path) {
    const json_t *j = json_object_get(o, key);
    if (!j || json_is_null(j)) return GZ_OK;
    if (json_is_number(j)) { /* a single value applies to all channels */
        v[0] = v[1] = v[2] = (float)json_number_value(j);
        return GZ_OK;
    }
    if (!json_is_array(j) || json_array_size(j) != 3)
        return GZ_FAIL(GZ_EINVAL, "%s: %s must be a list of 3 numbers", path, key);
    for (size_t i = 0; i < 3; i++) {
        const json_t *e = json_array_get(j, i);
        if (!json_is_number(e))
            return GZ_FAIL(GZ_EINVAL, "%s: %s[%zu] is not a number", path, key, i);
        v[i] = (float)json_number_value(e);
    }
    return GZ_OK;
}

static gz_status parse_preproc(const json_t *o, const char *path, gz_family family,
                               gz_preproc_config *p) {
    if (!json_is_object(o)) return GZ_FAIL(GZ_EINVAL, "%s: not a JSON object", path);
    static const float mean[3] = OPENAI_CLIP_MEAN, std[3] = OPENAI_CLIP_STD;
    memset(p, 0, sizeof *p);
    p->do_resize = 1;
    p->do_rescale = 1;
    p->rescale_factor = 1.0 / 255.0;
    p->do_normalize = 1;
    memcpy(p->image_mean, mean, sizeof mean);
    memcpy(p->image_std, std, sizeof std);
    p->resample = 3;
    p->do_convert_rgb = 1;
    if (family == GZ_FAMILY_BLIP) {
        /* BlipImageProcessor: exact 384x384 resize, no crop */
        p->size_height = p->size_width = 384;
        p->do_center_crop = 0;
        p->crop_height = p->crop_width = 384;
    } else if (family == GZ_FAMILY_CLIP || family == GZ_FAMILY_CHINESE_CLIP) {
        /* CLIPImageProcessor / ChineseCLIPImageProcessor */
        p->size_shortest_edge = 224;
        p->do_center_crop = 1;
        p->crop_height = p->crop_width = 224;
    } else {
        return GZ_FAIL(GZ_EINVAL, "%s: unknown model family %d", path, (int)family);
    }
    TRY(get_bool(o, "do_resize", &p->do_resize, path));
    TRY(get_size(o, "size", family != GZ_FAMILY_BLIP, &p->size_shortest_edge, &p->size_height,
                 &p->size_width, path));
    TRY(get_bool(o, "do_center_crop", &p->do_center_crop, path));
    if (family == GZ_FAMILY_BLIP) { /* no crop: keep crop_* equal to the resize target */
        p->crop_height = p->size_height;
        p->crop_width = p->size_width;
    }
    TRY(get_size(o, "crop_size", 0, NULL, &p->crop_height, &p->crop_width, path));
    TRY(get_bool(o, "do_rescale", &p->do_rescale, path));
    TRY(get_num(o, "rescale_factor", &p->rescale_factor, path, ""));
    TRY(get_bool(o, "do_normalize", &p->do_normalize, path));
    TRY(get_triple(o, "image_mean", p->image_mean, path));
    TRY(get_triple(o, "image_std", p->image_std, path));
    for (int i = 0; i < 3; i++)
        if (!(p->image_std[i] != 0.0f))
            return GZ_FAIL(GZ_EINVAL, "%s: image_std[%d] is zero", path, i);
    TRY(get_int(o, "resample", &p->resample, 0, path, ""));
    TRY(get_bool(o, "do_convert_rgb", &p->do_convert_rgb, path));
    return GZ_OK;
}

gz_status gz_preproc_config_load(const char *path, gz_family family, gz_preproc_config *out) {
    if (!path || !out) return GZ_FAIL(GZ_EINVAL, "gz_preproc_config_load: NULL argument");
    json_t *root;
    gz_status s = load_json(path, &root);
    if (s != GZ_OK) return s;
    s = parse_preproc(root, path, family, out);
    json_decref(root);
    return s;
}
