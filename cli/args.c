/* args.c - the one table-driven option parser behind every gaze command, help text, and
 * the small helpers commands share (error reporting, default paths). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "gaze.h"

void cli_list_push(cli_list *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        const char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            fputs("gaze: out of memory\n", stderr);
            exit(EXIT_FATAL);
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
}

void cli_list_free(cli_list *l) {
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

const char CLI_EXIT_STATUS_HELP[] =
    "exit status: 0 ok, 1 partial (some files or rows failed), 2 usage error (bad flag or\n"
    "value, missing input file, database or model), 3 runtime error, 130 interrupted";

const char *cli_plural(long n) { return n == 1 ? "" : "s"; }

int cli_edit_distance(const char *a, const char *b, int cap) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 64 || nb > 64) return cap + 1; /* not a typo of a flag or command name */
    int row[65];
    for (size_t j = 0; j <= nb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0], best = row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int v = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < v) v = up + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
            if (v < best) best = v;
        }
        if (best > cap) return cap + 1;
    }
    return row[nb] > cap ? cap + 1 : row[nb];
}

const char *cli_did_you_mean(const char *word, const char *const *candidates, int n) {
    int len = (int)strlen(word);
    int cap = len >= 5 ? 2 : len >= 3 ? 1 : 0; /* short words: almost anything is 1 edit away */
    const char *best = NULL;
    int best_d = cap + 1;
    for (int i = 0; i < n; i++) {
        int d = cli_edit_distance(word, candidates[i], cap);
        if (d < best_d) best_d = d, best = candidates[i];
    }
    /* a prefix of a longer name ("--thread" for "--threads") is a typo too */
    for (int i = 0; !best && len >= 3 && i < n; i++)
        if (strncmp(word, candidates[i], (size_t)len) == 0) best = candidates[i];
    return best;
}

static void report(const char *prefix, const char *fmt, va_list ap) {
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    char *safe = out_term_escape(buf);
    fprintf(stderr, "%s%s\n", prefix, safe);
    free(safe);
}

void cli_errorf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report("gaze: ", fmt, ap);
    va_end(ap);
}

void cli_warnf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report("gaze: warning: ", fmt, ap);
    va_end(ap);
}

int cli_report(gz_status st) { return cli_report_hint(st, NULL, NULL); }

int cli_report_hint(gz_status st, const char *prefix, const char *suffix) {
    return cli_report_text(st, prefix, gz_last_error(), suffix);
}

int cli_report_text(gz_status st, const char *prefix, const char *msg, const char *suffix) {
    if (st == GZ_OK) return EXIT_OK;
    /* a hint the message already carries is not repeated */
    if (prefix && strncmp(msg, prefix, strcspn(prefix, ":")) == 0) prefix = NULL;
    if (suffix && strstr(msg, suffix + strspn(suffix, " ;:(")) != NULL) suffix = NULL;
    char *safe = out_term_escape(msg);
    fprintf(stderr, "gaze: %s%s%s\n", prefix ? prefix : "", safe, suffix ? suffix : "");
    free(safe);
    if (st == GZ_EINTERRUPTED) return EXIT_INTERRUPTED;
    return EXIT_FATAL;
}

int cli_report_model(gz_status st, const char *model) {
    /* The library says the id is not cached; the command says how to get it. */
    if (st == GZ_ENOTFOUND && model && gz_hub_looks_like_id(model) &&
        strstr(gz_last_error(), "not in the Hugging Face cache")) {
        char hint[GZ_HUB_ID_MAX + GZ_HUB_REV_MAX + 32];
        snprintf(hint, sizeof hint, "; run: gaze model pull %s", model);
        cli_report_hint(st, NULL, hint);
        return EXIT_USAGE; /* a --model that names nothing is a usage error */
    }
    struct stat sb;
    if (st == GZ_ENOTFOUND && model && stat(model, &sb) != 0) {
        cli_report(st);
        return EXIT_USAGE;
    }
    return cli_report(st);
}

int cli_report_engine(gz_engine *e, gz_status st) {
    /* Every engine call resolves the model first; GZ_ENOTFOUND with none resolved means none
     * was given and the database has none registered. */
    if (st == GZ_ENOTFOUND && e && !gz_engine_model_dir(e))
        return cli_report_hint(st, NULL, "; give --model DIR (or set $GAZE_MODEL)");
    /* A model given on the command line was checked by cli_open_engine; one missing now is
     * the database's own (removed from the cache): a runtime error, not a usage error. */
    int rc = cli_report_model(st, e ? gz_engine_model_dir(e) : NULL);
    return rc == EXIT_USAGE ? EXIT_FATAL : rc;
}

static void usage_line(const cli_command *cmd, FILE *out) {
    fprintf(out, "usage: gaze %s %s\n", cmd->name, cmd->usage ? cmd->usage : "[options]");
}

void cli_print_help(const cli_command *cmd, FILE *out) {
    usage_line(cmd, out);
    if (cmd->summary) fprintf(out, "\n%s\n", cmd->summary);
    fputs("\noptions:\n", out);
    for (const cli_opt *o = cmd->opts; o && o->name; o++) {
        char left[96];
        int k = 0;
        if (o->short_name)
            k = snprintf(left, sizeof left, "-%c, --%s", o->short_name, o->name);
        else
            k = snprintf(left, sizeof left, "    --%s", o->name);
        if (o->metavar && k > 0 && (size_t)k < sizeof left) /* --name[=VALUE]: no space */
            snprintf(left + k, sizeof left - (size_t)k, o->type == CLI_OPTVAL ? "%s" : " %s",
                     o->metavar);
        fprintf(out, "  %-28s %s\n", left, o->help ? o->help : "");
    }
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help");
    if (cmd->details) fprintf(out, "\n%s\n", cmd->details);
    if (cmd->examples) fprintf(out, "\nexamples:\n%s\n", cmd->examples);
    fprintf(out, "\n%s\n", CLI_EXIT_STATUS_HELP);
}

static int usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const cli_command *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *safe = out_term_escape(buf);
    fprintf(stderr, "gaze %s: %s\n", cmd->name, safe);
    free(safe);
    usage_line(cmd, stderr);
    fprintf(stderr, "try 'gaze %s --help'\n", cmd->name);
    return EXIT_USAGE;
}

static int set_value(const cli_command *cmd, const cli_opt *o, const char *val) {
    switch (o->type) {
    case CLI_FLAG: *(int *)o->dest = 1; return 0;
    case CLI_STR: *(const char **)o->dest = val; return 0;
    case CLI_OPTVAL: *(const char **)o->dest = val ? val : ""; return 0;
    case CLI_LIST: cli_list_push((cli_list *)o->dest, val); return 0;
    case CLI_INT: {
        char *end = NULL;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < INT_MIN || v > INT_MAX)
            return usage_error(cmd, "--%s expects an integer, got '%s'", o->name, val);
        *(int *)o->dest = (int)v;
        return 0;
    }
    case CLI_COUNT: {
        char *end = NULL;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < 1 || v > INT_MAX)
            return usage_error(cmd, "--%s expects a whole number of at least 1, got '%s'", o->name,
                               val);
        *(int *)o->dest = (int)v;
        return 0;
    }
    case CLI_DOUBLE: {
        char *end = NULL;
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *end || !isfinite(v))
            return usage_error(cmd, "--%s expects a number, got '%s'", o->name, val);
        *(double *)o->dest = v;
        return 0;
    }
    }
    return 0;
}

/* "unknown option '--treads'; did you mean '--threads'?" */
static int unknown_option(const cli_command *cmd, const char *arg) {
    const char *names[64];
    int n = 0;
    for (const cli_opt *p = cmd->opts; p && p->name && n < 63; p++)
        names[n++] = p->name;
    names[n++] = "help";
    const char *word = arg[0] == '-' && arg[1] == '-' ? arg + 2 : NULL;
    char name[128];
    if (word) { /* the name without "=VALUE" */
        snprintf(name, sizeof name, "%.*s", (int)strcspn(word, "="), word);
        word = name;
    }
    const char *hit = word ? cli_did_you_mean(word, names, n) : NULL;
    if (hit) return usage_error(cmd, "unknown option '%s'; did you mean '--%s'?", arg, hit);
    return usage_error(cmd, "unknown option '%s'", arg);
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_list *pos) {
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            cli_list_push(pos, a);
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_print_help(cmd, stdout);
            return CLI_HELP_SHOWN;
        }
        const cli_opt *o = NULL;
        const char *inline_val = NULL;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (const cli_opt *p = cmd->opts; p && p->name; p++)
                if (strlen(p->name) == len && strncmp(p->name, name, len) == 0) o = p;
            if (eq) inline_val = eq + 1;
        } else {
            /* A negative number is a positional (e.g. a weight), not an option, unless it
             * is exactly a digit option of this command ("-0"). */
            int digit_opt = 0;
            for (const cli_opt *p = cmd->opts; p && p->name; p++)
                if (p->short_name && p->short_name == a[1] && a[2] == '\0') digit_opt = 1;
            char *end = NULL;
            strtod(a, &end);
            if (!digit_opt && end && *end == '\0') {
                cli_list_push(pos, a);
                continue;
            }
            for (const cli_opt *p = cmd->opts; p && p->name; p++)
                if (p->short_name && p->short_name == a[1]) o = p;
            if (o && a[2]) inline_val = a + 2;
        }
        if (!o) return unknown_option(cmd, a);
        if (o->type == CLI_FLAG) {
            if (inline_val) return usage_error(cmd, "--%s takes no value", o->name);
            set_value(cmd, o, NULL);
            continue;
        }
        if (o->type == CLI_OPTVAL) {
            set_value(cmd, o, inline_val);
            continue;
        }
        const char *val = inline_val;
        if (!val) {
            if (i + 1 >= argc)
                return usage_error(cmd, "--%s needs a value (%s)", o->name,
                                   o->metavar ? o->metavar : "VALUE");
            val = argv[++i];
        }
        int rc = set_value(cmd, o, val);
        if (rc) return rc;
    }
    if (pos->n < cmd->min_pos)
        return usage_error(cmd, "expected at least %d argument%s", cmd->min_pos,
                           cmd->min_pos == 1 ? "" : "s");
    if (cmd->max_pos >= 0 && pos->n > cmd->max_pos) {
        if (cmd->max_pos == 0) return usage_error(cmd, "unexpected argument '%s'", pos->v[0]);
        return usage_error(cmd, "too many arguments (at most %d)", cmd->max_pos);
    }
    return 0;
}

int cli_parse_command(const cli_command *cmd, int argc, char **argv, cli_list *pos,
                      int *exit_code) {
    int rc = cli_parse(cmd, argc, argv, pos);
    if (!rc) return 1;
    cli_list_free(pos);
    *exit_code = rc == CLI_HELP_SHOWN ? EXIT_OK : rc;
    return 0;
}

static int mkdir_p(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST) return -1;
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

char *cli_default_db_path(int create_dir) {
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    char dir[4096];
    if (xdg && xdg[0] == '/')
        snprintf(dir, sizeof dir, "%s/gaze", xdg);
    else if (home && home[0])
        snprintf(dir, sizeof dir, "%s/.local/share/gaze", home);
    else {
        cli_errorf("no database given (--db) and neither $XDG_DATA_HOME nor $HOME is set");
        return NULL;
    }
    if (create_dir && mkdir_p(dir) != 0) {
        cli_errorf("%s: cannot create directory: %s", dir, strerror(errno));
        return NULL;
    }
    size_t n = strlen(dir) + sizeof "/gaze.db";
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/gaze.db", dir);
    return out;
}

const char *cli_db_path(const char *db_flag, int create_dir, char **owned) {
    *owned = NULL;
    if (db_flag) return db_flag;
    *owned = cli_default_db_path(create_dir);
    return *owned;
}

const char *cli_model_dir(const char *flag_value) {
    if (flag_value && flag_value[0]) return flag_value;
    const char *env = getenv("GAZE_MODEL");
    if (env && env[0]) return env;
    return NULL;
}

gz_model_params cli_model_params(const char *weights, int threads, int no_exif) {
    gz_model_params mp = gz_model_default_params();
    if (weights) mp.weights_file = weights;
    if (threads > 0) mp.n_threads = threads;
    if (no_exif) mp.exif_orient = 0;
    return mp;
}

int cli_set_precision(gz_model_params *mp, const char *word, int quiet) {
    if (!word || !strcmp(word, "fp32")) {
        mp->precision = GZ_PRECISION_FP32;
        return EXIT_OK;
    }
    if (strcmp(word, "bf16") != 0) {
        cli_errorf("--precision: '%s' is not fp32 or bf16", word);
        return EXIT_USAGE;
    }
    mp->precision = GZ_PRECISION_BF16;
    if (!gz_bf16_available() && !quiet)
        fprintf(stderr, "gaze: note: --precision bf16: this CPU has no AVX512-BF16 (or "
                        "GAZE_NO_BF16 is set); computing in fp32\n");
    return EXIT_OK;
}

int cli_load_model(const char *dir, const gz_model_params *mp, gz_model **m) {
    *m = NULL;
    if (!dir) {
        cli_errorf("no model: give --model DIR or set $GAZE_MODEL");
        return EXIT_USAGE;
    }
    gz_status st = gz_model_load(dir, mp, m);
    return st == GZ_OK ? EXIT_OK : cli_report_model(st, dir);
}

int cli_check_input_file(const char *flag, const char *path) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) return EXIT_OK;
    int missing = stat(path, &sb) != 0;
    cli_errorf("%s %s: %s", flag, path, missing ? "no such file" : "not a regular file");
    return EXIT_USAGE;
}

/* 1 when path starts with SQLite's file header, is empty (SQLite makes a new database of an
 * empty file) or cannot be read here (then the engine says why). */
static int sqlite_file_or_empty(const char *path) {
    static const char magic[16] = "SQLite format 3"; /* with its NUL: 16 bytes */
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    char head[16];
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    return n == 0 || (n == sizeof head && memcmp(head, magic, sizeof head) == 0);
}

static void print_notice(void *user, const char *message) {
    (void)user;
    char *safe = out_term_escape(message);
    fprintf(stderr, "gaze: note: %s\n", safe);
    free(safe);
}

/* EXIT_OK when model (not an existing path) is a Hub id whose snapshot folder is in the
 * cache; else the error printed and EXIT_USAGE (or EXIT_FATAL when locating failed for
 * another reason than absence). */
static int check_model_exists(const char *model) {
    gz_hub_location *loc = malloc(sizeof *loc); /* kilobytes of paths: not on the stack */
    if (!loc) {
        cli_errorf("out of memory");
        return EXIT_FATAL;
    }
    gz_status st = gz_hub_locate(model, loc);
    struct stat sb;
    int rc = EXIT_OK;
    if (st != GZ_OK) {
        rc = cli_report_model(st, model);
    } else if (stat(loc->dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        cli_errorf("%s: no such model folder (nor a pulled Hub id)", model);
        rc = EXIT_USAGE;
    }
    free(loc);
    return rc;
}

int cli_open_engine(const char *db_flag, const char *model_flag, const gz_model_params *mp,
                    const char *factory, int quiet, int must_exist, gz_engine **e) {
    *e = NULL;
    char *def;
    const char *db = cli_db_path(db_flag, 1, &def);
    if (!db) return EXIT_FATAL;
    struct stat sb;
    if (must_exist && stat(db, &sb) != 0) {
        cli_errorf("%s: no database here yet: run 'gaze index FOLDER' first, or give --db FILE",
                   db);
        free(def);
        return EXIT_USAGE;
    }
    if (stat(db, &sb) == 0 && S_ISREG(sb.st_mode) && !sqlite_file_or_empty(db)) {
        /* said here, in the user's words, before SQLite answers with its own statement */
        cli_errorf("%s: not a gaze database (not an SQLite file)", db);
        free(def);
        return EXIT_USAGE;
    }
    gz_engine_params ep = gz_engine_default_params();
    ep.db_path = db;
    ep.model_dir = cli_model_dir(model_flag);
    if (ep.model_dir && stat(ep.model_dir, &sb) != 0) {
        /* the engine loads its model lazily: a --model that names nothing is said now */
        int rc = check_model_exists(ep.model_dir);
        if (rc) {
            free(def);
            return rc;
        }
    }
    ep.model = *mp;
    if (!quiet) ep.db.notice = print_notice;
    ep.db.factory = factory;
    ep.db.readonly = must_exist == CLI_OPEN_READONLY;
    gz_status st = gz_engine_open(&ep, e);
    free(def);
    return st == GZ_OK ? EXIT_OK : cli_report_model(st, ep.model_dir);
}
