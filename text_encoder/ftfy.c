/* ftfy.c - an equivalent of ftfy.fix_text (6.x default config) minus mojibake repair, the
 * clean-up CLIP's slow tokenizer runs before BPE. */
#include <string.h>
#include <utf8proc.h>

#include "text_encoder/tok_html_entities.h"
#include "text_encoder/tok_internal.h"

/* ftfy 6.x fix_text with its default TextFixerConfig, step by step:
 *   - fix_text splits the text into segments that end after each '\n'; unescape_html="auto"
 *     is switched off for good at the first segment containing '<';
 *   - each segment is fixed by repeating until nothing changes:
 *     unescape_html, [fix_encoding], fix_c1_controls, fix_latin_ligatures,
 *     fix_character_width, uncurl_quotes, fix_line_breaks, [fix_surrogates],
 *     remove_terminal_escapes, remove_control_chars, NFC.
 * Left out (documented gaps):
 *   - fix_encoding: the mojibake detector/repairer (badness heuristic, re-decoding text
 *     that was UTF-8 read as Latin-1/Windows-125x/MacRoman/cp437, restore_byte_a0,
 *     replace_lossy_sequences, decode_inconsistent_utf8). Text like "cafÃ©" therefore
 *     stays as is here, where ftfy would give "café". C1 controls are still mapped
 *     through Windows-1252 by fix_c1_controls, the common case of that repair.
 *   - fix_surrogates: not applicable, our input is UTF-8 (surrogates become U+FFFD).
 * The HTML entity table is Python's html.entities.html5 (generated, tok_html_entities.h). */

static const char *html_entity(const char *name, size_t len) {
    size_t lo = 0, hi = sizeof tk_html_entities / sizeof tk_html_entities[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *e = tk_html_entities[mid].name;
        int r = strncmp(e, name, len);
        if (r == 0 && e[len] != 0) r = 1; /* e is longer: e > name */
        if (r == 0) return tk_html_entities[mid].value;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int is_alnum_ascii(int32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Windows-1252 ("sloppy": undefined bytes map to themselves) for 0x80..0x9F. */
static const uint16_t cp1252_c1[32] = {
    0x20AC, 0x81,   0x201A, 0x192,  0x201E, 0x2026, 0x2020, 0x2021, 0x2C6,  0x2030, 0x160,
    0x2039, 0x152,  0x8D,   0x17D,  0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x2DC,  0x2122, 0x161,  0x203A, 0x153,  0x9D,   0x17E,  0x178};

/* Python html.unescape() of "&#...;" (numeric character reference), as ftfy calls it:
 * returns the number of code points written to out (0 = remove), or -1 if the reference
 * is not valid (the text is then kept). */
static int numeric_charref(const int32_t *s, size_t n, int32_t *out) {
    /* s = "&#" ... ";" */
    size_t i = 2;
    int hex = 0;
    if (i < n - 1 && (s[i] == 'x' || s[i] == 'X')) {
        hex = 1;
        i++;
    }
    if (i >= n - 1) return -1;
    uint64_t num = 0;
    for (; i < n - 1; i++) {
        int32_t c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (hex && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (hex && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        num = num * (hex ? 16 : 10) + (uint64_t)d;
        if (num > 0x7FFFFFFF) num = 0x7FFFFFFF; /* stays "> 0x10FFFF" */
    }
    int32_t r;
    if (num == 0)
        r = 0xFFFD;
    else if (num == 0x0D)
        r = '\r';
    else if (num >= 0x80 && num <= 0x9F)
        r = cp1252_c1[num - 0x80];
    else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
        r = 0xFFFD;
    else if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) ||
             (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) ||
             (num & 0xFFFE) == 0xFFFE)
        return 0;
    else
        r = (int32_t)num;
    if (r == ';') return -1; /* ftfy keeps the reference when the result contains ';' */
    out[0] = r;
    return 1;
}

static int step_unescape_html(const int32_t *a, size_t n, tk_cps *out, tk_cps *tmp) {
    for (size_t i = 0; i < n;) {
        if (a[i] == '&') {
            size_t j = i + 1;
            if (j < n && a[j] == '#') j++;
            size_t k = j;
            while (k < n && k - j <= 24 && is_alnum_ascii(a[k]))
                k++;
            if (k > j && k - j <= 24 && k < n && a[k] == ';') {
                size_t len = k + 1 - i; /* "&...;" */
                char name[32];
                for (size_t q = 0; q < len - 2; q++)
                    name[q] = (char)a[i + 1 + q];
                const char *v = html_entity(name, len - 2);
                if (v) {
                    tmp->n = 0;
                    if (gz_tok_utf8_decode(v, strlen(v), tmp) ||
                        gz_tok_cps_append(out, tmp->v, tmp->n))
                        return -1;
                    i += len;
                    continue;
                }
                if (a[i + 1] == '#') {
                    int32_t r[1];
                    int m = numeric_charref(a + i, len, r);
                    if (m >= 0) {
                        if (gz_tok_cps_append(out, r, (size_t)m)) return -1;
                        i += len;
                        continue;
                    }
                }
                if (gz_tok_cps_append(out, a + i, len)) return -1;
                i += len;
                continue;
            }
        }
        if (gz_tok_cps_push(out, a[i])) return -1;
        i++;
    }
    return 0;
}

static int is_ftfy_control(int32_t c) {
    return (c >= 0 && c <= 8) || c == 0xB || (c >= 0xE && c <= 0x1F) || c == 0x7F ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

static int is_ftfy_ligature(int32_t c) {
    return c == 0x132 || c == 0x133 || c == 0x149 || (c >= 0x1C4 && c <= 0x1CC) ||
           (c >= 0x1F1 && c <= 0x1F3) || (c >= 0xFB00 && c <= 0xFB06);
}

/* NFKC of one code point (ftfy's ligature and width maps are defined that way). */
static int nfkc_char(int32_t c, tk_cps *out) {
    int32_t buf[32];
    utf8proc_ssize_t r = utf8proc_decompose_char(
        c, buf, 32, UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_STABLE, NULL);
    if (r < 0 || r > 32) return gz_tok_cps_push(out, c);
    r = utf8proc_normalize_utf32(buf, r, UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_STABLE);
    if (r < 0) return gz_tok_cps_push(out, c);
    return gz_tok_cps_append(out, buf, (size_t)r);
}

static int32_t uncurl(int32_t c) {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) return '\'';
    if (c >= 0x201C && c <= 0x201F) return '"';
    return c;
}

/* The steps after unescape_html, in ftfy's order, in one pass over the text:
 * fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes. */
static int step_chars(const int32_t *a, size_t n, tk_cps *out) {
    for (size_t i = 0; i < n; i++) {
        int32_t c = a[i];
        if (c >= 0x80 && c <= 0x9F) c = cp1252_c1[c - 0x80];
        if (c == 0x3000) c = ' ';
        if (is_ftfy_ligature(c) || (c >= 0xFF01 && c <= 0xFFEF)) {
            size_t from = out->n;
            if (nfkc_char(c, out)) return -1;
            for (size_t k = from; k < out->n; k++)
                out->v[k] = uncurl(out->v[k]); /* e.g. U+0149 -> U+02BC n */
            continue;
        }
        if (gz_tok_cps_push(out, uncurl(c))) return -1;
    }
    return 0;
}

/* fix_line_breaks, remove_terminal_escapes, remove_control_chars (the width/ligature output
 * of step_chars cannot create their inputs, so running them after is the same order). */
static int step_lines_controls(const int32_t *a, size_t n, tk_cps *out) {
    for (size_t i = 0; i < n; i++) {
        int32_t c = a[i];
        if (c == '\r') {
            if (i + 1 < n && a[i + 1] == '\n') i++;
            c = '\n';
        } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
            c = '\n';
        }
        if (c == 0x1B && i + 1 < n && a[i + 1] == '[') { /* \033\[((?:\d|;)*)([a-zA-Z]) */
            size_t j = i + 2;
            while (j < n && (a[j] == ';' || (a[j] >= '0' && a[j] <= '9') ||
                             (a[j] >= 0x80 && utf8proc_category(a[j]) == UTF8PROC_CATEGORY_ND)))
                j++;
            if (j < n && a[j] < 0x80 && ((a[j] | 32) >= 'a' && (a[j] | 32) <= 'z')) {
                i = j;
                continue;
            }
        }
        if (is_ftfy_control(c)) continue;
        if (gz_tok_cps_push(out, c)) return -1;
    }
    return 0;
}

static int same(const tk_cps *a, const tk_cps *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof *a->v) == 0);
}

int gz_tok_ftfy(const int32_t *a, size_t n, tk_cps *out) {
    tk_cps cur = {0}, nxt = {0}, tmp = {0};
    tk_buf scratch = {0};
    int rc = -1, html = 1;
    for (size_t pos = 0; pos < n;) {
        size_t end = pos;
        while (end < n && a[end] != '\n')
            end++;
        if (end < n) end++; /* the segment includes its '\n' */
        for (size_t i = pos; i < end && html; i++)
            if (a[i] == '<') html = 0;
        cur.n = 0;
        if (gz_tok_cps_append(&cur, a + pos, end - pos)) goto done;
        for (int iter = 0; iter < 16; iter++) { /* fix until nothing changes (bounded) */
            tk_cps before = {0};
            if (gz_tok_cps_append(&before, cur.v, cur.n)) goto done;
            if (html) {
                nxt.n = 0;
                if (step_unescape_html(cur.v, cur.n, &nxt, &tmp)) {
                    gz_tok_cps_free(&before);
                    goto done;
                }
                tk_cps t = cur;
                cur = nxt;
                nxt = t;
            }
            nxt.n = 0;
            if (step_chars(cur.v, cur.n, &nxt)) {
                gz_tok_cps_free(&before);
                goto done;
            }
            cur.n = 0;
            if (step_lines_controls(nxt.v, nxt.n, &cur) || gz_tok_normalize(&cur, 'C', &scratch)) {
                gz_tok_cps_free(&before);
                goto done;
            }
            int unchanged = same(&before, &cur);
            gz_tok_cps_free(&before);
            if (unchanged) break;
        }
        if (gz_tok_cps_append(out, cur.v, cur.n)) goto done;
        pos = end;
    }
    rc = 0;
done:
    gz_tok_cps_free(&cur);
    gz_tok_cps_free(&nxt);
    gz_tok_cps_free(&tmp);
    gz_tok_buf_free(&scratch);
    return rc;
}
