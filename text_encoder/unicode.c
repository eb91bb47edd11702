/* unicode.c - Unicode through utf8proc: character classes (Python's and BERT's), NFC/NFD/NFKC
 * normalisation and Python's str.lower(). */
#include <utf8proc.h>

#include "text_encoder/tok_internal.h"

/* ===== Unicode classes ===== */

static utf8proc_category_t cat(int32_t c) { return utf8proc_category(c); }

int gz_tok_is_py_space(int32_t c) {
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
    if (c < 0x80) return 0;
    /* Python: bidirectional type WS, B or S, or category Zs */
    if (cat(c) == UTF8PROC_CATEGORY_ZS) return 1;
    int bc = utf8proc_get_property(c)->bidi_class;
    return bc == UTF8PROC_BIDI_CLASS_WS || bc == UTF8PROC_BIDI_CLASS_B ||
           bc == UTF8PROC_BIDI_CLASS_S;
}

int gz_tok_is_letter(int32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    utf8proc_category_t k = cat(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

int gz_tok_is_number(int32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = cat(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

int gz_tok_is_mark_nonspacing(int32_t c) { return c >= 0x300 && cat(c) == UTF8PROC_CATEGORY_MN; }

int gz_tok_is_punct_bert(int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    if (c < 0x80) return 0;
    utf8proc_category_t k = cat(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

int gz_tok_is_control_bert(int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_CN || (k >= UTF8PROC_CATEGORY_CC && k <= UTF8PROC_CATEGORY_CO);
}

int gz_tok_is_space_bert(int32_t c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return 1;
    return c >= 0x80 && cat(c) == UTF8PROC_CATEGORY_ZS;
}

int gz_tok_is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* ===== normalisation ===== */

int gz_tok_normalize(tk_cps *a, char form, tk_buf *scratch) {
    int ascii = 1;
    for (size_t i = 0; i < a->n && ascii; i++)
        ascii = a->v[i] < 0x80;
    if (ascii) return 0; /* every form is the identity on ASCII */
    utf8proc_option_t opt = UTF8PROC_STABLE;
    if (form == 'C')
        opt |= UTF8PROC_COMPOSE;
    else if (form == 'D')
        opt |= UTF8PROC_DECOMPOSE;
    else
        opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    scratch->n = 0;
    if (gz_tok_utf8_encode(a->v, a->n, scratch)) return -1;
    for (;;) {
        utf8proc_ssize_t r =
            utf8proc_decompose((const utf8proc_uint8_t *)scratch->v, (utf8proc_ssize_t)scratch->n,
                               a->v, (utf8proc_ssize_t)a->cap, opt);
        if (r < 0) return -1;
        if ((size_t)r > a->cap) {
            if (gz_tok_cps_reserve(a, (size_t)r)) return -1;
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
    case 0x27:
    case 0x2E:
    case 0x3A:
    case 0xB7:
    case 0x387:
    case 0x55F:
    case 0x5F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A: return 1;
    default: break;
    }
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

static int32_t lower_sigma(const int32_t *a, size_t n, size_t i) {
    /* Final_Sigma: cased (case-ignorable)* SIGMA !((case-ignorable)* cased) */
    size_t j = i;
    while (j > 0 && is_case_ignorable(a[j - 1]))
        j--;
    if (j == 0 || !is_cased(a[j - 1])) return 0x3C3;
    j = i + 1;
    while (j < n && is_case_ignorable(a[j]))
        j++;
    if (j < n && is_cased(a[j])) return 0x3C3;
    return 0x3C2;
}

int gz_tok_py_lower(const int32_t *a, size_t n, int final_sigma, tk_cps *out) {
    if (gz_tok_cps_reserve(out, out->n + n + 8)) return -1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = a[i];
        if (c < 0x80) {
            if (c >= 'A' && c <= 'Z') c += 32;
        } else if (c == 0x130) { /* the one unconditional one-to-many lower-case mapping */
            if (gz_tok_cps_push(out, 'i') || gz_tok_cps_push(out, 0x307)) return -1;
            continue;
        } else if (c == 0x3A3) {
            c = final_sigma ? lower_sigma(a, n, i) : 0x3C3;
        } else {
            c = utf8proc_tolower(c);
        }
        if (gz_tok_cps_push(out, c)) return -1;
    }
    return 0;
}
