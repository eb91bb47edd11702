/* test_model_bf16_share.c - a bf16 BLIP model holds one bf16 copy of the BERT layers that its
 * text tower and its ITM encoder share (issue #14), whichever of the two runs first, and the
 * results do not depend on which packed them. In fp32 the copies (packed panels) come only
 * after GZ_PACK_AFTER_ROWS rows, so a one-off query makes none, and are shared the same way.
 *
 * Counts come from gz_model_packed_copies (model/model_internal.h). With L text layers, D hidden
 * and F intermediate: the text tower packs 6 weights a layer (self query, key, value, output;
 * intermediate; output), the ITM encoder the same 6 plus the cross-attention query, key, value
 * and output, so a shared model holds 10 L copies, and 16 L if the two kept their own. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "gaze.h"
#include "model/model_internal.h"
#include "testutil.h"

static int checks;

/* Bytes of W(out, in) packed as bf16 (core/linear.h): (ceil(out/16), ceil(in/2), 16, 2). */
static size_t packed_bytes(int out, int in) {
    return ((size_t)out + 15) / 16 * (((size_t)in + 1) / 2) * 32 * 2;
}

/* Bytes of W(out, in) packed as fp32 panels: (ceil(out/16), in, 16). */
static size_t f32_bytes(int out, int in) { return ((size_t)out + 15) / 16 * 16 * (size_t)in * 4; }

static gz_model *load_packed(const char *dir, gz_precision precision, int fp32_packed) {
    gz_model_params p = gz_model_default_params();
    p.n_threads = 2;
    p.precision = precision;
    p.fp32_packed = fp32_packed;
    gz_model *m = NULL;
    if (gz_model_load(dir, &p, &m) != GZ_OK) {
        fprintf(stderr, "%s: %s\n", dir, gz_last_error());
        exit(2);
    }
    return m;
}

static gz_model *load(const char *dir, gz_precision precision) {
    return load_packed(dir, precision, 1);
}

typedef struct {
    size_t text_copies, text_bytes; /* what the text tower alone packs */
    size_t all_copies, all_bytes;   /* text tower and ITM encoder together, shared */
} expect;

/* The copies of one model, checked against want copies and bytes. */
static void check_copies(const char *what, const gz_model *m, size_t want, size_t want_bytes) {
    size_t bytes = 0, n = gz_model_packed_copies(m, &bytes);
    checks++;
    if (n != want || bytes != want_bytes) {
        fprintf(stderr, "FAIL %s: %zu packed copies of %zu bytes, want %zu of %zu\n", what, n,
                bytes, want, want_bytes);
        gz_test_failures++;
    } else {
        printf("  %-44s %zu copies, %zu bytes\n", what, n, bytes);
    }
}

/* Largest embedding this test expects of the fixture. */
#define TEST_MAX_DIM 1024

typedef struct {
    float text[TEST_MAX_DIM]; /* gz_encode_texts of the caption */
    int dim;                  /* gz_model_dim */
    gz_match match;           /* gz_match_text_images_embedded of the caption and the image */
} outputs;

static const char *const CAPTION = "a cat lying on a couch";

/* Run the model's text tower first (text_first) or its ITM encoder first, checking the copies
 * after each. */
static void run_order(const char *dir, gz_precision precision, int text_first, const expect *e,
                      outputs *o) {
    gz_model *m = load(dir, precision);
    const int shared = gz_model_precision(m) == GZ_PRECISION_BF16;
    o->dim = gz_model_dim(m);
    if (o->dim <= 0 || o->dim > TEST_MAX_DIM) {
        fprintf(stderr, "%s: embedding size %d outside this test's 1..%d\n", dir, o->dim,
                TEST_MAX_DIM);
        exit(2);
    }
    gz_image img;
    memset(&img, 0, sizeof img);
    gz_image_params ip = gz_model_image_params(m);
    CHECK_OK(gz_image_load(gz_test_path("fixtures/images/a1_chelsea.jpg"), &ip, &img));
    const char *label = precision == GZ_PRECISION_FP32 ? "fp32"
                        : text_first                   ? "bf16, text tower first"
                                                       : "bf16, ITM encoder first";
    char what[96];
    for (int step = 0; step < 2; step++) {
        int text_now = (step == 0) == (text_first != 0);
        if (text_now) {
            CHECK_OK(gz_encode_texts(m, &CAPTION, 1, o->text));
        } else { /* the ITM encoder without the text tower: a given unit vector stands for
                  * the text's embedding (it sets itc only) */
            float given[TEST_MAX_DIM] = {1.0f};
            CHECK_OK(gz_match_text_images_embedded(m, CAPTION, given, &img, 1, &o->match));
        }
        snprintf(what, sizeof what, "%s, after the %s", label, text_now ? "text tower" : "ITM");
        /* step 0: what the first tower packed; step 1: both, one copy of the shared layers */
        size_t want = !shared ? 0 : step == 1 || !text_now ? e->all_copies : e->text_copies;
        size_t want_b = !shared ? 0 : step == 1 || !text_now ? e->all_bytes : e->text_bytes;
        check_copies(what, m, want, want_b);
    }
    gz_image_free(&img);
    gz_model_free(m);
}

/* fp32: no copy before a tower has run GZ_PACK_AFTER_ROWS rows, then the text tower's 6 L
 * and the ITM encoder's cross-attention query and output (its keys and values stay as stored:
 * a re-rank folds into them) beside the shared ones; the results stay within float rounding
 * of the unpacked ones. */
static void run_fp32_lazy(const char *dir, int L, int D, int F) {
    gz_model *m = load(dir, GZ_PRECISION_FP32);
    gz_image img;
    memset(&img, 0, sizeof img);
    gz_image_params ip = gz_model_image_params(m);
    CHECK_OK(gz_image_load(gz_test_path("fixtures/images/a1_chelsea.jpg"), &ip, &img));
    const int dim = gz_model_dim(m);
    float first[TEST_MAX_DIM], now[TEST_MAX_DIM], given[TEST_MAX_DIM] = {1.0f};
    gz_match m0, m1;
    CHECK_OK(gz_encode_texts(m, &CAPTION, 1, first));
    CHECK_OK(gz_match_text_images_embedded(m, CAPTION, given, &img, 1, &m0));
    check_copies("fp32, after one text and one ITM", m, 0, 0);
    const size_t packs = __builtin_cpu_supports("avx512f") ? 1 : 0; /* the kernel's CPUs */
    size_t text_b = (size_t)L * (4 * f32_bytes(D, D) + f32_bytes(F, D) + f32_bytes(D, F));
    for (int i = 0; i < GZ_PACK_AFTER_ROWS; i++) /* every run is at least one row */
        CHECK_OK(gz_encode_texts(m, &CAPTION, 1, now));
    check_copies("fp32, after the text tower's rows", m, packs * 6 * L, packs * text_b);
    for (int i = 0; i < GZ_PACK_AFTER_ROWS; i++)
        CHECK_OK(gz_match_text_images_embedded(m, CAPTION, given, &img, 1, &m1));
    check_copies("fp32, after the ITM encoder's rows", m, packs * 8 * L,
                 packs * (text_b + (size_t)L * 2 * f32_bytes(D, D)));
    double worst = 0;
    for (int j = 0; j < dim; j++)
        worst = fmax(worst, fabs((double)now[j] - first[j]));
    checks += 2;
    CHECK(dim > 0 && worst < 1e-5);
    CHECK(fabs((double)m1.itm_prob - m0.itm_prob) < 1e-5);
    printf("  fp32 packed against as stored: text %.2g, ITM prob %.2g\n", worst,
           fabs((double)m1.itm_prob - m0.itm_prob));
    gz_image_free(&img);
    gz_model_free(m);
}

/* The switches back to the weights as stored make no copy however many rows run:
 * gz_model_params.fp32_packed = 0 and GAZE_GEMM=in-place. */
static void run_fp32_unpacked(const char *dir) {
    for (int how = 0; how < 2; how++) {
        if (how == 1) setenv("GAZE_GEMM", "in-place", 1);
        gz_model *m = load_packed(dir, GZ_PRECISION_FP32, how == 1);
        float emb[TEST_MAX_DIM];
        for (int i = 0; i < GZ_PACK_AFTER_ROWS; i++)
            CHECK_OK(gz_encode_texts(m, &CAPTION, 1, emb));
        check_copies(how ? "fp32, GAZE_GEMM=in-place" : "fp32, fp32_packed = 0", m, 0, 0);
        gz_model_free(m);
        if (how == 1) unsetenv("GAZE_GEMM");
    }
}

int main(void) {
    setenv("XDG_CACHE_HOME", gz_test_tmpdir("model_bf16_share_cache"), 1);
    const char *dir = gz_test_path("fixtures/blip_itm");
    gz_model_config cfg;
    CHECK_OK(gz_config_load(gz_test_path("fixtures/blip_itm/config.json"), &cfg));
    const int L = cfg.text.num_layers, D = cfg.text.hidden_size, F = cfg.text.intermediate_size;
    expect e;
    e.text_copies = (size_t)6 * L;
    e.text_bytes = (size_t)L * (4 * packed_bytes(D, D) + packed_bytes(F, D) + packed_bytes(D, F));
    const int De = cfg.text.encoder_hidden_size;
    e.all_copies = (size_t)10 * L;
    e.all_bytes = e.text_bytes + (size_t)L * (2 * packed_bytes(D, D) + 2 * packed_bytes(D, De));

    if (!gz_bf16_available())
        printf("note: no AVX512-BF16 here (or GAZE_NO_BF16 set): bf16 falls back to fp32 and "
               "no copies are made; the counts below are 0\n");
    outputs a, b, f;
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b), memset(&f, 0, sizeof f);
    run_order(dir, GZ_PRECISION_BF16, 1, &e, &a);
    run_order(dir, GZ_PRECISION_BF16, 0, &e, &b);
    run_order(dir, GZ_PRECISION_FP32, 1, &e, &f); /* fp32 makes no copy for one query */
    run_fp32_lazy(dir, L, D, F);
    run_fp32_unpacked(dir);

    /* The copies are the same bytes whoever packed them: equal results, bit for bit. */
    checks += 2;
    CHECK(a.dim == b.dim && !memcmp(a.text, b.text, (size_t)a.dim * sizeof(float)));
    CHECK(!memcmp(&a.match, &b.match, sizeof a.match));
    printf("  bf16 text embedding and ITM, either order: bit-identical; ITM prob %.6f "
           "(fp32 %.6f)\n",
           a.match.itm_prob, f.match.itm_prob);
    return gz_test_finish("model_bf16_share", checks);
}
