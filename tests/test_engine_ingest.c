/* test_engine_ingest.c - the engine API with the tiny BLIP fixture model: ingest stats,
 * a deterministic stop after the first batch (what Ctrl-C does) and the resume, search
 * results equal to a brute-force ranking over the stored vectors, composed queries,
 * re-ranking scores, and the zero-query error; a new file is opened once (kernel inotify
 * events) and an unchanged one not at all, even while another handle holds the write lock;
 * a read-only search over a stale index writes no file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gaze.h"
#include "testutil.h"

static int checks = 0;
#define T(cond) CHECK_COUNTED(checks, cond)

static const char *const PHOTOS[] = {
    "animal_cat_chelsea.png",     "animal_dog_corgi.jpg", "food_coffee.png",   "product_kettle.jpg",
    "scene_rocket_launchpad.jpg", "people_hopper.gif",    "animal_kitten.webp"};
#define N_PHOTOS ((int)(sizeof PHOTOS / sizeof PHOTOS[0]))

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

/* ---- a new file is read once, an unchanged one not at all ---- */

#define ONCE_FILES 3

/* The kernel queues one IN_OPEN per open(2), but merges an event identical to the last one
 * queued: watching closes too keeps two opens in a row from reading as one. */
#define WATCH_MASK (IN_OPEN | IN_CLOSE_NOWRITE | IN_CLOSE_WRITE)

/* IN_OPEN events per watched file since the last call (the kernel's count of open(2)s of
 * each file: neither atime nor a hook in the code under test). */
static void count_opens(int fd, const int *wd, int n, int *opens) {
    for (int i = 0; i < n; i++)
        opens[i] = 0;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t got = read(fd, buf, sizeof buf);
        if (got <= 0) break; /* EAGAIN: no more events */
        for (char *p = buf; p < buf + got;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            for (int i = 0; i < n; i++)
                if (ev->wd == wd[i] && (ev->mask & IN_OPEN)) opens[i]++;
            p += sizeof *ev + ev->len;
        }
    }
}

static void test_read_once(void) {
    char dir[1024], photos[1200], db[1200], paths[ONCE_FILES][1400];
    snprintf(dir, sizeof dir, "%s", gz_test_tmpdir("engine_read_once"));
    snprintf(photos, sizeof photos, "%s/photos", dir);
    snprintf(db, sizeof db, "%s/once.db", dir);
    T(mkdir(photos, 0755) == 0);
    /* two new pictures, then a byte-identical copy of one (content reused, not decoded) */
    const char *src[ONCE_FILES] = {"animal_cat_chelsea.png", "animal_dog_corgi.jpg",
                                   "animal_cat_chelsea.png"};
    const char *dst[ONCE_FILES] = {"a_cat.png", "b_dog.jpg", "c_cat_copy.png"};
    for (int i = 0; i < ONCE_FILES; i++)
        snprintf(paths[i], sizeof paths[i], "%s/%s", photos, dst[i]);
    for (int i = 0; i < 2; i++)
        copy_file(gz_test_path("photos/%s", src[i]), paths[i]);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "inotify unavailable (%s): the read count is not checked\n",
                strerror(errno));
        return;
    }
    int wd[ONCE_FILES], opens[ONCE_FILES];
    for (int i = 0; i < 2; i++) {
        wd[i] = inotify_add_watch(fd, paths[i], WATCH_MASK);
        T(wd[i] >= 0);
    }

    gz_engine_params ep = gz_engine_default_params();
    ep.db_path = db;
    ep.model_dir = gz_test_path("fixtures/blip_itm");
    ep.db.busy_timeout_ms = 100;
    gz_engine *e = NULL;
    CHECK_OK(gz_engine_open(&ep, &e));
    checks++;
    if (!e) {
        close(fd);
        return;
    }
    const char *roots[] = {photos};
    gz_ingest_opts io = gz_ingest_default_opts();
    io.batch_size = 1; /* the second file is read while the first encodes */
    gz_ingest_stats s;
    CHECK_OK(gz_engine_index(e, roots, 1, &io, &s));
    checks++;
    T(s.encoded == 2 && s.reused == 0 && s.failed == 0);
    count_opens(fd, wd, 2, opens);
    for (int i = 0; i < 2; i++) {
        if (opens[i] != 1) fprintf(stderr, "%s: opened %d times, want 1\n", dst[i], opens[i]);
        T(opens[i] == 1);
    }

    /* the copy: read once to hash it, its vector reused; the others are not opened */
    copy_file(gz_test_path("photos/%s", src[2]), paths[2]);
    wd[2] = inotify_add_watch(fd, paths[2], WATCH_MASK);
    T(wd[2] >= 0);
    CHECK_OK(gz_engine_index(e, roots, 1, &io, &s));
    checks++;
    T(s.encoded == 0 && s.reused == 1 && s.skipped == 2);
    count_opens(fd, wd, ONCE_FILES, opens);
    T(opens[0] == 0 && opens[1] == 0 && opens[2] == 1);

    /* unchanged (size, mtime): not opened at all. Another handle holds the write lock
     * meanwhile: a run with nothing to write only reads, so it neither waits for the lock
     * nor fails on it (busy_timeout 100 ms) */
    gz_db *other = NULL;
    CHECK_OK(gz_db_open(db, NULL, &other));
    CHECK_OK(other ? gz_db_begin(other) : GZ_EINVAL);
    checks += 2;
    CHECK_OK(gz_engine_index(e, roots, 1, &io, &s));
    checks++;
    T(s.skipped == ONCE_FILES && s.encoded == 0);
    if (other) {
        CHECK_OK(gz_db_rollback(other));
        CHECK_OK(gz_db_close(other));
        checks += 2;
    }
    count_opens(fd, wd, ONCE_FILES, opens);
    for (int i = 0; i < ONCE_FILES; i++)
        T(opens[i] == 0);
    close(fd);

    /* results unchanged: the stored hash is gz_hash_file's and the vector is the one the
     * file-based decode gives */
    gz_model *m = NULL;
    int64_t mid = 0;
    CHECK_OK(gz_engine_model(e, &m, &mid));
    checks++;
    int dim = gz_model_dim(m);
    float *got = malloc((size_t)dim * sizeof *got), *want = malloc((size_t)dim * sizeof *want);
    for (int i = 0; i < ONCE_FILES; i++) {
        gz_item it;
        memset(&it, 0, sizeof it);
        CHECK_OK(gz_db_find_by_path(gz_engine_db(e), GZ_ITEM_IMAGE, paths[i], strlen(paths[i]),
                                    NULL, &it));
        uint64_t h = 0;
        CHECK_OK(gz_hash_file(paths[i], &h));
        T(it.content_hash == h && h != 0);
        CHECK_OK(gz_db_get_embedding(gz_engine_db(e), it.id, mid, got, dim));
        gz_image img;
        gz_image_params ip = gz_model_image_params(m);
        CHECK_OK(gz_image_load(paths[i], &ip, &img));
        CHECK_OK(gz_encode_images(m, &img, 1, want));
        T(it.width == img.src_width && it.height == img.src_height);
        gz_image_free(&img);
        T(gz_check_close(dst[i], got, want, (size_t)dim, 1e-6f, 0));
        gz_item_clear(&it);
        checks += 5;
    }
    free(got);
    free(want);
    CHECK_OK(gz_engine_close(e));
    checks++;
}

/* ---- a read-only search over a stale index writes nothing ---- */

typedef struct {
    char name[256];
    int64_t size, mtime_ns;
} file_state;

/* The files of a folder (up to cap) with size and mtime; returns how many. */
static int list_files(const char *dir, file_state *out, int cap) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < cap) {
        if (de->d_name[0] == '.') continue;
        char p[4096];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        snprintf(out[n].name, sizeof out[n].name, "%s", de->d_name);
        out[n].size = (int64_t)sb.st_size;
        out[n].mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
        n++;
    }
    closedir(d);
    return n;
}

static const file_state *find_state(const file_state *v, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0) return &v[i];
    return NULL;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = malloc(1 << 20);
    *n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    return buf;
}

/* db: an indexed database with vectors of one model, 2+ images. Makes its image index file
 * stale (the file of an older generation, same contents), then searches read-only: the same
 * hits as a writable search, and no file in the folder is created or changed (SQLite's
 * -shm/-wal bookkeeping aside, and the -wal stays empty). A read-only open that rebuilt and
 * saved the index, or registered the model, would change a file. */
static void test_readonly_search(const char *dir, const char *db) {
    gz_engine_params ep = gz_engine_default_params();
    ep.db_path = db;
    ep.model_dir = gz_test_path("fixtures/blip_itm");
    gz_engine *e = NULL;
    CHECK_OK(gz_engine_open(&ep, &e));
    checks++;
    if (!e) return;
    gz_query_term t = {.text = "a dog on the grass", .weight = 1};
    gz_query q = gz_query_default();
    q.terms = &t;
    q.n_terms = 1;
    q.k = 100;
    gz_results want = {0}, got = {0};
    CHECK_OK(gz_engine_search(e, &q, &want));
    checks++;
    int64_t mid = 0;
    CHECK_OK(gz_engine_model(e, NULL, &mid));
    checks++;
    CHECK_OK(gz_engine_close(e));
    checks++;
    char faiss[2200], old[2200];
    snprintf(faiss, sizeof faiss, "%s.m%lld.image.faiss", db, (long long)mid);
    size_t n_old = 0;
    unsigned char *old_bytes = slurp(faiss, &n_old);
    T(old_bytes && n_old > 0);
    snprintf(old, sizeof old, "%s.old", dir);
    copy_file(faiss, old);

    /* move the generation on without changing what is indexed: missing, then back */
    gz_db *d = NULL;
    gz_db_params dp = gz_db_default_params();
    CHECK_OK(gz_db_open(db, &dp, &d));
    checks++;
    if (!d) return;
    gz_item it;
    memset(&it, 0, sizeof it);
    CHECK_OK(gz_db_get_item(d, want.v[0].item_id, &it));
    CHECK_OK(gz_db_mark_missing(d, it.id));
    it.status = GZ_ITEM_OK;
    CHECK_OK(gz_db_upsert_item(d, &it));
    gz_item_clear(&it);
    CHECK_OK(gz_db_close(d));
    checks += 4;
    copy_file(old, faiss); /* the file of the older generation: stale */
    unlink(old);
    free(old_bytes);
    old_bytes = slurp(faiss, &n_old);

    file_state before[64], after[64];
    int nb = list_files(dir, before, 64);
    T(nb >= 2 && find_state(before, nb, strrchr(faiss, '/') + 1) != NULL);
    usleep(20000); /* a write would show as a later mtime even on coarse clocks */

    ep.db.readonly = 1;
    CHECK_OK(gz_engine_open(&ep, &e));
    checks++;
    if (!e) return;
    CHECK_OK(gz_engine_search(e, &q, &got));
    checks++;
    T(got.n == want.n && got.n >= 2);
    for (int i = 0; i < got.n && i < want.n; i++)
        T(got.v[i].item_id == want.v[i].item_id && fabsf(got.v[i].score - want.v[i].score) < 1e-6f);
    CHECK_OK(gz_engine_close(e));
    checks++;
    gz_results_free(&want);
    gz_results_free(&got);

    int na = list_files(dir, after, 64);
    for (int i = 0; i < na; i++) {
        const file_state *b = find_state(before, nb, after[i].name);
        if (has_suffix(after[i].name, "-shm")) continue; /* SQLite's lock bookkeeping */
        if (has_suffix(after[i].name, "-wal") && !b) {
            T(after[i].size == 0); /* created empty by SQLite, nothing written to it */
            continue;
        }
        if (!b || b->size != after[i].size || b->mtime_ns != after[i].mtime_ns)
            fprintf(stderr, "read-only search: %s was created or changed\n", after[i].name);
        T(b && b->size == after[i].size && b->mtime_ns == after[i].mtime_ns);
    }
    size_t n_now = 0;
    unsigned char *now = slurp(faiss, &n_now);
    T(now && old_bytes && n_now == n_old && memcmp(now, old_bytes, n_old) == 0);
    free(now);
    free(old_bytes);
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
        for (int d = 0; d < dim; d++)
            c += (double)q[d] * v[d];
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
    for (int i = 0; i < r.n; i++)
        T(strstr(r.v[i].path, "food_coffee") == NULL);
    gz_results_free(&r);

    free(q);
    free(v);
    CHECK_OK(gz_engine_close(e));
    checks++;

    test_readonly_search(dir, db);
    test_read_once();
    return gz_test_finish("engine_ingest", checks);
}
