/* test_engine_rerank.c - ITM re-ranking through the engine with the tiny BLIP fixture: the
 * query text goes through the text tower once per search (the re-rank reuses the search's
 * query vector), the re-rank scores equal scoring each candidate on its own with
 * gz_match_text_images, and the library's re-rank errors name no CLI flag. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "fusion/score.h"
#include "gaze.h"
#include "testutil.h"

static int checks = 0;
#define T(cond) CHECK_COUNTED(checks, cond)

static const char *const PHOTOS[] = {"animal_cat_chelsea.png", "animal_dog_corgi.jpg",
                                     "food_coffee.png", "product_kettle.jpg", "animal_kitten.webp"};
#define N_PHOTOS ((int)(sizeof PHOTOS / sizeof PHOTOS[0]))
#define QUERY "a cat on a table"

/* Copy the fixture photo name into folder dir (the engine indexes a folder of its own). */
static void add_photo(const char *dir, const char *name) {
    unsigned char *data = NULL;
    size_t len = 0;
    char to[4096];
    snprintf(to, sizeof to, "%s/%s", dir, name);
    FILE *f = NULL;
    if (gz_read_file(gz_test_path("photos/%s", name), (size_t)1 << 26, &data, &len) != GZ_OK ||
        !(f = fopen(to, "wb")) || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "copy of %s to %s failed\n", name, dir);
        exit(1);
    }
    fclose(f);
    free(data);
}

/* A library message must not tell the user about a command-line flag. */
static void check_no_flag(const char *what) {
    const char *msg = gz_last_error();
    checks++;
    if (strstr(msg, "--")) {
        fprintf(stderr, "%s: the message names a CLI flag: %s\n", what, msg);
        gz_test_failures++;
    }
}

/* The model layer: with the embedding given, the text tower does not run and the match
 * equals gz_match_text_images'. */
static void test_model_embedded(gz_model *m, const char *photos) {
    const int dim = gz_model_dim(m);
    float *q = gz_test_alloc_f((size_t)dim);
    const char *text = QUERY;
    CHECK_OK(gz_encode_texts(m, &text, 1, q));
    checks++;
    gz_image imgs[2];
    gz_image_params ip = gz_model_image_params(m);
    char path[4096];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", photos, PHOTOS[i]);
        CHECK_OK(gz_image_load(path, &ip, &imgs[i]));
        checks++;
    }
    gz_match a[2], b[2];
    int64_t n0 = gz_model_texts_encoded(m);
    CHECK_OK(gz_match_text_images(m, text, imgs, 2, a));
    int64_t n1 = gz_model_texts_encoded(m);
    CHECK_OK(gz_match_text_images_embedded(m, text, q, imgs, 2, b));
    int64_t n2 = gz_model_texts_encoded(m);
    checks += 2;
    T(n1 - n0 == 1); /* the counter sees gz_match_text_images encode its text */
    T(n2 - n1 == 0); /* ... and the embedded entry not */
    for (int i = 0; i < 2; i++) {
        T(a[i].itm_logit[0] == b[i].itm_logit[0] && a[i].itm_logit[1] == b[i].itm_logit[1]);
        T(a[i].itm_prob == b[i].itm_prob);
        T(fabsf(a[i].itc - b[i].itc) < 1e-6f);
        T(fabsf(b[i].score - gz_score_rerank(b[i].itm_logit[1], b[i].itc)) < 1e-6f);
        gz_image_free(&imgs[i]);
    }
    free(q);
}

/* An engine over a fresh database with PHOTOS indexed by the BLIP fixture, and its model. */
static gz_engine *open_indexed(const char *dir, const char *photos, gz_model **m) {
    char db[4096];
    snprintf(db, sizeof db, "%s/e.db", dir);
    T(mkdir(photos, 0755) == 0);
    for (int i = 0; i < N_PHOTOS; i++)
        add_photo(photos, PHOTOS[i]);
    gz_engine_params ep = gz_engine_default_params();
    ep.db_path = db;
    ep.model_dir = gz_test_path("fixtures/blip_itm");
    gz_engine *e = NULL;
    gz_ingest_opts io = gz_ingest_default_opts();
    gz_ingest_stats s;
    const char *roots[] = {photos};
    if (gz_engine_open(&ep, &e) != GZ_OK || gz_engine_index(e, roots, 1, &io, &s) != GZ_OK ||
        gz_engine_model(e, m, NULL) != GZ_OK) {
        fprintf(stderr, "indexing the fixture photos failed: %s\n", gz_last_error());
        exit(1);
    }
    T(s.encoded == N_PHOTOS);
    return e;
}

int main(void) {
    const char *dir = gz_test_tmpdir("engine_rerank");
    char photos[2048], db[2048], path[4096];
    snprintf(photos, sizeof photos, "%s/photos", dir);
    gz_model *m = NULL;
    gz_engine *e = open_indexed(dir, photos, &m);

    test_model_embedded(m, photos);

    /* a re-ranked text search encodes its text once: one text for the query vector, none
     * again for the ITM re-rank (two before the re-rank reused the query vector) */
    gz_query_term t = {.text = QUERY, .weight = 1};
    gz_query qu = gz_query_default();
    qu.terms = &t;
    qu.n_terms = 1;
    qu.k = N_PHOTOS;
    qu.rerank = N_PHOTOS;
    gz_results r = {0};
    int64_t before = gz_model_texts_encoded(m);
    CHECK_OK(gz_engine_search(e, &qu, &r));
    checks++;
    T(gz_model_texts_encoded(m) - before == 1);
    T(r.n == N_PHOTOS);

    /* the re-rank scores equal each candidate scored alone by gz_match_text_images (which
     * encodes the text itself), combined with the search's itc by the LAVIS rule */
    gz_image_params ip = gz_model_image_params(m);
    for (int i = 0; i < r.n; i++) {
        gz_image img;
        gz_match mt;
        CHECK_OK(gz_image_load(r.v[i].path, &ip, &img));
        CHECK_OK(gz_match_text_images(m, QUERY, &img, 1, &mt));
        checks += 2;
        gz_image_free(&img);
        T(r.v[i].has_itm);
        T(fabsf(r.v[i].itm_logit - mt.itm_logit[1]) < 1e-5f);
        T(fabsf(r.v[i].itm_prob - mt.itm_prob) < 1e-6f);
        T(fabsf(r.v[i].itc - mt.itc) < 1e-5f);
        T(r.v[i].score == gz_score_rerank(r.v[i].itm_logit, r.v[i].itc));
        if (i) T(r.v[i - 1].score >= r.v[i].score);
    }
    gz_results_free(&r);

    /* re-rank errors say what is wrong without naming a flag */
    gz_query_term two[2] = {{.text = "a cat", .weight = 1}, {.text = "a table", .weight = 1}};
    qu.terms = two;
    qu.n_terms = 2;
    T(gz_engine_search(e, &qu, &r) == GZ_EINVAL);
    T(strstr(gz_last_error(), "composed") != NULL);
    check_no_flag("composed query");
    snprintf(path, sizeof path, "%s/%s", photos, PHOTOS[0]);
    gz_query_term im = {.image = path, .weight = 1}; /* image over images: ITM pairs nothing */
    qu.terms = &im;
    qu.n_terms = 1;
    T(gz_engine_search(e, &qu, &r) == GZ_EINVAL);
    T(strstr(gz_last_error(), "a text query over images") != NULL);
    check_no_flag("image over images");
    qu.terms = &t;
    CHECK_OK(gz_engine_close(e));
    checks++;

    /* a CLIP model has no ITM head */
    snprintf(db, sizeof db, "%s/clip.db", dir);
    gz_engine_params ep = gz_engine_default_params();
    ep.db_path = db;
    ep.model_dir = gz_test_path("fixtures/clip");
    CHECK_OK(gz_engine_open(&ep, &e));
    checks++;
    if (e) {
        CHECK_OK(gz_engine_model(e, NULL, NULL)); /* registers the model: no vectors needed */
        checks++;
        qu.target = GZ_TARGET_IMAGES;
        T(gz_engine_search(e, &qu, &r) == GZ_EUNSUPPORTED);
        T(strstr(gz_last_error(), "BLIP") != NULL);
        check_no_flag("clip model");
        CHECK_OK(gz_engine_close(e));
        checks++;
    }
    return gz_test_finish("engine_rerank", checks);
}
