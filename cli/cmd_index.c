/* cmd_index.c - `gaze index`: scan folders and index their photos (incremental). */
#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gaze.h"

static const char INDEX_DETAILS[] =
    "Recursively indexes JPEG, PNG, WebP, HEIC/HEIF/AVIF, GIF, TIFF and BMP files and camera\n"
    "RAW (DNG, CR2, CR3, NEF, ARW, RAF, ORF). Hidden folders and the usual junk (.git,\n"
    "node_modules, @eaDir, lost+found) are skipped unless --all.\n"
    "Incremental: unchanged files (same size and mtime) are skipped, a renamed or duplicate\n"
    "file reuses the stored vector of the same content (xxh3 hash), files that vanished are\n"
    "marked missing and removed with --prune. Each batch is committed in one transaction;\n"
    "Ctrl-C stops after the current batch (a second Ctrl-C kills at once) and a later run\n"
    "continues (exit status 130). Files that fail are recorded, listed and make the exit\n"
    "status 1. A later run does not retry them unless they changed (size, mtime) or\n"
    "--max-megapixels did (or with --retry-failed); they are counted as known failures, not\n"
    "listed again, and do not change the exit status (--strict: they make it 1 too). A\n"
    "touched or restored file whose content is unchanged keeps its vector.\n"
    "Files left out by the scan are counted by reason: unsupported (not an image type gaze\n"
    "reads), hidden (and junk folders), excluded (--exclude), links (not followed without\n"
    "-L), special (FIFOs, sockets, devices).\n"
    "The summary goes to stdout (--json: one JSON object with the fields total, encoded,\n"
    "skipped (unchanged), reused, failed, known_failed, missing, pruned, not_indexed (by\n"
    "reason), seconds, interrupted, model).\n"
    "Exit status: 0 ok, 1 some files failed, 2 usage error, 3 fatal error, 130 interrupted.\n"
    "--index-type picks the FAISS index: Flat (exact, default), HNSW<M>, IVF<nlist>,Flat,\n"
    "IVF<nlist>,PQ<m>[x<bits>] or PQ<m>; it is checked before anything is stored, and a\n"
    "trained type (IVF, PQ) is built as Flat until enough vectors exist to train it.\n"
    "Photos are decoded at full size as PIL does (--exact-decode, the default: the reference\n"
    "pixels); --fast-decode decodes JPEGs much larger than the model input at a DCT-scaled\n"
    "size instead, which saves decode time but barely changes indexing time, as the model's\n"
    "forward pass dominates (bench/RESULTS.md). The database records the choice (with EXIF\n"
    "orientation and --max-megapixels) and 'gaze search --image' decodes its query the same\n"
    "way.\n"
    "--keep-tokens (BLIP models) also stores each photo's final vision token states, the\n"
    "input of BLIP's image-text matching head, so that 'gaze search --rerank K' runs only\n"
    "that head instead of decoding and encoding every candidate again: int8 with one scale\n"
    "per token (the default: 0.45 MB an image at 384 px) or --keep-tokens=bf16 (0.89 MB).\n"
    "Run on an indexed library it encodes again only the photos that lack them. A CLIP\n"
    "model has no matching head: --keep-tokens is then a usage error and nothing is stored.";
static const char INDEX_EXAMPLES[] =
    "  gaze index ~/Pictures --model models/blip-itm-base-coco\n"
    "  gaze index ~/Pictures --exclude '*.thumb.jpg' --exclude Screenshots --prune\n"
    "  gaze index /mnt/photos --db photos.db --batch 16 --quiet --json\n"
    "  gaze index ~/Pictures --keep-tokens    # then: gaze search \"...\" --rerank 32";

/* gaze index's decode when neither --fast-decode nor --exact-decode is given: chosen from
 * the measurement in bench/RESULTS.md ("Fast or exact decode"). */
#define INDEX_FAST_DECODE 0

/* Exit status of a run stopped by Ctrl-C, as shells report a SIGINT death (128 + 2). */
#define EXIT_INTERRUPTED 130

static volatile sig_atomic_t g_stop = 0;

/* What this run created for a new database, so that a failed first run leaves nothing behind
 * (#12.11): the database file and, when its folder was missing, the folders made for it. */
typedef struct {
    char *db;       /* the database path; NULL when it existed before */
    char *made_dir; /* the topmost folder created for it, or NULL */
} fresh_db;

/* Create the missing folders above path (as the default path's folder is created); records
 * the topmost one made. 0, or -1 with errno. */
static int make_parents(const char *path, fresh_db *f) {
    char *copy = strdup(path);
    if (!copy) return -1;
    char *dir = dirname(copy);
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        free(copy);
        return 0;
    }
    /* walk up to the first existing ancestor, then create downwards */
    size_t len = strlen(dir);
    int rc = 0;
    for (size_t i = 1; i <= len && rc == 0; i++) {
        if (dir[i] != '/' && dir[i] != '\0') continue;
        char c = dir[i];
        dir[i] = '\0';
        if (stat(dir, &sb) != 0) {
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                rc = -1;
            else if (!f->made_dir)
                f->made_dir = strdup(dir);
        }
        dir[i] = c;
    }
    free(copy);
    return rc;
}

/* Remove what a failed first run created: the database, its WAL/SHM and FAISS files, and the
 * folders made for it when they are empty. */
static void remove_fresh(fresh_db *f) {
    if (f->db) {
        const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
            char p[4200];
            snprintf(p, sizeof p, "%s%s", f->db, suffixes[i]);
            unlink(p);
        }
        char pat[4200];
        snprintf(pat, sizeof pat, "%s.m*.faiss", f->db);
        glob_t g;
        if (glob(pat, GLOB_NOSORT, NULL, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; i++)
                unlink(g.gl_pathv[i]);
        globfree(&g);
    }
    if (f->made_dir && f->db) {
        /* rmdir from the database's folder up to the topmost one made (only empty ones go) */
        char *copy = strdup(f->db);
        char *dir = copy ? dirname(copy) : NULL;
        size_t top = strlen(f->made_dir);
        while (dir && strlen(dir) >= top && rmdir(dir) == 0) {
            char *slash = strrchr(dir, '/');
            if (!slash || slash == dir) break;
            *slash = '\0';
        }
        free(copy);
    }
}

static void fresh_free(fresh_db *f) {
    free(f->db);
    free(f->made_dir);
}

static const char *const SKIP_NAMES[GZ_SKIP_REASONS] = {"unsupported", "hidden", "excluded",
                                                        "links", "special"};

static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the process at once */
}

typedef struct {
    progress prog;
    int quiet;
    long n_errors;
} index_ctx;

static void on_progress(void *user, const gz_ingest_stats *s) {
    index_ctx *c = user;
    c->prog.total = s->total;
    progress_update(&c->prog, s->done, s->encoded, s->failed);
}

static void on_file_error(void *user, const char *path, const char *message) {
    index_ctx *c = user;
    c->n_errors++;
    if (c->prog.tty && c->prog.enabled) fputs("\r\033[K", stderr);
    if (path && path[0] && strncmp(message, path, strlen(path)) != 0)
        fprintf(stderr, "gaze: %s: %s\n", path, message);
    else
        fprintf(stderr, "gaze: %s\n", message);
}

int cmd_index(int argc, char **argv) {
    const char *db = NULL, *model = NULL, *weights = NULL, *factory = NULL;
    cli_list exclude = {0};
    int follow = 0, prune = 0, quiet = 0, no_exif = 0, all = 0, retry = 0, json = 0, strict = 0;
    int batch = 0, threads = 0, no_thread = 0, fast_decode = 0, exact_decode = 0;
    double max_mp = 0;
    const char *precision = NULL;   /* --precision */
    const char *decode = NULL;      /* --decode */
    const char *keep_tokens = NULL; /* --keep-tokens[=int8|bf16]: "" for the bare flag */
    const cli_opt opts[] = {
        {"db", 0, CLI_STR, &db, "FILE", "database (default $XDG_DATA_HOME/gaze/gaze.db)"},
        {"model", 'm', CLI_STR, &model, "DIR",
         "model directory (default $GAZE_MODEL, else the db's model)"},
        {"exclude", 'x', CLI_LIST, &exclude, "GLOB", "skip files/folders matching (repeatable)"},
        {"follow-symlinks", 'L', CLI_FLAG, &follow, NULL, "follow symbolic links (loop-safe)"},
        {"all", 0, CLI_FLAG, &all, NULL, "also enter hidden and junk folders"},
        {"prune", 0, CLI_FLAG, &prune, NULL, "remove vanished files from the db"},
        {"max-megapixels", 0, CLI_DOUBLE, &max_mp, "N", "refuse larger images (default 100)"},
        {"batch", 'b', CLI_COUNT, &batch, "N", "images per batch / transaction (default 8)"},
        {"threads", 0, CLI_COUNT, &threads, "N", "compute threads (default: all cores)"},
        {"precision", 0, CLI_STR, &precision, "fp32|bf16",
         "Linear layers in fp32 (default) or bf16: bf16 weights, AVX512-BF16 dot products, ~2x "
         "faster, cosine to fp32 >= 0.999; fp32 with a note where the CPU lacks AVX512-BF16"},
        {"no-exif-orient", 0, CLI_FLAG, &no_exif, NULL, "do not rotate photos by EXIF"},
        {"fast-decode", 0, CLI_FLAG, &fast_decode, NULL, "JPEG DCT-scaled decoding (faster)"},
        {"exact-decode", 0, CLI_FLAG, &exact_decode, NULL, "full-size, PIL-exact (default)"},
        {"keep-tokens", 0, CLI_OPTVAL, &keep_tokens, "[=int8|bf16]",
         "BLIP: store vision token states for fast --rerank (default int8)"},
        {"retry-failed", 0, CLI_FLAG, &retry, NULL, "retry files that failed before"},
        {"strict", 0, CLI_FLAG, &strict, NULL, "exit 1 also for files that failed before"},
        {"decode", 0, CLI_STR, &decode, "overlap|parallel|inline",
         "decode each batch on one helper thread while the batch before encodes (default), on "
         "all threads before it encodes, or on the main thread"},
        {"no-decode-thread", 0, CLI_FLAG, &no_thread, NULL, "the same as --decode inline"},
        {"weights", 0, CLI_STR, &weights, "FILE", "weights file inside the model directory"},
        {"index-type", 0, CLI_STR, &factory, "FACTORY", "FAISS index (Flat, HNSW32, IVFn,PQm)"},
        {"quiet", 'q', CLI_FLAG, &quiet, NULL, "no progress output"},
        {"json", 0, CLI_FLAG, &json, NULL, "print the summary as JSON"},
        {0},
    };
    const cli_command cmd = {"index",
                             "PATH... [options]",
                             "Index the photos under PATHs.",
                             INDEX_DETAILS,
                             INDEX_EXAMPLES,
                             opts,
                             1,
                             -1};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) {
        cli_list_free(&exclude);
        return rc;
    }
    if (batch < 0 || max_mp < 0 || threads < 0 || (fast_decode && exact_decode)) {
        cli_list_free(&pos);
        cli_list_free(&exclude);
        cli_errorf(fast_decode && exact_decode
                       ? "--fast-decode and --exact-decode exclude each other"
                       : "--batch, --threads and --max-megapixels must be positive");
        return EXIT_USAGE;
    }
    int decode_mode = no_thread ? GZ_DECODE_INLINE : GZ_DECODE_OVERLAP;
    if (decode && !no_thread) {
        if (strcmp(decode, "parallel") == 0)
            decode_mode = GZ_DECODE_PARALLEL;
        else if (strcmp(decode, "overlap") == 0)
            decode_mode = GZ_DECODE_OVERLAP;
        else if (strcmp(decode, "inline") == 0)
            decode_mode = GZ_DECODE_INLINE;
        else
            decode_mode = -1;
    }
    if (decode_mode < 0 || (decode && no_thread && strcmp(decode, "inline") != 0)) {
        cli_list_free(&pos);
        cli_list_free(&exclude);
        cli_errorf(decode_mode < 0 ? "--decode: unknown mode '%s' (parallel, overlap or inline)"
                                   : "--decode %s and --no-decode-thread exclude each other",
                   decode);
        return EXIT_USAGE;
    }
    gz_tokens_format keep = GZ_TOKENS_NONE;
    if (keep_tokens) {
        /* int8 by default: its ITM error against fp32 states is as small as bf16's for half
         * the bytes (bench/RESULTS.md, "Stored token states") */
        if (!*keep_tokens || strcmp(keep_tokens, "int8") == 0)
            keep = GZ_TOKENS_INT8;
        else if (strcmp(keep_tokens, "bf16") == 0)
            keep = GZ_TOKENS_BF16;
        else {
            cli_list_free(&pos);
            cli_list_free(&exclude);
            cli_errorf("--keep-tokens: unknown format '%s' (int8 or bf16)", keep_tokens);
            return EXIT_USAGE;
        }
    }
    if (factory && gz_db_check_factory(factory, 0) != GZ_OK) { /* before anything is stored */
        cli_list_free(&pos);
        cli_list_free(&exclude);
        cli_errorf("--index-type: %s", gz_last_error());
        return EXIT_USAGE;
    }
    gz_model_params mp = cli_model_params(weights, threads, no_exif);
    mp.fast_decode = INDEX_FAST_DECODE ? !exact_decode : fast_decode;
    if (batch > 0) mp.batch_size = batch;
    fresh_db fresh = {0};
    char *def_db = NULL;
    const char *db_path = cli_db_path(db, 0, &def_db);
    struct stat dsb;
    if (db_path && stat(db_path, &dsb) != 0) {
        fresh.db = strdup(db_path);
        if (make_parents(db_path, &fresh) != 0) /* --db in a missing folder: create it */
            cli_warnf("%s: cannot create its folder: %s", db_path, strerror(errno));
    }
    free(def_db);
    gz_engine *e = NULL;
    rc = cli_set_precision(&mp, precision, quiet);
    if (!rc) rc = cli_open_engine(db, model, &mp, factory, quiet, 0, &e);
    if (rc) {
        remove_fresh(&fresh);
        fresh_free(&fresh);
        cli_list_free(&pos);
        cli_list_free(&exclude);
        return rc;
    }
    index_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.quiet = quiet;
    progress_start(&ctx.prog, "indexing", 0, quiet);
    gz_ingest_opts io = gz_ingest_default_opts();
    io.walk.exclude = exclude.v;
    io.walk.n_exclude = exclude.n;
    io.walk.follow_symlinks = follow;
    io.walk.include_hidden = all;
    io.prune = prune;
    io.batch_size = batch;
    io.exif_orient = no_exif ? 0 : -1;
    io.max_pixels = max_mp > 0 ? (int64_t)(max_mp * 1e6) : 0;
    io.decode = decode_mode;
    io.retry_failed = retry;
    io.keep_tokens = keep;
    io.stop = &g_stop;
    io.progress = on_progress;
    io.file_error = on_file_error;
    io.user = &ctx;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART; /* file reads in flight must not fail with EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    gz_ingest_stats s;
    gz_status st = gz_engine_index(e, pos.v, pos.n, &io, &s);
    sigaction(SIGINT, &old, NULL);
    progress_finish(&ctx.prog, s.done, s.encoded, s.failed);
    int code = EXIT_OK;
    if (st == GZ_EINTERRUPTED) {
        cli_report_engine(e, st);
        code = EXIT_INTERRUPTED;
    } else if (st == GZ_EUNSUPPORTED && keep && s.done == 0) {
        cli_report(st); /* --keep-tokens with a model that has no ITM head */
        code = EXIT_USAGE;
    } else if (st != GZ_OK) {
        code = cli_report_engine(e, st);
    } else if (s.failed > 0 || (strict && s.failed_known > 0)) {
        code = EXIT_PARTIAL;
    }
    const char *mdir = gz_engine_model_dir(e);
    if (st == GZ_OK || st == GZ_EINTERRUPTED) {
        if (json) {
            printf("{\"total\":%ld,\"encoded\":%ld,\"skipped\":%ld,\"reused\":%ld,\"failed\":%ld,"
                   "\"known_failed\":%ld,\"missing\":%ld,\"pruned\":%ld,\"not_indexed\":{",
                   s.total, s.encoded, s.skipped, s.reused, s.failed, s.failed_known, s.missing,
                   s.pruned);
            for (int r = 0; r < GZ_SKIP_REASONS; r++)
                printf("%s\"%s\":%ld", r ? "," : "", SKIP_NAMES[r], s.skipped_by[r]);
            printf("},\"seconds\":%.3f,\"interrupted\":%s,\"model\":", s.seconds,
                   st == GZ_EINTERRUPTED ? "true" : "false");
            out_json_str(stdout, mdir ? mdir : "");
            fputs("}\n", stdout);
        } else {
            printf("%ld file%s: %ld encoded, %ld skipped (unchanged), %ld reused, %ld failed, "
                   "%ld missing, %ld pruned (%.1f s, %.1f img/s)\n",
                   s.total, s.total == 1 ? "" : "s", s.encoded, s.skipped, s.reused, s.failed,
                   s.missing, s.pruned, s.seconds,
                   s.seconds > 0 ? (double)s.encoded / s.seconds : 0.0);
            if (s.failed)
                printf("%ld file%s failed (listed above; see 'gaze info')\n", s.failed,
                       s.failed == 1 ? "" : "s");
            if (s.failed_known)
                printf("%ld file%s failed in an earlier run and did not change (not retried; "
                       "'gaze info' lists them, --retry-failed retries them)\n",
                       s.failed_known, s.failed_known == 1 ? "" : "s");
            long not_indexed = 0;
            for (int r = 0; r < GZ_SKIP_REASONS; r++)
                not_indexed += s.skipped_by[r];
            if (not_indexed) {
                printf("not indexed:");
                for (int r = 0, first = 1; r < GZ_SKIP_REASONS; r++)
                    if (s.skipped_by[r]) {
                        printf("%s %ld %s", first ? "" : ",", s.skipped_by[r], SKIP_NAMES[r]);
                        first = 0;
                    }
                printf("\n");
            }
        }
    }
    gz_status cst = gz_engine_close(e);
    if (cst != GZ_OK && code == EXIT_OK) code = cli_report(cst);
    /* a first run that stored nothing (a missing folder, a model that does not load) leaves
       no empty database behind */
    if (code != EXIT_OK && code != EXIT_PARTIAL && code != EXIT_INTERRUPTED && s.done == 0)
        remove_fresh(&fresh);
    fresh_free(&fresh);
    cli_list_free(&pos);
    cli_list_free(&exclude);
    return code;
}
