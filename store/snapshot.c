/* snapshot.c - a consistent copy of a database and its FAISS files while writers run: SQLite's
 * online backup API, then the FAISS files of the copied generation. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "gaze.h"
#include "store/vindex.h"

#define BACKUP_RETRY_MS 50 /* wait between backup steps that met a lock */

typedef struct {
    int64_t model_id;
    int kind;
    int64_t generation;
} index_row;

/* Copy the file src to dst (created, must not exist), fsynced. */
static gz_status copy_file(const char *src, const char *dst, int64_t *bytes) {
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return errno == ENOENT ? GZ_ENOTFOUND : GZ_FAIL(GZ_EIO, "%s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (out < 0) {
        close(in);
        return GZ_FAIL(GZ_EIO, "%s: %s", dst, strerror(errno));
    }
    char buf[1 << 16];
    gz_status st = GZ_OK;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            st = GZ_FAIL(GZ_EIO, "%s: %s", src, strerror(errno));
            break;
        }
        if (n == 0) break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                st = GZ_FAIL(GZ_EIO, "%s: %s", dst, strerror(errno));
                break;
            }
            done += w;
            *bytes += w;
        }
        if (st != GZ_OK) break;
    }
    if (st == GZ_OK && fsync(out) != 0) st = GZ_FAIL(GZ_EIO, "%s: %s", dst, strerror(errno));
    close(in);
    if (close(out) != 0 && st == GZ_OK) st = GZ_FAIL(GZ_EIO, "%s: %s", dst, strerror(errno));
    if (st != GZ_OK) unlink(dst);
    return st;
}

/* The backup itself: every page of src's committed state, in one read transaction. */
static gz_status backup(const char *src_path, const char *dest_path) {
    sqlite3 *src = NULL, *dst = NULL;
    gz_status st = GZ_OK;
    if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        st = GZ_FAIL(GZ_EIO, "%s: cannot open database: %s", src_path,
                     src ? sqlite3_errmsg(src) : "out of memory");
        goto done;
    }
    sqlite3_busy_timeout(src, 10000);
    if (sqlite3_open_v2(dest_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        st = GZ_FAIL(GZ_EIO, "%s: cannot create database: %s", dest_path,
                     dst ? sqlite3_errmsg(dst) : "out of memory");
        goto done;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        st = GZ_FAIL(GZ_EIO, "%s: backup: %s", dest_path, sqlite3_errmsg(dst));
        goto done;
    }
    int rc;
    /* -1: all pages in one step, so the copy is one snapshot of the source (a WAL reader does
     * not block the writer meanwhile) */
    while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED)
        sqlite3_sleep(BACKUP_RETRY_MS);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        st =
            GZ_FAIL(GZ_EIO, "%s: backup of %s failed: %s", dest_path, src_path, sqlite3_errstr(rc));
        goto done;
    }
done:
    sqlite3_close_v2(src);
    if (dst && sqlite3_close_v2(dst) != SQLITE_OK && st == GZ_OK)
        st = GZ_FAIL(GZ_EIO, "%s: close failed", dest_path);
    return st;
}

/* A rollback-journal copy opens read-only without -wal/-shm files (replicas in read-only
 * folders); a writable gz_db_open switches it back to WAL. */
static gz_status set_journal_delete(const char *path) {
    sqlite3 *db = NULL;
    char *err = NULL;
    gz_status st = GZ_OK;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode=DELETE", NULL, NULL, &err) != SQLITE_OK)
        st = GZ_FAIL(GZ_EIO, "%s: %s", path, err ? err : db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_free(err);
    sqlite3_close_v2(db);
    return st;
}

static gz_status read_index_rows(const char *path, index_row **rows, int *n) {
    *rows = NULL;
    *n = 0;
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    gz_status st = GZ_OK;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT model_id, kind, generation FROM index_state", -1, &s,
                           NULL) != SQLITE_OK) {
        st = GZ_FAIL(GZ_ECORRUPT, "%s: no index state: %s", path,
                     db ? sqlite3_errmsg(db) : "out of memory");
        goto done;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
        index_row *r = realloc(*rows, (size_t)(*n + 1) * sizeof *r);
        if (!r) {
            st = GZ_FAIL(GZ_ENOMEM, "out of memory");
            goto done;
        }
        *rows = r;
        r[*n].model_id = sqlite3_column_int64(s, 0);
        r[*n].kind = sqlite3_column_int(s, 1);
        r[*n].generation = sqlite3_column_int64(s, 2);
        (*n)++;
    }
done:
    sqlite3_finalize(s);
    sqlite3_close_v2(db);
    return st;
}

static void faiss_path(const char *db_path, const index_row *r, char *out, size_t cap) {
    snprintf(out, cap, "%s.m%lld.%s.faiss", db_path, (long long)r->model_id,
             r->kind == GZ_ITEM_TEXT ? "text" : "image");
}

gz_status gz_db_snapshot(const char *src_path, const char *dest_path, gz_snapshot_stats *stats) {
    gz_snapshot_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!src_path || !dest_path || !*src_path || !*dest_path)
        return GZ_FAIL(GZ_EINVAL, "gz_db_snapshot: no source or destination");
    struct stat sb;
    if (stat(src_path, &sb) != 0) return GZ_FAIL(GZ_ENOTFOUND, "%s: %s", src_path, strerror(errno));
    if (lstat(dest_path, &sb) == 0)
        return GZ_FAIL(GZ_EINVAL, "%s: already exists (a snapshot goes to a new name)", dest_path);
    gz_status st = backup(src_path, dest_path);
    index_row *rows = NULL;
    int n = 0;
    if (st == GZ_OK) st = read_index_rows(dest_path, &rows, &n);
    for (int i = 0; i < n && st == GZ_OK; i++) {
        char from[4096], to[4096], tmp[4200];
        faiss_path(src_path, &rows[i], from, sizeof from);
        faiss_path(dest_path, &rows[i], to, sizeof to);
        snprintf(tmp, sizeof tmp, "%s.copy", to);
        int64_t bytes = 0;
        gz_status cs = copy_file(from, tmp, &bytes);
        if (cs == GZ_ENOTFOUND) continue; /* never saved: built below */
        if (cs != GZ_OK) {
            st = cs;
            break;
        }
        /* The writer replaces its files by rename, so the copy is one whole file; keep it only
         * if it holds the generation the database copy has. */
        gz_vx_header h;
        if (gz_vindex_peek(tmp, &h) == GZ_OK && h.generation == rows[i].generation &&
            h.model_id == rows[i].model_id && h.kind == rows[i].kind && rename(tmp, to) == 0) {
            stats->indexes_copied++;
            stats->bytes += bytes;
        } else {
            unlink(tmp);
        }
    }
    if (st == GZ_OK && stats->indexes_copied < n) {
        /* Indexes the writer had not saved at this generation: build them from the copy now,
         * so a replica loads every index instead of rebuilding it in memory. */
        gz_db_params dp = gz_db_default_params();
        gz_db *db = NULL;
        st = gz_db_open(dest_path, &dp, &db);
        if (st == GZ_OK) st = gz_db_close(db);
        stats->indexes_built = n - stats->indexes_copied;
    }
    if (st == GZ_OK) st = set_journal_delete(dest_path);
    if (st == GZ_OK && stat(dest_path, &sb) == 0) stats->bytes += sb.st_size;
    if (st != GZ_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", gz_last_error());
        unlink(dest_path);
        for (int i = 0; i < n; i++) {
            char p[4096];
            faiss_path(dest_path, &rows[i], p, sizeof p);
            unlink(p);
        }
        free(rows);
        return GZ_FAIL(st, "%s", msg);
    }
    free(rows);
    return GZ_OK;
}
