/* cmd_add_texts.c - `gaze add-texts`: import captions / product records (JSONL, CSV, TSV). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "gaze.h"

static const char ADD_DETAILS[] =
    "Each record becomes a text item keyed by (file, id); re-importing a file updates changed\n"
    "texts and skips unchanged ones. CSV (RFC 4180 quoting) and TSV need a header row; JSONL\n"
    "has one JSON object per line. The format comes from the extension (.jsonl .ndjson .json\n"
    ".csv .tsv .tab) unless --format is given. Malformed rows are reported with their line\n"
    "number and skipped; the rest is imported (exit status 1 if any row failed).\n"
    "--text-field may list several fields (title,description): they are joined with \". \".\n"
    "--image-field links each text to an image (path relative to the file's folder), indexing\n"
    "it if needed, so `gaze search --products` can combine text and image similarity.\n"
    "--json prints a summary object per file: file, rows, added, unchanged, failed, linked.";
static const char ADD_EXAMPLES[] =
    "  gaze add-texts captions.jsonl\n"
    "  gaze add-texts products.csv --id-field sku --text-field title,description "
    "--image-field photo\n"
    "  gaze search --texts --image photo.jpg";

typedef struct {
    long n_errors;
} add_ctx;

static void on_row_error(void *user, const char *file, long line, const char *message) {
    add_ctx *c = user;
    c->n_errors++;
    fprintf(stderr, "gaze: %s:%ld: %s\n", file, line, message);
}

int cmd_add_texts(int argc, char **argv) {
    const char *db = NULL, *model = NULL, *weights = NULL, *format = NULL;
    const char *id_field = NULL, *text_field = NULL, *image_field = NULL;
    int batch = 0, json = 0, quiet = 0, threads = 0;
    const char *precision = NULL; /* --precision */
    const cli_opt opts[] = {
        {"db", 0, CLI_STR, &db, "FILE", "database (default $XDG_DATA_HOME/gaze/gaze.db)"},
        {"model", 'm', CLI_STR, &model, "DIR", "model (default $GAZE_MODEL, else the db's)"},
        {"id-field", 0, CLI_STR, &id_field, "F", "record id field (default id; else line:N)"},
        {"text-field", 0, CLI_STR, &text_field, "F[,F]", "text field(s) (default text)"},
        {"image-field", 0, CLI_STR, &image_field, "F", "field with an image path to link"},
        {"format", 0, CLI_STR, &format, "FMT", "jsonl, csv or tsv (default: by extension)"},
        {"batch", 'b', CLI_INT, &batch, "N", "texts per batch / transaction (default 32)"},
        {"threads", 0, CLI_INT, &threads, "N", "compute threads (default: all cores)"},
        {"precision", 0, CLI_STR, &precision, "fp32|bf16",
         "Linear layers in fp32 (default) or bf16: bf16 weights, AVX512-BF16 dot products, ~2x "
         "faster, cosine to fp32 >= 0.999; fp32 with a note where the CPU lacks AVX512-BF16"},
        {"weights", 0, CLI_STR, &weights, "FILE", "weights file inside the model directory"},
        {"json", 0, CLI_FLAG, &json, NULL, "print the summary as JSON"},
        {"quiet", 'q', CLI_FLAG, &quiet, NULL, "no notices"},
        {0},
    };
    const cli_command cmd = {"add-texts",
                             "FILE... [options]",
                             "Import captions or product records as searchable texts.",
                             ADD_DETAILS,
                             ADD_EXAMPLES,
                             opts,
                             1,
                             -1};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) return rc;
    gz_texts_opts to = gz_texts_default_opts();
    if (format) {
        if (!strcasecmp(format, "jsonl") || !strcasecmp(format, "json"))
            to.format = GZ_REC_JSONL;
        else if (!strcasecmp(format, "csv"))
            to.format = GZ_REC_CSV;
        else if (!strcasecmp(format, "tsv"))
            to.format = GZ_REC_TSV;
        else {
            cli_list_free(&pos);
            cli_errorf("--format must be jsonl, csv or tsv (got '%s')", format);
            return EXIT_USAGE;
        }
    }
    if (id_field) to.id_field = id_field;
    if (text_field) to.text_field = text_field;
    to.image_field = image_field;
    if (batch > 0) to.batch_size = batch;
    add_ctx ctx = {0};
    to.row_error = on_row_error;
    to.user = &ctx;
    gz_model_params mp = cli_model_params(weights, threads, 0);
    gz_engine *e = NULL;
    rc = cli_set_precision(&mp, precision, quiet);
    if (!rc) rc = cli_open_engine(db, model, &mp, NULL, quiet, 0, &e);
    if (rc) {
        cli_list_free(&pos);
        return rc;
    }
    int code = EXIT_OK;
    for (int i = 0; i < pos.n; i++) {
        gz_texts_stats s;
        gz_status st = gz_engine_add_texts(e, pos.v[i], &to, &s);
        if (st != GZ_OK) {
            code = cli_report_engine(e, st);
            break;
        }
        if (s.failed) code = EXIT_PARTIAL;
        if (json) {
            fputs("{\"file\":", stdout);
            out_json_str(stdout, pos.v[i]);
            printf(",\"rows\":%ld,\"added\":%ld,\"unchanged\":%ld,\"failed\":%ld,\"linked\":%ld}\n",
                   s.rows, s.added, s.unchanged, s.failed, s.linked);
        } else {
            printf("%s: %ld rows: %ld added, %ld unchanged, %ld failed, %ld linked to images\n",
                   pos.v[i], s.rows, s.added, s.unchanged, s.failed, s.linked);
        }
    }
    gz_status cst = gz_engine_close(e);
    if (cst != GZ_OK && code == EXIT_OK) code = cli_report(cst);
    cli_list_free(&pos);
    return code;
}
