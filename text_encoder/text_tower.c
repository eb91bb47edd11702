/* text_tower.c - text towers behind one interface: encoder + pooling + projection + L2 norm.
 *
 * Legend: B = texts, T = padded length, N = B*T, D = hidden size, E = projection size. */
#include "text_encoder/text_tower.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/kernels.h"
#include "text_encoder/bert.h"
#include "text_encoder/clip_text.h"

/* F.normalize's eps; CLIP's x / ||x|| is identical for every non-zero row. */
#define GZ_TEXT_NORM_EPS 1e-12f

struct gz_text_tower {
    gz_family family;
    int D, E, L, max_pos, eos_token_id;
    gz_bert *bert;       /* BLIP (ITC mode), Chinese-CLIP; owned */
    gz_clip_text *clip;  /* CLIP; owned */
    const float *proj_w; /* (E, D) borrowed */
    const float *proj_b; /* (E) or NULL (no bias) */
};

gz_status gz_text_tower_load(gz_st_file *w, const gz_model_config *cfg, gz_text_tower **out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "gz_text_tower_load: out is NULL");
    *out = NULL;
    if (!w || !cfg) return GZ_FAIL(GZ_EINVAL, "gz_text_tower_load: NULL argument");
    gz_text_tower *t = calloc(1, sizeof *t);
    if (!t) return GZ_FAIL(GZ_ENOMEM, "out of memory loading the text tower");
    t->family = cfg->family;
    t->D = cfg->text.hidden_size;
    t->E = cfg->projection_dim;
    t->L = cfg->text.num_layers;
    t->max_pos = cfg->text.max_position_embeddings;
    t->eos_token_id = cfg->text.eos_token_id;
    if (t->E <= 0) {
        gz_text_tower_free(t);
        return GZ_FAIL(GZ_EINVAL, "text tower: projection size %d must be > 0",
                       cfg->projection_dim);
    }
    gz_status st;
    const char *proj_name;
    int has_bias;
    switch (cfg->family) {
    case GZ_FAMILY_BLIP:
        st = gz_bert_load(w, "text_encoder.", &cfg->text, 0, &t->bert);
        proj_name = "text_proj";
        has_bias = 1;
        break;
    case GZ_FAMILY_CHINESE_CLIP:
        st = gz_bert_load(w, "text_model.", &cfg->text, 0, &t->bert);
        proj_name = "text_projection";
        has_bias = 0;
        break;
    case GZ_FAMILY_CLIP:
        st = gz_clip_text_load(w, "text_model.", &cfg->text, &t->clip);
        proj_name = "text_projection";
        has_bias = 0;
        break;
    default:
        gz_text_tower_free(t);
        return GZ_FAIL(GZ_EUNSUPPORTED, "text tower: unknown model family %d", (int)cfg->family);
    }
    if (st) goto fail;
    int64_t wshape[2] = {t->E, t->D}, bshape[1] = {t->E};
    if ((st = gz_st_f32_fmt(w, &t->proj_w, 2, wshape, "%s.weight", proj_name))) goto fail;
    if (has_bias && (st = gz_st_f32_fmt(w, &t->proj_b, 1, bshape, "%s.bias", proj_name))) goto fail;
    *out = t;
    return GZ_OK;
fail:
    gz_text_tower_free(t);
    return st;
}

void gz_text_tower_free(gz_text_tower *t) {
    if (!t) return;
    gz_bert_free(t->bert);
    gz_clip_text_free(t->clip);
    free(t);
}

void gz_text_tower_share_packed(gz_text_tower *t, gz_packw_cache *cache) {
    if (t->bert) gz_bert_share_packed(t->bert, cache);
}

int gz_text_tower_dim(const gz_text_tower *t) { return t->E; }
int gz_text_tower_hidden_size(const gz_text_tower *t) { return t->D; }
int gz_text_tower_num_layers(const gz_text_tower *t) { return t->L; }
int gz_text_tower_max_positions(const gz_text_tower *t) { return t->max_pos; }

gz_status gz_text_tower_encode(const gz_text_tower *t, const gz_compute *cx, const int32_t *ids,
                               const int32_t *mask, int B, int T, float *embeds, float *features,
                               float *last_hidden, float *all_hidden) {
    if (!t || !cx || !ids || !embeds || B <= 0 || T <= 0)
        return GZ_FAIL(GZ_EINVAL, "text encode: bad arguments (B %d, T %d)", B, T);
    const int D = t->D, E = t->E;
    /* A BERT tower pools each text's first token, a CLIP one its EOS: without states to
     * return, the forward runs only what reaches those rows and gives them alone. */
    const int first_only = !last_hidden && !all_hidden;
    size_t N = (size_t)B * (size_t)T, nh, nfl;
    /* Scratch: the hidden state unless the caller wants it or only the first rows run, plus
     * pooled (B, D). */
    if (!gz_mul_size(N, (size_t)D, &nh) ||
        !gz_add_size(last_hidden || first_only ? 0 : nh, (size_t)B * D, &nfl))
        return GZ_FAIL(GZ_ENOMEM, "text encode: batch %d x %d too large", B, T);
    float *scratch = gz_malloc_n(nfl, sizeof(float), "text encode scratch");
    if (!scratch) return GZ_ENOMEM;
    float *hidden = last_hidden ? last_hidden : scratch;            /* (B, T, D) */
    float *pooled = scratch + (last_hidden || first_only ? 0 : nh); /* (B, D) */

    gz_status st =
        first_only && t->bert
            ? gz_bert_forward_first(t->bert, cx, ids, mask, NULL, B, T, NULL, pooled)
        : first_only
            ? gz_clip_text_forward_pooled(t->clip, cx, ids, mask, B, T, t->eos_token_id, pooled)
        : t->bert ? gz_bert_forward(t->bert, cx, ids, mask, NULL, B, T, NULL, hidden, all_hidden)
                  : gz_clip_text_forward(t->clip, cx, ids, mask, B, T, hidden, all_hidden);
    if (st) {
        free(scratch);
        return st;
    }
    for (int b = 0; b < B && !first_only; b++) {
        int p = t->clip ? gz_clip_pool_index(ids + (size_t)b * T, T, t->eos_token_id) : 0;
        assert(p >= 0 && p < T);
        memcpy(pooled + (size_t)b * D, hidden + ((size_t)b * T + (size_t)p) * D,
               (size_t)D * sizeof *pooled);
    }
    gz_linear(pooled, t->proj_w, t->proj_b, embeds, B, D, E); /* (B, E) */
    if (features) memcpy(features, embeds, (size_t)B * E * sizeof *embeds);
    gz_l2_normalize(embeds, B, E, GZ_TEXT_NORM_EPS);
    free(scratch);
    return GZ_OK;
}
