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

/* h = LN1(x) (R, D); q, k, v = h's projections; q is skipped when NULL. */
static gz_status block_qkv(const gz_clip_text *m, const gz_compute *cx, const clip_layer *ly,
                           int use, const float *x, float *h, float *q, float *k, float *v, int R) {
    const int D = m->D;
    gz_status st;
    gz_layernorm(cx, h, x, ly->ln1_w, ly->ln1_b, R, D, m->cfg.layer_norm_eps);
    if ((q && (st = lin(cx, h, ly->q_w, copies(use, &ly->q_p), ly->q_b, q, R, D, D))) ||
        (st = lin(cx, h, ly->k_w, copies(use, &ly->k_p), ly->k_b, k, R, D, D)) ||
        (st = lin(cx, h, ly->v_w, copies(use, &ly->v_p), ly->v_b, v, R, D, D)))
        return st;
    return GZ_OK;
}

/* After the attention's ctx (R, D): x += out_proj(ctx); x += fc2(act(fc1(LN2(x)))); h (R, D)
 * and mlp (R, F) scratch. */
static gz_status block_tail(const gz_clip_text *m, const gz_compute *cx, const clip_layer *ly,
                            int use, float *x, const float *ctx, float *h, float *mlp, int R) {
    const int D = m->D, F = m->F;
    gz_status st;
    if ((st = lin(cx, ctx, ly->o_w, copies(use, &ly->o_p), ly->o_b, h, R, D, D))) return st;
    gz_add_layernorm(cx, x, h, h, ly->ln2_w, ly->ln2_b, R, D, m->cfg.layer_norm_eps);
    if ((st = gz_linear_act_cx(cx, h, ly->fc1_w, copies(use, &ly->fc1_p), ly->fc1_b,
                               (int)m->cfg.act, mlp, F, R, D, F)))
        return st; /* (R, F), activated */
    if ((st = lin(cx, mlp, ly->fc2_w, copies(use, &ly->fc2_p), ly->fc2_b, h, R, F, D))) return st;
    gz_add_cx(cx, x, h, (size_t)R * D);
    return GZ_OK;
}

/* The checks both forwards make of their arguments (out: the output they were given). */
static gz_status check_forward(const gz_clip_text *m, const gz_compute *cx, const int32_t *ids,
                               const int32_t *mask, int B, int T, const float *out) {
    if (!m || !cx || !ids || !out || B <= 0 || T <= 0)
        return GZ_FAIL(GZ_EINVAL, "CLIP text forward: bad arguments (B %d, T %d)", B, T);
    if (T > m->cfg.max_position_embeddings)
        return GZ_FAIL(GZ_EINVAL, "text of %d tokens exceeds the model's %d positions", T,
                       m->cfg.max_position_embeddings);
    return tx_check_tokens("CLIP text forward", &m->cfg, ids, NULL, mask, B, T);
}

gz_status gz_clip_text_forward(const gz_clip_text *m, const gz_compute *cx, const int32_t *ids,
                               const int32_t *mask, int B, int T, float *hidden,
                               float *all_hidden) {
    gz_status st = check_forward(m, cx, ids, mask, B, T, hidden);
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
        if ((st = block_qkv(m, cx, ly, use, x, h, q, k, v, (int)N)) ||
            (st = gz_attention(cx, q, D, k, v, D, ctx, B, T, T, m->H, m->Dh, mask, 1, scale)) ||
            (st = block_tail(m, cx, ly, use, x, ctx, h, mlp, (int)N)))
            goto out;
        if (all_hidden) memcpy(all_hidden + (size_t)(l + 1) * N * D, x, N * D * sizeof *x);
    }
    gz_layernorm(cx, hidden, x, m->fln_w, m->fln_b, (int)N, D, m->cfg.layer_norm_eps);
out:
    gz_scratch_give(cx->scratch, scratch);
    return st;
}

gz_status gz_clip_text_forward_pooled(const gz_clip_text *m, const gz_compute *cx,
                                      const int32_t *ids, const int32_t *mask, int B, int T,
                                      int eos_token_id, float *pooled) {
    gz_status st = check_forward(m, cx, ids, mask, B, T, pooled);
    if (st != GZ_OK) return st;
    const int D = m->D, F = m->F;
    size_t N = (size_t)B * (size_t)T;

    /* The rows kept: text b's positions up to its pool index p, padding left out (no later
     * row reaches p through the causal mask, and a padding key is masked in every layer), p
     * itself always. off (B + 1) numbers them, src their (B, T) positions, kmask their keys'
     * mask (0 only for a p that is padding). */
    int *idx = gz_malloc_n(2 * N + (size_t)B + 1, sizeof *idx, "CLIP text rows");
    if (!idx) return GZ_ENOMEM;
    int *off = idx, *src = off + B + 1;
    int32_t *kmask = src + N;
    int R = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *mb = mask ? mask + (size_t)b * T : NULL;
        int p = gz_clip_pool_index(ids + (size_t)b * T, T, eos_token_id);
        off[b] = R;
        for (int t = 0; t <= p; t++)
            if (!mb || mb[t] || t == p) {
                src[R] = b * T + t;
                kmask[R++] = !mb || mb[t];
            }
    }
    off[B] = R;
    int use;
    if ((st = ensure_packed(m, cx, (size_t)R, &use)) != GZ_OK) {
        free(idx);
        return st;
    }
    size_t nfl;
    if ((st = tx_scratch_floats("CLIP text forward", B, T, D, F, &nfl)) != GZ_OK) {
        free(idx);
        return st;
    }
    float *scratch = gz_scratch_take(cx->scratch, nfl);
    if (!scratch) {
        free(idx);
        return GZ_FAIL(GZ_ENOMEM, "out of memory for the CLIP text forward's scratch");
    }
    float *x = scratch;       /* (R, D) residual stream */
    float *h = x + N * D;     /* (R, D) normalised input / block output */
    float *q = h + N * D;     /* (R, D) */
    float *k = q + N * D;     /* (R, D) */
    float *v = k + N * D;     /* (R, D) */
    float *ctx = v + N * D;   /* (R, D) */
    float *mlp = ctx + N * D; /* (R, F) */

    for (int i = 0; i < R; i++) {
        const float *te = m->tok + (size_t)ids[src[i]] * D, *pe = m->pos + (size_t)(src[i] % T) * D;
        float *r = x + (size_t)i * D;
        for (int j = 0; j < D; j++)
            r[j] = te[j] + pe[j];
    }
    const float scale = 1.0f / sqrtf((float)m->Dh);
    /* Every layer but the last on the kept rows, each text's rows its own causal attention. */
    for (int l = 0; l + 1 < m->L && st == GZ_OK; l++) {
        const clip_layer *ly = &m->layers[l];
        if ((st = block_qkv(m, cx, ly, use, x, h, q, k, v, R))) break;
        for (int b = 0; b < B && st == GZ_OK; b++) {
            size_t r0 = (size_t)off[b] * D;
            int n = off[b + 1] - off[b];
            st = gz_attention(cx, q + r0, D, k + r0, v + r0, D, ctx + r0, 1, n, n, m->H, m->Dh,
                              kmask + off[b], 1, scale);
        }
        if (st == GZ_OK) st = block_tail(m, cx, ly, use, x, ctx, h, mlp, R);
    }
    /* The last layer: every row's keys and values, the rest for the pooled rows alone (each
     * text's last kept row, which every one of its keys precedes). */
    if (st == GZ_OK) {
        const clip_layer *ly = &m->layers[m->L - 1];
        float *xc = gz_malloc_n((size_t)2 * B, (size_t)D * sizeof *xc, "CLIP text pooled rows");
        float *hc = xc ? xc + (size_t)B * D : NULL; /* xc, hc (B, D) */
        if (!xc)
            st = GZ_ENOMEM;
        else if ((st = block_qkv(m, cx, ly, use, x, h, NULL, k, v, R)) == GZ_OK) {
            for (int b = 0; b < B; b++) {
                memcpy(xc + (size_t)b * D, x + (size_t)(off[b + 1] - 1) * D, (size_t)D * sizeof *x);
                memcpy(hc + (size_t)b * D, h + (size_t)(off[b + 1] - 1) * D, (size_t)D * sizeof *h);
            }
            st = lin(cx, hc, ly->q_w, copies(use, &ly->q_p), ly->q_b, q, B, D, D);
        }
        for (int b = 0; b < B && st == GZ_OK; b++) {
            size_t r0 = (size_t)off[b] * D;
            st = gz_attention(cx, q + (size_t)b * D, D, k + r0, v + r0, D, ctx + (size_t)b * D, 1,
                              1, off[b + 1] - off[b], m->H, m->Dh, kmask + off[b], 0, scale);
        }
        if (st == GZ_OK) st = block_tail(m, cx, ly, use, xc, ctx, h, mlp, B);
        if (st == GZ_OK)
            gz_layernorm(cx, pooled, xc, m->fln_w, m->fln_b, B, D, m->cfg.layer_norm_eps);
        free(xc);
    }
    gz_scratch_give(cx->scratch, scratch);
    free(idx);
    return st;
}
