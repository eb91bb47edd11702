/* gaze.h - multimodal image-text retrieval: the one public header.
 *
 * Basic usage:
 *   gz_model *m = NULL;
 *   gz_model_params mp = gz_model_default_params();
 *   if (gz_model_load("models/blip-itm-base-coco", &mp, &m) != GZ_OK) { fputs(gz_last_error(), stderr); ... }
 *   float *v = malloc(gz_model_dim(m) * sizeof *v);
 *   const char *q = "a dog on a beach";
 *   gz_encode_texts(m, &q, 1, v);                  // v is L2-normalised, gz_model_dim(m) floats
 *   gz_model_free(m);
 *
 *   gz_db *db = NULL;
 *   gz_db_params dp = gz_db_default_params();
 *   gz_db_open("photos.gaze", &dp, &db);           // SQLite truth + FAISS cache, see the db section
 *
 * Thread safety: a gz_model may be shared by threads for encoding; a gz_db handle may not.
 * Errors: every function returning gz_status sets a message readable with gz_last_error()
 * (thread-local) that names the file and the reason. Nothing here prints or exits.
 *
 * Families (config.json model_type): blip (BlipForImageTextRetrieval, the default: ITC
 * embeddings + ITM cross-attention re-ranking), clip (CLIPModel, OpenCLIP in HF format),
 * chinese_clip (ChineseCLIPModel). Weights are read unconverted from Hugging Face's layout:
 * config.json, model.safetensors (or sharded model.safetensors.index.json; F32/F16/BF16),
 * tokenizer files and preprocessor_config.json. */
#ifndef GAZE_H
#define GAZE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ===== Status and errors (core/error.c) ===== */

typedef enum {
    GZ_OK = 0,
    GZ_EINVAL = -1,        /* bad argument or malformed input file */
    GZ_EIO = -2,           /* read/write failed; errno text in the message */
    GZ_ENOMEM = -3,        /* allocation failed or a size limit was exceeded */
    GZ_EUNSUPPORTED = -4,  /* valid input we do not handle (format, model family, feature) */
    GZ_ECORRUPT = -5,      /* stored data failed a consistency check */
    GZ_ENOTFOUND = -6,     /* a named thing (file, tensor, item) does not exist */
    GZ_EINTERRUPTED = -7,  /* stopped on request (signal) after leaving state consistent */
} gz_status;

/* The calling thread's last error message ("<file>: <reason>"); "no error" if none. */
const char *gz_last_error(void);
/* A short name for a status ("invalid input", ...). */
const char *gz_status_name(gz_status s);

/* ===== Models (fusion/model.c) ===== */

typedef struct gz_model gz_model; /* opaque: config, tokenizer, towers, preprocessing */

typedef enum {
    GZ_FAMILY_BLIP = 1,         /* BlipForImageTextRetrieval: BERT + ViT + ITM fusion */
    GZ_FAMILY_CLIP = 2,         /* CLIPModel */
    GZ_FAMILY_CHINESE_CLIP = 3, /* ChineseCLIPModel */
} gz_family;

typedef struct {
    int n_threads;            /* 0 = all cores; also tells OpenBLAS */
    const char *weights_file; /* NULL: model.safetensors or model.safetensors.index.json in the
                                 directory; else a path (relative to the model directory or
                                 absolute), e.g. "model.f16.safetensors" */
    int exif_orient;          /* 1 = rotate photos upright before encoding (default); 0 = as
                                 stored, which is what the HF processors do (parity mode) */
    int64_t max_pixels;       /* refuse larger images from the header; default 100e6 */
    int fast_decode;          /* 1 = JPEG DCT-scaled decode when the photo is much larger than
                                 the model input (default); 0 = full decode, PIL-exact */
    int itm_enc_token;        /* BLIP ITM: 1 = replace the first id with [ENC] as original BLIP
                                 does; 0 = HF convention ([CLS] as tokenised), default */
    int clip_fast_tokenizer;  /* CLIP: 1 = HF fast-tokenizer text clean-up (NFC + lower-case);
                                 0 = slow tokenizer with ftfy clean-up (default, openai ids) */
    int batch_size;           /* images per forward pass; default 8 */
} gz_model_params;

gz_model_params gz_model_default_params(void);

/* Load a model directory in Hugging Face layout. Towers load lazily: a text query loads
 * only the tokenizer, text tower and its projection. Returns GZ_EINVAL/GZ_EIO/
 * GZ_EUNSUPPORTED with a message naming the file on error; *out is NULL then. */
gz_status gz_model_load(const char *dir, const gz_model_params *params, gz_model **out);
void gz_model_free(gz_model *m);

gz_family gz_model_family(const gz_model *m);
const char *gz_family_name(gz_family f); /* "blip", "clip", "chinese_clip" */
int gz_model_dim(const gz_model *m);     /* embedding size of both towers' projections */
int gz_model_has_itm(const gz_model *m); /* 1 for BLIP (cross-attention fusion) */
/* exp(logit_scale) for CLIP-family models (the temperature of their logits); 1 for BLIP. */
float gz_model_logit_scale(const gz_model *m);
/* A hex digest of config.json and the weight files' sizes + header bytes: two directories
 * holding the same checkpoint give the same string. out must hold 65 bytes. Currently 32
 * lowercase hex digits: XXH3-128 of config.json, preprocessor_config.json and every weight
 * file's size and safetensors header (each shard of a sharded checkpoint). */
gz_status gz_model_fingerprint(const gz_model *m, char out[65]);

/* ===== Images (vision_encoder/image.c) ===== */

typedef struct {
    int width, height;  /* of rgb: after orientation (if applied) and DCT scaling (if any) */
    uint8_t *rgb;       /* (height, width, 3) owned; free with gz_image_free */
    int orientation;    /* EXIF orientation found in the file, 1..8 (1 when absent); rgb is
                           already upright when exif_orient was set (HEIF: libheif applies the
                           container's rotation itself, EXIF is not applied again) */
    int src_width, src_height; /* full-resolution size of the same picture, before any DCT
                                  scaling (min_size), in the orientation of width/height */
    char taken_at[20];  /* EXIF DateTimeOriginal as "YYYY-MM-DD HH:MM:SS", "" if absent */
    char format[8];     /* "jpeg", "png", "webp", "heif", "gif" (first frame) */
} gz_image;

typedef struct {
    int exif_orient;     /* apply EXIF orientation (default 1) */
    int64_t max_pixels;  /* refuse above this many stored pixels (default 100e6) */
    int min_size;        /* 0 = full-size decode; else JPEG may be decoded at the smallest DCT
                            scale whose both sides stay >= min_size */
} gz_image_params;

gz_image_params gz_image_default_params(void);
/* Decode a file (format detected by content; colours as PIL's convert('RGB'): alpha
 * dropped, palette looked up). On error the message names the file and says why, img is
 * left empty (zeroed): GZ_EUNSUPPORTED "unsupported format", GZ_EINVAL truncated/corrupt/
 * empty, GZ_ENOMEM above max_pixels (checked from the header), GZ_ENOTFOUND/GZ_EIO. */
gz_status gz_image_load(const char *path, const gz_image_params *params, gz_image *img);
gz_status gz_image_load_memory(const void *data, size_t size, const char *name,
                               const gz_image_params *params, gz_image *img);
void gz_image_free(gz_image *img);
/* Image decode parameters the model's preprocessing wants (min_size, exif, max_pixels). */
gz_image_params gz_model_image_params(const gz_model *m);

/* ===== Encoding (fusion/model.c) ===== */

/* Encode n texts into out (n, gz_model_dim) L2-normalised rows. Texts longer than the
 * model's maximum length are truncated as the model's tokenizer does. */
gz_status gz_encode_texts(gz_model *m, const char *const *texts, int n, float *out);
/* Encode n decoded images (preprocessed as the model's preprocessor_config.json says). */
gz_status gz_encode_images(gz_model *m, const gz_image *images, int n, float *out);
/* Encode n already preprocessed images: pixels is (n, 3, S, S) float32, S = image size. */
gz_status gz_encode_pixels(gz_model *m, const float *pixels, int n, float *out);
int gz_model_image_size(const gz_model *m);

/* ===== Matching and fusion (fusion/) ===== */

typedef struct {
    float itc;          /* cosine of the two normalised embeddings (all families) */
    float logit;        /* CLIP family: exp(logit_scale) * itc; BLIP: itc */
    float itm_logit[2]; /* BLIP ITM head: [no match, match] */
    float itm_prob;     /* BLIP: softmax(itm_logit)[1] */
    float score;        /* BLIP: itm_logit[1] + itc (LAVIS' re-rank score); CLIP: logit */
} gz_match;

/* Score one image against n texts. For BLIP the image's cross-attention keys/values are
 * computed once and shared by all texts. CLIP-family models fill itc, logit and score (ITM
 * fields 0); with params.itm_enc_token set they return GZ_EUNSUPPORTED (no ITM head). */
gz_status gz_match_image_texts(gz_model *m, const gz_image *image, const char *const *texts, int n,
                               gz_match *out);
/* Score one text against n images. */
gz_status gz_match_text_images(gz_model *m, const char *text, const gz_image *images, int n,
                               gz_match *out);

/* Re-rank candidates in place by score (descending), stable for ties. order[i] receives the
 * original index of the i-th best candidate. */
void gz_rank_by_score(const gz_match *scores, int n, int *order);

/* ===== Database (index/) ===== */
/* BEGIN DB SECTION (owned by the index module) */
/* The store: SQLite (the truth: items, metadata, embeddings keyed by (item, model)) plus one
 * FAISS index per (model, kind), a cache written next to the database as
 * "<db>.m<model_id>.<image|text>.faiss" and rebuilt from SQLite whenever it is missing,
 * corrupt or stale (its header carries the generation SQLite holds in index_state).
 *
 *   gz_db *db = NULL;
 *   gz_db_params dp = gz_db_default_params();
 *   if (gz_db_open("photos.gaze", &dp, &db) != GZ_OK) { fputs(gz_last_error(), stderr); ... }
 *   int64_t mid;
 *   gz_db_register_model(db, "models/blip", "blip", 256, fingerprint, &mid);
 *   gz_db_begin(db);                                   // one transaction per batch
 *   gz_item it = {.kind = GZ_ITEM_IMAGE, .path = p, .path_len = strlen(p), .size = ..};
 *   gz_db_upsert_item(db, &it);                        // sets it.id
 *   gz_db_put_embedding(db, it.id, mid, vec, 256);     // vec L2-normalised
 *   gz_db_commit(db);
 *   gz_hit hits[10]; int n;
 *   gz_db_search(db, mid, GZ_ITEM_IMAGE, qvec, 256, 10, -1.0f, hits, &n);
 *   gz_db_close(db);                                   // writes changed FAISS files
 *
 * Errors: GZ_EINVAL bad argument; GZ_EIO SQLite/file failure (message has the SQLite text);
 * GZ_ECORRUPT a database that fails its checks; GZ_EUNSUPPORTED a database written by a newer
 * gaze (schema version above ours); GZ_ENOTFOUND a missing item/model/embedding.
 * Notices (an index rebuilt, IVF fell back to Flat, ...) are not errors: they go to
 * params.notice if set, and are also kept for gz_db_notice(). The library never prints.
 * Concurrency: one writer process and any number of readers (WAL, busy_timeout). A reader
 * never sees half a batch, and reloads/rebuilds its FAISS index when the generation moves. */

typedef struct gz_db gz_db; /* opaque: SQLite connection + loaded FAISS indexes */

typedef enum { GZ_ITEM_IMAGE = 1, GZ_ITEM_TEXT = 2 } gz_item_kind;
typedef enum { GZ_ITEM_OK = 0, GZ_ITEM_FAILED = 1, GZ_ITEM_MISSING = 2 } gz_item_status;

typedef void (*gz_db_notice_fn)(void *user, const char *message);

typedef struct {
    const char *factory; /* FAISS factory string for indexes: NULL = keep each index's stored
                            choice ("Flat" for a new one); "Flat" (exact inner product),
                            "HNSW32" (any HNSWn), "IVF256,Flat", "IVF1024,PQ32" (PQ stages
                            are built without polysemous training, as "PQ32np") ... An index
                            stored with another factory is rebuilt with this one. IVF below its
                            training minimum (39 * max(nlist, 256 if PQ) vectors) is built as
                            Flat, with a notice, and retrained once enough vectors exist. */
    int hnsw_ef_search;  /* HNSW efSearch (default 128) */
    int ivf_nprobe;      /* IVF nprobe (default 16) */
    int readonly;        /* 1: open read-only; never writes SQLite nor FAISS files (stale
                            indexes are rebuilt in memory only). For search-only processes. */
    int busy_timeout_ms; /* wait for another process's lock this long (default 10000) */
    int save_every_commit; /* 1: write changed FAISS files at every gz_db_commit (readers then
                              load instead of rebuilding); 0 (default): at gz_db_close /
                              gz_db_save_indexes */
    gz_db_notice_fn notice; /* optional: called with each notice */
    void *notice_user;
} gz_db_params;

gz_db_params gz_db_default_params(void);

/* Open (creating if needed, unless readonly) the database at path. Sets WAL mode, checks the
 * schema version (PRAGMA user_version) and migrates an older schema explicitly; a newer one
 * is refused with GZ_EUNSUPPORTED ("written by a newer gaze: schema N > M"). When writable,
 * every FAISS file whose header does not match SQLite's generation (missing, stale, bad
 * header, other factory) is rebuilt now, with a notice. On error *out is NULL. */
gz_status gz_db_open(const char *path, const gz_db_params *params, gz_db **out);
/* Commit nothing that is open (an open transaction is rolled back), write the FAISS files of
 * indexes changed in this session, close. NULL is a no-op. Returns the first error met while
 * saving (the database itself is always consistent). */
gz_status gz_db_close(gz_db *db);
/* Notices since the last call, joined by '\n', or NULL if none. Owned by db; valid until the
 * next call on db. */
const char *gz_db_notice(gz_db *db);
/* Schema version this library writes (PRAGMA user_version). */
int gz_db_schema_version(void);

/* ---- models ---- */
typedef struct {
    int64_t id;
    char name[4096];      /* how to find it (e.g. the model directory as given) */
    char family[32];      /* "blip", "clip", "chinese_clip" */
    int dim;              /* embedding size */
    char fingerprint[65]; /* gz_model_fingerprint() */
    int64_t last_used;    /* unix seconds of the last gz_db_register_model */
    int64_t n_embeddings; /* stored vectors for this model (all kinds) */
} gz_db_model;

/* Register a model, idempotent by fingerprint: an existing row keeps its id and gets the new
 * name and last_used = now. GZ_EINVAL if the fingerprint is known with another dim or if
 * dim <= 0 or > 65536. Sets *model_id. */
gz_status gz_db_register_model(gz_db *db, const char *name, const char *family, int dim,
                               const char *fingerprint, int64_t *model_id);
/* All models, most recently used first: *out malloc'd (free with free()), *n entries. */
gz_status gz_db_models(gz_db *db, gz_db_model **out, int *n);
/* The most recently used model; GZ_ENOTFOUND if none is registered. */
gz_status gz_db_default_model(gz_db *db, gz_db_model *out);
gz_status gz_db_get_model(gz_db *db, int64_t model_id, gz_db_model *out); /* GZ_ENOTFOUND */

/* ---- items ---- */
/* One image or text. As input (upsert) the strings are read, not kept. As output (get/find)
 * the strings are malloc'd and owned by the struct: release with gz_item_clear. NULL strings
 * mean absent. An item is identified by (kind, path bytes, ext_id). */
typedef struct {
    int64_t id;                /* > 0 once stored */
    gz_item_kind kind;
    const char *path;          /* raw bytes, path_len of them (any bytes: non-UTF-8 names
                                  round-trip); on output also NUL-terminated */
    size_t path_len;
    const char *ext_id;        /* optional external id (caption id, line number); NULL = "" */
    const char *text;          /* text items: the text */
    int64_t size;              /* file size in bytes */
    int64_t mtime_ns;          /* file modification time, ns since the epoch */
    uint64_t content_hash;     /* gz_hash_file(); 0 = unknown */
    int width, height;         /* images: pixels after orientation; 0 = unknown */
    const char *taken_at;      /* EXIF capture time "YYYY-MM-DD HH:MM:SS" */
    const char *meta_json;     /* free-form JSON object */
    int64_t link_item_id;      /* text items: the image it describes; 0 = none */
    gz_item_status status;
    const char *error;         /* why it failed (status GZ_ITEM_FAILED) */
} gz_item;

/* Free the strings of an item filled by the library and zero it. */
void gz_item_clear(gz_item *item);
/* xxh3-64 of a whole file's bytes. GZ_EIO with the errno text if unreadable. */
gz_status gz_hash_file(const char *path, uint64_t *hash);

/* Batches: everything between begin and commit is one SQLite transaction, and so is each
 * write call made outside begin/commit. gz_db_begin inside an open batch is GZ_EINVAL. */
gz_status gz_db_begin(gz_db *db);
gz_status gz_db_commit(gz_db *db);
gz_status gz_db_rollback(gz_db *db);

/* Insert or update by item->id (> 0) or else by (kind, path, ext_id); sets item->id. Every
 * field is written. If the stored content_hash or text differs from the new one, the item's
 * embeddings are deleted (they describe old content). Status other than OK takes the item's
 * vectors out of the search indexes (they stay stored); OK puts them back. */
gz_status gz_db_upsert_item(gz_db *db, gz_item *item);
/* Look up by (kind, path bytes, ext_id (NULL = "")); fills *out (gz_item_clear it). */
gz_status gz_db_find_by_path(gz_db *db, gz_item_kind kind, const char *path, size_t path_len,
                             const char *ext_id, gz_item *out);
/* An item of this kind with this content hash, other than exclude_id, preferring one that
 * has an embedding for model_id (model_id 0: any). GZ_ENOTFOUND if none. */
gz_status gz_db_find_by_hash(gz_db *db, gz_item_kind kind, uint64_t hash, int64_t model_id,
                             int64_t exclude_id, int64_t *item_id);
gz_status gz_db_get_item(gz_db *db, int64_t item_id, gz_item *out);
/* Ids (ascending) of items of a kind (0 = all kinds) whose path starts with the prefix bytes
 * (prefix_len 0 = all) and, if status >= 0, with that status. *ids malloc'd (free()). */
gz_status gz_db_list_items(gz_db *db, int kind, const char *prefix, size_t prefix_len,
                           int status, int64_t **ids, size_t *n);
/* Set status MISSING (vanished file): out of the indexes, row and vectors kept. */
gz_status gz_db_mark_missing(gz_db *db, int64_t item_id);
/* Delete one item and its embeddings (texts linked to it keep existing, unlinked). */
gz_status gz_db_remove_item(gz_db *db, int64_t item_id);
/* Delete every MISSING item under the path prefix (prefix_len 0 = all); *n_removed may be
 * NULL. */
gz_status gz_db_prune_missing(gz_db *db, const char *prefix, size_t prefix_len,
                              int64_t *n_removed);

/* ---- embeddings ---- */
/* Store (replace) the vector of (item, model); dim must equal the model's dim; values must
 * be finite (callers pass L2-normalised vectors: search scores are inner products). */
gz_status gz_db_put_embedding(gz_db *db, int64_t item_id, int64_t model_id, const float *vec,
                              int dim);
/* Read it into out (dim floats; out may be NULL to test existence). GZ_ENOTFOUND if none. */
gz_status gz_db_get_embedding(gz_db *db, int64_t item_id, int64_t model_id, float *out, int dim);

/* ---- search ---- */
typedef struct {
    int64_t item_id;
    float score; /* inner product (cosine for normalised vectors) */
} gz_hit;

/* Top-k items of a kind for the query vector (dim floats, normalised), best first (ties by
 * ascending id), with score >= min_score, among items with status OK that have an embedding
 * for model_id. hits must hold k entries; *n_hits receives how many were found (0 when the
 * model has no vectors of that kind). Uses the FAISS index of (model, kind), loading or
 * rebuilding it first if it is not current (notice). */
gz_status gz_db_search(gz_db *db, int64_t model_id, gz_item_kind kind, const float *query,
                       int dim, int k, float min_score, gz_hit *hits, int *n_hits);

/* Rebuild the FAISS index of (model, kind) from SQLite now (model_id 0: every index) and,
 * unless readonly, write its file. */
gz_status gz_db_rebuild_index(gz_db *db, int64_t model_id, int kind);
/* Write the file of every index changed since it was loaded (also done by gz_db_close). */
gz_status gz_db_save_indexes(gz_db *db);

typedef struct {
    int64_t model_id;
    gz_item_kind kind;
    char factory[64];       /* requested factory string */
    char effective[64];     /* what was built ("Flat" while IVF lacks training data) */
    int64_t generation;     /* SQLite's generation */
    int64_t n_vectors;      /* live vectors in the loaded index */
    int64_t n_dead;         /* removed but still in the FAISS structure (dropped at query) */
    int64_t file_bytes;     /* size of the FAISS file, 0 if absent */
    int file_current;       /* 1 if the file's header matches the generation */
} gz_db_index_state;

/* State of the index of (model, kind), loading (or rebuilding) it first so n_vectors is what
 * a search would use. */
gz_status gz_db_index_info(gz_db *db, int64_t model_id, gz_item_kind kind,
                           gz_db_index_state *out);

typedef struct {
    int schema_version;
    int64_t n_items[3];           /* [0] all, [GZ_ITEM_IMAGE], [GZ_ITEM_TEXT] */
    int64_t n_status[3];          /* by gz_item_status */
    int64_t n_models, n_embeddings, n_indexes;
    int64_t db_bytes;             /* database + WAL file sizes */
    int64_t index_bytes;          /* all FAISS files */
} gz_db_stats;
gz_status gz_db_get_stats(gz_db *db, gz_db_stats *out);

/* Small string settings kept in the database (e.g. CLI defaults). get: *value malloc'd,
 * GZ_ENOTFOUND if unset. set with value NULL deletes. */
gz_status gz_db_set_meta(gz_db *db, const char *key, const char *value);
gz_status gz_db_get_meta(gz_db *db, const char *key, char **value);
/* END DB SECTION */

const char *gz_version(void);

#ifdef __cplusplus
}
#endif
#endif
