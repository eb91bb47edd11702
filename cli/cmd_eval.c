/* cmd_eval.c - `gaze eval`: caption-matching evaluation (image<->text Recall@1/5/10) of a
 * model on a Flickr30k/COCO-style set, with LAVIS' protocol and metric names. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gaze.h"

static const char EVAL_DETAILS[] =
    "DATASET: JSONL, one object per line {\"image\": path, \"captions\": [..], \"captions_i18n\":\n"
    "{locale: [..]}} (gaze's evalsets format); or a JSON list of {\"image\", \"caption\"} (LAVIS'\n"
    "coco_karpathy_test.json, flickr30k_test.json); or Karpathy's dataset_coco.json /\n"
    "dataset_flickr30k.json (--split). Image paths are relative to the dataset's folder, or\n"
    "to --image-root (LAVIS' vis_root).\n"
    "\n"
    "Protocol (LAVIS lavis/tasks/retrieval.py; CLIP_benchmark computes the same recalls):\n"
    "  texts     every caption of every image (--captions all, as Flickr30k/COCO's 5) or the\n"
    "            first; images without captions in the language are left out (counted)\n"
    "  ITC       cosine of the L2-normalised embeddings, images x texts\n"
    "  txt_r@K   image->text: % of images whose best ground-truth caption ranks < K\n"
    "  img_r@K   text->image: % of captions whose image ranks < K; *_r_mean = mean of\n"
    "            R@1/5/10, r_mean = their mean, agg_metrics = txt_r_mean\n"
    "  ties      rank = number of candidates scoring strictly higher than the ground truth\n"
    "            (LAVIS' argsort orders equal scores arbitrarily); n_tied counts the queries\n"
    "            where that matters\n"
    "  --rerank K  BLIP: each image's ITC top-K captions and each caption's ITC top-K images\n"
    "            get score = ITM match logit + ITC (LAVIS k_test: 256 COCO, 128 Flickr30k;\n"
    "            ties at the K-th place: lower index first); the rest keep their ITC order\n"
    "            behind them (LAVIS: -100, same R@n for n <= K). CLIP models: an error.\n"
    "            ITM input ids as transformers tokenises them ([CLS] first); LAVIS and the\n"
    "            original BLIP put [ENC] first: --itm-enc-token.\n"
    "  captions  --text-process blip (default for BLIP): LAVIS' blip_caption processor\n"
    "            (lower-case, .!\"()*#:;~ to spaces, collapse whitespace, at most --max-words\n"
    "            words, LAVIS default 50); none (default for CLIP/Chinese-CLIP, as\n"
    "            CLIP_benchmark). Texts are truncated at the model's maximum length (LAVIS'\n"
    "            BLIP eval cuts at 35 tokens: a difference for very long captions only).\n"
    "  images    decoded as PIL does (no EXIF rotation, full-size JPEG decode) unless\n"
    "            --exif-orient / --fast-decode; resized as preprocessor_config.json says.\n"
    "Images that fail to decode are reported (path: reason) and left out with their\n"
    "captions; the exit status is then 1, and the results are still printed.\n"
    "\n"
    "--json: one object with the LAVIS fields of the final ranking (txt_r1 ... r_mean,\n"
    "agg_metrics), 'itc' and 'rerank' objects, CLIP_benchmark-style fractions, counts,\n"
    "failures, ties, protocol, model fingerprint, dataset hash and timings.\n"
    "--per-item FILE: JSON lines, one per query: {\"query\": \"image\"|\"text\", ..., \"rank\"} "
    "with\n"
    "1-based ranks (1 = ground truth first), rank_itc / rank_rerank and the top candidate.";
static const char EVAL_EXAMPLES[] =
    "  gaze eval flickr30k_test.json --image-root /data/flickr30k --model blip-itm-base-flickr "
    "--rerank 128\n"
    "  gaze eval captions.jsonl --model chinese-clip-vit-base-patch16 --lang zh_TW --json\n"
    "  gaze eval captions.jsonl --model clip-vit-base-patch32 --captions first --per-item "
    "ranks.jsonl";

typedef struct {
    const char *model, *weights, *lang, *captions, *image_root, *split, *text_process, *per_item;
    int rerank, max_words, json, quiet, threads, batch, enc_token, exif, fast_decode;
} eval_opts;

typedef struct {
    progress prog;
    int enabled, bar; /* progress wanted; the current phase shows a bar */
    const char *phase;
    long failed;
    char **fail_path, **fail_reason;
    int n_fail, cap_fail;
} eval_ctx;

/* A bar for the image phases (decode + encode, ITM re-rank); the texts phase gets one line,
 * as the shared progress bar counts images. */
static void on_progress(void *user, const char *phase, long done, long total) {
    eval_ctx *c = user;
    if (!c->phase || strcmp(c->phase, phase) != 0) {
        if (c->phase && c->bar) progress_finish(&c->prog, c->prog.total, c->prog.total, c->failed);
        c->phase = phase;
        c->bar = strcmp(phase, "texts") != 0;
        int quiet = !c->enabled;
        if (!c->bar) {
            if (!quiet) fprintf(stderr, "eval: encoding %ld caption%s\n", total, cli_plural(total));
            return;
        }
        progress_start(&c->prog, !strcmp(phase, "images") ? "eval: images" : "eval: ITM re-rank",
                       total, quiet);
    }
    if (c->bar) progress_update(&c->prog, done, done, c->failed);
}

static void on_failed(void *user, const char *path, const char *reason) {
    eval_ctx *c = user;
    c->failed++;
    if (c->prog.tty && c->prog.shown) fputs("\r\033[K", stderr);
    cli_errorf("%s", reason);
    if (c->n_fail == c->cap_fail) {
        int cap = c->cap_fail ? c->cap_fail * 2 : 16;
        char **a = realloc(c->fail_path, (size_t)cap * sizeof *a);
        if (a) c->fail_path = a;
        char **b = realloc(c->fail_reason, (size_t)cap * sizeof *b);
        if (b) c->fail_reason = b;
        if (!a || !b) return;
        c->cap_fail = cap;
    }
    c->fail_path[c->n_fail] = strdup(path);
    c->fail_reason[c->n_fail] = strdup(reason);
    c->n_fail++;
}

static void ctx_free(eval_ctx *c) {
    for (int i = 0; i < c->n_fail; i++) {
        free(c->fail_path[i]);
        free(c->fail_reason[i]);
    }
    free(c->fail_path);
    free(c->fail_reason);
}

static const char *process_name(gz_eval_text_process p) {
    return p == GZ_EVAL_TEXT_BLIP ? "blip_caption" : "none";
}

/* Recalls are percentages (LAVIS reports 0..100): the table says so. */
static void fmt2(char *b, size_t n, double v) { snprintf(b, n, "%.2f%%", v); }

static void table_row(out_table *t, const char *name, const gz_eval_recall *r) {
    char c[9][32];
    const double v[9] = {r->txt_r1, r->txt_r5,  r->txt_r10,    r->txt_r_mean, r->img_r1,
                         r->img_r5, r->img_r10, r->img_r_mean, r->r_mean};
    for (int i = 0; i < 9; i++)
        fmt2(c[i], sizeof c[i], v[i]);
    const char *row[] = {name, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]};
    out_table_row(t, row);
}

static void json_recall_fields(FILE *f, const gz_eval_recall *r) {
    const char *names[] = {"txt_r1", "txt_r5",  "txt_r10",    "txt_r_mean", "img_r1",
                           "img_r5", "img_r10", "img_r_mean", "r_mean",     "agg_metrics"};
    const double v[] = {r->txt_r1, r->txt_r5,  r->txt_r10,    r->txt_r_mean, r->img_r1,
                        r->img_r5, r->img_r10, r->img_r_mean, r->r_mean,     r->agg_metrics};
    for (int i = 0; i < 10; i++) {
        fprintf(f, "%s\"%s\":", i ? "," : "", names[i]);
        out_json_float(f, v[i]);
    }
}

static void print_json(const eval_opts *o, const char *dir, gz_model *m, const char *fp,
                       const gz_eval_set *s, const gz_eval_result *r, const eval_ctx *c,
                       double t_load) {
    FILE *f = stdout;
    fputc('{', f);
    json_recall_fields(f, r->final);
    fputs(",\"ranking\":", f);
    out_json_str(f, r->rerank_k ? "itm+itc" : "itc");
    fputs(",\"itc\":{", f);
    json_recall_fields(f, &r->itc);
    fprintf(f, ",\"n_tied_txt\":%d,\"n_tied_img\":%d}", r->n_tied_txt_itc, r->n_tied_img_itc);
    if (r->rerank_k) {
        fputs(",\"rerank\":{", f);
        json_recall_fields(f, &r->rerank);
        fprintf(f, ",\"k\":%d,\"itm_pairs\":%lld,\"n_tied_txt\":%d,\"n_tied_img\":%d}", r->rerank_k,
                (long long)r->n_itm_pairs, r->n_tied_txt_rerank, r->n_tied_img_rerank);
    } else {
        fputs(",\"rerank\":null", f);
    }
    /* CLIP_benchmark's names: fractions, image_retrieval = text->image */
    const gz_eval_recall *fr = r->final;
    fputs(",\"clip_benchmark\":{", f);
    const int ks[] = {1, 5, 10};
    const double ir[] = {fr->img_r1, fr->img_r5, fr->img_r10};
    const double tr[] = {fr->txt_r1, fr->txt_r5, fr->txt_r10};
    for (int i = 0; i < 3; i++) {
        fprintf(f, "%s\"image_retrieval_recall@%d\":", i ? "," : "", ks[i]);
        out_json_float(f, ir[i] / 100.0);
        fprintf(f, ",\"text_retrieval_recall@%d\":", ks[i]);
        out_json_float(f, tr[i] / 100.0);
    }
    fputc('}', f);
    fprintf(f,
            ",\"n_images\":%d,\"n_texts\":%d,\"n_entries\":%d,\"n_no_captions\":%d,"
            "\"n_failed_images\":%d,\"n_failed_texts\":%d,\"failed\":[",
            r->n_images, r->n_texts, s->n_entries, s->n_no_captions, r->n_failed_images,
            r->n_failed_texts);
    for (int i = 0; i < c->n_fail; i++) {
        fputs(i ? ",{\"path\":" : "{\"path\":", f);
        out_json_str(f, c->fail_path[i]);
        fputs(",\"error\":", f);
        out_json_str(f, c->fail_reason[i]);
        fputc('}', f);
    }
    fputs("],\"protocol\":{\"captions\":", f);
    out_json_str(f, o->captions ? o->captions : "all");
    fputs(",\"lang\":", f);
    if (o->lang)
        out_json_str(f, o->lang);
    else
        fputs("null", f);
    fputs(",\"text_process\":", f);
    out_json_str(f, process_name(r->text_process));
    fprintf(f,
            ",\"max_words\":%d,\"rerank_k\":%d,\"itm_enc_token\":%s,\"exif_orient\":%s,"
            "\"fast_decode\":%s,\"ties\":\"optimistic: rank = candidates scoring strictly "
            "higher\",\"reference\":\"LAVIS retrieval itm_eval\"}",
            r->text_process == GZ_EVAL_TEXT_BLIP ? (o->max_words > 0 ? o->max_words : 50) : 0,
            r->rerank_k, o->enc_token ? "true" : "false", o->exif ? "true" : "false",
            o->fast_decode ? "true" : "false");
    fputs(",\"model\":{\"dir\":", f);
    out_json_str(f, dir);
    fputs(",\"family\":", f);
    out_json_str(f, gz_family_name(gz_model_family(m)));
    fputs(",\"fingerprint\":", f);
    out_json_str(f, fp);
    fprintf(f, ",\"dim\":%d,\"image_size\":%d", gz_model_dim(m), gz_model_image_size(m));
    fputs(",\"weights\":", f);
    if (o->weights)
        out_json_str(f, o->weights);
    else
        fputs("null", f);
    fputs("},\"dataset\":{\"file\":", f);
    out_json_str(f, s->file);
    fputs(",\"format\":", f);
    out_json_str(f, s->format);
    fprintf(f, ",\"xxh3_64\":\"%016llx\"", (unsigned long long)s->file_hash);
    if (!strcmp(s->format, "karpathy")) {
        fputs(",\"split\":", f);
        out_json_str(f, o->split ? o->split : "test");
    }
    fputs("},\"timings\":{\"load_s\":", f);
    out_json_float(f, t_load);
    fputs(",\"images_s\":", f);
    out_json_float(f, r->t_images);
    fputs(",\"texts_s\":", f);
    out_json_float(f, r->t_texts);
    fputs(",\"rank_s\":", f);
    out_json_float(f, r->t_rank);
    fputs(",\"rerank_s\":", f);
    out_json_float(f, r->t_rerank);
    fputs(",\"total_s\":", f);
    out_json_float(f, r->t_total + t_load);
    fputs(",\"images_per_s\":", f);
    out_json_float(f, r->t_images > 0 ? (r->n_images + r->n_failed_images) / r->t_images : 0);
    fputs("},\"gaze_version\":", f);
    out_json_str(f, gz_version());
    fputs("}\n", f);
}

static void print_table(const eval_opts *o, const char *dir, gz_model *m, const char *fp,
                        const gz_eval_set *s, const gz_eval_result *r, double t_load) {
    fputs("dataset   ", stdout);
    out_term_puts(stdout, s->file);
    printf(" (%s, xxh3 %016llx)\nmodel     ", s->format, (unsigned long long)s->file_hash);
    out_term_puts(stdout, dir);
    printf(" (%s, fingerprint %s)\n", gz_family_name(gz_model_family(m)), fp);
    printf("protocol  LAVIS: captions %s%s%s, text %s", o->captions ? o->captions : "all",
           o->lang ? ", lang " : "", o->lang ? o->lang : "", process_name(r->text_process));
    if (r->text_process == GZ_EVAL_TEXT_BLIP)
        printf(" (max_words %d)", o->max_words > 0 ? o->max_words : 50);
    printf(", ties optimistic%s\n", o->enc_token ? ", ITM [ENC]" : "");
    printf("queries   %d image%s (image->text), %d text%s (text->image)", r->n_images,
           cli_plural(r->n_images), r->n_texts, cli_plural(r->n_texts));
    if (s->n_no_captions)
        printf("; %d entr%s without captions skipped", s->n_no_captions,
               s->n_no_captions == 1 ? "y" : "ies");
    if (r->n_failed_images)
        printf("; %d failed image%s left out with %d caption%s", r->n_failed_images,
               cli_plural(r->n_failed_images), r->n_failed_texts, cli_plural(r->n_failed_texts));
    printf("\n\n");
    static const char *const hdr[] = {"ranking", "txt_r1", "txt_r5",  "txt_r10",    "txt_r_mean",
                                      "img_r1",  "img_r5", "img_r10", "img_r_mean", "r_mean"};
    static const int right[] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    out_table t;
    out_table_init(&t, 10, hdr, right);
    table_row(&t, "itc", &r->itc);
    char name[64];
    if (r->rerank_k) {
        snprintf(name, sizeof name, "itm+itc k=%d", r->rerank_k);
        table_row(&t, name, &r->rerank);
    }
    out_table_print(&t, stdout);
    out_table_free(&t);
    printf("\nties      itc: %d image / %d text queries", r->n_tied_txt_itc, r->n_tied_img_itc);
    if (r->rerank_k) printf("; re-rank: %d / %d", r->n_tied_txt_rerank, r->n_tied_img_rerank);
    printf(" (ground truth tied with another candidate)\n");
    int n_all = r->n_images + r->n_failed_images;
    printf("time      load %.2f s, images %.2f s (%.1f img/s), texts %.2f s, rank %.3f s", t_load,
           r->t_images, r->t_images > 0 ? n_all / r->t_images : 0.0, r->t_texts, r->t_rank);
    if (r->rerank_k)
        printf(", re-rank %.2f s (%lld ITM pair%s)", r->t_rerank, (long long)r->n_itm_pairs,
               cli_plural((long)r->n_itm_pairs));
    printf(", total %.2f s\n", r->t_total + t_load);
}

/* --per-item FILE: one JSON line per query. Returns 0 or -1 (message printed). */
static int write_per_item(const char *path, const gz_eval_set *s, const gz_eval_result *r) {
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_errorf("%s: %s", path, strerror(errno));
        return -1;
    }
    const int T = r->n_texts;
    const int *trank = r->rerank_k ? r->txt_rank_rerank : r->txt_rank_itc;
    const int *ttop = r->rerank_k ? r->txt_top_rerank : r->txt_top_itc;
    const int *irank = r->rerank_k ? r->img_rank_rerank : r->img_rank_itc;
    const int *itop = r->rerank_k ? r->img_top_rerank : r->img_top_itc;
    for (int i = 0; i < r->n_images; i++) {
        const gz_eval_image *im = &s->images[r->image_index[i]];
        fputs("{\"query\":\"image\",\"image\":", f);
        out_json_str(f, im->image);
        fprintf(f, ",\"line\":%ld,\"n_gt\":%d,\"rank\":%d,\"rank_itc\":%d", im->line, im->n_texts,
                trank[i] + 1, r->txt_rank_itc[i] + 1);
        if (r->rerank_k) fprintf(f, ",\"rank_rerank\":%d", r->txt_rank_rerank[i] + 1);
        int tp = ttop[i];
        fputs(",\"top\":", f);
        out_json_str(f, s->texts[r->text_index[tp]]);
        fprintf(f, ",\"top_is_gt\":%s,\"top_itc\":", r->txt2img[tp] == i ? "true" : "false");
        out_json_float(f, r->i2t_itc[(size_t)i * T + tp]);
        fputs("}\n", f);
    }
    for (int t = 0; t < T; t++) {
        int g = r->txt2img[t];
        const gz_eval_image *im = &s->images[r->image_index[g]];
        fputs("{\"query\":\"text\",\"text\":", f);
        out_json_str(f, s->texts[r->text_index[t]]);
        fputs(",\"text_processed\":", f);
        out_json_str(f, r->processed_texts[t]);
        fputs(",\"image\":", f);
        out_json_str(f, im->image);
        fprintf(f, ",\"rank\":%d,\"rank_itc\":%d", irank[t] + 1, r->img_rank_itc[t] + 1);
        if (r->rerank_k) fprintf(f, ",\"rank_rerank\":%d", r->img_rank_rerank[t] + 1);
        fputs(",\"gt_itc\":", f);
        out_json_float(f, r->i2t_itc[(size_t)g * T + t]);
        fputs(",\"top\":", f);
        out_json_str(f, s->images[r->image_index[itop[t]]].image);
        fputs(",\"top_itc\":", f);
        out_json_float(f, r->i2t_itc[(size_t)itop[t] * T + t]);
        fputs("}\n", f);
    }
    if (fclose(f) != 0) {
        cli_errorf("%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int cmd_eval(int argc, char **argv) {
    eval_opts o;
    memset(&o, 0, sizeof o);
    const char *precision = NULL; /* --precision */
    int allow_outside = 0;
    const cli_opt opts[] = {
        {"model", 'm', CLI_STR, &o.model, "DIR", "model directory (default $GAZE_MODEL)"},
        {"allow-outside", 0, CLI_FLAG, &allow_outside, NULL,
         "accept absolute image paths and paths leaving the set's folder"},
        {"lang", 'l', CLI_STR, &o.lang, "LOCALE",
         "captions from captions_i18n[LOCALE] (zh_TW ...)"},
        {"captions", 0, CLI_STR, &o.captions, "first|all", "captions per image (default all)"},
        {"rerank", 'r', CLI_INT, &o.rerank, "K", "BLIP: ITM re-rank of the ITC top K (k_test)"},
        {"image-root", 0, CLI_STR, &o.image_root, "DIR", "folder of relative image paths"},
        {"split", 0, CLI_STR, &o.split, "NAME", "Karpathy dataset_*.json split (default test)"},
        {"text-process", 0, CLI_STR, &o.text_process, "MODE",
         "caption pre-processing: auto|blip|none (default auto)"},
        {"max-words", 0, CLI_INT, &o.max_words, "N", "blip_caption word limit (default 50)"},
        {"itm-enc-token", 0, CLI_FLAG, &o.enc_token, NULL,
         "ITM input starts with [ENC] (LAVIS / original BLIP)"},
        {"exif-orient", 0, CLI_FLAG, &o.exif, NULL, "rotate photos by EXIF (PIL does not)"},
        {"fast-decode", 0, CLI_FLAG, &o.fast_decode, NULL, "JPEG DCT-scaled decoding (faster)"},
        {"json", 0, CLI_FLAG, &o.json, NULL, "one JSON object"},
        {"per-item", 0, CLI_STR, &o.per_item, "FILE", "write every query's rank as JSON lines"},
        {"batch", 0, CLI_COUNT, &o.batch, "N", "images per batch (default 8)"},
        {"weights", 0, CLI_STR, &o.weights, "FILE", "weights file inside the model directory"},
        {"threads", 0, CLI_COUNT, &o.threads, "N", "threads (default: all cores)"},
        {"precision", 0, CLI_STR, &precision, "fp32|bf16",
         "Linear layers in fp32 (default) or bf16: bf16 weights, AVX512-BF16 dot products, ~2x "
         "faster, cosine to fp32 >= 0.999; fp32 with a note where the CPU lacks AVX512-BF16"},
        {"quiet", 'q', CLI_FLAG, &o.quiet, NULL, "no progress output"},
        {0},
    };
    const cli_command cmd = {"eval",
                             "DATASET --model DIR [options]",
                             "Image-text retrieval evaluation (Recall@1/5/10, LAVIS protocol).",
                             EVAL_DETAILS,
                             EVAL_EXAMPLES,
                             opts,
                             1,
                             1};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) return rc;
    const char *dataset = pos.v[0];
    cli_list_free(&pos);
    gz_eval_load_opts lo = gz_eval_default_load_opts();
    lo.allow_outside_root = allow_outside;
    gz_eval_params ep = gz_eval_default_params();
    const char *bad = NULL;
    if (o.captions && strcmp(o.captions, "all") && strcmp(o.captions, "first"))
        bad = "--captions must be 'first' or 'all'";
    else if (o.rerank < 0)
        bad = "--rerank must be positive";
    else if (o.max_words < 0)
        bad = "--max-words must be positive";
    else if (o.batch < 0 || o.batch > 4096)
        bad = "--batch must be between 1 and 4096";
    else if (o.lang && !o.lang[0])
        bad = "--lang needs a locale (zh_TW, de, ...)";
    if (!bad && o.text_process) {
        if (!strcmp(o.text_process, "auto"))
            ep.text_process = GZ_EVAL_TEXT_AUTO;
        else if (!strcmp(o.text_process, "blip"))
            ep.text_process = GZ_EVAL_TEXT_BLIP;
        else if (!strcmp(o.text_process, "none"))
            ep.text_process = GZ_EVAL_TEXT_NONE;
        else
            bad = "--text-process must be 'auto', 'blip' or 'none'";
    }
    if (bad) {
        fprintf(stderr, "gaze eval: %s\ntry 'gaze eval --help'\n", bad);
        return EXIT_USAGE;
    }
    lo.lang = o.lang;
    lo.captions =
        o.captions && !strcmp(o.captions, "first") ? GZ_EVAL_CAPTIONS_FIRST : GZ_EVAL_CAPTIONS_ALL;
    lo.image_root = o.image_root;
    if (o.split) lo.split = o.split;
    ep.rerank_k = o.rerank;
    if (o.max_words) ep.max_words = o.max_words;
    if (o.batch) ep.image_batch = o.batch;

    const char *dir = cli_model_dir(o.model);
    if (!dir) {
        cli_errorf("no model: give --model DIR or set $GAZE_MODEL");
        return EXIT_USAGE;
    }
    double t0 = cli_now();
    gz_eval_set *s = NULL;
    gz_status st = gz_eval_load(dataset, &lo, &s);
    if (st != GZ_OK) return cli_report(st);
    gz_model_params mp = cli_model_params(o.weights, o.threads, 0);
    mp.exif_orient = o.exif ? 1 : 0; /* PIL (LAVIS, CLIP_benchmark) does not rotate */
    mp.fast_decode = o.fast_decode ? 1 : 0;
    mp.itm_enc_token = o.enc_token ? 1 : 0;
    if (o.batch) mp.batch_size = o.batch;
    gz_model *m = NULL;
    int load_rc = cli_set_precision(&mp, precision, o.quiet);
    if (!load_rc) load_rc = cli_load_model(dir, &mp, &m);
    if (load_rc) {
        gz_eval_set_free(s);
        return load_rc;
    }
    char fp[65] = "";
    if (gz_model_fingerprint(m, fp) != GZ_OK) snprintf(fp, sizeof fp, "unknown");
    double t_load = cli_now() - t0;
    eval_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.enabled = !o.quiet;
    ep.progress = on_progress;
    ep.image_failed = on_failed;
    ep.user = &ctx;
    gz_eval_result r;
    st = gz_eval_run(m, s, &ep, &r);
    if (ctx.phase && ctx.bar)
        progress_finish(&ctx.prog, ctx.prog.total, ctx.prog.total, ctx.failed);
    int code = EXIT_OK;
    if (st != GZ_OK) {
        /* the library says why re-ranking is refused; the CLI names the flag that asked */
        int refused = st == GZ_EUNSUPPORTED && ep.rerank_k > 0 && !gz_model_has_itm(m);
        code = cli_report_hint(st, refused ? "--rerank: " : NULL, NULL);
        if (refused) code = EXIT_USAGE; /* a flag this model cannot honour */
    } else {
        if (o.json)
            print_json(&o, dir, m, fp, s, &r, &ctx, t_load);
        else
            print_table(&o, dir, m, fp, s, &r, t_load);
        if (o.per_item && write_per_item(o.per_item, s, &r) != 0) code = EXIT_FATAL;
        if (code == EXIT_OK && r.n_failed_images) {
            cli_warnf("%d image%s could not be decoded and %s left out with %d caption%s",
                      r.n_failed_images, r.n_failed_images == 1 ? "" : "s",
                      r.n_failed_images == 1 ? "was" : "were", r.n_failed_texts,
                      r.n_failed_texts == 1 ? "" : "s");
            code = EXIT_PARTIAL;
        }
        gz_eval_result_free(&r);
    }
    ctx_free(&ctx);
    gz_model_free(m);
    gz_eval_set_free(s);
    return code;
}
