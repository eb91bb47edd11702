/* clip_text.c - CLIP text transformer: token + position embeddings, pre-LN causal layers,
 * final LayerNorm.
 *
 * Legend: B = texts, T = padded length, N = B*T token rows, D = hidden size, H = heads,
 *         Dh = D / H, F = MLP size, L = layers. */
#include "text_encoder/clip_text.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/kernels.h"
#include "core/linear.h"
#include "text_encoder/tx_internal.h"

typedef struct {
    const float *ln1_w, *ln1_b;                     /* (D) */
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* (D, D), (D) */
    const float *o_w, *o_b;                         /* (D, D), (D) */
    const float *ln2_w, *ln2_b;                     /* (D) */
    const float *fc1_w, *fc1_b;                     /* (F, D), (F) */
    const float *fc2_w, *fc2_b;                     /* (D, F), (D) */
    gz_packw q_p, k_p, v_p, o_p, fc1_p, fc2_p;      /* packed copies (core/linear.h) */
} clip_layer;

struct gz_clip_text {
    gz_text_config cfg;
    int D, H, Dh, F, L;
    const float *tok;           /* (vocab, D) */
    const float *pos;           /* (max_pos, D) */
    const float *fln_w, *fln_b; /* (D) */
    clip_layer *layers;         /* (L) owned */
    /* The packed copies are made before the forward that asks for them once they are due
     * (gz_linear_pack_due); the model is shared by threads, so under this lock (the one change
     * to a loaded model). */
    pthread_mutex_t pack_lock;
    int packed[2];             /* by gz_pack_kind: 1 once every copy of that form exists; read
                                  and written under pack_lock */
    size_t rows_in_place;      /* rows run before the copies existed (gz_linear_pack_due); under
                                  pack_lock */
    const gz_st_file *weights; /* borrowed: the checkpoint the weights point into */
};

gz_status gz_clip_text_load(gz_st_file *w, const char *prefix, const gz_text_config *cfg,
                            gz_clip_text **out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "gz_clip_text_load: out is NULL");
    *out = NULL;
    if (!w || !prefix || !cfg) return GZ_FAIL(GZ_EINVAL, "gz_clip_text_load: NULL argument");
    int D = cfg->hidden_size, H = cfg->num_heads, F = cfg->intermediate_size;
    int L = cfg->num_layers;
    if (D <= 0 || H <= 0 || D % H != 0 || F <= 0 || L <= 0 || cfg->vocab_size <= 0 ||
        cfg->max_position_embeddings <= 0)
        return GZ_FAIL(GZ_EINVAL,
                       "%s: bad CLIP text config (hidden %d, heads %d, intermediate %d, "
                       "layers %d, vocab %d, positions %d)",
                       prefix, D, H, F, L, cfg->vocab_size, cfg->max_position_embeddings);
    gz_clip_text *m = calloc(1, sizeof *m);
    if (!m) return GZ_FAIL(GZ_ENOMEM, "out of memory loading the CLIP text model");
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) {
        free(m);
        return GZ_FAIL(GZ_ENOMEM, "out of memory loading the CLIP text model");
    }
    pthread_mutex_init(&m->pack_lock, NULL);
    m->cfg = *cfg;
    m->weights = w;
    m->D = D, m->H = H, m->Dh = D / H, m->F = F, m->L = L;
    gz_status st;
    if ((st = tx_get_w(w, prefix, "embeddings.token_embedding.weight", cfg->vocab_size, D,
                       &m->tok)) ||
        (st = tx_get_w(w, prefix, "embeddings.position_embedding.weight",
                       cfg->max_position_embeddings, D, &m->pos)) ||
        (st = tx_get_w(w, prefix, "final_layer_norm.weight", D, 0, &m->fln_w)) ||
        (st = tx_get_w(w, prefix, "final_layer_norm.bias", D, 0, &m->fln_b)))
        goto fail;
    for (int l = 0; l < L; l++) {
        clip_layer *ly = &m->layers[l];
        char base[256];
        int n = snprintf(base, sizeof base, "%sencoder.layers.%d.", prefix, l);
        if (n < 0 || (size_t)n >= sizeof base) {
            st = GZ_FAIL(GZ_EINVAL, "tensor name prefix too long: %s", prefix);
            goto fail;
        }
        if ((st = tx_get_w(w, base, "layer_norm1.weight", D, 0, &ly->ln1_w)) ||
            (st = tx_get_w(w, base, "layer_norm1.bias", D, 0, &ly->ln1_b)) ||
            (st = tx_get_w(w, base, "self_attn.q_proj.weight", D, D, &ly->q_w)) ||
            (st = tx_get_w(w, base, "self_attn.q_proj.bias", D, 0, &ly->q_b)) ||
            (st = tx_get_w(w, base, "self_attn.k_proj.weight", D, D, &ly->k_w)) ||
            (st = tx_get_w(w, base, "self_attn.k_proj.bias", D, 0, &ly->k_b)) ||
            (st = tx_get_w(w, base, "self_attn.v_proj.weight", D, D, &ly->v_w)) ||
            (st = tx_get_w(w, base, "self_attn.v_proj.bias", D, 0, &ly->v_b)) ||
            (st = tx_get_w(w, base, "self_attn.out_proj.weight", D, D, &ly->o_w)) ||
            (st = tx_get_w(w, base, "self_attn.out_proj.bias", D, 0, &ly->o_b)) ||
            (st = tx_get_w(w, base, "layer_norm2.weight", D, 0, &ly->ln2_w)) ||
            (st = tx_get_w(w, base, "layer_norm2.bias", D, 0, &ly->ln2_b)) ||
            (st = tx_get_w(w, base, "mlp.fc1.weight", F, D, &ly->fc1_w)) ||
            (st = tx_get_w(w, base, "mlp.fc1.bias", F, 0, &ly->fc1_b)) ||
            (st = tx_get_w(w, base, "mlp.fc2.weight", D, F, &ly->fc2_w)) ||
            (st = tx_get_w(w, base, "mlp.fc2.bias", D, 0, &ly->fc2_b)))
            goto fail;
    }
    *out = m;
    return GZ_OK;
fail:
    gz_clip_text_free(m);
    return st;
}

static void free_packed(gz_clip_text *m) {
    for (int l = 0; l < m->L && m->layers; l++) {
        clip_layer *ly = &m->layers[l];
        gz_packw *all[] = {&ly->q_p, &ly->k_p, &ly->v_p, &ly->o_p, &ly->fc1_p, &ly->fc2_p};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            gz_packw_free(all[i]);
    }
}

void gz_clip_text_free(gz_clip_text *m) {
    if (!m) return;
    free_packed(m);
    pthread_mutex_destroy(&m->pack_lock);
    free(m->layers);
    free(m);
}

int gz_clip_text_hidden_size(const gz_clip_text *m) { return m->D; }
int gz_clip_text_num_layers(const gz_clip_text *m) { return m->L; }

int gz_clip_pool_index(const int32_t *ids, int T, int eos_token_id) {
    int best = 0;
    if (eos_token_id == 2) {
        for (int t = 1; t < T; t++)
            if (ids[t] > ids[best]) best = t;
        return best;
    }
    for (int t = 0; t < T; t++)
        if (ids[t] == eos_token_id) return t;
    return 0;
}

/* Make the packed copies cx's kernels read (gz_linear_pack_kind) for a forward of rows rows,
 * once per model and form; *use as in BERT's (bert.c): 1 when the forward is to read them. */
static gz_status ensure_packed(const gz_clip_text *cm, const gz_compute *cx, size_t rows,
                               int *use) {
    gz_pack_kind kind;
    *use = 0;
    if (!gz_linear_pack_kind(cx, &kind)) return GZ_OK;
    gz_clip_text *m = (gz_clip_text *)cm; /* the packing is the one change, under the lock */
    gz_status st = GZ_OK;
    pthread_mutex_lock(&m->pack_lock);
    if (!m->packed[kind] && gz_linear_pack_due(cx, kind, m->rows_in_place + rows)) {
        const int D = m->D, F = m->F;
        gz_packw_job *jobs = gz_malloc_n((size_t)m->L, 6 * sizeof *jobs, "CLIP text packed copy");
        size_t n = 0;
        for (int l = 0; jobs && l < m->L; l++) {
            clip_layer *ly = &m->layers[l];
            jobs[n++] = (gz_packw_job){ly->q_w, D, D, &ly->q_p, m->weights};
            jobs[n++] = (gz_packw_job){ly->k_w, D, D, &ly->k_p, m->weights};
            jobs[n++] = (gz_packw_job){ly->v_w, D, D, &ly->v_p, m->weights};
            jobs[n++] = (gz_packw_job){ly->o_w, D, D, &ly->o_p, m->weights};
            jobs[n++] = (gz_packw_job){ly->fc1_w, F, D, &ly->fc1_p, m->weights};
            jobs[n++] = (gz_packw_job){ly->fc2_w, D, F, &ly->fc2_p, m->weights};
        }
        st = jobs ? gz_packw_pack_all(cx, NULL, kind, jobs, n) : GZ_ENOMEM;
        free(jobs);
        if (st == GZ_OK) m->packed[kind] = 1;
    }
    if (!m->packed[kind]) m->rows_in_place += rows;
    *use = m->packed[kind];
    pthread_mutex_unlock(&m->pack_lock);
    return st;
}

/* The packed copies p when the forward reads them (ensure_packed), else none. */
static const gz_packw *copies(int use, const gz_packw *p) { return use ? p : NULL; }

/* y(N, out) = x(N, in) · W^T + b on cx's kernel (core/linear.h: the packed copies in wp when
 * there are). */
static gz_status lin(const gz_compute *cx, const float *x, const float *w, const gz_packw *wp,
                     const float *b, float *y, int N, int in, int out) {
    return gz_linear_cx(cx, x, w, wp, b, y, out, N, in, out);
}

gz_status gz_clip_text_forward(const gz_clip_text *m, const gz_compute *cx, const int32_t *ids,
                               const int32_t *mask, int B, int T, float *hidden,
                               float *all_hidden) {
    if (!m || !cx || !ids || !hidden || B <= 0 || T <= 0)
        return GZ_FAIL(GZ_EINVAL, "CLIP text forward: bad arguments (B %d, T %d)", B, T);
    if (T > m->cfg.max_position_embeddings)
        return GZ_FAIL(GZ_EINVAL, "text of %d tokens exceeds the model's %d positions", T,
                       m->cfg.max_position_embeddings);
    gz_status st = tx_check_tokens("CLIP text forward", &m->cfg, ids, NULL, mask, B, T);
    if (st != GZ_OK) return st;
    const int D = m->D, F = m->F;
    size_t N = (size_t)B * (size_t)T;
    int use;
    if ((st = ensure_packed(m, cx, N, &use)) != GZ_OK) return st;

    /* Scratch: x, h, q, k, v, ctx (N, D) and mlp (N, F). */
    size_t nfl;
    if ((st = tx_scratch_floats("CLIP text forward", B, T, D, F, &nfl)) != GZ_OK) return st;
    float *scratch = gz_scratch_take(cx->scratch, nfl);
    if (!scratch) return GZ_FAIL(GZ_ENOMEM, "out of memory for the CLIP text forward's scratch");
    float *x = scratch;       /* (N, D) residual stream */
    float *h = x + N * D;     /* (N, D) normalised input / block output */
    float *q = h + N * D;     /* (N, D) */
    float *k = q + N * D;     /* (N, D) */
    float *v = k + N * D;     /* (N, D) */
    float *ctx = v + N * D;   /* (N, D) */
    float *mlp = ctx + N * D; /* (N, F) */

    tx_embed_sum(m->tok, m->pos, ids, N, T, D, x);
    if (all_hidden) memcpy(all_hidden, x, N * D * sizeof *x);

    const float scale = 1.0f / sqrtf((float)m->Dh);
    for (int l = 0; l < m->L; l++) {
        const clip_layer *ly = &m->layers[l];
        gz_layernorm(cx, h, x, ly->ln1_w, ly->ln1_b, (int)N, D, m->cfg.layer_norm_eps);
        if ((st = lin(cx, h, ly->q_w, copies(use, &ly->q_p), ly->q_b, q, (int)N, D, D)) ||
            (st = lin(cx, h, ly->k_w, copies(use, &ly->k_p), ly->k_b, k, (int)N, D, D)) ||
            (st = lin(cx, h, ly->v_w, copies(use, &ly->v_p), ly->v_b, v, (int)N, D, D)))
            goto out;
        if ((st = gz_attention(cx, q, D, k, v, D, ctx, B, T, T, m->H, m->Dh, mask, 1, scale)))
            goto out;
        if ((st = lin(cx, ctx, ly->o_w, copies(use, &ly->o_p), ly->o_b, h, (int)N, D, D))) goto out;
        gz_add_layernorm(cx, x, h, h, ly->ln2_w, ly->ln2_b, (int)N, D, m->cfg.layer_norm_eps);
        if ((st = gz_linear_act_cx(cx, h, ly->fc1_w, copies(use, &ly->fc1_p), ly->fc1_b,
                                   (int)m->cfg.act, mlp, F, (int)N, D, F)))
            goto out; /* (N, F), activated */
        if ((st = lin(cx, mlp, ly->fc2_w, copies(use, &ly->fc2_p), ly->fc2_b, h, (int)N, F, D)))
            goto out;
        gz_add_cx(cx, x, h, N * D);
        if (all_hidden) memcpy(all_hidden + (size_t)(l + 1) * N * D, x, N * D * sizeof *x);
    }
    gz_layernorm(cx, hidden, x, m->fln_w, m->fln_b, (int)N, D, m->cfg.layer_norm_eps);
out:
    gz_scratch_give(cx->scratch, scratch);
    return st;
}
