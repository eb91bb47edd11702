/* engine_internal.h - the engine handle's fields and helpers, shared by engine/ only. */
#ifndef GZ_ENGINE_ENGINE_INTERNAL_H
#define GZ_ENGINE_ENGINE_INTERNAL_H

#include "gaze.h"

struct gz_engine {
    gz_db *db;
    gz_model *model;      /* NULL until gz_engine_model */
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

/* ---- records.c helpers for texts.c ---- */

#define GZ_RECORDS_ERR_MAX 512 /* bytes of a malformed row's reason, NUL included */

/* 1 if s is valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
int gz_utf8_valid(const char *s);
/* Why the last gz_records_next returned a negative status (without "FILE:LINE: "), or "". */
const char *gz_records_error(const gz_records *r);
/* The current record as a compact JSON object of strings (and nulls) in field order;
 * malloc'd, NULL when out of memory. */
char *gz_records_meta_json(const gz_records *r);

#endif
