/* test_store_snapshot.c - gz_db_snapshot while another process writes.
 *
 * A writer process (this executable run with "--writer") adds items in batches of 25, saving
 * the FAISS file at every commit; meanwhile the parent takes snapshots. Each snapshot must hold
 * whole batches only, open read-only, search exactly its own items (its FAISS file matches its
 * rows: copied at that generation or built from the copy), and find every item's own vector
 * first. Also: an existing destination is refused, a missing source leaves nothing behind. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gaze.h"
#include "testutil.h"

#define N_ITEMS 2000
#define BATCH 25
#define D 32
#define SNAPSHOTS 6

static int checks;
#define T(c) CHECK_COUNTED(checks, c)
#define T_OK(e) CHECK_OK_COUNTED(checks, e)

static void item_vec(int i, float *v) {
    gz_test_xorshift_unit(0x51ed2701u ^ ((uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull), v, D);
}

static int writer(const char *path) {
    gz_db_params p = gz_db_default_params();
    p.save_every_commit = 1; /* as gaze serve's writer: snapshots find current FAISS files */
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
    }
    if (gz_db_close(db) != GZ_OK) goto fail;
    return 0;
fail:
    fprintf(stderr, "writer: %s\n", gz_last_error());
    return 2;
}

/* The snapshot at path: whole batches, and its index holds exactly its items. */
static void check_snapshot(const char *path, int64_t m, int *n_items) {
    gz_db_params ro = gz_db_default_params();
    ro.readonly = 1;
    gz_db *db = NULL;
    T_OK(gz_db_open(path, &ro, &db));
    if (!db) return;
    gz_db_stats st;
    T_OK(gz_db_get_stats(db, &st));
    int64_t n = st.n_items[GZ_ITEM_IMAGE];
    *n_items = (int)n;
    T(n % BATCH == 0);
    /* the index holds exactly the snapshot's items (copied at that generation or built: a
     * replica loads it, never rebuilds), and the last item stored finds itself first */
    if (n > 0) {
        gz_db_index_state is;
        T_OK(gz_db_index_info(db, m, GZ_ITEM_IMAGE, &is));
        T(is.n_vectors == n);
        T(is.file_current == 1);
        float v[D];
        item_vec((int)n - 1, v);
        gz_hit hit;
        int nh = 0;
        T_OK(gz_db_search(db, m, GZ_ITEM_IMAGE, v, D, 1, GZ_NO_MIN_SCORE, &hit, &nh));
        gz_item it;
        memset(&it, 0, sizeof it);
        T(nh == 1 && gz_db_get_item(db, hit.item_id, &it) == GZ_OK);
        char want[32];
        snprintf(want, sizeof want, "w%05d", (int)n - 1);
        T(it.path && strcmp(it.path, want) == 0);
        gz_item_clear(&it);
    }
    T_OK(gz_db_close(db));
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--writer") == 0) return writer(argv[2]);
    char self[1024];
    if (gz_test_self_exe(self, sizeof self) != 0) return 3;
    const char *dir = gz_test_tmpdir("store-snapshot");
    char path[1200];
    snprintf(path, sizeof path, "%s/w.gaze", dir);
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
    int sizes[SNAPSHOTS + 1], copied = 0, built = 0;
    for (int s = 0; s <= SNAPSHOTS; s++) {
        if (s == SNAPSHOTS) {
            int status = 0;
            waitpid(pid, &status, 0);
            T(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        } else {
            struct timespec ts = {0, 30000000}; /* let the writer go on between snapshots */
            nanosleep(&ts, NULL);
        }
        char dest[1300];
        snprintf(dest, sizeof dest, "%s/snap%d.gaze", dir, s);
        gz_snapshot_stats st;
        T_OK(gz_db_snapshot(path, dest, &st));
        copied += st.indexes_copied;
        built += st.indexes_built;
        T(st.bytes > 0);
        check_snapshot(dest, m, &sizes[s]);
    }
    printf("  snapshot sizes:");
    for (int s = 0; s <= SNAPSHOTS; s++)
        printf(" %d", sizes[s]);
    printf(" (index files copied %d, built %d)\n", copied, built);
    T(sizes[SNAPSHOTS] == N_ITEMS);
    for (int s = 1; s <= SNAPSHOTS; s++)
        T(sizes[s] >= sizes[s - 1]);

    /* refusals, nothing left behind */
    char dest[1300], missing[1300];
    snprintf(dest, sizeof dest, "%s/snap0.gaze", dir);
    CHECK_STATUS_COUNTED(checks, gz_db_snapshot(path, dest, NULL), GZ_EINVAL);
    snprintf(missing, sizeof missing, "%s/none.gaze", dir);
    snprintf(dest, sizeof dest, "%s/never.gaze", dir);
    CHECK_STATUS_COUNTED(checks, gz_db_snapshot(missing, dest, NULL), GZ_ENOTFOUND);
    struct stat sb;
    T(stat(dest, &sb) != 0);
    return gz_test_finish("test_store_snapshot", checks);
}
