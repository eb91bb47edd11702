/* cmd_add_texts.c - `gaze add-texts`: import captions / product records (JSONL, CSV, TSV). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "gaze.h"

static const char ADD_DETAILS[] =
    "Each record becomes an item of a catalogue, keyed by its id (--id-field, default id): a\n"
    "row without one, or with an id seen earlier in the file, is an error for that row (the\n"
    "first is kept). --catalog NAME names the catalogue; without it the catalogue is the\n"
    "file's absolute path, so the same products exported under another file name would be a\n"
    "second catalogue: give --catalog to keep one (the summary says which name was used).\n"
    "Re-importing updates changed rows (counted as updated) and skips unchanged ones; --sync\n"
    "also removes the catalogue's items whose id is no longer in the file (not when a row\n"
    "could not be read). CSV (RFC 4180 quoting) and TSV need a header row; JSONL has one JSON\n"
    "object per line. The format comes from the extension (.jsonl .ndjson .json .csv .tsv\n"
    ".tab) unless --format is given. Malformed rows are reported with their line number and\n"
    "skipped; the rest is imported (exit status 1 if any row failed).\n"
    "--text-field may list several fields (title,description): they are joined with \". \".\n"
    "--image-field links each text to an image (path relative to the file's folder), indexing\n"
    "it if needed, so `gaze search --products` can combine text and image similarity; a row\n"
    "whose image is missing or unreadable is imported without it, with a warning.\n"
    "--json prints a summary object per file: file, catalog, rows, added, updated, unchanged,\n"
    "failed, linked, image_failed, removed.\n"
    "Remove a catalogue or some of its items with gaze rm --catalog NAME [--id ID].";
static const char ADD_EXAMPLES[] =
    "  gaze add-texts captions.jsonl\n"
    "  gaze add-texts products.csv --catalog shop --sync --id-field sku --text-field "
    "title,description --image-field photo\n"
    "  gaze search --texts --image photo.jpg";

typedef struct {
    long n_errors;
} add_ctx;

static void on_row_error(void *user, const char *file, long line, const char *message) {
    add_ctx *c = user;
    c->n_errors++;
    fprintf(stderr, "gaze: %s:%ld: %s\n", file, line, message);
}

static void on_row_warning(void *user, const char *file, long line, const char *message) {
    (void)user;
    fprintf(stderr, "gaze: warning: %s:%ld: %s\n", file, line, message);
}

static const char *plural(long n, const char *one, const char *many) { return n == 1 ? one : many; }

int cmd_add_texts(int argc, char **argv) {
    const char *db = NULL, *model = NULL, *weights = NULL, *format = NULL;
    const char *id_field = NULL, *text_field = NULL, *image_field = NULL, *catalog = NULL;
    int batch = 0, json = 0, quiet = 0, threads = 0, sync = 0, allow_outside = 0;
    const char *precision = NULL; /* --precision */
    const cli_opt opts[] = {
        {"db", 0, CLI_STR, &db, "FILE", "database (default $XDG_DATA_HOME/gaze/gaze.db)"},
        {"model", 'm', CLI_STR, &model, "DIR", "model (default $GAZE_MODEL, else the db's)"},
        {"catalog", 'c', CLI_STR, &catalog, "NAME", "catalogue name (default: the file's path)"},
        {"sync", 0, CLI_FLAG, &sync, NULL, "remove the catalogue's items no longer in the file"},
        {"allow-outside", 0, CLI_FLAG, &allow_outside, NULL,
         "link images outside the file's folder (a catalogue from elsewhere cannot by default)"},
        {"id-field", 0, CLI_STR, &id_field, "F", "record id field (default id)"},
        {"text-field", 0, CLI_STR, &text_field, "F[,F]", "text field(s) (default text)"},
        {"image-field", 0, CLI_STR, &image_field, "F", "field with an image path to link"},
        {"format", 0, CLI_STR, &format, "FMT", "jsonl, csv or tsv (default: by extension)"},
        {"batch", 'b', CLI_COUNT, &batch, "N", "texts per batch / transaction (default 32)"},
        {"threads", 0, CLI_COUNT, &threads, "N", "compute threads (default: all cores)"},
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
    if (catalog && !*catalog) {
        cli_list_free(&pos);
        cli_errorf("--catalog needs a name");
        return EXIT_USAGE;
    }
    if (catalog && pos.n > 1) {
        cli_list_free(&pos);
        cli_errorf("--catalog names one file's catalogue: give one FILE");
        return EXIT_USAGE;
    }
    to.catalog = catalog;
    to.sync = sync;
    to.allow_outside = allow_outside;
    to.row_warning = on_row_warning;
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
            fputs(",\"catalog\":", stdout);
            out_json_str(stdout, s.catalog);
            printf(",\"rows\":%ld,\"added\":%ld,\"updated\":%ld,\"unchanged\":%ld,\"failed\":%ld,"
                   "\"linked\":%ld,\"image_failed\":%ld,\"removed\":%ld}\n",
                   s.rows, s.added, s.updated, s.unchanged, s.failed, s.linked, s.image_failed,
                   s.removed);
        } else {
            printf("%s: %ld %s: %ld added, %ld updated, %ld unchanged, %ld failed, %ld linked to "
                   "images",
                   pos.v[i], s.rows, plural(s.rows, "row", "rows"), s.added, s.updated, s.unchanged,
                   s.failed, s.linked);
            if (s.image_failed)
                printf(", %ld without %s image", s.image_failed,
                       plural(s.image_failed, "its", "their"));
            if (sync) printf(", %ld removed", s.removed);
            printf("\n");
            if (catalog)
                printf("catalogue '%s'\n", s.catalog);
            else
                printf("catalogue '%s' (the file's path: give --catalog NAME to keep the same "
                       "catalogue under another file name)\n",
                       s.catalog);
        }
        if (s.sync_skipped)
            cli_warnf("%s: --sync removed nothing: some rows could not be read, so their ids "
                      "are unknown",
                      pos.v[i]);
    }
    gz_status cst = gz_engine_close(e);
    if (cst != GZ_OK && code == EXIT_OK) code = cli_report(cst);
    cli_list_free(&pos);
    return code;
}
