/* score.c - the score rules of score.h and the ranking of gaze.h's gz_rank_by_score. */
#include "fusion/score.h"

#include <math.h>
#include <stdlib.h>

#include "gaze.h"

float gz_score_rerank(float itm_match_logit, float itc) {
    return itm_match_logit + itc; /* LAVIS: itm_logit[1] + itc */
}

float gz_score_clip_logit(float logit_scale_exp, float itc) { return logit_scale_exp * itc; }

/* Below this a modality's cosines have no spread to standardise by. */
#define CALIB_MIN_STD 1e-6

gz_score_calib gz_score_calibrate(const float *x, int n) {
    gz_score_calib c = {0, 0};
    double sum = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) sum += x[i], k++;
    if (k == 0) return c;
    c.mean = sum / k;
    if (k < 2) return c;
    double ss = 0; /* two passes: exact enough for cosines, no cancellation */
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) ss += (x[i] - c.mean) * (x[i] - c.mean);
    c.std = sqrt(ss / k);
    return c;
}

float gz_score_standardise(gz_score_calib c, float x) {
    if (!isfinite(x) || !(c.std >= CALIB_MIN_STD)) return 0.0f;
    return (float)((x - c.mean) / c.std);
}

float gz_score_product(float text_weight, float text_z, float image_z) {
    if (isnan(image_z)) image_z = 0.0f; /* no image: the average one */
    return text_weight * text_z + (1 - text_weight) * image_z;
}

typedef struct {
    float score;
    int index;
} rank_item;

/* Descending score; NaN last; ties keep the original order (so qsort becomes stable). */
static int cmp_rank(const void *pa, const void *pb) {
    const rank_item *a = pa, *b = pb;
    int na = isnan(a->score), nb = isnan(b->score);
    if (na != nb) return na - nb;
    if (!na && a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

void gz_rank_by_score(const gz_match *scores, int n, int *order) {
    if (!scores || !order || n <= 0) return;
    rank_item *items = malloc((size_t)n * sizeof *items);
    if (!items) {
        /* no memory: a plain stable insertion sort on order[] itself (the contract has no
         * failure to report) */
        for (int i = 0; i < n; i++)
            order[i] = i;
        for (int i = 1; i < n; i++) {
            int v = order[i], j = i - 1;
            rank_item x = {scores[v].score, v};
            while (j >= 0) {
                rank_item y = {scores[order[j]].score, order[j]};
                if (cmp_rank(&y, &x) <= 0) break;
                order[j + 1] = order[j];
                j--;
            }
            order[j + 1] = v;
        }
        return;
    }
    for (int i = 0; i < n; i++)
        items[i] = (rank_item){scores[i].score, i};
    qsort(items, (size_t)n, sizeof *items, cmp_rank);
    for (int i = 0; i < n; i++)
        order[i] = items[i].index;
    free(items);
}
