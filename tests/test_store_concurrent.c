/* test_index_concurrent.c - a reader process searching while another process indexes.
 *
 * The writer (this executable run with "--writer") inserts 3000 items in batches of 30 and
 * writes the FAISS file only at the end; the parent, with a read-only handle, keeps reading
 * counts and searching. It must never see part of a batch, counts never go back, the index it
 * searches always holds exactly the items of its snapshot (it reloads or rebuilds when the
 * generation moves), and at the end it sees everything. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gaze.h"
#include "testutil.h"

#define N_ITEMS 3000
#define BATCH 30
#define D 32

static int checks;
#define T(c) CHECK_COUNTED(checks, c)
#define T_OK(e) CHECK_OK_COUNTED(checks, e)

static void item_vec(int i, float *v) { /* a deterministic random unit vector per item */
    gz_test_xorshift_unit(0x2545f4914f6cdd1dull ^ ((uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull), v,
                          D);
}

static int writer(const char *path) {
    gz_db_params p = gz_db_default_params();
    gz_db *db = NULL;
    int64_t m;
    if (gz_db_open(path, &p, &db) != GZ_OK ||
        gz_db_register_model(db, "w", "clip", D, "fp-w", &m) != GZ_OK)
        goto fail;
    for (int b = 0; b < N_ITEMS; b += BATCH) {
        if (gz_db_begin(db) != GZ_OK) goto fail;
        for (int i = b; i < b + BATCH; i++) {
            char name[32];
            int len = snprintf(name, sizeof name, "w%05d", i);
            gz_item it = {.kind = GZ_ITEM_IMAGE, .path = name, .path_len = (size_t)len};
            float v[D];
            item_vec(i, v);
            if (gz_db_upsert_item(db, &it) != GZ_OK ||
                gz_db_put_embedding(db, it.id, m, v, D) != GZ_OK)
                goto fail;
        }
        if (gz_db_commit(db) != GZ_OK) goto fail;
        struct timespec ts = {0, 2000000}; /* 2 ms between batches: let the reader in */
        nanosleep(&ts, NULL);
    }
    if (gz_db_close(db) != GZ_OK) goto fail;
    return 0;
fail:
    fprintf(stderr, "writer: %s\n", gz_last_error());
    return 2;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--writer") == 0) return writer(argv[2]);
    char self[1024];
    if (gz_test_self_exe(self, sizeof self) != 0) return 3;
    const char *dir = gz_test_tmpdir("index-concurrent");
    char path[1200];
    snprintf(path, sizeof path, "%s/c.gaze", dir);
    /* create the schema and the model first so the reader can open read-only */
    gz_db_params p = gz_db_default_params();
    gz_db *db = NULL;
    int64_t m = 0;
    T_OK(gz_db_open(path, &p, &db));
    T_OK(gz_db_register_model(db, "w", "clip", D, "fp-w", &m));
    T_OK(gz_db_close(db));

    pid_t pid = fork();
    if (pid == 0) {
        execl(self, self, "--writer", path, (char *)NULL);
        _exit(127);
    }
    gz_db_params ro = gz_db_default_params();
    ro.readonly = 1;
    T_OK(gz_db_open(path, &ro, &db));
    if (!db) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return gz_test_finish("test_index_concurrent", checks);
    }
    int64_t last_items = 0, last_vecs = 0;
    int reads = 0, torn = 0, backwards = 0, mismatched = 0, wrong_hit = 0, distinct = 0;
    int status = 0, done = 0;
    while (!done) {
        done = waitpid(pid, &status, WNOHANG) == pid; /* one more pass after it ends */
        gz_db_stats st;
        gz_db_index_state is;
        if (gz_db_get_stats(db, &st) != GZ_OK) {
            fprintf(stderr, "stats: %s\n", gz_last_error());
            gz_test_failures++;
            break;
        }
        int64_t items = st.n_items[GZ_ITEM_IMAGE];
        torn += items % BATCH != 0;
        backwards += items < last_items;
        if (items != last_items) distinct++;
        last_items = items;
        if (items == 0) continue;
        if (gz_db_index_info(db, m, GZ_ITEM_IMAGE, &is) != GZ_OK) {
            fprintf(stderr, "index_info: %s\n", gz_last_error());
            gz_test_failures++;
            break;
        }
        torn += is.n_vectors % BATCH != 0;
        backwards += is.n_vectors < last_vecs;
        mismatched += is.n_vectors < items; /* snapshot taken after the item count */
        last_vecs = is.n_vectors;
        /* search for an item of the snapshot: it must come first */
        int i = (int)((reads * 37) % is.n_vectors);
        float v[D];
        item_vec(i, v);
        gz_hit h[1];
        int nh = 0;
        gz_item it;
        char name[32];
        int len = snprintf(name, sizeof name, "w%05d", i);
        if (gz_db_search(db, m, GZ_ITEM_IMAGE, v, D, 1, -1.0f, h, &nh) != GZ_OK ||
            gz_db_find_by_path(db, GZ_ITEM_IMAGE, name, (size_t)len, NULL, &it) != GZ_OK ||
            nh != 1 || h[0].item_id != it.id || h[0].score < 0.9999f)
            wrong_hit++;
        gz_item_clear(&it);
        reads++;
    }
    T(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("%d reads, %d distinct counts seen, final %lld items / %lld vectors\n", reads, distinct,
           (long long)last_items, (long long)last_vecs);
    T(torn == 0 && backwards == 0 && mismatched == 0 && wrong_hit == 0);
    if (torn || backwards || mismatched || wrong_hit)
        fprintf(stderr, "torn %d backwards %d mismatched %d wrong hits %d\n", torn, backwards,
                mismatched, wrong_hit);
    T(reads > 5 && distinct > 2); /* the reads really overlapped the writes */
    T(last_items == N_ITEMS && last_vecs == N_ITEMS);
    const char *note = gz_db_notice(db);
    T(note && strstr(note, "rebuilding")); /* the file was stale while the writer ran */
    T_OK(gz_db_close(db));
    return gz_test_finish("test_index_concurrent", checks);
}
