/* bert.c - BERT text encoder (post-LN) with optional cross-attention (BLIP ITM).
 *
 * Legend: B = texts, T = padded length, N = B*T token rows, D = hidden size, H = heads,
 *         Dh = D / H, F = intermediate size, L = layers, Ti = image tokens, De = image hidden. */
#include "text_encoder/bert.h"

#include <assert.h>
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
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* (D, Din), (D); Din = D or De */
    const float *o_w, *o_b;                         /* (D, D), (D) */
    const float *ln_w, *ln_b;                       /* (D) */
    gz_packw q_p, k_p, v_p, o_p;                    /* packed copies (core/linear.h) */
} bert_attn;

typedef struct {
    bert_attn self;
    bert_attn cross;          /* all NULL without cross-attention */
    const float *i_w, *i_b;   /* (F, D), (F) */
    const float *o_w, *o_b;   /* (D, F), (D) */
    const float *ln_w, *ln_b; /* (D) */
    gz_packw i_p, o_p;        /* packed copies of i_w, o_w */
} bert_layer;

struct gz_bert {
    gz_text_config cfg;
    int D, H, Dh, F, L, De, with_cross;
    const float *word;                /* (vocab, D) */
    const float *pos;                 /* (max_pos, D) */
    const float *type;                /* (type_vocab, D) or NULL */
    const float *emb_ln_w, *emb_ln_b; /* (D) */
    bert_layer *layers;               /* (L) owned */
    /* The packed copies are made before the forward that asks for them once they are due
     * (gz_linear_pack_due: fp32 after cx->pack_after_rows rows, so a one-off query does not pay
     * for the copy); the model is shared by threads, so under this lock (the one change to a
     * loaded model). */
    pthread_mutex_t pack_lock;
    int packed[2]; /* by gz_pack_kind: 1 once every copy of that form exists; under pack_lock */
    size_t rows_in_place; /* rows run before the copies existed (gz_linear_pack_due); ditto */
    /* Where the copies live when another encoder runs the same weights (gz_bert_share_packed):
     * borrowed, or NULL = this encoder owns its copies. */
    gz_packw_cache *pack_cache;
    const gz_st_file *weights; /* borrowed: the checkpoint the weights point into */
};

/* Load one attention block "<prefix><blk>.{self.{query,key,value},output.{dense,LayerNorm}}". */
static gz_status load_attn(gz_st_file *w, const char *prefix, int layer, const char *blk, int D,
                           int Din, bert_attn *a) {
    char base[256];
    int n = snprintf(base, sizeof base, "%sencoder.layer.%d.%s.", prefix, layer, blk);
    if (n < 0 || (size_t)n >= sizeof base)
        return GZ_FAIL(GZ_EINVAL, "tensor name prefix too long: %s", prefix);
    gz_status st;
    if ((st = tx_get_w(w, base, "self.query.weight", D, D, &a->q_w)) ||
        (st = tx_get_w(w, base, "self.query.bias", D, 0, &a->q_b)) ||
        (st = tx_get_w(w, base, "self.key.weight", D, Din, &a->k_w)) ||
        (st = tx_get_w(w, base, "self.key.bias", D, 0, &a->k_b)) ||
        (st = tx_get_w(w, base, "self.value.weight", D, Din, &a->v_w)) ||
        (st = tx_get_w(w, base, "self.value.bias", D, 0, &a->v_b)) ||
        (st = tx_get_w(w, base, "output.dense.weight", D, D, &a->o_w)) ||
        (st = tx_get_w(w, base, "output.dense.bias", D, 0, &a->o_b)) ||
        (st = tx_get_w(w, base, "output.LayerNorm.weight", D, 0, &a->ln_w)) ||
        (st = tx_get_w(w, base, "output.LayerNorm.bias", D, 0, &a->ln_b)))
        return st;
    return GZ_OK;
}

gz_status gz_bert_load(gz_st_file *w, const char *prefix, const gz_text_config *cfg, int with_cross,
                       gz_bert **out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "gz_bert_load: out is NULL");
    *out = NULL;
    if (!w || !prefix || !cfg) return GZ_FAIL(GZ_EINVAL, "gz_bert_load: NULL argument");
    int D = cfg->hidden_size, H = cfg->num_heads, F = cfg->intermediate_size;
    int L = cfg->num_layers;
    if (D <= 0 || H <= 0 || D % H != 0 || F <= 0 || L <= 0 || cfg->vocab_size <= 0 ||
        cfg->max_position_embeddings <= 0 || cfg->type_vocab_size < 0)
        return GZ_FAIL(GZ_EINVAL,
                       "%sencoder: bad text config (hidden %d, heads %d, intermediate %d, "
                       "layers %d, vocab %d, positions %d)",
                       prefix, D, H, F, L, cfg->vocab_size, cfg->max_position_embeddings);
    if (with_cross && cfg->encoder_hidden_size <= 0)
        return GZ_FAIL(GZ_EINVAL, "%sencoder: cross-attention needs encoder_hidden_size > 0",
                       prefix);
    gz_bert *m = calloc(1, sizeof *m);
    if (!m) return GZ_FAIL(GZ_ENOMEM, "out of memory loading the BERT encoder");
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) {
        free(m);
        return GZ_FAIL(GZ_ENOMEM, "out of memory loading the BERT encoder");
    }
    pthread_mutex_init(&m->pack_lock, NULL);
    m->cfg = *cfg;
    m->weights = w;
    m->D = D, m->H = H, m->Dh = D / H, m->F = F, m->L = L;
    m->De = with_cross ? cfg->encoder_hidden_size : 0;
    m->with_cross = with_cross ? 1 : 0;

    gz_status st;
    if ((st = tx_get_w(w, prefix, "embeddings.word_embeddings.weight", cfg->vocab_size, D,
                       &m->word)) ||
        (st = tx_get_w(w, prefix, "embeddings.position_embeddings.weight",
                       cfg->max_position_embeddings, D, &m->pos)) ||
        (st = tx_get_w(w, prefix, "embeddings.LayerNorm.weight", D, 0, &m->emb_ln_w)) ||
        (st = tx_get_w(w, prefix, "embeddings.LayerNorm.bias", D, 0, &m->emb_ln_b)))
        goto fail;
    if (cfg->type_vocab_size > 0 &&
        (st = tx_get_w(w, prefix, "embeddings.token_type_embeddings.weight", cfg->type_vocab_size,
                       D, &m->type)))
        goto fail;
    for (int l = 0; l < L; l++) {
        bert_layer *ly = &m->layers[l];
        char base[256];
        int n = snprintf(base, sizeof base, "%sencoder.layer.%d.", prefix, l);
        if (n < 0 || (size_t)n >= sizeof base) {
            st = GZ_FAIL(GZ_EINVAL, "tensor name prefix too long: %s", prefix);
            goto fail;
        }
        if ((st = load_attn(w, prefix, l, "attention", D, D, &ly->self))) goto fail;
        if (with_cross && (st = load_attn(w, prefix, l, "crossattention", D, m->De, &ly->cross)))
            goto fail;
        if ((st = tx_get_w(w, base, "intermediate.dense.weight", F, D, &ly->i_w)) ||
            (st = tx_get_w(w, base, "intermediate.dense.bias", F, 0, &ly->i_b)) ||
            (st = tx_get_w(w, base, "output.dense.weight", D, F, &ly->o_w)) ||
            (st = tx_get_w(w, base, "output.dense.bias", D, 0, &ly->o_b)) ||
            (st = tx_get_w(w, base, "output.LayerNorm.weight", D, 0, &ly->ln_w)) ||
            (st = tx_get_w(w, base, "output.LayerNorm.bias", D, 0, &ly->ln_b)))
            goto fail;
    }
    *out = m;
    return GZ_OK;
fail:
    gz_bert_free(m);
    return st;
}

static void free_attn_packed(bert_attn *a) {
    gz_packw_free(&a->q_p);
    gz_packw_free(&a->k_p);
    gz_packw_free(&a->v_p);
    gz_packw_free(&a->o_p);
}

void gz_bert_free(gz_bert *m) {
    if (!m) return;
    for (int l = 0; l < m->L && m->layers; l++) {
        free_attn_packed(&m->layers[l].self);
        free_attn_packed(&m->layers[l].cross);
        gz_packw_free(&m->layers[l].i_p);
        gz_packw_free(&m->layers[l].o_p);
    }
    pthread_mutex_destroy(&m->pack_lock);
    free(m->layers);
    free(m);
}

int gz_bert_hidden_size(const gz_bert *m) { return m->D; }
int gz_bert_num_layers(const gz_bert *m) { return m->L; }
int gz_bert_has_cross(const gz_bert *m) { return m->with_cross; }

size_t gz_bert_cross_kv_floats(const gz_bert *m, int Ti) {
    size_t n;
    if (Ti <= 0 || !gz_mul_size((size_t)2 * (size_t)m->L, (size_t)Ti, &n) ||
        !gz_mul_size(n, (size_t)m->D, &n))
        return 0;
    return n;
}

static gz_status ensure_packed(const gz_bert *cm, const gz_compute *cx, size_t rows, int *use);

gz_status gz_bert_cross_kv(const gz_bert *m, const gz_compute *cx, const float *enc, int Ti,
                           float *kv) {
    if (!m->with_cross)
        return GZ_FAIL(GZ_EINVAL, "BERT encoder was loaded without cross-attention weights");
    if (!cx || !enc || !kv || Ti <= 0) return GZ_FAIL(GZ_EINVAL, "gz_bert_cross_kv: bad arguments");
    if (gz_bert_cross_kv_floats(m, Ti) == 0)
        return GZ_FAIL(GZ_ENOMEM, "cross-attention keys/values for %d image tokens too large", Ti);
    int use;
    gz_status st = ensure_packed(m, cx, (size_t)Ti, &use);
    if (st != GZ_OK) return st;
    size_t plane = (size_t)Ti * (size_t)m->D;
    for (int l = 0; l < m->L; l++) {
        const bert_attn *a = &m->layers[l].cross;
        float *k = kv + (size_t)l * 2 * plane; /* (Ti, D) */
        float *v = k + plane;                  /* (Ti, D) */
        st = gz_linear_cx(cx, enc, a->k_w, &a->k_p, a->k_b, k, m->D, Ti, m->De, m->D);
        if (st == GZ_OK)
            st = gz_linear_cx(cx, enc, a->v_w, &a->v_p, a->v_b, v, m->D, Ti, m->De, m->D);
        if (st != GZ_OK) return st;
    }
    return GZ_OK;
}

/* The kind copies of every Linear weight of the forward pass, and in bf16 of the
 * cross-attention keys and values too (gz_bert_cross_kv: once per image), on cx's threads.
 * fp32 leaves those two as stored: a re-rank folds the query into them (cross_folded), reading
 * them in place. Called with pack_lock held; all or nothing. */
static gz_status pack_weights(gz_bert *m, const gz_compute *cx, gz_pack_kind kind) {
    const int D = m->D, F = m->F;
    gz_packw_job *jobs = gz_malloc_n((size_t)m->L, 10 * sizeof *jobs, "BERT packed copy");
    if (!jobs) return GZ_ENOMEM;
    size_t n = 0;
    for (int l = 0; l < m->L; l++) {
        bert_layer *ly = &m->layers[l];
        jobs[n++] = (gz_packw_job){ly->self.q_w, D, D, &ly->self.q_p, m->weights};
        jobs[n++] = (gz_packw_job){ly->self.k_w, D, D, &ly->self.k_p, m->weights};
        jobs[n++] = (gz_packw_job){ly->self.v_w, D, D, &ly->self.v_p, m->weights};
        jobs[n++] = (gz_packw_job){ly->self.o_w, D, D, &ly->self.o_p, m->weights};
        jobs[n++] = (gz_packw_job){ly->i_w, F, D, &ly->i_p, m->weights};
        jobs[n++] = (gz_packw_job){ly->o_w, D, F, &ly->o_p, m->weights};
        if (m->with_cross) {
            jobs[n++] = (gz_packw_job){ly->cross.q_w, D, D, &ly->cross.q_p, m->weights};
            jobs[n++] = (gz_packw_job){ly->cross.o_w, D, D, &ly->cross.o_p, m->weights};
            if (kind == GZ_PACK_F32) continue;
            jobs[n++] = (gz_packw_job){ly->cross.k_w, D, m->De, &ly->cross.k_p, m->weights};
            jobs[n++] = (gz_packw_job){ly->cross.v_w, D, m->De, &ly->cross.v_p, m->weights};
        }
    }
    gz_status st = gz_packw_pack_all(cx, m->pack_cache, kind, jobs, n);
    free(jobs);
    return st;
}

void gz_bert_share_packed(gz_bert *m, gz_packw_cache *cache) {
    pthread_mutex_lock(&m->pack_lock);
    assert(!m->packed[GZ_PACK_BF16] && !m->packed[GZ_PACK_F32]); /* before any (bert.h) */
    m->pack_cache = cache;
    pthread_mutex_unlock(&m->pack_lock);
}

/* Make the packed copies cx's kernels read (gz_linear_pack_kind) when they are due
 * (gz_linear_pack_due), before a forward of rows rows, once per model and form. *use = 1 when
 * the forward is to read them (they exist); 0 when it is to pass none: it then never reads a
 * copy that another thread may be making. */
static gz_status ensure_packed(const gz_bert *cm, const gz_compute *cx, size_t rows, int *use) {
    gz_pack_kind kind;
    *use = 0;
    if (!gz_linear_pack_kind(cx, &kind)) return GZ_OK;
    gz_bert *m = (gz_bert *)cm; /* the packing is the one change, under the lock */
    gz_status st = GZ_OK;
    pthread_mutex_lock(&m->pack_lock);
    if (!m->packed[kind] && gz_linear_pack_due(cx, kind, m->rows_in_place + rows) &&
        (st = pack_weights(m, cx, kind)) == GZ_OK)
        m->packed[kind] = 1;
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

/* x(N, D) = LN(x + (ctx(N, D) · Wo^T + bo)); tmp (N, D) scratch. */
static gz_status attn_output(const gz_bert *m, const gz_compute *cx, const bert_attn *a, int use,
                             float *x, const float *ctx, float *tmp, int N) {
    gz_status st = lin(cx, ctx, a->o_w, copies(use, &a->o_p), a->o_b, tmp, N, m->D, m->D);
    if (st != GZ_OK) return st;
    gz_add_layernorm(cx, tmp, x, x, a->ln_w, a->ln_b, N, m->D, m->cfg.layer_norm_eps);
    return GZ_OK;
}

int gz_bert_cross_fold_wins(const gz_bert *m, int Ti, int rows) {
    if (!m->with_cross || Ti <= 0 || rows <= 0) return 0;
    /* Multiply-adds per layer; see cross_folded for the folded terms. */
    double D = m->D, De = m->De, H = m->H, R = rows, K = Ti;
    double projected = 2 * K * De * D + 2 * R * K * D;
    double folded = 2 * R * D * De + 2 * H * R * K * De;
    return folded < projected;
}

typedef struct {
    const float *q; /* (R, D) queries, row stride D */
    const float *w; /* key weight (D, De) for fold_keys; value weight for unfold_values */
    const float *b; /* value bias (D), unfold_values */
    float *a;       /* (H, R, De): per head, the queries through the keys; the weighted states */
    float *ctx;     /* (R, D) output of unfold_values */
    const float *scores; /* (H * R, Ti) softmax rows, for weigh_states */
    const float *states; /* (Ti, De) */
    int R, D, De, Dh, Ti;
    float scale;
} fold_args;

/* Heads [h0, h1): a_h (R, De) = scale * q_h (R, Dh) · Wk_h (Dh, De). */
static void fold_keys(void *ctx, size_t h0, size_t h1) {
    const fold_args *f = ctx;
    for (size_t h = h0; h < h1; h++)
        gz_sgemm(0, 0, f->R, f->De, f->Dh, f->scale, f->q + h * f->Dh, f->D,
                 f->w + h * f->Dh * f->De, f->De, 0.0f, f->a + h * f->R * f->De, f->De);
}

/* Rows [r0, r1) of the H * R score rows: a (H * R, De) = scores (., Ti) · states (Ti, De). */
static void weigh_states(void *ctx, size_t r0, size_t r1) {
    const fold_args *f = ctx;
    gz_sgemm(0, 0, (int)(r1 - r0), f->De, f->Ti, 1.0f, f->scores + r0 * f->Ti, f->Ti, f->states,
             f->De, 0.0f, f->a + r0 * f->De, f->De);
}

/* Heads [h0, h1): ctx_h (R, Dh) = a_h (R, De) · Wv_h (Dh, De)^T + bv_h. */
static void unfold_values(void *ctx, size_t h0, size_t h1) {
    const fold_args *f = ctx;
    for (size_t h = h0; h < h1; h++) {
        float *out = f->ctx + h * f->Dh;
        gz_sgemm(0, 1, f->R, f->Dh, f->De, 1.0f, f->a + h * f->R * f->De, f->De,
                 f->w + h * f->Dh * f->De, f->De, 0.0f, out, f->D);
        for (int r = 0; r < f->R; r++)
            for (int j = 0; j < f->Dh; j++)
                out[(size_t)r * f->D + j] += f->b[h * f->Dh + j];
    }
}

/* Cross-attention of R query rows q (R, D) to one image's states (Ti, De) without its keys and
 * values. Per head h and key j, q_h · k_j = (q_h Wk_h) · e_j + q_h · bk_h, and the last term is
 * the same for every key, which the softmax ignores; sum_j p_j (Wv_h e_j + bv_h) =
 * Wv_h (sum_j p_j e_j) + bv_h because a softmax row sums to 1. So the H * R rows q_h Wk_h attend
 * to the states as one head of width De, and the weighted states go through Wv_h: per layer
 * 2 R D De + 2 H R Ti De multiply-adds instead of 2 Ti De D for the image's keys and values
 * (BLIP-384, one query of 9 tokens: 0.2 GFLOP instead of 1.4). Equal to the projected
 * attention up to float rounding (the key bias, constant per row, is dropped). */
static gz_status cross_folded(const gz_bert *m, const gz_compute *cx, const bert_attn *a,
                              const float *q, const float *states, int Ti, int R, float scale,
                              float *ctx) {
    const int H = m->H, De = m->De;
    size_t HR = (size_t)H * R, nw, ns, total;
    if (!gz_mul_size(HR, (size_t)De, &nw) || !gz_mul_size(HR, (size_t)Ti, &ns) ||
        !gz_add_size(nw, ns, &total))
        return GZ_FAIL(GZ_ENOMEM, "cross-attention of %d rows to %d image tokens too large", R, Ti);
    float *w = gz_malloc_n(total, sizeof *w, "folded cross-attention");
    if (!w) return GZ_ENOMEM;
    float *scores = w + nw; /* (H * R, Ti) */
    fold_args f = {q, a->k_w, a->v_b, w, ctx, scores, states, R, m->D, De, m->Dh, Ti, scale};
    gz_pool_for(cx->pool, (size_t)H, 1, cx->n_threads, fold_keys, &f);
    gz_status st = gz_linear_cx(cx, w, states, NULL, NULL, scores, Ti, (int)HR, De, Ti);
    if (st == GZ_OK) {
        gz_softmax_rows(cx, scores, (int)HR, Ti);
        gz_pool_for(cx->pool, HR, 8, cx->n_threads, weigh_states, &f);
        f.w = a->v_w;
        gz_pool_for(cx->pool, (size_t)H, 1, cx->n_threads, unfold_values, &f);
    }
    free(w);
    return st;
}

/* The reference for an image given by its states: its keys and values projected for this
 * layer (the bias included), then the attention as for a prepared image. */
static gz_status cross_projected(const gz_bert *m, const gz_compute *cx, const bert_attn *a,
                                 const float *q, const float *states, int Ti, int R, float scale,
                                 float *ctx) {
    size_t plane;
    if (!gz_mul_size((size_t)Ti, (size_t)m->D, &plane) || plane > SIZE_MAX / 2)
        return GZ_FAIL(GZ_ENOMEM, "cross-attention keys/values for %d image tokens too large", Ti);
    float *k = gz_malloc_n(2 * plane, sizeof *k, "cross-attention keys/values");
    if (!k) return GZ_ENOMEM;
    float *v = k + plane;
    gz_status st = gz_linear_cx(cx, states, a->k_w, &a->k_p, a->k_b, k, m->D, Ti, m->De, m->D);
    if (st == GZ_OK)
        st = gz_linear_cx(cx, states, a->v_w, &a->v_p, a->v_b, v, m->D, Ti, m->De, m->D);
    if (st == GZ_OK)
        st = gz_attention(cx, q, m->D, k, v, m->D, ctx, 1, R, Ti, m->H, m->Dh, NULL, 0, scale);
    free(k);
    return st;
}

/* Cross-attention of the query rows q (text b's rows [off[b], off[b + 1]), row stride D) to
 * each text's image, into ctx at the same rows: a run of texts paired with the same image
 * flattens to one query block of the run's rows against that image's Ti tokens. */
static gz_status cross_attend(const gz_bert *m, const gz_compute *cx, const bert_layer *ly, int l,
                              const gz_bert_cross *cross, const float *q, float *ctx, int B,
                              const int *off, float scale) {
    const int D = m->D;
    gz_status st = GZ_OK;
    for (int b0 = 0, b1; b0 < B && st == GZ_OK; b0 = b1) {
        for (b1 = b0 + 1;
             b1 < B && cross[b1].kv == cross[b0].kv && cross[b1].states == cross[b0].states; b1++)
            continue;
        assert(b0 < b1 && b1 <= B);
        int Ti = cross[b0].Ti, R = off[b1] - off[b0];
        size_t plane = (size_t)Ti * D, row = (size_t)off[b0] * D;
        if (cross[b0].kv) {
            const float *ck = cross[b0].kv + (size_t)l * 2 * plane; /* (Ti, D) */
            const float *cv = ck + plane;                           /* (Ti, D) */
            st = gz_attention(cx, q + row, D, ck, cv, D, ctx + row, 1, R, Ti, m->H, m->Dh, NULL, 0,
                              scale);
        } else if (cx->gemm) {
            st =
                cross_folded(m, cx, &ly->cross, q + row, cross[b0].states, Ti, R, scale, ctx + row);
        } else {
            st = cross_projected(m, cx, &ly->cross, q + row, cross[b0].states, Ti, R, scale,
                                 ctx + row);
        }
    }
    return st;
}

/* Where a forward's token rows lie: text b's rows are [off[b], off[b + 1]) of x, and firsts
 * (B + 1) = 0, 1, ..., B numbers the first rows alone (last_layer_first). Padded (packed 0):
 * off[b] = b * T, every position a row, padding keys masked by mask. Packed: the rows of
 * padding are left out (gz_bert_forward_first, which reads no padding row's state), so text
 * b's rows are its tokens alone and its attention needs no mask. */
typedef struct {
    int B, T, packed;
    const int32_t *mask; /* (B, T) or NULL */
    const int *off;      /* (B + 1) */
    const int *firsts;   /* (B + 1) */
} bert_rows;

/* Self-attention of each text's queries to its own keys and values (k, v: x's rows): every row
 * of x queries, or with one_query text b's first row alone, at q + b * D, into ctx + b * D. */
static gz_status self_attend(const gz_bert *m, const gz_compute *cx, const bert_rows *rw,
                             const float *q, const float *k, const float *v, float *ctx,
                             int one_query, float scale) {
    const int D = m->D, B = rw->B, T = rw->T;
    if (!rw->packed)
        return gz_attention(cx, q, D, k, v, D, ctx, B, one_query ? 1 : T, T, m->H, m->Dh, rw->mask,
                            0, scale);
    /* Texts of unequal length: one call each, its tokens alone as keys. */
    gz_status st = GZ_OK;
    for (int b = 0; b < B && st == GZ_OK; b++) {
        int n = rw->off[b + 1] - rw->off[b];
        size_t kr = (size_t)rw->off[b] * D, qr = one_query ? (size_t)b * D : kr;
        st = gz_attention(cx, q + qr, D, k + kr, v + kr, D, ctx + qr, 1, one_query ? 1 : n, n, m->H,
                          m->Dh, NULL, 0, scale);
    }
    return st;
}

/* The last layer when only each text's first row leaves it (gz_bert_forward_first): the keys
 * and values of every row of x (N, D), the rest for the B first rows alone, into first
 * (B, D), which holds their residual stream meanwhile. q, k, v, ctx, tmp (N, D) and ffn
 * (N, F) are the forward's scratch. */
static gz_status last_layer_first(const gz_bert *m, const gz_compute *cx, const bert_layer *ly,
                                  int use, const bert_rows *rw, const gz_bert_cross *cross,
                                  const float *x, float *q, float *k, float *v, float *ctx,
                                  float *tmp, float *ffn, float *first) {
    const int D = m->D, F = m->F, B = rw->B, N = rw->off[B];
    const float scale = 1.0f / sqrtf((float)m->Dh);
    float *xc = first, *tc = tmp; /* (B, D) each */
    gz_status st;
    if ((st = lin(cx, x, ly->self.k_w, copies(use, &ly->self.k_p), ly->self.k_b, k, N, D, D)) ||
        (st = lin(cx, x, ly->self.v_w, copies(use, &ly->self.v_p), ly->self.v_b, v, N, D, D)))
        return st;
    for (int b = 0; b < B; b++)
        memcpy(xc + (size_t)b * D, x + (size_t)rw->off[b] * D, (size_t)D * sizeof *xc);
    if ((st = lin(cx, xc, ly->self.q_w, copies(use, &ly->self.q_p), ly->self.q_b, q, B, D, D)))
        return st;
    if ((st = self_attend(m, cx, rw, q, k, v, ctx, 1, scale)) ||
        (st = attn_output(m, cx, &ly->self, use, xc, ctx, tc, B)))
        return st;
    if (cross) {
        if ((st = lin(cx, xc, ly->cross.q_w, copies(use, &ly->cross.q_p), ly->cross.q_b, q, B, D,
                      D)) ||
            (st = cross_attend(m, cx, ly, m->L - 1, cross, q, ctx, B, rw->firsts, scale)) ||
            (st = attn_output(m, cx, &ly->cross, use, xc, ctx, tc, B)))
            return st;
    }
    if ((st = gz_linear_act_cx(cx, xc, ly->i_w, copies(use, &ly->i_p), ly->i_b, (int)m->cfg.act,
                               ffn, F, B, D, F)) ||
        (st = lin(cx, ffn, ly->o_w, copies(use, &ly->o_p), ly->o_b, tc, B, F, D)))
        return st;
    gz_add_layernorm(cx, tc, xc, xc, ly->ln_w, ly->ln_b, B, D, m->cfg.layer_norm_eps);
    return GZ_OK;
}

/* The rows of a forward (bert_rows) into rw, with idx (B + 1 + B + 1 + B * T ints) to hold its
 * offsets: packed when only the first rows are read (first_only) and some position is
 * padding. src receives, for each row of x, its position in the (B, T) layout. */
static void plan_rows(int B, int T, const int32_t *mask, int first_only, int *idx, bert_rows *rw,
                      const int **src) {
    int *off = idx, *firsts = off + B + 1, *from = firsts + B + 1;
    size_t N = (size_t)B * T, real = 0;
    for (size_t i = 0; mask && i < N; i++)
        real += mask[i] != 0;
    int packed = first_only && mask && real < N;
    int n = 0;
    for (int b = 0; b < B; b++) {
        off[b] = n;
        firsts[b] = b;
        for (int t = 0; t < T; t++)
            if (!packed || mask[(size_t)b * T + t]) from[n++] = b * T + t;
    }
    off[B] = n;
    firsts[B] = B;
    *rw = (bert_rows){B, T, packed, mask, off, firsts};
    *src = from;
}

/* gz_bert_forward, or with first set (and hidden, all_hidden NULL) gz_bert_forward_first. */
static gz_status bert_run(const gz_bert *m, const gz_compute *cx, const int32_t *ids,
                          const int32_t *mask, const int32_t *type_ids, int B, int T,
                          const gz_bert_cross *cross, float *hidden, float *all_hidden,
                          float *first) {
    if (!m || !cx || !ids || !(hidden || first) || B <= 0 || T <= 0)
        return GZ_FAIL(GZ_EINVAL, "BERT forward: bad arguments (B %d, T %d)", B, T);
    if (T > m->cfg.max_position_embeddings)
        return GZ_FAIL(GZ_EINVAL, "text of %d tokens exceeds the model's %d positions", T,
                       m->cfg.max_position_embeddings);
    if (cross && !m->with_cross)
        return GZ_FAIL(GZ_EINVAL, "BERT forward: cross-attention weights not loaded");
    for (int b = 0; cross && b < B; b++)
        if ((!cross[b].kv && !cross[b].states) || cross[b].Ti <= 0)
            return GZ_FAIL(GZ_EINVAL, "BERT forward: text %d has no image to attend to", b);
    gz_status st =
        tx_check_tokens("BERT forward", &m->cfg, ids, m->type ? type_ids : NULL, mask, B, T);
    if (st != GZ_OK) return st;
    const int D = m->D, F = m->F;
    size_t N = (size_t)B * (size_t)T;
    int use;
    if ((st = ensure_packed(m, cx, N, &use)) != GZ_OK) return st;

    /* Scratch: x, q, k, v, ctx, tmp (N, D) and ffn (N, F); the rows' offsets. */
    size_t nfl, nidx;
    if ((st = tx_scratch_floats("BERT forward", B, T, D, F, &nfl)) != GZ_OK) return st;
    if (!gz_add_size(N, 2 * (size_t)B + 2, &nidx))
        return GZ_FAIL(GZ_ENOMEM, "BERT forward: batch %d x %d too large", B, T);
    int *idx = gz_malloc_n(nidx, sizeof *idx, "BERT forward rows");
    if (!idx) return GZ_ENOMEM;
    float *scratch = gz_scratch_take(cx->scratch, nfl);
    if (!scratch) {
        free(idx);
        return GZ_FAIL(GZ_ENOMEM, "out of memory for the BERT forward's scratch");
    }
    float *x = scratch;       /* (N, D) */
    float *q = x + N * D;     /* (N, D) */
    float *k = q + N * D;     /* (N, D) */
    float *v = k + N * D;     /* (N, D) */
    float *ctx = v + N * D;   /* (N, D) */
    float *tmp = ctx + N * D; /* (N, D) */
    float *ffn = tmp + N * D; /* (N, F) */
    bert_rows rw;
    const int *src;
    plan_rows(B, T, mask, first != NULL, idx, &rw, &src);
    const int R = rw.off[B]; /* rows of x: N, or the tokens alone when packed */

    /* Embeddings: LN(word[id] + pos[t] (+ type[tt])), for the (B, T) layout in tmp; a packed
     * forward gathers its rows into ctx first. */
    tx_embed_sum(m->word, m->pos, ids, N, T, D, tmp);
    for (size_t i = 0; m->type && i < N; i++) {
        const float *te = m->type + (size_t)(type_ids ? type_ids[i] : 0) * D;
        float *r = tmp + i * D;
        for (int j = 0; j < D; j++)
            r[j] += te[j];
    }
    const float *emb = tmp;
    if (rw.packed) {
        for (int i = 0; i < R; i++)
            memcpy(ctx + (size_t)i * D, tmp + (size_t)src[i] * D, (size_t)D * sizeof *ctx);
        emb = ctx;
    }
    gz_layernorm(cx, x, emb, m->emb_ln_w, m->emb_ln_b, R, D, m->cfg.layer_norm_eps);
    if (all_hidden) memcpy(all_hidden, x, N * D * sizeof *x);

    const float scale = 1.0f / sqrtf((float)m->Dh);
    /* With one token there is nothing to leave out of the last layer. */
    const int last_full = first && T >= 2 ? m->L - 1 : m->L;
    for (int l = 0; l < last_full; l++) {
        const bert_layer *ly = &m->layers[l];
        /* Self-attention over each text's own tokens, padding keys masked or left out. */
        if ((st = lin(cx, x, ly->self.q_w, copies(use, &ly->self.q_p), ly->self.q_b, q, R, D, D)) ||
            (st = lin(cx, x, ly->self.k_w, copies(use, &ly->self.k_p), ly->self.k_b, k, R, D, D)) ||
            (st = lin(cx, x, ly->self.v_w, copies(use, &ly->self.v_p), ly->self.v_b, v, R, D, D)))
            goto out;
        if ((st = self_attend(m, cx, &rw, q, k, v, ctx, 0, scale))) goto out;
        if ((st = attn_output(m, cx, &ly->self, use, x, ctx, tmp, R))) goto out;
        if (cross) {
            if ((st = lin(cx, x, ly->cross.q_w, copies(use, &ly->cross.q_p), ly->cross.q_b, q, R, D,
                          D)) ||
                (st = cross_attend(m, cx, ly, l, cross, q, ctx, B, rw.off, scale)) ||
                (st = attn_output(m, cx, &ly->cross, use, x, ctx, tmp, R)))
                goto out;
        }
        /* Feed-forward. */
        if ((st = gz_linear_act_cx(cx, x, ly->i_w, copies(use, &ly->i_p), ly->i_b, (int)m->cfg.act,
                                   ffn, F, R, D, F)))
            goto out; /* (R, F), activated */
        if ((st = lin(cx, ffn, ly->o_w, copies(use, &ly->o_p), ly->o_b, tmp, R, F, D))) goto out;
        gz_add_layernorm(cx, tmp, x, x, ly->ln_w, ly->ln_b, R, D, m->cfg.layer_norm_eps);
        if (all_hidden) memcpy(all_hidden + (size_t)(l + 1) * N * D, x, N * D * sizeof *x);
    }
    if (!first)
        memcpy(hidden, x, N * D * sizeof *x);
    else if (last_full == m->L) /* T == 1: the one row is the first */
        memcpy(first, x, (size_t)B * D * sizeof *x);
    else
        st = last_layer_first(m, cx, &m->layers[m->L - 1], use, &rw, cross, x, q, k, v, ctx, tmp,
                              ffn, first);
out:
    gz_scratch_give(cx->scratch, scratch);
    free(idx);
    return st;
}

gz_status gz_bert_forward(const gz_bert *m, const gz_compute *cx, const int32_t *ids,
                          const int32_t *mask, const int32_t *type_ids, int B, int T,
                          const gz_bert_cross *cross, float *hidden, float *all_hidden) {
    if (!hidden) return GZ_FAIL(GZ_EINVAL, "BERT forward: bad arguments (no output)");
    return bert_run(m, cx, ids, mask, type_ids, B, T, cross, hidden, all_hidden, NULL);
}

gz_status gz_bert_forward_first(const gz_bert *m, const gz_compute *cx, const int32_t *ids,
                                const int32_t *mask, const int32_t *type_ids, int B, int T,
                                const gz_bert_cross *cross, float *first) {
    if (!first) return GZ_FAIL(GZ_EINVAL, "BERT forward: bad arguments (no output)");
    return bert_run(m, cx, ids, mask, type_ids, B, T, cross, NULL, NULL, first);
}
