/* engine_texts.c - record files (JSONL, CSV per RFC 4180, TSV) and `gaze add-texts`:
 * import captions / product records as text items, optionally linked to image items. */
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"
#include "gaze.h"
#include "engine/engine_internal.h"

#define MAX_RECORD_FILE ((size_t)4 << 30) /* refuse record files above 4 GiB */
#define ROW_ERR_MAX 512

struct gz_records {
    char *path;
    char *buf; /* whole file, NUL-terminated */
    size_t len, pos;
    long line; /* line number at pos (1-based) */
    gz_rec_format fmt;
    char **header; /* CSV/TSV field names */
    int n_header;
    char **names, **values; /* current record (owned) */
    int n_fields, cap;
    char err[ROW_ERR_MAX]; /* reason of the last malformed row */
};

static int utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int len;
        unsigned cp, min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0)
            len = 2, min = 0x80, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            len = 3, min = 0x800, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            len = 4, min = 0x10000, cp = c & 0x07;
        else
            return 0;
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        p += len;
    }
    return 1;
}

static void clear_record(gz_records *r) {
    for (int i = 0; i < r->n_fields; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    r->n_fields = 0;
}

static int add_field(gz_records *r, const char *name, const char *value, size_t vlen) {
    if (r->n_fields == r->cap) {
        int cap = r->cap ? r->cap * 2 : 16;
        char **n = realloc(r->names, (size_t)cap * sizeof *n);
        if (!n) return -1;
        r->names = n;
        char **v = realloc(r->values, (size_t)cap * sizeof *v);
        if (!v) return -1;
        r->values = v;
        r->cap = cap;
    }
    char *nm = strdup(name);
    char *val = value ? strndup(value, vlen) : NULL;
    if (!nm || (value && !val)) {
        free(nm);
        free(val);
        return -1;
    }
    r->names[r->n_fields] = nm;
    r->values[r->n_fields] = val;
    r->n_fields++;
    return 0;
}

static int row_error(gz_records *r, long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int row_error(gz_records *r, long line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    clear_record(r);
    return GZ_FAIL(GZ_EINVAL, "%s:%ld: %s", r->path, line, r->err);
}

/* Split one CSV record at r->pos into cells (RFC 4180: quotes, "" escapes, newlines inside
 * quotes). Returns number of cells (>= 0) or -1 for an unterminated quote, -2 for a
 * character after a closing quote, -3 out of memory. cells/lens are malloc'd arrays. */
static int csv_split(gz_records *r, char sep, int quoting, char ***cells_out) {
    char **cells = NULL;
    int n = 0, cap = 0;
    size_t p = r->pos;
    const char *b = r->buf;
    int rc = 0;
    for (;;) {
        char *cell = NULL;
        size_t cl = 0, ccap = 0;
#define PUTC(ch)                                                                                   \
    do {                                                                                           \
        if (cl + 2 > ccap) {                                                                       \
            ccap = ccap ? ccap * 2 : 32;                                                           \
            char *nc = realloc(cell, ccap);                                                        \
            if (!nc) {                                                                             \
                rc = -3;                                                                           \
                goto fail;                                                                         \
            }                                                                                      \
            cell = nc;                                                                             \
        }                                                                                          \
        cell[cl++] = (ch);                                                                         \
    } while (0)
        if (quoting && b[p] == '"') {
            p++;
            for (;;) {
                if (p >= r->len) {
                    rc = -1;
                    goto fail;
                }
                if (b[p] == '"') {
                    if (b[p + 1] == '"') {
                        PUTC('"');
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (b[p] == '\n') r->line++;
                PUTC(b[p]);
                p++;
            }
            if (b[p] == '\r' && b[p + 1] == '\n') p++;
            if (p < r->len && b[p] != sep && b[p] != '\n') {
                rc = -2;
                goto fail;
            }
        } else {
            while (p < r->len && b[p] != sep && b[p] != '\n') {
                if (!(b[p] == '\r' && (p + 1 >= r->len || b[p + 1] == '\n'))) PUTC(b[p]);
                p++;
            }
        }
        PUTC('\0');
        cl--;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nc = realloc(cells, (size_t)cap * sizeof *nc);
            if (!nc) {
                rc = -3;
                goto fail;
            }
            cells = nc;
        }
        cells[n++] = cell;
        cell = NULL;
        if (p < r->len && b[p] == sep) {
            p++;
            continue;
        }
        if (p < r->len && b[p] == '\n') p++;
        break;
    fail:
        free(cell);
        break;
#undef PUTC
    }
    if (rc < 0) {
        for (int i = 0; i < n; i++)
            free(cells[i]);
        free(cells);
        /* resynchronise at the line after the record's first line */
        const char *nl = memchr(b + r->pos, '\n', r->len - r->pos);
        r->pos = nl ? (size_t)(nl - b) + 1 : r->len;
        return rc;
    }
    r->pos = p;
    *cells_out = cells;
    return n;
}

static void free_cells(char **c, int n) {
    for (int i = 0; i < n; i++)
        free(c[i]);
    free(c);
}

static int is_blank_line(const gz_records *r) {
    size_t p = r->pos;
    while (p < r->len && (r->buf[p] == ' ' || r->buf[p] == '\t' || r->buf[p] == '\r'))
        p++;
    return p >= r->len || r->buf[p] == '\n';
}

static void skip_line(gz_records *r) {
    const char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
    r->pos = nl ? (size_t)(nl - r->buf) + 1 : r->len;
    r->line++;
}

gz_status gz_records_open(const char *path, gz_rec_format fmt, gz_records **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return GZ_FAIL(errno == ENOENT ? GZ_ENOTFOUND : GZ_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || (size_t)sb.st_size > MAX_RECORD_FILE) {
        fclose(f);
        return GZ_FAIL(GZ_EINVAL, "%s: unreadable or larger than 4 GiB", path);
    }
    gz_records *r = calloc(1, sizeof *r);
    if (r) r->buf = malloc((size_t)sb.st_size + 2);
    if (r) r->path = strdup(path);
    if (!r || !r->buf || !r->path) {
        fclose(f);
        gz_records_close(r);
        return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    }
    r->len = fread(r->buf, 1, (size_t)sb.st_size, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        gz_records_close(r);
        return GZ_FAIL(GZ_EIO, "%s: read error", path);
    }
    r->buf[r->len] = '\0';
    r->buf[r->len + 1] = '\0';
    r->line = 1;
    if (r->len >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0) r->pos = 3; /* UTF-8 BOM */
    if (fmt == GZ_REC_AUTO) {
        const char *dot = strrchr(path, '.');
        if (dot && (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".ndjson") ||
                    !strcasecmp(dot, ".json")))
            fmt = GZ_REC_JSONL;
        else if (dot && !strcasecmp(dot, ".csv"))
            fmt = GZ_REC_CSV;
        else if (dot && (!strcasecmp(dot, ".tsv") || !strcasecmp(dot, ".tab")))
            fmt = GZ_REC_TSV;
        else {
            size_t p = r->pos;
            while (p < r->len && (r->buf[p] == ' ' || r->buf[p] == '\n' || r->buf[p] == '\r'))
                p++;
            const char *nl = memchr(r->buf + p, '\n', r->len - p);
            size_t e = nl ? (size_t)(nl - r->buf) : r->len;
            if (p < r->len && r->buf[p] == '{')
                fmt = GZ_REC_JSONL;
            else if (memchr(r->buf + p, '\t', e - p))
                fmt = GZ_REC_TSV;
            else
                fmt = GZ_REC_CSV;
        }
    }
    r->fmt = fmt;
    if (fmt == GZ_REC_CSV || fmt == GZ_REC_TSV) {
        while (r->pos < r->len && is_blank_line(r))
            skip_line(r);
        long hl = r->line;
        char **cells = NULL;
        int n = csv_split(r, fmt == GZ_REC_CSV ? ',' : '\t', fmt == GZ_REC_CSV, &cells);
        r->line++;
        if (n <= 0) {
            gz_records_close(r);
            return GZ_FAIL(GZ_EINVAL, "%s:%ld: cannot read the header row (field names)", path, hl);
        }
        for (int i = 0; i < n; i++) {
            /* trim spaces around names */
            char *s = cells[i];
            while (*s == ' ')
                memmove(s, s + 1, strlen(s));
            size_t l = strlen(s);
            while (l && s[l - 1] == ' ')
                s[--l] = '\0';
        }
        r->header = cells;
        r->n_header = n;
    }
    *out = r;
    return GZ_OK;
}

gz_rec_format gz_records_format(const gz_records *r) { return r->fmt; }

static int next_jsonl(gz_records *r, long *line) {
    while (r->pos < r->len && is_blank_line(r))
        skip_line(r);
    if (r->pos >= r->len) return 0;
    *line = r->line;
    const char *s = r->buf + r->pos;
    const char *nl = memchr(s, '\n', r->len - r->pos);
    size_t l = nl ? (size_t)(nl - s) : r->len - r->pos;
    skip_line(r);
    json_error_t je;
    json_t *o = json_loadb(s, l, JSON_REJECT_DUPLICATES, &je);
    if (!o) return row_error(r, *line, "invalid JSON: %s", je.text);
    if (!json_is_object(o)) {
        json_decref(o);
        return row_error(r, *line, "not a JSON object");
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        char num[64];
        const char *val = NULL;
        char *dumped = NULL;
        size_t vl = 0;
        if (json_is_string(v)) {
            val = json_string_value(v);
            vl = json_string_length(v);
            if (memchr(val, '\0', vl)) {
                json_decref(o);
                return row_error(r, *line, "field '%s' contains a NUL character", key);
            }
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            val = num, vl = strlen(num);
        } else if (json_is_real(v)) {
            snprintf(num, sizeof num, "%.17g", json_real_value(v));
            val = num, vl = strlen(num);
        } else if (json_is_boolean(v)) {
            val = json_is_true(v) ? "true" : "false", vl = strlen(val);
        } else if (json_is_null(v)) {
            val = NULL;
        } else {
            dumped = json_dumps(v, JSON_COMPACT);
            val = dumped, vl = dumped ? strlen(dumped) : 0;
        }
        int rc = add_field(r, key, val, vl);
        free(dumped);
        if (rc) {
            json_decref(o);
            return row_error(r, *line, "out of memory");
        }
    }
    json_decref(o);
    return 1;
}

static int next_table(gz_records *r, long *line) {
    while (r->pos < r->len && is_blank_line(r))
        skip_line(r);
    if (r->pos >= r->len) return 0;
    *line = r->line;
    char **cells = NULL;
    int n = csv_split(r, r->fmt == GZ_REC_CSV ? ',' : '\t', r->fmt == GZ_REC_CSV, &cells);
    r->line++;
    if (n == -1) {
        r->line = *line + 1;
        return row_error(r, *line, "unterminated quoted field");
    }
    if (n == -2) {
        r->line = *line + 1;
        return row_error(r, *line, "text after a closing quote");
    }
    if (n < 0) return row_error(r, *line, "out of memory");
    if (n != r->n_header) {
        free_cells(cells, n);
        return row_error(r, *line, "expected %d fields (as the header), got %d", r->n_header, n);
    }
    for (int i = 0; i < n; i++) {
        if (!utf8_valid(cells[i])) {
            free_cells(cells, n);
            return row_error(r, *line, "field '%s' is not valid UTF-8", r->header[i]);
        }
        if (add_field(r, r->header[i], cells[i], strlen(cells[i]))) {
            free_cells(cells, n);
            return row_error(r, *line, "out of memory");
        }
    }
    free_cells(cells, n);
    return 1;
}

int gz_records_next(gz_records *r, long *line) {
    clear_record(r);
    r->err[0] = '\0';
    long dummy;
    if (!line) line = &dummy;
    return r->fmt == GZ_REC_JSONL ? next_jsonl(r, line) : next_table(r, line);
}

const char *gz_records_get(gz_records *r, const char *field) {
    for (int i = 0; i < r->n_fields; i++)
        if (strcmp(r->names[i], field) == 0) return r->values[i];
    return NULL;
}

void gz_records_close(gz_records *r) {
    if (!r) return;
    clear_record(r);
    free(r->names);
    free(r->values);
    if (r->header) free_cells(r->header, r->n_header);
    free(r->buf);
    free(r->path);
    free(r);
}

/* ---- add-texts ---- */

gz_texts_opts gz_texts_default_opts(void) {
    gz_texts_opts o;
    memset(&o, 0, sizeof o);
    o.id_field = "id";
    o.text_field = "text";
    o.batch_size = 32;
    return o;
}

typedef struct {
    char *ext_id, *text, *meta;
    int64_t link;
} pending;

/* The text of a record: the named fields (comma-separated list) joined with ". ". The first
 * absent or empty field's name goes to missing (missing[0] = 0 if none). */
static char *record_text(gz_records *r, const char *fields, char missing[128]) {
    size_t cap = 64, n = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[0] = '\0';
    const char *f = fields;
    missing[0] = '\0';
    while (*f) {
        const char *c = strchr(f, ',');
        size_t fl = c ? (size_t)(c - f) : strlen(f);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(fl < 127 ? fl : 127), f);
        const char *v = gz_records_get(r, name);
        if (v && *v) {
            size_t vl = strlen(v);
            if (n + vl + 3 > cap) {
                while (n + vl + 3 > cap)
                    cap *= 2;
                char *no = realloc(out, cap);
                if (!no) {
                    free(out);
                    return NULL;
                }
                out = no;
            }
            if (n) memcpy(out + n, ". ", 2), n += 2;
            memcpy(out + n, v, vl);
            n += vl;
            out[n] = '\0';
        } else if (!missing[0]) {
            snprintf(missing, 128, "%s", name);
        }
        f += fl;
        if (*f == ',') f++;
    }
    return out;
}

static char *record_meta(gz_records *r) {
    json_t *o = json_object();
    if (!o) return NULL;
    for (int i = 0; i < r->n_fields; i++)
        json_object_set_new(o, r->names[i], r->values[i] ? json_string(r->values[i]) : json_null());
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static void free_pending(pending *p, int n) {
    for (int i = 0; i < n; i++) {
        free(p[i].ext_id);
        free(p[i].text);
        free(p[i].meta);
    }
}

static gz_status flush_texts(gz_engine *e, const char *abs, pending *p, int n, float *vecs,
                             gz_texts_stats *s) {
    if (n == 0) return GZ_OK;
    int dim = gz_model_dim(e->model);
    const char **texts = malloc((size_t)n * sizeof *texts);
    if (!texts) return GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
    for (int i = 0; i < n; i++)
        texts[i] = p[i].text;
    gz_status st = gz_encode_texts(e->model, texts, n, vecs);
    free(texts);
    if (st == GZ_OK) st = gz_db_begin(e->db);
    if (st != GZ_OK) return st;
    for (int i = 0; i < n && st == GZ_OK; i++) {
        gz_item it;
        memset(&it, 0, sizeof it);
        it.kind = GZ_ITEM_TEXT;
        it.path = abs;
        it.path_len = strlen(abs);
        it.ext_id = p[i].ext_id;
        it.text = p[i].text;
        it.meta_json = p[i].meta;
        it.link_item_id = p[i].link;
        it.status = GZ_ITEM_OK;
        st = gz_db_upsert_item(e->db, &it);
        if (st == GZ_OK)
            st = gz_db_put_embedding(e->db, it.id, e->model_id, vecs + (size_t)i * dim, dim);
        if (st == GZ_OK) {
            s->added++;
            if (p[i].link) s->linked++;
        }
    }
    if (st == GZ_OK)
        st = gz_db_commit(e->db);
    else
        gz_db_rollback(e->db);
    return st;
}

static void report_row(const gz_texts_opts *o, const char *file, long line, const char *msg,
                       gz_texts_stats *s) {
    s->failed++;
    if (o->row_error) o->row_error(o->user, file, line, msg);
}

gz_status gz_engine_add_texts(gz_engine *e, const char *file, const gz_texts_opts *o,
                              gz_texts_stats *stats) {
    gz_texts_opts defaults = gz_texts_default_opts();
    if (!o) o = &defaults;
    gz_texts_stats s;
    memset(&s, 0, sizeof s);
    if (stats) *stats = s;
    gz_status st = gz_engine_model(e, NULL, NULL);
    if (st != GZ_OK) return st;
    char abs[PATH_MAX];
    if (!realpath(file, abs))
        return GZ_FAIL(errno == ENOENT ? GZ_ENOTFOUND : GZ_EIO, "%s: %s", file, strerror(errno));
    char dirbuf[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", abs);
    const char *dir = dirname(dirbuf);
    gz_records *r = NULL;
    st = gz_records_open(file, o->format, &r);
    if (st != GZ_OK) return st;
    const char *id_field = o->id_field ? o->id_field : "id";
    const char *text_field = o->text_field ? o->text_field : "text";
    int bs = o->batch_size > 0 ? o->batch_size : 32;
    int dim = gz_model_dim(e->model);
    pending *p = calloc((size_t)bs, sizeof *p);
    float *vecs = malloc((size_t)bs * (size_t)dim * sizeof *vecs);
    if (!p || !vecs) st = GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
    int np = 0;
    while (st == GZ_OK) {
        long line = 0;
        int rc = gz_records_next(r, &line);
        if (rc == 0) break;
        s.rows++;
        if (rc < 0) {
            report_row(o, file, line, r->err, &s);
            continue;
        }
        char missing[128];
        char *text = record_text(r, text_field, missing);
        if (!text) {
            st = GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
            break;
        }
        if (!text[0]) {
            char msg[256];
            snprintf(msg, sizeof msg, "no text: field '%s' is missing or empty",
                     missing[0] ? missing : text_field);
            report_row(o, file, line, msg, &s);
            free(text);
            continue;
        }
        if (!utf8_valid(text)) {
            report_row(o, file, line, "text is not valid UTF-8", &s);
            free(text);
            continue;
        }
        char idbuf[32];
        const char *id = gz_records_get(r, id_field);
        if (!id || !*id) {
            snprintf(idbuf, sizeof idbuf, "line:%ld", line);
            id = idbuf;
        }
        int64_t link = 0;
        if (o->image_field) {
            const char *img = gz_records_get(r, o->image_field);
            if (img && *img) {
                char joined[PATH_MAX * 2], ipath[PATH_MAX];
                if (img[0] == '/')
                    snprintf(joined, sizeof joined, "%s", img);
                else
                    snprintf(joined, sizeof joined, "%s/%s", dir, img);
                if (!realpath(joined, ipath)) {
                    char msg[PATH_MAX + 64];
                    snprintf(msg, sizeof msg, "image '%s': %s", img, strerror(errno));
                    report_row(o, file, line, msg, &s);
                    free(text);
                    continue;
                }
                gz_item li;
                memset(&li, 0, sizeof li);
                gz_status ls =
                    gz_db_find_by_path(e->db, GZ_ITEM_IMAGE, ipath, strlen(ipath), NULL, &li);
                int ready = ls == GZ_OK && li.status == GZ_ITEM_OK &&
                            gz_db_get_embedding(e->db, li.id, e->model_id, NULL, 0) == GZ_OK;
                if (ready) link = li.id;
                gz_item_clear(&li);
                if (ls != GZ_OK && ls != GZ_ENOTFOUND) {
                    free(text);
                    st = ls;
                    break;
                }
                if (!ready && gz_engine_index_one(e, ipath, &link) != GZ_OK) {
                    char msg[ROW_ERR_MAX + 64];
                    snprintf(msg, sizeof msg, "image '%s': %s", img, gz_last_error());
                    report_row(o, file, line, msg, &s);
                    free(text);
                    continue;
                }
            }
        }
        /* Unchanged: same text and link, already embedded. */
        gz_item old;
        memset(&old, 0, sizeof old);
        if (gz_db_find_by_path(e->db, GZ_ITEM_TEXT, abs, strlen(abs), id, &old) == GZ_OK) {
            int same = old.text && strcmp(old.text, text) == 0 && old.link_item_id == link &&
                       old.status == GZ_ITEM_OK &&
                       gz_db_get_embedding(e->db, old.id, e->model_id, NULL, 0) == GZ_OK;
            gz_item_clear(&old);
            if (same) {
                s.unchanged++;
                free(text);
                continue;
            }
        }
        gz_clear_error();
        p[np].ext_id = strdup(id);
        p[np].text = text;
        p[np].meta = record_meta(r);
        p[np].link = link;
        if (!p[np].ext_id) {
            np++;
            st = GZ_FAIL(GZ_ENOMEM, "add-texts: out of memory");
            break;
        }
        np++;
        if (np == bs) {
            st = flush_texts(e, abs, p, np, vecs, &s);
            free_pending(p, np);
            np = 0;
        }
    }
    if (st == GZ_OK) st = flush_texts(e, abs, p, np, vecs, &s);
    if (p) free_pending(p, np);
    free(p);
    free(vecs);
    gz_records_close(r);
    if (stats) *stats = s;
    return st;
}
