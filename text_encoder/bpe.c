/* bpe.c - CLIP byte-level BPE (HF CLIPTokenizer / openai simple_tokenizer): clean-up,
 * pre-tokenisation regex, byte->unicode map, merges by rank with "</w>", and a merge cache.
 *
 * Symbols are ints: every vocabulary token is its id; a merge part or result missing from
 * vocab.json gets an internal id >= n_ids and is emitted as the unk id (as HF's
 * vocab.get(token, unk) does). The merge table maps (left, right) -> (rank, merged). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/error.h"
#include "core/fileio.h"
#include "text_encoder/tok_internal.h"

/* HF reads merges.txt lines [1, 49152 - 256 - 2 + 1): the first 48894 merges only. */
#define CLIP_MAX_MERGES (49152 - 256 - 2)
#define MERGES_MAX_BYTES ((size_t)64 << 20) /* merges.txt is ~500 KiB; larger is not one */
#define CACHE_MAX_ENTRIES 8192              /* bounded: the table is cleared when it fills up */
#define CACHE_MAX_KEY 256                   /* longer pieces are not cached */

struct tk_cache_entry {
    uint64_t hash;
    uint32_t key_len, n_ids;
    /* followed by int32_t ids[n_ids], then the key bytes */
};

static int32_t *entry_ids(tk_cache_entry *e) { return (int32_t *)(e + 1); }
static char *entry_key(tk_cache_entry *e) { return (char *)(entry_ids(e) + e->n_ids); }

/* ---- symbols ---- */

static int32_t sym_get_or_add(gz_tokenizer *t, const char *s, size_t len) {
    int32_t id = gz_tok_map_get(&t->vocab, s, len);
    if (id >= 0) return id;
    id = t->n_syms;
    if (id == INT32_MAX || gz_tok_map_put(&t->vocab, s, len, id)) return -1;
    t->n_syms++;
    return id;
}

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order. */
static int32_t byte_to_unicode(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    return 256 + n;
}

/* ---- merge table ---- */

static size_t merge_slot(const tk_merges *m, uint64_t key) {
    size_t mask = m->cap - 1, i = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key)
        i = (i + 1) & mask;
    return i;
}

static int merges_init(tk_merges *m, size_t n) {
    size_t cap = 1024;
    while (cap < 2 * n + 2)
        cap *= 2;
    m->keys = gz_malloc_n(cap, sizeof *m->keys, "BPE merge table");
    m->rank = gz_malloc_n(cap, sizeof *m->rank, "BPE merge table");
    m->merged = gz_malloc_n(cap, sizeof *m->merged, "BPE merge table");
    if (!m->keys || !m->rank || !m->merged) return -1;
    for (size_t i = 0; i < cap; i++)
        m->keys[i] = UINT64_MAX;
    m->cap = cap;
    return 0;
}

static int merge_lookup(const tk_merges *m, int32_t a, int32_t b, int32_t *merged) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = merge_slot(m, key);
    if (m->keys[i] == UINT64_MAX) return -1;
    *merged = m->merged[i];
    return m->rank[i];
}

/* Base symbols (one per byte, and the same with "</w>") and an empty merge table. */
static gz_status bpe_begin(gz_tokenizer *t, size_t n_merges, const char *what) {
    t->n_syms = t->n_ids;
    for (int b = 0; b < 256; b++) {
        char s[16];
        int l = gz_tok_utf8_put(byte_to_unicode(b), s);
        t->byte_sym[b] = sym_get_or_add(t, s, (size_t)l);
        memcpy(s + l, "</w>", 4);
        t->byte_sym_end[b] = sym_get_or_add(t, s, (size_t)l + 4);
        if (t->byte_sym[b] < 0 || t->byte_sym_end[b] < 0)
            return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", what);
    }
    if (merges_init(&t->merges, n_merges)) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", what);
    return GZ_OK;
}

static gz_status bpe_add_merge(gz_tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                               int rank, tk_buf *cat, const char *what) {
    cat->n = 0;
    if (gz_tok_buf_append(cat, a, na) || gz_tok_buf_append(cat, b, nb))
        return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", what);
    int32_t ia = sym_get_or_add(t, a, na);
    int32_t ib = sym_get_or_add(t, b, nb);
    int32_t ir = sym_get_or_add(t, cat->v, cat->n);
    if (ia < 0 || ib < 0 || ir < 0) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", what);
    uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
    size_t i = merge_slot(&t->merges, key);
    t->merges.keys[i] = key; /* a repeated pair takes the later rank, as dict(zip()) does */
    t->merges.rank[i] = rank;
    t->merges.merged[i] = ir;
    return GZ_OK;
}

/* The merge cache (bounded, shared by threads under its mutex). */
static gz_status bpe_finish(gz_tokenizer *t) {
    t->cache = calloc(1, sizeof *t->cache);
    if (!t->cache) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    t->cache->cap = 2 * CACHE_MAX_ENTRIES;
    t->cache->max_count = CACHE_MAX_ENTRIES;
    t->cache->slots = gz_calloc_n(t->cache->cap, sizeof *t->cache->slots, "BPE cache");
    if (!t->cache->slots) {
        free(t->cache);
        t->cache = NULL;
        return GZ_FAIL(GZ_ENOMEM, "out of memory");
    }
    if (pthread_mutex_init(&t->cache->lock, NULL)) {
        free(t->cache->slots);
        free(t->cache);
        t->cache = NULL;
        return GZ_FAIL(GZ_ENOMEM, "cannot create the BPE cache lock");
    }
    return GZ_OK;
}

static int is_ws(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

gz_status gz_tok_bpe_load(gz_tokenizer *t, const char *path) {
    unsigned char *text;
    size_t len;
    gz_status st = gz_read_file(path, MERGES_MAX_BYTES, &text, &len);
    if (st != GZ_OK) return st;
    /* python: read().strip().split("\n")[1:49152-256-2+1] */
    char *p = (char *)text, *end = p + len;
    while (p < end && is_ws(*p))
        p++;
    while (end > p && is_ws(end[-1]))
        end--;
    size_t n_lines = 0;
    for (char *q = p; q < end; q++)
        n_lines += *q == '\n';
    st = bpe_begin(t, n_lines + 1, path);
    int line = 0, rank = 0;
    tk_buf cat = {0};
    while (st == GZ_OK && p < end && rank < CLIP_MAX_MERGES) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        if (line++ == 0) { /* "#version: 0.2" header */
            p = le + 1;
            continue;
        }
        /* merge.split(): two whitespace-separated fields */
        char *a = p, *ae, *b, *be;
        while (a < le && is_ws(*a))
            a++;
        ae = a;
        while (ae < le && !is_ws(*ae))
            ae++;
        b = ae;
        while (b < le && is_ws(*b))
            b++;
        be = b;
        while (be < le && !is_ws(*be))
            be++;
        char *rest = be;
        while (rest < le && is_ws(*rest))
            rest++;
        if (ae == a || be == b || rest != le) {
            st = GZ_FAIL(GZ_EINVAL, "%s:%d: expected two symbols per merge line", path, line);
            break;
        }
        st = bpe_add_merge(t, a, (size_t)(ae - a), b, (size_t)(be - b), rank++, &cat, path);
        p = le + 1;
    }
    gz_tok_buf_free(&cat);
    free(text);
    if (st == GZ_OK && rank == 0) st = GZ_FAIL(GZ_EINVAL, "%s: no merges", path);
    return st == GZ_OK ? bpe_finish(t) : st;
}

gz_status gz_tok_bpe_load_json(gz_tokenizer *t, const json_t *merges, const char *what) {
    if (!json_is_array(merges) || json_array_size(merges) == 0)
        return GZ_FAIL(GZ_EINVAL, "%s: model.merges is missing or empty", what);
    gz_status st = bpe_begin(t, json_array_size(merges), what);
    tk_buf cat = {0};
    size_t i;
    json_t *m;
    json_array_foreach((json_t *)merges, i, m) {
        if (st != GZ_OK || i >= CLIP_MAX_MERGES) break;
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (json_is_string(m)) { /* "a b" */
            a = json_string_value(m);
            const char *sp = strchr(a, ' ');
            if (sp && sp > a && sp[1] && !strchr(sp + 1, ' ')) {
                na = (size_t)(sp - a);
                b = sp + 1;
                nb = strlen(b);
            }
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) { /* ["a", "b"] */
            a = json_string_value(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            na = strlen(a);
            nb = strlen(b);
        }
        if (!na || !nb) {
            st = GZ_FAIL(GZ_EINVAL, "%s: model.merges[%zu] is not a pair of symbols", what, i);
            break;
        }
        st = bpe_add_merge(t, a, na, b, nb, (int)i, &cat, what);
    }
    gz_tok_buf_free(&cat);
    return st == GZ_OK ? bpe_finish(t) : st;
}

static void cache_clear(tk_cache *c) {
    for (size_t i = 0; i < c->cap; i++) {
        free(c->slots[i]);
        c->slots[i] = NULL;
    }
    c->count = 0;
}

void gz_tok_bpe_free(gz_tokenizer *t) {
    free(t->merges.keys);
    free(t->merges.rank);
    free(t->merges.merged);
    memset(&t->merges, 0, sizeof t->merges);
    if (t->cache) {
        cache_clear(t->cache);
        free(t->cache->slots);
        pthread_mutex_destroy(&t->cache->lock);
        free(t->cache);
        t->cache = NULL;
    }
}

/* Cached ids of a piece appended to ids: 1 if found, 0 if not. */
static int cache_get(tk_cache *c, const char *key, size_t len, uint64_t h, tk_cps *ids) {
    int found = 0;
    pthread_mutex_lock(&c->lock);
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)h & mask; c->slots[i]; i = (i + 1) & mask) {
        tk_cache_entry *e = c->slots[i];
        if (e->hash == h && e->key_len == len && memcmp(entry_key(e), key, len) == 0) {
            found = gz_tok_cps_append(ids, entry_ids(e), e->n_ids) == 0;
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

static void cache_put(tk_cache *c, const char *key, size_t len, uint64_t h, const int32_t *v,
                      size_t n) {
    tk_cache_entry *e = malloc(sizeof *e + n * sizeof *v + len);
    if (!e) return; /* the cache is an optimisation only */
    e->hash = h;
    e->key_len = (uint32_t)len;
    e->n_ids = (uint32_t)n;
    memcpy(entry_ids(e), v, n * sizeof *v);
    memcpy(entry_key(e), key, len);
    pthread_mutex_lock(&c->lock);
    if (c->count >= c->max_count) cache_clear(c);
    size_t mask = c->cap - 1, i = (size_t)h & mask;
    for (; c->slots[i]; i = (i + 1) & mask) {
        tk_cache_entry *o = c->slots[i];
        if (o->hash == h && o->key_len == len && memcmp(entry_key(o), key, len) == 0) break;
    }
    if (c->slots[i]) {
        free(e); /* another thread put it meanwhile */
    } else {
        c->slots[i] = e;
        c->count++;
    }
    pthread_mutex_unlock(&c->lock);
}

/* Initial symbols of a pre-token: one per byte, the last with "</w>". */
static int piece_symbols(const gz_tokenizer *t, const unsigned char *s, size_t len, tk_cps *syms) {
    syms->n = 0;
    if (gz_tok_cps_reserve(syms, len)) return -1;
    for (size_t i = 0; i + 1 < len; i++)
        syms->v[i] = t->byte_sym[s[i]];
    syms->v[len - 1] = t->byte_sym_end[s[len - 1]];
    syms->n = len;
    return 0;
}

static int emit_symbols(const gz_tokenizer *t, const int32_t *w, size_t n, tk_cps *ids) {
    if (gz_tok_cps_reserve(ids, ids->n + n)) return -1;
    for (size_t i = 0; i < n; i++)
        ids->v[ids->n++] = w[i] < t->n_ids ? w[i] : t->unk_id;
    return 0;
}

/* openai simple_tokenizer bpe() as written: find the lowest-ranked adjacent pair, merge every
 * occurrence left to right, repeat. O(len^2) per word: the reference the heap version below is
 * tested against (gz_tok_bpe_word with plain = 1), not used for encoding. */
static int bpe_piece_plain(const gz_tokenizer *t, const unsigned char *s, size_t len, tk_cps *syms,
                           tk_cps *ids) {
    if (piece_symbols(t, s, len, syms)) return -1;
    size_t n = len;
    int32_t *w = syms->v;
    while (n > 1) {
        int best = -1;
        int32_t first = 0, second = 0, merged = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            int32_t m;
            int r = merge_lookup(&t->merges, w[i], w[i + 1], &m);
            if (r >= 0 && (best < 0 || r < best)) {
                best = r;
                first = w[i];
                second = w[i + 1];
                merged = m;
            }
        }
        if (best < 0) break;
        size_t k = 0; /* merge every occurrence, left to right */
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && w[i] == first && w[i + 1] == second) {
                w[k++] = merged;
                i += 2;
            } else {
                w[k++] = w[i++];
            }
        }
        n = k;
    }
    return emit_symbols(t, w, n, ids);
}

/* A candidate merge: the pair starting at symbol position pos had this rank when queued. */
typedef struct {
    int32_t rank;
    uint32_t pos;
} bpe_cand;

static int cand_less(bpe_cand a, bpe_cand b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c) {
    size_t i = (*n)++;
    while (i > 0 && cand_less(c, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n) {
    bpe_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(h[c + 1], h[c])) c++;
        if (!cand_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* The same result as bpe_piece_plain in O(len log len): symbols form a linked list over their
 * first byte's position and candidate pairs wait in a heap ordered by (rank, position). One
 * round pops every candidate of the lowest rank, in position order, and merges those still
 * valid (a candidate is stale once either symbol has changed: its pair then has another rank,
 * since ranks are unique per pair); that is plain's "every occurrence, left to right". A merge
 * never creates a pair of the rank being merged (the merged symbol is longer than both parts),
 * so new candidates can wait in the heap for later rounds, as plain rescans after each round.
 * Without this, one long word costs O(len^2) per merge: 29 s for a 400 KB word. */
static int bpe_piece(const gz_tokenizer *t, const unsigned char *s, size_t len, tk_cps *syms,
                     tk_cps *ids) {
    if (len == 0) return 0;
    if (len > UINT32_MAX / 4) return -1; /* positions are uint32_t; a 1 GiB word is not text */
    if (piece_symbols(t, s, len, syms)) return -1;
    int32_t *w = syms->v;
    /* every merge queues at most 2 candidates and there are at most len - 1 merges */
    uint32_t *next = gz_malloc_n(len, sizeof *next, "BPE word");
    uint32_t *prev = gz_malloc_n(len, sizeof *prev, "BPE word");
    bpe_cand *heap = gz_malloc_n(3 * len, sizeof *heap, "BPE word");
    bpe_cand *round = gz_malloc_n(len, sizeof *round, "BPE word");
    int rc = -1;
    if (!next || !prev || !heap || !round) goto done;
    const uint32_t none = UINT32_MAX;
    size_t n_heap = 0;
    for (size_t i = 0; i < len; i++) {
        next[i] = i + 1 < len ? (uint32_t)(i + 1) : none;
        prev[i] = i > 0 ? (uint32_t)(i - 1) : none;
        int32_t m;
        int r = i + 1 < len ? merge_lookup(&t->merges, w[i], w[i + 1], &m) : -1;
        if (r >= 0) heap_push(heap, &n_heap, (bpe_cand){r, (uint32_t)i});
    }
    while (n_heap > 0) {
        int32_t rank = heap[0].rank;
        size_t n_round = 0;
        while (n_heap > 0 && heap[0].rank == rank && n_round < len)
            round[n_round++] = heap_pop(heap, &n_heap);
        for (size_t k = 0; k < n_round; k++) {
            uint32_t p = round[k].pos, q = next[p];
            int32_t merged;
            /* stale: p was absorbed (w = -1), is last, or its pair changed */
            if (w[p] < 0 || q == none || merge_lookup(&t->merges, w[p], w[q], &merged) != rank)
                continue;
            w[p] = merged;
            w[q] = -1;
            next[p] = next[q];
            if (next[q] != none) prev[next[q]] = p;
            int32_t m;
            int r;
            if (prev[p] != none && (r = merge_lookup(&t->merges, w[prev[p]], w[p], &m)) >= 0)
                heap_push(heap, &n_heap, (bpe_cand){r, prev[p]});
            if (next[p] != none && (r = merge_lookup(&t->merges, w[p], w[next[p]], &m)) >= 0)
                heap_push(heap, &n_heap, (bpe_cand){r, p});
        }
    }
    size_t k = 0; /* compact the surviving symbols in order */
    for (uint32_t i = 0; i != none; i = next[i])
        w[k++] = w[i];
    rc = emit_symbols(t, w, k, ids);
done:
    free(next);
    free(prev);
    free(heap);
    free(round);
    return rc;
}

int gz_tok_bpe_word(const gz_tokenizer *t, const char *s, size_t len, int plain, tk_cps *ids) {
    if (len == 0) return 0;
    tk_cps syms = {0};
    int rc = plain ? bpe_piece_plain(t, (const unsigned char *)s, len, &syms, ids)
                   : bpe_piece(t, (const unsigned char *)s, len, &syms, ids);
    gz_tok_cps_free(&syms);
    return rc;
}

static int match_lit(const int32_t *c, size_t n, size_t i, const char *lit) {
    size_t l = strlen(lit);
    if (n - i < l) return 0;
    for (size_t k = 0; k < l; k++)
        if (c[i + k] != (unsigned char)lit[k]) return 0;
    return 1;
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd, IGNORECASE on lower-cased text) at i. */
static size_t contraction(const int32_t *c, size_t n, size_t i) {
    if (c[i] != '\'' || i + 1 >= n) return 0;
    int32_t a = c[i + 1], b = i + 2 < n ? c[i + 2] : 0;
    if (a == 's' || a == 0x17F /* long s folds to s */ || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

int gz_tok_bpe_chunk(const gz_tokenizer *t, const int32_t *c, size_t n, size_t limit, tk_cps *ids) {
    tk_cps a = {0}, low = {0}, syms = {0};
    tk_buf scratch = {0}, piece = {0};
    int rc = -1;
    /* 1. clean-up: ftfy.fix_text (slow tokenizer) or NFC (fast tokenizer's normalizer) */
    if (t->clip_fast) {
        if (gz_tok_cps_append(&a, c, n) || gz_tok_normalize(&a, 'C', &scratch)) goto done;
    } else if (gz_tok_ftfy(c, n, &a)) {
        goto done;
    }
    /* 2. whitespace_clean: re.sub(r"\s+", " ", text).strip(), in place */
    size_t k = 0;
    for (size_t i = 0; i < a.n; i++) {
        if (gz_tok_is_py_space(a.v[i])) {
            if (k > 0 && a.v[k - 1] != ' ') a.v[k++] = ' ';
        } else {
            a.v[k++] = a.v[i];
        }
    }
    while (k > 0 && a.v[k - 1] == ' ')
        k--;
    a.n = k;
    /* 3. .lower() */
    if (gz_tok_py_lower(a.v, a.n, 1, &low)) goto done;
    /* 4. re.findall(pat, text) and BPE of each piece */
    const int32_t *s = low.v;
    size_t m = low.n;
    for (size_t i = 0; i < m && ids->n < limit;) {
        size_t j;
        int special = 0;
        if (s[i] == '<' && match_lit(s, m, i, "<|startoftext|>")) {
            j = i + 15;
            special = 1;
        } else if (s[i] == '<' && match_lit(s, m, i, "<|endoftext|>")) {
            j = i + 13;
            special = 1;
        } else if ((j = contraction(s, m, i)) > 0) {
            j += i;
        } else if (gz_tok_is_letter(s[i])) {
            j = i + 1;
            while (j < m && gz_tok_is_letter(s[j]))
                j++;
        } else if (gz_tok_is_number(s[i])) {
            j = i + 1;
        } else if (gz_tok_is_py_space(s[i])) {
            i++;
            continue;
        } else {
            j = i + 1;
            while (j < m && !gz_tok_is_py_space(s[j]) && !gz_tok_is_letter(s[j]) &&
                   !gz_tok_is_number(s[j]))
                j++;
        }
        piece.n = 0;
        if (gz_tok_utf8_encode(s + i, j - i, &piece)) goto done;
        if (special) { /* the bpe() cache is seeded with these two: they map to their own ids */
            int32_t id = gz_tok_map_get(&t->vocab, piece.v, piece.n);
            if (gz_tok_cps_push(ids, id >= 0 && id < t->n_ids ? id : t->unk_id)) goto done;
        } else if (piece.n <= CACHE_MAX_KEY) {
            uint64_t h = gz_tok_hash(piece.v, piece.n);
            if (!cache_get(t->cache, piece.v, piece.n, h, ids)) {
                size_t before = ids->n;
                if (bpe_piece(t, (const unsigned char *)piece.v, piece.n, &syms, ids)) goto done;
                cache_put(t->cache, piece.v, piece.n, h, ids->v + before, ids->n - before);
            }
        } else if (bpe_piece(t, (const unsigned char *)piece.v, piece.n, &syms, ids)) {
            goto done;
        }
        i = j;
    }
    rc = 0;
done:
    gz_tok_cps_free(&a);
    gz_tok_cps_free(&low);
    gz_tok_cps_free(&syms);
    gz_tok_buf_free(&scratch);
    gz_tok_buf_free(&piece);
    return rc;
}
