/* gaze.h - multimodal image-text retrieval: the one public header.
 *
 * Basic usage:
 *   gz_model *m = NULL;
 *   gz_model_params mp = gz_model_default_params();
 *   if (gz_model_load("models/blip-itm-base-coco", &mp, &m) != GZ_OK) { fputs(gz_last_error(),
 * stderr); ... } float *v = malloc(gz_model_dim(m) * sizeof *v); const char *q = "a dog on a
 * beach"; gz_encode_texts(m, &q, 1, v);                  // v is L2-normalised, gz_model_dim(m)
 * floats gz_model_free(m);
 *
 *   gz_db *db = NULL;
 *   gz_db_params dp = gz_db_default_params();
 *   gz_db_open("photos.gaze", &dp, &db);           // SQLite truth + FAISS cache, see the db
 * section
 *
 * Thread safety: a gz_model may be shared by threads for encoding; a gz_db handle may not.
 * Threads and SIMD are each model's own (gz_model_params n_threads, simd): loading a second
 * model never changes the first's. OpenBLAS's thread count is process-wide by OpenBLAS's
 * design, so every encode/match call sets it to its model's n_threads when it starts; models
 * with different n_threads encoding at the same moment share whichever count was set last
 * for their matrix products (their other loops keep their own).
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

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===== Status and errors (core/status.h, core/error.c) =====
 * gz_status (GZ_OK = 0, negative codes), gz_family, gz_last_error() and gz_status_name()
 * are declared in core/status.h, included above, so the layers below this API share them. */

/* ===== Defaults =====
 * Each default has one home, here: the default-params functions, the engine and the CLI's
 * help text use these names rather than repeating the numbers. */
#define GZ_DEFAULT_MAX_PIXELS INT64_C(100000000) /* refuse images above 100 MP (header) */
#define GZ_DEFAULT_BATCH 8          /* images per forward pass and per ingest transaction */
#define GZ_DEFAULT_TEXTS_BATCH 32   /* texts per forward pass and per add-texts transaction */
#define GZ_DEFAULT_K 10             /* search results wanted */
#define GZ_NO_MIN_SCORE (-2.0f)     /* a min_score below every cosine: no result is dropped */
#define GZ_DEFAULT_TEXT_WEIGHT 0.5f /* products: weight of the text cosine */

/* ===== Models (model/) ===== */

typedef struct gz_model gz_model; /* opaque: config, tokenizer, towers, preprocessing */

/* What a model's Linear layers compute in (gz_model_params.precision). */
typedef enum {
    GZ_PRECISION_FP32 = 0, /* fp32 weights, the parity path (default) */
    GZ_PRECISION_BF16 = 1  /* bf16 weights (copied once per tower, on its first use) and
                              AVX512-BF16 dot products with fp32 accumulation: about 2x faster,
                              embeddings within ~1e-3 cosine of fp32 */
} gz_precision;

/* 1 when this process can run GZ_PRECISION_BF16: the CPU has AVX512-BF16 (and AVX512-BW/VL)
 * and the environment variable GAZE_NO_BF16 is unset or empty (it pretends the CPU lacks them,
 * to exercise the fallback). Otherwise a model asked for bf16 computes in fp32. */
int gz_bf16_available(void);

typedef struct {
    int n_threads;            /* threads of this model's loops, 0 = all cores; OpenBLAS (whose
                                 count is process-wide) is set to it by every encode/match call */
    int simd;                 /* 1 = vectorised kernels, AVX-512/AVX2 where the CPU has them
                                 (default); 0 = the plain reference loops, for comparison. The
                                 environment variable GAZE_GEMM=in-place (fp32 weights as stored:
                                 the kernels before the packed ones) or GAZE_GEMM=reference
                                 (OpenBLAS for every Linear layer) picks slower Linear kernels,
                                 for comparisons */
    const char *weights_file; /* NULL: model.safetensors or model.safetensors.index.json in the
                                 directory; else a path (relative to the model directory or
                                 absolute), e.g. "model.f16.safetensors" */
    int exif_orient;          /* 1 = rotate photos upright before encoding (default); 0 = as
                                 stored, which is what the HF processors do (parity mode) */
    int64_t max_pixels; /* refuse larger images from the header; default GZ_DEFAULT_MAX_PIXELS */
    int fast_decode;    /* 1 = JPEG DCT-scaled decode when the photo is much larger than
                           the model input (faster, embeddings off the reference by up
                           to ~5e-2); 0 = full decode, PIL-exact (default) */
    int itm_enc_token;  /* BLIP ITM: 1 = replace the first id with [ENC] as original BLIP
                           does; 0 = HF convention ([CLS] as tokenised), default */
    int clip_fast_tokenizer; /* CLIP: 1 = HF fast-tokenizer text clean-up (NFC + lower-case);
                                0 = slow tokenizer with ftfy clean-up (default, openai ids) */
    int batch_size;          /* images per forward pass; default 8 */
    gz_precision precision;  /* GZ_PRECISION_FP32 (default) or GZ_PRECISION_BF16, which falls
                                back to fp32 where gz_bf16_available() is 0 (and with simd 0) */
    int fp32_packed;         /* fp32: 1 = each tower copies its Linear weights into gaze's
                                packed layout before the forward that brings the rows it has
                                run to 1024 (a batch of 2 BLIP images, the second single one,
                                about the 80th text query; default: 10-20% faster from then
                                on, and a private copy the size of the weights that replaces
                                their file pages); 0 = read them as stored, from pages every
                                model and process mapping the checkpoint shares (several
                                processes serving one checkpoint) */
    int concurrency;         /* forwards expected at once on this model (default 1): each of
                                the first concurrency gets its own n_threads compute threads,
                                later ones start threads per parallel loop (gaze serve: its
                                request threads and its writer share one model) */
} gz_model_params;

gz_model_params gz_model_default_params(void);

/* Load a model directory in Hugging Face layout, or a Hub id "ORG/NAME[@REVISION]" from the
 * huggingface_hub cache, offline (gz_hub_locate: an existing folder wins over an id; the
 * origin is kept, gz_model_hub_id). Towers load lazily: a text query loads only the tokenizer,
 * text tower and its projection. Returns GZ_EINVAL/GZ_EIO/GZ_EUNSUPPORTED with a message
 * naming the file on error, GZ_ENOTFOUND for an id not in the cache; *out is NULL then. */
gz_status gz_model_load(const char *dir, const gz_model_params *params, gz_model **out);
void gz_model_free(gz_model *m);

gz_family gz_model_family(const gz_model *m);
const char *gz_family_name(gz_family f); /* "blip", "clip", "chinese_clip" */
int gz_model_dim(const gz_model *m);     /* embedding size of both towers' projections */
int gz_model_has_itm(const gz_model *m); /* 1 for BLIP (cross-attention fusion) */
int gz_model_threads(const gz_model *m); /* threads its loops run on (n_threads, 0 resolved) */
/* exp(logit_scale) for CLIP-family models (the temperature of their logits); 1 for BLIP. */
float gz_model_logit_scale(const gz_model *m);
/* The precision m computes in: params.precision, or GZ_PRECISION_FP32 after a fallback. */
gz_precision gz_model_precision(const gz_model *m);
/* The model's identity, a hex digest of config.json, preprocessor_config.json and the weights:
 * two directories holding the same checkpoint give the same string; two checkpoints with the
 * same shapes and different weights give two. out must hold 65 bytes. Currently 32 lowercase
 * hex digits: XXH3-128 over the legacy fingerprint and the XXH3-128 of every weights file's
 * bytes (hashed once per file version, cached in $XDG_CACHE_HOME/gaze/content-hashes). */
gz_status gz_model_fingerprint(const gz_model *m, char out[65]);
/* The fingerprint of gaze before issue #15 (configs and the weights' sizes and headers only),
 * which older databases store: the engine adopts such a row for this model (see
 * gz_db_adopt_fingerprint). */
gz_status gz_model_legacy_fingerprint(const gz_model *m, char out[65]);

/* Tokenise text with the model's own tokenizer (loaded on first use, as for encoding), special
 * tokens included. max_length < 0: truncate to gz_model_max_length(m), as encoding does;
 * 0: no truncation; > 0: truncate to that many ids. *ids is malloc'd (caller frees), *n ids.
 * GZ_EINVAL for bad arguments; the tokenizer's load errors (message names the file). On error
 * *ids is NULL and *n 0. Thread-safe like encoding. */
gz_status gz_model_tokenize(gz_model *m, const char *text, int max_length, int32_t **ids, int *n);
/* The vocabulary string of token id (e.g. "dog", "</w>"-suffixed BPE pieces, "[CLS]"), owned by
 * m; NULL when id is out of range or the tokenizer cannot be loaded (message set). */
const char *gz_model_token_text(gz_model *m, int32_t id);
/* The longest token sequence (special tokens included) the text tower is given: 35 (BLIP),
 * 77 (CLIP), 52 (Chinese-CLIP) for the usual checkpoints. Loads the tokenizer if needed;
 * -1 when it cannot be loaded (message set). */
int gz_model_max_length(gz_model *m);

/* What a model directory holds, read from config.json and the weight files' headers only
 * (no preprocessor_config.json or tokenizer needed, no tensor data read): gaze info. */
typedef struct {
    char model_type[32];   /* config.json model_type: "blip", "clip", "chinese_clip" */
    char architecture[64]; /* config.json architectures[0]; "" when absent */
    gz_family family;
    int projection_dim; /* embedding size (gz_model_dim) */
    int has_itm;        /* 1 for BLIP (image-text matching head) */
    struct {
        int hidden_size, layers, heads, intermediate_size, vocab_size, max_positions;
        const char *act;       /* activation name, static: "gelu", "quick_gelu", ... */
        const char *tokenizer; /* static: "WordPiece" (BLIP, Chinese-CLIP) or "byte-level BPE" */
    } text;
    struct {
        int hidden_size, layers, heads, intermediate_size, image_size, patch_size;
        int patches;     /* (image_size / patch_size)^2, class token not counted */
        const char *act; /* static */
    } vision;
    size_t parameters; /* elements of all tensors */
    size_t tensors;    /* number of tensors */
    char dtypes[64];   /* dtypes present, sorted, joined by '+': "F32", "F16+F32" */
    size_t file_bytes; /* total size of the weight file(s) */
} gz_model_info;

/* Describe the model directory dir. weights_file as in gz_model_params (NULL: the default
 * model.safetensors, .index.json, pytorch_model.bin, ... search). GZ_OK and *out filled, or the
 * config / weights reader's error (GZ_ENOTFOUND, GZ_EIO, GZ_EINVAL, GZ_EUNSUPPORTED) with a
 * message naming the file; *out is zeroed then. */
gz_status gz_model_describe(const char *dir, const char *weights_file, gz_model_info *out);

/* Read an already preprocessed pixel tensor for gz_encode_pixels from the safetensors (or
 * torch.save) file path: tensor key (NULL: "pixel_values") of shape (N, 3, S, S),
 * S = gz_model_image_size(m), any float dtype. *pixels is a malloc'd F32 copy (caller frees),
 * *n = N. GZ_ENOTFOUND "no tensor 'K'" when the file lacks key; GZ_EINVAL when its shape is
 * not (N, 3, S, S); the file reader's errors otherwise. On error *pixels is NULL and *n 0. */
gz_status gz_model_load_pixels(gz_model *m, const char *path, const char *key, float **pixels,
                               int *n);

/* ===== Images (vision_encoder/image.c) ===== */

typedef struct {
    int width, height;         /* of rgb: after orientation (if applied) and DCT scaling (if any) */
    uint8_t *rgb;              /* (height, width, 3) owned; free with gz_image_free */
    int orientation;           /* EXIF orientation found in the file, 1..8 (1 when absent); rgb is
                                  already upright when exif_orient was set (HEIF: libheif applies the
                                  container's rotation itself, EXIF is not applied again) */
    int src_width, src_height; /* full-resolution size of the same picture, before any DCT
                                  scaling (min_size), in the orientation of width/height */
    char taken_at[20];         /* EXIF DateTimeOriginal as "YYYY-MM-DD HH:MM:SS", "" if absent */
    char format[8];            /* "jpeg", "png", "webp", "heif", "gif" (first frame) */
} gz_image;

typedef struct {
    int exif_orient;    /* apply EXIF orientation (default 1) */
    int64_t max_pixels; /* refuse above this many stored pixels (default GZ_DEFAULT_MAX_PIXELS) */
    int min_size;       /* 0 = full-size decode; else JPEG may be decoded at the smallest DCT
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
/* A small copy of img whose longer side is at most max_side (aspect kept, never enlarged;
 * stb_image_resize, not PIL-exact: for previews such as the HTML gallery). out gets its own
 * pixels (free with gz_image_free) and img's metadata with the new width/height. GZ_EINVAL
 * for an empty image or max_side <= 0 (out left empty), GZ_ENOMEM. */
gz_status gz_image_thumbnail(const gz_image *img, int max_side, gz_image *out);

/* ===== Encoding (model/) ===== */

/* Encode n texts into out (n, gz_model_dim) L2-normalised rows. Texts longer than the
 * model's maximum length are truncated as the model's tokenizer does. */
gz_status gz_encode_texts(gz_model *m, const char *const *texts, int n, float *out);
/* Encode n decoded images (preprocessed as the model's preprocessor_config.json says). */
gz_status gz_encode_images(gz_model *m, const gz_image *images, int n, float *out);
/* Encode n already preprocessed images: pixels is (n, 3, S, S) float32, S = image size. */
gz_status gz_encode_pixels(gz_model *m, const float *pixels, int n, float *out);
int gz_model_image_size(const gz_model *m);
/* The shape of an image's final vision token states: *n_tokens (class token + patches) and
 * *dim (vision hidden size). BLIP's ITM head cross-attends to exactly these states. */
void gz_model_image_token_shape(const gz_model *m, int *n_tokens, int *dim);
/* gz_encode_images that also writes each image's final vision token states into tokens
 * (n, n_tokens, dim) floats: BLIP's post-LayerNorm last hidden state, what its ITM head
 * consumes (gz_match_text_tokens). GZ_EUNSUPPORTED for a model without ITM (CLIP family). */
gz_status gz_encode_images_tokens(gz_model *m, const gz_image *images, int n, float *out,
                                  float *tokens);

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
/* As gz_match_text_images, with the text's embedding already computed: text_embedding holds
 * gz_model_dim(m) floats, L2-normalised, as gz_encode_texts gives for text (e.g. a search's
 * query vector), and the text tower does not run again; the text is still tokenised for the
 * ITM head. itc (and so logit and score) is the dot product of text_embedding with each image's
 * embedding. text_embedding NULL: encode the text, exactly as gz_match_text_images. */
gz_status gz_match_text_images_embedded(gz_model *m, const char *text, const float *text_embedding,
                                        const gz_image *images, int n, gz_match *out);
/* Texts the model's text tower has encoded since gz_model_load, over every entry point
 * (encoding and matching; thread-safe). For diagnostics and tests: a search that re-ranks a
 * text query encodes that text once. */
int64_t gz_model_texts_encoded(const gz_model *m);
/* BLIP ITM of one text against n images given by their final vision token states (tokens[i]:
 * (n_tokens, dim) floats as gz_encode_images_tokens gives them, e.g. decoded from the store):
 * no image is decoded and the vision tower does not run. Fills itm_logit and itm_prob of each
 * out[i]; itc, logit and score are NaN (the caller has the ITC from its search; combine with
 * gz_score rules as it needs). GZ_EUNSUPPORTED for a model without ITM. */
gz_status gz_match_text_tokens(gz_model *m, const char *text, const float *const *tokens, int n,
                               gz_match *out);

/* Order n candidates by score, best first, without moving them: order[r] receives the index
 * (into scores) of the candidate at rank r; scores is only read. Descending score; the sort is
 * stable: equal scores keep their input order (lower index first); NaN scores rank after every
 * number, among themselves in input order. n <= 0 or a NULL argument does nothing. Cannot fail:
 * without memory for its scratch it falls back to an in-place insertion sort (same order). */
void gz_rank_by_score(const gz_match *scores, int n, int *order);

/* ===== Store (store/) ===== */
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
    const char *factory;    /* FAISS factory string for indexes: NULL = keep each index's stored
                               choice ("Flat" for a new one); "Flat" (exact inner product),
                               "HNSW32" (any HNSWn), "IVF256,Flat", "IVF1024,PQ32" (PQ stages
                               are built without polysemous training, as "PQ32np") ... An index
                               stored with another factory is rebuilt with this one. IVF below its
                               training minimum (39 * max(nlist, 256 if PQ) vectors) is built as
                               Flat, with a notice, and retrained once enough vectors exist. */
    int hnsw_ef_search;     /* HNSW efSearch (default 128) */
    int ivf_nprobe;         /* IVF nprobe (default 16) */
    int readonly;           /* 1: open read-only; never writes SQLite nor FAISS files (stale
                               indexes are rebuilt in memory only). For search-only processes. */
    int busy_timeout_ms;    /* wait for another process's lock this long (default 10000) */
    int save_every_commit;  /* 1: write changed FAISS files at every gz_db_commit (readers then
                               load instead of rebuilding); 0 (default): at gz_db_close /
                               gz_db_save_indexes */
    gz_db_notice_fn notice; /* optional: called with each notice */
    void *notice_user;
} gz_db_params;

gz_db_params gz_db_default_params(void);

/* GZ_OK if factory is an index type gaze builds: Flat, HNSW<M> (M 2-256), IVF<nlist>,Flat
 * (nlist 1-65536), IVF<nlist>,PQ<m>[x<bits>] or PQ<m>[x<bits>] (bits 1-8); dim > 0 also
 * checks that PQ's m divides it. Else GZ_EINVAL, the message saying why and listing the valid
 * forms. gz_db_open checks params.factory so, before it opens or stores anything; a database
 * that holds an invalid string from an older gaze uses Flat instead (notice). */
gz_status gz_db_check_factory(const char *factory, int dim);

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
    /* The Hugging Face Hub origin when it was registered from a Hub id (gz_model_hub_id), else
     * "" (a folder; databases from before schema 2). Sizes are GZ_HUB_ID_MAX, GZ_HUB_REV_MAX
     * and GZ_HUB_COMMIT_LEN + 1 of the Hub section. */
    char hub_id[97];        /* "ORG/NAME" */
    char hub_revision[256]; /* the revision asked for: "main", a tag, a commit */
    char hub_commit[41];    /* the snapshot's commit when registered */
} gz_db_model;

/* Register a model, idempotent by fingerprint: an existing row keeps its id and gets the new
 * name, no Hub origin, and last_used = now. GZ_EINVAL if the fingerprint is known with another
 * dim or if dim <= 0 or > 65536. Sets *model_id. */
gz_status gz_db_register_model(gz_db *db, const char *name, const char *family, int dim,
                               const char *fingerprint, int64_t *model_id);
/* gz_db_register_model for a model loaded by Hub id: the name (how later runs load it, e.g.
 * "ORG/NAME" so that it resolves from the cache again) and its Hub origin, all replaced on an
 * existing row. hub_id NULL or "" records no origin; the three strings must fit the arrays of
 * gz_db_model (GZ_EINVAL otherwise). */
gz_status gz_db_register_model_hub(gz_db *db, const char *name, const char *family, int dim,
                                   const char *fingerprint, const char *hub_id,
                                   const char *hub_revision, const char *hub_commit,
                                   int64_t *model_id);
/* Migration of model identities (issue #15): when no row has fingerprint fresh, the row with
 * fingerprint legacy (gz_model_legacy_fingerprint of the same model) takes fresh, with its
 * vectors and its preprocessing record. Older gaze identified a model by configs and weight
 * headers only, so the row is assumed to hold vectors of the weights now on disk: the first
 * run of a new gaze adopts it. *adopted (may be NULL) = 1 when a row changed. */
gz_status gz_db_adopt_fingerprint(gz_db *db, const char *legacy, const char *fresh, int *adopted);
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
    int64_t id; /* > 0 once stored */
    gz_item_kind kind;
    const char *path; /* raw bytes, path_len of them (any bytes: non-UTF-8 names
                         round-trip); on output also NUL-terminated */
    size_t path_len;
    const char *ext_id;    /* optional external id (caption id, line number); NULL = "" */
    const char *text;      /* text items: the text */
    int64_t size;          /* file size in bytes */
    int64_t mtime_ns;      /* file modification time, ns since the epoch */
    uint64_t content_hash; /* gz_hash_file(); 0 = unknown */
    int width, height;     /* images: pixels after orientation; 0 = unknown */
    const char *taken_at;  /* EXIF capture time "YYYY-MM-DD HH:MM:SS" */
    const char *meta_json; /* free-form JSON object */
    int64_t link_item_id;  /* text items: the image it describes; 0 = none */
    gz_item_status status;
    const char *error; /* why it failed (status GZ_ITEM_FAILED) */
} gz_item;

/* Free the strings of an item filled by the library and zero it. */
void gz_item_clear(gz_item *item);
/* xxh3-64 of a whole file's bytes. GZ_EIO with the errno text if unreadable. */
gz_status gz_hash_file(const char *path, uint64_t *hash);

/* Batches: everything between begin and commit is one SQLite transaction, and so is each
 * write call made outside begin/commit. gz_db_begin inside an open batch is GZ_EINVAL. */
gz_status gz_db_begin(gz_db *db);
/* A read transaction (BEGIN DEFERRED): one consistent snapshot for many reads, ended by
 * gz_db_commit or gz_db_rollback. Takes no write lock, so it neither waits for nor blocks
 * a writer; works on a read-only database. Writes belong in gz_db_begin batches. */
gz_status gz_db_begin_read(gz_db *db);
gz_status gz_db_commit(gz_db *db);
/* 1 while a batch (gz_db_begin) or read transaction (gz_db_begin_read) is open, else 0. */
int gz_db_in_batch(const gz_db *db);
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
gz_status gz_db_list_items(gz_db *db, int kind, const char *prefix, size_t prefix_len, int status,
                           int64_t **ids, size_t *n);
/* Set status MISSING (vanished file): out of the indexes, row and vectors kept. */
gz_status gz_db_mark_missing(gz_db *db, int64_t item_id);
/* Delete one item and its embeddings (texts linked to it keep existing, unlinked). */
gz_status gz_db_remove_item(gz_db *db, int64_t item_id);
/* Delete every MISSING item under the path prefix (prefix_len 0 = all); *n_removed may be
 * NULL. */
gz_status gz_db_prune_missing(gz_db *db, const char *prefix, size_t prefix_len, int64_t *n_removed);

/* ---- embeddings ---- */
/* Store (replace) the vector of (item, model); dim must equal the model's dim; values must
 * be finite (callers pass L2-normalised vectors: search scores are inner products). */
gz_status gz_db_put_embedding(gz_db *db, int64_t item_id, int64_t model_id, const float *vec,
                              int dim);
/* Read it into out (dim floats; out may be NULL to test existence). GZ_ENOTFOUND if none. */
gz_status gz_db_get_embedding(gz_db *db, int64_t item_id, int64_t model_id, float *out, int dim);

/* ---- vision token states (gaze index --keep-tokens) ---- */
/* How stored token states are compressed (store/tokens.h has the byte layouts). */
typedef enum {
    GZ_TOKENS_NONE = 0,
    GZ_TOKENS_INT8 = 1, /* one float32 scale per token + int8 values: D + 4 bytes a token */
    GZ_TOKENS_BF16 = 2, /* bfloat16 values: 2 D bytes a token */
} gz_tokens_format;
/* Store (replace) the final vision token states (n_tokens, dim) floats of (item, model),
 * compressed as format. The (item, model) embedding must exist (GZ_ENOTFOUND otherwise): the
 * tokens belong to the encode that made it, and are deleted with it (item removed, content
 * changed, embeddings dropped) and when gz_db_put_embedding stores a different vector.
 * GZ_EINVAL for a bad format or sizes, or a value that is not finite. */
gz_status gz_db_put_tokens(gz_db *db, int64_t item_id, int64_t model_id, gz_tokens_format format,
                           const float *states, int n_tokens, int dim);
/* Read the tokens of (item, model) decoded into out (n_tokens, dim floats; out NULL: only test
 * that they exist). *format (may be NULL) gets the stored format. GZ_ENOTFOUND if none;
 * GZ_EINVAL when the stored shape is not (n_tokens, dim) (out given); GZ_ECORRUPT for a damaged
 * record. */
gz_status gz_db_get_tokens(gz_db *db, int64_t item_id, int64_t model_id, float *out, int n_tokens,
                           int dim, gz_tokens_format *format);
/* Copy the tokens of (from_item, model) to (to_item, model), an item with the same content and
 * an embedding for model; nothing when from_item has none or from_item == to_item. */
gz_status gz_db_copy_tokens(gz_db *db, int64_t from_item, int64_t to_item, int64_t model_id);

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
gz_status gz_db_search(gz_db *db, int64_t model_id, gz_item_kind kind, const float *query, int dim,
                       int k, float min_score, gz_hit *hits, int *n_hits);

/* Rebuild the FAISS index of (model, kind) from SQLite now (model_id 0: every index) and,
 * unless readonly, write its file. */
gz_status gz_db_rebuild_index(gz_db *db, int64_t model_id, int kind);
/* Write the file of every index changed since it was loaded (also done by gz_db_close). */
gz_status gz_db_save_indexes(gz_db *db);

typedef struct {
    int64_t model_id;
    gz_item_kind kind;
    char factory[64];   /* requested factory string */
    char effective[64]; /* what was built ("Flat" while IVF lacks training data) */
    int64_t generation; /* SQLite's generation */
    int64_t n_vectors;  /* live vectors in the loaded index */
    int64_t n_dead;     /* removed but still in the FAISS structure (dropped at query) */
    int64_t file_bytes; /* size of the FAISS file, 0 if absent */
    int file_current;   /* 1 if the file's header matches the generation */
} gz_db_index_state;

/* State of the index of (model, kind), loading (or rebuilding) it first so n_vectors is what
 * a search would use. */
gz_status gz_db_index_info(gz_db *db, int64_t model_id, gz_item_kind kind, gz_db_index_state *out);

typedef struct {
    int schema_version;
    int64_t n_items[3];  /* [0] all, [GZ_ITEM_IMAGE], [GZ_ITEM_TEXT] */
    int64_t n_status[3]; /* by gz_item_status */
    int64_t n_models, n_embeddings, n_indexes;
    int64_t db_bytes;    /* database + WAL file sizes */
    int64_t index_bytes; /* all FAISS files */
    int64_t n_tokens;    /* (item, model) pairs with stored vision token states */
    int64_t token_bytes; /* their compressed size */
} gz_db_stats;
gz_status gz_db_get_stats(gz_db *db, gz_db_stats *out);

/* Coverage of a model: *total items of kind with status OK, *covered of them with a vector
 * of model_id (the others are not searched with that model). */
gz_status gz_db_coverage(gz_db *db, int64_t model_id, gz_item_kind kind, int64_t *covered,
                         int64_t *total);
/* Add a notice (params.notice and gz_db_notice), for the layers above the store. */
void gz_db_add_notice(gz_db *db, const char *message);

/* ---- snapshots (store/snapshot.c) ---- */
typedef struct {
    int indexes_copied; /* FAISS files copied at the snapshot's generation */
    int indexes_built;  /* indexes not saved at that generation, built from the copy */
    int64_t bytes;      /* database + FAISS bytes written */
} gz_snapshot_stats;

/* Write a consistent copy of the database src_path to dest_path (which must not exist) while
 * writers keep going: SQLite's online backup API copies one committed state; then each FAISS
 * file of src whose header holds that state's generation is copied, and any other index is
 * built from the copy. The copy uses a rollback journal (opens read-only without -wal/-shm);
 * a writable gz_db_open turns it back to WAL. stats may be NULL. Publish a snapshot for
 * read-only servers by writing it into a new folder and renaming a symlink onto it.
 * GZ_ENOTFOUND src missing, GZ_EINVAL dest exists, GZ_EIO (errno/SQLite text); on error
 * nothing is left at dest. */
gz_status gz_db_snapshot(const char *src_path, const char *dest_path, gz_snapshot_stats *stats);

/* Small string settings kept in the database (e.g. CLI defaults). get: *value malloc'd,
 * GZ_ENOTFOUND if unset. set with value NULL deletes. */
gz_status gz_db_set_meta(gz_db *db, const char *key, const char *value);
gz_status gz_db_get_meta(gz_db *db, const char *key, char **value);

/* ===== Engine (engine/) =====
 * The library layer under the gaze command and any service: ingest folders of photos, import
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
typedef struct gz_engine gz_engine;

typedef struct {
    const char *db_path;   /* required */
    const char *model_dir; /* NULL: the database's most recently used model */
    gz_model_params model; /* passed to gz_model_load */
    gz_db_params db;       /* passed to gz_db_open */
    /* A loaded model to use instead of loading model_dir, which must then name it (the
     * registry records that name): borrowed, it must outlive the engine. Engines that share
     * one model share its weights, packed copies and threads (gaze serve's engines). NULL:
     * the engine loads and owns its own. */
    gz_model *shared_model;
} gz_engine_params;

gz_engine_params gz_engine_default_params(void);

/* Open the database (created if needed unless db.readonly). The model is not loaded yet.
 * A read-only engine searches without writing anything (a stale FAISS index is rebuilt in
 * memory only and the model registry is not touched); indexing and importing texts need a
 * writable one. On error *out is NULL. */
gz_status gz_engine_open(const gz_engine_params *p, gz_engine **out);
/* Close the database (writes changed FAISS files) and free the model. Returns the first
 * error met while saving. NULL is a no-op. */
gz_status gz_engine_close(gz_engine *e);
gz_db *gz_engine_db(gz_engine *e);
/* Load the model now if needed and register it in the database (fingerprint); sets *m and
 * *model_id (either may be NULL). GZ_ENOTFOUND when no model was given and none is
 * registered (the message says so without naming any command-line flag). */
gz_status gz_engine_model(gz_engine *e, gz_model **m, int64_t *model_id);
/* The model directory in use (given or registered), or NULL before one is resolved. */
const char *gz_engine_model_dir(const gz_engine *e);

/* ---- directory walk (engine/walk.c) ---- */

typedef struct {
    char *path; /* root-joined path (roots made absolute); owned */
    int64_t size;
    int64_t mtime_ns;
} gz_walk_file;

/* Why the walk left an entry out (gz_walk_result.skipped, gz_ingest_stats.skipped_by). */
typedef enum {
    GZ_SKIP_UNSUPPORTED = 0, /* a file whose extension is not an image type gaze reads */
    GZ_SKIP_HIDDEN = 1,      /* a hidden file or folder, or a junk folder (.git, @eaDir ...) */
    GZ_SKIP_EXCLUDED = 2,    /* matched an --exclude pattern (file or folder) */
    GZ_SKIP_LINK = 3,        /* a symbolic link not followed (follow_symlinks off) */
    GZ_SKIP_SPECIAL = 4,     /* not a regular file or folder (FIFO, socket, device) */
    GZ_SKIP_REASONS = 5
} gz_skip_reason;

typedef struct {
    gz_walk_file *files; /* sorted by path (byte order) */
    size_t n, cap;
    char **errors; /* "<path>: <reason>" for unreadable folders / broken links */
    size_t n_errors;
    char **roots; /* absolute roots as walked (directories or files), resolved physically */
    size_t n_roots;
    long skipped[GZ_SKIP_REASONS]; /* entries left out, by gz_skip_reason (a hidden, junk or
                                      excluded folder counts once, not its contents) */
} gz_walk_result;

typedef struct {
    const char *const *exclude; /* fnmatch globs, matched against the base name and the full
                                   path (a relative pattern with a '/' is taken from the
                                   current directory); a matching folder is not entered */
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

/* ---- ingest (engine/ingest.c) ---- */

typedef struct {
    long total;        /* image files found by the scan */
    long done;         /* files handled so far */
    long encoded;      /* decoded and encoded by the model */
    long skipped;      /* unchanged (size, mtime) and already embedded */
    long reused;       /* new path, known content (rename / duplicate): vector copied */
    long failed;       /* could not be decoded / encoded this run (recorded in the db) */
    long failed_known; /* unchanged since an earlier failure, under the same limits: not
                          retried, not reported one by one (retry_failed retries them) */
    long skipped_by[GZ_SKIP_REASONS]; /* entries the scan left out, by gz_skip_reason */
    long missing; /* indexed files under the roots that vanished (marked missing) */
    long pruned;  /* missing items removed (with prune) */
    double seconds;
} gz_ingest_stats;

/* gz_ingest_opts.decode. The encoder keeps every core busy, so decoding can only take turns
 * with it. Measured on 2 cores (bench/index/run.sh, 40 photos, BLIP-384): a helper thread one
 * batch ahead (overlap) 310 ms a photo, all threads between two forwards (parallel) 318 ms,
 * the calling thread (inline) 327 ms. */
enum {
    GZ_DECODE_OVERLAP = 0,  /* the default: on one helper thread, one batch ahead, while the
                               current batch encodes */
    GZ_DECODE_PARALLEL = 1, /* on the model's threads (gz_model_threads), just before the batch
                               encodes */
    GZ_DECODE_INLINE = 2    /* on the calling thread, just before the batch encodes */
};

typedef struct {
    gz_walk_opts walk;
    int prune;          /* 1: remove vanished files from the db (else only marked) */
    int batch_size;     /* files per transaction / forward pass; 0 = the model's batch size
                           (gz_model_params.batch_size, itself GZ_DEFAULT_BATCH when 0) */
    int exif_orient;    /* -1 = model's setting (default on); 0/1 override */
    int64_t max_pixels; /* 0 = model's setting */
                        /* fast or exact decode: the model's fast_decode (engine params) */
    int decode;         /* where a batch's images are decoded: GZ_DECODE_OVERLAP (default),
                           GZ_DECODE_PARALLEL or GZ_DECODE_INLINE */
    int retry_failed;   /* 1: re-try files that failed before even if unchanged (a failed
                           file is retried anyway when its size, mtime or max_pixels changed) */
    /* keep_tokens: NONE (default); INT8 / BF16: also store each image's final vision token
     * states (BLIP only: GZ_EUNSUPPORTED otherwise) so that a re-rank runs only the ITM fusion.
     * Indexed images without tokens in this format are encoded again to get them. */
    gz_tokens_format keep_tokens;
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

/* How a database's images were preprocessed for one model. gz_engine_index (and add-texts'
 * linked images) record it per model fingerprint in the db's meta table, key
 * "preprocess.<fingerprint>", whenever they encode images (the latest such run wins: a db
 * re-indexed with other settings holds both kinds for files encoded in each run). Image
 * queries (gz_engine_search) decode the query the same way, whatever the engine's model
 * params say, so that an indexed photo searched by itself scores 1; without a record (a db
 * from before gaze recorded it) they use the model params. */
typedef struct {
    int exif_orient;    /* 1 = photos were turned upright by their EXIF orientation */
    int fast_decode;    /* 1 = JPEG DCT-scaled decode (min_size > 0); 0 = full, PIL-exact */
    int min_size;       /* gz_image_params.min_size of the decode (0 = full size) */
    int64_t max_pixels; /* larger images were refused */
} gz_index_preprocess;

/* The preprocessing recorded in db for the model with this fingerprint. GZ_ENOTFOUND when none
 * is recorded; GZ_ECORRUPT when the record cannot be read (message says so). */
gz_status gz_engine_get_preprocess(gz_db *db, const char *fingerprint, gz_index_preprocess *out);

/* ---- queries (engine/query.c) ---- */

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
    int k;             /* results wanted (default GZ_DEFAULT_K) */
    float min_score;   /* drop results whose cosine (itc) is below; default GZ_NO_MIN_SCORE */
    int rerank;        /* 0: none; K > 0: re-score the top K by ITC with BLIP ITM (query must
                          be one text term over images, or one image term over texts):
                          score = itm_logit[match] + itc, as LAVIS ranks; products: refused
                          with GZ_EINVAL */
    float text_weight; /* products: score = w * z(cos(q, text)) + (1 - w) * z(cos(q, image)),
                          z standardising each modality over the candidates (fusion/score.h);
                          default GZ_DEFAULT_TEXT_WEIGHT; a product without an image vector
                          has z = 0 for its image */
    /* Filters, for image searches only (GZ_EINVAL with texts or products). The results are the
     * best k (or rerank) among the images that pass every filter set: the search fetches more
     * candidates until enough pass or every image was looked at. */
    const char *taken_after;   /* capture time (EXIF, else the file's mtime as local time) at or
                                  after this date (gz_parse_date forms); NULL: no bound */
    const char *taken_before;  /* capture time strictly before this date; NULL: no bound */
    const char *in_folder;     /* only images at or under this folder, resolved as index roots
                                  are (absolute, symbolic links resolved); NULL: anywhere */
    const char *formats;       /* comma-separated formats (gz_check_formats); NULL: any */
    int min_width, min_height; /* pixels after orientation; 0: no bound */
} gz_query;

gz_query gz_query_default(void);
/* A filter date "YYYY-MM-DD" (midnight) or "YYYY-MM-DDTHH:MM:SS" (a space for the T too) with a
 * real calendar day and time, written to out as "YYYY-MM-DD HH:MM:SS", the form EXIF capture
 * times are stored in. GZ_EINVAL (message names the accepted forms) otherwise. */
gz_status gz_parse_date(const char *s, char out[20]);
/* A comma-separated list of image formats for gz_query.formats: jpeg (jpg), png, webp, gif,
 * tiff (tif), bmp, heic (heif), avif, raw (any camera RAW), or one RAW extension (dng, cr2,
 * cr3, nef, arw, raf, orf). GZ_EINVAL naming the first unknown one and the known ones. */
gz_status gz_check_formats(const char *list);

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

/* ---- records: JSONL / CSV / TSV readers (engine/records.c) ---- */

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
    const char *id_field;    /* default "id"; a record without it is a bad row (reported) */
    const char *text_field;  /* default "text"; a comma-separated list joins the fields with
                                ". " (e.g. "title,description") */
    const char *image_field; /* NULL: none; else a path (relative to the file's folder) of
                                an image to link; indexed now if it is not in the db */
    int batch_size;          /* texts per transaction / forward pass (default
                                GZ_DEFAULT_TEXTS_BATCH) */
    void (*row_error)(void *user, const char *file, long line, const char *message);
    void *user;
    const char *catalog; /* catalogue name (gz_catalog_item); NULL: the file's absolute path */
    int sync;            /* 1: afterwards remove the catalogue's items whose id is no longer in
                            the file (not done when a row could not be read: its id is unknown) */
    /* a row imported with a problem (its image could not be linked): not a failure */
    void (*row_warning)(void *user, const char *file, long line, const char *message);
    int allow_outside; /* 0 (default): an image that resolves (symlinks followed) outside the
                          record file's folder is not linked (a row warning): a downloaded
                          catalogue cannot make gaze read files elsewhere */
} gz_texts_opts;

typedef struct {
    long rows;          /* records read (good and bad) */
    long added;         /* new texts encoded */
    long updated;       /* texts whose text, image link or fields changed */
    long unchanged;     /* same text, link and fields, already embedded */
    long failed;        /* malformed rows, missing fields, duplicate ids: not imported */
    long linked;        /* texts linked to an image item (added, updated or unchanged) */
    long image_failed;  /* texts imported without their image (missing, not decodable) */
    long removed;       /* with sync: items no longer in the file, removed */
    int sync_skipped;   /* with sync: 1 when nothing was removed because rows were unreadable */
    char catalog[4096]; /* the catalogue name used */
} gz_texts_stats;

gz_texts_opts gz_texts_default_opts(void);
/* Import the texts of a record file as the items of a catalogue (gz_engine_put_items: the
 * catalogue is o->catalog or the file's absolute path, ext_id the id field) and embed them,
 * one transaction per batch. Bad rows (malformed, no id, no text, an id seen earlier in the
 * file: the first is kept) are reported and skipped; a row whose image cannot be linked is
 * imported without it and reported through row_warning. */
gz_status gz_engine_add_texts(gz_engine *e, const char *file, const gz_texts_opts *o,
                              gz_texts_stats *stats);

/* ---- catalogue items and batches (engine/items.c) ----
 * A catalogue is a named set of text items (products, captions), each keyed by its external
 * id inside the catalogue; the name is independent of any file (add-texts --catalog NAME;
 * without it, add-texts uses the record file's absolute path, as databases made before
 * catalogues had names did). One item may link to an image, which is indexed as an image
 * item when it is not yet (an image that cannot be read does not stop the text: the text is
 * stored unlinked and the problem is reported in its result).
 *
 *   gz_engine_begin(e);                                  // optional: many puts, one commit
 *   gz_catalog_item it = {.catalog = "shop", .ext_id = "sku-1", .text = "red kettle"};
 *   gz_put_result r;
 *   gz_engine_put_items(e, &it, 1, &r);                  // r.outcome: added/updated/...
 *   gz_rm_spec rm = {.by = GZ_RM_CATALOG_ITEM, .target = "shop", .ext_id = "sku-0"};
 *   gz_engine_remove(e, &rm, 0, NULL);
 *   gz_engine_commit(e);                                 // one transaction for all of it */
typedef struct {
    const char *catalog;           /* catalogue name: required, non-empty */
    const char *ext_id;            /* the item's id in the catalogue: required, non-empty */
    const char *text;              /* the text to embed (valid UTF-8); NULL: text_parts joined */
    const char *const *text_parts; /* used when text is NULL: the non-empty parts joined with
                                      ". " (as add-texts --text-field title,description) */
    int n_text_parts;
    const char *image;     /* NULL or "": no image; else an image file (absolute, or relative
                              to the current directory) linked to the text */
    const char *meta_json; /* NULL or a JSON object stored with the item (e.g. all fields) */
} gz_catalog_item;

typedef enum {
    GZ_PUT_ADDED = 1,     /* a new item, embedded */
    GZ_PUT_UPDATED = 2,   /* an existing item whose text, link or fields changed */
    GZ_PUT_UNCHANGED = 3, /* same text, link and fields, already embedded: nothing written */
    GZ_PUT_FAILED = 4,    /* not stored: error says why (no id, no text, bad UTF-8, ...) */
} gz_put_outcome;

#define GZ_PUT_ERROR_MAX 640 /* bytes of gz_put_result.error, NUL included */

typedef struct {
    gz_put_outcome outcome;
    int64_t item_id;              /* the text item (0 when failed) */
    int64_t image_item_id;        /* the linked image item (0: none) */
    int image_failed;             /* 1: the image could not be linked (missing file, not decodable);
                                     the text was stored without the link; error says why */
    char error[GZ_PUT_ERROR_MAX]; /* why the item or its image failed, else "" */
} gz_put_result;

/* Start a batch: every put and remove until gz_engine_commit is one transaction (a killed
 * process loses the open batch only). GZ_EINVAL if one is already open. */
gz_status gz_engine_begin(gz_engine *e);
/* Commit the open batch (GZ_EINVAL if none). */
gz_status gz_engine_commit(gz_engine *e);
/* Drop everything of the open batch (GZ_EINVAL if none). */
gz_status gz_engine_rollback(gz_engine *e);

/* Add or update n catalogue items with the engine's model: the texts that changed are
 * encoded together (one forward pass per GZ_DEFAULT_TEXTS_BATCH) and stored in one
 * transaction (the open batch, if any). Per-item problems (missing id or text, invalid
 * UTF-8, an id twice in the same call, an image that cannot be linked) are reported in
 * results[i] (n entries) and do not fail the call. Returns GZ_OK, or a fatal error (model,
 * database, memory): then nothing of this call is stored (the open batch, if any, is rolled
 * back). */
gz_status gz_engine_put_items(gz_engine *e, const gz_catalog_item *items, int n,
                              gz_put_result *results);

/* ---- removal (engine/rm.c) ---- */
typedef enum {
    GZ_RM_ID = 1,       /* the item with id item_id (image or text) */
    GZ_RM_PATH,         /* target is a file or folder path, which need not exist any more:
                           the items at that path and every item under it (a relative path
                           is taken from the current directory; an existing one resolved
                           through its links, as gaze index does) */
    GZ_RM_GLOB,         /* target is an fnmatch pattern over image paths: matched against
                           the full path, or against the base name when it has no '/' */
    GZ_RM_CATALOG,      /* every text item of the catalogue named target */
    GZ_RM_CATALOG_ITEM, /* the text item ext_id of the catalogue named target */
} gz_rm_by;

typedef struct {
    gz_rm_by by;
    const char *target; /* path, folder, pattern or catalogue name (see gz_rm_by) */
    const char *ext_id; /* GZ_RM_CATALOG_ITEM */
    int64_t item_id;    /* GZ_RM_ID */
} gz_rm_spec;

typedef struct {
    long images; /* image items removed (or that would be, dry_run) */
    long texts;  /* text items removed */
} gz_rm_stats;

/* Remove the items spec selects, with their vectors, in one transaction (the open batch, if
 * any): SQLite rows are deleted and the FAISS indexes drop them (marked dead, generation
 * bumped), so a search never returns them again. Texts linked to a removed image stay,
 * unlinked. dry_run: count only. GZ_ENOTFOUND (message names the target) when nothing
 * matches; GZ_EINVAL for a bad spec. stats may be NULL. */
gz_status gz_engine_remove(gz_engine *e, const gz_rm_spec *spec, int dry_run, gz_rm_stats *stats);

/* ---- duplicates (engine/dups.c) ---- */
/* One image of a duplicate group. path is malloc'd, owned by the group list. */
typedef struct {
    int64_t item_id;
    char *path; /* NUL-terminated (raw bytes, path_len of them) */
    size_t path_len;
    int64_t size;          /* bytes */
    uint64_t content_hash; /* 0 = unknown */
} gz_dup_member;

typedef struct {
    gz_dup_member *members; /* largest first (ties: path order); members[0] is the one to keep */
    int n;                  /* >= 2 */
    int exact;              /* 1: every member has the same content hash (byte-identical) */
    float min_score;        /* near groups: lowest cosine of a link that joined the group
                               (1 for an exact group) */
    int64_t total_bytes;
    int64_t reclaimable_bytes; /* total_bytes - members[0].size: what keeping one frees */
} gz_dup_group;

typedef struct {
    gz_dup_group *v; /* most reclaimable bytes first (ties: more members, then first path) */
    int n;
    int64_t n_images;         /* images considered (status OK) */
    int64_t n_without_vector; /* of them, without a vector of the model (exact matching only) */
    int64_t model_id;         /* the model whose vectors were compared, 0 when none */
} gz_dup_groups;

#define GZ_DUPS_NEIGHBOURS 64 /* nearest neighbours asked for each image in near matching */

/* Group the database's images (status OK) into duplicate groups: images with the same
 * content hash (exact), and, when threshold <= 1, images whose vectors of the database's
 * current (most recently used) model have cosine >= threshold (near). Groups are the
 * connected components of those links (union-find), so a chain a~b~c is one group even
 * when a and c are further apart. Near matching asks the FAISS index of each image for its
 * GZ_DUPS_NEIGHBOURS nearest neighbours, so an image with more near copies than that may
 * still be grouped with all of them through the chain, but is not guaranteed to be.
 * threshold must be in [-1, 1], or > 1 for exact duplicates only (GZ_EINVAL otherwise, NaN
 * included). Images without a vector of the model take part in exact matching only. Loads
 * no model weights. *out zeroed on error; free with gz_dup_groups_free. */
gz_status gz_engine_dups(gz_engine *e, float threshold, gz_dup_groups *out);
void gz_dup_groups_free(gz_dup_groups *g);

/* ===== Evaluation (eval/) =====
 * Batch caption-matching evaluation (image<->text Recall@K) as LAVIS and
 * CLIP_benchmark compute it: load an evaluation set, encode every image and caption, rank,
 * optionally re-rank the ITC top-k with BLIP's ITM head, and report R@1/5/10.
 *
 * Basic usage:
 *   gz_eval_set *s = NULL;
 *   gz_eval_load_opts lo = gz_eval_default_load_opts();     // lo.lang = "zh_TW" ...
 *   if (gz_eval_load("flickr30k_test.json", &lo, &s) != GZ_OK) { fputs(gz_last_error(), stderr);
 * ... } gz_eval_params ep = gz_eval_default_params();            // ep.rerank_k = 128 (BLIP only)
 *   gz_eval_result r;
 *   gz_eval_run(model, s, &ep, &r);                          // r.itc.txt_r1, r.final->img_r5 ...
 *   gz_eval_result_free(&r);
 *   gz_eval_set_free(s);
 *
 * Protocol (LAVIS lavis/tasks/retrieval.py, itm_eval / compute_sim_matrix):
 *  - Texts are every caption of every image (or only the first, GZ_EVAL_CAPTIONS_FIRST), in
 *    file order; text t belongs to image txt2img[t]. Images without a caption in the chosen
 *    language are left out (counted). Images that fail to decode are left out together with
 *    their captions (reported through a callback and listed in the result).
 *  - ITC: cosine of the L2-normalised embeddings, a (n_images, n_texts) matrix.
 *  - Image->text (txt_r*): an image's rank is the best rank among its ground-truth texts;
 *    text->image (img_r*): a text's rank is the rank of its image. R@K = percentage of
 *    queries whose 0-based rank < K; *_r_mean = mean of R@1/5/10, r_mean = mean of both,
 *    agg_metrics = txt_r_mean (LAVIS' names and definitions).
 *  - Ties: rank = number of candidates scoring strictly higher than the ground truth
 *    (optimistic). LAVIS uses numpy's argsort (an unspecified order among equal scores);
 *    the two differ only when the ground truth ties with another candidate, which the
 *    result counts (n_tied_*).
 *  - Re-rank (BLIP, rerank_k = LAVIS' k_test): each image's top-k texts by ITC, and each
 *    text's top-k images by ITC (ties: lower index first), get score = ITM match logit +
 *    ITC; the rest rank behind them in ITC order. LAVIS gives the rest -100 (an arbitrary
 *    order among them), so R@K is identical for K <= k. Every (image, text) pair needed by
 *    either direction is scored once, grouped by image (one ViT pass per image).
 *  - Caption pre-processing (GZ_EVAL_TEXT_BLIP, the default for BLIP models): LAVIS'
 *    BlipCaptionProcessor.pre_caption (lower-case, `.!"()*#:;~` to spaces, runs of 2+
 *    whitespace to one space, strip, at most max_words words). CLIP-family default: none,
 *    as CLIP_benchmark. Known difference: LAVIS truncates BLIP captions at 35 tokens; gaze
 *    truncates at the model's maximum length.
 *
 * Thread safety: a gz_eval_set is immutable after loading; gz_eval_run uses the model from
 * one thread (the model parallelises internally). Nothing here prints. */
/* ---- evaluation sets ---- */

typedef enum {
    GZ_EVAL_CAPTIONS_ALL = 0,   /* every caption of an image is a separate text (default) */
    GZ_EVAL_CAPTIONS_FIRST = 1, /* only the first caption of each image */
} gz_eval_captions;

typedef struct {
    const char *lang; /* NULL: "captions"/"caption"; else captions_i18n[lang] */
    gz_eval_captions captions;
    const char *image_root; /* folder for relative image paths; NULL = the file's folder */
    const char *split;      /* Karpathy dataset_*.json: the split to use (default "test") */
    int allow_outside_root; /* 0 (default): an image path that is absolute, climbs out with
                               "..", or leads out of the folder through a symbolic link
                               (resolved physically) is refused (GZ_EINVAL naming the entry): a
                               downloaded dataset cannot make gaze read files elsewhere */
} gz_eval_load_opts;

gz_eval_load_opts gz_eval_default_load_opts(void);

typedef struct {
    char *image;    /* as written in the file; owned */
    char *path;     /* resolved against image_root; owned */
    int first_text; /* its texts are [first_text, first_text + n_texts) of the set */
    int n_texts;    /* >= 1 */
    long line;      /* 1-based line (JSONL) or array index + 1 (JSON) */
} gz_eval_image;

typedef struct {
    char *file;            /* the dataset file; owned */
    const char *format;    /* "jsonl", "json-list" (LAVIS), "karpathy" (dataset_*.json) */
    gz_eval_image *images; /* (n_images) */
    int n_images;
    char **texts; /* (n_texts) owned captions, in order */
    int *txt2img; /* (n_texts) image index of each text */
    int n_texts;
    int n_entries;      /* entries read (lines / list items / split images) */
    int n_no_captions;  /* entries left out: no caption in the chosen language */
    uint64_t file_hash; /* xxh3-64 of the dataset file's bytes (reproducibility) */
} gz_eval_set;

/*
** Load an evaluation set. Formats, detected from the content:
**  - JSONL, one object per line: {"image": path, "captions": [..], "captions_i18n":
**    {locale: [..]}, ...} (gaze's evalsets format; other fields ignored; blank lines ok);
**  - a JSON list of {"image": path, "caption": str | [str..]} (LAVIS' coco_karpathy_test.json,
**    flickr30k_test.json);
**  - Karpathy's dataset_coco.json / dataset_flickr30k.json ({"images": [{"filepath",
**    "filename", "split", "sentences": [{"raw"}]}]}), images of opts->split only.
** Image paths are relative to opts->image_root (default: the file's folder) unless absolute.
** Returns GZ_EINVAL naming file:line for a malformed entry (not a JSON object, no "image",
** captions not strings), GZ_ENOTFOUND / GZ_EIO for the file, GZ_EINVAL if no image is left
** ("no image has captions in zh_CN"). On error *out is NULL.
*/
gz_status gz_eval_load(const char *path, const gz_eval_load_opts *opts, gz_eval_set **out);
void gz_eval_set_free(gz_eval_set *s);

/* LAVIS' BlipCaptionProcessor.pre_caption(caption) with max_words (LAVIS default 50):
** Python str.lower() (per code point, utf8proc), each of . ! " ( ) * # : ; ~ replaced by a
** space, every run of 2+ whitespace (Python \s) replaced by one space, trailing newlines
** and surrounding spaces stripped, then at most max_words words split on single spaces.
** Returns a malloc'd string, or NULL when out of memory. Invalid UTF-8 bytes are kept. */
char *gz_eval_blip_caption(const char *caption, int max_words);

/* ---- recall from scores ---- */

typedef struct {
    double txt_r1, txt_r5, txt_r10, txt_r_mean; /* image -> text, percent */
    double img_r1, img_r5, img_r10, img_r_mean; /* text -> image, percent */
    double r_mean;                              /* (txt_r_mean + img_r_mean) / 2 */
    double agg_metrics;                         /* LAVIS: txt_r_mean */
} gz_eval_recall;

/*
** Ranks of the ground truth, 0-based, from score matrices:
**   i2t (n_img, n_txt): score of text t for image query i; t2i (n_txt, n_img): of image i
**   for text query t (NULL: use i2t transposed). txt2img (n_txt) in [0, n_img).
** txt_rank[i] (image queries) = min over i's texts g of #{t : i2t[i][t] > i2t[i][g]};
** img_rank[t] (text queries) = #{i : t2i[t][i] > t2i[t][txt2img[t]]}. An image without
** texts gets rank n_txt. NaN scores count as lowest. Optional outputs (NULL to skip):
** txt_top[i] / img_top[t] = the best-scoring candidate (lowest index among equals);
** *n_tied_txt / *n_tied_img = queries whose ground truth ties with a non-ground-truth
** candidate (where argsort-based tools may differ). GZ_EINVAL for bad sizes / txt2img.
*/
gz_status gz_eval_ranks(const float *i2t, const float *t2i, int n_img, int n_txt,
                        const int *txt2img, int *txt_rank, int *img_rank, int *txt_top,
                        int *img_top, int *n_tied_txt, int *n_tied_img);

/* R@1/5/10 and means from 0-based ranks (LAVIS' formulas). n = 0 gives zeros. */
void gz_eval_recall_from_ranks(const int *txt_rank, int n_img, const int *img_rank, int n_txt,
                               gz_eval_recall *out);

/* ---- the whole evaluation ---- */

typedef enum {
    GZ_EVAL_TEXT_AUTO = 0, /* BLIP: GZ_EVAL_TEXT_BLIP; CLIP family: GZ_EVAL_TEXT_NONE */
    GZ_EVAL_TEXT_NONE = 1, /* captions as written (CLIP_benchmark) */
    GZ_EVAL_TEXT_BLIP = 2, /* gz_eval_blip_caption (LAVIS blip_caption processor) */
} gz_eval_text_process;

typedef struct {
    int rerank_k;    /* 0 = ITC only; > 0: BLIP ITM re-rank of the ITC top-k (k_test)
                        in both directions (GZ_EUNSUPPORTED for CLIP-family models) */
    int image_batch; /* images decoded and encoded per batch (default 8) */
    int text_batch;  /* texts per gz_encode_texts call (default 64) */
    gz_eval_text_process text_process;
    int max_words; /* GZ_EVAL_TEXT_BLIP: at most this many words (default 50) */
    /* Optional callbacks. progress: phase is "images", "texts" or "rerank"; done of total. */
    void (*progress)(void *user, const char *phase, long done, long total);
    /* An image left out: its path and why (gz_last_error() of the decode). */
    void (*image_failed)(void *user, const char *path, const char *reason);
    void *user;
} gz_eval_params;

gz_eval_params gz_eval_default_params(void);

typedef struct {
    int n_images, n_texts;             /* evaluated (after leaving out failed images) */
    int n_failed_images;               /* images that failed to decode ... */
    int n_failed_texts;                /* ... and their captions, left out */
    int *image_index;                  /* (n_images) evaluated image -> set image index */
    int *text_index;                   /* (n_texts) evaluated text -> set text index */
    int *txt2img;                      /* (n_texts) evaluated text -> evaluated image */
    char **processed_texts;            /* (n_texts) the strings that were encoded */
    gz_eval_text_process text_process; /* resolved (never AUTO) */
    int rerank_k;                      /* effective k (clamped to the candidate counts), 0 = none */

    gz_eval_recall itc;               /* ranking by ITC */
    int *txt_rank_itc, *img_rank_itc; /* (n_images), (n_texts) 0-based ranks by ITC */
    int *txt_top_itc, *img_top_itc;   /* best candidate by ITC */
    int n_tied_txt_itc, n_tied_img_itc;
    gz_eval_recall rerank;                  /* ranking after ITM re-rank (rerank_k > 0) */
    int *txt_rank_rerank, *img_rank_rerank; /* NULL without re-rank */
    int *txt_top_rerank, *img_top_rerank;
    int n_tied_txt_rerank, n_tied_img_rerank;
    const gz_eval_recall *final; /* &rerank with re-rank, else &itc */
    float *i2t_itc;              /* (n_images, n_texts) ITC cosine matrix */
    int64_t n_itm_pairs;         /* (image, text) pairs scored by ITM */

    double t_images, t_texts, t_rank, t_rerank, t_total; /* seconds (monotonic) */
} gz_eval_result;

/*
** Run the evaluation of set s with model m (both borrowed). Images that fail to decode are
** left out with their captions and reported through params->image_failed; that alone is
** not an error. Returns GZ_OK and fills *out (free with gz_eval_result_free), or:
** GZ_EUNSUPPORTED rerank_k > 0 with a model without ITM head (message names BLIP);
** GZ_EINVAL bad params or no image left to evaluate; an encoder's error otherwise. On
** error *out is zeroed.
*/
gz_status gz_eval_run(gz_model *m, const gz_eval_set *s, const gz_eval_params *params,
                      gz_eval_result *out);
void gz_eval_result_free(gz_eval_result *r);

/* ===== Hugging Face Hub (hub/) =====
 * Pull a model repository into the huggingface_hub cache and resolve "ORG/NAME[@REVISION]" ids
 * from it, offline. Every --model of the gaze command goes through gz_model_load, which takes a
 * folder or such an id (see gz_hub_locate).
 *
 *   gz_hub_params p = gz_hub_default_params();
 *   char id[GZ_HUB_ID_MAX], rev[GZ_HUB_REV_MAX], dir[GZ_HUB_PATH_MAX];
 *   if (gz_hub_params_from_env(&p) != GZ_OK                // HF_ENDPOINT, HF_TOKEN, ...
 *       || gz_hub_parse_id("openai/clip-vit-base-patch32@main", id, sizeof id, rev, sizeof rev)
 *              != GZ_OK
 *       || gz_hub_pull(id, rev, &p, dir, sizeof dir, NULL) != GZ_OK)
 *       fputs(gz_last_error(), stderr);
 *   // dir = <cache>/models--openai--clip-vit-base-patch32/snapshots/<commit>: a model folder
 *
 * The cache is the one huggingface_hub and transformers use, byte for byte:
 *   <cache>/models--ORG--NAME/blobs/<etag>                 file contents (etag: LFS sha256, or
 *                                                          the git blob sha1 for small files)
 *   <cache>/models--ORG--NAME/snapshots/<commit>/<file>    relative symlink ../../blobs/<etag>
 *   <cache>/models--ORG--NAME/refs/<revision>              the commit a branch or tag named
 *   <cache>/.locks/models--ORG--NAME/<etag>.lock           flock(2) held while a blob downloads
 * so either tool reuses what the other downloaded.
 *
 * Only the files gaze reads are pulled: config.json; model.safetensors or its sharded index
 * and shards (pytorch_model.bin or its index and shards only when the repository has no
 * safetensors weights); tokenizer and preprocessor files. Never Flax, TF, ONNX or msgpack files.
 *
 * Thread safety: these functions keep no global state except libcurl's, which gz_hub_pull
 * initialises once (curl_global_init under a pthread_once). Distinct calls may run in parallel;
 * two pulls of the same blob serialise on its lock file. */

#define GZ_HUB_ID_MAX 97     /* huggingface_hub allows repo ids of at most 96 characters */
#define GZ_HUB_REV_MAX 256   /* branch, tag or commit name */
#define GZ_HUB_COMMIT_LEN 40 /* hex digits of a git commit */
#define GZ_HUB_PATH_MAX 4096 /* every path this module builds fits in this many bytes */
#define GZ_HUB_URL_MAX 1024  /* endpoint URL */
#define GZ_HUB_TOKEN_MAX 512 /* access token */

/* Called during each download with the bytes of `file` on disk so far (including a resumed
 * prefix) and its total size (-1 when unknown). Runs on the calling thread. */
typedef void (*gz_hub_progress_fn)(void *user, const char *file, int64_t done, int64_t total);

/* Where and how to pull. All strings live in the struct's own arrays (copy it freely). */
typedef struct {
    char endpoint[GZ_HUB_URL_MAX];   /* default https://huggingface.co, no trailing slash */
    char token[GZ_HUB_TOKEN_MAX];    /* "" = anonymous; sent as "Authorization: Bearer ..." */
    char cache_dir[GZ_HUB_PATH_MAX]; /* the hub cache (…/huggingface/hub); must be set to pull */
    int offline;                     /* 1 = never touch the network: resolve from the cache */
    long connect_timeout_s;          /* default 10: give up connecting after this long */
    long low_speed_time_s;           /* default 30: abort a transfer below 1 KiB/s this long */
    int max_retries;                 /* default 2: resume an interrupted download this often */
    gz_hub_progress_fn progress;     /* optional, NULL = none */
    void *progress_user;             /* passed back to progress */
} gz_hub_params;

/* What one gz_hub_pull did. */
typedef struct {
    char commit[GZ_HUB_COMMIT_LEN + 1]; /* the commit the snapshot holds */
    int files;                          /* files in the snapshot gaze needs */
    int files_downloaded;               /* of those, fetched over the network this time */
    int64_t bytes_downloaded;           /* body bytes received this time (resumed ranges only) */
    int64_t bytes_total;                /* size of the snapshot's files */
} gz_hub_pull_stats;

/*
** Defaults without reading the environment: endpoint https://huggingface.co, no token, empty
** cache_dir (gz_hub_params_from_env fills it), online, timeouts and retries as documented above.
*/
gz_hub_params gz_hub_default_params(void);

/*
** Fill *p from the environment as huggingface_hub does:
**   endpoint   HF_ENDPOINT (trailing slashes removed), else left as is;
**   token      HF_TOKEN, else the first line of the token file: $HF_TOKEN_PATH, else
**              $HF_HOME/token (HF_HOME defaults to $XDG_CACHE_HOME/huggingface, then
**              ~/.cache/huggingface); left as is when none is set or readable;
**   cache_dir  HF_HUB_CACHE, else $HF_HOME/hub;
**   offline    HF_HUB_OFFLINE = 1, true, yes or on (any case).
** Returns GZ_OK, or GZ_EINVAL when a value does not fit its array or no home directory is known
** for the default cache (message names the variable).
*/
gz_status gz_hub_params_from_env(gz_hub_params *p);

/*
** 1 when s is a valid repository id "ORG/NAME": exactly one slash, each part made of letters,
** digits, '-', '_' and '.', starting and ending with a letter, digit or '_' (huggingface_hub's
** rule), no "--" or "..", not ending in ".git", at most 96 characters. 0 otherwise.
*/
int gz_hub_valid_id(const char *s);

/*
** Split "ORG/NAME" or "ORG/NAME@REV" into id (cap id_cap) and revision (cap rev_cap; "main" when
** absent). Returns GZ_OK, or GZ_EINVAL when the id is not valid (see gz_hub_valid_id), the
** revision is empty or unsafe as a path (absolute, "..", empty components, control characters),
** or a part does not fit. On error the outputs are empty strings.
*/
gz_status gz_hub_parse_id(const char *s, char *id, size_t id_cap, char *rev, size_t rev_cap);

/*
** 1 when s parses with gz_hub_parse_id and no file or directory named s exists (so a local
** folder "models/clip" is taken as a path, not as a Hub id). 0 otherwise. Leaves the error
** message as it was (callers ask while reporting another error).
*/
int gz_hub_looks_like_id(const char *s);

/*
** The cache folder of a repository: <cache_dir>/models--ORG--NAME, into buf (cap bytes).
** Returns GZ_OK, GZ_EINVAL for an invalid id or a path that does not fit.
*/
gz_status gz_hub_repo_dir(const char *cache_dir, const char *repo_id, char *buf, size_t cap);

/*
** Download what gaze needs of repository repo_id at revision (NULL = "main"; a branch, tag or
** 40-hex commit) into p->cache_dir and write the snapshot folder into snapshot_dir (cap bytes).
** Steps: GET {endpoint}/api/models/{id}/revision/{rev} for the commit and file list; pick the
** files (see the top of this section); for each file not already in snapshots/<commit>/, HEAD
** {endpoint}/{id}/resolve/{commit}/{file} for its etag and size (following only same-host
** redirects), then GET it (following redirects; the Authorization header is not sent to another
** host) into blobs/<etag>.incomplete, resuming with a Range request when that file exists and
** after a dropped connection (p->max_retries times); verify the sha256 (LFS files, whose etag is
** a sha256) or the size; rename it to blobs/<etag> and symlink it into the snapshot. refs/<rev>
** is written last, when rev is not the commit itself. A file already in the snapshot is not
** fetched again, so a second pull downloads nothing. With p->offline set this is
** gz_hub_resolve_cached and no connection is made. st (optional) receives the counts.
**
** Errors (snapshot_dir is "" then; blobs already completed stay in the cache):
**   GZ_ENOTFOUND  repository or revision unknown to the endpoint (or private; see the message)
**   GZ_EIO        401/403 (gated or private: the message says to set HF_TOKEN), connection or
**                 DNS failure (names the endpoint), HTTP errors, write failures (errno text)
**   GZ_ECORRUPT   sha256 or size mismatch (names the file and both values; the partial
**                 download is deleted and the file is absent from the snapshot)
**   GZ_EUNSUPPORTED  the repository has no config.json or no weights gaze can read (lists files),
**                 or its config.json names a model_type gaze cannot run (checked before the
**                 weights are fetched; the message names it)
**   GZ_EINVAL     invalid id/revision, empty cache_dir, malformed server reply
**   GZ_ENOMEM     allocation failed
*/
gz_status gz_hub_pull(const char *repo_id, const char *revision, const gz_hub_params *p,
                      char *snapshot_dir, size_t cap, gz_hub_pull_stats *st);

/*
** Offline resolution: the snapshot folder of repo_id at revision (NULL = "main") in cache_dir,
** into dir (cap bytes). A 40-hex revision names snapshots/<revision> directly; another name is
** looked up in refs/<revision>. Works on caches written by huggingface_hub or transformers.
** Returns GZ_OK, GZ_ENOTFOUND (message names the repository and revision) when not cached,
** GZ_ECORRUPT when the ref does not hold a commit hash, GZ_EINVAL for bad arguments.
*/
gz_status gz_hub_resolve_cached(const char *repo_id, const char *revision, const char *cache_dir,
                                char *dir, size_t cap);

/* One ref of a cached repository: a branch or tag name and the commit it points to. */
typedef struct {
    char revision[GZ_HUB_REV_MAX];
    char commit[GZ_HUB_COMMIT_LEN + 1];
} gz_hub_ref;

/* One cached repository, as gz_hub_list reports it. */
typedef struct {
    char repo_id[GZ_HUB_ID_MAX];
    char dir[GZ_HUB_PATH_MAX]; /* <cache>/models--ORG--NAME */
    int64_t size_bytes;        /* sum of the sizes of its blobs */
    int n_refs;
    gz_hub_ref *refs; /* n_refs, sorted by revision */
    int n_snapshots;
    char (*snapshots)[GZ_HUB_COMMIT_LEN + 1]; /* commits with a snapshots/<commit> folder */
} gz_hub_cached_model;

/*
** Every models--ORG--NAME folder of cache_dir (other entries are ignored), sorted by repo id,
** into a new array *out of *n entries; free it with gz_hub_list_free. A missing cache_dir is an
** empty list. Returns GZ_OK, GZ_EIO (unreadable folder, errno text), GZ_ENOMEM.
*/
gz_status gz_hub_list(const char *cache_dir, gz_hub_cached_model **out, int *n);

/* Free what gz_hub_list returned (NULL is fine). */
void gz_hub_list_free(gz_hub_cached_model *models, int n);

/*
** Remove a cached repository. revision NULL removes the whole models--ORG--NAME folder (and its
** lock folder). Otherwise removes refs/<revision> (or, for a commit, every ref pointing to it) and
** the snapshot it named unless another ref still names it, then deletes the blobs no remaining
** snapshot links to; when no snapshot remains the whole folder goes. Returns GZ_OK,
** GZ_ENOTFOUND when the repository or revision is not cached, GZ_EIO (errno text), GZ_EINVAL.
*/
gz_status gz_hub_rm(const char *cache_dir, const char *repo_id, const char *revision);

/* Where a model named by a folder or a Hub id lives (gz_hub_locate). */
typedef struct {
    char dir[GZ_HUB_PATH_MAX];          /* the model folder to read */
    char repo_id[GZ_HUB_ID_MAX];        /* "ORG/NAME"; "" when a folder was named */
    char revision[GZ_HUB_REV_MAX];      /* as asked ("main" when none); "" for a folder */
    char commit[GZ_HUB_COMMIT_LEN + 1]; /* the snapshot's commit; "" for a folder */
} gz_hub_location;

/*
** Resolve what a --model value names, offline (no network, whatever HF_HUB_OFFLINE says):
** an existing file or folder dir_or_id is taken as the model folder (a folder wins over an id);
** else a valid "ORG/NAME[@REVISION]" is looked up in the cache of gz_hub_params_from_env
** (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub) with gz_hub_resolve_cached; anything
** else is returned as the folder, for the loader to report. Returns GZ_OK and fills *out;
** GZ_ENOTFOUND "ORG/NAME is not in the Hugging Face cache (<cache>), nor a folder" when the
** id is not cached (the gaze command adds "run: gaze model pull ORG/NAME"); the cache's errors
** (GZ_ECORRUPT a bad ref, GZ_EINVAL); GZ_EINVAL for a NULL or empty argument. On error *out is
** zeroed.
*/
gz_status gz_hub_locate(const char *dir_or_id, gz_hub_location *out);

/* The Hub origin of a model loaded by id (gz_model_load("ORG/NAME@REV", ...)): the repository
 * id, the revision as asked ("main" when none) and the snapshot's commit. NULL for a model
 * loaded from a folder. Owned by m. */
const char *gz_model_hub_id(const gz_model *m);
const char *gz_model_hub_revision(const gz_model *m);
const char *gz_model_hub_commit(const gz_model *m);

const char *gz_version(void);

#ifdef __cplusplus
}
#endif
#endif
