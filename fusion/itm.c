/* itm.c - BLIP image-text matching over the shared BERT encoder with cross-attention.
 *
 * Legend: B = texts, T = padded length, N = B*T, D = text hidden size, L = layers,
 *         Ti = image tokens, Dv = vision hidden size. */
#include "fusion/itm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/kernels.h"
#include "text_encoder/bert.h"

#define GZ_ITM_CLASSES 2 /* itm_head: [no match, match] */

struct gz_itm {
    gz_bert *bert; /* text encoder with cross-attention; owned */
    int D, Dv;
    const float *head_w; /* (2, D) borrowed */
    const float *head_b; /* (2) */
};

struct gz_itm_image {
    int Ti;
    float *kv;     /* (L, 2, Ti, D) owned, or NULL */
    float *states; /* (Ti, Dv) owned copy when kv is NULL: folded (gz_bert_cross) */
};

gz_status gz_itm_load(gz_st_file *w, const gz_model_config *cfg, gz_itm **out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "gz_itm_load: out is NULL");
    *out = NULL;
    if (!w || !cfg) return GZ_FAIL(GZ_EINVAL, "gz_itm_load: NULL argument");
    if (cfg->family != GZ_FAMILY_BLIP)
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "image-text matching (cross-attention fusion) needs a BLIP model; "
                       "model_type '%s' has none",
                       cfg->model_type);
    gz_itm *m = calloc(1, sizeof *m);
    if (!m) return GZ_FAIL(GZ_ENOMEM, "out of memory loading the ITM model");
    m->D = cfg->text.hidden_size;
    m->Dv = cfg->text.encoder_hidden_size;
    gz_status st = gz_bert_load(w, "text_encoder.", &cfg->text, 1, &m->bert);
    if (st) goto fail;
    int64_t wshape[2] = {GZ_ITM_CLASSES, m->D}, bshape[1] = {GZ_ITM_CLASSES};
    if ((st = gz_st_f32(w, "itm_head.weight", 2, wshape, &m->head_w)) ||
        (st = gz_st_f32(w, "itm_head.bias", 1, bshape, &m->head_b)))
        goto fail;
    *out = m;
    return GZ_OK;
fail:
    gz_itm_free(m);
    return st;
}

void gz_itm_free(gz_itm *m) {
    if (!m) return;
    gz_bert_free(m->bert);
    free(m);
}

void gz_itm_share_packed(gz_itm *m, gz_packw_cache *cache) { gz_bert_share_packed(m->bert, cache); }

int gz_itm_hidden_size(const gz_itm *m) { return m->D; }
int gz_itm_image_hidden_size(const gz_itm *m) { return m->Dv; }

gz_status gz_itm_prepare_image(const gz_itm *m, const gz_compute *cx, const float *image_states,
                               int Ti, gz_itm_image **out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "gz_itm_prepare_image: out is NULL");
    *out = NULL;
    if (!m || !cx || !image_states || Ti <= 0)
        return GZ_FAIL(GZ_EINVAL, "gz_itm_prepare_image: bad arguments (Ti %d)", Ti);
    size_t n = gz_bert_cross_kv_floats(m->bert, Ti);
    if (n == 0) return GZ_FAIL(GZ_ENOMEM, "ITM: %d image tokens too many", Ti);
    gz_itm_image *im = calloc(1, sizeof *im);
    if (!im) return GZ_FAIL(GZ_ENOMEM, "ITM: out of memory preparing an image");
    im->Ti = Ti;
    im->kv = gz_scratch_floats(n); /* 42 MB for BLIP-384: huge pages */
    if (!im->kv) {
        free(im);
        return GZ_FAIL(GZ_ENOMEM, "out of memory for an image's ITM keys/values");
    }
    gz_status st = gz_bert_cross_kv(m->bert, cx, image_states, Ti, im->kv);
    if (st) {
        gz_itm_image_free(im);
        return st;
    }
    *out = im;
    return GZ_OK;
}

gz_status gz_itm_prepare_image_reuse(const gz_itm *m, const gz_compute *cx,
                                     const float *image_states, int Ti, gz_itm_image **im) {
    if (!im) return GZ_FAIL(GZ_EINVAL, "gz_itm_prepare_image_reuse: im is NULL");
    if (!*im || (*im)->Ti != Ti || !(*im)->kv || !m || !cx || !image_states) {
        gz_itm_image_free(*im);
        *im = NULL;
        return gz_itm_prepare_image(m, cx, image_states, Ti, im);
    }
    gz_status st = gz_bert_cross_kv(m->bert, cx, image_states, Ti, (*im)->kv);
    if (st != GZ_OK) {
        gz_itm_image_free(*im);
        *im = NULL;
    }
    return st;
}

gz_status gz_itm_prepare_image_states(const gz_itm *m, const float *image_states, int Ti,
                                      gz_itm_image **im) {
    if (!im) return GZ_FAIL(GZ_EINVAL, "gz_itm_prepare_image_states: im is NULL");
    size_t n;
    if (!m || !image_states || Ti <= 0 || !gz_mul_size((size_t)Ti, (size_t)m->Dv, &n)) {
        gz_itm_image_free(*im);
        *im = NULL;
        return GZ_FAIL(GZ_EINVAL, "gz_itm_prepare_image_states: bad arguments (Ti %d)", Ti);
    }
    if (*im && ((*im)->kv || (*im)->Ti != Ti)) {
        gz_itm_image_free(*im);
        *im = NULL;
    }
    if (!*im) {
        gz_itm_image *fresh = calloc(1, sizeof *fresh);
        float *copy = gz_malloc_n(n, sizeof *copy, "ITM image states");
        if (!fresh || !copy) {
            free(fresh);
            free(copy);
            return GZ_FAIL(GZ_ENOMEM, "out of memory for an image's ITM states");
        }
        fresh->Ti = Ti;
        fresh->states = copy;
        *im = fresh;
    }
    memcpy((*im)->states, image_states, n * sizeof *image_states);
    return GZ_OK;
}

gz_status gz_itm_prepare_image_once(const gz_itm *m, const gz_compute *cx,
                                    const float *image_states, int Ti, int T, gz_itm_image **im) {
    if (m && cx && cx->gemm && gz_bert_cross_fold_wins(m->bert, Ti, T))
        return gz_itm_prepare_image_states(m, image_states, Ti, im);
    return gz_itm_prepare_image_reuse(m, cx, image_states, Ti, im);
}

void gz_itm_image_free(gz_itm_image *im) {
    if (!im) return;
    free(im->kv);
    free(im->states);
    free(im);
}

/* Shared worker: cross[b] is the image of text b. */
static gz_status score(const gz_itm *m, const gz_compute *cx, const gz_bert_cross *cross,
                       const int32_t *ids, const int32_t *mask, int B, int T, int32_t enc_token_id,
                       float *logits, float *cls, float *last_hidden) {
    const int D = m->D;
    size_t N = (size_t)B * (size_t)T, nf, total;
    /* Scratch in 4-byte slots: pooled (B, D), then the ids copy (N) for [ENC]. */
    _Static_assert(sizeof(int32_t) == sizeof(float), "ids share the float scratch");
    if (!gz_mul_size((size_t)B, (size_t)D, &nf) ||
        !gz_add_size(nf, enc_token_id >= 0 ? N : 0, &total))
        return GZ_FAIL(GZ_ENOMEM, "ITM score: batch %d x %d too large", B, T);
    float *scratch = gz_malloc_n(total, sizeof(float), "ITM score scratch");
    if (!scratch) return GZ_ENOMEM;
    float *pooled = scratch; /* (B, D) */
    const int32_t *use_ids = ids;
    if (enc_token_id >= 0) {
        int32_t *copy = (int32_t *)(void *)(scratch + nf); /* (B, T) */
        memcpy(copy, ids, N * sizeof *copy);
        for (int b = 0; b < B; b++)
            copy[(size_t)b * T] = enc_token_id;
        use_ids = copy;
    }
    /* The head reads each text's first row: without states to return, the last layer runs
     * those rows alone past its keys and values. */
    gz_status st =
        last_hidden
            ? gz_bert_forward(m->bert, cx, use_ids, mask, NULL, B, T, cross, last_hidden, NULL)
            : gz_bert_forward_first(m->bert, cx, use_ids, mask, NULL, B, T, cross, pooled);
    if (st) {
        free(scratch);
        return st;
    }
    for (int b = 0; b < B && last_hidden; b++)
        memcpy(pooled + (size_t)b * D, last_hidden + (size_t)b * T * D, (size_t)D * sizeof *pooled);
    gz_linear(pooled, m->head_w, m->head_b, logits, B, D, GZ_ITM_CLASSES); /* (B, 2) */
    if (cls) memcpy(cls, pooled, (size_t)B * D * sizeof *cls);
    free(scratch);
    return GZ_OK;
}

gz_status gz_itm_score_pairs(const gz_itm *m, const gz_compute *cx,
                             const gz_itm_image *const *images, const int32_t *ids,
                             const int32_t *mask, int B, int T, int32_t enc_token_id, float *logits,
                             float *cls, float *last_hidden) {
    if (!m || !cx || !images || !ids || !logits || B <= 0 || T <= 0)
        return GZ_FAIL(GZ_EINVAL, "ITM score: bad arguments (B %d, T %d)", B, T);
    gz_bert_cross *cross = gz_malloc_n((size_t)B, sizeof *cross, "ITM score pairs");
    if (!cross) return GZ_ENOMEM;
    for (int b = 0; b < B; b++) {
        if (!images[b]) {
            free(cross);
            return GZ_FAIL(GZ_EINVAL, "ITM score: pair %d has no image", b);
        }
        cross[b] = (gz_bert_cross){images[b]->kv, images[b]->states, images[b]->Ti};
    }
    gz_status st = score(m, cx, cross, ids, mask, B, T, enc_token_id, logits, cls, last_hidden);
    free(cross);
    return st;
}

gz_status gz_itm_score_ex(const gz_itm *m, const gz_compute *cx, const gz_itm_image *im,
                          const int32_t *ids, const int32_t *mask, int B, int T,
                          int32_t enc_token_id, float *logits, float *cls, float *last_hidden) {
    if (!m || !cx || !im || !ids || !logits || B <= 0 || T <= 0)
        return GZ_FAIL(GZ_EINVAL, "ITM score: bad arguments (B %d, T %d)", B, T);
    gz_bert_cross *cross = gz_malloc_n((size_t)B, sizeof *cross, "ITM score");
    if (!cross) return GZ_ENOMEM;
    for (int b = 0; b < B; b++)
        cross[b] = (gz_bert_cross){im->kv, im->states, im->Ti};
    gz_status st = score(m, cx, cross, ids, mask, B, T, enc_token_id, logits, cls, last_hidden);
    free(cross);
    return st;
}

gz_status gz_itm_score(const gz_itm *m, const gz_compute *cx, const gz_itm_image *im,
                       const int32_t *ids, const int32_t *mask, int B, int T, float *logits,
                       float *cls, float *last_hidden) {
    return gz_itm_score_ex(m, cx, im, ids, mask, B, T, -1, logits, cls, last_hidden);
}

float gz_itm_prob(const float *logits) {
    /* softmax([a, b])[1] = 1 / (1 + exp(a - b)), stable for either sign. */
    float d = logits[0] - logits[1];
    if (d > 0) {
        float e = expf(-d);
        return e / (1.0f + e);
    }
    return 1.0f / (1.0f + expf(d));
}
