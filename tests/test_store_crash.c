/* test_index_crash.c - crash safety with real processes: a child inserts 5000 items in
 * batches of 50 while the parent SIGKILLs it at a random moment, 20 rounds. After each kill
 * the database opens, PRAGMA integrity_check is ok, the committed items form a whole number of
 * batches, each present exactly once with its vector, and the FAISS index agrees with SQLite
 * after the automatic rebuild. A final uninterrupted run finishes the job. Then the same
 * with a child that removes the items batch by batch (what gaze rm does), 10 rounds: what
 * remains is always whole batches, and FAISS agrees (removed vectors never found).
 *
 * The child is this executable run again with "--child" (exec, not just fork: FAISS uses
 * OpenMP, whose threads do not survive a fork). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gaze.h"
#include "testutil.h"

#define N_ITEMS 5000
#define BATCH 50
#define D 64
#define ROUNDS 20
#define ROUNDS_RM 10 /* kills during removal (gaze rm's store calls) */

static int checks;
#define T(c) CHECK_COUNTED(checks, c)
#define T_OK(e) CHECK_OK_COUNTED(checks, e)

/* The vector of item i: a deterministic unit vector, so the parent can check what it reads. */
static void item_vec(int i, float *v) {
    gz_test_xorshift_unit(0x51ed270b2f1a8c3dull ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull), v, D);
}

/* Child: insert what is missing, one transaction per batch; report each commit on fd 1. */
static int child(const char *path, int save_every_commit) {
    gz_db_params p = gz_db_default_params();
    p.save_every_commit = save_every_commit;
    gz_db *db = NULL;
    if (gz_db_open(path, &p, &db) != GZ_OK) {
        fprintf(stderr, "child: open: %s\n", gz_last_error());
        return 2;
    }
    int64_t m;
    if (gz_db_register_model(db, "crash", "clip", D, "fp-crash", &m) != GZ_OK) goto fail;
    for (int b = 0; b < N_ITEMS; b += BATCH) {
        if (gz_db_begin(db) != GZ_OK) goto fail;
        for (int i = b; i < b + BATCH; i++) {
            char name[32];
            int len = snprintf(name, sizeof name, "c%05d", i);
            gz_item old;
            gz_status st = gz_db_find_by_path(db, GZ_ITEM_IMAGE, name, (size_t)len, NULL, &old);
            gz_item_clear(&old);
            if (st == GZ_OK) continue; /* resumed: committed by an earlier run */
            if (st != GZ_ENOTFOUND) goto fail;
            gz_item it = {.kind = GZ_ITEM_IMAGE,
                          .path = name,
                          .path_len = (size_t)len,
                          .content_hash = (uint64_t)i + 1};
            float v[D];
            item_vec(i, v);
            if (gz_db_upsert_item(db, &it) != GZ_OK) goto fail;
            if (gz_db_put_embedding(db, it.id, m, v, D) != GZ_OK) goto fail;
        }
        if (gz_db_commit(db) != GZ_OK) goto fail;
        printf("%d\n", b + BATCH);
        fflush(stdout);
    }
    if (gz_db_close(db) != GZ_OK) {
        fprintf(stderr, "child: close: %s\n", gz_last_error());
        return 2;
    }
    return 0;
fail:
    fprintf(stderr, "child: %s\n", gz_last_error());
    return 2;
}

/* Child (rm): remove the items still there, the last batch first, one transaction per
 * batch; report on fd 1 how many items remain after each commit. What remains is always a
 * whole number of batches from the start, so the parent can check the committed state. */
static int child_rm(const char *path, int save_every_commit) {
    gz_db_params p = gz_db_default_params();
    p.save_every_commit = save_every_commit;
    gz_db *db = NULL;
    if (gz_db_open(path, &p, &db) != GZ_OK) {
        fprintf(stderr, "child rm: open: %s\n", gz_last_error());
        return 2;
    }
    for (int b = N_ITEMS - BATCH; b >= 0; b -= BATCH) {
        if (gz_db_begin(db) != GZ_OK) goto fail;
        for (int i = b; i < b + BATCH; i++) {
            char name[32];
            int len = snprintf(name, sizeof name, "c%05d", i);
            gz_item it;
            gz_status st = gz_db_find_by_path(db, GZ_ITEM_IMAGE, name, (size_t)len, NULL, &it);
            int64_t id = it.id;
            gz_item_clear(&it);
            if (st == GZ_ENOTFOUND) continue; /* resumed: removed by an earlier run */
            if (st != GZ_OK || gz_db_remove_item(db, id) != GZ_OK) goto fail;
        }
        if (gz_db_commit(db) != GZ_OK) goto fail;
        printf("%d\n", b);
        fflush(stdout);
    }
    if (gz_db_close(db) != GZ_OK) {
        fprintf(stderr, "child rm: close: %s\n", gz_last_error());
        return 2;
    }
    return 0;
fail:
    fprintf(stderr, "child rm: %s\n", gz_last_error());
    return 2;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Run the child; kill it after delay seconds (< 0: never). Returns the last batch end it
 * reported committed; *finished = 1 if it exited 0 on its own. */
static int run_child_as(const char *mode, const char *self, const char *path, int save_every,
                        double delay, int *finished) {
    int fds[2];
    *finished = 0;
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(self, self, mode, path, save_every ? "1" : "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    if (delay >= 0) {
        struct timespec ts = {(time_t)delay, (long)((delay - (time_t)delay) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        kill(pid, SIGKILL);
    }
    FILE *f = fdopen(fds[0], "r");
    int last = strcmp(mode, "--child-rm") == 0 ? -1 : 0, v; /* rm: -1 = nothing reported */
    while (fscanf(f, "%d", &v) == 1)
        last = v;
    fclose(f);
    int status = 0;
    waitpid(pid, &status, 0);
    *finished = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child exited with %d\n", WEXITSTATUS(status));
        gz_test_failures++;
    }
    return last;
}

static int run_child(const char *self, const char *path, int save_every, double delay,
                     int *finished) {
    return run_child_as("--child", self, path, save_every, delay, finished);
}

/* Check the database after a run; returns the number of committed items, which must be at
 * least committed_at_least and at most committed_at_most. */
static int verify_range(const char *path, int committed_at_least, int committed_at_most,
                        const char *when);
static int verify(const char *path, int committed_at_least, const char *when) {
    return verify_range(path, committed_at_least, N_ITEMS, when);
}

static int verify_range(const char *path, int committed_at_least, int committed_at_most,
                        const char *when) {
    sqlite3 *raw;
    int ok_integrity = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        /* Killed before the child created the file: nothing can have been committed. */
        T(committed_at_least == 0);
        fprintf(stderr, "%s: not created yet (%s)\n", path, when);
        return 0;
    }
    if (sqlite3_open_v2(path, &raw, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK) {
            int rc = sqlite3_step(s);
            const char *res = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
            if (res && strcmp(res, "ok") == 0)
                ok_integrity = 1;
            else /* say why: a corrupt page, or a lock the check could not get */
                fprintf(stderr, "%s: integrity_check (%s): step %d (%s), result %s\n", path, when,
                        rc, sqlite3_errmsg(raw), res ? res : "none");
            sqlite3_finalize(s);
        } else
            fprintf(stderr, "%s: integrity_check (%s): %s\n", path, when, sqlite3_errmsg(raw));
    }
    sqlite3_close(raw);
    T(ok_integrity);

    gz_db_params p = gz_db_default_params();
    gz_db *db = NULL;
    T_OK(gz_db_open(path, &p, &db)); /* rebuilds a stale/partial FAISS file */
    if (!db) return -1;
    int64_t *ids = NULL;
    size_t n = 0;
    T_OK(gz_db_list_items(db, GZ_ITEM_IMAGE, NULL, 0, -1, &ids, &n));
    int bad = 0;
    static unsigned char seen[N_ITEMS];
    memset(seen, 0, sizeof seen);
    int64_t model = 0;
    gz_db_model dm;
    if (n) {
        T_OK(gz_db_default_model(db, &dm));
        model = dm.id;
    }
    for (size_t k = 0; k < n; k++) {
        gz_item it;
        if (gz_db_get_item(db, ids[k], &it) != GZ_OK) {
            bad++;
            continue;
        }
        int i = -1;
        if (it.path_len == 6 && sscanf(it.path, "c%05d", &i) == 1 && i >= 0 && i < N_ITEMS &&
            !seen[i]) {
            seen[i] = 1;
            float want[D], got[D];
            item_vec(i, want);
            if (gz_db_get_embedding(db, it.id, model, got, D) != GZ_OK ||
                memcmp(want, got, sizeof got) != 0)
                bad++;
        } else {
            bad++; /* unknown or duplicated item */
        }
        gz_item_clear(&it);
    }
    for (size_t i = 0; i < n && i < N_ITEMS; i++)
        if (!seen[i]) bad++; /* committed items form a prefix: batches commit in order */
    if (bad || n % BATCH || (int)n < committed_at_least || (int)n > committed_at_most)
        fprintf(stderr, "%s: %zu items (child reported %d..%d committed), %d bad\n", when, n,
                committed_at_least, committed_at_most, bad);
    T(bad == 0 && n % BATCH == 0 && (int)n >= committed_at_least && (int)n <= committed_at_most);
    if (n) {
        gz_db_index_state is;
        T_OK(gz_db_index_info(db, model, GZ_ITEM_IMAGE, &is));
        T(is.n_vectors == (int64_t)n && is.file_current == 1);
        for (int t = 0; t < 10; t++) { /* each probe finds itself first */
            int i = (int)(((size_t)t * 7919u) % n);
            float v[D];
            item_vec(i, v);
            gz_hit h[3];
            int nh = 0;
            T_OK(gz_db_search(db, model, GZ_ITEM_IMAGE, v, D, 3, -1.0f, h, &nh));
            char name[32];
            gz_item it;
            snprintf(name, sizeof name, "c%05d", i);
            T(nh == 3 && gz_db_find_by_path(db, GZ_ITEM_IMAGE, name, 6, NULL, &it) == GZ_OK &&
              h[0].item_id == it.id && h[0].score > 0.9999f);
            gz_item_clear(&it);
        }
    }
    free(ids);
    T_OK(gz_db_close(db));
    return (int)n;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--child") == 0) return child(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "--child-rm") == 0) return child_rm(argv[2], atoi(argv[3]));
    char self[1024];
    if (gz_test_self_exe(self, sizeof self) != 0) return 3;
    const char *dir = gz_test_tmpdir("index-crash");
    char path[1200];
    int finished;

    /* calibrate: one uninterrupted run (also: a fresh run finishes the job) */
    snprintf(path, sizeof path, "%s/calib.gaze", dir);
    double t0 = now();
    T(run_child(self, path, 1, -1, &finished) == N_ITEMS && finished);
    double full = now() - t0;
    T(verify(path, N_ITEMS, "calibration") == N_ITEMS);
    printf("full run: %.2f s\n", full);

    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("seed %llu\n", (unsigned long long)seed);
    int db_no = 0, kills = 0, have = 0;
    snprintf(path, sizeof path, "%s/crash%d.gaze", dir, db_no);
    for (int round = 0; round < ROUNDS; round++) {
        /* a random moment within the time the remaining work should take */
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        double left = (double)(N_ITEMS - have) / N_ITEMS;
        double delay =
            (double)(seed >> 11) / 9007199254740992.0 * full * 0.9 * (left > 0.25 ? left : 0.25);
        int save_every = round % 2;
        int committed = run_child(self, path, save_every, delay, &finished);
        kills += !finished;
        char when[64];
        snprintf(when, sizeof when, "round %d (kill at %.3f s)", round, delay);
        int n = verify(path, committed, when);
        printf("round %2d: killed at %.3f s, %d committed, %d in the database%s\n", round, delay,
               committed, n, finished ? " (finished first)" : "");
        have = n;
        if (n == N_ITEMS) {
            snprintf(path, sizeof path, "%s/crash%d.gaze", dir, ++db_no);
            have = 0;
        }
    }
    T(kills >= ROUNDS / 3); /* the kills really landed mid-run */
    /* rerun finishes the job on the last (interrupted) database */
    T(run_child(self, path, 0, -1, &finished) == N_ITEMS && finished);
    T(verify(path, N_ITEMS, "final rerun") == N_ITEMS);

    /* removal (gaze rm): the same kills while a child removes batches */
    snprintf(path, sizeof path, "%s/rmcal.gaze", dir);
    T(run_child(self, path, 0, -1, &finished) == N_ITEMS && finished);
    t0 = now();
    T(run_child_as("--child-rm", self, path, 1, -1, &finished) == 0 && finished);
    double rm_full = now() - t0;
    T(verify_range(path, 0, 0, "rm calibration") == 0);
    printf("full rm run: %.2f s\n", rm_full);
    int rm_kills = 0;
    have = -1;
    for (int round = 0; round < ROUNDS_RM; round++) {
        if (have <= 0) { /* a full database to remove from */
            snprintf(path, sizeof path, "%s/rm%d.gaze", dir, round);
            T(run_child(self, path, 0, -1, &finished) == N_ITEMS && finished);
            have = N_ITEMS;
        }
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        double left = (double)have / N_ITEMS;
        double delay =
            (double)(seed >> 11) / 9007199254740992.0 * rm_full * 0.9 * (left > 0.25 ? left : 0.25);
        int remaining = run_child_as("--child-rm", self, path, round % 2, delay, &finished);
        rm_kills += !finished;
        char when[64];
        snprintf(when, sizeof when, "rm round %d (kill at %.3f s)", round, delay);
        /* at most what was there (or what the child reported left), at least what it had
           reported when killed (a batch may have committed after its last report) */
        int at_most = remaining >= 0 ? remaining : have;
        int n = verify_range(path, 0, at_most, when);
        printf("rm round %2d: killed at %.3f s, %d reported left, %d in the database%s\n", round,
               delay, remaining, n, finished ? " (finished first)" : "");
        have = n;
    }
    T(rm_kills >= ROUNDS_RM / 3);
    return gz_test_finish("test_index_crash", checks);
}
