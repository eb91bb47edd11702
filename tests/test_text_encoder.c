/* test_text_encoder.c - text tower parity with transformers for BLIP (ITC), CLIP, Chinese-CLIP.
 *
 * Inputs are the fixtures' own input_ids / attention_mask (no tokenizer involved). Checks:
 * text_hidden_states layer by layer (a failure names the layer), the last hidden state,
 * CLIP's EOS pool index, pooled output, unnormalised features and normalised embeddings;
 * F16/BF16 weight files against f16w./bf16w.; BLIP itc_sim and CLIP-family logits_per_image
 * from our text embeddings and the expected image embeddings; batch independence (each text
 * alone, unpadded); the embeddings alone (padding rows left out) against every output, with
 * the fixture mask and with a hole in it; concurrent encoding from two threads; bad inputs. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/linear.h"
#include "core/safetensors.h"
#include "testutil.h"
#include "text_encoder/clip_text.h"
#include "text_encoder/text_tower.h"

#define ATOL_HIDDEN 1e-4f
#define ATOL_EMBED 1e-5f

static int checks;
/* The context every encode runs under (all cores, vector paths), set in main. */
static gz_compute cx;

typedef struct {
    const char *dir;
    gz_family family;
    const char *embeds_key;   /* normalised text embeddings */
    const char *features_key; /* unnormalised projections, NULL if none in the fixture */
    const char *image_key;    /* normalised image embeddings */
} family_case;

static const family_case CASES[] = {
    {"blip_itm", GZ_FAMILY_BLIP, "itc_text_embeds", NULL, "itc_image_embeds"},
    {"clip", GZ_FAMILY_CLIP, "text_embeds", "text_features", "image_embeds"},
    {"chinese_clip", GZ_FAMILY_CHINESE_CLIP, "text_embeds", "text_features", "image_embeds"},
};

/* Expected tensor by name (counted); see gz_test_expected_f32. */
static const float *want(gz_st_file *ex, const char *fam, const char *name, size_t *n) {
    checks++;
    return gz_test_expected_f32(ex, fam, name, n);
}

static void close_to(const char *fam, const char *what, const float *got, const float *w, size_t n,
                     float atol) {
    checks++;
    gz_test_close_report(fam, 13, what, 36, got, w, n, atol, 0.0f);
}

/* Integer tensor (B, T) as int32 (counted); see gz_test_expected_ids. */
static int32_t *load_ids(gz_st_file *ex, const char *name, int *B, int *T) {
    checks++;
    return gz_test_expected_ids(ex, name, B, T);
}

/* sim (I, B) = scale * img (I, E) · txt (B, E)^T, in double. */
static void similarity(const float *img, const float *txt, int I, int B, int E, float scale,
                       float *sim) {
    for (int i = 0; i < I; i++)
        for (int b = 0; b < B; b++) {
            double s = 0;
            for (int e = 0; e < E; e++)
                s += (double)img[i * E + e] * txt[b * E + e];
            sim[i * B + b] = (float)(scale * s);
        }
}

typedef struct {
    const gz_text_tower *t;
    const int32_t *ids, *mask;
    int B, T;
    float *embeds;
    gz_status st;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *j = arg;
    for (int rep = 0; rep < 20 && j->st == GZ_OK; rep++)
        j->st = gz_text_tower_encode(j->t, &cx, j->ids, j->mask, j->B, j->T, j->embeds, NULL, NULL,
                                     NULL);
    return NULL;
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

/* Embeddings from a half-precision weight file vs the references computed from it. */
static void check_half(const family_case *c, const gz_model_config *cfg, gz_st_file *ex,
                       const int32_t *ids, const int32_t *mask, int B, int T, const char *file,
                       const char *prefix) {
    gz_st_file *w = NULL;
    gz_text_tower *t = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/%s", c->dir, file), &w));
    if (!w) return;
    CHECK_OK(gz_text_tower_load(w, cfg, &t));
    if (t) {
        int E = gz_text_tower_dim(t);
        float *e = gz_test_alloc_f((size_t)B * E);
        CHECK_OK(gz_text_tower_encode(t, &cx, ids, mask, B, T, e, NULL, NULL, NULL));
        char key[96];
        snprintf(key, sizeof key, "%s.%s", prefix, c->embeds_key);
        close_to(c->dir, key, e, want(ex, c->dir, key, NULL), (size_t)B * E, ATOL_EMBED);
        size_t ni = 0;
        snprintf(key, sizeof key, "%s.%s", prefix, c->image_key);
        const float *img = want(ex, c->dir, key, &ni);
        if (img) {
            int I = (int)(ni / (size_t)E);
            float *sim = gz_test_alloc_f((size_t)I * B);
            if (c->family == GZ_FAMILY_BLIP) {
                similarity(img, e, I, B, E, 1.0f, sim);
                snprintf(key, sizeof key, "%s.itc_sim", prefix);
                close_to(c->dir, key, sim, want(ex, c->dir, key, NULL), (size_t)I * B, ATOL_EMBED);
            } else {
                /* The temperature comes from the same rounded weight file. */
                const float *ls = NULL;
                CHECK_OK(gz_st_f32(w, "logit_scale", 0, NULL, &ls));
                similarity(img, e, I, B, E, ls ? expf(*ls) : 1.0f, sim);
                snprintf(key, sizeof key, "%s.logits_per_image", prefix);
                close_to(c->dir, key, sim, want(ex, c->dir, key, NULL), (size_t)I * B, ATOL_HIDDEN);
            }
            free(sim);
        }
        free(e);
    }
    gz_text_tower_free(t);
    gz_st_close(w);
}

static void check_family(const family_case *c) {
    gz_model_config cfg;
    gz_st_file *ex = NULL, *w = NULL;
    gz_text_tower *t = NULL;
    printf("%s\n", c->dir);
    CHECK_OK(gz_config_load(gz_test_path("fixtures/%s/config.json", c->dir), &cfg));
    CHECK(cfg.family == c->family);
    CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/expected.safetensors", c->dir), &ex));
    CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/model.safetensors", c->dir), &w));
    if (!ex || !w) goto done;
    CHECK_OK(gz_text_tower_load(w, &cfg, &t));
    if (!t) goto done;

    int B = 0, T = 0, Bm = 0, Tm = 0;
    int32_t *ids = load_ids(ex, "input_ids", &B, &T);
    int32_t *mask = load_ids(ex, "attention_mask", &Bm, &Tm);
    if (!ids || !mask || B != Bm || T != Tm) {
        CHECK(0);
        free(ids);
        free(mask);
        goto done;
    }
    if (c->family == GZ_FAMILY_CHINESE_CLIP) {
        /* The tower assumes single-segment input: token types all 0. */
        int Bt, Tt;
        int32_t *tt = load_ids(ex, "token_type_ids", &Bt, &Tt);
        int zero = tt != NULL;
        for (size_t i = 0; tt && i < (size_t)Bt * Tt; i++)
            zero &= tt[i] == 0;
        CHECK(zero);
        free(tt);
    }
    const int D = gz_text_tower_hidden_size(t), E = gz_text_tower_dim(t);
    const int L = gz_text_tower_num_layers(t);
    const size_t plane = (size_t)B * T * D;
    float *embeds = gz_test_alloc_f((size_t)B * E), *features = gz_test_alloc_f((size_t)B * E);
    float *last = gz_test_alloc_f(plane), *all = gz_test_alloc_f((size_t)(L + 1) * plane);
    CHECK_OK(gz_text_tower_encode(t, &cx, ids, mask, B, T, embeds, features, last, all));

    /* Layer by layer: the first layer that differs is the one to look at. */
    size_t nh = 0;
    const float *hs = want(ex, c->dir, "text_hidden_states", &nh);
    CHECK(!hs || nh == (size_t)(L + 1) * plane);
    for (int l = 0; hs && nh == (size_t)(L + 1) * plane && l <= L; l++) {
        char what[64];
        snprintf(what, sizeof what, "text_hidden_states[%d]%s", l, l == 0 ? " (embeddings)" : "");
        close_to(c->dir, what, all + (size_t)l * plane, hs + (size_t)l * plane, plane, ATOL_HIDDEN);
    }
    close_to(c->dir, "text_last_hidden_state", last,
             want(ex, c->dir, "text_last_hidden_state", NULL), plane, ATOL_HIDDEN);

    if (c->family != GZ_FAMILY_BLIP) {
        /* Pool index (HF's EOS rule for CLIP, [CLS] for Chinese-CLIP) and pooled output. */
        int64_t *pidx = NULL;
        size_t np = 0;
        CHECK_OK(gz_st_i64_copy(ex, "text_pool_index", &pidx, &np));
        float *pooled = gz_test_alloc_f((size_t)B * D);
        int idx_ok = pidx && np == (size_t)B;
        for (int b = 0; idx_ok && b < B; b++) {
            int p = c->family == GZ_FAMILY_CLIP
                        ? gz_clip_pool_index(ids + (size_t)b * T, T, cfg.text.eos_token_id)
                        : 0;
            if (p != pidx[b]) {
                fprintf(stderr, "%s: text %d pooled at %d, want %lld\n", c->dir, b, p,
                        (long long)pidx[b]);
                idx_ok = 0;
            }
            memcpy(pooled + (size_t)b * D, last + ((size_t)b * T + p) * D, D * sizeof(float));
        }
        checks++;
        CHECK(idx_ok);
        close_to(c->dir, "text_pooled", pooled, want(ex, c->dir, "text_pooled", NULL),
                 (size_t)B * D, ATOL_HIDDEN);
        free(pooled);
        free(pidx);
    }
    if (c->features_key)
        close_to(c->dir, c->features_key, features, want(ex, c->dir, c->features_key, NULL),
                 (size_t)B * E, ATOL_HIDDEN);
    close_to(c->dir, c->embeds_key, embeds, want(ex, c->dir, c->embeds_key, NULL), (size_t)B * E,
             ATOL_EMBED);
    {
        /* The embeddings alone (a BERT tower then runs the first rows alone through its last
         * layer): the same as with every state returned. */
        float *e1 = gz_test_alloc_f((size_t)B * E);
        CHECK_OK(gz_text_tower_encode(t, &cx, ids, mask, B, T, e1, NULL, NULL, NULL));
        close_to(c->dir, "embeds alone vs all outputs", e1, embeds, (size_t)B * E, 1e-6f);
        /* A mask with a hole in the longest text (its second token masked out; then its last,
         * which a CLIP tower pools): the packed rows (embeddings alone: padding rows left out)
         * against the masked ones. */
        int longest = 0, len_max = 0;
        for (int b = 0; b < B; b++) {
            int len = 0;
            while (len < T && mask[(size_t)b * T + len])
                len++;
            if (len > len_max) len_max = len, longest = b;
        }
        if (len_max >= 3) {
            int32_t *holed = malloc((size_t)B * T * sizeof *holed);
            float *eh = gz_test_alloc_f((size_t)B * E), *last = gz_test_alloc_f((size_t)B * T * D);
            if (!holed) exit(2);
            const int holes[2] = {1, len_max - 1};
            for (int i = 0; i < 2; i++) {
                memcpy(holed, mask, (size_t)B * T * sizeof *holed);
                holed[(size_t)longest * T + holes[i]] = 0;
                CHECK_OK(gz_text_tower_encode(t, &cx, ids, holed, B, T, eh, NULL, last, NULL));
                CHECK_OK(gz_text_tower_encode(t, &cx, ids, holed, B, T, e1, NULL, NULL, NULL));
                close_to(c->dir,
                         i ? "embeds alone vs all, last token masked"
                           : "embeds alone vs all, mask with a hole",
                         e1, eh, (size_t)B * E, 1e-6f);
                CHECK(gz_max_abs_diff(eh + (size_t)longest * E, embeds + (size_t)longest * E,
                                      (size_t)E) > 1e-4); /* the hole changes that text */
            }
            free(holed);
            free(eh);
            free(last);
        }
        free(e1);
    }
    {
        gz_compute cb = cx;
        cb.bf16 = 1;
        float *eb = gz_test_alloc_f((size_t)B * E);
        CHECK_OK(gz_text_tower_encode(t, &cb, ids, mask, B, T, eb, NULL, NULL, NULL));
        check_bf16_rows(c->dir, embeds, eb, B, E, &cb);
        free(eb);
    }
    /* Unit norm (and features = unnormalised embeds). */
    for (int b = 0; b < B; b++) {
        double ss = 0, sf = 0;
        for (int e = 0; e < E; e++) {
            ss += (double)embeds[b * E + e] * embeds[b * E + e];
            sf += (double)features[b * E + e] * features[b * E + e];
        }
        checks++;
        CHECK(fabs(ss - 1.0) < 1e-5);
        for (int e = 0; e < E; e++)
            CHECK(fabsf(embeds[b * E + e] * (float)sqrt(sf) - features[b * E + e]) < 1e-4f);
    }

    /* Cross-modal similarities from our text embeddings and the expected image embeddings. */
    size_t ni = 0;
    const float *img = want(ex, c->dir, c->image_key, &ni);
    if (img) {
        int I = (int)(ni / (size_t)E);
        float *sim = gz_test_alloc_f((size_t)I * B);
        if (c->family == GZ_FAMILY_BLIP) {
            similarity(img, embeds, I, B, E, 1.0f, sim);
            close_to(c->dir, "itc_sim", sim, want(ex, c->dir, "itc_sim", NULL), (size_t)I * B,
                     ATOL_EMBED);
        } else {
            const float *ls = want(ex, c->dir, "logit_scale_exp", NULL);
            similarity(img, embeds, I, B, E, ls ? *ls : 1.0f, sim);
            close_to(c->dir, "logits_per_image", sim, want(ex, c->dir, "logits_per_image", NULL),
                     (size_t)I * B, ATOL_HIDDEN);
        }
        free(sim);
    }

    /* Batch independence: each text alone, unpadded, vs its row of the padded batch. */
    double worst_e = 0, worst_h = 0;
    float *e1 = gz_test_alloc_f(E), *h1 = gz_test_alloc_f((size_t)T * D);
    for (int b = 0; b < B; b++) {
        int len = 0;
        while (len < T && mask[(size_t)b * T + len])
            len++;
        CHECK_OK(
            gz_text_tower_encode(t, &cx, ids + (size_t)b * T, NULL, 1, len, e1, NULL, h1, NULL));
        double de = gz_max_abs_diff(e1, embeds + (size_t)b * E, E);
        double dh = gz_max_abs_diff(h1, last + (size_t)b * T * D, (size_t)len * D);
        if (de > worst_e) worst_e = de;
        if (dh > worst_h) worst_h = dh;
    }
    checks++;
    CHECK(worst_e <= 1e-5 && worst_h <= 1e-5);
    printf("  %-13s %-36s max diff %.3g (hidden %.3g)\n", c->dir, "alone vs batch", worst_e,
           worst_h);
    free(e1);
    free(h1);

    /* Same tower from two threads at once: identical results. */
    thread_job jobs[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        jobs[i] = (thread_job){t, ids, mask, B, T, gz_test_alloc_f((size_t)B * E), GZ_OK};
        CHECK(pthread_create(&th[i], NULL, thread_main, &jobs[i]) == 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].st == GZ_OK);
        checks++;
        CHECK(gz_max_abs_diff(jobs[i].embeds, embeds, (size_t)B * E) <= 1e-6);
        free(jobs[i].embeds);
    }

    /* Bad inputs are refused with a message, not read out of bounds. */
    int32_t bad = -1;
    checks++;
    CHECK(gz_text_tower_encode(t, &cx, &bad, NULL, 1, 1, e1 = gz_test_alloc_f(E), NULL, NULL,
                               NULL) == GZ_EINVAL);
    bad = cfg.text.vocab_size;
    CHECK(gz_text_tower_encode(t, &cx, &bad, NULL, 1, 1, e1, NULL, NULL, NULL) == GZ_EINVAL);
    int maxp = gz_text_tower_max_positions(t);
    int32_t *longids = calloc((size_t)maxp + 1, sizeof *longids);
    CHECK(gz_text_tower_encode(t, &cx, longids, NULL, 1, maxp + 1, e1, NULL, NULL, NULL) ==
          GZ_EINVAL);
    int32_t zmask[2] = {0, 0}, two[2] = {ids[0], ids[1]};
    CHECK(gz_text_tower_encode(t, &cx, two, zmask, 1, 2, e1, NULL, NULL, NULL) == GZ_EINVAL);
    CHECK(gz_text_tower_encode(t, &cx, two, NULL, 0, 2, e1, NULL, NULL, NULL) == GZ_EINVAL);
    free(longids);
    free(e1);

    /* No scratch for the attention, on both paths: GZ_ENOMEM and no embedding written (the
     * attention used to fill its output with zeros and the tower returned them as a result). */
    for (int plain = 0; plain < 2; plain++) {
        gz_compute tight = cx;
        tight.scratch_limit = 1;
        if (plain) tight.simd = 0;
        float *e3 = gz_test_alloc_f((size_t)B * E);
        for (size_t i = 0; i < (size_t)B * E; i++)
            e3[i] = 7.0f;
        gz_status st = gz_text_tower_encode(t, &tight, ids, mask, B, T, e3, NULL, NULL, NULL);
        int untouched = 1;
        for (size_t i = 0; i < (size_t)B * E; i++)
            untouched &= e3[i] == 7.0f;
        checks++;
        CHECK(st == GZ_ENOMEM && strstr(gz_last_error(), "attention") != NULL && untouched);
        free(e3);
    }

    check_half(c, &cfg, ex, ids, mask, B, T, "model.f16.safetensors", "f16w");
    check_half(c, &cfg, ex, ids, mask, B, T, "model.bf16.safetensors", "bf16w");

    free(embeds);
    free(features);
    free(last);
    free(all);
    free(ids);
    free(mask);
done:
    gz_text_tower_free(t);
    gz_st_close(w);
    gz_st_close(ex);
}

/* A checkpoint missing a tensor, or with the wrong family, fails cleanly. */
static void check_load_errors(void) {
    gz_model_config cfg;
    gz_st_file *w = NULL;
    gz_text_tower *t = NULL;
    CHECK_OK(gz_config_load(gz_test_path("fixtures/clip/config.json"), &cfg));
    /* CLIP weights read as Chinese-CLIP: the BERT tensors are absent. */
    CHECK_OK(gz_st_open(gz_test_path("fixtures/clip/model.safetensors"), &w));
    if (!w) return;
    gz_model_config wrong = cfg;
    wrong.family = GZ_FAMILY_CHINESE_CLIP;
    checks++;
    CHECK(gz_text_tower_load(w, &wrong, &t) == GZ_ENOTFOUND && t == NULL);
    CHECK(strstr(gz_last_error(), "text_model.embeddings.word_embeddings.weight") != NULL);
    /* A config whose sizes disagree with the weights. */
    wrong = cfg;
    wrong.text.intermediate_size += 1;
    CHECK(gz_text_tower_load(w, &wrong, &t) == GZ_EINVAL && t == NULL);
    wrong = cfg;
    wrong.family = (gz_family)99;
    CHECK(gz_text_tower_load(w, &wrong, &t) == GZ_EUNSUPPORTED && t == NULL);
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
            check_family(&CASES[i]);
    }
    check_load_errors();
    return gz_test_finish("text_encoder", checks);
}
