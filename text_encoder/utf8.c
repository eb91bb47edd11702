/* utf8.c - growable code-point and byte arrays, and UTF-8 decoding (Python's errors="replace")
 * and encoding. */
#include <stdlib.h>
#include <string.h>

#include "text_encoder/tok_internal.h"

/* ===== growable arrays ===== */

int gz_tok_cps_reserve(tk_cps *a, size_t cap) {
    if (cap <= a->cap) return 0;
    size_t nc = a->cap ? a->cap : 64;
    while (nc < cap) {
        if (nc > SIZE_MAX / 2 / sizeof(int32_t)) return -1;
        nc *= 2;
    }
    int32_t *v = realloc(a->v, nc * sizeof *v);
    if (!v) return -1;
    a->v = v;
    a->cap = nc;
    return 0;
}

int gz_tok_cps_push(tk_cps *a, int32_t c) {
    if (a->n == a->cap && gz_tok_cps_reserve(a, a->n + 1)) return -1;
    a->v[a->n++] = c;
    return 0;
}

int gz_tok_cps_append(tk_cps *a, const int32_t *src, size_t n) {
    if (n == 0) return 0;
    if (n > SIZE_MAX - a->n || gz_tok_cps_reserve(a, a->n + n)) return -1;
    memcpy(a->v + a->n, src, n * sizeof *src);
    a->n += n;
    return 0;
}

void gz_tok_cps_free(tk_cps *a) {
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

static int buf_reserve(tk_buf *b, size_t cap) {
    if (cap <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < cap) {
        if (nc > SIZE_MAX / 2) return -1;
        nc *= 2;
    }
    char *v = realloc(b->v, nc);
    if (!v) return -1;
    b->v = v;
    b->cap = nc;
    return 0;
}

int gz_tok_buf_append(tk_buf *b, const char *s, size_t n) {
    if (n > SIZE_MAX - b->n - 1 || buf_reserve(b, b->n + n + 1)) return -1;
    memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = 0;
    return 0;
}

void gz_tok_buf_free(tk_buf *b) {
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

/* ===== UTF-8 ===== */

int gz_tok_utf8_put(int32_t c, char *b) {
    uint32_t u = (uint32_t)c;
    if (u < 0x80) {
        b[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        b[0] = (char)(0xC0 | (u >> 6));
        b[1] = (char)(0x80 | (u & 0x3F));
        return 2;
    }
    if (u < 0x10000) {
        b[0] = (char)(0xE0 | (u >> 12));
        b[1] = (char)(0x80 | ((u >> 6) & 0x3F));
        b[2] = (char)(0x80 | (u & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | (u >> 18));
    b[1] = (char)(0x80 | ((u >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((u >> 6) & 0x3F));
    b[3] = (char)(0x80 | (u & 0x3F));
    return 4;
}

int gz_tok_utf8_encode(const int32_t *c, size_t n, tk_buf *out) {
    if (n > (SIZE_MAX - out->n - 1) / 4 || buf_reserve(out, out->n + 4 * n + 1)) return -1;
    char *p = out->v + out->n;
    for (size_t i = 0; i < n; i++)
        p += gz_tok_utf8_put(c[i], p);
    out->n = (size_t)(p - out->v);
    out->v[out->n] = 0;
    return 0;
}

/* Python's UTF-8 decoder with errors='replace': a maximal prefix of a valid sequence that
 * is cut short counts as one error (one U+FFFD); any other bad byte is one U+FFFD. */
int gz_tok_utf8_decode(const char *str, size_t len, tk_cps *out) {
    const unsigned char *s = (const unsigned char *)str;
    if (gz_tok_cps_reserve(out, out->n + len)) return -1;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        int32_t cp;
        size_t need;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) {
            out->v[out->n++] = (int32_t)c;
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = (int32_t)(c & 0x1F);
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = (int32_t)(c & 0x0F);
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = (int32_t)(c & 0x07);
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            out->v[out->n++] = 0xFFFD;
            i++;
            continue;
        }
        size_t k = 1;
        for (; k <= need; k++) {
            if (i + k >= len) break;
            unsigned b = s[i + k];
            unsigned l = (k == 1) ? lo : 0x80, h = (k == 1) ? hi : 0xBF;
            if (b < l || b > h) break;
            cp = (cp << 6) | (int32_t)(b & 0x3F);
        }
        if (k <= need) { /* truncated / invalid: one replacement for the valid prefix */
            out->v[out->n++] = 0xFFFD;
            i += k;
            continue;
        }
        out->v[out->n++] = cp;
        i += need + 1;
    }
    return 0;
}
