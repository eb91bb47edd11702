/* records.c - record files: JSONL, CSV (RFC 4180) and TSV readers (gz_records_*), one record
 * at a time as (field name, string value) pairs. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/fileio.h"
#include "engine/engine_internal.h"
#include "gaze.h"

#define MAX_RECORD_FILE ((size_t)4 << 30) /* refuse record files above 4 GiB */
/* Fields of a CSV/TSV header row. Each kept cell costs an allocation, so a row is never split
 * into more cells than this (or than the header has): 20 MB of commas cost 1.1 GB before. */
#define MAX_FIELDS 4096

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
    char err[GZ_RECORDS_ERR_MAX]; /* reason of the last malformed row */
};

int gz_utf8_valid(const char *s) {
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
 * character after a closing quote, -3 out of memory, -4 a NUL byte in a cell (its index in
 * *nul_cell). Only the first max_cells cells are kept in *cells_out (malloc'd); the rest are
 * parsed to find the record's end and counted (the count is returned, capped at INT_MAX). */
static int csv_split(gz_records *r, char sep, int quoting, int max_cells, char ***cells_out,
                     int *nul_cell) {
    char **cells = NULL;
    int n = 0, cap = 0, n_all = 0;
    *nul_cell = -1;
    size_t p = r->pos;
    const char *b = r->buf;
    int rc = 0;
    for (;;) {
        char *cell = NULL;
        size_t cl = 0, ccap = 0;
        int keep = n < max_cells;
#define PUTC(ch)                                                                                   \
    do {                                                                                           \
        if (!keep) break;                                                                          \
        if ((ch) == '\0' && *nul_cell < 0) *nul_cell = n;                                          \
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
        if (n_all < INT_MAX) n_all++;
        if (!keep) goto next_cell;
        if (cl + 1 > ccap) { /* the terminator (a NUL in the text was noted by PUTC) */
            char *nc = realloc(cell, cl + 1);
            if (!nc) {
                rc = -3;
                goto fail;
            }
            cell = nc;
        }
        cell[cl] = '\0';
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
    next_cell:
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
    if (rc == 0 && *nul_cell >= 0) rc = -4;
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
    return n_all;
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
    FILE *f = gz_fopen_regular(path); /* a FIFO does not hang the read */
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
        int nul_cell;
        int n = csv_split(r, fmt == GZ_REC_CSV ? ',' : '\t', fmt == GZ_REC_CSV, MAX_FIELDS, &cells,
                          &nul_cell);
        r->line++;
        if (n > MAX_FIELDS) {
            free_cells(cells, MAX_FIELDS);
            gz_records_close(r);
            return GZ_FAIL(GZ_EINVAL, "%s:%ld: the header row has %d fields, more than %d", path,
                           hl, n, MAX_FIELDS);
        }
        if (n <= 0) {
            gz_records_close(r);
            return GZ_FAIL(GZ_EINVAL, "%s:%ld: cannot read the header row (field names)%s", path,
                           hl, n == -4 ? ": a NUL byte in a name" : "");
        }
        for (int i = 0; i < n; i++) {
            /* trim spaces around names */
            char *s = cells[i];
            size_t lead = strspn(s, " "); /* one move: a move per space was O(n^2) */
            if (lead) memmove(s, s + lead, strlen(s + lead) + 1);
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
    int nul_cell;
    int n = csv_split(r, r->fmt == GZ_REC_CSV ? ',' : '\t', r->fmt == GZ_REC_CSV, r->n_header,
                      &cells, &nul_cell);
    r->line++;
    if (n == -1) {
        r->line = *line + 1;
        return row_error(r, *line, "unterminated quoted field");
    }
    if (n == -2) {
        r->line = *line + 1;
        return row_error(r, *line, "text after a closing quote");
    }
    if (n == -4) {
        r->line = *line + 1;
        return row_error(r, *line, "field '%s' contains a NUL character",
                         nul_cell < r->n_header ? r->header[nul_cell] : "?");
    }
    if (n < 0) return row_error(r, *line, "out of memory");
    if (n != r->n_header) {
        free_cells(cells, n < r->n_header ? n : r->n_header);
        return row_error(r, *line, "expected %d fields (as the header), got %d", r->n_header, n);
    }
    for (int i = 0; i < n; i++) {
        if (!gz_utf8_valid(cells[i])) {
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

const char *gz_records_error(const gz_records *r) { return r->err; }

char *gz_records_meta_json(const gz_records *r) {
    json_t *o = json_object();
    if (!o) return NULL;
    for (int i = 0; i < r->n_fields; i++)
        json_object_set_new(o, r->names[i], r->values[i] ? json_string(r->values[i]) : json_null());
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

void gz_records_field_names(const gz_records *r, char *out, size_t cap) {
    size_t n = 0;
    if (cap) out[0] = '\0';
    for (int i = 0; i < r->n_fields && n + 1 < cap; i++) {
        int w = snprintf(out + n, cap - n, "%s%s", i ? ", " : "", r->names[i]);
        if (w < 0) break;
        n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
    }
}
