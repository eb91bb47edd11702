/* wordpiece.c - HF BertTokenizer._tokenize (BasicTokenizer + WordpieceTokenizer) of one chunk
 * of text that holds no added/special tokens (tokenizer.c splits those out first). */
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "text_encoder/tok_internal.h"

#define WP_MAX_CHARS 100 /* max_input_chars_per_word */

/* Greedy longest-match-first WordPiece of one word w[0..n) (code points); appends ids. */
static int wordpiece_word(const gz_tokenizer *t, const int32_t *w, size_t n, tk_buf *bytes,
                          size_t *offs, tk_buf *key, tk_cps *ids) {
    if (n > WP_MAX_CHARS) return gz_tok_cps_push(ids, t->unk_id);
    bytes->n = 0;
    for (size_t i = 0; i < n; i++) {
        offs[i] = bytes->n;
        if (gz_tok_utf8_encode(w + i, 1, bytes)) return -1;
    }
    offs[n] = bytes->n;
    size_t mark = ids->n, start = 0;
    while (start < n) {
        size_t end = n;
        int32_t found = -1;
        while (start < end) {
            key->n = 0;
            if (start > 0 && gz_tok_buf_append(key, "##", 2)) return -1;
            if (gz_tok_buf_append(key, bytes->v + offs[start], offs[end] - offs[start])) return -1;
            found = gz_tok_map_get(&t->vocab, key->v, key->n);
            if (found >= 0) break;
            end--;
        }
        if (found < 0) { /* any unmatched remainder: the whole word is one [UNK] */
            ids->n = mark;
            return gz_tok_cps_push(ids, t->unk_id);
        }
        if (gz_tok_cps_push(ids, found)) return -1;
        start = end;
    }
    return 0;
}

int gz_tok_wordpiece_chunk(const gz_tokenizer *t, const int32_t *c, size_t n, size_t limit,
                           tk_cps *ids) {
    tk_cps a = {0}, word = {0};
    tk_buf scratch = {0}, bytes = {0}, key = {0};
    size_t *offs = gz_malloc_n(WP_MAX_CHARS + 1, sizeof *offs, "WordPiece offsets");
    int rc = -1;
    if (!offs || gz_tok_cps_reserve(&a, n + 16)) goto done;
    /* _clean_text, then _tokenize_chinese_chars */
    for (size_t i = 0; i < n; i++) {
        int32_t ch = c[i];
        if (ch == 0 || ch == 0xFFFD || gz_tok_is_control_bert(ch)) continue;
        if (gz_tok_is_space_bert(ch)) ch = ' ';
        if (t->tokenize_chinese_chars && gz_tok_is_cjk(ch)) {
            if (gz_tok_cps_push(&a, ' ') || gz_tok_cps_push(&a, ch) || gz_tok_cps_push(&a, ' '))
                goto done;
        } else if (gz_tok_cps_push(&a, ch)) {
            goto done;
        }
    }
    /* NFC ("prevents treating the same character with different code points as different") */
    if (gz_tok_normalize(&a, 'C', &scratch)) goto done;
    int strip = t->strip_accents == 1 || (t->do_lower_case && t->strip_accents != 0);
    for (size_t i = 0; i < a.n && ids->n < limit;) {
        /* whitespace_tokenize: Python str.split() */
        while (i < a.n && gz_tok_is_py_space(a.v[i]))
            i++;
        if (i >= a.n) break;
        size_t s = i;
        while (i < a.n && !gz_tok_is_py_space(a.v[i]))
            i++;
        word.n = 0;
        if (t->do_lower_case) {
            if (gz_tok_py_lower(a.v + s, i - s, 1, &word)) goto done;
        } else if (gz_tok_cps_append(&word, a.v + s, i - s)) {
            goto done;
        }
        if (strip) { /* _run_strip_accents: NFD, drop Mn */
            if (gz_tok_normalize(&word, 'D', &scratch)) goto done;
            size_t k = 0;
            for (size_t j = 0; j < word.n; j++)
                if (!gz_tok_is_mark_nonspacing(word.v[j])) word.v[k++] = word.v[j];
            word.n = k;
        }
        /* _run_split_on_punc, then WordPiece on each piece */
        for (size_t j = 0; j < word.n && ids->n < limit;) {
            if (gz_tok_is_punct_bert(word.v[j])) {
                if (wordpiece_word(t, word.v + j, 1, &bytes, offs, &key, ids)) goto done;
                j++;
                continue;
            }
            size_t ps = j;
            while (j < word.n && !gz_tok_is_punct_bert(word.v[j]))
                j++;
            if (wordpiece_word(t, word.v + ps, j - ps, &bytes, offs, &key, ids)) goto done;
        }
    }
    rc = 0;
done:
    free(offs);
    gz_tok_cps_free(&a);
    gz_tok_cps_free(&word);
    gz_tok_buf_free(&scratch);
    gz_tok_buf_free(&bytes);
    gz_tok_buf_free(&key);
    return rc;
}
