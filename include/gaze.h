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
 * holding the same checkpoint give the same string. out must hold 65 bytes. */
gz_status gz_model_fingerprint(const gz_model *m, char out[65]);

/* ===== Images (vision_encoder/image.c) ===== */

typedef struct {
    int width, height;  /* after orientation */
    uint8_t *rgb;       /* (height, width, 3) owned; free with gz_image_free */
    int orientation;    /* EXIF orientation found in the file, 1..8 (1 when absent) */
    int src_width, src_height; /* full stored size before any DCT scaling / rotation */
    char taken_at[20];  /* EXIF DateTimeOriginal as "YYYY-MM-DD HH:MM:SS", "" if absent */
    char format[8];     /* "jpeg", "png", "webp", "heif", "gif" */
} gz_image;

typedef struct {
    int exif_orient;     /* apply EXIF orientation (default 1) */
    int64_t max_pixels;  /* refuse above this many stored pixels (default 100e6) */
    int min_size;        /* 0 = full-size decode; else JPEG may be decoded at the smallest DCT
                            scale whose both sides stay >= min_size */
} gz_image_params;

gz_image_params gz_image_default_params(void);
/* Decode a file (format detected by content). On error the message names the file and
 * says why (unsupported format, truncated, too large, ...); img is left empty. */
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
 * computed once and shared by all texts. CLIP-family models fill itc, logit and score. */
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
/* END DB SECTION */

const char *gz_version(void);

#ifdef __cplusplus
}
#endif
#endif
