/* test_model_scratch.c - a model's towers share one scratch arena (core/scratch.h) that keeps
 * its pages between forwards, so a forward starts on memory another tower left dirty: the
 * results must not depend on it. One BLIP model runs an image, a batch of texts, an ITM match
 * and a larger batch of images, then each again: every result is bit for bit the first one,
 * and the same as a model that never reuses its scratch would give (one forward per fresh
 * model). The arena must really be in use: it keeps bytes after the first forward. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gaze.h"
#include "model/model_internal.h"
#include "testutil.h"

static int checks;

#define MAX_DIM 1024
#define N_TEXTS 5
#define N_IMAGES 3

static const char *const TEXTS[N_TEXTS] = {
    "a cat lying on a couch", "two dogs", "a red kettle on a wooden table in the morning light",
    "astronaut", "a lighthouse on a rock, waves breaking around it under a grey sky"};
static const char *const IMAGES[N_IMAGES] = {"fixtures/images/a1_chelsea.jpg",
                                             "fixtures/images/a3_coffee_exif6.jpg",
                                             "fixtures/images/a4_coins_gray.png"};

typedef struct {
    float one[MAX_DIM];               /* the first image alone */
    float texts[N_TEXTS * MAX_DIM];   /* the texts as one batch */
    float images[N_IMAGES * MAX_DIM]; /* the images as one batch */
    gz_match match[N_TEXTS];          /* the first image against each text */
} results;

static gz_model *load(const char *dir) {
    gz_model_params p = gz_model_default_params();
    p.n_threads = 2;
    gz_model *m = NULL;
    if (gz_model_load(dir, &p, &m) != GZ_OK) {
        fprintf(stderr, "%s: %s\n", dir, gz_last_error());
        exit(2);
    }
    if (gz_model_dim(m) <= 0 || gz_model_dim(m) > MAX_DIM) {
        fprintf(stderr, "%s: embedding size %d outside 1..%d\n", dir, gz_model_dim(m), MAX_DIM);
        exit(2);
    }
    return m;
}

/* Step k of the sequence into r (k = 0..3). */
static void run_step(gz_model *m, const gz_image *img, int k, results *r) {
    switch (k) {
    case 0: CHECK_OK(gz_encode_images(m, img, 1, r->one)); break;
    case 1: CHECK_OK(gz_encode_texts(m, TEXTS, N_TEXTS, r->texts)); break;
    case 2: CHECK_OK(gz_match_image_texts(m, &img[0], TEXTS, N_TEXTS, r->match)); break;
    default: CHECK_OK(gz_encode_images(m, img, N_IMAGES, r->images)); break;
    }
}

static int same(const results *a, const results *b, int k, int dim) {
    switch (k) {
    case 0: return !memcmp(a->one, b->one, (size_t)dim * sizeof(float));
    case 1: return !memcmp(a->texts, b->texts, (size_t)N_TEXTS * dim * sizeof(float));
    case 2: return !memcmp(a->match, b->match, sizeof a->match);
    default: return !memcmp(a->images, b->images, (size_t)N_IMAGES * dim * sizeof(float));
    }
}

int main(void) {
    setenv("XDG_CACHE_HOME", gz_test_tmpdir("model_scratch_cache"), 1);
    const char *dir = gz_test_path("fixtures/blip_itm");
    gz_model *m = load(dir);
    const int dim = gz_model_dim(m);
    gz_image_params ip = gz_model_image_params(m);
    gz_image img[N_IMAGES];
    memset(img, 0, sizeof img);
    for (int i = 0; i < N_IMAGES; i++)
        CHECK_OK(gz_image_load(gz_test_path("%s", IMAGES[i]), &ip, &img[i]));

    static results first, again, fresh;
    checks++;
    CHECK(gz_model_scratch_kept_bytes(m) == 0);
    for (int k = 0; k < 4; k++)
        run_step(m, img, k, &first);
    size_t kept = gz_model_scratch_kept_bytes(m);
    printf("  arena keeps %zu bytes after the four forwards\n", kept);
    checks++;
    CHECK(kept > 0);
    /* Again, in reverse order: each forward finds the scratch the others left. */
    for (int k = 3; k >= 0; k--)
        run_step(m, img, k, &again);
    for (int k = 0; k < 4; k++) {
        checks++;
        CHECK(same(&first, &again, k, dim));
    }
    gz_model_free(m);

    /* Each step in a model of its own: a scratch nobody used before. */
    for (int k = 0; k < 4; k++) {
        gz_model *f = load(dir);
        run_step(f, img, k, &fresh);
        checks++;
        CHECK(same(&first, &fresh, k, dim));
        gz_model_free(f);
    }
    for (int i = 0; i < N_IMAGES; i++)
        gz_image_free(&img[i]);
    return gz_test_finish("model_scratch", checks);
}
