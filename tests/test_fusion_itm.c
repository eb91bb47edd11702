/* test_fusion_itm.c - BLIP image-text matching parity with transformers.
 *
 * Image states are the fixture's vision_last_hidden_state (no ViT involved), texts its
 * input_ids / attention_mask (no tokenizer). Per image: itm_logits, itm_probs, itm_text_cls;
 * the full multimodal last hidden state for image 0; the original-BLIP [ENC] convention
 * against itm_logits_enc_token; F16/BF16 weight files against f16w./bf16w. (image states from
 * the ViT on the same rounded weights, as the references were made); batch independence;
 * concurrent scoring; a CLIP-family model refused with GZ_EUNSUPPORTED. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/linear.h"
#include "core/safetensors.h"
#include "fusion/itm.h"
#include "testutil.h"
#include "vision_encoder/vit.h"

#define ATOL_LOGIT 1e-4f
#define ATOL_PROB 1e-5f
#define ENC_TOKEN_ID 30523 /* "[ENC]" in the fixture's added_tokens.json */

static int checks;
/* The context every encode runs under (all cores, vector paths), set in main. */
static gz_compute cx;

static const float *want(gz_st_file *ex, const char *name, size_t *n) {
    checks++;
    return gz_test_expected_f32(ex, NULL, name, n);
}

static void close_to(const char *what, const float *got, const float *w, size_t n, float atol) {
    checks++;
    gz_test_close_report(NULL, 0, what, 40, got, w, n, atol, 0.0f);
}

/* Integer tensor (B, T) as int32 (counted); see gz_test_expected_ids. */
static int32_t *load_ids(gz_st_file *ex, const char *name, int *B, int *T) {
    checks++;
    return gz_test_expected_ids(ex, name, B, T);
}

typedef struct {
    int I, Ti, Dv, B, T;
    const float *states; /* (I, Ti, Dv) */
    const int32_t *ids, *mask;
} inputs;

/* Score every image against every text: logits (I, B, 2), probs (I, B), cls (I, B, D) and
 * last hidden (B, T, D) of image 0 (each optional). enc = -1 or the [ENC] id. */
static void score_all(const gz_itm *m, const inputs *in, int32_t enc, float *logits, float *probs,
                      float *cls, float *last0) {
    int D = gz_itm_hidden_size(m);
    for (int i = 0; i < in->I; i++) {
        gz_itm_image *im = NULL;
        CHECK_OK(
            gz_itm_prepare_image(m, &cx, in->states + (size_t)i * in->Ti * in->Dv, in->Ti, &im));
        if (!im) continue;
        float *lg = logits + (size_t)i * in->B * 2;
        CHECK_OK(gz_itm_score_ex(m, &cx, im, in->ids, in->mask, in->B, in->T, enc, lg,
                                 cls ? cls + (size_t)i * in->B * D : NULL, i == 0 ? last0 : NULL));
        if (probs)
            for (int b = 0; b < in->B; b++)
                probs[(size_t)i * in->B + b] = gz_itm_prob(lg + 2 * b);
        gz_itm_image_free(im);
    }
}

typedef struct {
    const gz_itm *m;
    const gz_itm_image *im;
    const inputs *in;
    float *logits;
    gz_status st;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *j = arg;
    for (int rep = 0; rep < 20 && j->st == GZ_OK; rep++)
        j->st = gz_itm_score(j->m, &cx, j->im, j->in->ids, j->in->mask, j->in->B, j->in->T,
                             j->logits, NULL, NULL);
    return NULL;
}

/* Every (image, text) pair in one gz_itm_score_pairs batch on c, text-major (each pair's
 * image differs from its neighbour's) or image-major (runs of B texts sharing an image),
 * against the expected logits want_lg (I, B, 2). */
static void check_pairs(const gz_itm *m, const gz_compute *c, gz_itm_image *const *images,
                        const inputs *in, const float *want_lg, int text_major, const char *what) {
    const int I = in->I, B = in->B, T = in->T;
    size_t P = (size_t)I * B;
    int32_t *pids = malloc(P * T * sizeof *pids), *pmask = malloc(P * T * sizeof *pmask);
    const gz_itm_image **pim = calloc(P, sizeof *pim);
    float *plg = gz_test_alloc_f(P * 2), *pwant = gz_test_alloc_f(P * 2);
    if (!pids || !pmask || !pim) exit(2);
    for (size_t r = 0; r < P; r++) {
        int i = text_major ? (int)(r % I) : (int)(r / B);
        int b = text_major ? (int)(r / I) : (int)(r % B);
        memcpy(pids + r * T, in->ids + (size_t)b * T, T * sizeof *pids);
        memcpy(pmask + r * T, in->mask + (size_t)b * T, T * sizeof *pmask);
        pim[r] = images[i];
        memcpy(pwant + r * 2, want_lg + ((size_t)i * B + b) * 2, 2 * sizeof *pwant);
    }
    CHECK_OK(gz_itm_score_pairs(m, c, pim, pids, pmask, (int)P, T, -1, plg, NULL, NULL));
    close_to(what, plg, pwant, P * 2, ATOL_LOGIT);
    free(pids);
    free(pmask);
    free(pim);
    free(plg);
    free(pwant);
}

static void check_half(const gz_model_config *cfg, gz_st_file *ex, const inputs *in,
                       const char *file, const char *prefix) {
    gz_st_file *w = NULL;
    gz_itm *m = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/blip_itm/%s", file), &w));
    if (w) CHECK_OK(gz_itm_load(w, cfg, &m));
    /* The f16w./bf16w. references ran the vision tower on the rounded weights too, so the
     * image states come from our ViT on the same file (its own parity is tested elsewhere). */
    gz_vit *v = NULL;
    if (w) CHECK_OK(gz_vit_load(w, cfg, &v));
    const float *pixels = want(ex, "pixel_values", NULL);
    float *states = gz_test_alloc_f((size_t)in->I * in->Ti * in->Dv);
    if (v && pixels) CHECK_OK(gz_vit_encode(v, &cx, pixels, in->I, NULL, NULL, states, NULL, NULL));
    if (m && v && pixels) {
        inputs half = *in;
        half.states = states;
        float *logits = gz_test_alloc_f((size_t)in->I * in->B * 2),
              *probs = gz_test_alloc_f((size_t)in->I * in->B);
        score_all(m, &half, -1, logits, probs, NULL, NULL);
        char key[64];
        snprintf(key, sizeof key, "%s.itm_logits", prefix);
        close_to(key, logits, want(ex, key, NULL), (size_t)in->I * in->B * 2, ATOL_LOGIT);
        snprintf(key, sizeof key, "%s.itm_probs", prefix);
        close_to(key, probs, want(ex, key, NULL), (size_t)in->I * in->B, ATOL_PROB);
        free(logits);
        free(probs);
    }
    free(states);
    gz_vit_free(v);
    gz_itm_free(m);
    gz_st_close(w);
}

static void check_blip(void) {
    gz_model_config cfg;
    gz_st_file *ex = NULL, *w = NULL;
    gz_itm *m = NULL;
    int32_t *ids = NULL, *mask = NULL;
    printf("blip_itm\n");
    CHECK_OK(gz_config_load(gz_test_path("fixtures/blip_itm/config.json"), &cfg));
    CHECK_OK(gz_st_open(gz_test_path("fixtures/blip_itm/expected.safetensors"), &ex));
    CHECK_OK(gz_st_open(gz_test_path("fixtures/blip_itm/model.safetensors"), &w));
    if (!ex || !w) goto done;
    CHECK_OK(gz_itm_load(w, &cfg, &m));
    if (!m) goto done;

    inputs in;
    int Bm, Tm;
    ids = load_ids(ex, "input_ids", &in.B, &in.T);
    mask = load_ids(ex, "attention_mask", &Bm, &Tm);
    in.states = want(ex, "vision_last_hidden_state", NULL);
    const gz_st_tensor *vs = gz_st_find(ex, "vision_last_hidden_state");
    if (!ids || !mask || !in.states || !vs || vs->ndim != 3 || Bm != in.B || Tm != in.T) {
        CHECK(0);
        goto done;
    }
    in.I = (int)vs->shape[0], in.Ti = (int)vs->shape[1], in.Dv = (int)vs->shape[2];
    in.ids = ids, in.mask = mask;
    CHECK(in.Dv == gz_itm_image_hidden_size(m));
    const int D = gz_itm_hidden_size(m), I = in.I, B = in.B, T = in.T;

    float *logits = gz_test_alloc_f((size_t)I * B * 2), *probs = gz_test_alloc_f((size_t)I * B);
    float *cls = gz_test_alloc_f((size_t)I * B * D), *last0 = gz_test_alloc_f((size_t)B * T * D);
    score_all(m, &in, -1, logits, probs, cls, last0);
    close_to("itm_logits", logits, want(ex, "itm_logits", NULL), (size_t)I * B * 2, ATOL_LOGIT);
    close_to("itm_probs", probs, want(ex, "itm_probs", NULL), (size_t)I * B, ATOL_PROB);
    close_to("itm_text_cls", cls, want(ex, "itm_text_cls", NULL), (size_t)I * B * D, ATOL_LOGIT);
    close_to("itm_text_last_hidden_state_img0", last0,
             want(ex, "itm_text_last_hidden_state_img0", NULL), (size_t)B * T * D, ATOL_LOGIT);

    /* The logits alone (the last layer then runs each text's first row alone past its keys
     * and values) against the same call returning every state: image 0 of score_all returned
     * them, the others did not. */
    {
        float *lg1 = gz_test_alloc_f((size_t)I * B * 2);
        score_all(m, &in, -1, lg1, NULL, NULL, NULL);
        close_to("itm_logits alone vs with the states", lg1, logits, (size_t)B * 2, 1e-5f);
        free(lg1);
    }

    /* Original BLIP: first id replaced by [ENC]. */
    float *lg_enc = gz_test_alloc_f((size_t)I * B * 2), *pr_enc = gz_test_alloc_f((size_t)I * B);
    score_all(m, &in, ENC_TOKEN_ID, lg_enc, pr_enc, NULL, NULL);
    close_to("itm_logits_enc_token", lg_enc, want(ex, "itm_logits_enc_token", NULL),
             (size_t)I * B * 2, ATOL_LOGIT);
    close_to("itm_probs_enc_token", pr_enc, want(ex, "itm_probs_enc_token", NULL), (size_t)I * B,
             ATOL_PROB);
    /* The caller's ids must be left untouched by the [ENC] option. */
    checks++;
    CHECK(ids[0] != ENC_TOKEN_ID);

    /* All (image, text) pairs in one batch, text-major (every pair a different image than its
     * neighbour) and image-major (runs sharing an image), against the expected matrix. */
    gz_itm_image **ims = calloc((size_t)I, sizeof *ims);
    for (int i = 0; i < I; i++)
        CHECK_OK(
            gz_itm_prepare_image(m, &cx, in.states + (size_t)i * in.Ti * in.Dv, in.Ti, &ims[i]));
    const float *want_lg = want(ex, "itm_logits", NULL);
    for (int order = 0; order < 2 && want_lg; order++)
        check_pairs(m, &cx, ims, &in, want_lg, order == 0,
                    order == 0 ? "itm_logits (pairs, text-major)"
                               : "itm_logits (pairs, image-major)");
    /* The same pairs against images kept as their states (the folded cross-attention of a
     * re-rank), with the vector paths (folded) and the reference (keys and values projected
     * per call), text-major (one text per image run) and image-major (B texts per run). */
    gz_itm_image **sts = calloc((size_t)I, sizeof *sts);
    for (int i = 0; sts && i < I; i++) {
        CHECK_OK(
            gz_itm_prepare_image_states(m, in.states + (size_t)i * in.Ti * in.Dv, in.Ti, &sts[i]));
        /* into the same memory again, as a re-rank's next chunk does */
        gz_itm_image *before = sts[i];
        CHECK_OK(
            gz_itm_prepare_image_states(m, in.states + (size_t)i * in.Ti * in.Dv, in.Ti, &sts[i]));
        checks++;
        CHECK(sts[i] == before);
    }
    for (int run = 0; run < 4 && want_lg && sts; run++) {
        int text_major = run % 2 == 0, reference = run >= 2;
        gz_compute c2 = cx;
        if (reference) c2.gemm = 0;
        char what[64];
        snprintf(what, sizeof what, "itm_logits (states, %s, %s)",
                 text_major ? "text-major" : "image-major", reference ? "reference" : "folded");
        check_pairs(m, &c2, sts, &in, want_lg, text_major, what);
    }
    for (int i = 0; i < I; i++) {
        gz_itm_image_free(ims[i]);
        if (sts) gz_itm_image_free(sts[i]);
    }
    free(ims);
    free(sts);

    /* Batch independence: each text alone, unpadded, against image 1. */
    gz_itm_image *im = NULL;
    CHECK_OK(gz_itm_prepare_image(m, &cx, in.states + (size_t)1 * in.Ti * in.Dv, in.Ti, &im));
    double worst = 0;
    for (int b = 0; im && b < B; b++) {
        int len = 0;
        while (len < T && mask[(size_t)b * T + len])
            len++;
        float lg[2];
        CHECK_OK(gz_itm_score(m, &cx, im, ids + (size_t)b * T, NULL, 1, len, lg, NULL, NULL));
        double d = gz_max_abs_diff(lg, logits + ((size_t)1 * B + b) * 2, 2);
        if (d > worst) worst = d;
    }
    checks++;
    CHECK(worst <= 1e-5);
    printf("  %-40s max diff %.3g\n", "itm_logits alone vs batch", worst);

    /* The bf16 path: every text against image 1, ITM probabilities within 0.01 of fp32, and
     * different from them where this CPU runs bf16 (the path ran). */
    if (im) {
        gz_compute cb = cx;
        cb.bf16 = 1;
        float *lb = malloc((size_t)B * 2 * sizeof *lb);
        CHECK_OK(gz_itm_score(m, &cb, im, ids, mask, B, T, lb, NULL, NULL));
        double wp = 0;
        int differs = 0;
        for (int b = 0; b < B; b++) {
            const float *l32 = logits + ((size_t)1 * B + b) * 2;
            double d = fabs((double)gz_itm_prob(lb + 2 * b) - gz_itm_prob(l32));
            if (!(d <= wp)) wp = d;
            differs |= lb[2 * b] != l32[0] || lb[2 * b + 1] != l32[1];
        }
        int ran = cb.gemm && gz_compute_simd_level(&cb) == 2 && gz_cpu_has_bf16();
        checks++;
        CHECK(wp <= 0.01);
        CHECK(!ran || differs);
        printf("  %-40s max diff %.3g%s\n", "itm prob bf16 vs fp32", wp, ran ? "" : " (fp32 ran)");
        free(lb);
    }

    /* Two threads scoring against the same prepared image. */
    if (im) {
        thread_job jobs[2];
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            jobs[i] = (thread_job){m, im, &in, gz_test_alloc_f((size_t)B * 2), GZ_OK};
            CHECK(pthread_create(&th[i], NULL, thread_main, &jobs[i]) == 0);
        }
        for (int i = 0; i < 2; i++) {
            pthread_join(th[i], NULL);
            checks++;
            CHECK(jobs[i].st == GZ_OK);
            CHECK(gz_max_abs_diff(jobs[i].logits, logits + (size_t)B * 2, (size_t)B * 2) <= 1e-6);
            free(jobs[i].logits);
        }
        /* Bad inputs. */
        int32_t bad[2] = {101, cfg.text.vocab_size};
        float lg[2];
        checks++;
        CHECK(gz_itm_score(m, &cx, im, bad, NULL, 1, 2, lg, NULL, NULL) == GZ_EINVAL);
        CHECK(gz_itm_score(m, &cx, im, bad, NULL, 0, 2, lg, NULL, NULL) == GZ_EINVAL);
        /* No scratch for the attention, on both paths: GZ_ENOMEM and no logits written. Text 0
         * cut to Ts < Ti tokens; the second limit leaves one row of Ts scores (self-attention
         * runs row by row) but not of Ti, so there the cross-attention is the one that fails. */
        int Ts = 0;
        while (Ts < T && Ts < in.Ti - 1 && mask[Ts])
            Ts++;
        CHECK(Ts >= 1 && Ts < in.Ti);
        const size_t limits[2] = {1, (size_t)Ts * sizeof(float)};
        for (int plain = 0; plain < 2; plain++)
            for (int l = 0; l < 2; l++) {
                gz_compute tight = cx;
                tight.scratch_limit = limits[l];
                if (plain) tight.simd = 0;
                float lg3[2] = {7.0f, 7.0f};
                gz_status st = gz_itm_score(m, &tight, im, ids, NULL, 1, Ts, lg3, NULL, NULL);
                char keys[48]; /* the failing attention's key count: Ts (self) or Ti (cross) */
                snprintf(keys, sizeof keys, "scores of %d keys", l ? in.Ti : Ts);
                checks++;
                if (st != GZ_ENOMEM)
                    fprintf(stderr, "ITM without scratch (limit %zu, simd %d): status %d\n",
                            limits[l], tight.simd, st);
                CHECK(st == GZ_ENOMEM && strstr(gz_last_error(), keys) != NULL);
                CHECK(lg3[0] == 7.0f && lg3[1] == 7.0f);
            }
        /* without the limit the same call succeeds: the errors above come from the limit */
        float lg4[2];
        CHECK_OK(gz_itm_score(m, &cx, im, ids, NULL, 1, Ts, lg4, NULL, NULL));
        checks++;
    }
    gz_itm_image *none = NULL;
    checks++;
    CHECK(gz_itm_prepare_image(m, &cx, in.states, 0, &none) == GZ_EINVAL && none == NULL);
    gz_itm_image_free(im);

    /* softmax(logits)[1], also for large logit gaps. */
    float big[2] = {100.0f, -100.0f}, eq[2] = {3.0f, 3.0f};
    checks++;
    CHECK(gz_itm_prob(big) >= 0.0f && gz_itm_prob(big) < 1e-30f);
    CHECK(gz_itm_prob(eq) == 0.5f);

    check_half(&cfg, ex, &in, "model.f16.safetensors", "f16w");
    check_half(&cfg, ex, &in, "model.bf16.safetensors", "bf16w");

    free(logits);
    free(probs);
    free(cls);
    free(last0);
    free(lg_enc);
    free(pr_enc);
done:
    free(ids);
    free(mask);
    gz_itm_free(m);
    gz_st_close(w);
    gz_st_close(ex);
}

/* CLIP-family models have no fusion: a clear GZ_EUNSUPPORTED. */
static void check_unsupported(const char *dir) {
    gz_model_config cfg;
    gz_st_file *w = NULL;
    gz_itm *m = NULL;
    CHECK_OK(gz_config_load(gz_test_path("fixtures/%s/config.json", dir), &cfg));
    CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/model.safetensors", dir), &w));
    checks++;
    CHECK(gz_itm_load(w, &cfg, &m) == GZ_EUNSUPPORTED && m == NULL);
    CHECK(strstr(gz_last_error(), dir) != NULL);
    gz_st_close(w);
}

int main(void) {
    /* gaze's own Linear kernels on packed weights, the same with W as stored, then OpenBLAS
     * for every product (the reference) */
    for (int gemm = GZ_GEMM_PACKED; gemm >= GZ_GEMM_REFERENCE; gemm--) {
        cx = gz_compute_make(0, 1);
        cx.gemm = gemm;
        cx.pack_after_rows = 0; /* the packed copies from the first forward */
        printf("gemm %d\n", gemm);
        check_blip();
    }
    check_unsupported("clip");
    check_unsupported("chinese_clip");
    return gz_test_finish("fusion_itm", checks);
}
