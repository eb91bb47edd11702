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
    /* products: w * text + (1 - w) * image; the weight goes to the text cosine */
    T(fabsf(gz_score_product(0.25f, 0.8f, 0.4f) - (0.25f * 0.8f + 0.75f * 0.4f)) < 1e-7f);
    T(gz_score_product(1.0f, 0.8f, 0.4f) == 0.8f);
    T(gz_score_product(0.0f, 0.8f, 0.4f) == 0.4f);
    /* no image vector (NaN): the text cosine alone, whatever the weight */
    T(gz_score_product(0.25f, 0.8f, NAN) == 0.8f);
    T(gz_score_product(0.0f, -0.3f, NAN) == -0.3f);
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
    test_rank();
    return gz_test_finish("fusion_score", checks);
}
