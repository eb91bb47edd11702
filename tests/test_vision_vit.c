/* test_vision_vit.c - ViT parity with transformers for BLIP, CLIP and Chinese-CLIP fixtures.
 *
 * From each family's expected.safetensors `pixel_values`: every hidden state layer by layer
 * (a failure names the layer), last hidden state, pooled output, unnormalised features and
 * the normalised embeddings; F16/BF16 weight files against the f16w./bf16w. references;
 * batch independence (alone vs in a batch vs chunked), threads, and load errors. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/linear.h"
#include "core/safetensors.h"
#include "testutil.h"
#include "vision_encoder/vit.h"

static int checks;
/* The context every encode runs under (all cores, vector paths), set in main. */
static gz_compute cx;

typedef struct {
    const char *dir;
    gz_family family;
    const char *embeds_key; /* normalised image embeddings in expected.safetensors */
} family_case;

static const family_case CASES[] = {
    {"blip_itm", GZ_FAMILY_BLIP, "itc_image_embeds"},
    {"clip", GZ_FAMILY_CLIP, "image_embeds"},
    {"chinese_clip", GZ_FAMILY_CHINESE_CLIP, "image_embeds"},
};

/* Expected tensor by name (counted); see gz_test_expected_f32. */
static const float *want(gz_st_file *ex, const char *fam, const char *name, size_t *n) {
    checks++;
    return gz_test_expected_f32(ex, fam, name, n);
}

static void close_to(const char *fam, const char *what, const float *got, const float *w, size_t n,
                     float atol, float rtol) {
    checks++;
    gz_test_close_report(fam, 14, what, 34, got, w, n, atol, rtol);
}

typedef struct {
    const gz_vit *v;
    const float *pixels;
    int B;
    float *embeds;
    gz_status st;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *j = arg;
    j->st = gz_vit_encode(j->v, &cx, j->pixels, j->B, j->embeds, NULL, NULL, NULL, NULL);
    return NULL;
}

/* Weights from a half-precision file vs the references computed from the same rounding. */
static void check_half(const family_case *c, const gz_model_config *cfg, gz_st_file *ex,
                       const float *pixels, int B, const char *file, const char *prefix) {
    gz_st_file *w = NULL;
    gz_vit *v = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/%s", c->dir, file), &w));
    if (!w) return;
    CHECK_OK(gz_vit_load(w, cfg, &v));
    if (v) {
        int E = gz_vit_dim(v);
        float *emb = gz_test_alloc_f((size_t)B * E);
        CHECK_OK(gz_vit_encode(v, &cx, pixels, B, emb, NULL, NULL, NULL, NULL));
        char key[64];
        snprintf(key, sizeof key, "%s.%s", prefix, c->embeds_key);
        size_t n = 0;
        const float *e = want(ex, c->dir, key, &n);
        CHECK(!e || n == (size_t)B * E);
        close_to(c->dir, key, emb, e, (size_t)B * E, 1e-5f, 0);
        free(emb);
    }
    gz_vit_free(v);
    gz_st_close(w);
}

/* The bf16 path (cx.bf16) against the fp32 embeddings e32 (rows of E, unit norm): cosine
 * >= 0.999 per row, and where this CPU runs bf16 the result must differ (the path ran). */
static void check_bf16_rows(const char *what, const float *e32, const float *e16, int rows, int E,
                            const gz_compute *c) {
    double worst = 1.0;
    int differs = 0;
    for (int r = 0; r < rows; r++) {
        double dot = 0, na = 0, nb = 0;
        for (int e = 0; e < E; e++) {
            double a = e32[(size_t)r * E + e], b = e16[(size_t)r * E + e];
            dot += a * b, na += a * a, nb += b * b;
            differs |= a != b;
        }
        double cs = dot / sqrt(na * nb);
        if (!(cs >= worst)) worst = cs;
    }
    checks++;
    if (!(worst >= 0.999)) {
        fprintf(stderr, "FAIL %s: bf16 cosine to fp32 %.6f < 0.999\n", what, worst);
        gz_test_failures++;
    }
    int ran = c->gemm && gz_compute_simd_level(c) == 2 && gz_cpu_has_bf16();
    if (ran && !differs) {
        fprintf(stderr, "FAIL %s: bf16 gave exactly the fp32 result (path not taken?)\n", what);
        gz_test_failures++;
    }
    fprintf(stderr, "  %s: bf16 min cosine to fp32 %.6f over %d rows%s\n", what, worst, rows,
            ran ? "" : " (fp32 ran: no AVX512-BF16 or gemm off)");
}

static void run_family(const family_case *c) {
    gz_model_config cfg;
    gz_st_file *w = NULL, *ex = NULL;
    gz_vit *v = NULL;
    CHECK_OK(gz_config_load(gz_test_path("fixtures/%s/config.json", c->dir), &cfg));
    CHECK(cfg.family == c->family);
    CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/model.safetensors", c->dir), &w));
    CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/expected.safetensors", c->dir), &ex));
    if (!w || !ex) goto done;
    CHECK_OK(gz_vit_load(w, &cfg, &v));
    if (!v) goto done;

    const int S = gz_vit_image_size(v), P = gz_vit_tokens(v), D = gz_vit_hidden(v);
    const int L = gz_vit_layers(v), E = gz_vit_dim(v);
    size_t npix = 0;
    const float *pixels = want(ex, c->dir, "pixel_values", &npix);
    if (!pixels) goto done;
    const int B = (int)(npix / ((size_t)3 * S * S));
    CHECK(B == 5 && npix == (size_t)B * 3 * S * S);
    const size_t tok = (size_t)B * P * D;
    float *emb = gz_test_alloc_f((size_t)B * E), *feat = gz_test_alloc_f((size_t)B * E);
    float *last = gz_test_alloc_f(tok), *all = gz_test_alloc_f((size_t)(L + 1) * tok),
          *pool = gz_test_alloc_f((size_t)B * D);
    CHECK_OK(gz_vit_encode(v, &cx, pixels, B, emb, feat, last, all, pool));

    // layer by layer, so a failure names the first layer that differs
    size_t n = 0;
    const float *hs = want(ex, c->dir, "vision_hidden_states", &n);
    CHECK(!hs || n == (size_t)(L + 1) * tok);
    for (int l = 0; hs && l <= L; l++) {
        char what[64];
        snprintf(what, sizeof what, "vision_hidden_states[%d]", l);
        close_to(c->dir, what, all + l * tok, hs + l * tok, tok, 1e-4f, 1e-4f);
    }
    const float *lh = want(ex, c->dir, "vision_last_hidden_state", &n);
    CHECK(!lh || n == tok);
    close_to(c->dir, "vision_last_hidden_state", last, lh, tok, 1e-4f, 1e-4f);
    const float *e = want(ex, c->dir, c->embeds_key, &n);
    CHECK(!e || n == (size_t)B * E);
    close_to(c->dir, c->embeds_key, emb, e, (size_t)B * E, 1e-5f, 0);
    if (c->family == GZ_FAMILY_BLIP) {
        // pooled = CLS of the post-LN'd last hidden state
        float *cls = gz_test_alloc_f((size_t)B * D);
        for (int b = 0; lh && b < B; b++)
            memcpy(cls + (size_t)b * D, lh + (size_t)b * P * D, D * sizeof(float));
        close_to(c->dir, "pooled (= last_hidden[:, 0])", pool, lh ? cls : NULL, (size_t)B * D,
                 1e-4f, 1e-4f);
        free(cls);
        // features normalise to the embeddings
        float *fn = gz_test_alloc_f((size_t)B * E);
        memcpy(fn, feat, (size_t)B * E * sizeof(float));
        gz_l2_normalize(fn, B, E, 1e-12f);
        close_to(c->dir, "normalize(features)", fn, e, (size_t)B * E, 1e-5f, 0);
        free(fn);
    } else {
        const float *vp = want(ex, c->dir, "vision_pooled", &n);
        CHECK(!vp || n == (size_t)B * D);
        close_to(c->dir, "vision_pooled", pool, vp, (size_t)B * D, 1e-4f, 1e-4f);
        const float *f = want(ex, c->dir, "image_features", &n);
        CHECK(!f || n == (size_t)B * E);
        close_to(c->dir, "image_features", feat, f, (size_t)B * E, 1e-4f, 1e-4f);
    }

    // only the embeddings requested (the last block then runs the CLS rows alone): the
    // reference's values, and the same as with every output requested; so for the features
    // and the pooled output on their own
    float *emb2 = gz_test_alloc_f((size_t)B * E);
    CHECK_OK(gz_vit_encode(v, &cx, pixels, B, emb2, NULL, NULL, NULL, NULL));
    close_to(c->dir, "embeds only vs all outputs", emb2, emb, (size_t)B * E, 1e-6f, 0);
    close_to(c->dir, "embeds only vs the reference", emb2, e, (size_t)B * E, 1e-5f, 0);
    {
        float *f2 = gz_test_alloc_f((size_t)B * E), *p2 = gz_test_alloc_f((size_t)B * D);
        CHECK_OK(gz_vit_encode(v, &cx, pixels, B, NULL, f2, NULL, NULL, NULL));
        close_to(c->dir, "features only vs all outputs", f2, feat, (size_t)B * E, 1e-5f, 1e-5f);
        CHECK_OK(gz_vit_encode(v, &cx, pixels, B, NULL, NULL, NULL, NULL, p2));
        close_to(c->dir, "pooled only vs all outputs", p2, pool, (size_t)B * D, 1e-5f, 1e-5f);
        free(f2);
        free(p2);
    }
    {
        gz_compute cb = cx;
        cb.bf16 = 1;
        float *eb = gz_test_alloc_f((size_t)B * E);
        CHECK_OK(gz_vit_encode(v, &cb, pixels, B, eb, NULL, NULL, NULL, NULL));
        check_bf16_rows(c->dir, emb, eb, B, E, &cb);
        free(eb);
    }

    // no scratch for the attention, on both paths: GZ_ENOMEM and no embedding written (the
    // attention used to fill its output with zeros and the tower returned them as a result)
    for (int plain = 0; plain < 2; plain++) {
        gz_compute tight = cx;
        tight.scratch_limit = 1;
        if (plain) tight.simd = 0;
        float *e3 = gz_test_alloc_f((size_t)B * E);
        for (size_t i = 0; i < (size_t)B * E; i++)
            e3[i] = 7.0f;
        gz_status st = gz_vit_encode(v, &tight, pixels, B, e3, NULL, NULL, NULL, NULL);
        int untouched = 1;
        for (size_t i = 0; i < (size_t)B * E; i++)
            untouched &= e3[i] == 7.0f;
        checks++;
        CHECK(st == GZ_ENOMEM && strstr(gz_last_error(), "attention") != NULL && untouched);
        free(e3);
    }

    // batch independence: each image alone; then 100 copies (crosses the chunk size for
    // tiny towers) with the rows checked against the single-image result
    for (int b = 0; b < B; b++) {
        float one[1024];
        CHECK(E <= 1024);
        CHECK_OK(
            gz_vit_encode(v, &cx, pixels + (size_t)b * 3 * S * S, 1, one, NULL, NULL, NULL, NULL));
        char what[64];
        snprintf(what, sizeof what, "image %d alone vs in batch", b);
        close_to(c->dir, what, one, emb + (size_t)b * E, (size_t)E, 1e-5f, 0);
    }
    const int R = 100, BR = B * R;
    float *rep = gz_test_alloc_f((size_t)BR * 3 * S * S),
          *rep_emb = gz_test_alloc_f((size_t)BR * E);
    for (int r = 0; r < R; r++)
        memcpy(rep + (size_t)r * B * 3 * S * S, pixels, npix * sizeof(float));
    CHECK_OK(gz_vit_encode(v, &cx, rep, BR, rep_emb, NULL, NULL, NULL, NULL));
    double worst = 0;
    for (int r = 0; r < R; r++) {
        double d = gz_max_abs_diff(rep_emb + (size_t)r * B * E, emb, (size_t)B * E);
        if (d > worst) worst = d;
    }
    checks++;
    CHECK(worst <= 1e-5);
    printf("  %-14s %-34s max diff %.3g\n", c->dir, "500-image batch vs 5-image batch", worst);

    // two threads sharing the tower
    thread_job jobs[2];
    pthread_t th[2];
    for (int t = 0; t < 2; t++) {
        jobs[t] = (thread_job){v, rep, BR / 2, gz_test_alloc_f((size_t)(BR / 2) * E), GZ_EINVAL};
        CHECK(pthread_create(&th[t], NULL, thread_main, &jobs[t]) == 0);
    }
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
        CHECK(jobs[t].st == GZ_OK);
        close_to(c->dir, "thread result vs batch", jobs[t].embeds, rep_emb, (size_t)(BR / 2) * E,
                 1e-5f, 0);
        free(jobs[t].embeds);
    }
    free(rep);
    free(rep_emb);

    check_half(c, &cfg, ex, pixels, B, "model.f16.safetensors", "f16w");
    check_half(c, &cfg, ex, pixels, B, "model.bf16.safetensors", "bf16w");

    // a config that disagrees with the weights is refused with the tensor named
    gz_model_config bad = cfg;
    bad.vision.intermediate_size += 1;
    gz_vit *v2 = (gz_vit *)1;
    checks++;
    CHECK(gz_vit_load(w, &bad, &v2) != GZ_OK && v2 == NULL);
    CHECK(strstr(gz_last_error(), "fc1") != NULL);
    bad = cfg;
    bad.vision.patch_size = 7; // image size not a multiple
    checks++;
    CHECK(gz_vit_load(w, &bad, &v2) == GZ_EINVAL && v2 == NULL);

    free(emb);
    free(emb2);
    free(feat);
    free(last);
    free(all);
    free(pool);
done:
    gz_vit_free(v);
    gz_st_close(ex);
    gz_st_close(w);
}

int main(void) {
    /* gaze's own Linear kernels on packed weights, the same with W as stored, then OpenBLAS
     * for every product (the reference) */
    for (int gemm = GZ_GEMM_PACKED; gemm >= GZ_GEMM_REFERENCE; gemm--) {
        cx = gz_compute_make(0, 1);
        cx.gemm = gemm;
        cx.pack_after_rows = 0; /* the packed copies from the first forward */
        fprintf(stderr, "gemm %d\n", gemm);
        for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
            run_family(&CASES[i]);
    }
    return gz_test_finish("vision_vit", checks);
}
