/* test_index_db.c - the store: CRUD, exact search against brute force, file recovery, the
 * coverage answer kept between unchanged reads. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "gaze.h"
#include "testutil.h"

static int checks;
#define T(c) CHECK_COUNTED(checks, c)
#define T_OK(e) CHECK_OK_COUNTED(checks, e)

static uint64_t rng_state = 0x1234567887654321ull;
static uint64_t rng(void) { return gz_test_splitmix64(&rng_state); }
static float gauss(void) {
    double u = ((rng() >> 11) + 1.0) / 9007199254740993.0, v = (rng() >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}
static void unit(float *v, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) {
        v[i] = gauss();
        s += (double)v[i] * v[i];
    }
    for (int i = 0; i < d; i++)
        v[i] = (float)(v[i] / sqrt(s));
}

typedef struct {
    int64_t id;
    double score;
} ref_hit;
static int ref_cmp(const void *a, const void *b) {
    const ref_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Brute-force cosine ranking over the vectors of live items. */
static int brute(const float *vecs, const int64_t *ids, const int *live, int n, int d,
                 const float *q, int k, ref_hit *out) {
    ref_hit *all = malloc(sizeof *all * (size_t)n);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!live[i]) continue;
        double s = 0;
        for (int j = 0; j < d; j++)
            s += (double)vecs[(size_t)i * d + j] * q[j];
        all[m].id = ids[i];
        all[m].score = s;
        m++;
    }
    qsort(all, (size_t)m, sizeof *all, ref_cmp);
    if (k > m) k = m;
    memcpy(out, all, sizeof *out * (size_t)k);
    free(all);
    return k;
}

/* Search and compare ids (and scores within 1e-5) with the brute-force ranking. */
static int same_as_brute(gz_db *db, int64_t model, const float *vecs, const int64_t *ids,
                         const int *live, int n, int d, const float *q, int k, const char *what) {
    gz_hit hits[64];
    ref_hit ref[64];
    int nh = -1;
    if (gz_db_search(db, model, GZ_ITEM_IMAGE, q, d, k, -1.0f, hits, &nh) != GZ_OK) {
        fprintf(stderr, "%s: search failed: %s\n", what, gz_last_error());
        return 0;
    }
    int nr = brute(vecs, ids, live, n, d, q, k, ref);
    if (nh != nr) {
        fprintf(stderr, "%s: %d hits, brute force %d\n", what, nh, nr);
        return 0;
    }
    for (int i = 0; i < nh; i++)
        if (hits[i].item_id != ref[i].id || fabs(hits[i].score - ref[i].score) > 1e-5) {
            fprintf(stderr, "%s: rank %d: got item %lld (%.7f), want %lld (%.7f)\n", what, i,
                    (long long)hits[i].item_id, hits[i].score, (long long)ref[i].id, ref[i].score);
            return 0;
        }
    return 1;
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t got;
    while (a && b && (got = fread(buf, 1, sizeof buf, a)) > 0)
        fwrite(buf, 1, got, b);
    if (a) fclose(a);
    if (b) fclose(b);
}

/* Flip the bits of one byte: offset >= 0 from the start, < 0 from the end. */
static void flip_byte(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    if (!f) return;
    int whence = offset >= 0 ? SEEK_SET : SEEK_END;
    fseek(f, offset, whence);
    int c = fgetc(f);
    fseek(f, offset, whence);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

/* ---- models, tie order, saving and rebuilding indexes ---- */

#define TD 8

static int same_bytes(const char *a, const char *b) {
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    int same = x && y;
    while (same) {
        int c = fgetc(x), d = fgetc(y);
        if (c != d) same = 0;
        if (c == EOF || d == EOF) break;
    }
    if (x) fclose(x);
    if (y) fclose(y);
    return same;
}

/* 1 if the search for q gives exactly want[0..n) (ids, best first), printing why not. */
static int hits_are(gz_db *db, int64_t model, const float *q, const int64_t *want, int n,
                    const char *what) {
    gz_hit hits[16];
    int nh = -1;
    if (gz_db_search(db, model, GZ_ITEM_IMAGE, q, TD, 16, -1.0f, hits, &nh) != GZ_OK) {
        fprintf(stderr, "%s: search failed: %s\n", what, gz_last_error());
        return 0;
    }
    int ok = nh == n;
    for (int i = 0; ok && i < n; i++)
        ok = hits[i].item_id == want[i];
    if (!ok) {
        fprintf(stderr, "%s: got", what);
        for (int i = 0; i < nh; i++)
            fprintf(stderr, " %lld", (long long)hits[i].item_id);
        fprintf(stderr, ", want");
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %lld", (long long)want[i]);
        fprintf(stderr, "\n");
    }
    return ok;
}

static void test_models_ties_files(const char *dir) {
    char path[1200], fimg[1300], ftxt[1300], old[1300];
    snprintf(path, sizeof path, "%s/api.gaze", dir);
    gz_db_params dp = gz_db_default_params();
    gz_db *db = NULL;
    T_OK(gz_db_open(path, &dp, &db));
    if (!db) return;

    /* gz_db_get_model: every field of a registered model; an unknown id is GZ_ENOTFOUND */
    int64_t m1 = 0, m2 = 0;
    T_OK(gz_db_register_model(db, "models/one", "clip", TD, "fp-one", &m1));
    T_OK(gz_db_register_model(db, "models/two", "blip", 2 * TD, "fp-two", &m2));
    gz_db_model gm;
    memset(&gm, 0, sizeof gm);
    T_OK(gz_db_get_model(db, m1, &gm));
    T(gm.id == m1 && strcmp(gm.name, "models/one") == 0 && strcmp(gm.family, "clip") == 0 &&
      gm.dim == TD && strcmp(gm.fingerprint, "fp-one") == 0 && gm.last_used > 0);
    T_OK(gz_db_get_model(db, m2, &gm));
    T(gm.id == m2 && gm.dim == 2 * TD && strcmp(gm.fingerprint, "fp-two") == 0);
    T(gz_db_get_model(db, m1 + m2 + 100, &gm) == GZ_ENOTFOUND);

    /* ties: items 0..3 share one vector. Their vectors are stored in reverse id order (so
     * FAISS holds them at positions in descending id order); the hits still come by
     * ascending id, as documented. Item 4 points elsewhere. */
    enum { NT = 5 };
    int64_t id[NT];
    float same[TD] = {0}, other[TD] = {0}, q[TD] = {0}, mixed[TD];
    same[0] = 1;
    other[1] = 1;
    T_OK(gz_db_begin(db));
    for (int i = 0; i < NT; i++) {
        char p[32];
        int len = snprintf(p, sizeof p, "tie/%d.jpg", i);
        gz_item x = {.kind = GZ_ITEM_IMAGE,
                     .path = p,
                     .path_len = (size_t)len,
                     .content_hash = 77 + (uint64_t)i};
        T_OK(gz_db_upsert_item(db, &x));
        id[i] = x.id;
    }
    for (int i = NT - 2; i >= 0; i--)
        T_OK(gz_db_put_embedding(db, id[i], m1, same, TD));
    T_OK(gz_db_put_embedding(db, id[NT - 1], m1, other, TD));
    T_OK(gz_db_commit(db));
    T(id[0] < id[1] && id[1] < id[2] && id[2] < id[3]);
    memcpy(q, same, sizeof q);
    int64_t want_q[NT] = {id[0], id[1], id[2], id[3], id[4]};
    T(hits_are(db, m1, q, want_q, NT, "ties by ascending id"));
    /* between the two directions: the four ties first (0.8), then item 4 (0.6) */
    for (int d = 0; d < TD; d++)
        mixed[d] = 0.8f * same[d] + 0.6f * other[d];
    T(hits_are(db, m1, mixed, want_q, NT, "ties above a lower score"));
    float qo[TD];
    for (int d = 0; d < TD; d++)
        qo[d] = 0.6f * same[d] + 0.8f * other[d];
    int64_t want_o[NT] = {id[4], id[0], id[1], id[2], id[3]};
    T(hits_are(db, m1, qo, want_o, NT, "ties below a higher score"));

    /* gz_db_save_indexes writes the file of an index changed since it was saved */
    snprintf(fimg, sizeof fimg, "%s.m%lld.image.faiss", path, (long long)m1);
    snprintf(ftxt, sizeof ftxt, "%s.m%lld.text.faiss", path, (long long)m1);
    snprintf(old, sizeof old, "%s/api_old.faiss", dir);
    gz_db_index_state is;
    T_OK(gz_db_index_info(db, m1, GZ_ITEM_IMAGE, &is));
    T(is.file_current == 0 && is.n_vectors == NT); /* written at close or save */
    T_OK(gz_db_save_indexes(db));
    T_OK(gz_db_index_info(db, m1, GZ_ITEM_IMAGE, &is));
    T(is.file_current == 1 && is.file_bytes > 0);
    int64_t gen_saved = is.generation;
    copy_file(fimg, old);
    gz_item tx = {.kind = GZ_ITEM_TEXT, .path = "c.txt", .path_len = 5, .text = "t"};
    T_OK(gz_db_upsert_item(db, &tx));
    T_OK(gz_db_put_embedding(db, tx.id, m1, other, TD));
    T_OK(gz_db_remove_item(db, id[NT - 1])); /* the image index changes too */
    T_OK(gz_db_index_info(db, m1, GZ_ITEM_IMAGE, &is));
    T(is.file_current == 0 && is.generation > gen_saved && is.n_vectors == NT - 1);
    T_OK(gz_db_save_indexes(db));
    T_OK(gz_db_index_info(db, m1, GZ_ITEM_IMAGE, &is));
    T(is.file_current == 1 && !same_bytes(fimg, old));
    T_OK(gz_db_index_info(db, m1, GZ_ITEM_TEXT, &is));
    T(is.file_current == 1 && is.n_vectors == 1);
    /* a second handle loads the saved files as they are: no rebuild notice */
    gz_db_params ro = dp;
    ro.readonly = 1;
    gz_db *db2 = NULL;
    T_OK(gz_db_open(path, &ro, &db2));
    int64_t want_4[NT - 1] = {id[0], id[1], id[2], id[3]};
    T(db2 && hits_are(db2, m1, q, want_4, NT - 1, "second handle, saved file"));
    T(db2 && gz_db_notice(db2) == NULL);
    T_OK(gz_db_close(db2));

    /* gz_db_rebuild_index rewrites a stale file (an older generation's, put back while the
     * handle has the current index loaded) with the current generation */
    int64_t gen_now = 0;
    T_OK(gz_db_index_info(db, m1, GZ_ITEM_IMAGE, &is));
    gen_now = is.generation;
    copy_file(old, fimg);
    T_OK(gz_db_index_info(db, m1, GZ_ITEM_IMAGE, &is));
    T(is.file_current == 0); /* the loaded index is current, the file is not */
    T_OK(gz_db_rebuild_index(db, m1, GZ_ITEM_IMAGE));
    T_OK(gz_db_index_info(db, m1, GZ_ITEM_IMAGE, &is));
    T(is.file_current == 1 && is.generation == gen_now && is.n_vectors == NT - 1);
    T(!same_bytes(fimg, old));
    T(hits_are(db, m1, q, want_4, NT - 1, "after rebuild"));
    /* model 0, kind 0: every index; both files deleted come back current */
    unlink(fimg);
    unlink(ftxt);
    T_OK(gz_db_rebuild_index(db, 0, 0));
    T(access(fimg, F_OK) == 0 && access(ftxt, F_OK) == 0);
    T_OK(gz_db_index_info(db, m1, GZ_ITEM_IMAGE, &is));
    T(is.file_current == 1);
    T_OK(gz_db_index_info(db, m1, GZ_ITEM_TEXT, &is));
    T(is.file_current == 1);
    T(hits_are(db, m1, q, want_4, NT - 1, "after rebuilding every index"));
    T_OK(gz_db_close(db));
    T_OK(gz_db_open(path, &ro, &db2));
    T(db2 && hits_are(db2, m1, q, want_4, NT - 1, "reopened after rebuild"));
    T(db2 && gz_db_notice(db2) == NULL); /* the rebuilt files load as current */
    T_OK(gz_db_close(db2));
    unlink(old);
}

#define N 300
#define D 32
#define DB2 16

/* Schema 1, as gaze wrote it before the Hub columns (store/db.c SCHEMA_V1, copied so that this
 * test keeps an old database to migrate when the library's schema moves on). */
static const char *const OLD_SCHEMA_V1 =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE models(id INTEGER PRIMARY KEY, name TEXT NOT NULL, family TEXT NOT NULL,"
    " dim INTEGER NOT NULL, fingerprint TEXT NOT NULL UNIQUE, created INTEGER NOT NULL,"
    " last_used INTEGER NOT NULL, use_seq INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE items(id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, path BLOB NOT NULL,"
    " ext_id TEXT NOT NULL DEFAULT '', text TEXT, size INTEGER NOT NULL DEFAULT 0,"
    " mtime_ns INTEGER NOT NULL DEFAULT 0, content_hash INTEGER NOT NULL DEFAULT 0,"
    " width INTEGER NOT NULL DEFAULT 0, height INTEGER NOT NULL DEFAULT 0, taken_at TEXT,"
    " meta_json TEXT, link_item_id INTEGER, status INTEGER NOT NULL DEFAULT 0, error TEXT,"
    " UNIQUE(kind, path, ext_id));"
    "CREATE INDEX items_hash ON items(content_hash);"
    "CREATE INDEX items_link ON items(link_item_id);"
    "CREATE TABLE embeddings(item_id INTEGER NOT NULL, model_id INTEGER NOT NULL,"
    " vec BLOB NOT NULL, PRIMARY KEY(item_id, model_id));"
    "CREATE INDEX embeddings_model ON embeddings(model_id, item_id);"
    "CREATE TABLE index_state(model_id INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " generation INTEGER NOT NULL, factory TEXT NOT NULL, PRIMARY KEY(model_id, kind));"
    "INSERT INTO models VALUES(1, '/models/old', 'clip', 2, 'fp-old', 1, 1, 1);"
    "INSERT INTO items(id, kind, path) VALUES(7, 1, CAST('a.jpg' AS BLOB));"
    "INSERT INTO embeddings VALUES(7, 1, zeroblob(8));"
    "PRAGMA user_version = 1; PRAGMA application_id = 1195465285;"; /* 0x47415a45 "GAZE" */

/* A schema-1 database opens read-only only after a writable open migrated it; the migration
 * keeps its model and vectors and adds the Hub origin, which registering by id then fills. */
static void test_migration(const char *dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/old.gaze", dir);
    sqlite3 *raw;
    T(sqlite3_open(path, &raw) == SQLITE_OK);
    T(sqlite3_exec(raw, OLD_SCHEMA_V1, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);
    gz_db_params dp = gz_db_default_params();
    dp.readonly = 1;
    gz_db *db = NULL;
    T(gz_db_open(path, &dp, &db) == GZ_EUNSUPPORTED && db == NULL);
    T(strstr(gz_last_error(), "needs migrating") != NULL);
    dp.readonly = 0;
    T_OK(gz_db_open(path, &dp, &db));
    if (!db) return;
    gz_db_model m;
    T_OK(gz_db_default_model(db, &m));
    T(m.id == 1 && !strcmp(m.name, "/models/old") && m.dim == 2 && m.n_embeddings == 1);
    T(m.hub_id[0] == 0 && m.hub_revision[0] == 0 && m.hub_commit[0] == 0);
    gz_db_stats s;
    T_OK(gz_db_get_stats(db, &s));
    T(s.schema_version == gz_db_schema_version() && gz_db_schema_version() >= 2);

    /* Registered by Hub id: the origin is stored beside the fingerprint, and replaced (here
     * cleared) when the same checkpoint is registered again from a folder. */
    const char *commit = "5d3a1f0e9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e";
    int64_t id = 0;
    T_OK(gz_db_register_model_hub(db, "org/clip@v1", "clip", 2, "fp-old", "org/clip", "v1", commit,
                                  &id));
    T(id == 1);
    T_OK(gz_db_get_model(db, 1, &m));
    T(!strcmp(m.name, "org/clip@v1") && !strcmp(m.hub_id, "org/clip") &&
      !strcmp(m.hub_revision, "v1") && !strcmp(m.hub_commit, commit));
    T(gz_db_register_model_hub(db, "org/clip", "clip", 2, "fp-old", "org/clip", NULL, commit,
                               &id) == GZ_EINVAL);
    T_OK(gz_db_close(db));
    dp.readonly = 1;
    T_OK(gz_db_open(path, &dp, &db)); /* migrated: now fine read-only */
    T_OK(gz_db_get_model(db, 1, &m));
    T(!strcmp(m.hub_id, "org/clip") && !strcmp(m.hub_commit, commit));
    T_OK(gz_db_close(db));
    dp.readonly = 0;
    T_OK(gz_db_open(path, &dp, &db));
    T_OK(gz_db_register_model(db, "/models/clip", "clip", 2, "fp-old", &id));
    T_OK(gz_db_get_model(db, 1, &m));
    T(!strcmp(m.name, "/models/clip") && m.hub_id[0] == 0 && m.hub_revision[0] == 0);
    T_OK(gz_db_close(db));
}

/* gz_db_coverage answers from memory while nothing changed, and sees every change: this
 * connection's own writes, a rollback, and another connection's commit. */
static void test_coverage_memo(const char *dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/cov.gaze", dir);
    gz_db_params dp = gz_db_default_params();
    gz_db *db = NULL, *other = NULL;
    T_OK(gz_db_open(path, &dp, &db));
    T_OK(gz_db_open(path, &dp, &other));
    if (!db || !other) {
        gz_db_close(db);
        gz_db_close(other);
        return;
    }
    int64_t m = 0, covered = -1, total = -1;
    T_OK(gz_db_register_model(db, "models/a", "blip", 4, "fp-cov", &m));
    float v[4] = {1, 0, 0, 0};
    char name[32];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "p%d.jpg", i);
        gz_item it = {.kind = GZ_ITEM_IMAGE, .path = name, .path_len = strlen(name)};
        T_OK(gz_db_upsert_item(db, &it));
        if (i < 2) T_OK(gz_db_put_embedding(db, it.id, m, v, 4));
    }
    T_OK(gz_db_coverage(db, m, GZ_ITEM_IMAGE, &covered, &total));
    T(covered == 2 && total == 3);
    T_OK(gz_db_coverage(db, m, GZ_ITEM_IMAGE, &covered, &total)); /* from memory */
    T(covered == 2 && total == 3);
    T_OK(gz_db_coverage(db, m, GZ_ITEM_TEXT, &covered, &total)); /* another kind */
    T(covered == 0 && total == 0);
    /* this connection's write */
    gz_item it = {.kind = GZ_ITEM_IMAGE, .path = "p3.jpg", .path_len = 6};
    T_OK(gz_db_upsert_item(db, &it));
    T_OK(gz_db_coverage(db, m, GZ_ITEM_IMAGE, &covered, &total));
    T(covered == 2 && total == 4);
    /* inside a transaction that rolls back */
    T_OK(gz_db_begin(db));
    T_OK(gz_db_put_embedding(db, it.id, m, v, 4));
    T_OK(gz_db_coverage(db, m, GZ_ITEM_IMAGE, &covered, &total));
    T(covered == 3 && total == 4);
    T_OK(gz_db_rollback(db));
    T_OK(gz_db_coverage(db, m, GZ_ITEM_IMAGE, &covered, &total));
    T(covered == 2 && total == 4);
    /* another connection's commit */
    T_OK(gz_db_put_embedding(other, it.id, m, v, 4));
    T_OK(gz_db_coverage(db, m, GZ_ITEM_IMAGE, &covered, &total));
    T(covered == 3 && total == 4);
    T_OK(gz_db_close(other));
    T_OK(gz_db_close(db));
}

int main(void) {
    const char *dir = gz_test_tmpdir("index-db");
    char path[1200], fpath[1300], saved[1300];
    snprintf(path, sizeof path, "%s/t.gaze", dir);
    gz_db_params dp = gz_db_default_params();
    gz_db *db = NULL;
    T_OK(gz_db_open(path, &dp, &db));
    if (!db) return gz_test_finish("test_index_db", checks);
    test_coverage_memo(dir);

    /* models */
    int64_t ma = 0, ma2 = 0, mb = 0;
    T_OK(gz_db_register_model(db, "models/a", "blip", D, "fp-a", &ma));
    T_OK(gz_db_register_model(db, "models/b", "clip", DB2, "fp-b", &mb));
    T_OK(gz_db_register_model(db, "moved/a", "blip", D, "fp-a", &ma2));
    T(ma > 0 && mb > 0 && ma != mb && ma2 == ma);
    T(gz_db_register_model(db, "x", "blip", D + 1, "fp-a", &ma2) == GZ_EINVAL);
    gz_db_model dm;
    T_OK(gz_db_default_model(db, &dm));
    T(dm.id == ma && strcmp(dm.name, "moved/a") == 0 && dm.dim == D);
    gz_db_model *models = NULL;
    int nm = 0;
    T_OK(gz_db_models(db, &models, &nm));
    T(nm == 2 && models && models[0].id == ma && models[1].id == mb);
    free(models);

    /* items: a non-UTF-8 path, every field round-trips */
    const char raw[] = "photos/\xff\xfe caf\xe9/img\x80.jpg";
    gz_item it = {.kind = GZ_ITEM_IMAGE,
                  .path = raw,
                  .path_len = sizeof raw - 1,
                  .size = 12345,
                  .mtime_ns = 1700000000123456789LL,
                  .content_hash = 0xfedcba9876543210ull,
                  .width = 640,
                  .height = 480,
                  .taken_at = "2021-07-04 12:30:00",
                  .meta_json = "{\"camera\":\"x\"}",
                  .status = GZ_ITEM_OK};
    T_OK(gz_db_upsert_item(db, &it));
    int64_t first_id = it.id;
    gz_item got;
    T_OK(gz_db_find_by_path(db, GZ_ITEM_IMAGE, raw, sizeof raw - 1, NULL, &got));
    T(got.id == first_id && got.path_len == sizeof raw - 1 &&
      memcmp(got.path, raw, got.path_len) == 0);
    T(got.size == 12345 && got.mtime_ns == 1700000000123456789LL &&
      got.content_hash == 0xfedcba9876543210ull && got.width == 640 && got.height == 480);
    T(got.taken_at && strcmp(got.taken_at, "2021-07-04 12:30:00") == 0);
    T(got.meta_json && strcmp(got.meta_json, "{\"camera\":\"x\"}") == 0 && !got.text && !got.error);
    gz_item_clear(&got);
    T(gz_db_find_by_path(db, GZ_ITEM_IMAGE, raw, sizeof raw - 2, NULL, &got) == GZ_ENOTFOUND);
    T(gz_db_find_by_path(db, GZ_ITEM_TEXT, raw, sizeof raw - 1, NULL, &got) == GZ_ENOTFOUND);
    /* a text item (caption) linked to the image */
    gz_item cap = {.kind = GZ_ITEM_TEXT,
                   .path = "captions.txt",
                   .path_len = 12,
                   .ext_id = "7",
                   .text = "a dog",
                   .link_item_id = first_id};
    T_OK(gz_db_upsert_item(db, &cap));
    T_OK(gz_db_get_item(db, cap.id, &got));
    T(got.kind == GZ_ITEM_TEXT && got.text && strcmp(got.text, "a dog") == 0 &&
      got.link_item_id == first_id && got.ext_id && strcmp(got.ext_id, "7") == 0);
    gz_item_clear(&got);
    /* a failed item keeps its error */
    gz_item bad = {.kind = GZ_ITEM_IMAGE,
                   .path = "broken.jpg",
                   .path_len = 10,
                   .status = GZ_ITEM_FAILED,
                   .error = "truncated JPEG"};
    T_OK(gz_db_upsert_item(db, &bad));
    T_OK(gz_db_get_item(db, bad.id, &got));
    T(got.status == GZ_ITEM_FAILED && got.error && strcmp(got.error, "truncated JPEG") == 0);
    gz_item_clear(&got);
    T_OK(gz_db_remove_item(db, bad.id));
    T(gz_db_get_item(db, bad.id, &got) == GZ_ENOTFOUND);

    /* N image items with vectors for both models, in one batch */
    static float va[N * D], vb[N * DB2];
    static int64_t ids[N];
    static int live[N];
    T_OK(gz_db_begin(db));
    for (int i = 0; i < N; i++) {
        char p[64];
        int len = snprintf(p, sizeof p, "img/%04d.jpg", i);
        gz_item x = {.kind = GZ_ITEM_IMAGE,
                     .path = p,
                     .path_len = (size_t)len,
                     .content_hash = 1000 + (uint64_t)i,
                     .size = i};
        T_OK(gz_db_upsert_item(db, &x));
        ids[i] = x.id;
        live[i] = 1;
        unit(va + i * D, D);
        unit(vb + i * DB2, DB2);
        T_OK(gz_db_put_embedding(db, x.id, ma, va + i * D, D));
        T_OK(gz_db_put_embedding(db, x.id, mb, vb + i * DB2, DB2));
    }
    T_OK(gz_db_commit(db));
    float back[D];
    T_OK(gz_db_get_embedding(db, ids[5], ma, back, D));
    T(memcmp(back, va + 5 * D, sizeof back) == 0);
    T(gz_db_get_embedding(db, ids[5], ma, back, D - 1) == GZ_EINVAL);
    T(gz_db_put_embedding(db, ids[5], ma, va, D - 1) == GZ_EINVAL);
    T(gz_db_get_embedding(db, first_id, ma, NULL, 0) == GZ_ENOTFOUND);
    float nanv[D] = {NAN};
    T(gz_db_put_embedding(db, ids[5], ma, nanv, D) == GZ_EINVAL);

    /* exact search equals brute force, per model */
    float q[D], qb[DB2];
    for (int t = 0; t < 5; t++) {
        unit(q, D);
        T(same_as_brute(db, ma, va, ids, live, N, D, q, 20, "flat model a"));
    }
    unit(qb, DB2);
    T(same_as_brute(db, mb, vb, ids, live, N, DB2, qb, 10, "flat model b"));
    gz_hit hits[64];
    int nh;
    T_OK(gz_db_search(db, ma, GZ_ITEM_TEXT, q, D, 5, -1.0f, hits, &nh));
    T(nh == 0); /* no text vectors yet */
    /* text vectors live in their own index: image searches never return them */
    T_OK(gz_db_put_embedding(db, cap.id, ma, q, D));
    T_OK(gz_db_search(db, ma, GZ_ITEM_TEXT, q, D, 5, -1.0f, hits, &nh));
    T(nh == 1 && hits[0].item_id == cap.id && fabsf(hits[0].score - 1.0f) < 1e-5f);
    T(same_as_brute(db, ma, va, ids, live, N, D, q, 20, "image search beside a text vector"));
    T(gz_db_search(db, ma, GZ_ITEM_IMAGE, qb, DB2, 5, -1.0f, hits, &nh) == GZ_EINVAL);
    /* min_score filters */
    T_OK(gz_db_search(db, ma, GZ_ITEM_IMAGE, va + 7 * D, D, 10, 0.999f, hits, &nh));
    T(nh == 1 && hits[0].item_id == ids[7] && fabsf(hits[0].score - 1.0f) < 1e-5f);

    /* missing items leave search, come back when OK again; removed items leave for good */
    T_OK(gz_db_mark_missing(db, ids[7]));
    live[7] = 0;
    T(same_as_brute(db, ma, va, ids, live, N, D, va + 7 * D, 10, "after mark_missing"));
    T_OK(gz_db_get_item(db, ids[7], &got));
    T(got.status == GZ_ITEM_MISSING);
    got.status = GZ_ITEM_OK;
    T_OK(gz_db_upsert_item(db, &got)); /* same hash: vector kept and back in the index */
    gz_item_clear(&got);
    live[7] = 1;
    T(same_as_brute(db, ma, va, ids, live, N, D, va + 7 * D, 10, "after un-missing"));
    T_OK(gz_db_remove_item(db, ids[8]));
    live[8] = 0;
    T(gz_db_get_embedding(db, ids[8], ma, NULL, 0) == GZ_ENOTFOUND);
    T(same_as_brute(db, ma, va, ids, live, N, D, va + 8 * D, 10, "after remove"));

    /* hash reuse: a renamed copy finds the vector of the original */
    int64_t dup = 0;
    T_OK(gz_db_find_by_hash(db, GZ_ITEM_IMAGE, 1000 + 9, ma, 0, &dup));
    T(dup == ids[9]);
    T(gz_db_find_by_hash(db, GZ_ITEM_IMAGE, 1000 + 9, ma, ids[9], &dup) == GZ_ENOTFOUND);
    /* changed content drops the stale vectors */
    T_OK(gz_db_get_item(db, ids[10], &got));
    got.content_hash = 42;
    T_OK(gz_db_upsert_item(db, &got));
    gz_item_clear(&got);
    T(gz_db_get_embedding(db, ids[10], ma, NULL, 0) == GZ_ENOTFOUND);
    T(gz_db_get_embedding(db, ids[10], mb, NULL, 0) == GZ_ENOTFOUND);
    live[10] = 0;
    T(same_as_brute(db, ma, va, ids, live, N, D, va + 10 * D, 10, "after content change"));

    /* rollback leaves no trace, in SQLite or in the index */
    T_OK(gz_db_begin(db));
    gz_item rb = {.kind = GZ_ITEM_IMAGE, .path = "rolled.jpg", .path_len = 10};
    T_OK(gz_db_upsert_item(db, &rb));
    T_OK(gz_db_put_embedding(db, rb.id, ma, q, D));
    T_OK(gz_db_search(db, ma, GZ_ITEM_IMAGE, q, D, 1, -1.0f, hits, &nh));
    T(nh == 1 && hits[0].item_id == rb.id); /* visible inside its own batch */
    T_OK(gz_db_rollback(db));
    T(gz_db_find_by_path(db, GZ_ITEM_IMAGE, "rolled.jpg", 10, NULL, &got) == GZ_ENOTFOUND);
    T(same_as_brute(db, ma, va, ids, live, N, D, q, 20, "after rollback"));

    /* prune: mark three missing under img/01, prune that prefix only */
    for (int i = 100; i < 103; i++) {
        T_OK(gz_db_mark_missing(db, ids[i]));
        live[i] = 0;
    }
    T_OK(gz_db_mark_missing(db, ids[200]));
    live[200] = 0;
    int64_t pruned = -1;
    T_OK(gz_db_prune_missing(db, "img/01", 6, &pruned));
    T(pruned == 3);
    T(gz_db_get_item(db, ids[100], &got) == GZ_ENOTFOUND);
    T_OK(gz_db_get_item(db, ids[200], &got));
    gz_item_clear(&got);
    int64_t *list = NULL;
    size_t nl = 0;
    T_OK(gz_db_list_items(db, GZ_ITEM_IMAGE, "img/", 4, -1, &list, &nl));
    T(nl == N - 1 - 3); /* ids[8] removed, three pruned */
    free(list);
    T_OK(gz_db_list_items(db, 0, NULL, 0, GZ_ITEM_MISSING, &list, &nl));
    T(nl == 1 && list && list[0] == ids[200]);
    free(list);

    gz_db_stats stats;
    T_OK(gz_db_get_stats(db, &stats));
    T(stats.schema_version == gz_db_schema_version() && stats.n_models == 2);
    T(stats.n_items[GZ_ITEM_TEXT] == 1 && stats.n_items[GZ_ITEM_IMAGE] == 1 + N - 4);
    T(stats.n_status[GZ_ITEM_MISSING] == 1 && stats.n_indexes == 3 &&
      stats.n_embeddings == 2 * (N - 5) + 1);

    char *val = NULL;
    T_OK(gz_db_set_meta(db, "default_k", "20"));
    T_OK(gz_db_get_meta(db, "default_k", &val));
    T(val && strcmp(val, "20") == 0);
    free(val);
    T_OK(gz_db_set_meta(db, "default_k", NULL));
    T(gz_db_get_meta(db, "default_k", &val) == GZ_ENOTFOUND);

    /* reopen: the files are current, loaded without rebuilding, same results */
    unit(q, D);
    T_OK(gz_db_close(db));
    T_OK(gz_db_open(path, &dp, &db));
    gz_db_index_state is;
    T_OK(gz_db_index_info(db, ma, GZ_ITEM_IMAGE, &is));
    T(is.file_current == 1 && is.n_vectors == N - 6 && strcmp(is.effective, "Flat") == 0);
    T(gz_db_notice(db) == NULL);
    T(same_as_brute(db, ma, va, ids, live, N, D, q, 20, "after reopen"));

    /* corrupt payload -> rebuilt with a notice, same results */
    snprintf(fpath, sizeof fpath, "%s.m%lld.image.faiss", path, (long long)ma);
    snprintf(saved, sizeof saved, "%s/saved.faiss", dir);
    copy_file(fpath, saved);
    T_OK(gz_db_close(db));
    flip_byte(fpath, -100);
    T_OK(gz_db_open(path, &dp, &db));
    T(same_as_brute(db, ma, va, ids, live, N, D, q, 20, "after corrupt payload"));
    const char *msg = gz_db_notice(db);
    T(msg && strstr(msg, "rebuilding") && strstr(msg, "checksum"));
    T_OK(gz_db_close(db));
    /* a corrupt header is caught at open */
    flip_byte(fpath, 30); /* inside the generation field */
    T_OK(gz_db_open(path, &dp, &db));
    msg = gz_db_notice(db);
    T(msg && strstr(msg, "header checksum"));
    T(same_as_brute(db, ma, va, ids, live, N, D, q, 20, "after corrupt header"));
    T_OK(gz_db_close(db));
    /* a temp file left by a killed writer (pid gone) is removed at open */
    char tmpf[1400];
    snprintf(tmpf, sizeof tmpf, "%s.tmp.%d", fpath, 4194304 + 7); /* above Linux's pid_max */
    copy_file(saved, tmpf);
    T(access(tmpf, F_OK) == 0);
    T_OK(gz_db_open(path, &dp, &db));
    T(access(tmpf, F_OK) != 0);
    T_OK(gz_db_close(db));
    /* missing file */
    unlink(fpath);
    T_OK(gz_db_open(path, &dp, &db));
    msg = gz_db_notice(db);
    T(msg && strstr(msg, "missing"));
    T(same_as_brute(db, ma, va, ids, live, N, D, q, 20, "after missing file"));
    T_OK(gz_db_index_info(db, ma, GZ_ITEM_IMAGE, &is));
    T(is.file_current == 1);
    /* stale: change something, then put the old (valid, older generation) file back */
    T_OK(gz_db_remove_item(db, ids[11]));
    live[11] = 0;
    T_OK(gz_db_close(db));
    copy_file(saved, fpath);
    T_OK(gz_db_open(path, &dp, &db));
    msg = gz_db_notice(db);
    T(msg && strstr(msg, "stale"));
    T(same_as_brute(db, ma, va, ids, live, N, D, va + 11 * D, 20, "after stale file"));
    T_OK(gz_db_close(db));
    /* truncated file, found by a read-only reader: rebuilt in memory, file untouched */
    truncate(fpath, 150);
    gz_db_params ro = dp;
    ro.readonly = 1;
    T_OK(gz_db_open(path, &ro, &db));
    T(same_as_brute(db, ma, va, ids, live, N, D, q, 20, "read-only, truncated file"));
    msg = gz_db_notice(db);
    T(msg && strstr(msg, "truncated"));
    gz_item w = {.kind = GZ_ITEM_IMAGE, .path = "x", .path_len = 1};
    T(gz_db_upsert_item(db, &w) == GZ_EINVAL);
    T(gz_db_begin(db) == GZ_EINVAL);
    T_OK(gz_db_close(db));
    T_OK(gz_db_open(path, &dp, &db)); /* writable: repairs the file */
    T_OK(gz_db_index_info(db, ma, GZ_ITEM_IMAGE, &is));
    T(is.file_current == 1);

    /* HNSW: removed ids never come back, dead share compacted at close */
    T_OK(gz_db_close(db));
    gz_db_params hp = dp;
    hp.factory = "HNSW32";
    T_OK(gz_db_open(path, &hp, &db));
    T_OK(gz_db_index_info(db, ma, GZ_ITEM_IMAGE, &is));
    T(strcmp(is.factory, "HNSW32") == 0 && strcmp(is.effective, "HNSW32") == 0);
    T(is.n_vectors == N - 7 && is.file_current == 1);
    T_OK(gz_db_begin(db));
    for (int i = 20; i < 120; i++)
        if (live[i]) {
            T_OK(gz_db_remove_item(db, ids[i]));
            live[i] = 0;
        }
    T_OK(gz_db_commit(db));
    T_OK(gz_db_index_info(db, ma, GZ_ITEM_IMAGE, &is));
    T(is.n_dead > 0 && is.n_vectors == N - 7 - (100 - 3));
    int leaked = 0;
    for (int t = 20; t < 120; t++) {
        T_OK(gz_db_search(db, ma, GZ_ITEM_IMAGE, va + t * D, D, 10, -1.0f, hits, &nh));
        for (int i = 0; i < nh; i++)
            for (int j = 20; j < 120; j++)
                if (hits[i].item_id == ids[j]) leaked++;
        if (nh != 10) leaked++;
    }
    T(leaked == 0);
    T_OK(gz_db_close(db));
    T_OK(gz_db_open(path, &hp, &db));
    T_OK(gz_db_index_info(db, ma, GZ_ITEM_IMAGE, &is));
    T(is.n_dead == 0 && is.n_vectors == N - 104 && is.file_current == 1);
    T_OK(gz_db_close(db));

    /* incremental: a batch goes into the loaded (current) HNSW file's index, no rebuild */
    T_OK(gz_db_open(path, &hp, &db));
    T(gz_db_notice(db) == NULL);
    static float vn[20 * D];
    int64_t nid[20];
    T_OK(gz_db_begin(db));
    for (int i = 0; i < 20; i++) {
        char p[32];
        int len = snprintf(p, sizeof p, "new/%02d.jpg", i);
        gz_item x = {.kind = GZ_ITEM_IMAGE,
                     .path = p,
                     .path_len = (size_t)len,
                     .content_hash = 5000 + (uint64_t)i};
        T_OK(gz_db_upsert_item(db, &x));
        nid[i] = x.id;
        unit(vn + i * D, D);
        T_OK(gz_db_put_embedding(db, x.id, ma, vn + i * D, D));
    }
    T_OK(gz_db_commit(db));
    T_OK(gz_db_index_info(db, ma, GZ_ITEM_IMAGE, &is));
    T(is.n_vectors == N - 104 + 20 && is.file_current == 0); /* the file is written at close */
    T(gz_db_notice(db) == NULL);                             /* nothing was rebuilt */
    for (int i = 0; i < 20; i++) {
        T_OK(gz_db_search(db, ma, GZ_ITEM_IMAGE, vn + i * D, D, 1, -1.0f, hits, &nh));
        T(nh == 1 && hits[0].item_id == nid[i]);
    }
    /* another handle commits meanwhile: the first handle's loaded index is out of date and
     * must not be extended; it is reloaded from the file the other handle wrote */
    gz_db *db2 = NULL;
    T_OK(gz_db_open(path, &hp, &db2));
    gz_item y = {.kind = GZ_ITEM_IMAGE, .path = "other.jpg", .path_len = 9};
    T_OK(gz_db_upsert_item(db2, &y));
    T_OK(gz_db_put_embedding(db2, y.id, ma, q, D));
    T_OK(gz_db_close(db2));
    T_OK(gz_db_remove_item(db, nid[0]));
    T_OK(gz_db_search(db, ma, GZ_ITEM_IMAGE, q, D, 1, -1.0f, hits, &nh));
    T(nh == 1 && hits[0].item_id == y.id && hits[0].score > 0.9999f);
    T_OK(gz_db_search(db, ma, GZ_ITEM_IMAGE, vn, D, 1, -1.0f, hits, &nh));
    T(nh == 1 && hits[0].item_id != nid[0]);
    T(gz_db_notice(db) == NULL); /* loaded the other handle's file: no rebuild */
    T_OK(gz_db_index_info(db, ma, GZ_ITEM_IMAGE, &is));
    T(is.n_vectors == N - 104 + 20);
    T_OK(gz_db_begin(db)); /* back to the brute-force reference set */
    for (int i = 1; i < 20; i++)
        T_OK(gz_db_remove_item(db, nid[i]));
    T_OK(gz_db_remove_item(db, y.id));
    T_OK(gz_db_commit(db));
    T_OK(gz_db_close(db));

    /* IVF below its training minimum falls back to Flat (exact) with a notice */
    gz_db_params ip = dp;
    ip.factory = "IVF64,Flat";
    T_OK(gz_db_open(path, &ip, &db));
    msg = gz_db_notice(db);
    T(msg && strstr(msg, "using Flat"));
    T_OK(gz_db_index_info(db, ma, GZ_ITEM_IMAGE, &is));
    T(strcmp(is.factory, "IVF64,Flat") == 0 && strcmp(is.effective, "Flat") == 0);
    T(same_as_brute(db, ma, va, ids, live, N, D, q, 20, "IVF fallback"));
    T_OK(gz_db_close(db));
    gz_db_params badf = dp;
    badf.factory = "NoSuchIndex";
    T(gz_db_open(path, &badf, &db) == GZ_EINVAL && db == NULL);
    T(strstr(gz_last_error(), "NoSuchIndex") != NULL);

    /* a database from a newer gaze is refused; a foreign SQLite file too */
    sqlite3 *raw_db;
    sqlite3_open(path, &raw_db);
    sqlite3_exec(raw_db, "PRAGMA user_version = 999", NULL, NULL, NULL);
    sqlite3_close(raw_db);
    T(gz_db_open(path, &dp, &db) == GZ_EUNSUPPORTED && db == NULL);
    T(strstr(gz_last_error(), "newer gaze") != NULL);
    char other[1200];
    snprintf(other, sizeof other, "%s/other.sqlite", dir);
    sqlite3_open(other, &raw_db);
    sqlite3_exec(raw_db, "CREATE TABLE t(x)", NULL, NULL, NULL);
    sqlite3_close(raw_db);
    T(gz_db_open(other, &dp, &db) == GZ_ECORRUPT);

    uint64_t h1 = 0, h2 = 0;
    T_OK(gz_hash_file(other, &h1));
    T_OK(gz_hash_file(other, &h2));
    T(h1 == h2 && h1 != 0);
    T(gz_hash_file("/nonexistent/file", &h1) == GZ_EIO);

    test_models_ties_files(dir);
    test_migration(dir);
    return gz_test_finish("test_index_db", checks);
}
