/* test_fusion_score.c - the score rules of fusion/score.h and gz_rank_by_score's documented
 * order: descending, ties in input order, NaN last. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fusion/score.h"
#include "gaze.h"
#include "testutil.h"

static int checks = 0;
#define T(cond) CHECK_COUNTED(checks, cond)

static void test_rules(void) {
    /* LAVIS: the match logit plus the ITC cosine, exactly (the values are exact in binary) */
    T(gz_score_rerank(2.5f, 0.25f) == 2.75f);
    T(gz_score_rerank(-1.5f, 0.5f) == -1.0f);
    /* CLIP: exp(logit_scale) * itc, with the scale already exponentiated */
    T(gz_score_clip_logit(100.0f, 0.25f) == 25.0f);
    T(gz_score_clip_logit(1.0f, -0.5f) == -0.5f);
    /* products: w * z_text + (1 - w) * z_image; the weight goes to the text */
    T(fabsf(gz_score_product(0.25f, 0.8f, 0.4f) - (0.25f * 0.8f + 0.75f * 0.4f)) < 1e-7f);
    T(gz_score_product(1.0f, 0.8f, 0.4f) == 0.8f);
    T(gz_score_product(0.0f, 0.8f, 0.4f) == 0.4f);
    /* no image vector (NaN): an average image (z = 0), so w * z_text */
    T(gz_score_product(0.25f, 0.8f, NAN) == 0.25f * 0.8f);
    T(gz_score_product(0.0f, -0.3f, NAN) == 0.0f);
}

/* Standardising: mean and population std over the finite values; NaN and no spread give 0. */
static void test_calibration(void) {
    const float x[5] = {0.5f, NAN, 0.25f, 0.75f, 0.5f};
    gz_score_calib c = gz_score_calibrate(x, 5);
    T(fabs(c.mean - 0.5) < 1e-9);
    T(fabs(c.std - sqrt(0.125 / 4)) < 1e-9); /* deviations 0, -.25, .25, 0 */
    T(fabsf(gz_score_standardise(c, 0.75f) - (float)(0.25 / sqrt(0.125 / 4))) < 1e-5f);
    T(gz_score_standardise(c, 0.5f) == 0.0f);
    T(gz_score_standardise(c, NAN) == 0.0f);
    /* one value, or all equal: no spread, every z is 0 */
    const float one[1] = {0.9f}, same[3] = {0.2f, 0.2f, 0.2f};
    gz_score_calib c1 = gz_score_calibrate(one, 1), cs = gz_score_calibrate(same, 3);
    T(c1.std == 0 && fabs(c1.mean - 0.9) < 1e-7 && gz_score_standardise(c1, 0.9f) == 0.0f);
    T(gz_score_standardise(cs, 0.2f) == 0.0f);
    /* nothing finite: mean 0, std 0 */
    const float none[2] = {NAN, INFINITY};
    gz_score_calib cn = gz_score_calibrate(none, 2);
    T(cn.mean == 0 && cn.std == 0);
    /* the modality gap: texts near 0.9, images near 0.3; the best of each gets the same z */
    const float texts[3] = {0.88f, 0.90f, 0.92f}, images[3] = {0.28f, 0.30f, 0.32f};
    gz_score_calib ct = gz_score_calibrate(texts, 3), ci = gz_score_calibrate(images, 3);
    T(fabsf(gz_score_standardise(ct, 0.92f) - gz_score_standardise(ci, 0.32f)) < 1e-4f);
}

static void test_rank(void) {
    /* ties at 3 (indexes 1, 2, 4) and NaNs (3, 5): input order within each group */
    const float sc[8] = {1.0f, 3.0f, 3.0f, NAN, 3.0f, NAN, -INFINITY, 2.0f};
    const int want[8] = {1, 2, 4, 7, 0, 6, 3, 5};
    gz_match s[8], before[8];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 8; i++)
        s[i].score = sc[i];
    memcpy(before, s, sizeof s);
    int order[8];
    gz_rank_by_score(s, 8, order);
    T(memcmp(order, want, sizeof order) == 0);
    if (memcmp(order, want, sizeof order) != 0) {
        fprintf(stderr, "order:");
        for (int i = 0; i < 8; i++)
            fprintf(stderr, " %d", order[i]);
        fprintf(stderr, "\n");
    }
    /* only order[] is written: the candidates stay where they were */
    T(memcmp(s, before, sizeof s) == 0);

    /* all equal: the identity, not a reversal */
    gz_match eq[5];
    memset(eq, 0, sizeof eq);
    int ord[5];
    gz_rank_by_score(eq, 5, ord);
    for (int i = 0; i < 5; i++)
        T(ord[i] == i);

    /* n <= 0 and NULL arguments leave order untouched */
    int keep[2] = {-7, -7};
    gz_rank_by_score(s, 0, keep);
    gz_rank_by_score(NULL, 2, keep);
    T(keep[0] == -7 && keep[1] == -7);
}

int main(void) {
    test_rules();
    test_calibration();
    test_rank();
    return gz_test_finish("fusion_score", checks);
}
