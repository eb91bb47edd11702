/* cmd_match.c - `gaze match`: caption matching of (image, text) pairs: ITC cosine for every
 * family, and the ITM head's logit / probability on BLIP. */
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gaze.h"

static const char MATCH_DETAILS[] =
    "Scores per pair. BLIP: itc (cosine of the ITC embeddings), itm_logit (the ITM head's\n"
    "match logit), itm_prob (softmax probability of match) and score = itm_logit + itc (how\n"
    "LAVIS re-ranks). CLIP / Chinese-CLIP: itc and logit = exp(logit_scale) * itc (score =\n"
    "logit); they have no ITM head (--itm is an error for them).\n"
    "--pairs FILE: CSV/TSV/JSONL with fields 'image' and 'text' (image paths relative to the\n"
    "file's folder); malformed rows are reported and make the exit status 1.\n"
    "JSON lines fields: image, text, itc, itm_logit, itm_prob, score (BLIP) | itc, logit,\n"
    "score (CLIP family).\n"
    "Images are decoded at full size, as PIL does (the reference numbers); --fast-decode\n"
    "decodes large JPEGs at a DCT-scaled size (faster, slightly off the reference).";
static const char MATCH_EXAMPLES[] =
    "  gaze match --model models/blip --image cat.jpg --text \"a cat\" --text \"a dog\"\n"
    "  gaze match --model models/blip --pairs pairs.csv --json";

typedef struct {
    const char *model, *weights, *pairs, *image;
    cli_list texts;
    int json, itm, threads, no_exif, fast_decode;
} match_opts;

typedef struct {
    int blip, json;
    out_table table;
} printer;

static void fmtf(char *b, size_t n, double v) { snprintf(b, n, "%.4f", v); }

static void emit(printer *p, const char *image, const char *text, const gz_match *m) {
    if (p->json) {
        fputs("{\"image\":", stdout);
        out_json_str(stdout, image);
        fputs(",\"text\":", stdout);
        out_json_str(stdout, text);
        fputs(",\"itc\":", stdout);
        out_json_float(stdout, m->itc);
        if (p->blip) {
            fputs(",\"itm_logit\":", stdout);
            out_json_float(stdout, m->itm_logit[1]);
            fputs(",\"itm_prob\":", stdout);
            out_json_float(stdout, m->itm_prob);
        } else {
            fputs(",\"logit\":", stdout);
            out_json_float(stdout, m->logit);
        }
        fputs(",\"score\":", stdout);
        out_json_float(stdout, m->score);
        fputs("}\n", stdout);
        return;
    }
    char a[32], b[32], c[32], d[32];
    fmtf(a, sizeof a, m->itc);
    if (p->blip) {
        fmtf(b, sizeof b, m->itm_logit[1]);
        fmtf(c, sizeof c, m->itm_prob);
        fmtf(d, sizeof d, m->score);
        const char *row[] = {image, text, a, b, c, d};
        out_table_row(&p->table, row);
    } else {
        fmtf(b, sizeof b, m->logit);
        const char *row[] = {image, text, a, b};
        out_table_row(&p->table, row);
    }
}

static gz_status load_image(gz_model *m, const char *path, int no_exif, gz_image *img) {
    gz_image_params ip = gz_model_image_params(m);
    if (no_exif) ip.exif_orient = 0;
    memset(img, 0, sizeof *img);
    return gz_image_load(path, &ip, img);
}

/* Pairs from a record file; returns the exit code. */
static int match_pairs(gz_model *m, const match_opts *o, printer *p) {
    gz_records *r = NULL;
    gz_status st = gz_records_open(o->pairs, GZ_REC_AUTO, &r);
    if (st != GZ_OK) return cli_report(st);
    char dirbuf[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", o->pairs);
    const char *dir = dirname(dirbuf);
    int bad = 0;
    char *cached_path = NULL;
    gz_image img;
    memset(&img, 0, sizeof img);
    for (;;) {
        long line = 0;
        int rc = gz_records_next(r, &line);
        if (rc == 0) break;
        if (rc < 0) {
            fprintf(stderr, "gaze: %s\n", gz_last_error());
            bad++;
            continue;
        }
        const char *ip = gz_records_get(r, "image"), *text = gz_records_get(r, "text");
        if (!ip || !*ip || !text) {
            fprintf(stderr, "gaze: %s:%ld: needs fields 'image' and 'text'\n", o->pairs, line);
            bad++;
            continue;
        }
        char path[PATH_MAX * 2];
        if (ip[0] == '/')
            snprintf(path, sizeof path, "%s", ip);
        else
            snprintf(path, sizeof path, "%s/%s", dir, ip);
        if (!cached_path || strcmp(cached_path, path) != 0) {
            gz_image_free(&img);
            free(cached_path);
            cached_path = NULL;
            if (load_image(m, path, o->no_exif, &img) != GZ_OK) {
                fprintf(stderr, "gaze: %s:%ld: %s\n", o->pairs, line, gz_last_error());
                bad++;
                continue;
            }
            cached_path = strdup(path);
        }
        gz_match mt;
        st = gz_match_image_texts(m, &img, &text, 1, &mt);
        if (st != GZ_OK) break;
        emit(p, ip, text, &mt);
    }
    gz_image_free(&img);
    free(cached_path);
    gz_records_close(r);
    if (st != GZ_OK) return cli_report(st);
    return bad ? EXIT_PARTIAL : EXIT_OK;
}

int cmd_match(int argc, char **argv) {
    match_opts o;
    memset(&o, 0, sizeof o);
    const char *precision = NULL; /* --precision */
    const cli_opt opts[] = {
        {"model", 'm', CLI_STR, &o.model, "DIR", "model directory (default $GAZE_MODEL)"},
        {"image", 'i', CLI_STR, &o.image, "FILE", "the image"},
        {"text", 't', CLI_LIST, &o.texts, "TEXT", "a caption to score against it (repeatable)"},
        {"pairs", 0, CLI_STR, &o.pairs, "FILE", "CSV/TSV/JSONL of image,text pairs"},
        {"itm", 0, CLI_FLAG, &o.itm, NULL, "require ITM scores (error unless the model is BLIP)"},
        {"json", 0, CLI_FLAG, &o.json, NULL, "JSON lines output"},
        {"weights", 0, CLI_STR, &o.weights, "FILE", "weights file inside the model directory"},
        {"threads", 0, CLI_COUNT, &o.threads, "N", "threads (default: all cores)"},
        {"precision", 0, CLI_STR, &precision, "fp32|bf16",
         "Linear layers in fp32 (default) or bf16: bf16 weights, AVX512-BF16 dot products, ~2x "
         "faster, cosine to fp32 >= 0.999; fp32 with a note where the CPU lacks AVX512-BF16"},
        {"no-exif-orient", 0, CLI_FLAG, &o.no_exif, NULL, "do not rotate photos by EXIF"},
        {"fast-decode", 0, CLI_FLAG, &o.fast_decode, NULL, "JPEG DCT-scaled decoding (faster)"},
        {0},
    };
    const cli_command cmd = {"match",
                             "--model DIR (--image FILE --text T... | --pairs FILE)",
                             "Score image-caption pairs.",
                             MATCH_DETAILS,
                             MATCH_EXAMPLES,
                             opts,
                             0,
                             0};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) {
        cli_list_free(&o.texts);
        return rc;
    }
    cli_list_free(&pos);
    if (!o.pairs && (!o.image || !o.texts.n)) {
        cli_list_free(&o.texts);
        cli_errorf("give --image FILE with at least one --text, or --pairs FILE");
        return EXIT_USAGE;
    }
    const char *dir = cli_model_dir(o.model);
    gz_model_params mp = cli_model_params(o.weights, o.threads, o.no_exif);
    mp.fast_decode = o.fast_decode; /* PIL-exact unless asked */
    gz_model *m = NULL;
    int load_rc = cli_set_precision(&mp, precision, 0);
    if (!load_rc && o.image) load_rc = cli_check_input_file("--image", o.image);
    if (!load_rc) load_rc = cli_load_model(dir, &mp, &m);
    if (load_rc) {
        cli_list_free(&o.texts);
        return load_rc;
    }
    printer p = {.blip = gz_model_has_itm(m), .json = o.json};
    if (o.itm && !p.blip) {
        cli_errorf("%s: --itm needs a model with an image-text matching head (BLIP); this is a "
                   "%s model, which only gives itc and logit",
                   dir, gz_family_name(gz_model_family(m)));
        gz_model_free(m);
        cli_list_free(&o.texts);
        return EXIT_USAGE; /* a flag this model cannot honour, as search --rerank */
    }
    if (!o.json) {
        static const char *const hb[] = {"image", "text", "itc", "itm_logit", "itm_prob", "score"};
        static const char *const hc[] = {"image", "text", "itc", "logit"};
        static const int rb[] = {0, 0, 1, 1, 1, 1};
        if (p.blip)
            out_table_init(&p.table, 6, hb, rb);
        else
            out_table_init(&p.table, 4, hc, rb);
    }
    int code = EXIT_OK;
    if (o.pairs) {
        code = match_pairs(m, &o, &p);
    } else {
        gz_image img;
        gz_status st = load_image(m, o.image, o.no_exif, &img); /* img zeroed on failure */
        gz_match *mt = calloc((size_t)o.texts.n, sizeof *mt);
        if (!mt) {
            cli_errorf("out of memory");
            code = EXIT_FATAL;
        } else if (st == GZ_OK) {
            st = gz_match_image_texts(m, &img, o.texts.v, o.texts.n, mt);
        }
        if (mt && st == GZ_OK)
            for (int i = 0; i < o.texts.n; i++)
                emit(&p, o.image, o.texts.v[i], &mt[i]);
        if (mt && st != GZ_OK) code = cli_report(st);
        gz_image_free(&img);
        free(mt);
    }
    if (!o.json) {
        if (p.table.nrow > 1) out_table_print(&p.table, stdout);
        out_table_free(&p.table);
    }
    gz_model_free(m);
    cli_list_free(&o.texts);
    return code;
}
