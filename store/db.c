/* db.c - the store: SQLite schema, items, models, embeddings, and keeping the FAISS indexes
 * (vindex.c) in step with SQLite through the generation counter of index_state.
 *
 * Rules that keep SQLite and FAISS consistent:
 *  - an item's vectors are in the index of (model, kind) iff the embedding exists and the
 *    item's status is OK;
 *  - the first change to (model, kind) in a transaction bumps index_state.generation; a loaded
 *    index that was current before the bump follows the changes in memory (marked txn), and
 *    becomes current at commit, or is dropped at rollback;
 *  - anything else (a loaded index of an older generation, a file whose header says another
 *    generation or factory, a checksum failure) is rebuilt from SQLite, never trusted. */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"
#include "core/fileio.h"
#include "gaze.h"
#include "store/tokens.h"
#include "store/vindex.h"

#define DB_SCHEMA_VERSION 3
/* The oldest schema a read-only open reads as it is: schema 3 only added the tokens table, so
 * a search on a library that no writable gaze has opened yet works, without stored tokens. */
#define DB_SCHEMA_READABLE 2
#define DB_SCHEMA_TOKENS 3           /* the first schema with the tokens table */
#define DB_APPLICATION_ID 0x47415a45 /* "GAZE" */
#define DB_MAX_DIM 65536
#define DB_DEFAULT_FACTORY "Flat"
#define DB_REBUILD_CHUNK 8192     /* vectors added to FAISS per call during a rebuild */
#define DB_DEAD_REBUILD_SHARE 0.2 /* rebuild before saving once this share is dead */
#define DB_NOTICE_MAX 16384

typedef struct {
    int64_t model_id;
    int kind;
} touched_key;

/* A gz_db_coverage answer, good while the database is unchanged: its query visits every item
 * of the kind (25 ms at 100k items) and every search asks it. Keyed by SQLite's data_version
 * (moves when another connection commits) and this connection's total changes; never kept
 * inside a transaction, whose changes may roll back. */
typedef struct {
    int valid, kind;
    int64_t model_id, data_version, changes, covered, total;
} coverage_memo;

struct gz_db {
    sqlite3 *sql;
    char *path;
    gz_db_params params;
    char factory[GZ_VX_FACTORY_MAX]; /* copy of params.factory ("" = keep stored) */
    int bad_factory_noted;           /* 1 once an invalid stored factory was reported */
    int in_txn;                      /* inside gz_db_begin .. commit/rollback or an implicit one */
    int schema;                      /* the database's schema version once opened */
    gz_vindex **vx;                  /* loaded indexes */
    size_t n_vx, cap_vx;
    touched_key *touched; /* (model, kind) changed in the open transaction */
    size_t n_touched, cap_touched;
    char *notices; /* pending notices, '\n'-joined */
    size_t notices_len;
    char *notice_out;  /* returned by gz_db_notice */
    coverage_memo cov; /* the last gz_db_coverage answer */
};

/* ---------------------------------------------------------------- helpers */

static gz_status sql_fail(gz_db *db, const char *what) {
    return GZ_FAIL(GZ_EIO, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->sql));
}

static gz_status exec(gz_db *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db->sql, sql, NULL, NULL, &err) != SQLITE_OK) {
        gz_status st = GZ_FAIL(GZ_EIO, "%s: %s: %s", db->path, sql, err ? err : "?");
        sqlite3_free(err);
        return st;
    }
    return GZ_OK;
}

static gz_status prep(gz_db *db, sqlite3_stmt **s, const char *sql) {
    if (sqlite3_prepare_v2(db->sql, sql, -1, s, NULL) != SQLITE_OK) {
        *s = NULL;
        return sql_fail(db, sql);
    }
    return GZ_OK;
}

/* Run a statement that returns no rows (or whose rows we ignore), then finalize it. */
static gz_status step_done(gz_db *db, sqlite3_stmt *s) {
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    }
    gz_status st = rc == SQLITE_DONE ? GZ_OK : sql_fail(db, sqlite3_sql(s));
    sqlite3_finalize(s);
    return st;
}

static void note(gz_db *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(gz_db *db, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (db->params.notice) db->params.notice(db->params.notice_user, msg);
    size_t len = strlen(msg);
    if (db->notices_len + len + 2 > DB_NOTICE_MAX) return; /* keep the first ones */
    char *p = realloc(db->notices, db->notices_len + len + 2);
    if (!p) return;
    db->notices = p;
    if (db->notices_len) p[db->notices_len++] = '\n';
    memcpy(p + db->notices_len, msg, len + 1);
    db->notices_len += len;
}

static const char *kind_name(int kind) { return kind == GZ_ITEM_TEXT ? "text" : "image"; }

static gz_status check_kind(int kind) {
    if (kind != GZ_ITEM_IMAGE && kind != GZ_ITEM_TEXT)
        return GZ_FAIL(GZ_EINVAL, "item kind %d is neither image (1) nor text (2)", kind);
    return GZ_OK;
}

static void index_path(const gz_db *db, int64_t model_id, int kind, char *out, size_t cap) {
    snprintf(out, cap, "%s.m%lld.%s.faiss", db->path, (long long)model_id, kind_name(kind));
}

static gz_status need_writable(gz_db *db) {
    if (db->params.readonly) return GZ_FAIL(GZ_EINVAL, "%s: database is open read-only", db->path);
    return GZ_OK;
}

/* ------------------------------------------------------- loaded indexes */

static gz_vindex *vx_find(gz_db *db, int64_t model_id, int kind, size_t *at) {
    for (size_t i = 0; i < db->n_vx; i++)
        if (db->vx[i]->model_id == model_id && db->vx[i]->kind == kind) {
            if (at) *at = i;
            return db->vx[i];
        }
    return NULL;
}

static void vx_drop(gz_db *db, int64_t model_id, int kind) {
    size_t at;
    gz_vindex *v = vx_find(db, model_id, kind, &at);
    if (!v) return;
    gz_vindex_free(v);
    db->vx[at] = db->vx[--db->n_vx];
}

static gz_status vx_put(gz_db *db, gz_vindex *v) { /* takes ownership */
    vx_drop(db, v->model_id, v->kind);
    if (db->n_vx == db->cap_vx) {
        size_t ncap = db->cap_vx ? db->cap_vx * 2 : 4;
        gz_vindex **p = realloc(db->vx, ncap * sizeof *p);
        if (!p) {
            gz_vindex_free(v);
            return GZ_FAIL(GZ_ENOMEM, "out of memory");
        }
        db->vx = p;
        db->cap_vx = ncap;
    }
    db->vx[db->n_vx++] = v;
    return GZ_OK;
}

static int is_touched(const gz_db *db, int64_t model_id, int kind) {
    for (size_t i = 0; i < db->n_touched; i++)
        if (db->touched[i].model_id == model_id && db->touched[i].kind == kind) return 1;
    return 0;
}

/* ----------------------------------------------------------- transactions */

static gz_status txn_begin(gz_db *db, int immediate) {
    gz_status st = exec(db, immediate ? "BEGIN IMMEDIATE" : "BEGIN");
    if (st == GZ_OK) {
        db->in_txn = 1;
        db->n_touched = 0;
    }
    return st;
}

static void txn_after_rollback(gz_db *db) {
    for (size_t i = 0; i < db->n_vx;) { /* indexes holding rolled-back changes */
        if (db->vx[i]->txn) {
            gz_vindex_free(db->vx[i]);
            db->vx[i] = db->vx[--db->n_vx];
        } else {
            i++;
        }
    }
    db->n_touched = 0;
    db->in_txn = 0;
}

static gz_status txn_rollback(gz_db *db) {
    gz_status st = GZ_OK;
    if (!sqlite3_get_autocommit(db->sql)) {
        char *err = NULL;
        if (sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, &err) != SQLITE_OK)
            st = GZ_FAIL(GZ_EIO, "%s: ROLLBACK: %s", db->path, err ? err : "?");
        sqlite3_free(err);
    }
    txn_after_rollback(db);
    return st;
}

static gz_status save_one(gz_db *db, gz_vindex *v);

static gz_status txn_commit(gz_db *db) {
    gz_status st = exec(db, "COMMIT");
    if (st != GZ_OK) {
        gz_status keep = st;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", gz_last_error());
        txn_rollback(db);
        return GZ_FAIL(keep, "%s", msg);
    }
    db->in_txn = 0;
    db->n_touched = 0;
    gz_status save_st = GZ_OK;
    for (size_t i = 0; i < db->n_vx; i++) {
        gz_vindex *v = db->vx[i];
        if (!v->txn) continue;
        v->txn = 0;
        v->dirty = 1;
        if (db->params.save_every_commit && !db->params.readonly) {
            gz_status s2 = save_one(db, v);
            if (s2 != GZ_OK && save_st == GZ_OK) save_st = s2;
        }
    }
    return save_st; /* the batch is committed either way; a failed save only costs a rebuild */
}

/* Writes outside gz_db_begin run in their own transaction: wbegin/wend bracket them. */
static gz_status wbegin(gz_db *db, int *implicit) {
    *implicit = 0;
    gz_status st = need_writable(db);
    if (st != GZ_OK || db->in_txn) return st;
    *implicit = 1;
    return txn_begin(db, 1);
}

/* End the transaction txn_begin opened: commit when st is GZ_OK, else roll back and return st
 * with the message that caused it (not the rollback's). */
static gz_status txn_end(gz_db *db, gz_status st) {
    if (st != GZ_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", gz_last_error());
        txn_rollback(db);
        return GZ_FAIL(st, "%s", msg);
    }
    return txn_commit(db);
}

static gz_status wend(gz_db *db, int implicit, gz_status st) {
    if (!implicit) return st;
    return txn_end(db, st);
}

gz_status gz_db_begin(gz_db *db) {
    gz_status st = need_writable(db);
    if (st != GZ_OK) return st;
    if (db->in_txn) return GZ_FAIL(GZ_EINVAL, "%s: a batch is already open", db->path);
    return txn_begin(db, 1);
}

gz_status gz_db_begin_read(gz_db *db) {
    if (db->in_txn) return GZ_FAIL(GZ_EINVAL, "%s: a batch is already open", db->path);
    return txn_begin(db, 0);
}

int gz_db_in_batch(const gz_db *db) { return db->in_txn; }

gz_status gz_db_commit(gz_db *db) {
    if (!db->in_txn) return GZ_FAIL(GZ_EINVAL, "%s: no batch is open", db->path);
    return txn_commit(db);
}

gz_status gz_db_rollback(gz_db *db) {
    if (!db->in_txn) return GZ_FAIL(GZ_EINVAL, "%s: no batch is open", db->path);
    return txn_rollback(db);
}

/* ------------------------------------------------------------------ schema */

static const char *const SCHEMA_V1 =
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
    /* a rowid table: rows of 1-3 KiB make a WITHOUT ROWID b-tree 2-4x larger */
    "CREATE TABLE embeddings(item_id INTEGER NOT NULL, model_id INTEGER NOT NULL,"
    " vec BLOB NOT NULL, PRIMARY KEY(item_id, model_id));"
    "CREATE INDEX embeddings_model ON embeddings(model_id, item_id);"
    "CREATE TABLE index_state(model_id INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " generation INTEGER NOT NULL, factory TEXT NOT NULL, PRIMARY KEY(model_id, kind));";

/* Schema 2: a model's Hugging Face Hub origin (repository id, revision asked, commit), NULL
 * for a model registered from a folder. */
static const char *const SCHEMA_V2 = "ALTER TABLE models ADD COLUMN hub_id TEXT;"
                                     "ALTER TABLE models ADD COLUMN hub_revision TEXT;"
                                     "ALTER TABLE models ADD COLUMN hub_commit TEXT;";

/* Schema 3: final vision token states kept by `gaze index --keep-tokens` for re-ranking
 * without the vision tower (store/tokens.h has the blob layouts). A row exists only beside the
 * (item, model) embedding it was encoded with, written in the same transaction. */
static const char *const SCHEMA_V3 =
    "CREATE TABLE tokens(item_id INTEGER NOT NULL, model_id INTEGER NOT NULL,"
    " format INTEGER NOT NULL, n_tokens INTEGER NOT NULL, dim INTEGER NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY(item_id, model_id));";

/* Migrations: entry v takes schema v to v + 1. Add one per schema change; never edit one. */
static const char *const MIGRATIONS[DB_SCHEMA_VERSION] = {SCHEMA_V1, SCHEMA_V2, SCHEMA_V3};

static gz_status pragma_int(gz_db *db, const char *sql, int64_t *out) {
    sqlite3_stmt *s;
    gz_status st = prep(db, &s, sql);
    if (st != GZ_OK) return st;
    if (sqlite3_step(s) == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else
        st = sql_fail(db, sql);
    sqlite3_finalize(s);
    return st;
}

static gz_status migrate(gz_db *db) {
    int64_t version = 0, app = 0, n_tables = 0;
    gz_status st = pragma_int(db, "PRAGMA user_version", &version);
    if (st == GZ_OK) st = pragma_int(db, "PRAGMA application_id", &app);
    if (st == GZ_OK) st = pragma_int(db, "SELECT count(*) FROM sqlite_master", &n_tables);
    if (st != GZ_OK) return st;
    if (version > DB_SCHEMA_VERSION)
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "%s: written by a newer gaze (schema %lld > %d): upgrade gaze to use it",
                       db->path, (long long)version, DB_SCHEMA_VERSION);
    if ((app != 0 && app != DB_APPLICATION_ID) || (version == 0 && n_tables > 0))
        return GZ_FAIL(GZ_ECORRUPT, "%s: an SQLite file that is not a gaze database", db->path);
    db->schema = (int)version;
    if (version == DB_SCHEMA_VERSION) return GZ_OK;
    if (db->params.readonly && version >= DB_SCHEMA_READABLE) return GZ_OK;
    if (db->params.readonly)
        return GZ_FAIL(GZ_EUNSUPPORTED, "%s: schema %lld needs migrating to %d; open it writable",
                       db->path, (long long)version, DB_SCHEMA_VERSION);
    if ((st = txn_begin(db, 1)) != GZ_OK) return st;
    /* Re-read inside the write lock: another process may have migrated meanwhile. */
    st = pragma_int(db, "PRAGMA user_version", &version);
    for (int64_t v = version; st == GZ_OK && v < DB_SCHEMA_VERSION; v++) {
        st = exec(db, MIGRATIONS[v]);
        if (st != GZ_OK)
            gz_error_prefix(st, "migrating schema %lld -> %lld", (long long)v, (long long)v + 1);
    }
    if (st == GZ_OK) {
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
                 DB_SCHEMA_VERSION, DB_APPLICATION_ID);
        st = exec(db, sql);
    }
    if (st == GZ_OK) db->schema = DB_SCHEMA_VERSION;
    return txn_end(db, st);
}

int gz_db_schema_version(void) { return DB_SCHEMA_VERSION; }

/* ------------------------------------------------------------ open / close */

gz_db_params gz_db_default_params(void) {
    gz_db_params p;
    memset(&p, 0, sizeof p);
    p.hnsw_ef_search = 128;
    p.ivf_nprobe = 16;
    p.busy_timeout_ms = 10000;
    return p;
}

static gz_status sync_indexes(gz_db *db);
static gz_status repair_factories(gz_db *db);

/* Remove temporary index files left by killed processes (those whose pid is gone). */
static void clean_temp_files(gz_db *db) {
    char pat[PATH_MAX + 32];
    snprintf(pat, sizeof pat, "%s.m*.faiss.tmp.*", db->path);
    glob_t g;
    if (glob(pat, GLOB_NOSORT, NULL, &g) != 0) return;
    size_t plen = strlen(db->path);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (strncmp(g.gl_pathv[i], db->path, plen) != 0) continue; /* glob characters in path */
        const char *dot = strrchr(g.gl_pathv[i], '.');
        long pid = dot ? strtol(dot + 1, NULL, 10) : 0;
        if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            unlink(g.gl_pathv[i]);
    }
    globfree(&g);
}

gz_status gz_db_open(const char *path, const gz_db_params *params, gz_db **out) {
    *out = NULL;
    if (!path || !*path) return GZ_FAIL(GZ_EINVAL, "database path is empty");
    gz_db *db = calloc(1, sizeof *db);
    if (!db) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    db->params = params ? *params : gz_db_default_params();
    db->path = strdup(path);
    if (!db->path) {
        free(db);
        return GZ_FAIL(GZ_ENOMEM, "out of memory");
    }
    gz_status st = GZ_OK;
    if (db->params.factory) {
        /* validated before anything is opened or stored */
        if ((st = gz_db_check_factory(db->params.factory, 0)) != GZ_OK) goto fail;
        snprintf(db->factory, sizeof db->factory, "%s", db->params.factory);
    }
    db->params.factory = NULL; /* the caller's string is not kept */
    int flags =
        db->params.readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &db->sql, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        st = GZ_FAIL(GZ_EIO, "%s: cannot open database: %s", path,
                     db->sql ? sqlite3_errmsg(db->sql) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(db->sql,
                         db->params.busy_timeout_ms > 0 ? db->params.busy_timeout_ms : 10000);
    sqlite3_extended_result_codes(db->sql, 0);
    /* A database file can come from someone else (a shared folder, a copied library): it is
     * input. Defensive mode refuses the statements that can corrupt it (writable_schema,
     * journal_mode=OFF...); with trusted_schema off the schema cannot call functions with side
     * effects; and gaze's schema has no triggers or views, so those in a planted file never run
     * (a trigger would otherwise execute its SQL inside gaze's own writes). */
    if (sqlite3_db_config(db->sql, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL) != SQLITE_OK ||
        sqlite3_db_config(db->sql, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL) != SQLITE_OK ||
        sqlite3_db_config(db->sql, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)NULL) != SQLITE_OK ||
        sqlite3_db_config(db->sql, SQLITE_DBCONFIG_ENABLE_VIEW, 0, (int *)NULL) != SQLITE_OK) {
        st = GZ_FAIL(GZ_EIO, "%s: cannot configure SQLite: %s", path, sqlite3_errmsg(db->sql));
        goto fail;
    }
    if (!db->params.readonly) {
        /* WAL: readers and one writer at a time; NORMAL sync is safe against process crashes
         * (a commit is durable once written to the WAL). */
        /* 16 KiB pages hold 1-3 KiB vectors with ~10% slack (4 KiB: up to 2x); a no-op for
         * an existing database. Must precede WAL, which fixes the page size. */
        if ((st = exec(db, "PRAGMA page_size=16384")) != GZ_OK) goto fail;
        if ((st = exec(db, "PRAGMA journal_mode=WAL")) != GZ_OK) goto fail;
        if ((st = exec(db, "PRAGMA synchronous=NORMAL")) != GZ_OK) goto fail;
    }
    if ((st = migrate(db)) != GZ_OK) goto fail;
    if (!db->params.readonly) {
        clean_temp_files(db);
        if ((st = repair_factories(db)) != GZ_OK) goto fail;
        if (db->factory[0]) {
            sqlite3_stmt *s;
            if ((st = prep(db, &s, "UPDATE index_state SET factory = ?1 WHERE factory != ?1")) !=
                GZ_OK)
                goto fail;
            sqlite3_bind_text(s, 1, db->factory, -1, SQLITE_STATIC);
            if ((st = step_done(db, s)) != GZ_OK) goto fail;
        }
        if ((st = sync_indexes(db)) != GZ_OK) goto fail;
    }
    *out = db;
    return GZ_OK;
fail:;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", gz_last_error());
    if (db->sql) sqlite3_close_v2(db->sql);
    for (size_t i = 0; i < db->n_vx; i++)
        gz_vindex_free(db->vx[i]);
    free(db->vx);
    free(db->touched);
    free(db->path);
    free(db->notices);
    free(db);
    return GZ_FAIL(st, "%s", msg);
}

gz_status gz_db_close(gz_db *db) {
    if (!db) return GZ_OK;
    gz_status st = GZ_OK;
    if (db->in_txn) txn_rollback(db);
    if (!db->params.readonly) st = sync_indexes(db);
    for (size_t i = 0; i < db->n_vx; i++)
        gz_vindex_free(db->vx[i]);
    free(db->vx);
    free(db->touched);
    if (sqlite3_close_v2(db->sql) != SQLITE_OK && st == GZ_OK)
        st = GZ_FAIL(GZ_EIO, "%s: close failed", db->path);
    free(db->path);
    free(db->notices);
    free(db->notice_out);
    free(db);
    return st;
}

const char *gz_db_notice(gz_db *db) {
    free(db->notice_out);
    db->notice_out = db->notices;
    db->notices = NULL;
    db->notices_len = 0;
    return db->notice_out;
}

/* ------------------------------------------------------------------ models */

static void fill_model(sqlite3_stmt *s, gz_db_model *m) {
    /* columns: id, name, family, dim, fingerprint, last_used, n_embeddings */
    memset(m, 0, sizeof *m);
    m->id = sqlite3_column_int64(s, 0);
    snprintf(m->name, sizeof m->name, "%s", (const char *)sqlite3_column_text(s, 1));
    snprintf(m->family, sizeof m->family, "%s", (const char *)sqlite3_column_text(s, 2));
    m->dim = sqlite3_column_int(s, 3);
    snprintf(m->fingerprint, sizeof m->fingerprint, "%s", (const char *)sqlite3_column_text(s, 4));
    m->last_used = sqlite3_column_int64(s, 5);
    m->n_embeddings = sqlite3_column_int64(s, 6);
    /* hub columns: NULL for a folder */
    const char *hub[3] = {(const char *)sqlite3_column_text(s, 7),
                          (const char *)sqlite3_column_text(s, 8),
                          (const char *)sqlite3_column_text(s, 9)};
    snprintf(m->hub_id, sizeof m->hub_id, "%s", hub[0] ? hub[0] : "");
    snprintf(m->hub_revision, sizeof m->hub_revision, "%s", hub[1] ? hub[1] : "");
    snprintf(m->hub_commit, sizeof m->hub_commit, "%s", hub[2] ? hub[2] : "");
}

#define MODEL_COLS                                                                                 \
    "SELECT id, name, family, dim, fingerprint, last_used,"                                        \
    " (SELECT count(*) FROM embeddings e WHERE e.model_id = models.id),"                           \
    " hub_id, hub_revision, hub_commit FROM models "

_Static_assert(sizeof(((gz_db_model *)0)->hub_id) == GZ_HUB_ID_MAX &&
                   sizeof(((gz_db_model *)0)->hub_revision) == GZ_HUB_REV_MAX &&
                   sizeof(((gz_db_model *)0)->hub_commit) == GZ_HUB_COMMIT_LEN + 1,
               "gz_db_model's hub arrays follow the Hub section's sizes");

gz_status gz_db_register_model(gz_db *db, const char *name, const char *family, int dim,
                               const char *fingerprint, int64_t *model_id) {
    return gz_db_register_model_hub(db, name, family, dim, fingerprint, NULL, NULL, NULL, model_id);
}

gz_status gz_db_register_model_hub(gz_db *db, const char *name, const char *family, int dim,
                                   const char *fingerprint, const char *hub_id,
                                   const char *hub_revision, const char *hub_commit,
                                   int64_t *model_id) {
    if (!name || !family || !fingerprint || !*fingerprint || dim <= 0 || dim > DB_MAX_DIM)
        return GZ_FAIL(GZ_EINVAL,
                       "register model: need name, family, fingerprint and 0 < dim <= %d",
                       DB_MAX_DIM);
    if (strlen(name) >= sizeof(((gz_db_model *)0)->name) || strlen(family) >= 32 ||
        strlen(fingerprint) >= 65)
        return GZ_FAIL(GZ_EINVAL, "register model: name, family or fingerprint too long");
    if (hub_id && !*hub_id) hub_id = NULL;
    if (hub_id &&
        (!hub_revision || !hub_commit || strlen(hub_id) >= GZ_HUB_ID_MAX ||
         strlen(hub_revision) >= GZ_HUB_REV_MAX || strlen(hub_commit) > GZ_HUB_COMMIT_LEN))
        return GZ_FAIL(GZ_EINVAL,
                       "register model %s: Hub id, revision or commit missing or too "
                       "long",
                       name);
    int implicit;
    gz_status st = wbegin(db, &implicit);
    if (st != GZ_OK) return st;
    sqlite3_stmt *s = NULL;
    int64_t id = 0, old_dim = 0;
    st = prep(db, &s, "SELECT id, dim FROM models WHERE fingerprint = ?");
    if (st == GZ_OK) {
        sqlite3_bind_text(s, 1, fingerprint, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            id = sqlite3_column_int64(s, 0);
            old_dim = sqlite3_column_int64(s, 1);
        } else if (rc != SQLITE_DONE) {
            st = sql_fail(db, "find model");
        }
        sqlite3_finalize(s);
    }
    if (st == GZ_OK && id && old_dim != dim)
        st = GZ_FAIL(GZ_EINVAL, "%s: model %s is registered with dim %lld, not %d", db->path,
                     fingerprint, (long long)old_dim, dim);
    if (st == GZ_OK) {
        st = prep(
            db, &s,
            id ? "UPDATE models SET name = ?1, family = ?2, last_used = ?4,"
                 " use_seq = (SELECT coalesce(max(use_seq), 0) + 1 FROM models),"
                 " hub_id = ?7, hub_revision = ?8, hub_commit = ?9 WHERE id = ?5"
               : "INSERT INTO models(name, family, dim, fingerprint, created, last_used, use_seq,"
                 " hub_id, hub_revision, hub_commit) VALUES(?1, ?2, ?3, ?6, ?4, ?4,"
                 " (SELECT coalesce(max(use_seq), 0) + 1 FROM models), ?7, ?8, ?9)");
        if (st == GZ_OK) {
            sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, family, -1, SQLITE_STATIC);
            if (!id) sqlite3_bind_int(s, 3, dim);
            sqlite3_bind_int64(s, 4, (int64_t)time(NULL));
            if (id)
                sqlite3_bind_int64(s, 5, id);
            else
                sqlite3_bind_text(s, 6, fingerprint, -1, SQLITE_STATIC);
            if (hub_id) { /* unbound parameters are NULL: no Hub origin */
                sqlite3_bind_text(s, 7, hub_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 8, hub_revision, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 9, hub_commit, -1, SQLITE_STATIC);
            }
            st = step_done(db, s);
            if (st == GZ_OK && !id) id = sqlite3_last_insert_rowid(db->sql);
        }
    }
    st = wend(db, implicit, st);
    if (st == GZ_OK) *model_id = id;
    return st;
}

gz_status gz_db_adopt_fingerprint(gz_db *db, const char *legacy, const char *fresh, int *adopted) {
    if (adopted) *adopted = 0;
    if (!legacy || !fresh || !*legacy || !*fresh || strlen(legacy) >= 65 || strlen(fresh) >= 65)
        return GZ_FAIL(GZ_EINVAL, "adopt fingerprint: bad fingerprint");
    if (strcmp(legacy, fresh) == 0) return GZ_OK;
    int implicit;
    gz_status st = wbegin(db, &implicit);
    if (st != GZ_OK) return st;
    sqlite3_stmt *s = NULL;
    int has_fresh = 0;
    st = prep(db, &s, "SELECT 1 FROM models WHERE fingerprint = ?");
    if (st == GZ_OK) {
        sqlite3_bind_text(s, 1, fresh, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        has_fresh = rc == SQLITE_ROW;
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = sql_fail(db, "find model");
        sqlite3_finalize(s);
    }
    if (st == GZ_OK && !has_fresh) {
        st = prep(db, &s, "UPDATE models SET fingerprint = ?1 WHERE fingerprint = ?2");
        if (st == GZ_OK) {
            sqlite3_bind_text(s, 1, fresh, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, legacy, -1, SQLITE_STATIC);
            st = step_done(db, s);
            if (st == GZ_OK && adopted) *adopted = sqlite3_changes(db->sql) > 0;
        }
    }
    if (st == GZ_OK && adopted && *adopted) { /* the preprocessing record follows the model */
        st = prep(db, &s,
                  "UPDATE meta SET key = 'preprocess.' || ?1 WHERE key = 'preprocess.' || ?2");
        if (st == GZ_OK) {
            sqlite3_bind_text(s, 1, fresh, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, legacy, -1, SQLITE_STATIC);
            st = step_done(db, s);
        }
    }
    return wend(db, implicit, st);
}

gz_status gz_db_models(gz_db *db, gz_db_model **out, int *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s;
    gz_status st = prep(db, &s, MODEL_COLS "ORDER BY use_seq DESC, id DESC");
    if (st != GZ_OK) return st;
    gz_db_model *list = NULL;
    int cnt = 0, cap = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 4;
            gz_db_model *p = realloc(list, (size_t)cap * sizeof *p);
            if (!p) {
                st = GZ_FAIL(GZ_ENOMEM, "out of memory listing models");
                break;
            }
            list = p;
        }
        fill_model(s, &list[cnt++]);
    }
    if (st == GZ_OK && rc != SQLITE_DONE) st = sql_fail(db, "list models");
    sqlite3_finalize(s);
    if (st != GZ_OK) {
        free(list);
        return st;
    }
    *out = list;
    *n = cnt;
    return GZ_OK;
}

static gz_status model_query(gz_db *db, const char *sql, int64_t id, gz_db_model *out) {
    sqlite3_stmt *s;
    gz_status st = prep(db, &s, sql);
    if (st != GZ_OK) return st;
    if (id) sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        fill_model(s, out);
    else if (rc == SQLITE_DONE)
        st = id ? GZ_FAIL(GZ_ENOTFOUND, "%s: no model with id %lld", db->path, (long long)id)
                : GZ_FAIL(GZ_ENOTFOUND, "%s: no model registered yet", db->path);
    else
        st = sql_fail(db, "read model");
    sqlite3_finalize(s);
    return st;
}

gz_status gz_db_default_model(gz_db *db, gz_db_model *out) {
    return model_query(db, MODEL_COLS "ORDER BY use_seq DESC, id DESC LIMIT 1", 0, out);
}

gz_status gz_db_get_model(gz_db *db, int64_t model_id, gz_db_model *out) {
    if (model_id <= 0)
        return GZ_FAIL(GZ_ENOTFOUND, "%s: no model with id %lld", db->path, (long long)model_id);
    return model_query(db, MODEL_COLS "WHERE id = ?1", model_id, out);
}

static gz_status model_dim(gz_db *db, int64_t model_id, int *dim) {
    sqlite3_stmt *s;
    gz_status st = prep(db, &s, "SELECT dim FROM models WHERE id = ?");
    if (st != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *dim = sqlite3_column_int(s, 0);
    else if (rc == SQLITE_DONE)
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: no model with id %lld", db->path, (long long)model_id);
    else
        st = sql_fail(db, "model dim");
    sqlite3_finalize(s);
    return st;
}

/* ------------------------------------------------------- index maintenance */

/* The factory to build: the one this session asked for, else the stored one; a stored string
 * gaze cannot build (written before factories were validated) reads as the default. */
static const char *requested_factory(gz_db *db, const char *stored) {
    if (db->factory[0]) return db->factory;
    char why[160];
    if (!stored || !*stored) return DB_DEFAULT_FACTORY;
    if (!gz_vindex_check_factory(stored, 0, why, sizeof why)) {
        if (!db->bad_factory_noted)
            note(db, "index type '%s' stored in %s is not valid (%s): using %s", stored, db->path,
                 why, DB_DEFAULT_FACTORY);
        db->bad_factory_noted = 1;
        return DB_DEFAULT_FACTORY;
    }
    return stored;
}

gz_status gz_db_check_factory(const char *factory, int dim) {
    char why[160];
    if (gz_vindex_check_factory(factory, dim, why, sizeof why)) return GZ_OK;
    return GZ_FAIL(GZ_EINVAL, "index type '%s': %s; valid forms: %s", factory ? factory : "", why,
                   GZ_VX_FACTORY_FORMS);
}

/* Replace every stored factory string gaze cannot build by the default, with a notice: such a
 * string made every later command fail before factories were validated. */
static gz_status repair_factories(gz_db *db) {
    sqlite3_stmt *s;
    gz_status st = prep(db, &s, "SELECT DISTINCT factory FROM index_state");
    if (st != GZ_OK) return st;
    char bad[8][GZ_VX_FACTORY_MAX];
    int n_bad = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && n_bad < 8) {
        const char *f = (const char *)sqlite3_column_text(s, 0);
        char why[160];
        if (!gz_vindex_check_factory(f, 0, why, sizeof why)) {
            snprintf(bad[n_bad++], GZ_VX_FACTORY_MAX, "%s", f ? f : "");
            note(db, "index type '%s' stored in %s is not valid (%s): using %s", f ? f : "",
                 db->path, why, DB_DEFAULT_FACTORY);
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = sql_fail(db, "read index_state");
    sqlite3_finalize(s);
    for (int i = 0; i < n_bad && st == GZ_OK; i++) {
        if ((st = prep(db, &s, "UPDATE index_state SET factory = ?1 WHERE factory = ?2")) != GZ_OK)
            break;
        sqlite3_bind_text(s, 1, DB_DEFAULT_FACTORY, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, bad[i], -1, SQLITE_STATIC);
        st = step_done(db, s);
    }
    return st;
}

/* index_state of (model, kind): *exists = 0 if no row. factory must hold GZ_VX_FACTORY_MAX. */
static gz_status read_state(gz_db *db, int64_t model_id, int kind, int *exists, int64_t *gen,
                            char *factory) {
    sqlite3_stmt *s;
    gz_status st =
        prep(db, &s, "SELECT generation, factory FROM index_state WHERE model_id = ? AND kind = ?");
    if (st != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    sqlite3_bind_int(s, 2, kind);
    int rc = sqlite3_step(s);
    *exists = 0;
    *gen = 0;
    factory[0] = '\0';
    if (rc == SQLITE_ROW) {
        *exists = 1;
        *gen = sqlite3_column_int64(s, 0);
        snprintf(factory, GZ_VX_FACTORY_MAX, "%s", (const char *)sqlite3_column_text(s, 1));
    } else if (rc != SQLITE_DONE) {
        st = sql_fail(db, "read index_state");
    }
    sqlite3_finalize(s);
    return st;
}

#define LIVE_VECS                                                                                  \
    " FROM embeddings e JOIN items i ON i.id = e.item_id"                                          \
    " WHERE e.model_id = ?1 AND i.kind = ?2 AND i.status = 0"

/* Build the index of (model, kind) from SQLite as of the current read snapshot. */
static gz_status build_from_sql(gz_db *db, int64_t model_id, int kind, const char *factory,
                                int64_t gen, gz_vindex **out) {
    *out = NULL;
    int dim;
    gz_status st = model_dim(db, model_id, &dim);
    if (st != GZ_OK) return st;
    int64_t count = 0;
    sqlite3_stmt *s;
    if ((st = prep(db, &s, "SELECT count(*)" LIVE_VECS)) != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    sqlite3_bind_int(s, 2, kind);
    if (sqlite3_step(s) == SQLITE_ROW)
        count = sqlite3_column_int64(s, 0);
    else
        st = sql_fail(db, "count vectors");
    sqlite3_finalize(s);
    if (st != GZ_OK) return st;

    size_t row_bytes = (size_t)dim * sizeof(float);
    float *train = NULL;
    size_t n_train = 0;
    size_t min_train = gz_vindex_min_train(factory);
    if (min_train && (size_t)count >= min_train) {
        /* Training sample: every stride-th vector, at most 256 per centroid as FAISS uses. */
        size_t cap = min_train / 39 * 256, stride = 1;
        if ((size_t)count > cap) stride = ((size_t)count + cap - 1) / cap;
        size_t bytes;
        if (!gz_mul_size((size_t)count / stride + 1, row_bytes, &bytes))
            return GZ_FAIL(GZ_ENOMEM, "training sample too large");
        train = malloc(bytes);
        if (!train) return GZ_FAIL(GZ_ENOMEM, "out of memory for the training sample");
        if ((st = prep(db, &s, "SELECT e.vec" LIVE_VECS " ORDER BY e.item_id")) != GZ_OK) {
            free(train);
            return st;
        }
        sqlite3_bind_int64(s, 1, model_id);
        sqlite3_bind_int(s, 2, kind);
        size_t row = 0;
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            if (row++ % stride) continue;
            if ((size_t)sqlite3_column_bytes(s, 0) != row_bytes) {
                st = GZ_FAIL(GZ_ECORRUPT, "%s: a stored vector has %d bytes, want %zu", db->path,
                             sqlite3_column_bytes(s, 0), row_bytes);
                break;
            }
            memcpy(train + n_train * dim, sqlite3_column_blob(s, 0), row_bytes);
            n_train++;
        }
        if (st == GZ_OK && rc != SQLITE_DONE) st = sql_fail(db, "read training vectors");
        sqlite3_finalize(s);
        if (st != GZ_OK) {
            free(train);
            return st;
        }
    }
    int fell_back = 0;
    gz_vindex *v = NULL;
    st = gz_vindex_create(model_id, kind, dim, factory, train, n_train, &fell_back, &v);
    free(train);
    if (st != GZ_OK) return st;
    if (fell_back == 2)
        note(db, "index of model %lld %ss: '%s' does not suit embeddings of %d floats: using Flat",
             (long long)model_id, kind_name(kind), factory, dim);
    else if (fell_back)
        note(db,
             "index of model %lld %ss: '%s' needs %zu vectors to train, %lld stored: using "
             "Flat for now",
             (long long)model_id, kind_name(kind), factory, min_train, (long long)count);
    v->gen = gen;

    float *chunk = malloc(DB_REBUILD_CHUNK * row_bytes);
    int64_t *ids = malloc(DB_REBUILD_CHUNK * sizeof *ids);
    if (!chunk || !ids) st = GZ_FAIL(GZ_ENOMEM, "out of memory rebuilding the index");
    if (st == GZ_OK) st = prep(db, &s, "SELECT e.item_id, e.vec" LIVE_VECS " ORDER BY e.item_id");
    if (st == GZ_OK) {
        sqlite3_bind_int64(s, 1, model_id);
        sqlite3_bind_int(s, 2, kind);
        size_t n = 0;
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            if ((size_t)sqlite3_column_bytes(s, 1) != row_bytes) {
                st = GZ_FAIL(GZ_ECORRUPT, "%s: vector of item %lld has %d bytes, want %zu",
                             db->path, (long long)sqlite3_column_int64(s, 0),
                             sqlite3_column_bytes(s, 1), row_bytes);
                break;
            }
            ids[n] = sqlite3_column_int64(s, 0);
            memcpy(chunk + n * dim, sqlite3_column_blob(s, 1), row_bytes);
            if (++n == DB_REBUILD_CHUNK) {
                if ((st = gz_vindex_add(v, ids, chunk, n)) != GZ_OK) break;
                n = 0;
            }
        }
        if (st == GZ_OK && rc != SQLITE_DONE) st = sql_fail(db, "read vectors");
        if (st == GZ_OK) st = gz_vindex_add(v, ids, chunk, n);
        sqlite3_finalize(s);
    }
    free(chunk);
    free(ids);
    if (st != GZ_OK) {
        gz_vindex_free(v);
        return st;
    }
    v->dirty = 1;
    *out = v;
    return GZ_OK;
}

static gz_status save_one(gz_db *db, gz_vindex *v) {
    char path[PATH_MAX];
    index_path(db, v->model_id, v->kind, path, sizeof path);
    gz_status st = gz_vindex_save(v, path);
    if (st == GZ_OK) v->dirty = 0;
    return st;
}

/* Make the loaded index of (model, kind) match SQLite's current state, loading its file or
 * rebuilding. Must run inside a transaction (read snapshot). *out NULL: nothing to index. */
static gz_status ensure_current(gz_db *db, int64_t model_id, int kind, gz_vindex **out) {
    *out = NULL;
    int exists;
    int64_t gen;
    char stored[GZ_VX_FACTORY_MAX];
    gz_status st = read_state(db, model_id, kind, &exists, &gen, stored);
    if (st != GZ_OK || !exists) return st;
    const char *factory = requested_factory(db, stored);
    gz_vindex *v = vx_find(db, model_id, kind, NULL);
    if (v && v->gen == gen && strcmp(v->factory, factory) == 0) {
        *out = v;
        return GZ_OK;
    }
    int dim;
    if ((st = model_dim(db, model_id, &dim)) != GZ_OK) return st;
    char path[PATH_MAX];
    index_path(db, model_id, kind, path, sizeof path);
    gz_vindex *nv = NULL;
    st = gz_vindex_load(path, model_id, kind, dim, factory, gen, &nv);
    if (st != GZ_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", gz_last_error());
        if (st != GZ_ENOTFOUND && st != GZ_ECORRUPT) return st; /* I/O error: report it */
        gz_clear_error();
        note(db, "rebuilding the index of model %lld %ss from the database (%s)",
             (long long)model_id, kind_name(kind), why);
        if ((st = build_from_sql(db, model_id, kind, factory, gen, &nv)) != GZ_OK) return st;
        if (db->in_txn && is_touched(db, model_id, kind)) nv->txn = 1;
    }
    if ((st = vx_put(db, nv)) != GZ_OK) return st;
    if (nv->dirty && !nv->txn && !db->params.readonly) {
        st = save_one(db, nv);
        if (st != GZ_OK) { /* the rebuilt index works in memory; the file waits for later */
            note(db, "could not write %s: %s", path, gz_last_error());
            gz_clear_error();
            st = GZ_OK;
        }
    }
    *out = nv;
    return st;
}

/* Mark (model, kind) changed in this write transaction: bump its generation once, and keep
 * the loaded index following the changes if it was current; returns it (or NULL). */
static gz_status touch(gz_db *db, int64_t model_id, int kind, gz_vindex **out) {
    *out = NULL;
    if (is_touched(db, model_id, kind)) {
        *out = vx_find(db, model_id, kind, NULL);
        if (*out && !(*out)->txn) *out = NULL;
        return GZ_OK;
    }
    sqlite3_stmt *s;
    gz_status st = prep(db, &s,
                        "INSERT INTO index_state(model_id, kind, generation, factory)"
                        " VALUES(?1, ?2, 1, ?3) ON CONFLICT(model_id, kind)"
                        " DO UPDATE SET generation = generation + 1");
    if (st != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    sqlite3_bind_int(s, 2, kind);
    sqlite3_bind_text(s, 3, requested_factory(db, NULL), -1, SQLITE_STATIC);
    if ((st = step_done(db, s)) != GZ_OK) return st;
    int exists;
    int64_t gen;
    char stored[GZ_VX_FACTORY_MAX];
    if ((st = read_state(db, model_id, kind, &exists, &gen, stored)) != GZ_OK) return st;
    if (db->n_touched == db->cap_touched) {
        size_t ncap = db->cap_touched ? db->cap_touched * 2 : 8;
        touched_key *p = realloc(db->touched, ncap * sizeof *p);
        if (!p) return GZ_FAIL(GZ_ENOMEM, "out of memory");
        db->touched = p;
        db->cap_touched = ncap;
    }
    db->touched[db->n_touched++] = (touched_key){model_id, kind};
    const char *factory = requested_factory(db, stored);
    gz_vindex *v = vx_find(db, model_id, kind, NULL);
    if (v && (v->gen != gen - 1 || strcmp(v->factory, factory) != 0)) {
        vx_drop(db, model_id, kind); /* another process wrote meanwhile: rebuild later */
        v = NULL;
    }
    if (!v && gen > 1) { /* follow the changes from the file if it is current */
        int dim;
        char path[PATH_MAX];
        index_path(db, model_id, kind, path, sizeof path);
        if ((st = model_dim(db, model_id, &dim)) != GZ_OK) return st;
        if (gz_vindex_load(path, model_id, kind, dim, factory, gen - 1, &v) != GZ_OK) {
            gz_clear_error(); /* not current: rebuilt when next needed */
            v = NULL;
        } else if ((st = vx_put(db, v)) != GZ_OK) {
            return st;
        }
    } else if (!v && gen == 1) { /* a brand-new index: start empty */
        int dim;
        if ((st = model_dim(db, model_id, &dim)) != GZ_OK) return st;
        int fell_back = 0;
        if ((st = gz_vindex_create(model_id, kind, dim, factory, NULL, 0, &fell_back, &v)) != GZ_OK)
            return st;
        if (fell_back == 2)
            note(db,
                 "index of model %lld %ss: '%s' does not suit embeddings of %d floats: using "
                 "Flat",
                 (long long)model_id, kind_name(kind), factory, dim);
        else if (fell_back)
            note(db, "index of model %lld %ss: '%s' needs %zu vectors to train: using Flat for now",
                 (long long)model_id, kind_name(kind), factory, gz_vindex_min_train(factory));
        if ((st = vx_put(db, v)) != GZ_OK) return st;
    }
    if (v) {
        v->gen = gen;
        v->txn = 1;
    }
    *out = v;
    return GZ_OK;
}

/* Step s (prepared and bound) to its end, collecting column 0 of every row into a new array
 * *ids of *n entries (the caller frees it), and finalize s. On failure *ids = NULL, *n = 0;
 * oom is the message for running out of memory, what names the query in SQL errors. */
static gz_status collect_ids(gz_db *db, sqlite3_stmt *s, const char *oom, const char *what,
                             int64_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    gz_status st = GZ_OK;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *p = realloc(*ids, cap * sizeof *p);
            if (!p) {
                st = GZ_FAIL(GZ_ENOMEM, "%s", oom);
                break;
            }
            *ids = p;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(s, 0);
    }
    if (st == GZ_OK && rc != SQLITE_DONE) st = sql_fail(db, what);
    sqlite3_finalize(s);
    if (st != GZ_OK) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return st;
}

/* The models that hold a vector for the item. */
static gz_status item_models(gz_db *db, int64_t item_id, int64_t **models, size_t *n) {
    *models = NULL;
    *n = 0;
    sqlite3_stmt *s;
    gz_status st = prep(db, &s, "SELECT model_id FROM embeddings WHERE item_id = ?");
    if (st != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, item_id);
    return collect_ids(db, s, "out of memory", "item models", models, n);
}

/* Re-derive the item's presence in every index it has a vector for: out if removed (or
 * leaving), in with its stored vector if its status is OK. */
static gz_status resync_item(gz_db *db, int64_t item_id, int kind, int status_ok) {
    int64_t *models;
    size_t n;
    gz_status st = item_models(db, item_id, &models, &n);
    for (size_t i = 0; st == GZ_OK && i < n; i++) {
        gz_vindex *v;
        if ((st = touch(db, models[i], kind, &v)) != GZ_OK || !v) continue;
        gz_vindex_remove(v, item_id);
        if (!status_ok) continue;
        sqlite3_stmt *s;
        if ((st = prep(db, &s, "SELECT vec FROM embeddings WHERE item_id = ? AND model_id = ?")) !=
            GZ_OK)
            break;
        sqlite3_bind_int64(s, 1, item_id);
        sqlite3_bind_int64(s, 2, models[i]);
        if (sqlite3_step(s) == SQLITE_ROW &&
            (size_t)sqlite3_column_bytes(s, 0) == (size_t)v->dim * sizeof(float))
            st = gz_vindex_add(v, &item_id, sqlite3_column_blob(s, 0), 1);
        else
            st = GZ_FAIL(GZ_ECORRUPT, "%s: vector of item %lld unreadable", db->path,
                         (long long)item_id);
        sqlite3_finalize(s);
    }
    free(models);
    return st;
}

/* Delete every vector of the item (and take it out of the indexes). */
static gz_status drop_embeddings(gz_db *db, int64_t item_id, int kind) {
    gz_status st = resync_item(db, item_id, kind, 0);
    if (st != GZ_OK) return st;
    sqlite3_stmt *s;
    if ((st = prep(db, &s, "DELETE FROM tokens WHERE item_id = ?")) != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, item_id);
    if ((st = step_done(db, s)) != GZ_OK) return st;
    if ((st = prep(db, &s, "DELETE FROM embeddings WHERE item_id = ?")) != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, item_id);
    return step_done(db, s);
}

/* Bring files and loaded indexes in line with SQLite: every (model, kind) whose file is not
 * current gets rebuilt (or its current loaded index saved). Only headers are read for files
 * that look current; their payload is verified when loaded. */
static gz_status sync_indexes(gz_db *db) {
    gz_status st = txn_begin(db, 0);
    if (st != GZ_OK) return st;
    sqlite3_stmt *s;
    if ((st = prep(db, &s, "SELECT model_id, kind, generation, factory FROM index_state")) !=
        GZ_OK) {
        txn_rollback(db);
        return st;
    }
    typedef struct {
        int64_t model_id, gen;
        int kind;
        char factory[GZ_VX_FACTORY_MAX];
    } row;
    row *rows = NULL;
    size_t n = 0, cap = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            row *p = realloc(rows, cap * sizeof *p);
            if (!p) {
                st = GZ_FAIL(GZ_ENOMEM, "out of memory");
                break;
            }
            rows = p;
        }
        rows[n].model_id = sqlite3_column_int64(s, 0);
        rows[n].kind = sqlite3_column_int(s, 1);
        rows[n].gen = sqlite3_column_int64(s, 2);
        snprintf(rows[n].factory, GZ_VX_FACTORY_MAX, "%s", (const char *)sqlite3_column_text(s, 3));
        n++;
    }
    sqlite3_finalize(s);
    for (size_t i = 0; st == GZ_OK && i < n; i++) {
        const char *factory = requested_factory(db, rows[i].factory);
        gz_vindex *v = vx_find(db, rows[i].model_id, rows[i].kind, NULL);
        int loaded_current = v && v->gen == rows[i].gen && strcmp(v->factory, factory) == 0;
        /* Dead share too high, or IVF that fell back to Flat and now has training data:
         * rebuild from SQLite. */
        if (loaded_current && (v->n_dead > v->n * DB_DEAD_REBUILD_SHARE ||
                               (strcmp(v->effective, v->factory) != 0 &&
                                gz_vindex_live(v) >= gz_vindex_min_train(v->factory)))) {
            gz_vindex *nv;
            if ((st = build_from_sql(db, rows[i].model_id, rows[i].kind, factory, rows[i].gen,
                                     &nv)) != GZ_OK)
                break;
            if ((st = vx_put(db, nv)) != GZ_OK) break;
            v = nv;
        }
        if (loaded_current) {
            if (v->dirty) st = save_one(db, v);
            continue;
        }
        char path[PATH_MAX];
        index_path(db, rows[i].model_id, rows[i].kind, path, sizeof path);
        gz_vx_header h;
        gz_status pst = gz_vindex_peek(path, &h);
        if (pst == GZ_OK && h.generation == rows[i].gen && strcmp(h.factory, factory) == 0 &&
            h.model_id == rows[i].model_id && h.kind == rows[i].kind)
            continue; /* header current; its payload is verified when loaded */
        gz_clear_error();
        gz_vindex *nv;
        if ((st = ensure_current(db, rows[i].model_id, rows[i].kind, &nv)) != GZ_OK) break;
        if (nv && nv->dirty) st = save_one(db, nv);
    }
    free(rows);
    return txn_end(db, st);
}

gz_status gz_db_save_indexes(gz_db *db) {
    gz_status st = need_writable(db);
    if (st != GZ_OK) return st;
    if (db->in_txn) return GZ_FAIL(GZ_EINVAL, "%s: commit the open batch first", db->path);
    return sync_indexes(db);
}

gz_status gz_db_rebuild_index(gz_db *db, int64_t model_id, int kind) {
    if (db->in_txn) return GZ_FAIL(GZ_EINVAL, "%s: commit the open batch first", db->path);
    gz_status st = txn_begin(db, 0);
    if (st != GZ_OK) return st;
    sqlite3_stmt *s;
    st = prep(db, &s,
              "SELECT model_id, kind, generation, factory FROM index_state"
              " WHERE (?1 = 0 OR model_id = ?1) AND (?2 = 0 OR kind = ?2)");
    if (st == GZ_OK) {
        sqlite3_bind_int64(s, 1, model_id);
        sqlite3_bind_int(s, 2, kind);
        while (st == GZ_OK && sqlite3_step(s) == SQLITE_ROW) {
            int64_t m = sqlite3_column_int64(s, 0), gen = sqlite3_column_int64(s, 2);
            int k = sqlite3_column_int(s, 1);
            const char *factory = requested_factory(db, (const char *)sqlite3_column_text(s, 3));
            gz_vindex *v;
            if ((st = build_from_sql(db, m, k, factory, gen, &v)) != GZ_OK) break;
            if ((st = vx_put(db, v)) != GZ_OK) break;
            if (!db->params.readonly) st = save_one(db, v);
        }
        sqlite3_finalize(s);
    }
    return txn_end(db, st);
}

/* ------------------------------------------------------------------- items */

void gz_item_clear(gz_item *item) {
    if (!item) return;
    free((char *)item->path);
    free((char *)item->ext_id);
    free((char *)item->text);
    free((char *)item->taken_at);
    free((char *)item->meta_json);
    free((char *)item->error);
    memset(item, 0, sizeof *item);
}

#define ITEM_COLS                                                                                  \
    "SELECT id, kind, path, ext_id, text, size, mtime_ns, content_hash, width, height,"            \
    " taken_at, meta_json, link_item_id, status, error FROM items "

static char *col_strdup(sqlite3_stmt *s, int c) {
    if (sqlite3_column_type(s, c) == SQLITE_NULL) return NULL;
    const unsigned char *t = sqlite3_column_text(s, c);
    return t ? strdup((const char *)t) : NULL;
}

static gz_status fill_item(sqlite3_stmt *s, gz_item *it) {
    memset(it, 0, sizeof *it);
    it->id = sqlite3_column_int64(s, 0);
    it->kind = (gz_item_kind)sqlite3_column_int(s, 1);
    int plen = sqlite3_column_bytes(s, 2);
    const void *p = sqlite3_column_blob(s, 2);
    char *path = malloc((size_t)plen + 1);
    if (!path) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    if (plen) memcpy(path, p, (size_t)plen);
    path[plen] = '\0';
    it->path = path;
    it->path_len = (size_t)plen;
    it->ext_id = col_strdup(s, 3);
    it->text = col_strdup(s, 4);
    it->size = sqlite3_column_int64(s, 5);
    it->mtime_ns = sqlite3_column_int64(s, 6);
    it->content_hash = (uint64_t)sqlite3_column_int64(s, 7);
    it->width = sqlite3_column_int(s, 8);
    it->height = sqlite3_column_int(s, 9);
    it->taken_at = col_strdup(s, 10);
    it->meta_json = col_strdup(s, 11);
    it->link_item_id = sqlite3_column_int64(s, 12);
    it->status = (gz_item_status)sqlite3_column_int(s, 13);
    it->error = col_strdup(s, 14);
    return GZ_OK;
}

static gz_status item_query(gz_db *db, sqlite3_stmt *s, gz_item *out, const char *what) {
    int rc = sqlite3_step(s);
    gz_status st;
    if (rc == SQLITE_ROW)
        st = fill_item(s, out);
    else if (rc == SQLITE_DONE)
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: no item %s", db->path, what);
    else
        st = sql_fail(db, "read item");
    sqlite3_finalize(s);
    return st;
}

gz_status gz_db_get_item(gz_db *db, int64_t item_id, gz_item *out) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    gz_status st = prep(db, &s, ITEM_COLS "WHERE id = ?");
    if (st != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, item_id);
    char what[48];
    snprintf(what, sizeof what, "with id %lld", (long long)item_id);
    return item_query(db, s, out, what);
}

gz_status gz_db_find_by_path(gz_db *db, gz_item_kind kind, const char *path, size_t path_len,
                             const char *ext_id, gz_item *out) {
    memset(out, 0, sizeof *out);
    if (!path || path_len > INT_MAX) return GZ_FAIL(GZ_EINVAL, "find_by_path: no path");
    sqlite3_stmt *s;
    gz_status st = prep(db, &s, ITEM_COLS "WHERE kind = ? AND path = ? AND ext_id = ?");
    if (st != GZ_OK) return st;
    sqlite3_bind_int(s, 1, kind);
    sqlite3_bind_blob(s, 2, path, (int)path_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, ext_id ? ext_id : "", -1, SQLITE_STATIC);
    return item_query(db, s, out, "at that path");
}

gz_status gz_db_find_by_hash(gz_db *db, gz_item_kind kind, uint64_t hash, int64_t model_id,
                             int64_t exclude_id, int64_t *item_id) {
    *item_id = 0;
    sqlite3_stmt *s;
    gz_status st = prep(db, &s,
                        "SELECT id FROM items WHERE kind = ?1 AND content_hash = ?2 AND id != ?4"
                        " ORDER BY (?3 != 0 AND EXISTS(SELECT 1 FROM embeddings e WHERE"
                        " e.item_id = items.id AND e.model_id = ?3)) DESC, status ASC, id ASC"
                        " LIMIT 1");
    if (st != GZ_OK) return st;
    sqlite3_bind_int(s, 1, kind);
    sqlite3_bind_int64(s, 2, (int64_t)hash);
    sqlite3_bind_int64(s, 3, model_id);
    sqlite3_bind_int64(s, 4, exclude_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *item_id = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: no item with hash %016llx", db->path,
                     (unsigned long long)hash);
    else
        st = sql_fail(db, "find by hash");
    sqlite3_finalize(s);
    return st;
}

gz_status gz_db_list_items(gz_db *db, int kind, const char *prefix, size_t prefix_len, int status,
                           int64_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (prefix_len > INT_MAX || (prefix_len && !prefix))
        return GZ_FAIL(GZ_EINVAL, "list items: bad prefix");
    sqlite3_stmt *s;
    gz_status st = prep(db, &s,
                        "SELECT id FROM items WHERE (?1 = 0 OR kind = ?1)"
                        " AND (?3 = 0 OR substr(path, 1, ?3) = ?2) AND (?4 < 0 OR status = ?4)"
                        " ORDER BY id");
    if (st != GZ_OK) return st;
    sqlite3_bind_int(s, 1, kind);
    sqlite3_bind_blob(s, 2, prefix ? prefix : "", (int)prefix_len, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, (int)prefix_len);
    sqlite3_bind_int(s, 4, status);
    return collect_ids(db, s, "out of memory listing items", "list items", ids, n);
}

static void bind_opt_text(sqlite3_stmt *s, int i, const char *t) {
    if (t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static int same_text(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

gz_status gz_db_upsert_item(gz_db *db, gz_item *item) {
    gz_status st = check_kind(item->kind);
    if (st != GZ_OK) return st;
    if (!item->path || item->path_len > INT_MAX) return GZ_FAIL(GZ_EINVAL, "upsert item: no path");
    if (item->status < GZ_ITEM_OK || item->status > GZ_ITEM_MISSING)
        return GZ_FAIL(GZ_EINVAL, "upsert item: status %d", (int)item->status);
    int implicit;
    if ((st = wbegin(db, &implicit)) != GZ_OK) return st;
    gz_item old;
    memset(&old, 0, sizeof old);
    int have_old = 0;
    if (item->id > 0)
        st = gz_db_get_item(db, item->id, &old);
    else
        st = gz_db_find_by_path(db, item->kind, item->path, item->path_len, item->ext_id, &old);
    if (st == GZ_OK)
        have_old = 1;
    else if (st == GZ_ENOTFOUND && item->id <= 0) {
        gz_clear_error();
        st = GZ_OK;
    }
    if (st == GZ_OK && have_old && old.kind != item->kind)
        st = GZ_FAIL(GZ_EINVAL, "%s: item %lld is a %s, cannot become a %s", db->path,
                     (long long)old.id, kind_name(old.kind), kind_name(item->kind));
    sqlite3_stmt *s = NULL;
    if (st == GZ_OK)
        st = prep(db, &s,
                  have_old
                      ? "UPDATE items SET kind=?1, path=?2, ext_id=?3, text=?4, size=?5,"
                        " mtime_ns=?6, content_hash=?7, width=?8, height=?9, taken_at=?10,"
                        " meta_json=?11, link_item_id=?12, status=?13, error=?14 WHERE id=?15"
                      : "INSERT INTO items(kind, path, ext_id, text, size, mtime_ns, content_hash,"
                        " width, height, taken_at, meta_json, link_item_id, status, error)"
                        " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)");
    if (st == GZ_OK) {
        sqlite3_bind_int(s, 1, item->kind);
        sqlite3_bind_blob(s, 2, item->path_len ? item->path : "", (int)item->path_len,
                          SQLITE_STATIC);
        sqlite3_bind_text(s, 3, item->ext_id ? item->ext_id : "", -1, SQLITE_STATIC);
        bind_opt_text(s, 4, item->text);
        sqlite3_bind_int64(s, 5, item->size);
        sqlite3_bind_int64(s, 6, item->mtime_ns);
        sqlite3_bind_int64(s, 7, (int64_t)item->content_hash);
        sqlite3_bind_int(s, 8, item->width);
        sqlite3_bind_int(s, 9, item->height);
        bind_opt_text(s, 10, item->taken_at);
        bind_opt_text(s, 11, item->meta_json);
        if (item->link_item_id > 0)
            sqlite3_bind_int64(s, 12, item->link_item_id);
        else
            sqlite3_bind_null(s, 12);
        sqlite3_bind_int(s, 13, item->status);
        bind_opt_text(s, 14, item->error);
        if (have_old) sqlite3_bind_int64(s, 15, old.id);
        st = step_done(db, s);
    }
    if (st == GZ_OK) {
        if (!have_old) {
            item->id = sqlite3_last_insert_rowid(db->sql);
        } else {
            item->id = old.id;
            if (old.content_hash != item->content_hash || !same_text(old.text, item->text))
                st = drop_embeddings(db, old.id, item->kind); /* describe old content */
            else if ((old.status == GZ_ITEM_OK) != (item->status == GZ_ITEM_OK))
                st = resync_item(db, old.id, item->kind, item->status == GZ_ITEM_OK);
        }
    }
    gz_item_clear(&old);
    return wend(db, implicit, st);
}

gz_status gz_db_mark_missing(gz_db *db, int64_t item_id) {
    int implicit;
    gz_status st = wbegin(db, &implicit);
    if (st != GZ_OK) return st;
    gz_item it;
    st = gz_db_get_item(db, item_id, &it);
    if (st == GZ_OK && it.status != GZ_ITEM_MISSING) {
        sqlite3_stmt *s;
        if ((st = prep(db, &s, "UPDATE items SET status = ?2 WHERE id = ?1")) == GZ_OK) {
            sqlite3_bind_int64(s, 1, item_id);
            sqlite3_bind_int(s, 2, GZ_ITEM_MISSING);
            st = step_done(db, s);
        }
        if (st == GZ_OK && it.status == GZ_ITEM_OK) st = resync_item(db, item_id, it.kind, 0);
    }
    gz_item_clear(&it);
    return wend(db, implicit, st);
}

static gz_status remove_one(gz_db *db, int64_t item_id) {
    gz_item it;
    gz_status st = gz_db_get_item(db, item_id, &it);
    if (st == GZ_OK) st = drop_embeddings(db, item_id, it.kind);
    gz_item_clear(&it);
    sqlite3_stmt *s;
    if (st == GZ_OK && (st = prep(db, &s,
                                  "UPDATE items SET link_item_id = NULL"
                                  " WHERE link_item_id = ?")) == GZ_OK) {
        sqlite3_bind_int64(s, 1, item_id);
        st = step_done(db, s);
    }
    if (st == GZ_OK && (st = prep(db, &s, "DELETE FROM items WHERE id = ?")) == GZ_OK) {
        sqlite3_bind_int64(s, 1, item_id);
        st = step_done(db, s);
    }
    return st;
}

gz_status gz_db_remove_item(gz_db *db, int64_t item_id) {
    int implicit;
    gz_status st = wbegin(db, &implicit);
    if (st != GZ_OK) return st;
    return wend(db, implicit, remove_one(db, item_id));
}

gz_status gz_db_prune_missing(gz_db *db, const char *prefix, size_t prefix_len,
                              int64_t *n_removed) {
    if (n_removed) *n_removed = 0;
    int implicit;
    gz_status st = wbegin(db, &implicit);
    if (st != GZ_OK) return st;
    int64_t *ids = NULL;
    size_t n = 0;
    st = gz_db_list_items(db, 0, prefix, prefix_len, GZ_ITEM_MISSING, &ids, &n);
    for (size_t i = 0; st == GZ_OK && i < n; i++)
        st = remove_one(db, ids[i]);
    free(ids);
    st = wend(db, implicit, st);
    if (st == GZ_OK && n_removed) *n_removed = (int64_t)n;
    return st;
}

/* -------------------------------------------------------------- embeddings */

gz_status gz_db_put_embedding(gz_db *db, int64_t item_id, int64_t model_id, const float *vec,
                              int dim) {
    if (!vec || dim <= 0) return GZ_FAIL(GZ_EINVAL, "put embedding: no vector");
    for (int i = 0; i < dim; i++)
        if (!isfinite(vec[i]))
            return GZ_FAIL(GZ_EINVAL, "put embedding of item %lld: element %d is not finite",
                           (long long)item_id, i);
    int implicit;
    gz_status st = wbegin(db, &implicit);
    if (st != GZ_OK) return st;
    int mdim = 0;
    st = model_dim(db, model_id, &mdim);
    if (st == GZ_OK && mdim != dim)
        st = GZ_FAIL(GZ_EINVAL, "%s: model %lld has dim %d, vector has %d", db->path,
                     (long long)model_id, mdim, dim);
    int kind = 0, status = 0;
    sqlite3_stmt *s;
    if (st == GZ_OK &&
        (st = prep(db, &s, "SELECT kind, status FROM items WHERE id = ?")) == GZ_OK) {
        sqlite3_bind_int64(s, 1, item_id);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            kind = sqlite3_column_int(s, 0);
            status = sqlite3_column_int(s, 1);
        } else if (rc == SQLITE_DONE) {
            st = GZ_FAIL(GZ_ENOTFOUND, "%s: no item with id %lld", db->path, (long long)item_id);
        } else {
            st = sql_fail(db, "read item");
        }
        sqlite3_finalize(s);
    }
    /* Stored tokens belong to the encode that made the stored vector: a different vector
     * (a new encode) makes them stale; the same bytes (a vector copied back) keep them. */
    if (st == GZ_OK && (st = prep(db, &s,
                                  "DELETE FROM tokens WHERE item_id = ?1 AND model_id = ?2"
                                  " AND NOT EXISTS(SELECT 1 FROM embeddings WHERE item_id = ?1"
                                  " AND model_id = ?2 AND vec = ?3)")) == GZ_OK) {
        sqlite3_bind_int64(s, 1, item_id);
        sqlite3_bind_int64(s, 2, model_id);
        sqlite3_bind_blob(s, 3, vec, dim * (int)sizeof(float), SQLITE_STATIC);
        st = step_done(db, s);
    }
    if (st == GZ_OK && (st = prep(db, &s,
                                  "INSERT OR REPLACE INTO embeddings(item_id, model_id, vec)"
                                  " VALUES(?, ?, ?)")) == GZ_OK) {
        sqlite3_bind_int64(s, 1, item_id);
        sqlite3_bind_int64(s, 2, model_id);
        sqlite3_bind_blob(s, 3, vec, dim * (int)sizeof(float), SQLITE_STATIC);
        st = step_done(db, s);
    }
    gz_vindex *v = NULL;
    if (st == GZ_OK) st = touch(db, model_id, kind, &v);
    if (st == GZ_OK && v) {
        gz_vindex_remove(v, item_id);
        if (status == GZ_ITEM_OK) st = gz_vindex_add(v, &item_id, vec, 1);
    }
    return wend(db, implicit, st);
}

gz_status gz_db_get_embedding(gz_db *db, int64_t item_id, int64_t model_id, float *out, int dim) {
    sqlite3_stmt *s;
    gz_status st = prep(db, &s, "SELECT vec FROM embeddings WHERE item_id = ? AND model_id = ?");
    if (st != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, item_id);
    sqlite3_bind_int64(s, 2, model_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        size_t bytes = (size_t)sqlite3_column_bytes(s, 0);
        if (out && (dim <= 0 || bytes != (size_t)dim * sizeof(float)))
            st = GZ_FAIL(GZ_EINVAL, "%s: vector of item %lld has %zu floats, asked for %d",
                         db->path, (long long)item_id, bytes / sizeof(float), dim);
        else if (out)
            memcpy(out, sqlite3_column_blob(s, 0), bytes);
    } else if (rc == SQLITE_DONE) {
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: item %lld has no vector for model %lld", db->path,
                     (long long)item_id, (long long)model_id);
    } else {
        st = sql_fail(db, "read vector");
    }
    sqlite3_finalize(s);
    return st;
}

/* ----------------------------------------------------------- token states */

gz_status gz_db_put_tokens(gz_db *db, int64_t item_id, int64_t model_id, gz_tokens_format format,
                           const float *states, int n_tokens, int dim) {
    size_t bytes = gz_tokens_bytes(format, n_tokens, dim);
    if (!states || bytes == 0 || bytes > INT_MAX)
        return GZ_FAIL(GZ_EINVAL, "put tokens of item %lld: bad format %d or shape (%d, %d)",
                       (long long)item_id, (int)format, n_tokens, dim);
    uint8_t *blob = gz_malloc_n(bytes, 1, "token states");
    if (!blob) return GZ_ENOMEM;
    gz_status st = gz_tokens_encode(format, states, n_tokens, dim, blob);
    if (st != GZ_OK) {
        free(blob);
        return gz_error_prefix(st, "put tokens of item %lld", (long long)item_id);
    }
    int implicit;
    if ((st = wbegin(db, &implicit)) != GZ_OK) {
        free(blob);
        return st;
    }
    /* tokens describe the encode that made the stored vector: never without it */
    st = gz_db_get_embedding(db, item_id, model_id, NULL, 0);
    sqlite3_stmt *s;
    if (st == GZ_OK && (st = prep(db, &s,
                                  "INSERT OR REPLACE INTO tokens(item_id, model_id, format,"
                                  " n_tokens, dim, data) VALUES(?, ?, ?, ?, ?, ?)")) == GZ_OK) {
        sqlite3_bind_int64(s, 1, item_id);
        sqlite3_bind_int64(s, 2, model_id);
        sqlite3_bind_int(s, 3, (int)format);
        sqlite3_bind_int(s, 4, n_tokens);
        sqlite3_bind_int(s, 5, dim);
        sqlite3_bind_blob(s, 6, blob, (int)bytes, SQLITE_STATIC);
        st = step_done(db, s);
    }
    st = wend(db, implicit, st);
    free(blob);
    return st;
}

gz_status gz_db_get_tokens(gz_db *db, int64_t item_id, int64_t model_id, float *out, int n_tokens,
                           int dim, gz_tokens_format *format) {
    if (db->schema < DB_SCHEMA_TOKENS) /* read-only, not migrated: it cannot hold any */
        return GZ_FAIL(GZ_ENOTFOUND, "%s: no token states (schema %d)", db->path, db->schema);
    sqlite3_stmt *s;
    gz_status st = prep(db, &s,
                        out ? "SELECT format, n_tokens, dim, data FROM tokens"
                              " WHERE item_id = ? AND model_id = ?"
                            : "SELECT format, n_tokens, dim FROM tokens"
                              " WHERE item_id = ? AND model_id = ?");
    if (st != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, item_id);
    sqlite3_bind_int64(s, 2, model_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        gz_tokens_format f = (gz_tokens_format)sqlite3_column_int(s, 0);
        int p = sqlite3_column_int(s, 1), d = sqlite3_column_int(s, 2);
        if (format) *format = f;
        if (out && (p != n_tokens || d != dim))
            st = GZ_FAIL(GZ_EINVAL, "%s: tokens of item %lld are (%d, %d), asked for (%d, %d)",
                         db->path, (long long)item_id, p, d, n_tokens, dim);
        else if (out) {
            const void *blob = sqlite3_column_blob(s, 3);
            size_t len = (size_t)sqlite3_column_bytes(s, 3);
            st = gz_tokens_decode(f, blob, len, p, d, out);
            if (st != GZ_OK)
                st = gz_error_prefix(GZ_ECORRUPT, "%s: tokens of item %lld", db->path,
                                     (long long)item_id);
        }
    } else if (rc == SQLITE_DONE) {
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: item %lld has no token states for model %lld", db->path,
                     (long long)item_id, (long long)model_id);
    } else {
        st = sql_fail(db, "read token states");
    }
    sqlite3_finalize(s);
    return st;
}

gz_status gz_db_copy_tokens(gz_db *db, int64_t from_item, int64_t to_item, int64_t model_id) {
    if (from_item == to_item) return GZ_OK;
    int implicit;
    gz_status st = wbegin(db, &implicit);
    if (st != GZ_OK) return st;
    /* the target's vector must exist (put_tokens' rule); its old tokens go either way */
    st = gz_db_get_embedding(db, to_item, model_id, NULL, 0);
    sqlite3_stmt *s;
    if (st == GZ_OK &&
        (st = prep(db, &s, "DELETE FROM tokens WHERE item_id = ? AND model_id = ?")) == GZ_OK) {
        sqlite3_bind_int64(s, 1, to_item);
        sqlite3_bind_int64(s, 2, model_id);
        st = step_done(db, s);
    }
    if (st == GZ_OK && (st = prep(db, &s,
                                  "INSERT INTO tokens(item_id, model_id, format, n_tokens, dim,"
                                  " data) SELECT ?1, model_id, format, n_tokens, dim, data"
                                  " FROM tokens WHERE item_id = ?2 AND model_id = ?3")) == GZ_OK) {
        sqlite3_bind_int64(s, 1, to_item);
        sqlite3_bind_int64(s, 2, from_item);
        sqlite3_bind_int64(s, 3, model_id);
        st = step_done(db, s);
    }
    return wend(db, implicit, st);
}

/* ------------------------------------------------------------------ search */

/* Run fn inside a read snapshot (or the open transaction). */
static gz_status read_begin(gz_db *db, int *own) {
    *own = 0;
    if (db->in_txn) return GZ_OK;
    *own = 1;
    return txn_begin(db, 0);
}

static gz_status read_end(gz_db *db, int own, gz_status st) {
    if (!own) return st;
    return txn_end(db, st);
}

static int hit_cmp(const void *a, const void *b) {
    const gz_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->item_id > y->item_id) - (x->item_id < y->item_id);
}

gz_status gz_db_search(gz_db *db, int64_t model_id, gz_item_kind kind, const float *query, int dim,
                       int k, float min_score, gz_hit *hits, int *n_hits) {
    *n_hits = 0;
    gz_status st = check_kind(kind);
    if (st != GZ_OK) return st;
    if (!query || k <= 0 || !hits) return GZ_FAIL(GZ_EINVAL, "search: need a query and k > 0");
    int own;
    if ((st = read_begin(db, &own)) != GZ_OK) return st;
    int mdim = 0;
    st = model_dim(db, model_id, &mdim);
    if (st == GZ_OK && mdim != dim)
        st = GZ_FAIL(GZ_EINVAL, "%s: model %lld has dim %d, query has %d", db->path,
                     (long long)model_id, mdim, dim);
    gz_vindex *v = NULL;
    if (st == GZ_OK) st = ensure_current(db, model_id, kind, &v);
    int64_t *ids = NULL;
    float *scores = NULL;
    int got = 0;
    if (st == GZ_OK && v) {
        ids = malloc((size_t)k * sizeof *ids);
        scores = malloc((size_t)k * sizeof *scores);
        if (!ids || !scores) st = GZ_FAIL(GZ_ENOMEM, "search: out of memory for k = %d", k);
        if (st == GZ_OK)
            st = gz_vindex_search(v, query, k, db->params.hnsw_ef_search, db->params.ivf_nprobe,
                                  ids, scores, &got);
    }
    int n = 0;
    for (int i = 0; st == GZ_OK && i < got; i++) {
        if (!(scores[i] >= min_score)) continue;
        hits[n].item_id = ids[i];
        hits[n].score = scores[i];
        n++;
    }
    free(ids);
    free(scores);
    st = read_end(db, own, st);
    if (st != GZ_OK) return st;
    qsort(hits, (size_t)n, sizeof *hits, hit_cmp);
    *n_hits = n;
    return GZ_OK;
}

gz_status gz_db_index_info(gz_db *db, int64_t model_id, gz_item_kind kind, gz_db_index_state *out) {
    memset(out, 0, sizeof *out);
    out->model_id = model_id;
    out->kind = kind;
    gz_status st = check_kind(kind);
    if (st != GZ_OK) return st;
    int own;
    if ((st = read_begin(db, &own)) != GZ_OK) return st;
    int exists;
    char stored[GZ_VX_FACTORY_MAX];
    st = read_state(db, model_id, kind, &exists, &out->generation, stored);
    if (st == GZ_OK && !exists)
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: model %lld has no %s index", db->path, (long long)model_id,
                     kind_name(kind));
    gz_vindex *v = NULL;
    if (st == GZ_OK) st = ensure_current(db, model_id, kind, &v);
    if (st == GZ_OK) {
        snprintf(out->factory, sizeof out->factory, "%s", requested_factory(db, stored));
        if (v) {
            snprintf(out->effective, sizeof out->effective, "%s", v->effective);
            out->n_vectors = (int64_t)gz_vindex_live(v);
            out->n_dead = (int64_t)v->n_dead;
        }
        char path[PATH_MAX];
        index_path(db, model_id, kind, path, sizeof path);
        gz_vx_header h;
        if (gz_vindex_peek(path, &h) == GZ_OK) {
            out->file_bytes = h.file_bytes;
            out->file_current =
                h.generation == out->generation && strcmp(h.factory, out->factory) == 0;
        }
        gz_clear_error();
    }
    return read_end(db, own, st);
}

static int64_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

gz_status gz_db_get_stats(gz_db *db, gz_db_stats *out) {
    memset(out, 0, sizeof *out);
    out->schema_version = db->schema;
    int own;
    gz_status st = read_begin(db, &own);
    if (st != GZ_OK) return st;
    sqlite3_stmt *s;
    if ((st = prep(db, &s, "SELECT kind, status, count(*) FROM items GROUP BY kind, status")) ==
        GZ_OK) {
        while (sqlite3_step(s) == SQLITE_ROW) {
            int kind = sqlite3_column_int(s, 0), status = sqlite3_column_int(s, 1);
            int64_t c = sqlite3_column_int64(s, 2);
            out->n_items[0] += c;
            if (kind >= 1 && kind <= 2) out->n_items[kind] += c;
            if (status >= 0 && status <= 2) out->n_status[status] += c;
        }
        sqlite3_finalize(s);
    }
    if (st == GZ_OK) st = pragma_int(db, "SELECT count(*) FROM models", &out->n_models);
    if (st == GZ_OK) st = pragma_int(db, "SELECT count(*) FROM embeddings", &out->n_embeddings);
    if (st == GZ_OK && db->schema >= DB_SCHEMA_TOKENS)
        st = pragma_int(db, "SELECT count(*) FROM tokens", &out->n_tokens);
    if (st == GZ_OK && db->schema >= DB_SCHEMA_TOKENS)
        st = pragma_int(db, "SELECT coalesce(sum(length(data)), 0) FROM tokens", &out->token_bytes);
    if (st == GZ_OK && (st = prep(db, &s, "SELECT model_id, kind FROM index_state")) == GZ_OK) {
        while (sqlite3_step(s) == SQLITE_ROW) {
            char path[PATH_MAX];
            index_path(db, sqlite3_column_int64(s, 0), sqlite3_column_int(s, 1), path, sizeof path);
            out->n_indexes++;
            out->index_bytes += file_size(path);
        }
        sqlite3_finalize(s);
    }
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", db->path);
    out->db_bytes = file_size(db->path) + file_size(wal);
    return read_end(db, own, st);
}

/* -------------------------------------------------------------------- meta */

gz_status gz_db_coverage(gz_db *db, int64_t model_id, gz_item_kind kind, int64_t *covered,
                         int64_t *total) {
    *covered = *total = 0;
    const int keep = sqlite3_get_autocommit(db->sql) != 0; /* not inside a transaction */
    int64_t dv = 0, changes = sqlite3_total_changes64(db->sql);
    gz_status st = keep ? pragma_int(db, "PRAGMA data_version", &dv) : GZ_OK;
    if (st != GZ_OK) return st;
    if (keep && db->cov.valid && db->cov.model_id == model_id && db->cov.kind == (int)kind &&
        db->cov.data_version == dv && db->cov.changes == changes) {
        *covered = db->cov.covered;
        *total = db->cov.total;
        return GZ_OK;
    }
    db->cov.valid = 0;
    sqlite3_stmt *s;
    st = prep(db, &s,
              "SELECT count(*), coalesce(sum(EXISTS(SELECT 1 FROM embeddings e WHERE"
              " e.item_id = items.id AND e.model_id = ?1)), 0) FROM items"
              " WHERE kind = ?2 AND status = 0");
    if (st != GZ_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    sqlite3_bind_int(s, 2, kind);
    if (sqlite3_step(s) == SQLITE_ROW) {
        *total = sqlite3_column_int64(s, 0);
        *covered = sqlite3_column_int64(s, 1);
        if (keep) db->cov = (coverage_memo){1, (int)kind, model_id, dv, changes, *covered, *total};
    } else {
        st = sql_fail(db, "coverage");
    }
    sqlite3_finalize(s);
    return st;
}

void gz_db_add_notice(gz_db *db, const char *message) { note(db, "%s", message); }

gz_status gz_db_set_meta(gz_db *db, const char *key, const char *value) {
    if (!key || !*key) return GZ_FAIL(GZ_EINVAL, "set meta: empty key");
    int implicit;
    gz_status st = wbegin(db, &implicit);
    if (st != GZ_OK) return st;
    sqlite3_stmt *s;
    st = prep(db, &s,
              value ? "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)"
                    : "DELETE FROM meta WHERE key = ?1");
    if (st == GZ_OK) {
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        if (value) sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
        st = step_done(db, s);
    }
    return wend(db, implicit, st);
}

gz_status gz_db_get_meta(gz_db *db, const char *key, char **value) {
    *value = NULL;
    sqlite3_stmt *s;
    gz_status st = prep(db, &s, "SELECT value FROM meta WHERE key = ?");
    if (st != GZ_OK) return st;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *value = strdup((const char *)sqlite3_column_text(s, 0));
        if (!*value) st = GZ_FAIL(GZ_ENOMEM, "out of memory");
    } else if (rc == SQLITE_DONE) {
        st = GZ_FAIL(GZ_ENOTFOUND, "%s: no setting '%s'", db->path, key);
    } else {
        st = sql_fail(db, "read setting");
    }
    sqlite3_finalize(s);
    return st;
}
