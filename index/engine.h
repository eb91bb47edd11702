/* engine.h - the library layer under the gaze command: ingest folders of photos, import
 * texts, compose and run queries, re-rank with BLIP ITM, score products.
 *
 * Basic usage:
 *   gz_engine *e = NULL;
 *   gz_engine_params ep = gz_engine_default_params();
 *   ep.db_path = "photos.db"; ep.model_dir = "models/blip-itm-base-coco";
 *   if (gz_engine_open(&ep, &e) != GZ_OK) { fputs(gz_last_error(), stderr); ... }
 *   const char *roots[] = {"/home/me/Pictures"};
 *   gz_ingest_opts io = gz_ingest_default_opts();
 *   gz_ingest_stats st;
 *   gz_engine_index(e, roots, 1, &io, &st);          // st.encoded, st.skipped, st.failed ...
 *   gz_query_term t = {.text = "kids on a red sled", .weight = 1};
 *   gz_query q = gz_query_default(); q.terms = &t; q.n_terms = 1;
 *   gz_results r;
 *   gz_engine_search(e, &q, &r);                     // r.v[0].path, r.v[0].score ...
 *   gz_results_free(&r);
 *   gz_engine_close(e);
 *
 * An engine owns one gz_db and (loaded lazily, on first need) one gz_model: the model given
 * in the params, else the database's most recently used registered model. Vectors are keyed
 * by the model's fingerprint, so a search with another model than the one that indexed
 * finds nothing (GZ_ENOTFOUND with a message saying so) rather than mixing vectors.
 * Thread safety: an engine is used by one thread at a time (it may start its own decoding
 * thread inside gz_engine_index). Nothing here prints; per-file problems go to callbacks. */
#ifndef GZ_INDEX_ENGINE_H
#define GZ_INDEX_ENGINE_H

#include <signal.h>
#include <stdint.h>

#include "gaze.h"

typedef struct gz_engine gz_engine;

typedef struct {
    const char *db_path;   /* required */
    const char *model_dir; /* NULL: the database's most recently used model */
    gz_model_params model; /* passed to gz_model_load */
    gz_db_params db;       /* passed to gz_db_open */
} gz_engine_params;

gz_engine_params gz_engine_default_params(void);

/* Open the database (created if needed unless db.readonly). The model is not loaded yet.
 * On error *out is NULL. */
gz_status gz_engine_open(const gz_engine_params *p, gz_engine **out);
/* Close the database (writes changed FAISS files) and free the model. Returns the first
 * error met while saving. NULL is a no-op. */
gz_status gz_engine_close(gz_engine *e);
gz_db *gz_engine_db(gz_engine *e);
/* Load the model now if needed and register it in the database (fingerprint); sets *m and
 * *model_id (either may be NULL). GZ_ENOTFOUND when no model was given and none is
 * registered ("give --model ..."). */
gz_status gz_engine_model(gz_engine *e, gz_model **m, int64_t *model_id);
/* The model directory in use (given or registered), or NULL before one is resolved. */
const char *gz_engine_model_dir(const gz_engine *e);

/* ---- directory walk (engine_walk.c) ---- */

typedef struct {
    char *path; /* root-joined path (roots made absolute); owned */
    int64_t size;
    int64_t mtime_ns;
} gz_walk_file;

typedef struct {
    gz_walk_file *files; /* sorted by path (byte order) */
    size_t n, cap;
    char **errors; /* "<path>: <reason>" for unreadable folders / broken links */
    size_t n_errors;
    char **roots; /* absolute, normalised roots as walked (directories or files) */
    size_t n_roots;
} gz_walk_result;

typedef struct {
    const char *const *exclude; /* fnmatch globs, matched against the base name and the full
                                   path; a matching folder is not entered */
    int n_exclude;
    int follow_symlinks; /* 1: follow links to folders and files; loops are detected by
                            (device, inode) of every folder entered and skipped */
    int include_hidden;  /* 1: also enter hidden folders and the usual junk (.git,
                            node_modules, @eaDir, lost+found) */
} gz_walk_opts;

/* 1 if the file name has an extension gaze indexes (jpg jpeg jpe jfif png webp heic heif
 * avif gif; case-insensitive). */
int gz_walk_is_image_name(const char *name);
/* Recursively collect image files under the roots (a root may also be a single file, which
 * is taken whatever its extension). Unreadable sub-folders are listed in errors, not fatal;
 * a root that does not exist is GZ_ENOTFOUND. Free with gz_walk_free. */
gz_status gz_walk(const char *const *roots, int n_roots, const gz_walk_opts *o,
                  gz_walk_result *out);
void gz_walk_free(gz_walk_result *r);

/* ---- ingest (engine_ingest.c) ---- */

typedef struct {
    long total;   /* image files found by the scan */
    long done;    /* files handled so far */
    long encoded; /* decoded and encoded by the model */
    long skipped; /* unchanged (size, mtime) and already embedded */
    long reused;  /* new path, known content (rename / duplicate): vector copied */
    long failed;  /* could not be decoded / encoded (recorded in the db), this run or
                     unchanged since an earlier failure */
    long missing; /* indexed files under the roots that vanished (marked missing) */
    long pruned;  /* missing items removed (with prune) */
    double seconds;
} gz_ingest_stats;

typedef struct {
    gz_walk_opts walk;
    int prune;          /* 1: remove vanished files from the db (else only marked) */
    int batch_size;     /* files per transaction / forward pass; 0 = model's batch size */
    int exif_orient;    /* -1 = model's setting (default on); 0/1 override */
    int64_t max_pixels; /* 0 = model's setting */
    int decode_thread;  /* 1 (default): decode the next batch while the current one encodes */
    int retry_failed;   /* 1: re-try files that failed before even if unchanged */
    volatile sig_atomic_t *stop; /* when set non-zero, stop after the current batch */
    void (*progress)(void *user, const gz_ingest_stats *s);
    void (*file_error)(void *user, const char *path, const char *message);
    void *user;
} gz_ingest_opts;

gz_ingest_opts gz_ingest_default_opts(void);
/* Index the image files under roots into the database with the engine's model.
 * Each batch is one transaction. Per-file failures are recorded in the db (status failed,
 * error), reported through file_error and counted; they do not make the call fail.
 * Returns GZ_OK, GZ_EINTERRUPTED when *stop was set (everything committed so far is
 * consistent), or the first fatal error (db, model). stats is filled in every case. */
gz_status gz_engine_index(gz_engine *e, const char *const *roots, int n_roots,
                          const gz_ingest_opts *o, gz_ingest_stats *stats);

/* ---- queries (engine_query.c) ---- */

typedef struct {
    const char *text;  /* a text term, or NULL */
    const char *image; /* an image file term (used when text is NULL) */
    float weight;      /* contribution; negative subtracts (rclip's "-") */
} gz_query_term;

typedef enum {
    GZ_TARGET_IMAGES = 0,   /* rank image items */
    GZ_TARGET_TEXTS = 1,    /* rank text items */
    GZ_TARGET_PRODUCTS = 2, /* rank text items linked to images by a text+image combination */
} gz_target;

typedef struct {
    const gz_query_term *terms; /* the query is normalise(sum_i weight_i * embed(term_i)) */
    int n_terms;
    gz_target target;
    int k;             /* results wanted (default 10) */
    float min_score;   /* drop results whose cosine (itc) is below; default -2 (none) */
    int rerank;        /* 0: none; K > 0: re-score the top K by ITC with BLIP ITM (query must
                          be one text term over images, or one image term over texts):
                          score = itm_logit[match] + itc, as LAVIS ranks */
    float text_weight; /* products: score = w * cos(q, text) + (1 - w) * cos(q, image);
                          default 0.5; a product without an image vector uses cos(q, text) */
} gz_query;

gz_query gz_query_default(void);

typedef struct {
    int64_t item_id;
    gz_item_kind kind;
    char *path;      /* images: file path; texts: source file (owned) */
    char *text;      /* texts: the text (owned, NULL for images) */
    char *ext_id;    /* texts: the record id (owned, may be NULL) */
    char *link_path; /* texts linked to an image: the image's path (owned, may be NULL) */
    int64_t link_item_id;
    int width, height;
    char taken_at[20];
    float score; /* final ranking score (itc; re-rank: itm_logit + itc; products: formula) */
    float itc;   /* cosine between the query and the item (products: text cosine) */
    int has_itm;
    float itm_logit;   /* ITM match logit (re-rank only) */
    float itm_prob;    /* softmax probability of match (re-rank only) */
    float image_score; /* products: cosine between the query and the linked image (or NAN) */
} gz_result;

typedef struct {
    gz_result *v;
    int n;
} gz_results;

/* Embed and combine the terms into one L2-normalised query (gz_model_dim floats).
 * GZ_EINVAL when the combination is the zero vector. */
gz_status gz_engine_query_vector(gz_engine *e, const gz_query_term *terms, int n, float *out);
/* Run a query. Results best first. out is overwritten; free with gz_results_free. */
gz_status gz_engine_search(gz_engine *e, const gz_query *q, gz_results *out);
void gz_results_free(gz_results *r);

/* ---- records: JSONL / CSV / TSV readers (engine_texts.c) ---- */

typedef enum { GZ_REC_AUTO = 0, GZ_REC_JSONL, GZ_REC_CSV, GZ_REC_TSV } gz_rec_format;
typedef struct gz_records gz_records;

/* Open a record file. AUTO picks by extension (.jsonl/.ndjson/.json, .csv, .tsv/.tab),
 * else sniffs the first line. CSV and TSV need a header row naming the fields. */
gz_status gz_records_open(const char *path, gz_rec_format fmt, gz_records **out);
/* Next record: returns 1 and sets *line (1-based line where it starts), 0 at the end, or a
 * negative status for a malformed row (message "FILE:LINE: reason"; reading can continue
 * with the next call). */
int gz_records_next(gz_records *r, long *line);
/* Field of the current record as a string (numbers are formatted), or NULL if absent. */
const char *gz_records_get(gz_records *r, const char *field);
gz_rec_format gz_records_format(const gz_records *r);
void gz_records_close(gz_records *r);

typedef struct {
    gz_rec_format format;
    const char *id_field;    /* default "id"; records without it are keyed by line number */
    const char *text_field;  /* default "text"; a comma-separated list joins the fields with
                                ". " (e.g. "title,description") */
    const char *image_field; /* NULL: none; else a path (relative to the file's folder) of
                                an image to link; indexed now if it is not in the db */
    int batch_size;          /* texts per transaction / forward pass (default 32) */
    void (*row_error)(void *user, const char *file, long line, const char *message);
    void *user;
} gz_texts_opts;

typedef struct {
    long rows;      /* records read (good and bad) */
    long added;     /* new or changed texts encoded */
    long unchanged; /* same text already embedded */
    long failed;    /* malformed rows, missing fields, unreadable linked images */
    long linked;    /* texts linked to an image item */
} gz_texts_stats;

gz_texts_opts gz_texts_default_opts(void);
/* Import the texts of a record file as text items (path = the file's absolute path, ext_id
 * = the id field or "line:N") and embed them. Bad rows are reported and skipped. */
gz_status gz_engine_add_texts(gz_engine *e, const char *file, const gz_texts_opts *o,
                              gz_texts_stats *stats);

#endif
