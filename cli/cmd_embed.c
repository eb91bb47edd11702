/* cmd_embed.c - `gaze embed`: print normalised embeddings of texts, image files or an
 * already preprocessed pixel tensor as JSON lines (interop and debugging). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "gaze.h"

static const char EMBED_DETAILS[] =
    "Output is JSON lines, one per input, in input order:\n"
    "  {\"kind\":\"text\",\"text\":T,\"ids\":[...],\"dim\":D,\"embedding\":[...]}\n"
    "  {\"kind\":\"image\",\"path\":P,\"width\":W,\"height\":H,\"dim\":D,\"embedding\":[...]}\n"
    "  {\"kind\":\"pixels\",\"file\":F,\"key\":K,\"index\":I,\"dim\":D,\"embedding\":[...]}\n"
    "Embeddings are L2-normalised projections (ITC space); the cosine of two of them is\n"
    "their dot product. --pixels takes an (N, 3, S, S) float tensor (F32/F16/BF16) already\n"
    "preprocessed as the model's processor does (S = the model's image size).\n"
    "Image files are decoded at full size, as PIL does, so embeddings match the reference\n"
    "(transformers); --fast-decode lets JPEGs much larger than the model input decode at a\n"
    "DCT-scaled size instead: faster, but off the reference (cosine ~0.99+).";
static const char EMBED_EXAMPLES[] =
    "  gaze embed --model models/blip --text \"a dog on a beach\" --text \"a cat\"\n"
    "  gaze embed --model models/clip --image photo.jpg\n"
    "  gaze embed --model models/clip --pixels expected.safetensors --key pixel_values";

typedef struct {
    const char *model, *weights, *pixels, *key;
    cli_list texts, images;
    int json, threads, no_exif, fast, fast_decode;
} embed_opts;

static void print_vec(const float *v, int dim) {
    printf(",\"dim\":%d,\"embedding\":", dim);
    out_json_floats(stdout, v, dim);
    fputs("}\n", stdout);
}

/* Each embed_xxx prints its results, reports its error and returns the exit code. */
static int embed_texts(gz_model *m, const embed_opts *o, float *v, int dim) {
    gz_status st = GZ_OK;
    for (int i = 0; i < o->texts.n && st == GZ_OK; i++) {
        st = gz_encode_texts(m, &o->texts.v[i], 1, v);
        int32_t *ids = NULL;
        int n = 0;
        /* the ids the text tower saw: the model's own tokenizer, truncated as encoding does */
        if (st == GZ_OK) st = gz_model_tokenize(m, o->texts.v[i], -1, &ids, &n);
        if (st != GZ_OK) break;
        fputs("{\"kind\":\"text\",\"text\":", stdout);
        out_json_str(stdout, o->texts.v[i]);
        fputs(",\"ids\":[", stdout);
        for (int j = 0; j < n; j++)
            printf(j ? ",%d" : "%d", (int)ids[j]);
        fputc(']', stdout);
        free(ids);
        print_vec(v, dim);
    }
    return cli_report(st);
}

static int embed_images(gz_model *m, const embed_opts *o, float *v, int dim) {
    gz_image_params ip = gz_model_image_params(m);
    if (o->no_exif) ip.exif_orient = 0;
    gz_status st = GZ_OK;
    for (int i = 0; i < o->images.n && st == GZ_OK; i++) {
        gz_image img;
        memset(&img, 0, sizeof img);
        st = gz_image_load(o->images.v[i], &ip, &img);
        if (st != GZ_OK) break;
        st = gz_encode_images(m, &img, 1, v);
        if (st == GZ_OK) {
            fputs("{\"kind\":\"image\",\"path\":", stdout);
            out_json_str(stdout, o->images.v[i]);
            printf(",\"width\":%d,\"height\":%d", img.src_width, img.src_height);
            print_vec(v, dim);
        }
        gz_image_free(&img);
    }
    return cli_report(st);
}

/* A tensor missing from a readable --pixels file gets the flag that names another one. */
static int report_pixels_error(gz_status st, const char *path) {
    struct stat sb;
    if (st == GZ_ENOTFOUND && stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
        return cli_report_hint(st, NULL, " (use --key NAME)");
    return cli_report(st);
}

static int embed_pixels(gz_model *m, const embed_opts *o, const char *key, int dim) {
    float *px = NULL;
    int n = 0;
    gz_status st = gz_model_load_pixels(m, o->pixels, key, &px, &n);
    if (st != GZ_OK) return report_pixels_error(st, o->pixels);
    float *v = calloc((size_t)n ? (size_t)n : 1, (size_t)dim * sizeof *v);
    if (!v) {
        free(px);
        cli_errorf("out of memory");
        return EXIT_FATAL;
    }
    st = gz_encode_pixels(m, px, n, v);
    for (int i = 0; i < n && st == GZ_OK; i++) {
        fputs("{\"kind\":\"pixels\",\"file\":", stdout);
        out_json_str(stdout, o->pixels);
        fputs(",\"key\":", stdout);
        out_json_str(stdout, key);
        printf(",\"index\":%d", i);
        print_vec(v + (size_t)i * (size_t)dim, dim);
    }
    free(v);
    free(px);
    return cli_report(st);
}

int cmd_embed(int argc, char **argv) {
    embed_opts o;
    memset(&o, 0, sizeof o);
    const char *precision = NULL; /* --precision */
    const cli_opt opts[] = {
        {"model", 'm', CLI_STR, &o.model, "DIR", "model directory (default $GAZE_MODEL)"},
        {"text", 't', CLI_LIST, &o.texts, "TEXT", "a text to embed (repeatable)"},
        {"image", 'i', CLI_LIST, &o.images, "FILE", "an image file to embed (repeatable)"},
        {"pixels", 0, CLI_STR, &o.pixels, "FILE", "a safetensors file with preprocessed pixels"},
        {"key", 0, CLI_STR, &o.key, "NAME", "tensor name in --pixels (default pixel_values)"},
        {"json", 0, CLI_FLAG, &o.json, NULL, "JSON lines (the default and only format)"},
        {"weights", 0, CLI_STR, &o.weights, "FILE", "weights file inside the model directory"},
        {"threads", 0, CLI_COUNT, &o.threads, "N", "threads (default: all cores)"},
        {"precision", 0, CLI_STR, &precision, "fp32|bf16",
         "Linear layers in fp32 (default) or bf16: bf16 weights, AVX512-BF16 dot products, ~2x "
         "faster, cosine to fp32 >= 0.999; fp32 with a note where the CPU lacks AVX512-BF16"},
        {"no-exif-orient", 0, CLI_FLAG, &o.no_exif, NULL, "do not rotate photos by EXIF"},
        {"fast-decode", 0, CLI_FLAG, &o.fast_decode, NULL, "JPEG DCT-scaled decoding (faster)"},
        {"fast-tokenizer", 0, CLI_FLAG, &o.fast, NULL, "CLIP: HF fast-tokenizer text clean-up"},
        {0},
    };
    const cli_command cmd = {"embed",
                             "--model DIR (--text T | --image FILE | --pixels FILE)...",
                             "Print normalised embeddings as JSON lines.",
                             EMBED_DETAILS,
                             EMBED_EXAMPLES,
                             opts,
                             0,
                             0};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) {
        cli_list_free(&o.texts);
        cli_list_free(&o.images);
        return rc;
    }
    cli_list_free(&pos);
    if (!o.texts.n && !o.images.n && !o.pixels) {
        cli_errorf("nothing to embed: give --text, --image or --pixels");
        return EXIT_USAGE;
    }
    const char *dir = cli_model_dir(o.model);
    gz_model_params mp = cli_model_params(o.weights, o.threads, o.no_exif);
    mp.clip_fast_tokenizer = o.fast;
    mp.fast_decode = o.fast_decode; /* PIL-exact unless asked */
    gz_model *m = NULL;
    int load_rc = cli_set_precision(&mp, precision, 0);
    for (int i = 0; i < o.images.n && !load_rc; i++)
        load_rc = cli_check_input_file("--image", o.images.v[i]);
    if (!load_rc) load_rc = cli_load_model(dir, &mp, &m);
    if (load_rc) {
        cli_list_free(&o.texts);
        cli_list_free(&o.images);
        return load_rc;
    }
    int dim = gz_model_dim(m);
    float *v = malloc((size_t)dim * sizeof *v);
    rc = EXIT_OK;
    if (!v) {
        cli_errorf("out of memory");
        rc = EXIT_FATAL;
    }
    if (rc == EXIT_OK && o.texts.n) rc = embed_texts(m, &o, v, dim);
    if (rc == EXIT_OK && o.images.n) rc = embed_images(m, &o, v, dim);
    if (rc == EXIT_OK && o.pixels) rc = embed_pixels(m, &o, o.key ? o.key : "pixel_values", dim);
    free(v);
    gz_model_free(m);
    cli_list_free(&o.texts);
    cli_list_free(&o.images);
    return rc;
}
