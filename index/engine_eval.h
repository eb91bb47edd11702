/* engine_eval.h - batch caption-matching evaluation (image<->text Recall@K) as LAVIS and
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
#ifndef GZ_INDEX_ENGINE_EVAL_H
#define GZ_INDEX_ENGINE_EVAL_H

#include <stdint.h>

#include "gaze.h"

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

#endif
