/* cmd_search.c - `gaze search`: text/image/composed queries over images, texts or products;
 * output as an aligned table, JSON lines, bare paths or a self-contained HTML gallery. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gaze.h"

static const char SEARCH_DETAILS[] =
    "Text -> image by default. --image FILE searches by an image (an http(s) URL is fetched:\n"
    "at most --url-max-mb MiB, 30 s, and it must decode as an image); --texts ranks indexed\n"
    "texts instead of images; --products ranks products (texts linked to an image by\n"
    "add-texts --image-field) by\n"
    "  score = w * z(cos(q, text)) + (1 - w) * z(cos(q, image)),  w = --text-weight (0.5),\n"
    "where z() standardises a cosine over its modality's candidates (z = (c - mean) / std,\n"
    "over all products' texts, resp. all linked images): text-text cosines run higher than\n"
    "text-image ones, so raw cosines would rank products without an image first. A product\n"
    "without an image vector gets z = 0 (the average) for its image. --products --rerank is\n"
    "refused.\n"
    "Composed queries: the query vector is normalise(sum of weight * embedding) over QUERY,\n"
    "--image, each --add (+1) and each --sub (-1). An --add/--sub value is [W:][text:|image:]Q:\n"
    "'W:' sets its weight (--add 0.5:snow), 'text:' and 'image:' say what Q is; without them\n"
    "Q is an image when it names an existing file (or is an http(s) URL), an error when it\n"
    "looks like a path (has a '/' or an image extension) that does not exist, else a text.\n"
    "--rerank K re-scores the top K by ITC with BLIP's ITM head and ranks by\n"
    "score = itm_logit + itc (LAVIS); itc, itm_logit and itm_prob are shown. Photos indexed\n"
    "with --keep-tokens are re-ranked from their stored token states (only the ITM head\n"
    "runs); the others are decoded and encoded again, announced on stderr with the time\n"
    "it should take.\n"
    "--min-score filters on the cosine (products: on the combined score).\n"
    "Files deleted since they were indexed are marked '(deleted)' in the table, \"exists\":false\n"
    "in JSON, and left out of --paths (with a note on stderr).\n"
    "--preview draws thumbnails inline on terminals with an image protocol (kitty, iTerm2,\n"
    "sixel), detected from TERM, TERM_PROGRAM, KITTY_WINDOW_ID, LC_TERMINAL; elsewhere the\n"
    "output is the plain table. --preview-protocol kitty|iterm|sixel|none forces one.\n"
    "JSON lines fields: rank, item_id, kind (image|text), score, itc, path, exists, width,\n"
    "height, taken_at; texts: text, id, image (linked image path); --rerank: itm_logit,\n"
    "itm_prob; --products: text_score, image_score (cosines).\n"
    "Filters (image searches): --taken-after/--taken-before DATE compare the EXIF capture time\n"
    "(the file's mtime, as local time, when it has none) with DATE, YYYY-MM-DD (midnight) or\n"
    "YYYY-MM-DDTHH:MM:SS: after is inclusive, before exclusive. --in FOLDER keeps images at or\n"
    "under FOLDER (made absolute like index roots); --format takes jpeg, png, webp, gif,\n"
    "tiff, bmp, heic, avif, raw or a RAW extension (dng, cr2, ...); --min-width/--min-height\n"
    "bound the size. The -k results are the best k among the images that pass.";
static const char SEARCH_EXAMPLES[] =
    "  gaze search \"kids on a red sled\"\n"
    "  gaze search --image beach.jpg -k 20 --html beach.html\n"
    "  gaze search \"a dog\" --add snow --sub 0.5:grass --json\n"
    "  gaze search \"a man riding a horse\" --rerank 64 -k 10\n"
    "  gaze search --texts --image photo.jpg            # image -> captions\n"
    "  gaze search --products \"red leather jacket\" --text-weight 0.3\n"
    "  gaze search \"sunset\" --paths -0 | xargs -0 feh\n"
    "  gaze search \"beach\" --taken-after 2024-06-01 --taken-before 2024-09-01 --format jpeg\n"
    "  gaze search --image https://example.com/chair.jpg --preview";

/* -k and --rerank: beyond this a query is a mistake, not a wish (the candidates are held
 * in memory, and re-ranking runs the ITM head on each). */
#define SEARCH_MAX_K 100000
/* --preview thumbnails: longest side in pixels (unless --thumb-size) */
#define DEFAULT_PREVIEW_SIZE 160

typedef struct {
    const char *db, *model, *image, *html, *weights, *preview_protocol;
    const char *taken_after, *taken_before, *in_folder, *formats; /* filters */
    cli_list add, sub;
    int k, rerank, texts, products, json, paths, null_sep, quiet, threads, thumb, preview;
    int min_width, min_height;
    int url_max_mb;
    double min_score, text_weight;
    cli_list temp_files; /* downloaded query images (malloc'd paths), removed at the end */
} search_opts;

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int exists(const char *p) {
    struct stat sb;
    return p && stat(p, &sb) == 0;
}

/* 1 when s has a '/' or ends in an image file extension: meant as a file, not as words. */
static int looks_like_path(const char *s) {
    static const char *const exts[] = {"jpg",  "jpeg", "png", "webp", "gif", "heic",
                                       "heif", "avif", "tif", "tiff", "bmp", "dng",
                                       "cr2",  "cr3",  "nef", "arw",  "raf", "orf"};
    if (strchr(s, '/')) return 1;
    const char *dot = strrchr(s, '.');
    if (!dot || strchr(dot, ' ')) return 0;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcasecmp(dot + 1, exts[i]) == 0) return 1;
    return 0;
}

/* An image operand (of --image or image:): a URL is downloaded to a temp file that stands in
 * for it; a file must exist. Sets *path. Returns 0 or the exit code (message printed). */
static int resolve_image(search_opts *o, const char *flag, const char *arg, const char **path) {
    if (cli_is_url(arg)) {
        char *tmp = NULL;
        int rc = cli_fetch_image_url(arg, (long)o->url_max_mb * 1024 * 1024, &tmp);
        if (rc) return rc;
        cli_list_push(&o->temp_files, tmp);
        *path = tmp;
        return 0;
    }
    if (!is_file(arg)) {
        cli_errorf("%s %s: %s", flag, arg, exists(arg) ? "not a regular file" : "no such file");
        return EXIT_USAGE;
    }
    *path = arg;
    return 0;
}

/* An --add/--sub value "[W:][text:|image:]Q" into a term (see SEARCH_DETAILS). Returns 0 or
 * the exit code (message printed). */
static int parse_term(search_opts *o, const char *flag, const char *s, float sign,
                      gz_query_term *t) {
    memset(t, 0, sizeof *t);
    t->weight = sign;
    const char *colon = strchr(s, ':');
    if (colon && colon > s && !is_file(s)) {
        char *end = NULL;
        double w = strtod(s, &end);
        if (end == colon && isfinite(w)) {
            t->weight = (float)(sign * w);
            s = colon + 1;
        }
    }
    if (strncmp(s, "text:", 5) == 0 && !is_file(s)) {
        t->text = s + 5;
    } else if (strncmp(s, "image:", 6) == 0 && !is_file(s)) {
        int rc = resolve_image(o, flag, s + 6, &t->image);
        if (rc) return rc;
    } else if (cli_is_url(s) || is_file(s)) {
        int rc = resolve_image(o, flag, s, &t->image);
        if (rc) return rc;
    } else if (looks_like_path(s)) {
        cli_errorf("%s %s: no such file (to search for these words, write text:%s)", flag, s, s);
        return EXIT_USAGE;
    } else {
        t->text = s;
    }
    if (t->text && !t->text[strspn(t->text, " \t\r\n")]) {
        cli_errorf("%s: empty text term", flag);
        return EXIT_USAGE;
    }
    return 0;
}

static const char *kind_name(gz_item_kind k) { return k == GZ_ITEM_TEXT ? "text" : "image"; }

static void print_json(const gz_results *r, const search_opts *o) {
    for (int i = 0; i < r->n; i++) {
        const gz_result *h = &r->v[i];
        printf("{\"rank\":%d,\"item_id\":%lld,\"kind\":\"%s\",\"score\":", i + 1,
               (long long)h->item_id, kind_name(h->kind));
        out_json_float(stdout, h->score);
        fputs(",\"itc\":", stdout);
        out_json_float(stdout, h->itc);
        if (h->has_itm) {
            fputs(",\"itm_logit\":", stdout);
            out_json_float(stdout, h->itm_logit);
            fputs(",\"itm_prob\":", stdout);
            out_json_float(stdout, h->itm_prob);
        }
        if (o->products) {
            fputs(",\"text_score\":", stdout);
            out_json_float(stdout, h->itc);
            fputs(",\"image_score\":", stdout);
            out_json_float(stdout, h->image_score);
        }
        fputs(",\"path\":", stdout);
        out_json_str(stdout, h->path);
        const char *file = h->kind == GZ_ITEM_TEXT ? h->link_path : h->path;
        if (file) printf(",\"exists\":%s", exists(file) ? "true" : "false");
        if (h->kind == GZ_ITEM_TEXT) {
            fputs(",\"text\":", stdout);
            out_json_str(stdout, h->text);
            fputs(",\"id\":", stdout);
            out_json_str(stdout, h->ext_id);
            fputs(",\"image\":", stdout);
            if (h->link_path)
                out_json_str(stdout, h->link_path);
            else
                fputs("null", stdout);
        } else {
            printf(",\"width\":%d,\"height\":%d,\"taken_at\":", h->width, h->height);
            if (h->taken_at[0])
                out_json_str(stdout, h->taken_at);
            else
                fputs("null", stdout);
        }
        fputs("}\n", stdout);
    }
}

/* One path per line, or NUL-terminated with -0 (names with newlines survive xargs -0). Files
 * deleted since indexing are left out: a pipe into a viewer would only fail on them. */
static void print_paths(const gz_results *r, const search_opts *o) {
    int gone = 0;
    for (int i = 0; i < r->n; i++) {
        const gz_result *h = &r->v[i];
        const char *p = h->kind == GZ_ITEM_TEXT ? h->link_path : h->path;
        if (!p) continue;
        if (!exists(p)) {
            gone++;
            continue;
        }
        fputs(p, stdout);
        fputc(o->null_sep ? '\0' : '\n', stdout);
    }
    if (gone && !o->quiet)
        fprintf(stderr, "gaze: note: %d result%s left out: deleted since indexed\n", gone,
                cli_plural(gone));
}

static void print_table(const gz_results *r, const search_opts *o) {
    int rer = o->rerank > 0, prod = o->products, texts = o->texts || o->products;
    const char *hdr[9];
    int right[9] = {0};
    int nc = 0;
    hdr[nc] = "#", right[nc++] = 1;
    hdr[nc] = "score", right[nc++] = 1;
    if (rer) {
        hdr[nc] = "itc", right[nc++] = 1;
        hdr[nc] = "itm_logit", right[nc++] = 1;
        hdr[nc] = "itm_prob", right[nc++] = 1;
    }
    if (prod) {
        hdr[nc] = "text", right[nc++] = 1;
        hdr[nc] = "image", right[nc++] = 1;
    }
    if (texts) {
        hdr[nc] = "id", right[nc++] = 0;
        hdr[nc] = prod ? "product" : "text", right[nc++] = 0;
    } else {
        hdr[nc] = "path", right[nc++] = 0;
    }
    out_table t;
    out_table_init(&t, nc, hdr, right);
    for (int i = 0; i < r->n; i++) {
        const gz_result *h = &r->v[i];
        char b[8][48];
        const char *row[9];
        int c = 0;
        snprintf(b[0], sizeof b[0], "%d", i + 1);
        row[c++] = b[0];
        snprintf(b[1], sizeof b[1], "%.4f", h->score);
        row[c++] = b[1];
        if (rer) {
            snprintf(b[2], sizeof b[2], "%.4f", h->itc);
            snprintf(b[3], sizeof b[3], h->has_itm ? "%.4f" : "-", h->itm_logit);
            snprintf(b[4], sizeof b[4], h->has_itm ? "%.4f" : "-", h->itm_prob);
            row[c++] = b[2], row[c++] = b[3], row[c++] = b[4];
        }
        if (prod) {
            snprintf(b[5], sizeof b[5], "%.4f", h->itc);
            if (isnan(h->image_score))
                snprintf(b[6], sizeof b[6], "-");
            else
                snprintf(b[6], sizeof b[6], "%.4f", h->image_score);
            row[c++] = b[5], row[c++] = b[6];
        }
        /* one line per row: newlines/tabs in texts become spaces */
        char *txt = NULL;
        if (texts) {
            row[c++] = h->ext_id ? h->ext_id : "";
            txt = strdup(h->text ? h->text : "");
            for (char *p = txt; p && *p; p++)
                if (*p == '\n' || *p == '\t' || *p == '\r') *p = ' ';
            row[c++] = txt ? txt : "";
        } else {
            row[c++] = h->path ? h->path : "";
        }
        /* a file deleted since it was indexed is marked, not shown as if it were there */
        const char *file = h->kind == GZ_ITEM_TEXT ? h->link_path : h->path;
        char *marked = NULL;
        if (file && !exists(file) && asprintf(&marked, "%s (deleted)", row[c - 1]) >= 0)
            row[c - 1] = marked;
        out_table_row(&t, row);
        free(marked);
        free(txt);
    }
    out_table_print(&t, stdout);
    out_table_free(&t);
}

/* --preview: each result's thumbnail drawn inline, then its line (rank, score, path or text;
 * escaped like the table). Returns the number of thumbnails that could not be drawn. */
static int print_previews(const gz_results *r, const search_opts *o, preview_protocol p) {
    int size = o->thumb > 0 ? o->thumb : DEFAULT_PREVIEW_SIZE, failed = 0;
    for (int i = 0; i < r->n; i++) {
        const gz_result *h = &r->v[i];
        const char *img = h->kind == GZ_ITEM_TEXT ? h->link_path : h->path;
        if (img && preview_draw(stdout, p, img, size) != 0) failed++;
        const char *what = h->kind == GZ_ITEM_TEXT ? h->text : h->path;
        char *safe = out_term_escape(what ? what : "");
        printf("%d  %.4f  %s%s\n", i + 1, h->score, safe, img && !exists(img) ? " (deleted)" : "");
        free(safe);
    }
    return failed;
}

/* Thumbnails: longest side in pixels. */
#define DEFAULT_THUMB 256

static int write_html(const gz_results *r, const search_opts *o, const char *query_desc) {
    FILE *f = fopen(o->html, "w");
    if (!f) {
        cli_errorf("%s: cannot write: %s", o->html, strerror(errno));
        return EXIT_FATAL;
    }
    int thumb = o->thumb > 0 ? o->thumb : DEFAULT_THUMB;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>gaze: ",
          f);
    out_html_escape(f, query_desc);
    fputs("</title>\n<style>\n"
          "body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}\n"
          "h1{font-size:1.3em}.grid{display:flex;flex-wrap:wrap;gap:14px}\n"
          "figure{margin:0;width:",
          f);
    fprintf(f, "%dpx", thumb);
    fputs(";background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px}\n"
          "figure img{max-width:100%;display:block;margin:auto}\n"
          "figcaption{font-size:.8em;word-break:break-all;margin-top:4px}\n"
          ".score{font-weight:bold}.missing{color:#a00}\n"
          "</style>\n</head>\n<body>\n<h1>gaze: ",
          f);
    out_html_escape(f, query_desc);
    fprintf(f, "</h1>\n<p>%d result%s</p>\n<div class=\"grid\">\n", r->n, r->n == 1 ? "" : "s");
    int thumbs_failed = 0;
    for (int i = 0; i < r->n; i++) {
        const gz_result *h = &r->v[i];
        const char *img = h->kind == GZ_ITEM_TEXT ? h->link_path : h->path;
        fputs("<figure>\n", f);
        if (img) {
            char *b64 = out_thumbnail_base64(img, thumb, 1);
            if (b64) {
                fputs("<img alt=\"", f);
                out_html_escape(f, img);
                fprintf(f, "\" src=\"data:image/jpeg;base64,%s\">\n", b64);
                free(b64);
            } else {
                thumbs_failed++;
                fputs("<p class=\"missing\">(image unreadable)</p>\n", f);
            }
        }
        fprintf(f, "<figcaption><span class=\"score\">#%d &middot; %.4f</span>", i + 1, h->score);
        if (h->has_itm)
            fprintf(f, " (itc %.4f, itm %.4f, p %.3f)", h->itc, h->itm_logit, h->itm_prob);
        if (h->kind == GZ_ITEM_TEXT) {
            fputs("<br>", f);
            out_html_escape(f, h->text);
        }
        if (img) {
            fputs("<br><a href=\"", f);
            out_file_url(f, img);
            fputs("\">", f);
            out_html_escape(f, img);
            fputs("</a>", f);
        }
        fputs("</figcaption>\n</figure>\n", f);
    }
    fputs("</div>\n</body>\n</html>\n", f);
    if (fclose(f) != 0) {
        cli_errorf("%s: write failed", o->html);
        return EXIT_FATAL;
    }
    if (thumbs_failed)
        cli_warnf("%d thumbnail%s could not be made", thumbs_failed, cli_plural(thumbs_failed));
    if (!o->quiet)
        fprintf(stderr, "gaze: wrote %s (%d result%s)\n", o->html, r->n, cli_plural(r->n));
    return EXIT_OK;
}

/* 1 when a failed search with --rerank failed because re-ranking was refused: the model has
 * no ITM head (GZ_EUNSUPPORTED), or the query is not one re-ranking handles (GZ_EINVAL: a
 * composed query, or not text over images / image over texts). Products are not re-ranked. */
static int rerank_refused(gz_engine *e, const search_opts *o, const gz_query *q, gz_status st) {
    if (o->rerank <= 0) return 0;
    if (q->target == GZ_TARGET_PRODUCTS) return st == GZ_EINVAL;
    if (st == GZ_EINVAL)
        return q->n_terms != 1 || (q->target == GZ_TARGET_IMAGES) != (q->terms[0].text != NULL);
    if (st != GZ_EUNSUPPORTED) return 0;
    const char *dir = gz_engine_model_dir(e);
    gz_model_info mi;
    return dir && gz_model_describe(dir, o->weights, &mi) == GZ_OK && !mi.has_itm;
}

/* The library says what is wrong; the CLI names the flag that asked for it (--rerank) or
 * that fixes it (--model, see cli_report_engine). */
static int report_search_error(gz_engine *e, const search_opts *o, const gz_query *q,
                               gz_status st) {
    if (st != GZ_EUNSUPPORTED && st != GZ_EINVAL) return cli_report_engine(e, st);
    char *msg = strdup(gz_last_error()); /* rerank_refused may set another message */
    int refused = rerank_refused(e, o, q, st);
    int rc = cli_report_text(st, refused ? "--rerank: " : NULL, msg ? msg : gz_last_error(), NULL);
    free(msg);
    return refused ? EXIT_USAGE : rc; /* a flag the query or model cannot honour */
}

static void remove_temp_files(search_opts *o) {
    for (int i = 0; i < o->temp_files.n; i++) {
        unlink(o->temp_files.v[i]);
        free((char *)o->temp_files.v[i]);
    }
    cli_list_free(&o->temp_files);
}

int cmd_search(int argc, char **argv) {
    search_opts o;
    memset(&o, 0, sizeof o);
    o.k = GZ_DEFAULT_K;
    o.min_score = GZ_NO_MIN_SCORE;
    o.text_weight = GZ_DEFAULT_TEXT_WEIGHT;
    const char *precision = NULL; /* --precision */
    const cli_opt opts[] = {
        {"db", 0, CLI_STR, &o.db, "FILE", "database (default $XDG_DATA_HOME/gaze/gaze.db)"},
        {"model", 'm', CLI_STR, &o.model, "DIR", "model (default $GAZE_MODEL, else the db's)"},
        {"top", 'k', CLI_INT, &o.k, "N", "number of results (default 10, at most 100000)"},
        {"min-score", 0, CLI_DOUBLE, &o.min_score, "S", "drop results below this score"},
        {"image", 'i', CLI_STR, &o.image, "FILE|URL", "search by an image (file or http(s) URL)"},
        {"texts", 0, CLI_FLAG, &o.texts, NULL, "rank indexed texts instead of images"},
        {"products", 0, CLI_FLAG, &o.products, NULL, "rank products (text + linked image)"},
        {"text-weight", 0, CLI_DOUBLE, &o.text_weight, "W", "products: weight of the text (0.5)"},
        {"add", 'a', CLI_LIST, &o.add, "Q", "add a term ([W:][text:|image:]Q, repeatable)"},
        {"sub", 's', CLI_LIST, &o.sub, "Q", "subtract a term ([W:][text:|image:]Q)"},
        {"rerank", 'r', CLI_INT, &o.rerank, "K", "re-rank the top K with BLIP ITM"},
        {"taken-after", 0, CLI_STR, &o.taken_after, "DATE",
         "images taken at or after DATE (EXIF time, else mtime)"},
        {"taken-before", 0, CLI_STR, &o.taken_before, "DATE", "images taken before DATE"},
        {"in", 0, CLI_STR, &o.in_folder, "FOLDER", "images at or under FOLDER"},
        {"format", 0, CLI_STR, &o.formats, "F[,F]", "images of these formats (jpeg,png,raw...)"},
        {"min-width", 0, CLI_INT, &o.min_width, "PX", "images at least PX pixels wide"},
        {"min-height", 0, CLI_INT, &o.min_height, "PX", "images at least PX pixels high"},
        {"json", 'j', CLI_FLAG, &o.json, NULL, "JSON lines output"},
        {"paths", 'p', CLI_FLAG, &o.paths, NULL, "print bare paths (for piping)"},
        {"null", '0', CLI_FLAG, &o.null_sep, NULL, "--paths: end each path with NUL, not newline"},
        {"html", 0, CLI_STR, &o.html, "FILE", "write a self-contained HTML gallery"},
        {"thumb-size", 0, CLI_COUNT, &o.thumb, "N", "thumbnail size (gallery 256, preview 160)"},
        {"preview", 0, CLI_FLAG, &o.preview, NULL, "thumbnails inline (kitty, iTerm2, sixel)"},
        {"preview-protocol", 0, CLI_STR, &o.preview_protocol, "P",
         "force kitty|iterm|sixel|none (implies --preview)"},
        {"url-max-mb", 0, CLI_COUNT, &o.url_max_mb, "N", "largest image URL download (32 MiB)"},
        {"threads", 0, CLI_COUNT, &o.threads, "N", "compute threads (default: all cores)"},
        {"precision", 0, CLI_STR, &precision, "fp32|bf16",
         "Linear layers in fp32 (default) or bf16: bf16 weights, AVX512-BF16 dot products, ~2x "
         "faster, cosine to fp32 >= 0.999; fp32 with a note where the CPU lacks AVX512-BF16"},
        {"weights", 0, CLI_STR, &o.weights, "FILE", "weights file inside the model directory"},
        {"quiet", 'q', CLI_FLAG, &o.quiet, NULL, "no notices"},
        {0},
    };
    const cli_command cmd = {"search",
                             "[QUERY] [options]",
                             "Search the index by text, image or a composed query.",
                             SEARCH_DETAILS,
                             SEARCH_EXAMPLES,
                             opts,
                             0,
                             1};
    cli_list pos = {0};
    int rc;
    if (!cli_parse_command(&cmd, argc, argv, &pos, &rc)) {
        cli_list_free(&o.add);
        cli_list_free(&o.sub);
        return rc;
    }
    const char *query = pos.n ? pos.v[0] : NULL;
    cli_list_free(&pos);
    preview_protocol proto = PREVIEW_NONE;
    const char *bad = NULL;
    if (!query && !o.image)
        bad = "give a QUERY text or --image FILE";
    else if (query && !query[strspn(query, " \t\r\n")])
        bad = "the QUERY is empty: give words to search for, or --image FILE";
    else if (o.k <= 0 || o.k > SEARCH_MAX_K)
        bad = "-k must be between 1 and 100000";
    else if (o.rerank < 0 || o.rerank > SEARCH_MAX_K)
        bad = "--rerank must be between 1 and 100000";
    else if (o.products && o.rerank)
        bad = "--rerank does not apply to --products (re-rank images with a text query, or texts "
              "with --texts --image)";
    else if (o.null_sep && !o.paths)
        bad = "-0/--null goes with --paths";
    else if (o.preview_protocol && preview_protocol_parse(o.preview_protocol, &proto) != 0)
        bad = "--preview-protocol must be kitty, iterm, sixel or none";
    else if ((o.preview || o.preview_protocol) && (o.json || o.paths || o.html))
        bad = "--preview draws on the terminal: not with --json, --paths or --html";
    else if (o.texts && o.products)
        bad = "--texts and --products exclude each other";
    else if (o.json + o.paths + (o.html != NULL) > 1)
        bad = "choose one of --json, --paths, --html";
    else if (o.text_weight < 0 || o.text_weight > 1)
        bad = "--text-weight must be in [0, 1]";
    else if (o.in_folder && !*o.in_folder)
        bad = "--in needs a folder";
    else if (o.min_width < 0 || o.min_height < 0)
        bad = "--min-width and --min-height must be 0 or more pixels";
    else if ((o.texts || o.products) && (o.taken_after || o.taken_before || o.in_folder ||
                                         o.formats || o.min_width || o.min_height))
        bad = "--taken-after, --taken-before, --in, --format, --min-width and --min-height "
              "filter images: not with --texts or --products";
    char after[20] = "", before[20] = "", why[512] = "";
    if (!bad && o.taken_after && gz_parse_date(o.taken_after, after) != GZ_OK)
        snprintf(why, sizeof why, "--taken-after: %s", gz_last_error());
    else if (!bad && o.taken_before && gz_parse_date(o.taken_before, before) != GZ_OK)
        snprintf(why, sizeof why, "--taken-before: %s", gz_last_error());
    else if (!bad && after[0] && before[0] && strcmp(after, before) >= 0)
        snprintf(why, sizeof why,
                 "--taken-after %s is not before --taken-before %s: no image can pass both",
                 o.taken_after, o.taken_before);
    else if (!bad && o.formats && gz_check_formats(o.formats) != GZ_OK)
        snprintf(why, sizeof why, "--format: %s", gz_last_error());
    if (why[0]) bad = why;
    if (bad) {
        cli_list_free(&o.add);
        cli_list_free(&o.sub);
        cli_errorf("%s", bad);
        return EXIT_USAGE;
    }
    if (o.in_folder && !exists(o.in_folder) && !o.quiet)
        cli_warnf("--in: %s does not exist; searching the images indexed under it", o.in_folder);
    if (!o.preview_protocol && o.preview) proto = preview_detect();
    if (!o.url_max_mb) o.url_max_mb = CLI_URL_MAX_MB_DEFAULT;
    int nt = (query ? 1 : 0) + (o.image ? 1 : 0) + o.add.n + o.sub.n;
    gz_query_term *terms = calloc((size_t)nt, sizeof *terms);
    if (!terms) return EXIT_FATAL;
    int t = 0;
    rc = 0;
    if (query) terms[t].text = query, terms[t++].weight = 1;
    if (o.image) {
        terms[t].weight = 1;
        rc = resolve_image(&o, "--image", o.image, &terms[t++].image);
    }
    for (int i = 0; i < o.add.n && !rc; i++)
        rc = parse_term(&o, "--add", o.add.v[i], 1, &terms[t++]);
    for (int i = 0; i < o.sub.n && !rc; i++)
        rc = parse_term(&o, "--sub", o.sub.v[i], -1, &terms[t++]);

    gz_model_params mp = cli_model_params(o.weights, o.threads, 0);
    gz_engine *e = NULL;
    if (!rc) rc = cli_set_precision(&mp, precision, o.quiet);
    if (!rc) rc = cli_open_engine(o.db, o.model, &mp, NULL, o.quiet, CLI_OPEN_READONLY, &e);
    if (rc) {
        free(terms);
        remove_temp_files(&o);
        cli_list_free(&o.add);
        cli_list_free(&o.sub);
        return rc;
    }
    gz_query q = gz_query_default();
    q.terms = terms;
    q.n_terms = nt;
    q.target = o.products ? GZ_TARGET_PRODUCTS : o.texts ? GZ_TARGET_TEXTS : GZ_TARGET_IMAGES;
    q.k = o.k;
    q.min_score = (float)o.min_score;
    q.rerank = o.rerank;
    q.text_weight = (float)o.text_weight;
    q.taken_after = o.taken_after;
    q.taken_before = o.taken_before;
    q.in_folder = o.in_folder;
    q.formats = o.formats;
    q.min_width = o.min_width;
    q.min_height = o.min_height;
    gz_results r = {0};
    gz_status st = gz_engine_search(e, &q, &r);
    int code = EXIT_OK;
    if (st != GZ_OK) {
        code = report_search_error(e, &o, &q, st);
    } else if (o.json) {
        print_json(&r, &o);
    } else if (o.paths) {
        print_paths(&r, &o);
    } else if (o.html) {
        char desc[1024];
        snprintf(desc, sizeof desc, "%s%s%s%s", query ? query : "", query && o.image ? " + " : "",
                 o.image ? "image " : "", o.image ? o.image : "");
        code = write_html(&r, &o, desc);
    } else if (r.n == 0) {
        if (!o.quiet) fprintf(stderr, "gaze: no results\n");
    } else if (proto != PREVIEW_NONE) {
        int failed = print_previews(&r, &o, proto);
        if (failed) cli_warnf("%d thumbnail%s could not be drawn", failed, cli_plural(failed));
    } else {
        print_table(&r, &o);
    }
    gz_results_free(&r);
    gz_status cst = gz_engine_close(e);
    if (cst != GZ_OK && code == EXIT_OK) code = cli_report(cst);
    free(terms);
    remove_temp_files(&o);
    cli_list_free(&o.add);
    cli_list_free(&o.sub);
    return code;
}
