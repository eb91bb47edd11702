/* test_engine_ingest.c - the engine API with the tiny BLIP fixture model: ingest stats,
 * a deterministic stop after the first batch (what Ctrl-C does) and the resume, search
 * results equal to a brute-force ranking over the stored vectors, composed queries,
 * re-ranking scores, and the zero-query error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gaze.h"
#include "testutil.h"

static int checks = 0;
#define T(cond) CHECK_COUNTED(checks, cond)

static const char *const PHOTOS[] = {"animal_cat_chelsea.png", "animal_dog_corgi.jpg",
                                     "food_coffee.png",        "product_kettle.jpg",
                                     "scene_rocket_launchpad.jpg", "people_hopper.gif",
                                     "animal_kitten.webp"};
#define N_PHOTOS ((int)(sizeof PHOTOS / sizeof PHOTOS[0]))

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    if (!a || !b) {
        fprintf(stderr, "copy %s -> %s failed\n", from, to);
        exit(1);
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
}

typedef struct {
    volatile sig_atomic_t stop;
    int calls;
} stopper;

/* Progress callback that asks to stop after the first batch. */
static void stop_after_first(void *user, const gz_ingest_stats *s) {
    (void)s;
    stopper *st = user;
    st->calls++;
    st->stop = 1;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int main(void) {
    const char *dir = gz_test_tmpdir("engine_ingest");
    char photos[2048], db[2048], path[4096];
    snprintf(photos, sizeof photos, "%s/photos", dir);
    snprintf(db, sizeof db, "%s/e.db", dir);
    T(mkdir(photos, 0755) == 0);
    for (int i = 0; i < N_PHOTOS; i++) {
        snprintf(path, sizeof path, "%s/%s", photos, PHOTOS[i]);
        copy_file(gz_test_path("photos/%s", PHOTOS[i]), path);
    }

    gz_engine_params ep = gz_engine_default_params();
    ep.db_path = db;
    ep.model_dir = gz_test_path("fixtures/blip_itm");
    gz_engine *e = NULL;
    CHECK_OK(gz_engine_open(&ep, &e));
    checks++;
    if (!e) return gz_test_finish("engine_ingest", checks);

    /* stop after the first batch of 2: consistent, resumable */
    const char *roots[] = {photos};
    gz_ingest_opts io = gz_ingest_default_opts();
    io.batch_size = 2;
    stopper sp = {0};
    io.stop = &sp.stop;
    io.progress = stop_after_first;
    io.user = &sp;
    gz_ingest_stats s;
    T(gz_engine_index(e, roots, 1, &io, &s) == GZ_EINTERRUPTED);
    T(sp.calls == 1 && s.total == N_PHOTOS && s.encoded == 2 && s.done == 2);
    T(strstr(gz_last_error(), "interrupted") != NULL);

    io = gz_ingest_default_opts();
    io.batch_size = 3;
    CHECK_OK(gz_engine_index(e, roots, 1, &io, &s));
    checks++;
    T(s.encoded == N_PHOTOS - 2 && s.skipped == 2 && s.failed == 0 && s.missing == 0);

    /* search: results equal the brute-force ranking over the stored vectors */
    gz_model *m = NULL;
    int64_t mid = 0;
    CHECK_OK(gz_engine_model(e, &m, &mid));
    checks++;
    int dim = gz_model_dim(m);
    float *q = malloc((size_t)dim * sizeof *q), *v = malloc((size_t)dim * sizeof *v);
    float cos[N_PHOTOS];
    gz_query_term t = {.text = "a cat on a table", .weight = 1};
    CHECK_OK(gz_engine_query_vector(e, &t, 1, q));
    checks++;
    gz_query qu = gz_query_default();
    qu.terms = &t;
    qu.n_terms = 1;
    qu.k = 100;
    gz_results r = {0};
    CHECK_OK(gz_engine_search(e, &qu, &r));
    checks++;
    T(r.n == N_PHOTOS);
    for (int i = 0; i < r.n; i++) {
        CHECK_OK(gz_db_get_embedding(gz_engine_db(e), r.v[i].item_id, mid, v, dim));
        double c = 0;
        for (int d = 0; d < dim; d++) c += (double)q[d] * v[d];
        cos[i] = (float)c;
        T(fabsf(cos[i] - r.v[i].score) < 1e-5f);
        T(r.v[i].kind == GZ_ITEM_IMAGE && r.v[i].width > 0 && r.v[i].path[0] == '/');
    }
    float sorted[N_PHOTOS];
    memcpy(sorted, cos, sizeof cos);
    qsort(sorted, N_PHOTOS, sizeof *sorted, cmp_desc);
    T(memcmp(sorted, cos, sizeof cos) == 0);
    gz_results_free(&r);

    /* composed: q = normalise(text - 1.0 * text) is refused; text + image differs */
    gz_query_term zero[2] = {{.text = "a dog", .weight = 1}, {.text = "a dog", .weight = -1}};
    T(gz_engine_query_vector(e, zero, 2, q) == GZ_EINVAL);
    snprintf(path, sizeof path, "%s/product_kettle.jpg", photos);
    gz_query_term mix[2] = {{.text = "a dog", .weight = 1}, {.image = path, .weight = 10}};
    qu.terms = mix;
    qu.n_terms = 2;
    qu.k = 1;
    CHECK_OK(gz_engine_search(e, &qu, &r));
    checks++;
    T(r.n == 1 && strstr(r.v[0].path, "product_kettle.jpg") != NULL);
    gz_results_free(&r);

    /* re-rank: score = itm_logit + itc over the top-K candidates, sorted */
    qu.terms = &t;
    qu.n_terms = 1;
    qu.k = 3;
    qu.rerank = 5;
    CHECK_OK(gz_engine_search(e, &qu, &r));
    checks++;
    T(r.n == 3);
    for (int i = 0; i < r.n; i++) {
        T(r.v[i].has_itm && r.v[i].itm_prob > 0 && r.v[i].itm_prob < 1);
        T(fabsf(r.v[i].score - (r.v[i].itm_logit + r.v[i].itc)) < 1e-5f);
        if (i) T(r.v[i - 1].score >= r.v[i].score);
    }
    gz_results_free(&r);

    /* a vanished file is marked missing and leaves the results; prune removes it */
    snprintf(path, sizeof path, "%s/food_coffee.png", photos);
    T(unlink(path) == 0);
    io.prune = 1;
    CHECK_OK(gz_engine_index(e, roots, 1, &io, &s));
    checks++;
    T(s.missing == 1 && s.pruned == 1 && s.encoded == 0);
    qu.rerank = 0;
    qu.k = 100;
    CHECK_OK(gz_engine_search(e, &qu, &r));
    checks++;
    T(r.n == N_PHOTOS - 1);
    for (int i = 0; i < r.n; i++) T(strstr(r.v[i].path, "food_coffee") == NULL);
    gz_results_free(&r);

    free(q);
    free(v);
    CHECK_OK(gz_engine_close(e));
    checks++;
    return gz_test_finish("engine_ingest", checks);
}
