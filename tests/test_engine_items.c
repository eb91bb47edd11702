/* test_engine_items.c - the catalogue item API with the tiny BLIP fixture model: put one item
 * and many (added / updated / unchanged / failed outcomes, a duplicate id in one call, a
 * missing image that leaves the text stored unlinked), batches that commit or roll back as
 * one transaction, and every form of removal (id, path, vanished folder, glob, catalogue,
 * catalogue item) leaving search and the FAISS index consistent with SQLite; engines that
 * share one loaded model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gaze.h"
#include "testutil.h"

static int checks = 0;
#define T(cond) CHECK_COUNTED(checks, cond)

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    if (!a || !b) {
        fprintf(stderr, "copy %s -> %s failed\n", from, to);
        exit(1);
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
}

/* Number of results of a search over texts (k large) and whether ext_id is among them. */
static int text_hits(gz_engine *e, const char *query, const char *ext_id, int *found) {
    gz_query_term t = {.text = query, .weight = 1};
    gz_query q = gz_query_default();
    q.terms = &t;
    q.n_terms = 1;
    q.target = GZ_TARGET_TEXTS;
    q.k = 100;
    gz_results r = {0};
    if (gz_engine_search(e, &q, &r) != GZ_OK) return -1;
    *found = 0;
    for (int i = 0; i < r.n; i++)
        if (ext_id && r.v[i].ext_id && strcmp(r.v[i].ext_id, ext_id) == 0) *found = 1;
    int n = r.n;
    gz_results_free(&r);
    return n;
}

static int image_hits(gz_engine *e) {
    gz_query_term t = {.text = "a photo", .weight = 1};
    gz_query q = gz_query_default();
    q.terms = &t;
    q.n_terms = 1;
    q.k = 100;
    gz_results r = {0};
    if (gz_engine_search(e, &q, &r) != GZ_OK) return -1;
    int n = r.n;
    gz_results_free(&r);
    return n;
}

/* Live vectors in the FAISS index of kind equal the OK items with a vector in SQLite. */
static int index_consistent(gz_engine *e, gz_item_kind kind, int64_t want) {
    int64_t mid = 0;
    if (gz_engine_model(e, NULL, &mid) != GZ_OK) return 0;
    gz_db_index_state is;
    if (gz_db_index_info(gz_engine_db(e), mid, kind, &is) != GZ_OK) return want == 0;
    if (is.n_vectors != want)
        fprintf(stderr, "index kind %d: %lld live vectors, want %lld\n", (int)kind,
                (long long)is.n_vectors, (long long)want);
    return is.n_vectors == want;
}

static void test_put(gz_engine *e, const char *img) {
    gz_catalog_item it = {.catalog = "shop", .ext_id = "p1", .text = "a red kettle", .image = img};
    gz_put_result r;
    CHECK_OK(gz_engine_put_items(e, &it, 1, &r));
    checks++;
    T(r.outcome == GZ_PUT_ADDED && r.item_id > 0 && r.image_item_id > 0 && !r.image_failed);
    /* the same again: unchanged, nothing written */
    gz_put_result r2;
    CHECK_OK(gz_engine_put_items(e, &it, 1, &r2));
    checks++;
    T(r2.outcome == GZ_PUT_UNCHANGED && r2.item_id == r.item_id);
    /* many: a new one, a changed one (text parts), a duplicate id, one without id, one with a
       missing image (stored unlinked, reported) */
    const char *parts[] = {"Kettle", "", "steel, 1.7 l"};
    gz_catalog_item many[] = {
        {.catalog = "shop", .ext_id = "p2", .text = "blue cups on a table"},
        {.catalog = "shop", .ext_id = "p1", .text_parts = parts, .n_text_parts = 3},
        {.catalog = "shop", .ext_id = "p2", .text = "a second p2"},
        {.catalog = "shop", .ext_id = "", .text = "no id"},
        {.catalog = "shop", .ext_id = "p3", .text = "a ghost", .image = "/nonexistent/x.jpg"},
        {.catalog = "other", .ext_id = "p1", .text = "same id, other catalogue"},
    };
    gz_put_result rs[6];
    CHECK_OK(gz_engine_put_items(e, many, 6, rs));
    checks++;
    T(rs[0].outcome == GZ_PUT_ADDED);
    T(rs[1].outcome == GZ_PUT_UPDATED && rs[1].item_id == r.item_id);
    T(rs[2].outcome == GZ_PUT_FAILED && strstr(rs[2].error, "duplicate id 'p2'"));
    T(rs[3].outcome == GZ_PUT_FAILED && strstr(rs[3].error, "no id"));
    T(rs[4].outcome == GZ_PUT_ADDED && rs[4].image_failed && rs[4].image_item_id == 0 &&
      strstr(rs[4].error, "x.jpg"));
    T(rs[5].outcome == GZ_PUT_ADDED && rs[5].item_id != r.item_id);
    gz_item got;
    CHECK_OK(gz_db_get_item(gz_engine_db(e), r.item_id, &got));
    checks++;
    T(got.text && strcmp(got.text, "Kettle. steel, 1.7 l") == 0);
    T(got.link_item_id == 0); /* the update named no image: the link goes */
    gz_item_clear(&got);
    int found = 0;
    T(text_hits(e, "kettle", "p2", &found) == 4 && found);
    T(index_consistent(e, GZ_ITEM_TEXT, 4));
}

static void test_batches(gz_engine *e) {
    /* rolled back: nothing of the batch remains */
    CHECK_OK(gz_engine_begin(e));
    checks++;
    T(gz_engine_begin(e) == GZ_EINVAL);
    gz_catalog_item a = {.catalog = "shop", .ext_id = "b1", .text = "batch one"};
    gz_put_result r;
    CHECK_OK(gz_engine_put_items(e, &a, 1, &r));
    checks++;
    gz_rm_spec rm = {.by = GZ_RM_CATALOG_ITEM, .target = "shop", .ext_id = "p2"};
    CHECK_OK(gz_engine_remove(e, &rm, 0, NULL));
    checks++;
    CHECK_OK(gz_engine_rollback(e));
    checks++;
    int found = 0;
    T(text_hits(e, "batch", "b1", &found) == 4 && !found);
    T(text_hits(e, "cups", "p2", &found) == 4 && found);
    T(index_consistent(e, GZ_ITEM_TEXT, 4));
    /* committed: both the put and the removal */
    CHECK_OK(gz_engine_begin(e));
    CHECK_OK(gz_engine_put_items(e, &a, 1, &r));
    CHECK_OK(gz_engine_remove(e, &rm, 0, NULL));
    CHECK_OK(gz_engine_commit(e));
    checks += 4;
    T(text_hits(e, "batch", "b1", &found) == 4 && found);
    T(text_hits(e, "cups", "p2", &found) == 4 && !found);
    T(gz_engine_commit(e) == GZ_EINVAL);
    T(index_consistent(e, GZ_ITEM_TEXT, 4));
}

static void test_remove(gz_engine *e, const char *photos) {
    gz_rm_stats s;
    int found = 0;
    /* nothing matches: ENOTFOUND, nothing changes */
    gz_rm_spec none = {.by = GZ_RM_CATALOG, .target = "no-such-catalogue"};
    T(gz_engine_remove(e, &none, 0, &s) == GZ_ENOTFOUND);
    /* catalogue: dry run counts, then removes */
    gz_rm_spec cat = {.by = GZ_RM_CATALOG, .target = "other"};
    CHECK_OK(gz_engine_remove(e, &cat, 1, &s));
    checks++;
    T(s.texts == 1 && s.images == 0);
    T(text_hits(e, "same id", NULL, &found) == 4);
    CHECK_OK(gz_engine_remove(e, &cat, 0, &s));
    checks++;
    T(s.texts == 1 && text_hits(e, "same id", NULL, &found) == 3);
    T(index_consistent(e, GZ_ITEM_TEXT, 3));
    /* glob over base names */
    T(image_hits(e) == 3);
    gz_rm_spec g = {.by = GZ_RM_GLOB, .target = "*.png"};
    CHECK_OK(gz_engine_remove(e, &g, 0, &s));
    checks++;
    T(s.images == 1 && image_hits(e) == 2);
    T(index_consistent(e, GZ_ITEM_IMAGE, 2));
    /* a folder that no longer exists */
    char sub[4096], f[4200];
    snprintf(sub, sizeof sub, "%s/sub", photos);
    snprintf(f, sizeof f, "%s/dog.jpg", sub);
    unlink(f);
    rmdir(sub);
    gz_rm_spec p = {.by = GZ_RM_PATH, .target = sub};
    CHECK_OK(gz_engine_remove(e, &p, 0, &s));
    checks++;
    T(s.images == 1 && image_hits(e) == 1);
    T(index_consistent(e, GZ_ITEM_IMAGE, 1));
    /* by id */
    gz_item it;
    char kettle[4200];
    snprintf(kettle, sizeof kettle, "%s/kettle.jpg", photos);
    CHECK_OK(gz_db_find_by_path(gz_engine_db(e), GZ_ITEM_IMAGE, kettle, strlen(kettle), NULL, &it));
    checks++;
    gz_rm_spec byid = {.by = GZ_RM_ID, .item_id = it.id};
    gz_item_clear(&it);
    CHECK_OK(gz_engine_remove(e, &byid, 0, &s));
    checks++;
    T(s.images == 1 && image_hits(e) == 0);
    T(gz_engine_remove(e, &byid, 0, &s) == GZ_ENOTFOUND);
    T(index_consistent(e, GZ_ITEM_IMAGE, 0));
}

/* Engines given one loaded model (gaze serve's): each uses it, none frees it, and they find
 * what an engine with its own model finds. */
static void test_shared_model(const gz_engine_params *own) {
    gz_model *m = NULL;
    CHECK_OK(gz_model_load(own->model_dir, &own->model, &m));
    checks++;
    if (!m) return;
    gz_engine_params ep = *own;
    ep.shared_model = m;
    gz_engine *a = NULL, *b = NULL, *solo = NULL;
    CHECK_OK(gz_engine_open(&ep, &a));
    CHECK_OK(gz_engine_open(&ep, &b));
    CHECK_OK(gz_engine_open(own, &solo));
    checks += 3;
    gz_model *got = NULL;
    if (a) CHECK_OK(gz_engine_model(a, &got, NULL));
    T(got == m);
    gz_query_term t = {.text = "an electric kettle", .weight = 1};
    gz_query q = gz_query_default();
    q.terms = &t;
    q.n_terms = 1;
    q.target = GZ_TARGET_TEXTS; /* the images were removed above; three texts remain */
    gz_results ra = {0}, rb = {0}, rs = {0};
    if (a && b && solo) {
        CHECK_OK(gz_engine_search(a, &q, &ra));
        CHECK_OK(gz_engine_search(b, &q, &rb));
        CHECK_OK(gz_engine_search(solo, &q, &rs));
        checks += 3;
        T(ra.n > 0 && ra.n == rb.n && ra.n == rs.n);
        for (int i = 0; i < ra.n && i < rb.n && i < rs.n; i++)
            T(ra.v[i].item_id == rs.v[i].item_id && ra.v[i].score == rs.v[i].score &&
              rb.v[i].item_id == rs.v[i].item_id && rb.v[i].score == rs.v[i].score);
    }
    gz_results_free(&ra);
    gz_results_free(&rb);
    gz_results_free(&rs);
    gz_engine_close(a);
    gz_engine_close(b);
    gz_engine_close(solo);
    /* still the caller's: it encodes after both engines closed */
    const char *text = "a kettle";
    float *v = gz_test_alloc_f((size_t)gz_model_dim(m));
    CHECK_OK(gz_encode_texts(m, &text, 1, v));
    free(v);
    checks++;
    gz_model_free(m);
    /* a shared model needs the directory's name, for the registry */
    ep.model_dir = NULL;
    gz_engine *none = NULL;
    T(gz_engine_open(&ep, &none) == GZ_EINVAL && none == NULL);
}

int main(void) {
    const char *dir = gz_test_tmpdir("engine_items");
    char photos[2048], sub[2100], db[2048], path[4200];
    snprintf(photos, sizeof photos, "%s/photos", dir);
    snprintf(sub, sizeof sub, "%s/sub", photos);
    snprintf(db, sizeof db, "%s/e.db", dir);
    T(mkdir(photos, 0755) == 0 && mkdir(sub, 0755) == 0);
    snprintf(path, sizeof path, "%s/kettle.jpg", photos);
    copy_file(gz_test_path("photos/product_kettle.jpg"), path);
    snprintf(path, sizeof path, "%s/cat.png", photos);
    copy_file(gz_test_path("photos/animal_cat_chelsea.png"), path);
    snprintf(path, sizeof path, "%s/dog.jpg", sub);
    copy_file(gz_test_path("photos/animal_dog_corgi.jpg"), path);

    gz_engine_params ep = gz_engine_default_params();
    ep.db_path = db;
    ep.model_dir = gz_test_path("fixtures/blip_itm");
    gz_engine *e = NULL;
    CHECK_OK(gz_engine_open(&ep, &e));
    checks++;
    if (!e) return gz_test_finish("engine_items", checks);
    const char *roots[] = {photos};
    gz_ingest_opts io = gz_ingest_default_opts();
    gz_ingest_stats st;
    CHECK_OK(gz_engine_index(e, roots, 1, &io, &st));
    checks++;
    snprintf(path, sizeof path, "%s/kettle.jpg", photos);
    test_put(e, path);
    test_batches(e);
    test_remove(e, photos);
    CHECK_OK(gz_engine_close(e));
    checks++;
    /* reopened: the FAISS files written at close agree with SQLite */
    CHECK_OK(gz_engine_open(&ep, &e));
    checks++;
    if (e) {
        T(index_consistent(e, GZ_ITEM_TEXT, 3) && index_consistent(e, GZ_ITEM_IMAGE, 0));
        gz_engine_close(e);
    }
    test_shared_model(&ep);
    return gz_test_finish("engine_items", checks);
}
