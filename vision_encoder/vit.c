/* vit.c - ViT image encoder (BLIP, CLIP and Chinese-CLIP variants), batched over OpenBLAS.
 *
 * Legend: B = images in the call, n = images in one chunk, S = image side, p = patch side,
 *         G = S / p, P = G*G + 1 tokens, N = n*P tokens in a chunk, D = hidden size,
 *         H = heads, Dh = D / H, F = MLP size, E = embedding (projection) size, L = layers.
 *
 * One forward pass runs every linear layer as a single GEMM over all N tokens of a chunk.
 * The tower is read-only after loading; each call owns its scratch. */
#include "vision_encoder/vit.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/kernels.h"
#include "core/linear.h"

/* At most this many tokens per forward chunk: bounds scratch memory (ViT-B/16: 41 images,
 * about 80 MB of activations) while keeping GEMMs large. */
#define VIT_MAX_CHUNK_TOKENS 8192
/* F.normalize's eps; for CLIP's x / ||x|| it is the same for any non-zero row. */
#define VIT_NORM_EPS 1e-12f

typedef struct {
    const float *ln1_w, *ln1_b;   /* (D) */
    const float *qkv_w;           /* BLIP: (3*D, D) rows q, k, v; NULL for CLIP */
    const float *qkv_b;           /* BLIP: (3*D) */
    const float *q_w, *k_w, *v_w; /* CLIP: (D, D) each */
    const float *q_b, *k_b, *v_b; /* CLIP: (D) each */
    const float *out_w, *out_b;   /* (D, D), (D) */
    const float *ln2_w, *ln2_b;   /* (D) */
    const float *fc1_w, *fc1_b;   /* (F, D), (F) */
    const float *fc2_w, *fc2_b;   /* (D, F), (D) */
    /* packed copies (core/linear.h): qkv (BLIP) or q, k, v (CLIP), out, fc1, fc2 */
    gz_packw qkv_p, q_p, k_p, v_p, out_p, fc1_p, fc2_p;
} vit_layer;

struct gz_vit {
    gz_family family;
    int D, L, H, F, S, p, G, P, E, C;
    gz_act act;
    float eps;
    const float *patch_w;               /* (D, C, p, p) */
    const float *patch_b;               /* (D) BLIP; NULL for CLIP */
    const float *cls;                   /* (D) */
    const float *pos;                   /* (P, D) */
    const float *pre_ln_w, *pre_ln_b;   /* (D) CLIP only */
    const float *post_ln_w, *post_ln_b; /* (D) */
    const float *proj_w;                /* (E, D) */
    const float *proj_b;                /* (E) BLIP; NULL for CLIP */
    vit_layer *layers;                  /* (L) owned */
    /* The packed copies are made on the first forward that asks for them; the tower is shared
     * by threads, so under this lock (the one change to a loaded tower). */
    pthread_mutex_t pack_lock;
    int packed[2];             /* by gz_pack_kind: 1 once every copy of that form exists; read
                                  and written under pack_lock */
    size_t rows_in_place;      /* rows run before the copies existed (gz_linear_pack_due); under
                                  pack_lock */
    const gz_st_file *weights; /* borrowed: the checkpoint the weights point into */
};

/* Scratch of one forward chunk (one allocation, owned by the caller of vit_forward), and
 * whether the blocks read the packed copies. */
typedef struct {
    int packed;  /* 1 = pass the packed copies (ensure_packed), 0 = none */
    float *x;    /* (N, D) residual stream */
    float *h;    /* (N, D) normalised input of a sub-block / patch embeddings / post-LN */
    float *qkv;  /* (N, 3*D) */
    float *att;  /* (N, D) attention output */
    float *mlp;  /* (N, F) */
    float *cls;  /* (n, D) class tokens */
    float *feat; /* (n, E) projections */
} vit_scratch;

static gz_status get(gz_st_file *w, const float **out, int ndim, int64_t d0, int64_t d1, int64_t d2,
                     int64_t d3, const char *name) {
    int64_t shape[4] = {d0, d1, d2, d3};
    return gz_st_f32(w, name, ndim, shape, out);
}

#define GETF(dst, ndim, d0, d1, d2, d3, ...)                                                       \
    do {                                                                                           \
        int64_t shape_[4] = {(d0), (d1), (d2), (d3)};                                              \
        gz_status st_ = gz_st_f32_fmt(w, &(dst), (ndim), shape_, __VA_ARGS__);                     \
        if (st_ != GZ_OK) {                                                                        \
            gz_vit_free(v);                                                                        \
            return st_;                                                                            \
        }                                                                                          \
    } while (0)

static gz_status load_layer(gz_st_file *w, gz_vit *v, int l, vit_layer *ly) {
    const int D = v->D, F = v->F;
    char pre[96];
    snprintf(pre, sizeof pre, "vision_model.encoder.layers.%d.", l);
    gz_status st = GZ_OK;
#define LG(dst, ndim, d0, d1, suffix)                                                              \
    do {                                                                                           \
        char name_[160];                                                                           \
        snprintf(name_, sizeof name_, "%s%s", pre, suffix);                                        \
        if ((st = get(w, &(dst), (ndim), (d0), (d1), 0, 0, name_)) != GZ_OK) return st;            \
    } while (0)
    LG(ly->ln1_w, 1, D, 0, "layer_norm1.weight");
    LG(ly->ln1_b, 1, D, 0, "layer_norm1.bias");
    LG(ly->ln2_w, 1, D, 0, "layer_norm2.weight");
    LG(ly->ln2_b, 1, D, 0, "layer_norm2.bias");
    LG(ly->fc1_w, 2, F, D, "mlp.fc1.weight");
    LG(ly->fc1_b, 1, F, 0, "mlp.fc1.bias");
    LG(ly->fc2_w, 2, D, F, "mlp.fc2.weight");
    LG(ly->fc2_b, 1, D, 0, "mlp.fc2.bias");
    if (v->family == GZ_FAMILY_BLIP) {
        LG(ly->qkv_w, 2, 3 * (int64_t)D, D, "self_attn.qkv.weight");
        LG(ly->qkv_b, 1, 3 * (int64_t)D, 0, "self_attn.qkv.bias");
        LG(ly->out_w, 2, D, D, "self_attn.projection.weight");
        LG(ly->out_b, 1, D, 0, "self_attn.projection.bias");
    } else {
        LG(ly->q_w, 2, D, D, "self_attn.q_proj.weight");
        LG(ly->q_b, 1, D, 0, "self_attn.q_proj.bias");
        LG(ly->k_w, 2, D, D, "self_attn.k_proj.weight");
        LG(ly->k_b, 1, D, 0, "self_attn.k_proj.bias");
        LG(ly->v_w, 2, D, D, "self_attn.v_proj.weight");
        LG(ly->v_b, 1, D, 0, "self_attn.v_proj.bias");
        LG(ly->out_w, 2, D, D, "self_attn.out_proj.weight");
        LG(ly->out_b, 1, D, 0, "self_attn.out_proj.bias");
    }
#undef LG
    return st;
}

gz_status gz_vit_load(gz_st_file *w, const gz_model_config *cfg, gz_vit **out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "gz_vit_load: out is NULL");
    *out = NULL;
    if (!w || !cfg) return GZ_FAIL(GZ_EINVAL, "gz_vit_load: NULL weights or config");
    const gz_vision_config *vc = &cfg->vision;
    if (cfg->family != GZ_FAMILY_BLIP && cfg->family != GZ_FAMILY_CLIP &&
        cfg->family != GZ_FAMILY_CHINESE_CLIP)
        return GZ_FAIL(GZ_EUNSUPPORTED, "vision tower: unknown model family %d", (int)cfg->family);
    if (vc->hidden_size <= 0 || vc->num_layers <= 0 || vc->num_heads <= 0 ||
        vc->intermediate_size <= 0 || vc->image_size <= 0 || vc->patch_size <= 0 ||
        cfg->projection_dim <= 0)
        return GZ_FAIL(GZ_EINVAL, "vision config: sizes must be positive");
    if (vc->hidden_size % vc->num_heads != 0)
        return GZ_FAIL(GZ_EINVAL, "vision config: hidden_size %d is not a multiple of %d heads",
                       vc->hidden_size, vc->num_heads);
    if (vc->image_size % vc->patch_size != 0)
        return GZ_FAIL(GZ_EINVAL, "vision config: image_size %d is not a multiple of patch_size %d",
                       vc->image_size, vc->patch_size);
    if (vc->num_channels != 3)
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "vision config: num_channels %d (only RGB, 3, is supported)",
                       vc->num_channels);
    const int G = vc->image_size / vc->patch_size;
    if (G > 4096 || (int64_t)G * G + 1 > VIT_MAX_CHUNK_TOKENS)
        return GZ_FAIL(GZ_EUNSUPPORTED, "vision config: %d x %d patches is too many", G, G);

    gz_vit *v = calloc(1, sizeof *v);
    if (!v) return GZ_FAIL(GZ_ENOMEM, "vision tower: out of memory");
    pthread_mutex_init(&v->pack_lock, NULL);
    v->weights = w;
    v->family = cfg->family;
    v->D = vc->hidden_size;
    v->L = vc->num_layers;
    v->H = vc->num_heads;
    v->F = vc->intermediate_size;
    v->S = vc->image_size;
    v->p = vc->patch_size;
    v->G = G;
    v->P = G * G + 1;
    v->E = cfg->projection_dim;
    v->C = vc->num_channels;
    v->act = vc->act;
    v->eps = vc->layer_norm_eps;
    v->layers = calloc((size_t)v->L, sizeof *v->layers);
    if (!v->layers) {
        gz_vit_free(v);
        return GZ_FAIL(GZ_ENOMEM, "vision tower: out of memory");
    }
    const int D = v->D, P = v->P, E = v->E, p = v->p;
    GETF(v->patch_w, 4, D, v->C, p, p, "vision_model.embeddings.patch_embedding.weight");
    GETF(v->post_ln_w, 1, D, 0, 0, 0, "vision_model.post_layernorm.weight");
    GETF(v->post_ln_b, 1, D, 0, 0, 0, "vision_model.post_layernorm.bias");
    if (v->family == GZ_FAMILY_BLIP) {
        GETF(v->patch_b, 1, D, 0, 0, 0, "vision_model.embeddings.patch_embedding.bias");
        GETF(v->cls, 3, 1, 1, D, 0, "vision_model.embeddings.class_embedding");
        GETF(v->pos, 3, 1, P, D, 0, "vision_model.embeddings.position_embedding");
        GETF(v->proj_w, 2, E, D, 0, 0, "vision_proj.weight");
        GETF(v->proj_b, 1, E, 0, 0, 0, "vision_proj.bias");
    } else {
        GETF(v->cls, 1, D, 0, 0, 0, "vision_model.embeddings.class_embedding");
        GETF(v->pos, 2, P, D, 0, 0, "vision_model.embeddings.position_embedding.weight");
        GETF(v->pre_ln_w, 1, D, 0, 0, 0, "vision_model.pre_layrnorm.weight");
        GETF(v->pre_ln_b, 1, D, 0, 0, 0, "vision_model.pre_layrnorm.bias");
        GETF(v->proj_w, 2, E, D, 0, 0, "visual_projection.weight");
    }
    for (int l = 0; l < v->L; l++) {
        gz_status st = load_layer(w, v, l, &v->layers[l]);
        if (st != GZ_OK) {
            gz_vit_free(v);
            return st;
        }
    }
    *out = v;
    return GZ_OK;
}

static void free_packed(gz_vit *v) {
    for (int l = 0; l < v->L && v->layers; l++) {
        vit_layer *ly = &v->layers[l];
        gz_packw *all[] = {&ly->qkv_p, &ly->q_p,   &ly->k_p,  &ly->v_p,
                           &ly->out_p, &ly->fc1_p, &ly->fc2_p};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            gz_packw_free(all[i]);
    }
}

void gz_vit_free(gz_vit *v) {
    if (!v) return;
    free_packed(v);
    pthread_mutex_destroy(&v->pack_lock);
    free(v->layers);
    free(v);
}

int gz_vit_image_size(const gz_vit *v) { return v ? v->S : 0; }
int gz_vit_tokens(const gz_vit *v) { return v ? v->P : 0; }
int gz_vit_hidden(const gz_vit *v) { return v ? v->D : 0; }
int gz_vit_layers(const gz_vit *v) { return v ? v->L : 0; }
int gz_vit_dim(const gz_vit *v) { return v ? v->E : 0; }

/* The kind copies of every Linear weight of the blocks, on cx's threads (called with
 * pack_lock held; all or nothing). */
static gz_status pack_weights(gz_vit *v, const gz_compute *cx, gz_pack_kind kind) {
    const int D = v->D, F = v->F;
    gz_packw_job *jobs = gz_malloc_n((size_t)v->L, 6 * sizeof *jobs, "ViT packed copy");
    if (!jobs) return GZ_ENOMEM;
    size_t n = 0;
    for (int l = 0; l < v->L; l++) {
        vit_layer *ly = &v->layers[l];
        if (ly->qkv_w) {
            jobs[n++] = (gz_packw_job){ly->qkv_w, 3 * D, D, &ly->qkv_p, v->weights};
        } else {
            jobs[n++] = (gz_packw_job){ly->q_w, D, D, &ly->q_p, v->weights};
            jobs[n++] = (gz_packw_job){ly->k_w, D, D, &ly->k_p, v->weights};
            jobs[n++] = (gz_packw_job){ly->v_w, D, D, &ly->v_p, v->weights};
        }
        jobs[n++] = (gz_packw_job){ly->out_w, D, D, &ly->out_p, v->weights};
        jobs[n++] = (gz_packw_job){ly->fc1_w, F, D, &ly->fc1_p, v->weights};
        jobs[n++] = (gz_packw_job){ly->fc2_w, D, F, &ly->fc2_p, v->weights};
    }
    gz_status st = gz_packw_pack_all(cx, NULL, kind, jobs, n);
    free(jobs);
    return st;
}

/* Make the packed copies cx's kernels read (gz_linear_pack_kind) when they are due
 * (gz_linear_pack_due), before a forward of rows rows, once per tower and form. *use = 1 when
 * the forward is to read them (they exist); 0 when it is to pass none: it then never reads a
 * copy that another thread may be making. */
static gz_status ensure_packed(const gz_vit *cv, const gz_compute *cx, size_t rows, int *use) {
    gz_pack_kind kind;
    *use = 0;
    if (!gz_linear_pack_kind(cx, &kind)) return GZ_OK;
    gz_vit *v = (gz_vit *)cv; /* the packing is the one change, under the lock */
    gz_status st = GZ_OK;
    pthread_mutex_lock(&v->pack_lock);
    if (!v->packed[kind] && gz_linear_pack_due(cx, kind, v->rows_in_place + rows) &&
        (st = pack_weights(v, cx, kind)) == GZ_OK)
        v->packed[kind] = 1;
    if (!v->packed[kind]) v->rows_in_place += rows;
    *use = v->packed[kind];
    pthread_mutex_unlock(&v->pack_lock);
    return st;
}

/* The packed copies p when the forward reads them (ensure_packed), else none. */
static const gz_packw *copies(const vit_scratch *s, const gz_packw *p) {
    return s->packed ? p : NULL;
}

/* y(N, out) rows at stride ldy = bias(out) + x(N, in) · W(out, in)^T on cx's kernel
 * (core/linear.h: the packed copies in wp when cx reads them, else OpenBLAS from the bias). */
static gz_status linear_strided(const gz_compute *cx, const float *x, const float *wt,
                                const gz_packw *wp, const float *b, float *y, int ldy, int N,
                                int in, int out) {
    return gz_linear_cx(cx, x, wt, wp, b, y, ldy, N, in, out);
}

/* LN1 of the n images' tokens into s->h, then s->qkv (N, 3D): every token's keys and values,
 * and the queries of every token or, with cls_only, of each image's CLS row (rows P apart; a
 * fused QKV weight gives every row's anyway). */
static gz_status block_qkv(const gz_vit *v, const gz_compute *cx, const vit_layer *ly,
                           const vit_scratch *s, int n, int cls_only) {
    const int D = v->D, P = v->P, N = n * P;
    gz_status st;
    gz_layernorm(cx, s->h, s->x, ly->ln1_w, ly->ln1_b, N, D, v->eps);
    if (ly->qkv_w)
        return linear_strided(cx, s->h, ly->qkv_w, copies(s, &ly->qkv_p), ly->qkv_b, s->qkv, 3 * D,
                              N, D, 3 * D);
    if ((st = linear_strided(cx, s->h, ly->k_w, copies(s, &ly->k_p), ly->k_b, s->qkv + D, 3 * D, N,
                             D, D)) ||
        (st = linear_strided(cx, s->h, ly->v_w, copies(s, &ly->v_p), ly->v_b, s->qkv + 2 * D, 3 * D,
                             N, D, D)))
        return st;
    if (!cls_only)
        return linear_strided(cx, s->h, ly->q_w, copies(s, &ly->q_p), ly->q_b, s->qkv, 3 * D, N, D,
                              D);
    for (int b = 0; b < n && st == GZ_OK; b++) // rows P*D apart in h, P*3D apart in qkv
        st = linear_strided(cx, s->h + (size_t)b * P * D, ly->q_w, copies(s, &ly->q_p), ly->q_b,
                            s->qkv + (size_t)b * P * 3 * D, 3 * D, 1, D, D);
    return st;
}

/* The rest of a block after its attention, on rows rows: x(rows, D) += out_proj(s->att), then
 * x += fc2(act(fc1(LN2(x)))) with the residual add fused with LN2; s->h and s->mlp are its
 * scratch. */
static gz_status block_tail(const gz_vit *v, const gz_compute *cx, const vit_layer *ly,
                            const vit_scratch *s, float *x, int rows) {
    const int D = v->D, F = v->F;
    gz_status st;
    if ((st = linear_strided(cx, s->att, ly->out_w, copies(s, &ly->out_p), ly->out_b, s->h, D, rows,
                             D, D)))
        return st;
    gz_add_layernorm(cx, x, s->h, s->h, ly->ln2_w, ly->ln2_b, rows, D, v->eps);
    if ((st = gz_linear_act_cx(cx, s->h, ly->fc1_w, copies(s, &ly->fc1_p), ly->fc1_b, (int)v->act,
                               s->mlp, F, rows, D, F)))
        return st; // (rows, F), activated
    if ((st = linear_strided(cx, s->mlp, ly->fc2_w, copies(s, &ly->fc2_p), ly->fc2_b, s->h, D, rows,
                             F, D)))
        return st; // (rows, D)
    gz_add_cx(cx, x, s->h, (size_t)rows * D);
    return GZ_OK;
}

/* One pre-LN encoder block on the residual stream s->x (N, D), n images of P tokens.
 * GZ_ENOMEM when the attention has no scratch. */
static gz_status vit_block(const gz_vit *v, const gz_compute *cx, const vit_layer *ly,
                           const vit_scratch *s, int n) {
    const int D = v->D, P = v->P, N = n * P, Dh = D / v->H;
    // attention: x += out_proj(attn(LN1(x))), then the MLP (block_tail)
    gz_status st = block_qkv(v, cx, ly, s, n, 0);
    if (st != GZ_OK) return st;
    st = gz_attention(cx, s->qkv, 3 * D, s->qkv + D, s->qkv + 2 * D, 3 * D, s->att, n, P, P, v->H,
                      Dh, NULL, 0, 1.0f / sqrtf((float)Dh)); // (n, P, D)
    if (st != GZ_OK) return st;
    return block_tail(v, cx, ly, s, s->x, N);
}

/* The last block when nothing after it reads more than each image's CLS row (the embedding,
 * the features, the pooled output; not the token states): LN1 and the keys and values of
 * every token, then the attention, the output projection and the MLP of the n CLS rows alone.
 * The rest of the block (1/12 of a ViT-B's work) only ever fed token states nobody reads; the
 * CLS rows get the same values (the kernels compute a row the same way whatever rows run
 * beside it). llama.cpp does the same for the rows whose logits are not wanted. The CLS rows
 * of s->x are updated in place; the other rows keep the block's input. */
static gz_status vit_block_cls(const gz_vit *v, const gz_compute *cx, const vit_layer *ly,
                               const vit_scratch *s, int n) {
    const int D = v->D, P = v->P, Dh = D / v->H;
    gz_status st = block_qkv(v, cx, ly, s, n, 1);
    if (st != GZ_OK) return st;
    // One query per image: with Tq = 1 the query stride is the distance between the images'
    // CLS rows (gz_attention finds image b's queries at q + b * Tq * q_stride).
    st = gz_attention(cx, s->qkv, P * 3 * D, s->qkv + D, s->qkv + 2 * D, 3 * D, s->att, n, 1, P,
                      v->H, Dh, NULL, 0, 1.0f / sqrtf((float)Dh)); // (n, D)
    if (st != GZ_OK) return st;
    for (int b = 0; b < n; b++) // the CLS rows of the residual stream, (n, D)
        memcpy(s->cls + (size_t)b * D, s->x + (size_t)b * P * D, (size_t)D * sizeof(float));
    if ((st = block_tail(v, cx, ly, s, s->cls, n))) return st;
    for (int b = 0; b < n; b++)
        memcpy(s->x + (size_t)b * P * D, s->cls + (size_t)b * D, (size_t)D * sizeof(float));
    return GZ_OK;
}

/* Forward n images (b0..b0+n-1 of a call of B) and write the requested outputs. s holds one
 * chunk: n * P <= VIT_MAX_CHUNK_TOKENS. GZ_ENOMEM from the attention. */
static gz_status vit_forward(const gz_vit *v, const gz_compute *cx, const vit_scratch *s,
                             const float *pixels, int n, int B, int b0, float *embeds,
                             float *features, float *last_hidden, float *all_hidden,
                             float *pooled) {
    const int D = v->D, P = v->P, E = v->E, GG = v->G * v->G, N = n * P;
    const size_t chunk_sz = (size_t)N * D;
    assert(n >= 1 && b0 >= 0 && b0 + n <= B);
    assert((size_t)n * P <= VIT_MAX_CHUNK_TOKENS && GG + 1 == P);

    // embeddings: [cls ; patch conv] + pos  -> x (n, P, D)
    // The columns (n GG, C p p) go to x, att, qkv and mlp, one run of N (5 D + F) floats
    // unused until the first block (every full-size ViT: C p p <= F); else gz_patch_embed
    // allocates them.
    if ((size_t)GG * v->C * v->p * v->p <= (size_t)P * (5 * (size_t)D + v->F))
        gz_patch_embed_cols(cx, pixels, v->patch_w, v->patch_b, s->h, n, v->C, v->S, v->p, D,
                            s->x); // (n, GG, D)
    else
        gz_patch_embed(cx, pixels, v->patch_w, v->patch_b, s->h, n, v->C, v->S, v->p, D);
    for (int b = 0; b < n; b++) {
        float *xb = s->x + (size_t)b * P * D;
        for (int d = 0; d < D; d++)
            xb[d] = v->cls[d] + v->pos[d];
        const float *pb = s->h + (size_t)b * GG * D;
        for (int t = 0; t < GG; t++)
            for (int d = 0; d < D; d++)
                xb[(size_t)(t + 1) * D + d] =
                    pb[(size_t)t * D + d] + v->pos[(size_t)(t + 1) * D + d];
    }
    if (v->pre_ln_w) gz_layernorm(cx, s->x, s->x, v->pre_ln_w, v->pre_ln_b, N, D, v->eps);
    if (all_hidden) memcpy(all_hidden + (size_t)b0 * P * D, s->x, chunk_sz * sizeof(float));

    // Without token states to return, only the CLS rows leave the last block.
    const int cls_only = !last_hidden && !all_hidden;
    for (int l = 0; l < v->L; l++) {
        gz_status st = cls_only && l == v->L - 1 ? vit_block_cls(v, cx, &v->layers[l], s, n)
                                                 : vit_block(v, cx, &v->layers[l], s, n);
        if (st != GZ_OK) return st;
        if (all_hidden)
            memcpy(all_hidden + ((size_t)(l + 1) * B + b0) * P * D, s->x, chunk_sz * sizeof(float));
    }

    if (v->family == GZ_FAMILY_BLIP && last_hidden) {
        // post_layernorm on every token (the returned states); CLS of that feeds vision_proj
        gz_layernorm(cx, s->h, s->x, v->post_ln_w, v->post_ln_b, N, D, v->eps);
        memcpy(last_hidden + (size_t)b0 * P * D, s->h, chunk_sz * sizeof(float));
        for (int b = 0; b < n; b++)
            memcpy(s->cls + (size_t)b * D, s->h + (size_t)b * P * D, (size_t)D * sizeof(float));
    } else if (v->family == GZ_FAMILY_BLIP) { // the CLS rows alone: LayerNorm is per row
        for (int b = 0; b < n; b++)
            memcpy(s->cls + (size_t)b * D, s->x + (size_t)b * P * D, (size_t)D * sizeof(float));
        gz_layernorm(cx, s->cls, s->cls, v->post_ln_w, v->post_ln_b, n, D, v->eps);
    } else {
        // last_hidden_state has no post-LN; pooled = post_layernorm(x[:, 0])
        if (last_hidden) memcpy(last_hidden + (size_t)b0 * P * D, s->x, chunk_sz * sizeof(float));
        for (int b = 0; b < n; b++)
            memcpy(s->cls + (size_t)b * D, s->x + (size_t)b * P * D, (size_t)D * sizeof(float));
        gz_layernorm(cx, s->cls, s->cls, v->post_ln_w, v->post_ln_b, n, D, v->eps);
    }
    if (pooled) memcpy(pooled + (size_t)b0 * D, s->cls, (size_t)n * D * sizeof(float));
    if (!embeds && !features) return GZ_OK;
    gz_linear(s->cls, v->proj_w, v->proj_b, s->feat, n, D, E); // (n, E)
    if (features) memcpy(features + (size_t)b0 * E, s->feat, (size_t)n * E * sizeof(float));
    if (embeds) {
        gz_l2_normalize(s->feat, n, E, VIT_NORM_EPS);
        memcpy(embeds + (size_t)b0 * E, s->feat, (size_t)n * E * sizeof(float));
    }
    return GZ_OK;
}

gz_status gz_vit_encode(const gz_vit *v, const gz_compute *cx, const float *pixels, int B,
                        float *embeds, float *features, float *last_hidden, float *all_hidden,
                        float *pooled) {
    if (!v || !cx || !pixels || B < 0) return GZ_FAIL(GZ_EINVAL, "gz_vit_encode: bad arguments");
    if (B == 0) return GZ_OK;
    int use;
    gz_status pst = ensure_packed(v, cx, (size_t)B * (size_t)v->P, &use);
    if (pst != GZ_OK) return pst;
    const int D = v->D, P = v->P, F = v->F, E = v->E;
    int chunk = VIT_MAX_CHUNK_TOKENS / P;
    assert(chunk >= 1); /* gz_vit_load refuses P > VIT_MAX_CHUNK_TOKENS */
    if (chunk > B) chunk = B;
    const size_t N = (size_t)chunk * P;
    // floats: h, x, att (N*D each), qkv (N*3D), mlp (N*F), cls (chunk*D), feat (chunk*E)
    size_t per_tok = 0, total = 0;
    if (!gz_add_size((size_t)6 * D, (size_t)F, &per_tok) || !gz_mul_size(per_tok, N, &total) ||
        !gz_add_size(total, (size_t)chunk * ((size_t)D + E), &total))
        return GZ_FAIL(GZ_ENOMEM, "vision tower: scratch size overflows");
    float *buf = gz_scratch_take(cx->scratch, total);
    if (!buf) return GZ_FAIL(GZ_ENOMEM, "out of memory for the vision tower's scratch");
    vit_scratch s;
    s.packed = use;
    s.h = buf; /* h first: x, att, qkv and mlp follow in one run, the patch columns' room */
    s.x = s.h + N * D;
    s.att = s.x + N * D;
    s.qkv = s.att + N * D;
    s.mlp = s.qkv + N * 3 * D;
    s.cls = s.mlp + N * F;
    s.feat = s.cls + (size_t)chunk * D;
    const size_t img_sz = (size_t)v->C * v->S * v->S;
    gz_status st = GZ_OK;
    for (int b0 = 0; st == GZ_OK && b0 < B; b0 += chunk) {
        int n = B - b0 < chunk ? B - b0 : chunk;
        st = vit_forward(v, cx, &s, pixels + (size_t)b0 * img_sz, n, B, b0, embeds, features,
                         last_hidden, all_hidden, pooled);
    }
    gz_scratch_give(cx->scratch, buf);
    return st;
}
