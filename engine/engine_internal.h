/* engine_internal.h - the engine handle's fields and helpers, shared by engine/ only. */
#ifndef GZ_ENGINE_ENGINE_INTERNAL_H
#define GZ_ENGINE_ENGINE_INTERNAL_H

#include "gaze.h"

struct gz_engine {
    gz_db *db;
    gz_model *model;      /* NULL until gz_engine_model; owned unless it is shared */
    gz_model *shared;     /* gz_engine_params.shared_model: borrowed, or NULL */
    int64_t model_id;     /* its id in db */
    char *db_path;        /* as given to gz_engine_open (for messages); owned */
    char *model_dir;      /* given or registered; owned */
    char fingerprint[65]; /* of model */
    gz_model_params params;
};

/* Like gz_engine_model but for readers: finds the model's id by fingerprint without
 * registering it (the db's default model stays); GZ_ENOTFOUND if the db has no vectors
 * made with it. */
gz_status gz_engine_model_lookup(gz_engine *e, gz_model **m, int64_t *model_id);

/* Decode parameters for indexing with model m: the model's wish, with overrides
 * (exif_orient < 0 and max_pixels <= 0 keep the model's values). */
gz_image_params gz_engine_image_params(gz_model *m, int exif_orient, int64_t max_pixels);

/* Record in the db that the engine's model indexes images decoded with ip (gz_index_preprocess);
 * no write when the record already says so. The model must be resolved. */
gz_status gz_engine_record_preprocess(gz_engine *e, const gz_image_params *ip);

/* Record the vision tower's measured time per image for the engine's model (seconds, from
 * an index run), for the estimate a re-rank without stored tokens announces. */
gz_status gz_engine_record_encode_cost(gz_engine *e, double seconds);
/* That record, or 0 when none is kept (an index made by an older gaze). */
double gz_engine_encode_cost(gz_engine *e);

/* Decode parameters for an image query (or a re-ranked candidate) with the engine's resolved
 * model m: the preprocessing recorded for it in the db, else the model's own
 * (gz_model_image_params). */
gz_image_params gz_engine_query_image_params(gz_engine *e, gz_model *m);

/* Decode, embed and store one image file as an image item in its own transaction (call it
 * outside a batch). Used by add-texts for linked images. An unchanged, embedded file is not
 * re-encoded. On a decode/encode failure the item is stored with status failed and the
 * error is returned. Sets *item_id. */
gz_status gz_engine_index_one(gz_engine *e, const char *abs_path, int64_t *item_id);

/* Absolute path of p resolved physically (realpath: links and "link/.." as the kernel sees
 * them); a path that does not exist (any more) is made absolute lexically below its longest
 * existing parent, itself resolved. malloc'd; NULL with errno set on failure. */
char *gz_engine_resolve_path(const char *p);

/* The non-empty parts (NULL or "" skipped) joined with ". ", the one rule for a text made of
 * several fields (add-texts --text-field title,description; gz_catalog_item.text_parts).
 * malloc'd ("" when none), NULL when out of memory. */
char *gz_engine_join_text(const char *const *parts, int n);

/* An fnmatch pattern made absolute when it is relative and has a '/' (the part before its
 * first wildcard resolved as gz_engine_resolve_path does); other patterns copied as they are.
 * malloc'd; NULL on failure. */
char *gz_engine_resolve_glob(const char *pat);

/* ---- records.c helpers for texts.c ---- */

#define GZ_RECORDS_ERR_MAX 512 /* bytes of a malformed row's reason, NUL included */

/* 1 if s is valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
int gz_utf8_valid(const char *s);
/* Why the last gz_records_next returned a negative status (without "FILE:LINE: "), or "". */
const char *gz_records_error(const gz_records *r);
/* The field names of the current record, joined by ", ", into out (cap bytes, truncated). */
void gz_records_field_names(const gz_records *r, char *out, size_t cap);
/* The current record as a compact JSON object of strings (and nulls) in field order;
 * malloc'd, NULL when out of memory. */
char *gz_records_meta_json(const gz_records *r);

#endif
