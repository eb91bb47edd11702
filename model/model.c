/* model.c - the gz_model facade of gaze.h: load a Hugging Face model directory, encode texts
 * and images, match and re-rank image-text pairs.
 *
 * Legend: n = texts or images in a call, E = embedding size (gz_model_dim), S = image size,
 *         P = vision tokens per image (patches + class token), D = vision hidden size,
 *         T = padded text length.
 *
 * Towers load lazily under the model's mutex (a text query never touches the vision
 * weights); once loaded they are immutable, so encoding may run from several threads. */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/config.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/kernels.h"
#include "core/linear.h" /* gz_cpu_has_bf16, gz_packw_cache */
#include "core/safetensors.h"
#include "core/threads.h"
#include "fusion/itm.h"
#include "fusion/score.h"
#include "gaze.h"
#include "model/model_internal.h"
#include "text_encoder/text_tower.h"
#include "text_encoder/tokenizer.h"
#include "vision_encoder/preprocess.h"
#include "vision_encoder/vit.h"

#ifndef GAZE_VERSION
#define GAZE_VERSION "0.0.0"
#endif

/* Texts tokenised and encoded per forward pass (bounds the padded batch). */
#define MODEL_TEXT_BATCH 64
/* Largest config JSON read for the fingerprint. */
#define MODEL_MAX_JSON (64u * 1024u * 1024u)

struct gz_model {
    char *dir;                                /* model directory (owned) */
    char *hub_id, *hub_revision, *hub_commit; /* Hub origin when loaded by id, else NULL (owned) */
    char *weights_path;                       /* resolved weights file or shard index (owned) */
    gz_model_params params;                   /* params.weights_file points at weights_path */
    gz_model_config cfg;
    gz_preproc_config pp;
    char fingerprint[65];        /* identity: configs, headers and the weights' content */
    char legacy_fingerprint[65]; /* configs and headers only (gaze before #15), for migration */
    float logit_scale;           /* exp(logit_scale) for CLIP-family; 1 for BLIP */
    gz_compute cx;        /* this model's threads and vector paths (params.n_threads, simd) */
    pthread_mutex_t lock; /* guards the lazily loaded members below */
    gz_st_file *weights;
    gz_tokenizer *tok;
    gz_text_tower *text;
    gz_vit *vit;
    gz_itm *itm;
    /* The packed copies (bf16, or fp32 panels) of the text tower and the ITM encoder, which run
     * the same BERT layers: one copy for both (owned; NULL without gaze's own kernels). */
    gz_packw_cache *packed;
    atomic_llong texts_encoded; /* texts through the text tower, for gz_model_texts_encoded */
};

/* Digest of config.json (+ preprocessor_config.json) bytes and the weights' sizes and
 * headers (fed by the format that owns them, gz_st_fingerprint): independent of the
 * directory's path. This is the legacy fingerprint, which databases made before issue #15
 * store: the bytes fed and their order must never change (tests/test_model_load.c pins
 * values). The fingerprint proper is XXH3-128 of "gaze-fp2", that digest and the content hash
 * of every weights file (gz_st_fingerprint_content): two checkpoints with equal shapes and
 * different weights (a fine-tune) are two models. */
static gz_status compute_fingerprint(gz_model *m, const char *config_path, const char *pp_path) {
    XXH3_state_t *h = XXH3_createState();
    if (!h) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    XXH3_128bits_reset(h);
    unsigned char *buf = NULL;
    size_t len = 0;
    gz_status st = gz_read_file(config_path, MODEL_MAX_JSON, &buf, &len);
    if (st == GZ_OK) {
        XXH3_128bits_update(h, &len, sizeof len);
        XXH3_128bits_update(h, buf, len);
        free(buf);
        buf = NULL;
    }
    if (st == GZ_OK && pp_path) {
        st = gz_read_file(pp_path, MODEL_MAX_JSON, &buf, &len);
        if (st == GZ_OK) {
            XXH3_128bits_update(h, &len, sizeof len);
            XXH3_128bits_update(h, buf, len);
            free(buf);
        }
    }
    if (st == GZ_OK) st = gz_st_fingerprint(m->weights_path, h);
    if (st == GZ_OK) {
        XXH128_hash_t d = XXH3_128bits_digest(h);
        snprintf(m->legacy_fingerprint, sizeof m->legacy_fingerprint, "%016llx%016llx",
                 (unsigned long long)d.high64, (unsigned long long)d.low64);
        XXH3_128bits_reset(h);
        XXH3_128bits_update(h, "gaze-fp2", 8);
        XXH3_128bits_update(h, m->legacy_fingerprint, 32);
        st = gz_st_fingerprint_content(m->weights_path, h);
    }
    if (st == GZ_OK) {
        XXH128_hash_t d = XXH3_128bits_digest(h);
        snprintf(m->fingerprint, sizeof m->fingerprint, "%016llx%016llx",
                 (unsigned long long)d.high64, (unsigned long long)d.low64);
    }
    XXH3_freeState(h);
    return st;
}

/* ===== lazy towers (call with m->lock held) ===== */

static gz_status need_tokenizer(gz_model *m) {
    if (m->tok) return GZ_OK;
    gz_tokenizer_params tp = gz_tokenizer_default_params();
    tp.clip_fast = m->params.clip_fast_tokenizer;
    return gz_tokenizer_load(m->dir, m->cfg.family, m->cfg.text.max_position_embeddings, &tp,
                             &m->tok);
}

static gz_status need_text(gz_model *m) {
    gz_status st = need_tokenizer(m);
    if (st != GZ_OK || m->text) return st;
    st = gz_text_tower_load(m->weights, &m->cfg, &m->text);
    if (st == GZ_OK && m->packed) gz_text_tower_share_packed(m->text, m->packed);
    return st;
}

static gz_status need_vision(gz_model *m) {
    if (m->vit) return GZ_OK;
    return gz_vit_load(m->weights, &m->cfg, &m->vit);
}

static gz_status need_itm(gz_model *m) {
    if (m->cfg.family != GZ_FAMILY_BLIP)
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "%s: a %s model has no image-text matching (ITM) head; cross-attention "
                       "fusion needs a BLIP model (BlipForImageTextRetrieval)",
                       m->dir, gz_family_name(m->cfg.family));
    gz_status st = need_tokenizer(m);
    if (st != GZ_OK || m->itm) return st;
    st = gz_itm_load(m->weights, &m->cfg, &m->itm);
    if (st == GZ_OK && m->packed) gz_itm_share_packed(m->itm, m->packed);
    return st;
}

typedef gz_status (*need_fn)(gz_model *m);

/* Every encode/match entry point passes here before computing: it also points OpenBLAS, whose
 * thread count is process-wide, at this model's n_threads. */
static gz_status locked(gz_model *m, need_fn fn) {
    pthread_mutex_lock(&m->lock);
    gz_status st = fn(m);
    /* With a pool, OpenBLAS products are split between the pool's threads (core/linear.h), one
     * OpenBLAS thread each. */
    if (st == GZ_OK) gz_blas_set_threads(m->cx.pool ? 1 : m->cx.n_threads);
    pthread_mutex_unlock(&m->lock);
    return st;
}

/* ===== Models ===== */

gz_model_params gz_model_default_params(void) {
    gz_model_params p;
    memset(&p, 0, sizeof p);
    p.n_threads = 0;
    p.simd = 1;
    p.weights_file = NULL;
    p.exif_orient = 1;
    p.max_pixels = GZ_DEFAULT_MAX_PIXELS;
    p.fast_decode = 0; /* the reference (PIL) pixels; gaze index opts in to speed */
    p.itm_enc_token = 0;
    p.clip_fast_tokenizer = 0;
    p.batch_size = GZ_DEFAULT_BATCH;
    p.fp32_packed = 1;
    p.concurrency = 1;
    return p;
}

const char *gz_family_name(gz_family f) {
    switch (f) {
    case GZ_FAMILY_BLIP: return "blip";
    case GZ_FAMILY_CLIP: return "clip";
    case GZ_FAMILY_CHINESE_CLIP: return "chinese_clip";
    }
    return "unknown";
}

const char *gz_version(void) { return GAZE_VERSION; }

void gz_model_free(gz_model *m) {
    if (!m) return;
    gz_itm_free(m->itm);
    gz_text_tower_free(m->text);
    gz_pool_free(m->cx.pool);
    gz_scratch_free(m->cx.scratch); /* given back: no forward runs past gz_model_free */
    gz_vit_free(m->vit);
    gz_packw_cache_free(m->packed); /* after the towers that borrowed from it */
    gz_tokenizer_free(m->tok);
    gz_st_close(m->weights);
    pthread_mutex_destroy(&m->lock);
    free(m->weights_path);
    free(m->dir);
    free(m->hub_id);
    free(m->hub_revision);
    free(m->hub_commit);
    free(m);
}

/* The weights path: params->weights_file (relative to dir unless absolute), else
 * model.safetensors, else model.safetensors.index.json, else pytorch_model.bin, else
 * pytorch_model.bin.index.json (the order of transformers' from_pretrained). */
static gz_status resolve_weights(gz_model *m, const char *wf) {
    if (wf && *wf) {
        m->weights_path = gz_path_join(m->dir, wf);
        if (!m->weights_path) return GZ_FAIL(GZ_ENOMEM, "out of memory");
        if (!gz_is_regular_file(m->weights_path))
            return GZ_FAIL(GZ_ENOTFOUND, "%s: weights file not found", m->weights_path);
        return GZ_OK;
    }
    static const char *const names[] = {"model.safetensors", "model.safetensors.index.json",
                                        "pytorch_model.bin", "pytorch_model.bin.index.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = gz_path_join(m->dir, names[i]);
        if (!p) return GZ_FAIL(GZ_ENOMEM, "out of memory");
        if (gz_is_regular_file(p)) {
            m->weights_path = p;
            return GZ_OK;
        }
        free(p);
    }
    return GZ_FAIL(GZ_ENOTFOUND,
                   "%s: no model.safetensors or model.safetensors.index.json in the directory "
                   "(nor pytorch_model.bin or pytorch_model.bin.index.json)",
                   m->dir);
}

static gz_status load_inner(gz_model *m, const gz_model_params *params) {
    gz_status st;
    char *cfg_path = gz_path_join(m->dir, "config.json");
    char *pp_path = gz_path_join(m->dir, "preprocessor_config.json");
    if (!cfg_path || !pp_path) {
        st = GZ_FAIL(GZ_ENOMEM, "out of memory");
        goto out;
    }
    if (!gz_is_regular_file(cfg_path)) {
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: not found (is %s a Hugging Face model directory?)",
                     cfg_path, m->dir);
        goto out;
    }
    if ((st = gz_config_load(cfg_path, &m->cfg)) != GZ_OK) goto out;
    if (!gz_is_regular_file(pp_path)) {
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: not found (the image preprocessing is defined there)",
                     pp_path);
        goto out;
    }
    if ((st = gz_preproc_config_load(pp_path, m->cfg.family, &m->pp)) != GZ_OK) goto out;
    if ((st = resolve_weights(m, params->weights_file)) != GZ_OK) goto out;
    m->params.weights_file = m->weights_path;
    if ((st = gz_st_open(m->weights_path, &m->weights)) != GZ_OK) goto out;
    if ((st = compute_fingerprint(m, cfg_path, pp_path)) != GZ_OK) goto out;

    m->logit_scale = 1.0f;
    if (m->cfg.family != GZ_FAMILY_BLIP) {
        const float *ls = NULL;
        const gz_st_tensor *t = gz_st_find(m->weights, "logit_scale");
        if (!t || t->numel != 1) {
            st = GZ_FAIL(GZ_EINVAL, "%s: no scalar tensor logit_scale", m->weights_path);
            goto out;
        }
        if ((st = gz_st_f32(m->weights, "logit_scale", 0, NULL, &ls)) != GZ_OK) goto out;
        m->logit_scale = expf(ls[0]);
    }
    if (m->cfg.vision.image_size <= 0 ||
        gz_preproc_output_size(&m->pp) != m->cfg.vision.image_size) {
        st = GZ_FAIL(GZ_EINVAL,
                     "%s: preprocessing gives %d x %d pixels but the vision tower "
                     "expects image_size %d",
                     pp_path, gz_preproc_output_size(&m->pp), gz_preproc_output_size(&m->pp),
                     m->cfg.vision.image_size);
        goto out;
    }
out:
    free(cfg_path);
    free(pp_path);
    return st;
}

/* The Linear kernels for a model: the default, or what the environment variable GAZE_GEMM
 * names for a comparison (gaze.h): "in-place" or "reference". Never more than simd allows. */
static int linear_kernels(int dflt) {
    const char *v = getenv("GAZE_GEMM");
    if (!dflt || !v) return dflt;
    if (!strcmp(v, "in-place")) return GZ_GEMM_IN_PLACE;
    if (!strcmp(v, "reference")) return GZ_GEMM_REFERENCE;
    return dflt;
}

gz_status gz_model_load(const char *dir, const gz_model_params *params, gz_model **out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "gz_model_load: out is NULL");
    *out = NULL;
    if (!dir || !*dir) return GZ_FAIL(GZ_EINVAL, "gz_model_load: no model directory given");
    gz_model_params defaults = gz_model_default_params();
    if (!params) params = &defaults;
    if (params->batch_size < 0 || params->n_threads < 0)
        return GZ_FAIL(GZ_EINVAL, "%s: negative batch_size or n_threads", dir);
    if (params->precision != GZ_PRECISION_FP32 && params->precision != GZ_PRECISION_BF16)
        return GZ_FAIL(GZ_EINVAL, "%s: unknown precision %d", dir, (int)params->precision);
    gz_model *m = calloc(1, sizeof *m);
    if (!m) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    pthread_mutex_init(&m->lock, NULL);
    m->params = *params;
    if (m->params.batch_size == 0) m->params.batch_size = defaults.batch_size;
    if (m->params.max_pixels <= 0) m->params.max_pixels = defaults.max_pixels;
    /* dir may be a Hub id "ORG/NAME[@REV]": resolved from the cache, offline (a folder wins). */
    gz_hub_location *loc = malloc(sizeof *loc);
    gz_status ls = loc ? gz_hub_locate(dir, loc) : GZ_FAIL(GZ_ENOMEM, "out of memory");
    if (ls == GZ_OK) {
        m->dir = strdup(loc->dir);
        if (loc->repo_id[0]) {
            m->hub_id = strdup(loc->repo_id);
            m->hub_revision = strdup(loc->revision);
            m->hub_commit = strdup(loc->commit);
            if (!m->hub_id || !m->hub_revision || !m->hub_commit) ls = GZ_ENOMEM;
        }
        if (!m->dir) ls = GZ_ENOMEM;
        if (ls == GZ_ENOMEM) GZ_FAIL(GZ_ENOMEM, "out of memory");
    }
    free(loc);
    if (ls != GZ_OK) {
        gz_model_free(m);
        return ls;
    }
    size_t dl = strlen(m->dir);
    while (dl > 1 && m->dir[dl - 1] == '/')
        m->dir[--dl] = 0;
    m->cx = gz_compute_make(params->n_threads, params->simd); // this model's only; 0 = all cores
    m->cx.bf16 = params->precision == GZ_PRECISION_BF16 && params->simd && gz_bf16_available();
    m->cx.gemm = linear_kernels(m->cx.gemm);
    if (!params->fp32_packed && m->cx.gemm == GZ_GEMM_PACKED) m->cx.gemm = GZ_GEMM_IN_PLACE;
    /* one lane of threads per forward expected at once; NULL (threads per loop) is fine */
    m->cx.pool = gz_pool_create_lanes(m->cx.n_threads, params->concurrency);
    /* One arena for all the towers' forwards: they run one after another, so it holds what the
     * largest of them needed, up to GZ_SCRATCH_KEEP_BYTES, and no sum. */
    if (!(m->cx.scratch = gz_scratch_new(GZ_SCRATCH_KEEP_BYTES))) {
        gz_model_free(m);
        return GZ_FAIL(GZ_ENOMEM, "out of memory for the model's scratch");
    }
    if (m->cx.gemm && !(m->packed = gz_packw_cache_new())) {
        gz_model_free(m);
        return GZ_ENOMEM;
    }
    gz_status st = load_inner(m, params);
    if (st != GZ_OK) {
        gz_model_free(m);
        return st;
    }
    *out = m;
    return GZ_OK;
}

const char *gz_model_hub_id(const gz_model *m) { return m ? m->hub_id : NULL; }
const char *gz_model_hub_revision(const gz_model *m) { return m ? m->hub_revision : NULL; }
const char *gz_model_hub_commit(const gz_model *m) { return m ? m->hub_commit : NULL; }

gz_family gz_model_family(const gz_model *m) { return m->cfg.family; }
int gz_model_dim(const gz_model *m) { return m->cfg.projection_dim; }
int gz_model_has_itm(const gz_model *m) { return m->cfg.family == GZ_FAMILY_BLIP; }
int gz_model_threads(const gz_model *m) { return m->cx.n_threads; }
float gz_model_logit_scale(const gz_model *m) { return m->logit_scale; }
gz_precision gz_model_precision(const gz_model *m) {
    return m->cx.bf16 ? GZ_PRECISION_BF16 : GZ_PRECISION_FP32;
}

size_t gz_model_packed_copies(const gz_model *m, size_t *bytes) {
    if (bytes) *bytes = 0;
    return m->packed ? gz_packw_cache_count(m->packed, bytes) : 0;
}

size_t gz_model_scratch_kept_bytes(const gz_model *m) {
    return gz_scratch_kept_bytes(m->cx.scratch);
}

int gz_bf16_available(void) {
    const char *off = getenv("GAZE_NO_BF16"); /* the fallback's test switch (gaze.h) */
    return gz_cpu_has_bf16() && !(off && *off);
}
int gz_model_image_size(const gz_model *m) { return m->cfg.vision.image_size; }

gz_status gz_model_fingerprint(const gz_model *m, char out[65]) {
    if (!m || !out) return GZ_FAIL(GZ_EINVAL, "gz_model_fingerprint: NULL argument");
    memcpy(out, m->fingerprint, sizeof m->fingerprint);
    return GZ_OK;
}

gz_status gz_model_legacy_fingerprint(const gz_model *m, char out[65]) {
    if (!m || !out) return GZ_FAIL(GZ_EINVAL, "gz_model_legacy_fingerprint: NULL argument");
    memcpy(out, m->legacy_fingerprint, sizeof m->legacy_fingerprint);
    return GZ_OK;
}

/* ===== Tokens, description, pixel files ===== */

gz_status gz_model_tokenize(gz_model *m, const char *text, int max_length, int32_t **ids, int *n) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!m || !text || !ids || !n) return GZ_FAIL(GZ_EINVAL, "gz_model_tokenize: NULL argument");
    gz_status st = locked(m, need_tokenizer);
    if (st != GZ_OK) return st;
    // the tokenizer's own convention: 0 = no truncation
    int max_len = max_length < 0 ? gz_tokenizer_max_length(m->tok) : max_length;
    return gz_tokenizer_encode(m->tok, text, max_len, ids, n);
}

const char *gz_model_token_text(gz_model *m, int32_t id) {
    if (!m) return NULL;
    if (locked(m, need_tokenizer) != GZ_OK) return NULL;
    return gz_tokenizer_id_to_token(m->tok, id);
}

int gz_model_max_length(gz_model *m) {
    if (!m) return -1;
    if (locked(m, need_tokenizer) != GZ_OK) return -1;
    return gz_tokenizer_max_length(m->tok);
}

/* Copy a string into a fixed field, truncating (fields are sized for every known value). */
static void copy_field(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

gz_status gz_model_describe(const char *dir, const char *weights_file, gz_model_info *out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "gz_model_describe: out is NULL");
    memset(out, 0, sizeof *out);
    if (!dir || !*dir) return GZ_FAIL(GZ_EINVAL, "gz_model_describe: no model directory given");
    const int given = weights_file && *weights_file;
    char *cfg_path = gz_path_join(dir, "config.json");
    char *w_path = given ? gz_path_join(dir, weights_file) : NULL;
    if (!cfg_path || (given && !w_path)) {
        free(cfg_path);
        free(w_path);
        return GZ_FAIL(GZ_ENOMEM, "out of memory");
    }
    gz_model_config cfg;
    gz_st_file *w = NULL;
    gz_status st = gz_config_load(cfg_path, &cfg);
    if (st == GZ_OK) st = given ? gz_st_open(w_path, &w) : gz_st_open_dir(dir, &w);
    free(cfg_path);
    free(w_path);
    if (st != GZ_OK) return st;
    copy_field(out->model_type, sizeof out->model_type, cfg.model_type);
    copy_field(out->architecture, sizeof out->architecture, cfg.architecture);
    out->family = cfg.family;
    out->projection_dim = cfg.projection_dim;
    out->has_itm = cfg.family == GZ_FAMILY_BLIP;
    const gz_text_config *t = &cfg.text;
    out->text.hidden_size = t->hidden_size;
    out->text.layers = t->num_layers;
    out->text.heads = t->num_heads;
    out->text.intermediate_size = t->intermediate_size;
    out->text.vocab_size = t->vocab_size;
    out->text.max_positions = t->max_position_embeddings;
    out->text.act = gz_act_name(t->act);
    out->text.tokenizer = cfg.family == GZ_FAMILY_CLIP ? "byte-level BPE" : "WordPiece";
    const gz_vision_config *v = &cfg.vision;
    out->vision.hidden_size = v->hidden_size;
    out->vision.layers = v->num_layers;
    out->vision.heads = v->num_heads;
    out->vision.intermediate_size = v->intermediate_size;
    out->vision.image_size = v->image_size;
    out->vision.patch_size = v->patch_size;
    int side = v->patch_size > 0 ? v->image_size / v->patch_size : 0;
    out->vision.patches = side * side;
    out->vision.act = gz_act_name(v->act);
    out->parameters = gz_st_total_params(w);
    out->tensors = gz_st_count(w);
    copy_field(out->dtypes, sizeof out->dtypes, gz_st_dtypes(w));
    out->file_bytes = gz_st_file_bytes(w);
    gz_st_close(w);
    return GZ_OK;
}

gz_status gz_model_load_pixels(gz_model *m, const char *path, const char *key, float **pixels,
                               int *n) {
    if (pixels) *pixels = NULL;
    if (n) *n = 0;
    if (!m || !path || !pixels || !n)
        return GZ_FAIL(GZ_EINVAL, "gz_model_load_pixels: NULL argument");
    if (!key) key = "pixel_values";
    gz_st_file *f = NULL;
    gz_status st = gz_st_open(path, &f);
    if (st != GZ_OK) return st;
    const gz_st_tensor *t = gz_st_find(f, key);
    const int S = gz_model_image_size(m);
    const float *px = NULL;
    if (!t)
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: no tensor '%s'", path, key);
    else if (t->ndim != 4 || t->shape[1] != 3 || t->shape[2] != S || t->shape[3] != S ||
             t->shape[0] > INT_MAX)
        st = GZ_FAIL(GZ_EINVAL, "%s: tensor '%s' must be (N, 3, %d, %d) for this model", path, key,
                     S, S);
    else
        st = gz_st_f32(f, key, 0, NULL, &px);
    if (st == GZ_OK) {
        *pixels = gz_malloc_n(t->numel, sizeof **pixels, "pixel tensor");
        if (!*pixels) st = GZ_ENOMEM; /* message set by gz_malloc_n */
    }
    if (st == GZ_OK) {
        memcpy(*pixels, px, t->numel * sizeof **pixels);
        *n = (int)t->shape[0];
    }
    gz_st_close(f);
    return st;
}

gz_image_params gz_model_image_params(const gz_model *m) {
    gz_image_params p;
    memset(&p, 0, sizeof p);
    p.exif_orient = m->params.exif_orient ? 1 : 0;
    p.max_pixels = m->params.max_pixels;
    p.min_size = m->params.fast_decode ? gz_preproc_min_decode_size(&m->pp) : 0;
    return p;
}

/* ===== Encoding ===== */

/* Tokenise and encode texts[0..n) in chunks: embeds (n, E). */
static gz_status encode_texts_inner(gz_model *m, const char *const *texts, int n, float *out) {
    const int E = m->cfg.projection_dim;
    for (int i0 = 0; i0 < n; i0 += MODEL_TEXT_BATCH) {
        int k = n - i0 < MODEL_TEXT_BATCH ? n - i0 : MODEL_TEXT_BATCH;
        gz_token_batch b;
        memset(&b, 0, sizeof b);
        gz_status st = gz_tokenizer_encode_batch(m->tok, texts + i0, k, &b);
        if (st != GZ_OK) return st;
        st = gz_text_tower_encode(m->text, &m->cx, b.ids, b.mask, b.n, b.len, out + (size_t)i0 * E,
                                  NULL, NULL, NULL);
        gz_token_batch_free(&b);
        if (st != GZ_OK) return st;
        atomic_fetch_add_explicit(&m->texts_encoded, k, memory_order_relaxed);
    }
    return GZ_OK;
}

gz_status gz_encode_texts(gz_model *m, const char *const *texts, int n, float *out) {
    if (!m || n < 0 || (n > 0 && (!texts || !out)))
        return GZ_FAIL(GZ_EINVAL, "gz_encode_texts: bad arguments");
    for (int i = 0; i < n; i++)
        if (!texts[i]) return GZ_FAIL(GZ_EINVAL, "gz_encode_texts: text %d is NULL", i);
    if (n == 0) return GZ_OK;
    gz_status st = locked(m, need_text);
    if (st != GZ_OK) return st;
    return encode_texts_inner(m, texts, n, out);
}

/* Preprocess images[0..n) into pixels (n, 3, S, S). */
static gz_status preprocess_one(const gz_model *m, const gz_image *im, int i, float *out) {
    if (!im->rgb || im->width <= 0 || im->height <= 0)
        return GZ_FAIL(GZ_EINVAL, "image %d is empty (not decoded?)", i);
    /* gz_preprocess_image, not gz_preprocess: a DCT-scaled decode must be resized and
     * cropped as the full-size photo would be (src_width/src_height). */
    gz_status st = gz_preprocess_image(&m->pp, im, out);
    return st == GZ_OK ? st : gz_error_prefix(st, "image %d", i);
}

/* Images are preprocessed in parallel (gz_preprocess_image is a pure function); error
 * messages are thread-local, so the first failing image is redone on this thread for its
 * message. gz_parallel_for, not OpenMP: idle OpenMP workers spin against OpenBLAS. */
typedef struct {
    const gz_model *m;
    const gz_image *images;
    int base;
    float *pixels;
    size_t img_sz;
    int *failed; /* (n) 1 where preprocessing failed */
} preprocess_job;

static void preprocess_range(void *ctx, size_t begin, size_t end) {
    preprocess_job *j = ctx;
    for (size_t i = begin; i < end; i++)
        j->failed[i] = preprocess_one(j->m, &j->images[i], j->base + (int)i,
                                      j->pixels + i * j->img_sz) != GZ_OK;
}

static gz_status preprocess_images(const gz_model *m, const gz_image *images, int base, int n,
                                   float *pixels) {
    const size_t img_sz = (size_t)3 * m->cfg.vision.image_size * m->cfg.vision.image_size;
    int *failed = calloc((size_t)n, sizeof *failed);
    if (!failed) return GZ_FAIL(GZ_ENOMEM, "preprocess: out of memory");
    preprocess_job job = {m, images, base, pixels, img_sz, failed};
    gz_pool_for(m->cx.pool, (size_t)n, 1, m->cx.n_threads, preprocess_range, &job);
    int first = -1;
    for (int i = 0; i < n && first < 0; i++)
        if (failed[i]) first = i;
    free(failed);
    if (first < 0) return GZ_OK;
    return preprocess_one(m, &images[first], base + first, pixels + (size_t)first * img_sz);
}

/* gz_encode_images(_tokens) after argument checks: tokens (n, P, D) or NULL. */
static gz_status encode_images(gz_model *m, const gz_image *images, int n, float *out,
                               float *tokens) {
    if (n == 0) return GZ_OK;
    gz_status st = locked(m, need_vision);
    if (st != GZ_OK) return st;
    const int E = m->cfg.projection_dim, bs = m->params.batch_size;
    const size_t tok_sz = (size_t)gz_vit_tokens(m->vit) * (size_t)gz_vit_hidden(m->vit);
    const size_t img_sz = (size_t)3 * m->cfg.vision.image_size * m->cfg.vision.image_size;
    int chunk = n < bs ? n : bs;
    size_t n_floats;
    if (!gz_mul_size((size_t)chunk, img_sz, &n_floats))
        return GZ_FAIL(GZ_ENOMEM, "gz_encode_images: %d images of %zu floats overflow", chunk,
                       img_sz);
    float *pixels = gz_malloc_n(n_floats, sizeof *pixels, "gz_encode_images: pixels");
    if (!pixels) return GZ_ENOMEM;
    for (int i0 = 0; st == GZ_OK && i0 < n; i0 += chunk) {
        int k = n - i0 < chunk ? n - i0 : chunk;
        st = preprocess_images(m, images + i0, i0, k, pixels);
        if (st == GZ_OK)
            st = gz_vit_encode(m->vit, &m->cx, pixels, k, out + (size_t)i0 * E, NULL,
                               tokens ? tokens + (size_t)i0 * tok_sz : NULL, NULL, NULL);
    }
    free(pixels);
    return st;
}

gz_status gz_encode_images(gz_model *m, const gz_image *images, int n, float *out) {
    if (!m || n < 0 || (n > 0 && (!images || !out)))
        return GZ_FAIL(GZ_EINVAL, "gz_encode_images: bad arguments");
    return encode_images(m, images, n, out, NULL);
}

void gz_model_image_token_shape(const gz_model *m, int *n_tokens, int *dim) {
    const int p = m->cfg.vision.patch_size, G = p > 0 ? m->cfg.vision.image_size / p : 0;
    *n_tokens = G * G + 1; /* as the vision tower counts them: patches + class token */
    *dim = m->cfg.vision.hidden_size;
}

gz_status gz_encode_images_tokens(gz_model *m, const gz_image *images, int n, float *out,
                                  float *tokens) {
    if (!m || n < 0 || (n > 0 && (!images || !out || !tokens)))
        return GZ_FAIL(GZ_EINVAL, "gz_encode_images_tokens: bad arguments");
    if (m->cfg.family != GZ_FAMILY_BLIP) /* CLIP's states have no consumer (no ITM head) */
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "%s: token states are kept for BLIP's image-text matching head; a %s "
                       "model has none",
                       m->dir, gz_family_name(m->cfg.family));
    return encode_images(m, images, n, out, tokens);
}

gz_status gz_encode_pixels(gz_model *m, const float *pixels, int n, float *out) {
    if (!m || n < 0 || (n > 0 && (!pixels || !out)))
        return GZ_FAIL(GZ_EINVAL, "gz_encode_pixels: bad arguments");
    if (n == 0) return GZ_OK;
    gz_status st = locked(m, need_vision);
    if (st != GZ_OK) return st;
    const int E = m->cfg.projection_dim, bs = m->params.batch_size;
    const size_t img_sz = (size_t)3 * m->cfg.vision.image_size * m->cfg.vision.image_size;
    for (int i0 = 0; st == GZ_OK && i0 < n; i0 += bs) {
        int k = n - i0 < bs ? n - i0 : bs;
        st = gz_vit_encode(m->vit, &m->cx, pixels + (size_t)i0 * img_sz, k, out + (size_t)i0 * E,
                           NULL, NULL, NULL, NULL);
    }
    return st;
}

/* ===== Matching and fusion ===== */

static float dot(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return (float)s;
}

/* Fill the ITC part of a match (BLIP: logit = itc; CLIP: the CLIP logit rule of score.h). */
static void fill_itc(const gz_model *m, gz_match *r, float itc) {
    memset(r, 0, sizeof *r);
    r->itc = itc;
    r->logit = m->cfg.family == GZ_FAMILY_BLIP ? itc : gz_score_clip_logit(m->logit_scale, itc);
    r->score = r->logit;
}

/* Fill the ITM part from the head's logits [no match, match]; score becomes the re-rank rule
 * of score.h. */
static void fill_itm(gz_match *r, const float *logit2) {
    r->itm_logit[0] = logit2[0];
    r->itm_logit[1] = logit2[1];
    float mx = logit2[0] > logit2[1] ? logit2[0] : logit2[1];
    float e0 = expf(logit2[0] - mx), e1 = expf(logit2[1] - mx);
    r->itm_prob = e1 / (e0 + e1);
    r->score = gz_score_rerank(r->itm_logit[1], r->itc);
}

/* The id that replaces each text's first id for ITM: [ENC] with the itm_enc_token option
 * (original BLIP), else -1 (ids as tokenised, Hugging Face). */
static gz_status itm_first_id(const gz_model *m, int32_t *id) {
    *id = -1;
    if (!m->params.itm_enc_token) return GZ_OK;
    *id = gz_tokenizer_token_id(m->tok, "[ENC]");
    if (*id < 0)
        return GZ_FAIL(GZ_EINVAL, "%s: the tokenizer has no [ENC] token (itm_enc_token)", m->dir);
    return GZ_OK;
}

static gz_status need_for_match(gz_model *m) {
    if (m->params.itm_enc_token && m->cfg.family != GZ_FAMILY_BLIP)
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "%s: itm_enc_token asks for ITM fusion, which a %s model does not have "
                       "(only BLIP has an ITM head)",
                       m->dir, gz_family_name(m->cfg.family));
    gz_status st = need_text(m);
    if (st == GZ_OK) st = need_vision(m);
    if (st == GZ_OK && m->cfg.family == GZ_FAMILY_BLIP) st = need_itm(m);
    return st;
}

/* Encode one image: embed (E) and, for BLIP, its post-LN hidden states (P, D). */
static gz_status encode_one_image(gz_model *m, const gz_image *im, float *pixels, float *embed,
                                  float *hidden) {
    gz_status st = preprocess_images(m, im, 0, 1, pixels);
    if (st != GZ_OK) return st;
    return gz_vit_encode(m->vit, &m->cx, pixels, 1, embed, NULL, hidden, NULL, NULL);
}

int64_t gz_model_texts_encoded(const gz_model *m) {
    return (int64_t)atomic_load_explicit(&m->texts_encoded, memory_order_relaxed);
}

gz_status gz_match_image_texts(gz_model *m, const gz_image *image, const char *const *texts, int n,
                               gz_match *out) {
    if (!m || !image || n < 0 || (n > 0 && (!texts || !out)))
        return GZ_FAIL(GZ_EINVAL, "gz_match_image_texts: bad arguments");
    for (int i = 0; i < n; i++)
        if (!texts[i]) return GZ_FAIL(GZ_EINVAL, "gz_match_image_texts: text %d is NULL", i);
    gz_status st = locked(m, need_for_match);
    if (st != GZ_OK || n == 0) return st;
    const int E = m->cfg.projection_dim, P = gz_vit_tokens(m->vit), D = gz_vit_hidden(m->vit);
    const int blip = m->cfg.family == GZ_FAMILY_BLIP;
    const size_t img_sz = (size_t)3 * m->cfg.vision.image_size * m->cfg.vision.image_size;
    const char *what = "gz_match_image_texts";
    float *pixels = gz_malloc_n(img_sz, sizeof(float), what);
    float *img_emb = gz_malloc_n((size_t)E, sizeof(float), what);
    float *hidden = blip ? gz_malloc_n((size_t)P * D, sizeof(float), what) : NULL;
    float *txt = gz_malloc_n((size_t)n * E, sizeof(float), what);
    float *logits = blip ? gz_malloc_n((size_t)MODEL_TEXT_BATCH * 2, sizeof(float), what) : NULL;
    gz_itm_image *kv = NULL;
    if (!pixels || !img_emb || !txt || (blip && (!hidden || !logits))) {
        st = GZ_FAIL(GZ_ENOMEM, "gz_match_image_texts: out of memory");
        goto out;
    }
    int32_t enc_id = -1;
    if ((st = itm_first_id(m, &enc_id)) != GZ_OK) goto out;
    if ((st = encode_one_image(m, image, pixels, img_emb, hidden)) != GZ_OK) goto out;
    if ((st = encode_texts_inner(m, texts, n, txt)) != GZ_OK) goto out;
    for (int i = 0; i < n; i++)
        fill_itc(m, &out[i], dot(img_emb, txt + (size_t)i * E, E));
    if (!blip) goto out;
    // the image's cross-attention keys/values once, then every text against them
    if ((st = gz_itm_prepare_image(m->itm, &m->cx, hidden, P, &kv)) != GZ_OK) goto out;
    for (int i0 = 0; i0 < n; i0 += MODEL_TEXT_BATCH) {
        int k = n - i0 < MODEL_TEXT_BATCH ? n - i0 : MODEL_TEXT_BATCH;
        gz_token_batch b;
        memset(&b, 0, sizeof b);
        if ((st = gz_tokenizer_encode_batch(m->tok, texts + i0, k, &b)) != GZ_OK) goto out;
        st = gz_itm_score_ex(m->itm, &m->cx, kv, b.ids, b.mask, b.n, b.len, enc_id, logits, NULL,
                             NULL);
        gz_token_batch_free(&b);
        if (st != GZ_OK) goto out;
        for (int i = 0; i < k; i++)
            fill_itm(&out[i0 + i], logits + 2 * i);
    }
out:
    gz_itm_image_free(kv);
    free(pixels);
    free(img_emb);
    free(hidden);
    free(txt);
    free(logits);
    return st;
}

/* gz_match_text_images(_embedded) after argument checks: given_emb NULL = encode the text. */
static gz_status match_text_images(gz_model *m, const char *text, const float *given_emb,
                                   const gz_image *images, int n, gz_match *out) {
    gz_status st = locked(m, need_for_match);
    if (st != GZ_OK || n == 0) return st;
    const int E = m->cfg.projection_dim, P = gz_vit_tokens(m->vit), D = gz_vit_hidden(m->vit);
    const int blip = m->cfg.family == GZ_FAMILY_BLIP;
    const int bs = n < m->params.batch_size ? n : m->params.batch_size;
    const size_t img_sz = (size_t)3 * m->cfg.vision.image_size * m->cfg.vision.image_size;
    const char *what = "gz_match_text_images";
    float *own_emb = given_emb ? NULL : gz_malloc_n((size_t)E, sizeof(float), what);
    float *pixels = gz_malloc_n((size_t)bs * img_sz, sizeof(float), what);
    float *img_emb = gz_malloc_n((size_t)bs * E, sizeof(float), what);
    float *hidden = blip ? gz_malloc_n((size_t)bs * P * D, sizeof(float), what) : NULL;
    float *logits = blip ? gz_malloc_n((size_t)bs * 2, sizeof(float), what) : NULL;
    gz_itm_image **kv = blip ? gz_calloc_n((size_t)bs, sizeof *kv, what) : NULL;
    int32_t *ids = NULL, *mask = NULL; // the text's ids repeated for every image of a chunk
    gz_token_batch b;
    memset(&b, 0, sizeof b);
    if ((!given_emb && !own_emb) || !pixels || !img_emb || (blip && (!hidden || !logits || !kv))) {
        st = GZ_FAIL(GZ_ENOMEM, "gz_match_text_images: out of memory");
        goto out;
    }
    if (!given_emb && (st = encode_texts_inner(m, &text, 1, own_emb)) != GZ_OK) goto out;
    const float *temb = given_emb ? given_emb : own_emb;
    int32_t enc_id = -1;
    if ((st = itm_first_id(m, &enc_id)) != GZ_OK) goto out;
    if (blip) {
        if ((st = gz_tokenizer_encode_batch(m->tok, &text, 1, &b)) != GZ_OK) goto out;
        ids = gz_malloc_n((size_t)bs * b.len, sizeof *ids, what);
        mask = gz_malloc_n((size_t)bs * b.len, sizeof *mask, what);
        if (!ids || !mask) {
            st = GZ_FAIL(GZ_ENOMEM, "gz_match_text_images: out of memory");
            goto out;
        }
        for (int i = 0; i < bs; i++) {
            memcpy(ids + (size_t)i * b.len, b.ids, (size_t)b.len * sizeof *ids);
            memcpy(mask + (size_t)i * b.len, b.mask, (size_t)b.len * sizeof *mask);
        }
    }
    for (int i0 = 0; i0 < n; i0 += bs) {
        int k = n - i0 < bs ? n - i0 : bs;
        if ((st = preprocess_images(m, images + i0, i0, k, pixels)) != GZ_OK) goto out;
        if ((st = gz_vit_encode(m->vit, &m->cx, pixels, k, img_emb, NULL, hidden, NULL, NULL)) !=
            GZ_OK)
            goto out;
        for (int i = 0; i < k; i++)
            fill_itc(m, &out[i0 + i], dot(img_emb + (size_t)i * E, temb, E));
        if (!blip) continue;
        // one ITM batch: the text paired with each image of the chunk
        // one text per image: folded cross-attention where it is cheaper (itm.h)
        for (int i = 0; i < k; i++)
            if ((st = gz_itm_prepare_image_once(m->itm, &m->cx, hidden + (size_t)i * P * D, P,
                                                b.len, &kv[i])) != GZ_OK)
                goto out;
        st = gz_itm_score_pairs(m->itm, &m->cx, (const gz_itm_image *const *)kv, ids, mask, k,
                                b.len, enc_id, logits, NULL, NULL);
        if (st != GZ_OK) goto out;
        for (int i = 0; i < k; i++)
            fill_itm(&out[i0 + i], logits + 2 * i);
    }
out:
    for (int i = 0; kv && i < bs; i++)
        gz_itm_image_free(kv[i]);
    free(kv);
    free(ids);
    free(mask);
    free(logits);
    gz_token_batch_free(&b);
    free(own_emb);
    free(pixels);
    free(img_emb);
    free(hidden);
    return st;
}

gz_status gz_match_text_images(gz_model *m, const char *text, const gz_image *images, int n,
                               gz_match *out) {
    if (!m || !text || n < 0 || (n > 0 && (!images || !out)))
        return GZ_FAIL(GZ_EINVAL, "gz_match_text_images: bad arguments");
    return match_text_images(m, text, NULL, images, n, out);
}

gz_status gz_match_text_images_embedded(gz_model *m, const char *text, const float *text_embedding,
                                        const gz_image *images, int n, gz_match *out) {
    if (!m || !text || n < 0 || (n > 0 && (!images || !out)))
        return GZ_FAIL(GZ_EINVAL, "gz_match_text_images_embedded: bad arguments");
    return match_text_images(m, text, text_embedding, images, n, out);
}

gz_status gz_match_text_tokens(gz_model *m, const char *text, const float *const *tokens, int n,
                               gz_match *out) {
    if (!m || !text || n < 0 || (n > 0 && (!tokens || !out)))
        return GZ_FAIL(GZ_EINVAL, "gz_match_text_tokens: bad arguments");
    for (int i = 0; i < n; i++)
        if (!tokens[i]) return GZ_FAIL(GZ_EINVAL, "gz_match_text_tokens: image %d is NULL", i);
    gz_status st = locked(m, need_itm); /* the tokenizer and fusion only: no vision tower */
    if (st != GZ_OK || n == 0) return st;
    int P, D;
    gz_model_image_token_shape(m, &P, &D);
    const int bs = n < m->params.batch_size ? n : m->params.batch_size;
    const char *what = "gz_match_text_tokens";
    float *logits = gz_malloc_n((size_t)bs * 2, sizeof(float), what);
    gz_itm_image **kv = gz_calloc_n((size_t)bs, sizeof *kv, what);
    int32_t *ids = NULL, *mask = NULL; // the text's ids repeated for every image of a chunk
    gz_token_batch b;
    memset(&b, 0, sizeof b);
    int32_t enc_id = -1;
    if (!logits || !kv) st = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", what);
    if (st == GZ_OK) st = itm_first_id(m, &enc_id);
    if (st == GZ_OK) st = gz_tokenizer_encode_batch(m->tok, &text, 1, &b);
    if (st == GZ_OK) {
        ids = gz_malloc_n((size_t)bs * b.len, sizeof *ids, what);
        mask = gz_malloc_n((size_t)bs * b.len, sizeof *mask, what);
        if (!ids || !mask) st = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", what);
    }
    for (int i = 0; st == GZ_OK && i < bs; i++) {
        memcpy(ids + (size_t)i * b.len, b.ids, (size_t)b.len * sizeof *ids);
        memcpy(mask + (size_t)i * b.len, b.mask, (size_t)b.len * sizeof *mask);
    }
    for (int i0 = 0; st == GZ_OK && i0 < n; i0 += bs) {
        int k = n - i0 < bs ? n - i0 : bs;
        /* each chunk's images go into the previous chunk's memory; one text per image:
         * folded cross-attention where it is cheaper (itm.h) */
        for (int i = 0; st == GZ_OK && i < k; i++)
            st = gz_itm_prepare_image_once(m->itm, &m->cx, tokens[i0 + i], P, b.len, &kv[i]);
        if (st == GZ_OK)
            st = gz_itm_score_pairs(m->itm, &m->cx, (const gz_itm_image *const *)kv, ids, mask, k,
                                    b.len, enc_id, logits, NULL, NULL);
        for (int i = 0; st == GZ_OK && i < k; i++) {
            gz_match *r = &out[i0 + i];
            memset(r, 0, sizeof *r);
            r->itc = r->logit = NAN; /* not known here: the search has it */
            fill_itm(r, logits + 2 * i);
        }
    }
    for (int i = 0; kv && i < bs; i++)
        gz_itm_image_free(kv[i]);
    free(kv);
    free(ids);
    free(mask);
    free(logits);
    gz_token_batch_free(&b);
    return st;
}
