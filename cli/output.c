/* output.c - output formats of the gaze command: JSON values, aligned tables, base64,
 * HTML escaping and the JPEG thumbnails embedded in --html galleries. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <utf8proc.h>

#include "cli/cli.h"

/* Decode one UTF-8 sequence at s (n bytes left). Returns its length (1..4) and sets *cp,
 * or 0 when the bytes are not valid UTF-8 (overlong, surrogate, out of range, truncated). */
static int utf8_decode(const unsigned char *s, size_t n, unsigned *cp) {
    unsigned c = s[0];
    int len;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, c &= 0x07;
    } else
        return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

void out_json_str(FILE *f, const char *s) {
    fputc('"', f);
    if (!s) s = "";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        unsigned cp;
        int len = utf8_decode(p, n, &cp);
        if (len == 0) {
            fputs("\\ufffd", f); /* invalid byte: replacement character */
            p++, n--;
            continue;
        }
        switch (cp) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (cp < 0x20 || cp == 0x7F)
                fprintf(f, "\\u%04x", cp);
            else
                fwrite(p, 1, (size_t)len, f);
        }
        p += len, n -= (size_t)len;
    }
    fputc('"', f);
}

void out_json_float(FILE *f, double v) {
    if (!isfinite(v))
        fputs("null", f);
    else
        fprintf(f, "%.9g", v);
}

void out_json_floats(FILE *f, const float *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', f);
        out_json_float(f, v[i]);
    }
    fputc(']', f);
}

int out_display_width(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    int w = 0;
    while (n) {
        unsigned cp;
        int len = utf8_decode(p, n, &cp);
        if (len == 0) len = 1, cp = '?';
        /* utf8proc knows Unicode's East Asian widths and zero-width marks; a control
         * character (-1 there) is shown escaped, so it never reaches here in a table */
        int cw = utf8proc_charwidth((utf8proc_int32_t)cp);
        w += cw > 0 ? cw : 0;
        p += len, n -= (size_t)len;
    }
    return w;
}

char *out_term_escape(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    if (n > (SIZE_MAX - 1) / 4) n = (SIZE_MAX - 1) / 4;
    char *out = malloc(n * 4 + 1); /* at most \xNN (4 bytes) per input byte */
    if (!out) {
        fputs("gaze: out of memory\n", stderr);
        exit(EXIT_FATAL);
    }
    const unsigned char *p = (const unsigned char *)s;
    char *o = out;
    while (n) {
        unsigned cp;
        int len = utf8_decode(p, n, &cp);
        /* C0 controls and DEL start escape sequences; C1 controls (U+0080..U+009F) are 8-bit
         * CSI/OSC to some terminals; a byte that is not UTF-8 may be one in a legacy locale */
        if (len == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
            unsigned b = len == 0 ? p[0] : cp;
            if (b == '\n')
                o += sprintf(o, "\\n");
            else if (b == '\t')
                o += sprintf(o, "\\t");
            else if (b == '\r')
                o += sprintf(o, "\\r");
            else if (len <= 1)
                o += sprintf(o, "\\x%02x", b);
            else
                o += sprintf(o, "\\u%04x", b); /* a C1 control encoded as UTF-8 */
            if (len == 0) len = 1;
        } else {
            memcpy(o, p, (size_t)len);
            o += len;
        }
        p += len, n -= (size_t)len;
    }
    *o = '\0';
    return out;
}

void out_term_puts(FILE *f, const char *s) {
    char *safe = out_term_escape(s);
    fputs(safe, f);
    free(safe);
}

void out_pad(FILE *f, const char *s, int width) {
    fputs(s, f);
    for (int w = out_display_width(s); w < width; w++)
        fputc(' ', f);
}

void out_table_init(out_table *t, int ncol, const char *const *header, const int *right_align) {
    memset(t, 0, sizeof *t);
    t->ncol = ncol;
    t->right = calloc((size_t)ncol, sizeof *t->right);
    if (!t->right) exit(EXIT_FATAL);
    for (int c = 0; c < ncol; c++)
        t->right[c] = right_align ? right_align[c] : 0;
    out_table_row(t, header);
}

void out_table_row(out_table *t, const char *const *cells) {
    if (t->nrow == t->cap) {
        int cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, (size_t)cap * (size_t)t->ncol * sizeof *c);
        if (!c) exit(EXIT_FATAL);
        t->cells = c;
        t->cap = cap;
    }
    for (int c = 0; c < t->ncol; c++)
        t->cells[(size_t)t->nrow * (size_t)t->ncol + (size_t)c] = out_term_escape(cells[c]);
    t->nrow++;
}

void out_table_print(const out_table *t, FILE *f) {
    int *w = calloc((size_t)t->ncol, sizeof *w);
    if (!w) exit(EXIT_FATAL);
    for (int r = 0; r < t->nrow; r++)
        for (int c = 0; c < t->ncol; c++) {
            int cw = out_display_width(t->cells[(size_t)r * (size_t)t->ncol + (size_t)c]);
            if (cw > w[c]) w[c] = cw;
        }
    for (int r = 0; r < t->nrow; r++) {
        for (int c = 0; c < t->ncol; c++) {
            const char *s = t->cells[(size_t)r * (size_t)t->ncol + (size_t)c];
            int last = c == t->ncol - 1;
            if (c) fputs("  ", f);
            if (t->right[c]) {
                for (int k = out_display_width(s); k < w[c]; k++)
                    fputc(' ', f);
                fputs(s, f);
            } else if (last)
                fputs(s, f);
            else
                out_pad(f, s, w[c]);
        }
        fputc('\n', f);
    }
    free(w);
}

void out_table_free(out_table *t) {
    for (size_t i = 0; i < (size_t)t->nrow * (size_t)t->ncol; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->right);
    memset(t, 0, sizeof *t);
}

char *out_base64(const uint8_t *data, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n > (SIZE_MAX - 4) / 4 * 3 - 3) return NULL;
    size_t outn = (n + 2) / 3 * 4;
    char *out = malloc(outn + 1);
    if (!out) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < n) v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < n) v |= data[i + 2];
        out[j++] = tab[(v >> 18) & 63];
        out[j++] = tab[(v >> 12) & 63];
        out[j++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[j++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[j] = '\0';
    return out;
}

/* JPEG quality of gallery thumbnails: small files, visually fine at 256 px. */
#define THUMB_JPEG_QUALITY 80

/* Encode an (h, w, 3) RGB image as JPEG into a malloc'd buffer (libjpeg's memory
 * destination). Returns 0 on success. libjpeg reports errors by exit() through its default
 * error manager only for programming errors (bad parameters); we pass valid ones. */
static int encode_jpeg(const uint8_t *rgb, int w, int h, unsigned char **out, unsigned long *n) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    *out = NULL;
    *n = 0;
    jpeg_mem_dest(&c, out, n);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, THUMB_JPEG_QUALITY, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return *out && *n ? 0 : -1;
}

int out_thumbnail(const char *path, int max_side, int exif_orient, gz_image *out) {
    gz_image_params ip = gz_image_default_params();
    ip.exif_orient = exif_orient;
    ip.min_size = max_side; /* allow DCT-scaled JPEG decoding: we only need a thumbnail */
    gz_image img;
    memset(&img, 0, sizeof img);
    memset(out, 0, sizeof *out);
    if (gz_image_load(path, &ip, &img) != GZ_OK) return -1;
    gz_status st = gz_image_thumbnail(&img, max_side, out);
    gz_image_free(&img);
    return st == GZ_OK ? 0 : -1;
}

int out_jpeg(const gz_image *img, unsigned char **jpg, unsigned long *n) {
    return encode_jpeg(img->rgb, img->width, img->height, jpg, n);
}

char *out_thumbnail_base64(const char *path, int max_side, int exif_orient) {
    gz_image small;
    if (out_thumbnail(path, max_side, exif_orient, &small) != 0) return NULL;
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    char *b64 = NULL;
    if (out_jpeg(&small, &jpg, &n) == 0) b64 = out_base64(jpg, n);
    free(jpg);
    gz_image_free(&small);
    return b64;
}

/* RFC 3986 unreserved characters and the path separator pass; every other byte is %XX, so
 * '#', '%', '?' and spaces in a file name stay part of the path. */
void out_file_url(FILE *f, const char *path) {
    static const char hex[] = "0123456789ABCDEF";
    fputs("file://", f);
    for (const unsigned char *p = (const unsigned char *)(path ? path : ""); *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p))
            fputc(*p, f);
        else
            fprintf(f, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
    }
}

void out_html_escape(FILE *f, const char *s) {
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*p, f);
        }
    }
}
