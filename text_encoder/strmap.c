/* strmap.c - the string -> id map of the vocabularies (open addressing, FNV-1a keys in one arena).
 */
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "text_encoder/tok_internal.h"

uint64_t gz_tok_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static size_t map_find_slot(const tk_map *m, const char *key, size_t len) {
    size_t mask = m->nslots - 1, i = (size_t)gz_tok_hash(key, len) & mask;
    for (;;) {
        int32_t e = m->slots[i];
        if (e < 0) return i;
        if (m->key_len[e] == len && memcmp(m->arena + m->key_off[e], key, len) == 0) return i;
        i = (i + 1) & mask;
    }
}

static int map_grow(tk_map *m) {
    size_t ns = m->nslots ? m->nslots * 2 : 1024;
    int32_t *slots = gz_malloc_n(ns, sizeof *slots, "vocabulary map");
    if (!slots) return -1;
    for (size_t i = 0; i < ns; i++)
        slots[i] = -1;
    free(m->slots);
    m->slots = slots;
    m->nslots = ns;
    for (size_t e = 0; e < m->n; e++) {
        size_t i = map_find_slot(m, m->arena + m->key_off[e], m->key_len[e]);
        m->slots[i] = (int32_t)e;
    }
    return 0;
}

int gz_tok_map_put(tk_map *m, const char *key, size_t len, int32_t val) {
    /* These caps bound every size product below (at most 2^29 four-byte slots or entries, an
     * arena under 4 GiB), so the reallocs need no overflow check of their own. */
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
        while (nc < m->arena_n + len + 1)
            nc *= 2;
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

int32_t gz_tok_map_get(const tk_map *m, const char *key, size_t len) {
    if (!m->nslots) return -1;
    size_t i = map_find_slot(m, key, len);
    return m->slots[i] < 0 ? -1 : m->val[m->slots[i]];
}

void gz_tok_map_free(tk_map *m) {
    free(m->arena);
    free(m->key_off);
    free(m->key_len);
    free(m->val);
    free(m->slots);
    memset(m, 0, sizeof *m);
}
