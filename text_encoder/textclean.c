/* textclean.c - text plumbing for the tokenizers: growable arrays, UTF-8, Unicode classes
 * (utf8proc), Python's str.lower(), an ftfy.fix_text equivalent, and a string->id map. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text_encoder/tok_internal.h"

/* ===== growable arrays ===== */

int tk_cps_reserve(tk_cps *a, size_t cap) {
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

int tk_cps_push(tk_cps *a, int32_t c) {
    if (a->n == a->cap && tk_cps_reserve(a, a->n + 1)) return -1;
    a->v[a->n++] = c;
    return 0;
}

int tk_cps_append(tk_cps *a, const int32_t *src, size_t n) {
    if (n == 0) return 0;
    if (n > SIZE_MAX - a->n || tk_cps_reserve(a, a->n + n)) return -1;
    memcpy(a->v + a->n, src, n * sizeof *src);
    a->n += n;
    return 0;
}

void tk_cps_free(tk_cps *a) {
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

int tk_buf_reserve(tk_buf *b, size_t cap) {
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

int tk_buf_append(tk_buf *b, const char *s, size_t n) {
    if (n > SIZE_MAX - b->n - 1 || tk_buf_reserve(b, b->n + n + 1)) return -1;
    memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = 0;
    return 0;
}

void tk_buf_free(tk_buf *b) {
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

/* ===== UTF-8 ===== */

int tk_utf8_put(int32_t c, char *b) {
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

int tk_utf8_encode(const int32_t *c, size_t n, tk_buf *out) {
    if (n > (SIZE_MAX - out->n - 1) / 4 || tk_buf_reserve(out, out->n + 4 * n + 1)) return -1;
    char *p = out->v + out->n;
    for (size_t i = 0; i < n; i++) p += tk_utf8_put(c[i], p);
    out->n = (size_t)(p - out->v);
    out->v[out->n] = 0;
    return 0;
}

/* Python's UTF-8 decoder with errors='replace': a maximal prefix of a valid sequence that
 * is cut short counts as one error (one U+FFFD); any other bad byte is one U+FFFD. */
int tk_utf8_decode(const char *str, size_t len, tk_cps *out) {
    const unsigned char *s = (const unsigned char *)str;
    if (tk_cps_reserve(out, out->n + len)) return -1;
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

/* ===== Unicode classes ===== */

static utf8proc_category_t cat(int32_t c) {
    return utf8proc_category(c);
}

int tk_is_py_space(int32_t c) {
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
    if (c < 0x80) return 0;
    /* Python: bidirectional type WS, B or S, or category Zs */
    if (cat(c) == UTF8PROC_CATEGORY_ZS) return 1;
    int bc = utf8proc_get_property(c)->bidi_class;
    return bc == UTF8PROC_BIDI_CLASS_WS || bc == UTF8PROC_BIDI_CLASS_B || bc == UTF8PROC_BIDI_CLASS_S;
}

int tk_is_letter(int32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    utf8proc_category_t k = cat(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

int tk_is_number(int32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = cat(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

int tk_is_mark_nonspacing(int32_t c) {
    return c >= 0x300 && cat(c) == UTF8PROC_CATEGORY_MN;
}

int tk_is_punct_bert(int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return 1;
    if (c < 0x80) return 0;
    utf8proc_category_t k = cat(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

int tk_is_control_bert(int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_CN || (k >= UTF8PROC_CATEGORY_CC && k <= UTF8PROC_CATEGORY_CO);
}

int tk_is_space_bert(int32_t c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return 1;
    return c >= 0x80 && cat(c) == UTF8PROC_CATEGORY_ZS;
}

int tk_is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B820 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* ===== normalisation ===== */

int tk_normalize(tk_cps *a, char form, tk_buf *scratch) {
    int ascii = 1;
    for (size_t i = 0; i < a->n && ascii; i++) ascii = a->v[i] < 0x80;
    if (ascii) return 0; /* every form is the identity on ASCII */
    utf8proc_option_t opt = UTF8PROC_STABLE;
    if (form == 'C') opt |= UTF8PROC_COMPOSE;
    else if (form == 'D') opt |= UTF8PROC_DECOMPOSE;
    else opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    scratch->n = 0;
    if (tk_utf8_encode(a->v, a->n, scratch)) return -1;
    for (;;) {
        utf8proc_ssize_t r = utf8proc_decompose((const utf8proc_uint8_t *)scratch->v,
                                                (utf8proc_ssize_t)scratch->n, a->v,
                                                (utf8proc_ssize_t)a->cap, opt);
        if (r < 0) return -1;
        if ((size_t)r > a->cap) {
            if (tk_cps_reserve(a, (size_t)r)) return -1;
            continue;
        }
        if (opt & UTF8PROC_COMPOSE) r = utf8proc_normalize_utf32(a->v, r, opt);
        if (r < 0) return -1;
        a->n = (size_t)r;
        return 0;
    }
}

/* ===== Python str.lower() ===== */

/* Unicode "cased": Lu, Ll, Lt, or anything with a case mapping (Roman numerals, circled
 * letters). Checked against Python 3.11 for every code point assigned in Unicode 14: the
 * final-sigma context (both sides) agrees everywhere. */
static int is_cased(int32_t c) {
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           utf8proc_islower(c) || utf8proc_isupper(c);
}

/* Unicode "case-ignorable": Mn, Me, Cf, Lm, Sk, or Word_Break MidLetter / MidNumLet /
 * Single_Quote (a handful of code points, listed here since utf8proc has no word-break data). */
static int is_case_ignorable(int32_t c) {
    switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4:
    case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52:
    case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
        return 1;
    default: break;
    }
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

static int32_t lower_sigma(const int32_t *a, size_t n, size_t i) {
    /* Final_Sigma: cased (case-ignorable)* SIGMA !((case-ignorable)* cased) */
    size_t j = i;
    while (j > 0 && is_case_ignorable(a[j - 1])) j--;
    if (j == 0 || !is_cased(a[j - 1])) return 0x3C3;
    j = i + 1;
    while (j < n && is_case_ignorable(a[j])) j++;
    if (j < n && is_cased(a[j])) return 0x3C3;
    return 0x3C2;
}

int tk_py_lower(const int32_t *a, size_t n, int final_sigma, tk_cps *out) {
    if (tk_cps_reserve(out, out->n + n + 8)) return -1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = a[i];
        if (c < 0x80) {
            if (c >= 'A' && c <= 'Z') c += 32;
        } else if (c == 0x130) { /* the one unconditional one-to-many lower-case mapping */
            if (tk_cps_push(out, 'i') || tk_cps_push(out, 0x307)) return -1;
            continue;
        } else if (c == 0x3A3) {
            c = final_sigma ? lower_sigma(a, n, i) : 0x3C3;
        } else {
            c = utf8proc_tolower(c);
        }
        if (tk_cps_push(out, c)) return -1;
    }
    return 0;
}

/* ===== ftfy.fix_text ===== */

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

#include "text_encoder/tok_html_entities.h"

static const char *html_entity(const char *name, size_t len) {
    size_t lo = 0, hi = sizeof tk_html_entities / sizeof tk_html_entities[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *e = tk_html_entities[mid].name;
        int r = strncmp(e, name, len);
        if (r == 0 && e[len] != 0) r = 1; /* e is longer: e > name */
        if (r == 0) return tk_html_entities[mid].value;
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int is_alnum_ascii(int32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Windows-1252 ("sloppy": undefined bytes map to themselves) for 0x80..0x9F. */
static const uint16_t cp1252_c1[32] = {
    0x20AC, 0x81, 0x201A, 0x192, 0x201E, 0x2026, 0x2020, 0x2021, 0x2C6, 0x2030, 0x160,
    0x2039, 0x152, 0x8D, 0x17D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x2DC, 0x2122, 0x161, 0x203A, 0x153, 0x9D, 0x17E, 0x178};

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
        if (c >= '0' && c <= '9') d = c - '0';
        else if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        num = num * (hex ? 16 : 10) + (uint64_t)d;
        if (num > 0x7FFFFFFF) num = 0x7FFFFFFF; /* stays "> 0x10FFFF" */
    }
    int32_t r;
    if (num == 0) r = 0xFFFD;
    else if (num == 0x0D) r = '\r';
    else if (num >= 0x80 && num <= 0x9F) r = cp1252_c1[num - 0x80];
    else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) r = 0xFFFD;
    else if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) ||
             (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) ||
             (num & 0xFFFE) == 0xFFFE)
        return 0;
    else r = (int32_t)num;
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
            while (k < n && k - j <= 24 && is_alnum_ascii(a[k])) k++;
            if (k > j && k - j <= 24 && k < n && a[k] == ';') {
                size_t len = k + 1 - i; /* "&...;" */
                char name[32];
                for (size_t q = 0; q < len - 2; q++) name[q] = (char)a[i + 1 + q];
                const char *v = html_entity(name, len - 2);
                if (v) {
                    tmp->n = 0;
                    if (tk_utf8_decode(v, strlen(v), tmp) || tk_cps_append(out, tmp->v, tmp->n)) return -1;
                    i += len;
                    continue;
                }
                if (a[i + 1] == '#') {
                    int32_t r[1];
                    int m = numeric_charref(a + i, len, r);
                    if (m >= 0) {
                        if (tk_cps_append(out, r, (size_t)m)) return -1;
                        i += len;
                        continue;
                    }
                }
                if (tk_cps_append(out, a + i, len)) return -1;
                i += len;
                continue;
            }
        }
        if (tk_cps_push(out, a[i])) return -1;
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
    utf8proc_ssize_t r = utf8proc_decompose_char(c, buf, 32, UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_STABLE, NULL);
    if (r < 0 || r > 32) return tk_cps_push(out, c);
    r = utf8proc_normalize_utf32(buf, r, UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_STABLE);
    if (r < 0) return tk_cps_push(out, c);
    return tk_cps_append(out, buf, (size_t)r);
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
            for (size_t k = from; k < out->n; k++) out->v[k] = uncurl(out->v[k]); /* e.g. U+0149 -> U+02BC n */
            continue;
        }
        if (tk_cps_push(out, uncurl(c))) return -1;
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
                             (a[j] >= 0x80 && cat(a[j]) == UTF8PROC_CATEGORY_ND)))
                j++;
            if (j < n && a[j] < 0x80 && ((a[j] | 32) >= 'a' && (a[j] | 32) <= 'z')) {
                i = j;
                continue;
            }
        }
        if (is_ftfy_control(c)) continue;
        if (tk_cps_push(out, c)) return -1;
    }
    return 0;
}

static int same(const tk_cps *a, const tk_cps *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof *a->v) == 0);
}

int tk_ftfy(const int32_t *a, size_t n, tk_cps *out) {
    tk_cps cur = {0}, nxt = {0}, tmp = {0};
    tk_buf scratch = {0};
    int rc = -1, html = 1;
    for (size_t pos = 0; pos < n;) {
        size_t end = pos;
        while (end < n && a[end] != '\n') end++;
        if (end < n) end++; /* the segment includes its '\n' */
        for (size_t i = pos; i < end && html; i++)
            if (a[i] == '<') html = 0;
        cur.n = 0;
        if (tk_cps_append(&cur, a + pos, end - pos)) goto done;
        for (int iter = 0; iter < 16; iter++) { /* fix until nothing changes (bounded) */
            tk_cps before = {0};
            if (tk_cps_append(&before, cur.v, cur.n)) goto done;
            if (html) {
                nxt.n = 0;
                if (step_unescape_html(cur.v, cur.n, &nxt, &tmp)) { tk_cps_free(&before); goto done; }
                tk_cps t = cur; cur = nxt; nxt = t;
            }
            nxt.n = 0;
            if (step_chars(cur.v, cur.n, &nxt)) { tk_cps_free(&before); goto done; }
            cur.n = 0;
            if (step_lines_controls(nxt.v, nxt.n, &cur) || tk_normalize(&cur, 'C', &scratch)) {
                tk_cps_free(&before);
                goto done;
            }
            int unchanged = same(&before, &cur);
            tk_cps_free(&before);
            if (unchanged) break;
        }
        if (tk_cps_append(out, cur.v, cur.n)) goto done;
        pos = end;
    }
    rc = 0;
done:
    tk_cps_free(&cur);
    tk_cps_free(&nxt);
    tk_cps_free(&tmp);
    tk_buf_free(&scratch);
    return rc;
}

/* ===== string -> id map (open addressing, FNV-1a) ===== */

uint64_t tk_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static size_t map_find_slot(const tk_map *m, const char *key, size_t len) {
    size_t mask = m->nslots - 1, i = (size_t)tk_hash(key, len) & mask;
    for (;;) {
        int32_t e = m->slots[i];
        if (e < 0) return i;
        if (m->key_len[e] == len && memcmp(m->arena + m->key_off[e], key, len) == 0) return i;
        i = (i + 1) & mask;
    }
}

static int map_grow(tk_map *m) {
    size_t ns = m->nslots ? m->nslots * 2 : 1024;
    int32_t *slots = malloc(ns * sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < ns; i++) slots[i] = -1;
    free(m->slots);
    m->slots = slots;
    m->nslots = ns;
    for (size_t e = 0; e < m->n; e++) {
        size_t i = map_find_slot(m, m->arena + m->key_off[e], m->key_len[e]);
        m->slots[i] = (int32_t)e;
    }
    return 0;
}

int tk_map_put(tk_map *m, const char *key, size_t len, int32_t val) {
    if (len > 0xFFFFFF || m->n >= 0x7FFFFFF) return -1;
    if ((m->n + 1) * 2 > m->nslots && map_grow(m)) return -1;
    size_t i = map_find_slot(m, key, len);
    if (m->slots[i] >= 0) {
        m->val[m->slots[i]] = val;
        return 0;
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 1024;
        uint32_t *ko = realloc(m->key_off, nc * sizeof *ko);
        if (!ko) return -1;
        m->key_off = ko;
        uint32_t *kl = realloc(m->key_len, nc * sizeof *kl);
        if (!kl) return -1;
        m->key_len = kl;
        int32_t *v = realloc(m->val, nc * sizeof *v);
        if (!v) return -1;
        m->val = v;
        m->cap = nc;
    }
    if (m->arena_n + len + 1 > m->arena_cap) {
        size_t nc = m->arena_cap ? m->arena_cap : 65536;
        while (nc < m->arena_n + len + 1) nc *= 2;
        if (nc > 0xFFFFFFFFu) return -1;
        char *ar = realloc(m->arena, nc);
        if (!ar) return -1;
        m->arena = ar;
        m->arena_cap = nc;
    }
    memcpy(m->arena + m->arena_n, key, len);
    m->arena[m->arena_n + len] = 0;
    m->key_off[m->n] = (uint32_t)m->arena_n;
    m->key_len[m->n] = (uint32_t)len;
    m->val[m->n] = val;
    m->arena_n += len + 1;
    m->slots[i] = (int32_t)m->n;
    m->n++;
    return 0;
}

int32_t tk_map_get(const tk_map *m, const char *key, size_t len) {
    if (!m->nslots) return -1;
    size_t i = map_find_slot(m, key, len);
    return m->slots[i] < 0 ? -1 : m->val[m->slots[i]];
}

void tk_map_free(tk_map *m) {
    free(m->arena);
    free(m->key_off);
    free(m->key_len);
    free(m->val);
    free(m->slots);
    memset(m, 0, sizeof *m);
}
