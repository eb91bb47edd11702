/* eval.c - caption-matching evaluation (Recall@K) with LAVIS' protocol: evaluation
 * set loading (JSONL, LAVIS JSON list, Karpathy dataset_*.json), caption pre-processing,
 * ranks with a documented tie rule, and ITC + BLIP ITM re-rank runs. See the Evaluation
 * section of gaze.h.
 * Legend: I = evaluated images, T = evaluated texts, E = embedding size, K = re-rank depth. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/kernels.h"
#include "fusion/score.h"
#include "gaze.h"

#define EVAL_MAX_FILE ((size_t)2 << 30) /* refuse dataset files above 2 GiB */
#define EVAL_DEFAULT_IMAGE_BATCH 8
#define EVAL_DEFAULT_TEXT_BATCH 64
#define EVAL_DEFAULT_MAX_WORDS 50 /* LAVIS BlipCaptionProcessor default */
#define EVAL_MAX_BATCH 4096

/* ===== evaluation sets ===== */

gz_eval_load_opts gz_eval_default_load_opts(void) {
    gz_eval_load_opts o;
    memset(&o, 0, sizeof o);
    o.captions = GZ_EVAL_CAPTIONS_ALL;
    o.split = "test";
    return o;
}

void gz_eval_set_free(gz_eval_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_images; i++) {
        free(s->images[i].image);
        free(s->images[i].path);
    }
    free(s->images);
    for (int t = 0; t < s->n_texts; t++)
        free(s->texts[t]);
    free(s->texts);
    free(s->txt2img);
    free(s->file);
    free(s);
}

/* Loader state: the set being built, its capacities, and where relative paths start. */
typedef struct {
    gz_eval_set *s;
    int cap_images, cap_texts, cap_t2i;
    const gz_eval_load_opts *o;
    const char *root; /* folder of relative image paths */
    char *root_real;  /* root resolved physically (realpath); NULL when confinement is off or
                         the folder does not exist (then nothing under it can be read) */
} loader;

static gz_status grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return GZ_OK;
    int nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > (1 << 29)) return GZ_FAIL(GZ_ENOMEM, "evaluation set: too many entries");
        nc *= 2;
    }
    size_t bytes;
    if (!gz_mul_size((size_t)nc, elem, &bytes)) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    void *q = realloc(*p, bytes);
    if (!q) return GZ_FAIL(GZ_ENOMEM, "evaluation set: out of memory");
    *p = q;
    *cap = nc;
    return GZ_OK;
}

/* 1 if a relative path stays inside its folder lexically: not absolute, no ".." component.
 * Symlinks are checked after this, physically (gz_path_resolves_inside). */
static int path_stays_inside(const char *p) {
    if (p[0] == '/') return 0;
    for (const char *c = p; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.') return 0;
        c += n;
        while (*c == '/')
            c++;
    }
    return 1;
}

/* Add one image with its captions (json strings in caps[0..n_caps)). */
static gz_status add_image(loader *L, const char *image, json_t *const *caps, int n_caps,
                           long where) {
    gz_eval_set *s = L->s;
    if (!L->o->allow_outside_root && !path_stays_inside(image))
        return GZ_FAIL(GZ_EINVAL,
                       "%s: entry %ld: image path '%s' is absolute or leaves the dataset's "
                       "folder (allowed only with allow_outside_root)",
                       s->file, where, image);
    if (L->root_real) {
        /* A symlink inside the folder (the file, or a folder on its way) may point anywhere:
         * where the path leads is what counts. */
        char *joined = gz_path_join(L->root, image);
        if (!joined) return GZ_FAIL(GZ_ENOMEM, "evaluation set: out of memory");
        int inside = gz_path_resolves_inside(L->root_real, joined);
        free(joined);
        if (!inside)
            return GZ_FAIL(GZ_EINVAL,
                           "%s: entry %ld: image path '%s' leads outside the dataset's folder "
                           "through a symbolic link (allowed only with allow_outside_root)",
                           s->file, where, image);
    }
    if (n_caps <= 0) {
        s->n_no_captions++;
        return GZ_OK;
    }
    if (L->o->captions == GZ_EVAL_CAPTIONS_FIRST) n_caps = 1;
    gz_status st = grow((void **)&s->images, &L->cap_images, s->n_images + 1, sizeof *s->images);
    if (st == GZ_OK)
        st = grow((void **)&s->texts, &L->cap_texts, s->n_texts + n_caps, sizeof *s->texts);
    if (st == GZ_OK)
        st = grow((void **)&s->txt2img, &L->cap_t2i, s->n_texts + n_caps, sizeof *s->txt2img);
    if (st != GZ_OK) return st;
    gz_eval_image *im = &s->images[s->n_images];
    memset(im, 0, sizeof *im);
    im->image = strdup(image);
    im->path = gz_path_join(L->root, image);
    if (!im->image || !im->path) {
        free(im->image);
        free(im->path);
        return GZ_FAIL(GZ_ENOMEM, "evaluation set: out of memory");
    }
    im->first_text = s->n_texts;
    im->n_texts = n_caps;
    im->line = where;
    for (int c = 0; c < n_caps; c++) {
        char *t = strdup(json_string_value(caps[c]));
        if (!t) {
            for (int j = 0; j < c; j++)
                free(s->texts[s->n_texts + j]);
            free(im->image);
            free(im->path);
            return GZ_FAIL(GZ_ENOMEM, "evaluation set: out of memory");
        }
        s->texts[s->n_texts + c] = t;
        s->txt2img[s->n_texts + c] = s->n_images;
    }
    s->n_texts += n_caps;
    s->n_images++;
    return GZ_OK;
}

/* Collect a caption value (string or list of strings) into *caps (malloc'd, the caller
 * frees it; every caption is kept: there used to be a silent cap of 1024 per image). Returns
 * the count, -1 when it is neither, -2 when out of memory. */
static int caption_list(json_t *v, json_t ***caps) {
    *caps = NULL;
    if (!v || json_is_null(v)) return 0;
    size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_string(v) && !json_is_array(v)) return -1;
    if (n > INT_MAX) return -2;
    *caps = gz_malloc_n(n ? n : 1, sizeof **caps, "captions");
    if (!*caps) return -2;
    if (json_is_string(v)) {
        (*caps)[0] = v;
        return 1;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
            free(*caps);
            *caps = NULL;
            return -1;
        }
        (*caps)[i] = e;
    }
    return (int)n;
}

/* One entry of the JSONL or LAVIS JSON-list formats. */
static gz_status add_entry(loader *L, json_t *obj, long where, const char *unit) {
    const char *file = L->s->file;
    if (!json_is_object(obj))
        return GZ_FAIL(GZ_EINVAL, "%s:%s%ld: not a JSON object", file, unit, where);
    json_t *img = json_object_get(obj, "image");
    if (!json_is_string(img) || !json_string_value(img)[0])
        return GZ_FAIL(GZ_EINVAL, "%s:%s%ld: needs a non-empty string field 'image'", file, unit,
                       where);
    json_t **caps = NULL;
    json_t *v;
    const char *field;
    if (L->o->lang) {
        field = "captions_i18n";
        json_t *i18n = json_object_get(obj, "captions_i18n");
        if (i18n && !json_is_object(i18n) && !json_is_null(i18n))
            return GZ_FAIL(GZ_EINVAL, "%s:%s%ld: 'captions_i18n' is not an object", file, unit,
                           where);
        v = json_is_object(i18n) ? json_object_get(i18n, L->o->lang) : NULL;
    } else {
        field = "captions";
        v = json_object_get(obj, "captions");
        if (!v) {
            field = "caption";
            v = json_object_get(obj, "caption");
        }
    }
    int n = caption_list(v, &caps);
    if (n == -2) return GZ_FAIL(GZ_ENOMEM, "%s:%s%ld: out of memory", file, unit, where);
    if (n < 0)
        return GZ_FAIL(GZ_EINVAL, "%s:%s%ld: '%s%s%s' must be a string or a list of strings", file,
                       unit, where, field, L->o->lang ? "." : "", L->o->lang ? L->o->lang : "");
    gz_status st = add_image(L, json_string_value(img), caps, n, where);
    free(caps);
    return st;
}

/* Karpathy's dataset_*.json: {"images": [{"filepath", "filename", "split", "sentences"}]}. */
static gz_status load_karpathy(loader *L, json_t *root) {
    json_t *images = json_object_get(root, "images");
    size_t i;
    json_t *e;
    json_array_foreach(images, i, e) {
        long where = (long)i + 1;
        const char *file = L->s->file;
        if (!json_is_object(e))
            return GZ_FAIL(GZ_EINVAL, "%s: images[%zu] is not an object", file, i);
        json_t *split = json_object_get(e, "split");
        if (L->o->split && json_is_string(split) && strcmp(json_string_value(split), L->o->split))
            continue;
        L->s->n_entries++;
        json_t *fp = json_object_get(e, "filepath"), *fn = json_object_get(e, "filename");
        if (!json_is_string(fn) || !json_string_value(fn)[0])
            return GZ_FAIL(GZ_EINVAL, "%s: images[%zu] has no 'filename'", file, i);
        char *rel = json_is_string(fp) && json_string_value(fp)[0]
                        ? gz_path_join(json_string_value(fp), json_string_value(fn))
                        : strdup(json_string_value(fn));
        if (!rel) return GZ_FAIL(GZ_ENOMEM, "evaluation set: out of memory");
        json_t *sents = json_object_get(e, "sentences");
        size_t n_sents = json_is_array(sents) ? json_array_size(sents) : 0;
        json_t **caps =
            n_sents > INT_MAX ? NULL : gz_malloc_n(n_sents ? n_sents : 1, sizeof *caps, "captions");
        if (!caps) {
            free(rel);
            return GZ_FAIL(GZ_ENOMEM, "%s: images[%zu]: out of memory", file, i);
        }
        int n = 0;
        if (!L->o->lang && json_is_array(sents)) {
            size_t j;
            json_t *sv;
            json_array_foreach(sents, j, sv) {
                json_t *raw = json_object_get(sv, "raw");
                if (!json_is_string(raw)) {
                    free(rel);
                    free(caps);
                    return GZ_FAIL(GZ_EINVAL, "%s: images[%zu].sentences[%zu] has no 'raw'", file,
                                   i, j);
                }
                caps[n++] = raw;
            }
        }
        gz_status st = add_image(L, rel, caps, n, where);
        free(rel);
        free(caps);
        if (st != GZ_OK) return st;
    }
    return GZ_OK;
}

static gz_status read_whole(const char *path, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *f = gz_fopen_regular(path); /* a FIFO does not hang the read */
    if (!f)
        return GZ_FAIL(errno == ENOENT ? GZ_ENOTFOUND : GZ_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    gz_status st = GZ_OK;
    while (b) {
        if (n + 1 >= cap) {
            if (cap >= EVAL_MAX_FILE) {
                st = GZ_FAIL(GZ_ENOMEM, "%s: larger than 2 GiB", path);
                break;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) break;
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - 1 - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) st = GZ_FAIL(GZ_EIO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (!b) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    if (st != GZ_OK) {
        free(b);
        return st;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return GZ_OK;
}

static gz_status load_jsonl(loader *L, char *buf, size_t len) {
    long line = 0;
    size_t pos = 0;
    while (pos < len) {
        line++;
        size_t end = pos;
        while (end < len && buf[end] != '\n')
            end++;
        size_t a = pos, b = end;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r'))
            a++;
        while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r'))
            b--;
        pos = end + 1;
        if (a == b) continue; /* blank line */
        json_error_t jerr;
        json_t *obj = json_loadb(buf + a, b - a, 0, &jerr);
        if (!obj)
            return GZ_FAIL(GZ_EINVAL, "%s:%ld: invalid JSON: %s", L->s->file, line, jerr.text);
        L->s->n_entries++;
        gz_status st = add_entry(L, obj, line, "");
        json_decref(obj);
        if (st != GZ_OK) return st;
    }
    return GZ_OK;
}

/* The folder of a file path ("." when it has none); malloc'd. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

gz_status gz_eval_load(const char *path, const gz_eval_load_opts *opts, gz_eval_set **out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "gz_eval_load: out is NULL");
    *out = NULL;
    if (!path) return GZ_FAIL(GZ_EINVAL, "gz_eval_load: no path");
    gz_eval_load_opts def = gz_eval_default_load_opts();
    if (!opts) opts = &def;
    if (opts->lang && !opts->lang[0]) return GZ_FAIL(GZ_EINVAL, "gz_eval_load: empty language");
    char *buf = NULL;
    size_t len = 0;
    gz_status st = read_whole(path, &buf, &len);
    if (st != GZ_OK) return st;
    gz_eval_set *s = calloc(1, sizeof *s);
    char *dir = opts->image_root ? strdup(opts->image_root) : dir_of(path);
    if (!s || !dir || !(s->file = strdup(path))) {
        free(buf);
        free(dir);
        gz_eval_set_free(s);
        return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    }
    loader L = {.s = s, .o = opts, .root = dir};
    if (!opts->allow_outside_root) L.root_real = realpath(dir, NULL);
    size_t p = 0;
    if (len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
        (unsigned char)buf[2] == 0xBF)
        p = 3; /* UTF-8 byte order mark */
    while (p < len && (buf[p] == ' ' || buf[p] == '\t' || buf[p] == '\r' || buf[p] == '\n'))
        p++;
    json_t *whole = NULL;
    if (p < len && (buf[p] == '[' || buf[p] == '{')) {
        json_error_t jerr;
        whole = json_loadb(buf + p, len - p, 0, &jerr);
        if (!whole && buf[p] == '[')
            st = GZ_FAIL(GZ_EINVAL, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
    }
    if (st == GZ_OK) {
        if (whole && json_is_array(whole)) {
            s->format = "json-list";
            size_t i;
            json_t *e;
            json_array_foreach(whole, i, e) {
                s->n_entries++;
                if ((st = add_entry(&L, e, (long)i + 1, " entry ")) != GZ_OK) break;
            }
        } else if (whole && json_is_array(json_object_get(whole, "images"))) {
            s->format = "karpathy";
            st = load_karpathy(&L, whole);
        } else {
            s->format = "jsonl"; /* also a one-line file parsed whole above */
            st = load_jsonl(&L, buf + p, len - p);
        }
    }
    json_decref(whole);
    free(buf);
    free(dir);
    free(L.root_real);
    if (st == GZ_OK && s->n_images == 0) {
        if (s->n_entries == 0)
            st = GZ_FAIL(GZ_EINVAL, "%s: no entries%s%s", path,
                         !strcmp(s->format, "karpathy") ? " in split " : "",
                         !strcmp(s->format, "karpathy") && opts->split ? opts->split : "");
        else
            st = GZ_FAIL(GZ_EINVAL, "%s: none of the %d entries has captions%s%s", path,
                         s->n_entries, opts->lang ? " in " : "", opts->lang ? opts->lang : "");
    }
    if (st == GZ_OK && gz_hash_file(path, &s->file_hash) != GZ_OK) s->file_hash = 0;
    if (st != GZ_OK) {
        gz_eval_set_free(s);
        return st;
    }
    *out = s;
    return GZ_OK;
}

/* ===== LAVIS caption pre-processing ===== */

/* Python str.isspace() (what re's \s matches in str patterns). */
static int py_space(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Code points (invalid UTF-8 bytes kept as -(byte) so they go back out unchanged). */
typedef struct {
    int32_t *v;
    size_t n;
} cps;

char *gz_eval_blip_caption(const char *caption, int max_words) {
    if (!caption) return NULL;
    size_t len = strlen(caption);
    cps a = {gz_malloc_n(len * 2 + 1, sizeof(int32_t), "caption"), 0}; /* lower() may add U+0307 */
    if (!a.v) return NULL;
    const uint8_t *p = (const uint8_t *)caption;
    size_t i = 0;
    while (i < len) {
        int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0) {
            a.v[a.n++] = -(int32_t)p[i];
            i++;
            continue;
        }
        i += (size_t)k;
        if (c == 0x130) { /* Python: 'İ'.lower() == 'i' + COMBINING DOT ABOVE */
            a.v[a.n++] = 'i';
            a.v[a.n++] = 0x307;
            continue;
        }
        c = utf8proc_tolower(c);
        if (c < 128 && c > 0 && strchr(".!\"()*#:;~", (int)c)) c = ' ';
        a.v[a.n++] = c;
    }
    /* runs of 2+ whitespace -> one space (a single whitespace character stays as it is) */
    size_t w = 0;
    for (size_t r = 0; r < a.n;) {
        if (a.v[r] >= 0 && py_space(a.v[r])) {
            size_t e = r;
            while (e < a.n && a.v[e] >= 0 && py_space(a.v[e]))
                e++;
            if (e - r >= 2)
                a.v[w++] = ' ';
            else
                a.v[w++] = a.v[r];
            r = e;
        } else {
            a.v[w++] = a.v[r++];
        }
    }
    a.n = w;
    while (a.n && a.v[a.n - 1] == '\n')
        a.n--; /* rstrip("\n") */
    size_t b = 0;
    while (b < a.n && a.v[b] == ' ')
        b++; /* strip(" ") */
    while (a.n > b && a.v[a.n - 1] == ' ')
        a.n--;
    /* at most max_words words of split(" ") */
    if (max_words > 0) {
        int words = 1;
        for (size_t r = b; r < a.n; r++)
            if (a.v[r] == ' ' && ++words > max_words) {
                a.n = r;
                break;
            }
    }
    char *out = gz_malloc_n((a.n - b) * 4 + 1, 1, "caption");
    if (out) {
        size_t o = 0;
        for (size_t r = b; r < a.n; r++) {
            if (a.v[r] < 0)
                out[o++] = (char)(uint8_t)(-a.v[r]);
            else
                o += (size_t)utf8proc_encode_char(a.v[r], (uint8_t *)out + o);
        }
        out[o] = '\0';
    }
    free(a.v);
    return out;
}

/* ===== ranks ===== */

/* Score order with NaN lowest. */
static inline float key(float v) { return isnan(v) ? -INFINITY : v; }

/* c beats g: higher tier, or same tier and higher score. */
static inline int beats(const float *val, const unsigned char *tier, int c, int g) {
    int tc = tier ? tier[c] : 0, tg = tier ? tier[g] : 0;
    if (tc != tg) return tc > tg;
    return key(val[c]) > key(val[g]);
}

static inline int equal(const float *val, const unsigned char *tier, int c, int g) {
    int tc = tier ? tier[c] : 0, tg = tier ? tier[g] : 0;
    return tc == tg && key(val[c]) == key(val[g]);
}

/* One query over n candidates scored val (tiers: re-ranked candidates first). gt[0..n_gt)
 * are the ground truths; is_gt marks them (stamp). Sets the rank of the best ground truth
 * (n when n_gt == 0), the top candidate, and whether the best ground truth ties with a
 * non-ground-truth candidate. */
static void rank_one(const float *val, const unsigned char *tier, int n, const int *gt, int n_gt,
                     const int *is_gt, int stamp, int *rank, int *top, int *tied) {
    int best_top = 0;
    for (int c = 1; c < n; c++)
        if (beats(val, tier, c, best_top)) best_top = c;
    if (top) *top = n ? best_top : -1;
    *tied = 0;
    if (n_gt == 0) {
        *rank = n;
        return;
    }
    int g = gt[0];
    for (int j = 1; j < n_gt; j++)
        if (beats(val, tier, gt[j], g)) g = gt[j];
    int r = 0;
    for (int c = 0; c < n; c++) {
        if (beats(val, tier, c, g))
            r++;
        else if (is_gt[c] != stamp && equal(val, tier, c, g))
            *tied = 1;
    }
    *rank = r;
}

/* Ground-truth texts of each image as CSR: off (n_img + 1), idx (n_txt). */
static gz_status gt_lists(const int *txt2img, int n_img, int n_txt, int **off, int **idx) {
    *off = gz_calloc_n((size_t)n_img + 1, sizeof **off, "ranks");
    *idx = gz_malloc_n((size_t)n_txt, sizeof **idx, "ranks");
    if (!*off || !*idx) {
        free(*off);
        free(*idx);
        *off = *idx = NULL;
        return GZ_FAIL(GZ_ENOMEM, "ranks: out of memory");
    }
    for (int t = 0; t < n_txt; t++)
        (*off)[txt2img[t] + 1]++;
    for (int i = 0; i < n_img; i++)
        (*off)[i + 1] += (*off)[i];
    int *fill = gz_malloc_n((size_t)n_img + 1, sizeof *fill, "ranks");
    if (!fill) {
        free(*off);
        free(*idx);
        *off = *idx = NULL;
        return GZ_FAIL(GZ_ENOMEM, "ranks: out of memory");
    }
    memcpy(fill, *off, ((size_t)n_img + 1) * sizeof *fill);
    for (int t = 0; t < n_txt; t++)
        (*idx)[fill[txt2img[t]]++] = t;
    free(fill);
    return GZ_OK;
}

/* Scores of one query: the re-ranked candidates (tier 1, score rr) and the rest (tier 0, ITC).
 * With top == NULL every candidate is tier 0 with its ITC score. */
typedef struct {
    const float *itc; /* ITC scores of the query's candidates, stride apart */
    size_t stride;
    const int *top;     /* (k) re-ranked candidates, or NULL */
    const float *top_s; /* (k) their re-rank scores */
    int k;
} query_scores;

/* Fill val/tier (n) for one query. */
static void fill_query(const query_scores *q, int n, float *val, unsigned char *tier) {
    for (int c = 0; c < n; c++)
        val[c] = q->itc[(size_t)c * q->stride];
    memset(tier, 0, (size_t)n);
    if (q->top)
        for (int j = 0; j < q->k; j++) {
            val[q->top[j]] = q->top_s[j];
            tier[q->top[j]] = 1;
        }
}

typedef struct {
    int *txt_rank, *img_rank, *txt_top, *img_top;
    int n_tied_txt, n_tied_img;
} rank_out;

/* Ranks of every image query (over texts) and text query (over images). i2t (I, T) is the
 * ITC matrix; t2i (T, I) NULL = its transpose. Optional re-rank lists: i2t_top (I, K1) with
 * scores, t2i_top (T, K2). */
static gz_status compute_ranks(const float *i2t, const float *t2i, int n_img, int n_txt,
                               const int *txt2img, const int *i2t_top, const float *i2t_s, int k1,
                               const int *t2i_top, const float *t2i_s, int k2, rank_out *o) {
    int *off = NULL, *idx = NULL;
    gz_status st = gt_lists(txt2img, n_img, n_txt, &off, &idx);
    if (st != GZ_OK) return st;
    int nmax = n_img > n_txt ? n_img : n_txt;
    float *val = gz_malloc_n((size_t)nmax, sizeof *val, "ranks");
    unsigned char *tier = gz_malloc_n((size_t)nmax, 1, "ranks");
    int *is_gt = gz_calloc_n((size_t)nmax, sizeof *is_gt, "ranks");
    if (!val || !tier || !is_gt) {
        st = GZ_FAIL(GZ_ENOMEM, "ranks: out of memory");
        goto out;
    }
    o->n_tied_txt = o->n_tied_img = 0;
    for (int i = 0; i < n_img; i++) { /* image -> text */
        query_scores q = {i2t + (size_t)i * n_txt, 1, i2t_top ? i2t_top + (size_t)i * k1 : NULL,
                          i2t_s ? i2t_s + (size_t)i * k1 : NULL, k1};
        fill_query(&q, n_txt, val, tier);
        for (int j = off[i]; j < off[i + 1]; j++)
            is_gt[idx[j]] = i + 1;
        int tied = 0;
        rank_one(val, i2t_top ? tier : NULL, n_txt, idx + off[i], off[i + 1] - off[i], is_gt, i + 1,
                 &o->txt_rank[i], o->txt_top ? &o->txt_top[i] : NULL, &tied);
        o->n_tied_txt += tied;
    }
    memset(is_gt, 0, (size_t)nmax * sizeof *is_gt);
    for (int t = 0; t < n_txt; t++) { /* text -> image */
        query_scores q = {t2i ? t2i + (size_t)t * n_img : i2t + t, t2i ? 1 : (size_t)n_txt,
                          t2i_top ? t2i_top + (size_t)t * k2 : NULL,
                          t2i_s ? t2i_s + (size_t)t * k2 : NULL, k2};
        fill_query(&q, n_img, val, tier);
        int g = txt2img[t];
        is_gt[g] = t + 1;
        int tied = 0;
        rank_one(val, t2i_top ? tier : NULL, n_img, &g, 1, is_gt, t + 1, &o->img_rank[t],
                 o->img_top ? &o->img_top[t] : NULL, &tied);
        o->n_tied_img += tied;
    }
out:
    free(val);
    free(tier);
    free(is_gt);
    free(off);
    free(idx);
    return st;
}

gz_status gz_eval_ranks(const float *i2t, const float *t2i, int n_img, int n_txt,
                        const int *txt2img, int *txt_rank, int *img_rank, int *txt_top,
                        int *img_top, int *n_tied_txt, int *n_tied_img) {
    if (!i2t || !txt2img || !txt_rank || !img_rank || n_img <= 0 || n_txt <= 0)
        return GZ_FAIL(GZ_EINVAL, "gz_eval_ranks: bad arguments");
    for (int t = 0; t < n_txt; t++)
        if (txt2img[t] < 0 || txt2img[t] >= n_img)
            return GZ_FAIL(GZ_EINVAL, "gz_eval_ranks: text %d belongs to image %d of %d", t,
                           txt2img[t], n_img);
    rank_out o = {txt_rank, img_rank, txt_top, img_top, 0, 0};
    gz_status st = compute_ranks(i2t, t2i, n_img, n_txt, txt2img, NULL, NULL, 0, NULL, NULL, 0, &o);
    if (n_tied_txt) *n_tied_txt = o.n_tied_txt;
    if (n_tied_img) *n_tied_img = o.n_tied_img;
    return st;
}

static double pct_below(const int *rank, int n, int k) {
    if (n <= 0) return 0;
    long c = 0;
    for (int i = 0; i < n; i++)
        c += rank[i] < k;
    return 100.0 * (double)c / (double)n;
}

void gz_eval_recall_from_ranks(const int *txt_rank, int n_img, const int *img_rank, int n_txt,
                               gz_eval_recall *out) {
    memset(out, 0, sizeof *out);
    out->txt_r1 = pct_below(txt_rank, n_img, 1);
    out->txt_r5 = pct_below(txt_rank, n_img, 5);
    out->txt_r10 = pct_below(txt_rank, n_img, 10);
    out->img_r1 = pct_below(img_rank, n_txt, 1);
    out->img_r5 = pct_below(img_rank, n_txt, 5);
    out->img_r10 = pct_below(img_rank, n_txt, 10);
    out->txt_r_mean = (out->txt_r1 + out->txt_r5 + out->txt_r10) / 3;
    out->img_r_mean = (out->img_r1 + out->img_r5 + out->img_r10) / 3;
    out->r_mean = (out->txt_r_mean + out->img_r_mean) / 2;
    out->agg_metrics = out->txt_r_mean;
}

/* ===== top-k selection ===== */

/* a is worse than b: lower score, or equal score and higher index (lower index wins ties). */
static inline int worse(float sa, int ia, float sb, int ib) {
    sa = key(sa), sb = key(sb);
    return sa < sb || (sa == sb && ia > ib);
}

static inline int hworse(const float *s, size_t stride, int a, int b) {
    return worse(s[(size_t)a * stride], a, s[(size_t)b * stride], b);
}

/* Restore the heap (root = worst) of n entries below position j. */
static void sift_down(const float *s, size_t stride, int *idx, int n, int j) {
    for (;;) {
        int l = 2 * j + 1, r = l + 1, m = j;
        if (l < n && hworse(s, stride, idx[l], idx[m])) m = l;
        if (r < n && hworse(s, stride, idx[r], idx[m])) m = r;
        if (m == j) return;
        int u = idx[j];
        idx[j] = idx[m];
        idx[m] = u;
        j = m;
    }
}

/* The k best of n scores (stride apart) into idx (k <= n), best first: a heap of the k best
 * seen so far with the worst at the root, then heap-sorted. */
static void top_k(const float *s, size_t stride, int n, int k, int *idx) {
    int h = 0;
    for (int c = 0; c < n; c++) {
        if (h < k) {
            int j = h++;
            idx[j] = c;
            while (j > 0 && hworse(s, stride, idx[j], idx[(j - 1) / 2])) {
                int p = (j - 1) / 2, u = idx[p];
                idx[p] = idx[j];
                idx[j] = u;
                j = p;
            }
        } else if (hworse(s, stride, idx[0], c)) {
            idx[0] = c;
            sift_down(s, stride, idx, h, 0);
        }
    }
    for (int end = h - 1; end > 0; end--) { /* move the worst to the end: best first */
        int u = idx[0];
        idx[0] = idx[end];
        idx[end] = u;
        sift_down(s, stride, idx, end, 0);
    }
}

/* ===== the evaluation run ===== */

gz_eval_params gz_eval_default_params(void) {
    gz_eval_params p;
    memset(&p, 0, sizeof p);
    p.image_batch = EVAL_DEFAULT_IMAGE_BATCH;
    p.text_batch = EVAL_DEFAULT_TEXT_BATCH;
    p.text_process = GZ_EVAL_TEXT_AUTO;
    p.max_words = EVAL_DEFAULT_MAX_WORDS;
    return p;
}

void gz_eval_result_free(gz_eval_result *r) {
    if (!r) return;
    free(r->image_index);
    free(r->text_index);
    free(r->txt2img);
    if (r->processed_texts)
        for (int t = 0; t < r->n_texts; t++)
            free(r->processed_texts[t]);
    free(r->processed_texts);
    free(r->txt_rank_itc);
    free(r->img_rank_itc);
    free(r->txt_top_itc);
    free(r->img_top_itc);
    free(r->txt_rank_rerank);
    free(r->img_rank_rerank);
    free(r->txt_top_rerank);
    free(r->img_top_rerank);
    free(r->i2t_itc);
    memset(r, 0, sizeof *r);
}

static void progress(const gz_eval_params *p, const char *phase, long done, long total) {
    if (p->progress) p->progress(p->user, phase, done, total);
}

/* Decode and encode every image of the set in batches. emb (n_images, E) rows of images that
 * failed stay unset and ok[i] = 0. */
static gz_status encode_images(gz_model *m, const gz_eval_set *s, const gz_eval_params *p,
                               float *emb, unsigned char *ok, int *n_failed) {
    const int E = gz_model_dim(m), B = p->image_batch;
    gz_image_params ip = gz_model_image_params(m);
    gz_image *imgs = gz_calloc_n((size_t)B, sizeof *imgs, "evaluation");
    int *which = gz_malloc_n((size_t)B, sizeof *which, "evaluation");
    float *tmp = gz_malloc_n((size_t)B * E, sizeof *tmp, "evaluation");
    gz_status st = GZ_OK;
    if (!imgs || !which || !tmp) {
        st = GZ_FAIL(GZ_ENOMEM, "evaluation: out of memory");
        goto out;
    }
    *n_failed = 0;
    progress(p, "images", 0, s->n_images);
    for (int i0 = 0; i0 < s->n_images && st == GZ_OK; i0 += B) {
        int n = s->n_images - i0 < B ? s->n_images - i0 : B, k = 0;
        for (int j = 0; j < n; j++) {
            const gz_eval_image *im = &s->images[i0 + j];
            ok[i0 + j] = 0;
            if (gz_image_load(im->path, &ip, &imgs[k]) != GZ_OK) {
                (*n_failed)++;
                if (p->image_failed) p->image_failed(p->user, im->path, gz_last_error());
                continue;
            }
            which[k++] = i0 + j;
        }
        if (k > 0) st = gz_encode_images(m, imgs, k, tmp);
        for (int j = 0; j < k; j++) {
            if (st == GZ_OK) {
                memcpy(emb + (size_t)which[j] * E, tmp + (size_t)j * E, (size_t)E * sizeof *tmp);
                ok[which[j]] = 1;
            }
            gz_image_free(&imgs[j]);
        }
        progress(p, "images", i0 + n, s->n_images);
    }
out:
    free(imgs);
    free(which);
    free(tmp);
    return st;
}

/* Every (image, text) pair either direction re-ranks is scored once by ITM, grouped by
 * image: the image's own top-k texts plus the texts that have the image in their top-k. */
static gz_status rerank_scores(gz_model *m, const gz_eval_set *s, const gz_eval_params *p,
                               gz_eval_result *r, const int *i2t_top, float *i2t_s, int k1,
                               const int *t2i_top, float *t2i_s, int k2) {
    const int I = r->n_images, T = r->n_texts;
    gz_status st = GZ_OK;
    /* reverse lists: for image i, the (text, slot) pairs with i in the text's top-k */
    int *roff = gz_calloc_n((size_t)I + 1, sizeof *roff, "re-rank");
    int *rfill = gz_malloc_n((size_t)I + 1, sizeof *rfill, "re-rank");
    int *rlist = gz_malloc_n((size_t)T * k2, sizeof *rlist, "re-rank"); /* text * k2 + slot */
    int *mark = gz_malloc_n((size_t)T, sizeof *mark, "re-rank");
    int *pos = gz_malloc_n((size_t)T, sizeof *pos, "re-rank");
    int *cand = gz_malloc_n((size_t)T, sizeof *cand, "re-rank");
    const char **ctext = gz_malloc_n((size_t)T, sizeof *ctext, "re-rank");
    gz_match *mt = gz_malloc_n((size_t)T, sizeof *mt, "re-rank");
    gz_image img;
    memset(&img, 0, sizeof img);
    if (!roff || !rfill || !rlist || !mark || !pos || !cand || !ctext || !mt) {
        st = GZ_FAIL(GZ_ENOMEM, "re-rank: out of memory");
        goto out;
    }
    for (size_t e = 0; e < (size_t)T * k2; e++)
        roff[t2i_top[e] + 1]++;
    for (int i = 0; i < I; i++)
        roff[i + 1] += roff[i];
    memcpy(rfill, roff, ((size_t)I + 1) * sizeof *rfill);
    for (size_t e = 0; e < (size_t)T * k2; e++)
        rlist[rfill[t2i_top[e]]++] = (int)e;
    for (int t = 0; t < T; t++)
        mark[t] = -1;
    gz_image_params ip = gz_model_image_params(m);
    progress(p, "rerank", 0, I);
    r->n_itm_pairs = 0;
    for (int i = 0; i < I; i++) {
        int n = 0;
        for (int j = 0; j < k1; j++) {
            int t = i2t_top[(size_t)i * k1 + j];
            if (mark[t] != i) mark[t] = i, pos[t] = n, cand[n++] = t;
        }
        for (int e = roff[i]; e < roff[i + 1]; e++) {
            int t = rlist[e] / k2;
            if (mark[t] != i) mark[t] = i, pos[t] = n, cand[n++] = t;
        }
        if (n == 0) continue;
        for (int j = 0; j < n; j++)
            ctext[j] = r->processed_texts[cand[j]];
        const char *path = s->images[r->image_index[i]].path;
        if ((st = gz_image_load(path, &ip, &img)) != GZ_OK) {
            gz_error_prefix(st, "re-rank: image decoded before but not now");
            goto out;
        }
        st = gz_match_image_texts(m, &img, ctext, n, mt);
        gz_image_free(&img);
        if (st != GZ_OK) goto out;
        r->n_itm_pairs += n;
        const float *row = r->i2t_itc + (size_t)i * T;
        /* LAVIS' rule (score.h) over the ITC of the matrix, not the itc gz_match recomputed */
        for (int j = 0; j < k1; j++) {
            int t = i2t_top[(size_t)i * k1 + j];
            i2t_s[(size_t)i * k1 + j] = gz_score_rerank(mt[pos[t]].itm_logit[1], row[t]);
        }
        for (int e = roff[i]; e < roff[i + 1]; e++) {
            int t = rlist[e] / k2;
            t2i_s[rlist[e]] = gz_score_rerank(mt[pos[t]].itm_logit[1], row[t]);
        }
        progress(p, "rerank", i + 1, I);
    }
out:
    free(roff);
    free(rfill);
    free(rlist);
    free(mark);
    free(pos);
    free(cand);
    free(ctext);
    free(mt);
    return st;
}

/* What one evaluation run allocates besides the result: owned here, freed together by
 * run_state_free whether the run succeeds or fails at any phase. */
typedef struct {
    int E;                  /* embedding size */
    float *img_emb;         /* (set's n_images, E); after keep_decoded the first I rows are
                               the evaluated images, in order */
    unsigned char *ok;      /* (set's n_images) 1 = decoded and encoded */
    float *txt_emb;         /* (T, E) */
    int k1, k2;             /* re-rank depth over texts (<= T) and over images (<= I) */
    int *i2t_top, *t2i_top; /* (I, k1), (T, k2) the ITC top-k of each query, best first */
    float *i2t_s, *t2i_s;   /* (I, k1), (T, k2) their re-rank scores */
} run_state;

static void run_state_free(run_state *w) {
    free(w->img_emb);
    free(w->ok);
    free(w->txt_emb);
    free(w->i2t_top);
    free(w->t2i_top);
    free(w->i2t_s);
    free(w->t2i_s);
    memset(w, 0, sizeof *w);
}

/* Images phase: decode and encode every image of the set into w->img_emb / w->ok. */
static gz_status run_images(gz_model *m, const gz_eval_set *s, const gz_eval_params *p,
                            run_state *w, gz_eval_result *r) {
    w->img_emb = gz_malloc_n((size_t)s->n_images * w->E, sizeof *w->img_emb, "evaluation");
    w->ok = gz_calloc_n((size_t)s->n_images, 1, "evaluation");
    if (!w->img_emb || !w->ok) return GZ_FAIL(GZ_ENOMEM, "evaluation: out of memory");
    return encode_images(m, s, p, w->img_emb, w->ok, &r->n_failed_images);
}

/* Result assembly: the decoded images and their captions (processed as p says) become the
 * evaluated sets of r (image_index, text_index, txt2img, processed_texts); the embeddings of
 * the evaluated images are moved to the first rows of w->img_emb. GZ_EINVAL if no image
 * decoded. */
static gz_status keep_decoded(const gz_eval_set *s, const gz_eval_params *p, run_state *w,
                              gz_eval_result *r) {
    const int E = w->E;
    gz_status st = GZ_OK;
    int *set2eval = gz_malloc_n((size_t)s->n_images, sizeof *set2eval, "evaluation");
    r->image_index = gz_malloc_n((size_t)s->n_images, sizeof *r->image_index, "evaluation");
    r->text_index = gz_malloc_n((size_t)s->n_texts, sizeof *r->text_index, "evaluation");
    r->txt2img = gz_malloc_n((size_t)s->n_texts, sizeof *r->txt2img, "evaluation");
    r->processed_texts = gz_calloc_n((size_t)s->n_texts, sizeof *r->processed_texts, "evaluation");
    if (!set2eval || !r->image_index || !r->text_index || !r->txt2img || !r->processed_texts) {
        st = GZ_FAIL(GZ_ENOMEM, "evaluation: out of memory");
        goto out;
    }
    for (int i = 0; i < s->n_images; i++) {
        set2eval[i] = w->ok[i] ? r->n_images : -1;
        if (w->ok[i]) {
            memmove(w->img_emb + (size_t)r->n_images * E, w->img_emb + (size_t)i * E,
                    (size_t)E * sizeof *w->img_emb);
            r->image_index[r->n_images++] = i;
        }
    }
    for (int t = 0; t < s->n_texts; t++) {
        int e = set2eval[s->txt2img[t]];
        if (e < 0) {
            r->n_failed_texts++;
            continue;
        }
        const char *txt = s->texts[t];
        char *pt = r->text_process == GZ_EVAL_TEXT_BLIP ? gz_eval_blip_caption(txt, p->max_words)
                                                        : strdup(txt);
        if (!pt) {
            st = GZ_FAIL(GZ_ENOMEM, "evaluation: out of memory");
            goto out;
        }
        r->text_index[r->n_texts] = t;
        r->txt2img[r->n_texts] = e;
        r->processed_texts[r->n_texts++] = pt;
    }
    if (r->n_images == 0)
        st = GZ_FAIL(GZ_EINVAL, "%s: no image could be decoded (%d failed)", s->file,
                     r->n_failed_images);
out:
    free(set2eval);
    return st;
}

/* Texts phase: encode the processed captions into w->txt_emb (T, E), text_batch at a time. */
static gz_status run_texts(gz_model *m, const gz_eval_params *p, run_state *w, gz_eval_result *r) {
    const int T = r->n_texts, E = w->E;
    const double t1 = gz_monotonic_seconds();
    w->txt_emb = gz_malloc_n((size_t)T * E, sizeof *w->txt_emb, "evaluation");
    if (!w->txt_emb) return GZ_FAIL(GZ_ENOMEM, "evaluation: out of memory");
    progress(p, "texts", 0, T);
    for (int t0 = 0; t0 < T; t0 += p->text_batch) {
        int n = T - t0 < p->text_batch ? T - t0 : p->text_batch;
        gz_status st = gz_encode_texts(m, (const char *const *)r->processed_texts + t0, n,
                                       w->txt_emb + (size_t)t0 * E);
        if (st != GZ_OK) return st;
        progress(p, "texts", t0 + n, T);
    }
    r->t_texts = gz_monotonic_seconds() - t1;
    return GZ_OK;
}

/* Rank phase: the ITC matrix (I, T) = images (I, E) . texts (T, E)^T, ranks and recall. */
static gz_status run_rank(run_state *w, gz_eval_result *r) {
    const int I = r->n_images, T = r->n_texts, E = w->E;
    const double t2 = gz_monotonic_seconds();
    r->i2t_itc = gz_malloc_n((size_t)I * T, sizeof *r->i2t_itc, "evaluation");
    r->txt_rank_itc = gz_malloc_n((size_t)I, sizeof(int), "evaluation");
    r->txt_top_itc = gz_malloc_n((size_t)I, sizeof(int), "evaluation");
    r->img_rank_itc = gz_malloc_n((size_t)T, sizeof(int), "evaluation");
    r->img_top_itc = gz_malloc_n((size_t)T, sizeof(int), "evaluation");
    if (!r->i2t_itc || !r->txt_rank_itc || !r->txt_top_itc || !r->img_rank_itc || !r->img_top_itc)
        return GZ_FAIL(GZ_ENOMEM, "evaluation: out of memory for the %d x %d score matrix", I, T);
    gz_sgemm(0, 1, I, T, E, 1.0f, w->img_emb, E, w->txt_emb, E, 0.0f, r->i2t_itc, T);
    rank_out ro = {r->txt_rank_itc, r->img_rank_itc, r->txt_top_itc, r->img_top_itc, 0, 0};
    gz_status st =
        compute_ranks(r->i2t_itc, NULL, I, T, r->txt2img, NULL, NULL, 0, NULL, NULL, 0, &ro);
    if (st != GZ_OK) return st;
    r->n_tied_txt_itc = ro.n_tied_txt;
    r->n_tied_img_itc = ro.n_tied_img;
    gz_eval_recall_from_ranks(r->txt_rank_itc, I, r->img_rank_itc, T, &r->itc);
    r->final = &r->itc;
    r->t_rank = gz_monotonic_seconds() - t2;
    return GZ_OK;
}

/* Re-rank phase: BLIP ITM re-rank of the ITC top-k in both directions, ranks and recall. */
static gz_status run_rerank(gz_model *m, const gz_eval_set *s, const gz_eval_params *p,
                            run_state *w, gz_eval_result *r) {
    const int I = r->n_images, T = r->n_texts;
    const double t3 = gz_monotonic_seconds();
    const int k1 = p->rerank_k < T ? p->rerank_k : T, k2 = p->rerank_k < I ? p->rerank_k : I;
    w->k1 = k1;
    w->k2 = k2;
    r->rerank_k = p->rerank_k;
    w->i2t_top = gz_malloc_n((size_t)I * k1, sizeof *w->i2t_top, "re-rank");
    w->i2t_s = gz_malloc_n((size_t)I * k1, sizeof *w->i2t_s, "re-rank");
    w->t2i_top = gz_malloc_n((size_t)T * k2, sizeof *w->t2i_top, "re-rank");
    w->t2i_s = gz_malloc_n((size_t)T * k2, sizeof *w->t2i_s, "re-rank");
    r->txt_rank_rerank = gz_malloc_n((size_t)I, sizeof(int), "re-rank");
    r->txt_top_rerank = gz_malloc_n((size_t)I, sizeof(int), "re-rank");
    r->img_rank_rerank = gz_malloc_n((size_t)T, sizeof(int), "re-rank");
    r->img_top_rerank = gz_malloc_n((size_t)T, sizeof(int), "re-rank");
    if (!w->i2t_top || !w->i2t_s || !w->t2i_top || !w->t2i_s || !r->txt_rank_rerank ||
        !r->txt_top_rerank || !r->img_rank_rerank || !r->img_top_rerank)
        return GZ_FAIL(GZ_ENOMEM, "re-rank: out of memory");
    for (int i = 0; i < I; i++)
        top_k(r->i2t_itc + (size_t)i * T, 1, T, k1, w->i2t_top + (size_t)i * k1);
    for (int t = 0; t < T; t++)
        top_k(r->i2t_itc + t, (size_t)T, I, k2, w->t2i_top + (size_t)t * k2);
    gz_status st = rerank_scores(m, s, p, r, w->i2t_top, w->i2t_s, k1, w->t2i_top, w->t2i_s, k2);
    if (st != GZ_OK) return st;
    rank_out rr = {
        r->txt_rank_rerank, r->img_rank_rerank, r->txt_top_rerank, r->img_top_rerank, 0, 0};
    st = compute_ranks(r->i2t_itc, NULL, I, T, r->txt2img, w->i2t_top, w->i2t_s, k1, w->t2i_top,
                       w->t2i_s, k2, &rr);
    if (st != GZ_OK) return st;
    r->n_tied_txt_rerank = rr.n_tied_txt;
    r->n_tied_img_rerank = rr.n_tied_img;
    gz_eval_recall_from_ranks(r->txt_rank_rerank, I, r->img_rank_rerank, T, &r->rerank);
    r->final = &r->rerank;
    r->t_rerank = gz_monotonic_seconds() - t3;
    return GZ_OK;
}

/* The phases in order; on error r holds what was filled so far (gz_eval_run frees it). */
static gz_status run_inner(gz_model *m, const gz_eval_set *s, const gz_eval_params *p,
                           gz_eval_result *r) {
    const double t0 = gz_monotonic_seconds();
    run_state w;
    memset(&w, 0, sizeof w);
    w.E = gz_model_dim(m);
    gz_status st = run_images(m, s, p, &w, r);
    if (st == GZ_OK) {
        r->t_images = gz_monotonic_seconds() - t0;
        st = keep_decoded(s, p, &w, r);
    }
    if (st == GZ_OK) st = run_texts(m, p, &w, r);
    if (st == GZ_OK) st = run_rank(&w, r);
    if (st == GZ_OK && p->rerank_k > 0) st = run_rerank(m, s, p, &w, r);
    run_state_free(&w);
    r->t_total = gz_monotonic_seconds() - t0;
    return st;
}

gz_status gz_eval_run(gz_model *m, const gz_eval_set *s, const gz_eval_params *params,
                      gz_eval_result *out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "gz_eval_run: out is NULL");
    memset(out, 0, sizeof *out);
    if (!m || !s) return GZ_FAIL(GZ_EINVAL, "gz_eval_run: no model or set");
    gz_eval_params p = params ? *params : gz_eval_default_params();
    if (p.image_batch <= 0) p.image_batch = EVAL_DEFAULT_IMAGE_BATCH;
    if (p.text_batch <= 0) p.text_batch = EVAL_DEFAULT_TEXT_BATCH;
    if (p.image_batch > EVAL_MAX_BATCH || p.text_batch > EVAL_MAX_BATCH)
        return GZ_FAIL(GZ_EINVAL, "evaluation: batch sizes above %d", EVAL_MAX_BATCH);
    if (p.rerank_k < 0) return GZ_FAIL(GZ_EINVAL, "evaluation: negative re-rank depth");
    if (p.rerank_k > 0 && !gz_model_has_itm(m))
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "re-ranking needs a model with an image-text matching head (BLIP); this is "
                       "a %s model, which only has ITC embeddings",
                       gz_family_name(gz_model_family(m)));
    if (p.text_process != GZ_EVAL_TEXT_AUTO && p.text_process != GZ_EVAL_TEXT_NONE &&
        p.text_process != GZ_EVAL_TEXT_BLIP)
        return GZ_FAIL(GZ_EINVAL, "evaluation: unknown text processing %d", (int)p.text_process);
    if (p.text_process == GZ_EVAL_TEXT_AUTO)
        p.text_process =
            gz_model_family(m) == GZ_FAMILY_BLIP ? GZ_EVAL_TEXT_BLIP : GZ_EVAL_TEXT_NONE;
    if (p.max_words <= 0) p.max_words = EVAL_DEFAULT_MAX_WORDS;
    out->text_process = p.text_process;
    gz_status st = run_inner(m, s, &p, out);
    if (st != GZ_OK) gz_eval_result_free(out);
    return st;
}
