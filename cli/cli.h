/* cli.h - internals of the gaze command: option parsing, output formats, progress, commands.
 *
 * Every command is a thin function `int cmd_xxx(int argc, char **argv)` that parses its
 * options with cli_parse() (one generic, table-driven worker), calls the library / engine
 * API, and formats the result. Exit codes (DESIGN.md §7): 0 ok, 1 partial (some files
 * failed), 2 usage, 3 fatal. Library errors are printed as "gaze: <message>". */
#ifndef GZ_CLI_H
#define GZ_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "gaze.h"

/* EXIT_INTERRUPTED is what shells report for a SIGINT-ended command (128 + 2). */
enum { EXIT_OK = 0, EXIT_PARTIAL = 1, EXIT_USAGE = 2, EXIT_FATAL = 3, EXIT_INTERRUPTED = 130 };
/* The exit codes as every command's --help states them (one text, shared). */
extern const char CLI_EXIT_STATUS_HELP[];
/* cli_parse() result when --help was printed: the command returns EXIT_OK. */
#define CLI_HELP_SHOWN (-1)

/* ---- options ---- */

typedef enum {
    CLI_FLAG,   /* int *: set to 1 */
    CLI_STR,    /* const char **: last one wins */
    CLI_INT,    /* int *: decimal, range-checked */
    CLI_COUNT,  /* int *: decimal, at least 1 (0 stays free to mean "not given") */
    CLI_DOUBLE, /* double * */
    CLI_LIST,   /* cli_list *: every occurrence appended, in order */
    CLI_OPTVAL, /* const char **: "" for the bare --name, VALUE for --name=VALUE (a value only
                   after '=', so the next argument is never taken) */
} cli_opt_type;

typedef struct {
    const char **v; /* borrowed argv strings */
    int n, cap;
} cli_list;

typedef struct {
    const char *name; /* long name without the dashes, e.g. "min-score" */
    char short_name;  /* 0 = none */
    cli_opt_type type;
    void *dest;
    const char *metavar; /* "N", "FILE", ... (NULL for flags) */
    const char *help;
} cli_opt;

typedef struct {
    const char *name;     /* "search" */
    const char *usage;    /* "QUERY [options]" */
    const char *summary;  /* one line */
    const char *details;  /* paragraph(s) after the options, may be NULL */
    const char *examples; /* lines of examples, may be NULL */
    const cli_opt *opts;  /* terminated by an entry with name == NULL */
    int min_pos, max_pos; /* positional argument count bounds; max_pos < 0 = unlimited */
} cli_command;

/* Parse argv[1..argc-1] (argv[0] is the command name) against cmd. Positionals are
 * appended to pos. Returns 0, CLI_HELP_SHOWN after printing help for -h/--help, or
 * EXIT_USAGE after printing "gaze CMD: <problem>" and a hint. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_list *pos);
/* cli_parse() at a command's start. Returns 1 when the command goes on (positionals in pos,
 * which the caller frees). Returns 0 when it must stop: pos is freed and *exit_code is what to
 * return (EXIT_OK after --help was printed, EXIT_USAGE after a usage error). */
int cli_parse_command(const cli_command *cmd, int argc, char **argv, cli_list *pos, int *exit_code);
void cli_print_help(const cli_command *cmd, FILE *out);
void cli_list_push(cli_list *l, const char *s);
void cli_list_free(cli_list *l);
/* Levenshtein distance of a and b, capped at cap (anything larger returns cap + 1). */
int cli_edit_distance(const char *a, const char *b, int cap);
/* The candidate closest to word by edit distance when it is close enough to be a typo
 * (at most 2 edits, and fewer than half of word's length), else NULL. */
const char *cli_did_you_mean(const char *word, const char *const *candidates, int n);
/* "s" when n != 1: printf("%ld row%s", n, cli_plural(n)). */
const char *cli_plural(long n);

/* Print "gaze: <gz_last_error()>" and return the exit code for status st. */
int cli_report(gz_status st);
/* cli_report with hints around the library's message ("gaze: <prefix><message><suffix>"; either
 * may be NULL): the library says what is wrong, the command adds which of its flags asked for
 * it or fixes it. A hint the message already carries is left out (a prefix "--flag: " when the
 * message starts with "--flag", a suffix whose text after its leading " ;:(" it contains). */
int cli_report_hint(gz_status st, const char *prefix, const char *suffix);
/* cli_report_hint for a message saved earlier (when a later call may have replaced
 * gz_last_error()). */
int cli_report_text(gz_status st, const char *prefix, const char *msg, const char *suffix);
/* Print "gaze: <formatted>" to stderr, terminal control characters escaped (see
 * out_term_escape): paths and texts in messages cannot drive the terminal. */
void cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Default database path: $XDG_DATA_HOME/gaze/gaze.db, else ~/.local/share/gaze/gaze.db.
 * Creates the directory when create_dir. Returns a malloc'd string or NULL (message set). */
char *cli_default_db_path(int create_dir);
/* The database to use: db_flag when given (*owned = NULL), else cli_default_db_path(create_dir),
 * which the caller frees through *owned. NULL (message printed) when there is none. */
const char *cli_db_path(const char *db_flag, int create_dir, char **owned);
/* Model from --model, else $GAZE_MODEL, else NULL (the db's registered model): a folder or a
 * Hub id ORG/NAME[@REVISION], which gz_model_load resolves from the Hugging Face cache. */
const char *cli_model_dir(const char *flag_value);
/* cli_report for an error of loading model (a folder or Hub id as given): an id missing from
 * the cache gets the hint "; run: gaze model pull ID". Returns EXIT_USAGE for a model that
 * does not exist (no such folder, an id not in the cache), else cli_report's code. */
int cli_report_model(gz_status st, const char *model);

/* Model parameters from the common flags (--weights, --threads, --no-exif-orient). */
gz_model_params cli_model_params(const char *weights, int threads, int no_exif);
/* --precision WORD into mp: NULL or "fp32" = GZ_PRECISION_FP32, "bf16" = GZ_PRECISION_BF16, and
 * where the CPU cannot run bf16 (gz_bf16_available) a note on stderr (unless quiet) that fp32
 * runs instead. Returns EXIT_OK, or EXIT_USAGE after printing the error for another word. */
int cli_set_precision(gz_model_params *mp, const char *word, int quiet);
/* Load the model directory dir (already resolved by cli_model_dir) or print why not.
 * Returns EXIT_OK, EXIT_USAGE (no model given, or one that does not exist) or EXIT_FATAL. */
int cli_load_model(const char *dir, const gz_model_params *mp, gz_model **m);
/* EXIT_OK when path is a regular file; else prints "gaze: FLAG PATH: no such file" (or "not a
 * regular file") and returns EXIT_USAGE: an input named on the command line that is not there
 * is a usage error, found before any model is loaded. */
int cli_check_input_file(const char *flag, const char *path);

typedef struct gz_engine gz_engine;
/* Open the engine on --db (or the default database) with the model from --model /
 * $GAZE_MODEL (or the db's registered model). Database notices go to stderr unless quiet.
 * factory: FAISS index factory string (NULL = keep the db's). must_exist: refuse to create a new
 * database; CLI_OPEN_READONLY: that, and open it read-only (searches write nothing). Prints
 * the error and returns the exit code (0 on success). */
#define CLI_OPEN_READONLY 2
int cli_open_engine(const char *db_flag, const char *model_flag, const gz_model_params *mp,
                    const char *factory, int quiet, int must_exist, gz_engine **e);
/* cli_report for an error of an engine call on e: adds "give --model DIR (or set $GAZE_MODEL)"
 * when the engine found no model to use, and cli_report_model's hint for a Hub id. */
int cli_report_engine(gz_engine *e, gz_status st);

/* ---- output ---- */

/* JSON string literal (with quotes) for arbitrary bytes: invalid UTF-8 becomes U+FFFD. */
void out_json_str(FILE *f, const char *s);
/* A float as JSON (NaN/inf -> null), with enough digits to round-trip. */
void out_json_float(FILE *f, double v);
/* JSON array of floats. */
void out_json_floats(FILE *f, const float *v, int n);
/* Display width (code points, wide CJK counted as 2) of a UTF-8 string. */
int out_display_width(const char *s);
/* Copy of s (malloc'd) with what a terminal would act on made visible: C0 and C1 control
 * characters, DEL and bytes that are not UTF-8 become \xNN (newline, tab and CR become \n,
 * \t, \r). Printable text, UTF-8 included, is kept. Never NULL (exits on no memory). */
char *out_term_escape(const char *s);
/* fputs of out_term_escape(s): text from files, servers or users printed for a person. */
void out_term_puts(FILE *f, const char *s);
/* Print s padded with spaces to width columns (no truncation). */
void out_pad(FILE *f, const char *s, int width);

/* A simple aligned table: add rows of cells, then print with column widths computed. */
typedef struct {
    int ncol;
    char **cells; /* (nrow, ncol) owned copies */
    int nrow, cap;
    int *right; /* per column: 1 = right-aligned (numbers) */
} out_table;
void out_table_init(out_table *t, int ncol, const char *const *header, const int *right_align);
void out_table_row(out_table *t, const char *const *cells);
void out_table_print(const out_table *t, FILE *f);
void out_table_free(out_table *t);

/* Base64 (RFC 4648, with padding) of n bytes; malloc'd NUL-terminated string. */
char *out_base64(const uint8_t *data, size_t n);
/* A JPEG thumbnail (longest side max_side) of an image file as a base64 string, or NULL
 * (message set) when the file cannot be decoded. */
char *out_thumbnail_base64(const char *path, int max_side, int exif_orient);
/* A thumbnail (longest side max_side) of an image file into *out (free with gz_image_free).
 * Returns 0, or -1 with gz_last_error() saying why. */
int out_thumbnail(const char *path, int max_side, int exif_orient, gz_image *out);
/* JPEG of img into a malloc'd buffer (*jpg, *n bytes; free()). Returns 0 or -1. */
int out_jpeg(const gz_image *img, unsigned char **jpg, unsigned long *n);
/* "file://" URL of an absolute path, percent-encoded (a '#', '%' or space in a file name
 * is not read as a fragment, an escape or a break). */
void out_file_url(FILE *f, const char *path);
/* HTML-escape s (& < > " ') to f. */
void out_html_escape(FILE *f, const char *s);

/* ---- terminal previews (preview.c) ---- */

typedef enum { PREVIEW_NONE = 0, PREVIEW_KITTY, PREVIEW_ITERM, PREVIEW_SIXEL } preview_protocol;
/* The protocol named s ("kitty", "iterm" or "iterm2", "sixel", "none"): 0, or -1 if unknown. */
int preview_protocol_parse(const char *s, preview_protocol *out);
/* The protocol of the terminal on stdout, from what terminals set in the environment:
 * kitty (KITTY_WINDOW_ID, TERM=xterm-kitty, ghostty), iTerm2 (TERM_PROGRAM=iTerm.app,
 * LC_TERMINAL=iTerm2, WezTerm), sixel (TERM naming sixel, mlterm, foot, yaft, contour).
 * PREVIEW_NONE when stdout is not a terminal, inside tmux/screen (TMUX, STY, TERM=screen*,
 * tmux*), or for any other TERM. */
preview_protocol preview_detect(void);
/* Draw a thumbnail (longest side max_side pixels) of the image at path on f, then a newline.
 * Returns 0 (nothing drawn for PREVIEW_NONE), or -1 with nothing written and gz_last_error()
 * saying why when the image cannot be read or encoded. */
int preview_draw(FILE *f, preview_protocol p, const char *path, int max_side);

/* ---- query images given by URL (fetch.c) ---- */

/* Limits of a fetched query image: answers above max_bytes are refused (both by the
 * announced Content-Length and by what arrives); the transfer is abandoned after timeout_s. */
#define CLI_URL_MAX_MB_DEFAULT 32
#define CLI_URL_TIMEOUT_S 30
/* 1 when s is an http:// or https:// URL. */
int cli_is_url(const char *s);
/* Download the image at url into a new private temp file (mkstemp in $TMPDIR or /tmp) and
 * check that it is an image gaze can decode. Returns 0 and sets *tmp_path (malloc'd; the
 * caller unlinks and frees it), or prints "gaze: URL: reason" (an HTTP error, too large,
 * timed out, not an image) and returns EXIT_FATAL (network) or EXIT_USAGE (malformed URL). */
int cli_fetch_image_url(const char *url, long max_bytes, char **tmp_path);

/* ---- progress ---- */

typedef struct {
    int enabled;      /* 0 = --quiet */
    int tty;          /* stderr is a terminal: live bar; else periodic plain lines */
    const char *what; /* "indexing" */
    long total;
    double t0, last_print;
    int shown; /* a bar line is on screen */
} progress;

void progress_start(progress *p, const char *what, long total, int quiet);
/* Report done/total files, images encoded (for img/s), failures; prints at most a few
 * times per second (TTY) or every few seconds (plain lines). ETA comes from the file rate. */
void progress_update(progress *p, long done, long encoded, long failed);
void progress_finish(progress *p, long done, long encoded, long failed);
double cli_now(void); /* monotonic seconds */

/* A download's progress (gaze model pull), fed by gz_hub_params.progress: one bar per file
 * with bytes, rate and ETA on a terminal, redrawn in place; plain lines every few seconds
 * otherwise; one final line per file; nothing with --quiet. */
typedef struct {
    int enabled, tty;
    char file[256];      /* the file being shown */
    int64_t done, total; /* its bytes on disk so far and size (-1 = unknown) */
    int64_t start_done;  /* bytes already on disk when this run started it (resumed) */
    double t0, last_print;
    int shown;    /* a bar line is on screen */
    int finished; /* the file's final line was printed */
} xfer_progress;
void xfer_start(xfer_progress *p, int quiet);
void xfer_update(xfer_progress *p, const char *file, int64_t done, int64_t total);
void xfer_finish(xfer_progress *p); /* ends a bar line left on screen */
/* "12.3 MiB": bytes in binary units. */
void cli_human_bytes(char *buf, size_t n, double bytes);

/* ---- commands ---- */

int cmd_index(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_add_texts(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_dups(int argc, char **argv);
int cmd_match(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);

#endif
