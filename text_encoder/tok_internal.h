/* tok_internal.h - shared internals of the tokenizers: tokenizer.c (loading, added tokens),
 * wordpiece.c, bpe.c, and their text plumbing utf8.c, unicode.c, ftfy.c, strmap.c. Not part of
 * any public API; the functions are gz_tok_ so that libgaze_text exports only gz_ symbols (the
 * tk_ types have no linkage).
 * Text is handled as arrays of Unicode code points (tk_cps); every growable buffer doubles,
 * so no hot loop allocates per character. */
#ifndef GZ_TEXT_TOK_INTERNAL_H
#define GZ_TEXT_TOK_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "text_encoder/tokenizer.h"

/* ---- growable arrays (utf8.c) ---- */

typedef struct {
    int32_t *v;
    size_t n, cap;
} tk_cps; /* code points, or ids */

typedef struct {
    char *v;
    size_t n, cap;
} tk_buf; /* bytes (UTF-8) */

int gz_tok_cps_reserve(tk_cps *a, size_t cap); /* 0 on success, -1 on overflow / out of memory */
int gz_tok_cps_push(tk_cps *a, int32_t c);
int gz_tok_cps_append(tk_cps *a, const int32_t *src, size_t n);
void gz_tok_cps_free(tk_cps *a);
int gz_tok_buf_append(tk_buf *b, const char *s, size_t n);
void gz_tok_buf_free(tk_buf *b);

/* ---- UTF-8 (utf8.c) ---- */

/* Decode len bytes; invalid sequences (and surrogates) become U+FFFD, one per bad byte
 * as Python's errors='replace' does for a maximal invalid subpart. Appends to out. */
int gz_tok_utf8_decode(const char *s, size_t len, tk_cps *out);
/* Encode n code points, appending to out (no terminator). */
int gz_tok_utf8_encode(const int32_t *c, size_t n, tk_buf *out);
/* Encode one code point into b (4 bytes); returns its length. */
int gz_tok_utf8_put(int32_t c, char *b);

/* ---- Unicode helpers (unicode.c; all data from utf8proc) ---- */

int gz_tok_is_py_space(int32_t c);        /* Python str.isspace() */
int gz_tok_is_letter(int32_t c);          /* \p{L} */
int gz_tok_is_number(int32_t c);          /* \p{N} */
int gz_tok_is_mark_nonspacing(int32_t c); /* Mn */
int gz_tok_is_punct_bert(int32_t c);      /* BERT _is_punctuation */
int gz_tok_is_control_bert(int32_t c);    /* BERT _is_control */
int gz_tok_is_space_bert(int32_t c);      /* BERT _is_whitespace */
int gz_tok_is_cjk(int32_t c);             /* BERT _is_chinese_char */

/* Normalise in place: form 'C' (NFC), 'D' (NFD) or 'K' (NFKC). scratch is a work buffer. */
int gz_tok_normalize(tk_cps *a, char form, tk_buf *scratch);
/* Python str.lower() of a[0..n) appended to out (full mapping: U+0130 -> i + U+0307;
 * final sigma by context when final_sigma, else every capital sigma -> U+03C3). */
int gz_tok_py_lower(const int32_t *a, size_t n, int final_sigma, tk_cps *out);
/* ftfy.fix_text (6.x default config) minus mojibake repair; see ftfy.c. */
int gz_tok_ftfy(const int32_t *a, size_t n, tk_cps *out);

/* ---- string -> id map (strmap.c) ---- */

typedef struct {
    char *arena; /* all key bytes, each followed by a NUL */
    size_t arena_n, arena_cap;
    uint32_t *key_off; /* (n) offsets into arena */
    uint32_t *key_len; /* (n) */
    int32_t *val;      /* (n) */
    size_t n, cap;
    int32_t *slots; /* (nslots) entry index or -1 */
    size_t nslots;
} tk_map;

/* Insert or overwrite. Returns 0, or -1 on out of memory / too large. */
int gz_tok_map_put(tk_map *m, const char *key, size_t len, int32_t val);
/* Value or -1 if absent. */
int32_t gz_tok_map_get(const tk_map *m, const char *key, size_t len);
void gz_tok_map_free(tk_map *m);
uint64_t gz_tok_hash(const void *p, size_t n);

/* ---- the tokenizer ---- */

typedef struct {
    int32_t *cps; /* the literal text as code points */
    size_t n;
    int32_t id;
    int lstrip, rstrip;
    int keep_case; /* excluded from BERT's pre-lower-casing (special or normalized) */
} tk_added;

typedef struct {
    uint64_t *keys;  /* (cap) (first << 32 | second), UINT64_MAX = empty */
    int32_t *rank;   /* (cap) */
    int32_t *merged; /* (cap) symbol id of the merged pair */
    size_t cap;
} tk_merges;

typedef struct tk_cache_entry tk_cache_entry;

typedef struct {
    pthread_mutex_t lock;
    tk_cache_entry **slots; /* (cap) open addressing, NULL = empty */
    size_t cap, count, max_count;
} tk_cache;

struct gz_tokenizer {
    gz_family family;
    int is_bpe;
    int clip_fast;
    int max_length;
    int do_lower_case, strip_accents /* -1 = null */, tokenize_chinese_chars;
    int32_t unk_id, pad_id, bos_id,
        eos_id; /* bos/eos: [CLS]/[SEP] or <|startoftext|>/<|endoftext|> */

    tk_map vocab;        /* token string -> id (BPE: also internal symbols with id >= n_ids) */
    const char **id_str; /* (n_ids) id -> token string (into vocab.arena or added), NULL = hole */
    int32_t n_ids;       /* ids in use: max id + 1 over vocab and added tokens */

    tk_added *added; /* literal special / added tokens, split out before tokenizing */
    int n_added;

    /* BPE */
    tk_merges merges;
    int32_t byte_sym[256];     /* symbol of byte b (GPT-2 byte->unicode char) */
    int32_t byte_sym_end[256]; /* same + "</w>" */
    int32_t n_syms;            /* vocab ids are < n_ids; extra merge symbols are >= n_ids */
    tk_cache *cache;
};

/* The chunk functions append ids and may stop early once ids->n >= limit (SIZE_MAX: never):
 * tokens only ever append, so what follows could not change the first limit ids, and a
 * truncating caller needs no more. */

/* wordpiece.c: BertTokenizer._tokenize of one chunk (no added tokens inside) -> ids. */
int gz_tok_wordpiece_chunk(const gz_tokenizer *t, const int32_t *c, size_t n, size_t limit,
                           tk_cps *ids);
/* bpe.c */
gz_status gz_tok_bpe_load(gz_tokenizer *t, const char *merges_path);
/* merges from tokenizer.json's model.merges ("a b" strings or [a, b] pairs); what names the file */
gz_status gz_tok_bpe_load_json(gz_tokenizer *t, const json_t *merges, const char *what);
int gz_tok_bpe_chunk(const gz_tokenizer *t, const int32_t *c, size_t n, size_t limit, tk_cps *ids);
/* BPE of one pre-token's UTF-8 bytes (no clean-up, no splitting) -> ids appended; plain = 1 runs
 * the O(len^2) transcription of openai's bpe() that the O(len log len) one is tested against. */
int gz_tok_bpe_word(const gz_tokenizer *t, const char *s, size_t len, int plain, tk_cps *ids);
void gz_tok_bpe_free(gz_tokenizer *t);

#endif
