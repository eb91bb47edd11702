/* tokenizer.c - loading HF tokenizer files, added/special-token splitting, special tokens,
 * truncation and batch padding, shared by WordPiece (wordpiece.c) and CLIP BPE (bpe.c).
 *
 * What PreTrainedTokenizer.tokenize (transformers 4.40) does before the model-specific
 * _tokenize, mirrored here:
 *   1. if the tokenizer has do_lower_case (BertTokenizer): lower-case the text one character
 *      at a time (so no final-sigma context), except the special / normalized added tokens;
 *   2. split the text on the added tokens (exact, case-sensitive, leftmost-longest), honouring
 *      their lstrip/rstrip flags;
 *   3. tokenize each remaining chunk separately (wordpiece.c / bpe.c).
 * Then build_inputs_with_special_tokens adds [CLS] .. [SEP] / <|startoftext|> .. <|endoftext|>. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "text_encoder/tok_internal.h"

gz_tokenizer_params gz_tokenizer_default_params(void) {
    gz_tokenizer_params p = {0};
    p.clip_fast = 0;
    p.max_length = 0;
    return p;
}

/* ===== loading helpers ===== */

/* Size caps of the files read whole: the largest real ones (a multilingual tokenizer.json,
 * a 250k-token vocab.txt) are under 20 MiB, so more than this is not a tokenizer file. */
#define TOK_JSON_MAX_BYTES ((size_t)64 << 20)  /* tokenizer.json and the small configs */
#define TOK_VOCAB_MAX_BYTES ((size_t)64 << 20) /* vocab.txt (merges.txt: bpe.c) */

/* Load a JSON file. optional: a missing file gives GZ_OK with *out NULL. In
 * tokenizer_config.json an integer too big for 64 bits makes the file decode its integers as
 * reals: transformers writes model_max_length = VERY_LARGE_INTEGER (1e30) there when a
 * tokenizer has no length limit, and that file holds no other integer value gaze reads. */
static gz_status load_json(const char *dir, const char *name, int optional, json_t **out) {
    *out = NULL;
    char *path = gz_path_join(dir, name);
    if (!path) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    if (optional && access(path, F_OK) != 0 && errno == ENOENT) { /* absent: no error message */
        free(path);
        return GZ_OK;
    }
    unsigned char *text;
    size_t len;
    gz_status st = gz_read_file(path, TOK_JSON_MAX_BYTES, &text, &len);
    if (st != GZ_OK) {
        free(path);
        return st;
    }
    json_error_t err;
    json_t *j = json_loadb((const char *)text, len, 0, &err);
    if (!j && json_error_code(&err) == json_error_numeric_overflow &&
        strcmp(name, "tokenizer_config.json") == 0)
        j = json_loadb((const char *)text, len, JSON_DECODE_INT_AS_REAL, &err);
    free(text);
    if (!j)
        st = GZ_FAIL(GZ_EINVAL, "%s: invalid JSON (line %d, column %d): %s", path, err.line,
                     err.column, err.text);
    else if (!json_is_object(j)) {
        st = GZ_FAIL(GZ_EINVAL, "%s: expected a JSON object", path);
        json_decref(j);
        j = NULL;
    }
    free(path);
    *out = j;
    return st;
}

/* A special-token value: "str" or {"content": "str", ...}. */
static const char *token_content(const json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) {
        const json_t *c = json_object_get(v, "content");
        if (json_is_string(c)) return json_string_value(c);
    }
    return NULL;
}

static int json_flag(const json_t *obj, const char *key, int dflt) {
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_boolean(v)) return json_is_true(v);
    return dflt;
}

/* ===== vocabularies ===== */

/* vocab.txt: one token per line (Python text mode: \n, \r\n and \r end a line). */
static gz_status load_vocab_txt(gz_tokenizer *t, const char *path) {
    unsigned char *buf;
    size_t n;
    gz_status st = gz_read_file(path, TOK_VOCAB_MAX_BYTES, &buf, &n);
    if (st != GZ_OK) return st;
    const char *text = (const char *)buf;
    int32_t id = 0;
    for (size_t i = 0; st == GZ_OK && i < n;) {
        size_t e = i;
        while (e < n && text[e] != '\n' && text[e] != '\r')
            e++;
        if (gz_tok_map_put(&t->vocab, text + i, e - i, id))
            st = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
        id++;
        if (e < n && text[e] == '\r' && e + 1 < n && text[e + 1] == '\n') e++;
        i = e + 1;
    }
    free(buf);
    if (st == GZ_OK && id == 0) st = GZ_FAIL(GZ_EINVAL, "%s: empty vocabulary", path);
    if (st == GZ_OK) t->n_ids = id;
    return st;
}

/* A {"token": id} object (vocab.json, or tokenizer.json's model.vocab). */
static gz_status load_vocab_object(gz_tokenizer *t, const json_t *j, const char *what) {
    if (!json_is_object(j)) return GZ_FAIL(GZ_EINVAL, "%s: no vocabulary object", what);
    gz_status st = GZ_OK;
    const char *key;
    json_t *v;
    int32_t max_id = -1;
    json_object_foreach((json_t *)j, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= (1 << 26)) {
            st = GZ_FAIL(GZ_EINVAL, "%s: token \"%s\" has no valid integer id", what, key);
            break;
        }
        int32_t id = (int32_t)json_integer_value(v);
        if (gz_tok_map_put(&t->vocab, key, strlen(key), id)) {
            st = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", what);
            break;
        }
        if (id > max_id) max_id = id;
    }
    if (st == GZ_OK && max_id < 0) st = GZ_FAIL(GZ_EINVAL, "%s: empty vocabulary", what);
    if (st == GZ_OK) t->n_ids = max_id + 1;
    return st;
}

static gz_status load_vocab_json(gz_tokenizer *t, const char *dir) {
    json_t *j = NULL;
    gz_status st = load_json(dir, "vocab.json", 0, &j);
    if (st != GZ_OK) return st;
    char what[4096];
    snprintf(what, sizeof what, "%s/vocab.json", dir);
    st = load_vocab_object(t, j, what);
    json_decref(j);
    return st;
}

/* ===== added / special tokens ===== */

typedef struct {
    const char *name; /* key in tokenizer_config.json / special_tokens_map.json */
    char *value;      /* owned */
} special_slot;

enum { SP_UNK, SP_SEP, SP_PAD, SP_CLS, SP_MASK, SP_BOS, SP_EOS, SP_N };
static const char *const sp_names[SP_N] = {"unk_token",  "sep_token", "pad_token", "cls_token",
                                           "mask_token", "bos_token", "eos_token"};

/* Index of the added token whose text is c[0..n) (n > 0), or -1. */
static int find_added(const gz_tokenizer *t, const int32_t *c, size_t n) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].n == n && memcmp(t->added[i].cps, c, n * sizeof *c) == 0) return i;
    return -1;
}

/* Append an added token whose text is *c; takes c's array in every case. */
static gz_status push_added(gz_tokenizer *t, tk_cps *c, int32_t id, int lstrip, int rstrip,
                            int keep_case) {
    tk_added *na = realloc(t->added, ((size_t)t->n_added + 1) * sizeof *na);
    if (!na) {
        gz_tok_cps_free(c);
        return GZ_FAIL(GZ_ENOMEM, "out of memory");
    }
    t->added = na;
    tk_added *a = &t->added[t->n_added++];
    a->cps = c->v;
    a->n = c->n;
    a->id = id;
    a->lstrip = lstrip;
    a->rstrip = rstrip;
    a->keep_case = keep_case;
    return GZ_OK;
}

/* Add the literal s (NULL or "" is ignored) as an added token; id < 0 = resolved later. The
 * same text again redefines it: the later id (when >= 0) and flags win. GZ_ENOMEM or GZ_OK. */
static gz_status add_literal(gz_tokenizer *t, const char *s, int32_t id, int lstrip, int rstrip,
                             int keep_case) {
    if (!s || !*s) return GZ_OK;
    tk_cps c = {0};
    if (gz_tok_utf8_decode(s, strlen(s), &c)) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    int k = find_added(t, c.v, c.n);
    if (k < 0) return push_added(t, &c, id, lstrip, rstrip, keep_case);
    gz_tok_cps_free(&c);
    tk_added *a = &t->added[k];
    if (id >= 0) a->id = id;
    a->lstrip = lstrip;
    a->rstrip = rstrip;
    a->keep_case = keep_case;
    return GZ_OK;
}

/* Add the special token s (NULL or "" is ignored; case kept, no stripping) unless an added token
 * has that text already; then only its id is set, when id >= 0, and the flags it was given
 * (added_tokens_decoder's) stay. GZ_ENOMEM or GZ_OK. */
static gz_status add_special_unless_present(gz_tokenizer *t, const char *s, int32_t id) {
    if (!s || !*s) return GZ_OK;
    tk_cps c = {0};
    if (gz_tok_utf8_decode(s, strlen(s), &c)) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    int k = find_added(t, c.v, c.n);
    if (k < 0) return push_added(t, &c, id, 0, 0, 1);
    gz_tok_cps_free(&c);
    if (id >= 0) t->added[k].id = id;
    return GZ_OK;
}

/* tokenizer.json's added_tokens: [{"id", "content", "lstrip", "rstrip", "special", "normalized"}].
 */
static gz_status add_tokenizer_json_added(gz_tokenizer *t, const json_t *tj, const char *what) {
    const json_t *arr = json_object_get(tj, "added_tokens");
    size_t i;
    json_t *v;
    if (!arr) return GZ_OK;
    if (!json_is_array(arr)) return GZ_FAIL(GZ_EINVAL, "%s: added_tokens is not a list", what);
    json_array_foreach((json_t *)arr, i, v) {
        const json_t *id = json_object_get(v, "id");
        const char *content = token_content(v);
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (1 << 26) || !content)
            return GZ_FAIL(GZ_EINVAL, "%s: bad added_tokens[%zu]", what, i);
        int special = json_flag(v, "special", 0), normalized = json_flag(v, "normalized", !special);
        gz_status st =
            add_literal(t, content, (int32_t)json_integer_value(id), json_flag(v, "lstrip", 0),
                        json_flag(v, "rstrip", 0), special || normalized);
        if (st != GZ_OK) return st;
    }
    return GZ_OK;
}

/* Replace the slot's value with a copy of v (NULL leaves it as is). */
static gz_status set_slot(special_slot *sl, const char *v) {
    if (!v) return GZ_OK;
    char *d = strdup(v);
    if (!d) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    free(sl->value);
    sl->value = d;
    return GZ_OK;
}

/* The special-token strings: the tokenizer class's defaults, then tokenizer_config.json's,
 * then special_tokens_map.json's (srcs[0], srcs[1]; either may be NULL). */
static gz_status read_special_slots(const gz_tokenizer *t, json_t *const srcs[2],
                                    special_slot *sl) {
    static const char *const bpe_dflt[SP_N] = {[SP_UNK] = "<|endoftext|>",
                                               [SP_BOS] = "<|startoftext|>",
                                               [SP_EOS] = "<|endoftext|>",
                                               [SP_PAD] = "<|endoftext|>"};
    static const char *const bert_dflt[SP_N] = {[SP_UNK] = "[UNK]",
                                                [SP_SEP] = "[SEP]",
                                                [SP_PAD] = "[PAD]",
                                                [SP_CLS] = "[CLS]",
                                                [SP_MASK] = "[MASK]"};
    const char *const *dflt = t->is_bpe ? bpe_dflt : bert_dflt;
    for (int i = 0; i < SP_N; i++) {
        sl[i].name = sp_names[i];
        gz_status st = set_slot(&sl[i], dflt[i]);
        if (st != GZ_OK) return st;
    }
    for (int s = 0; s < 2; s++) {
        if (!srcs[s]) continue;
        for (int i = 0; i < SP_N; i++) {
            const json_t *v = json_object_get(srcs[s], sl[i].name);
            gz_status st = v ? set_slot(&sl[i], token_content(v)) : GZ_OK;
            if (st != GZ_OK) return st;
        }
    }
    return GZ_OK;
}

/* tokenizer_config.json's added_tokens_decoder:
 * {"id": {"content", "lstrip", "rstrip", "special", "normalized"}}. */
static gz_status add_decoder_tokens(gz_tokenizer *t, const char *dir, const json_t *cfg) {
    const json_t *dec = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
    if (!json_is_object(dec)) return GZ_OK;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)dec, key, v) {
        char *endp;
        long id = strtol(key, &endp, 10);
        const char *content = token_content(v);
        if (*endp || id < 0 || id >= (1 << 26) || !content)
            return GZ_FAIL(GZ_EINVAL,
                           "%s/tokenizer_config.json: bad added_tokens_decoder entry \"%s\"", dir,
                           key);
        int special = json_flag(v, "special", 0), normalized = json_flag(v, "normalized", !special);
        gz_status st = add_literal(t, content, (int32_t)id, json_flag(v, "lstrip", 0),
                                   json_flag(v, "rstrip", 0), special || normalized);
        if (st != GZ_OK) return st;
    }
    return GZ_OK;
}

/* added_tokens.json: {"token": id}; a token added_tokens_decoder listed keeps its flags. */
static gz_status add_added_tokens_json(gz_tokenizer *t, const char *dir, json_t *addj) {
    const char *key;
    json_t *v;
    json_object_foreach(addj, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 26))
            return GZ_FAIL(GZ_EINVAL, "%s/added_tokens.json: token \"%s\" has no valid integer id",
                           dir, key);
        gz_status st = add_special_unless_present(t, key, (int32_t)json_integer_value(v));
        if (st != GZ_OK) return st;
    }
    return GZ_OK;
}

/* Every special token (incl. additional_special_tokens from srcs) is an added token too. */
static gz_status add_special_tokens(gz_tokenizer *t, const special_slot *sl,
                                    json_t *const srcs[2]) {
    for (int i = 0; i < SP_N; i++) {
        gz_status st = add_special_unless_present(t, sl[i].value, -1);
        if (st != GZ_OK) return st;
    }
    for (int s = 0; s < 2; s++) {
        const json_t *arr = srcs[s] ? json_object_get(srcs[s], "additional_special_tokens") : NULL;
        size_t idx;
        json_t *v;
        if (!json_is_array(arr)) continue;
        json_array_foreach((json_t *)arr, idx, v) {
            gz_status st = add_special_unless_present(t, token_content(v), -1);
            if (st != GZ_OK) return st;
        }
    }
    return GZ_OK;
}

/* Give every added token an id: explicit, else the vocabulary's, else a new id past the end
 * (HF appends); and put it in the vocabulary. */
static gz_status resolve_added_ids(gz_tokenizer *t) {
    tk_buf s = {0};
    gz_status st = GZ_OK;
    for (int i = 0; i < t->n_added && st == GZ_OK; i++) {
        tk_added *a = &t->added[i];
        s.n = 0;
        if (gz_tok_utf8_encode(a->cps, a->n, &s)) {
            st = GZ_FAIL(GZ_ENOMEM, "out of memory");
            break;
        }
        if (a->id < 0) a->id = gz_tok_map_get(&t->vocab, s.v, s.n);
        if (a->id < 0) a->id = t->n_ids;
        if (gz_tok_map_put(&t->vocab, s.v, s.n, a->id)) st = GZ_FAIL(GZ_ENOMEM, "out of memory");
        if (a->id >= t->n_ids) t->n_ids = a->id + 1;
    }
    gz_tok_buf_free(&s);
    return st;
}

/* unk/pad/bos/eos ids from the slots; GZ_EINVAL if unk, bos or eos is not in the vocabulary. */
static gz_status set_special_ids(gz_tokenizer *t, const char *dir, const special_slot *sl) {
    int32_t ids[SP_N];
    for (int i = 0; i < SP_N; i++)
        ids[i] = sl[i].value ? gz_tok_map_get(&t->vocab, sl[i].value, strlen(sl[i].value)) : -1;
    t->unk_id = ids[SP_UNK];
    t->pad_id = ids[SP_PAD];
    t->bos_id = t->is_bpe ? ids[SP_BOS] : ids[SP_CLS];
    t->eos_id = t->is_bpe ? ids[SP_EOS] : ids[SP_SEP];
    const char *which = t->unk_id < 0   ? "unk_token"
                        : t->bos_id < 0 ? (t->is_bpe ? "bos_token" : "cls_token")
                        : t->eos_id < 0 ? (t->is_bpe ? "eos_token" : "sep_token")
                                        : NULL;
    gz_status st =
        which ? GZ_FAIL(GZ_EINVAL, "%s: the %s is not in the vocabulary", dir, which) : GZ_OK;
    if (t->pad_id < 0) t->pad_id = t->is_bpe ? t->eos_id : 0;
    return st;
}

/* Fill the special tokens and the added-token list from the JSON files, in HF's order. */
static gz_status load_specials(gz_tokenizer *t, const char *dir, json_t *cfg) {
    special_slot sl[SP_N] = {{0}};
    json_t *stm = NULL, *addj = NULL;
    gz_status st = load_json(dir, "special_tokens_map.json", 1, &stm);
    if (st == GZ_OK) st = load_json(dir, "added_tokens.json", 1, &addj);
    json_t *const srcs[2] = {cfg,
                             stm}; /* special_tokens_map.json overrides tokenizer_config.json */
    if (st == GZ_OK) st = read_special_slots(t, srcs, sl);
    if (st == GZ_OK) st = add_decoder_tokens(t, dir, cfg);
    if (st == GZ_OK && addj) st = add_added_tokens_json(t, dir, addj);
    if (st == GZ_OK) st = add_special_tokens(t, sl, srcs);
    if (st == GZ_OK) st = resolve_added_ids(t);
    if (st == GZ_OK) st = set_special_ids(t, dir, sl);
    for (int i = 0; i < SP_N; i++)
        free(sl[i].value);
    json_decref(stm);
    json_decref(addj);
    return st;
}

/* id -> string table, built once the map is final (HF's ids_to_tokens = {v: k}). */
static gz_status build_id_table(gz_tokenizer *t) {
    t->id_str = gz_calloc_n((size_t)t->n_ids, sizeof *t->id_str, "tokenizer id table");
    if (!t->id_str) return GZ_ENOMEM;
    for (size_t e = 0; e < t->vocab.n; e++) {
        int32_t v = t->vocab.val[e];
        if (v >= 0 && v < t->n_ids) t->id_str[v] = t->vocab.arena + t->vocab.key_off[e];
    }
    return GZ_OK;
}

gz_status gz_tokenizer_load(const char *model_dir, gz_family family, int max_positions,
                            const gz_tokenizer_params *p, gz_tokenizer **out) {
    if (out) *out = NULL;
    if (!model_dir || !out) return GZ_FAIL(GZ_EINVAL, "gz_tokenizer_load: NULL argument");
    if (family != GZ_FAMILY_BLIP && family != GZ_FAMILY_CLIP && family != GZ_FAMILY_CHINESE_CLIP)
        return GZ_FAIL(GZ_EUNSUPPORTED, "%s: unknown model family %d for the tokenizer", model_dir,
                       (int)family);
    gz_tokenizer_params prm = p ? *p : gz_tokenizer_default_params();
    gz_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return GZ_FAIL(GZ_ENOMEM, "out of memory");
    t->family = family;
    t->is_bpe = family == GZ_FAMILY_CLIP;
    t->clip_fast = t->is_bpe && prm.clip_fast;
    t->unk_id = t->pad_id = t->bos_id = t->eos_id = -1;

    json_t *cfg = NULL, *tj = NULL;
    gz_status st = load_json(model_dir, "tokenizer_config.json", 1, &cfg);
    if (st == GZ_OK) {
        t->do_lower_case = json_flag(cfg, "do_lower_case", 1);
        t->tokenize_chinese_chars = json_flag(cfg, "tokenize_chinese_chars", 1);
        const json_t *sa = cfg ? json_object_get(cfg, "strip_accents") : NULL;
        t->strip_accents = json_is_boolean(sa) ? json_is_true(sa) : -1;
        const char *vname = t->is_bpe ? "vocab.json" : "vocab.txt";
        char *vpath = gz_path_join(model_dir, vname),
             *tjpath = gz_path_join(model_dir, "tokenizer.json");
        if (!vpath || !tjpath)
            st = GZ_FAIL(GZ_ENOMEM, "out of memory");
        else if (access(vpath, F_OK) != 0 && access(tjpath, F_OK) == 0) {
            /* no slow-tokenizer vocabulary: take vocabulary, merges and added tokens from the
             * fast tokenizer's tokenizer.json (tokenization rules stay the slow ones) */
            st = load_json(model_dir, "tokenizer.json", 0, &tj);
            if (st == GZ_OK)
                st = load_vocab_object(t, json_object_get(json_object_get(tj, "model"), "vocab"),
                                       tjpath);
            if (st == GZ_OK) st = add_tokenizer_json_added(t, tj, tjpath);
        } else if (t->is_bpe) {
            st = load_vocab_json(t, model_dir);
        } else {
            st = load_vocab_txt(t, vpath);
        }
        free(vpath);
        if (st == GZ_OK) st = load_specials(t, model_dir, cfg);
        if (st == GZ_OK && t->is_bpe) {
            if (tj) {
                st = gz_tok_bpe_load_json(
                    t, json_object_get(json_object_get(tj, "model"), "merges"), tjpath);
            } else {
                char *path = gz_path_join(model_dir, "merges.txt");
                st = path ? gz_tok_bpe_load(t, path) : GZ_FAIL(GZ_ENOMEM, "out of memory");
                free(path);
            }
        }
        free(tjpath);
    }
    if (st == GZ_OK) st = build_id_table(t);
    if (st == GZ_OK) {
        long long ml = 0;
        const json_t *m = cfg ? json_object_get(cfg, "model_max_length") : NULL;
        if (json_is_integer(m))
            ml = json_integer_value(m);
        else if (json_is_real(m) && json_real_value(m) > 0 && json_real_value(m) < 1e9)
            ml = (long long)json_real_value(m);
        if (ml <= 0 || ml > 1000000)
            ml = 0; /* HF's VERY_LARGE_INTEGER: no limit from the tokenizer */
        if (prm.max_length > 0) ml = prm.max_length;
        if (max_positions > 0 && (ml == 0 || ml > max_positions)) ml = max_positions;
        if (ml == 0) ml = t->is_bpe ? 77 : 512;
        if (ml < 2) ml = 2;
        t->max_length = (int)ml;
    }
    json_decref(cfg);
    json_decref(tj);
    if (st != GZ_OK) {
        gz_tokenizer_free(t);
        return st;
    }
    *out = t;
    return GZ_OK;
}

void gz_tokenizer_free(gz_tokenizer *t) {
    if (!t) return;
    gz_tok_bpe_free(t);
    gz_tok_map_free(&t->vocab);
    free(t->id_str);
    for (int i = 0; i < t->n_added; i++)
        free(t->added[i].cps);
    free(t->added);
    free(t);
}

/* ===== encoding ===== */

/* The longest added token that matches at c[i], or NULL. */
static const tk_added *added_at(const gz_tokenizer *t, const int32_t *c, size_t n, size_t i) {
    const tk_added *best = NULL;
    for (int k = 0; k < t->n_added; k++) {
        const tk_added *a = &t->added[k];
        if (a->n == 0 || a->n > n - i || (best && a->n <= best->n)) continue;
        if (c[i] == a->cps[0] && memcmp(c + i, a->cps, a->n * sizeof *c) == 0) best = a;
    }
    return best;
}

static int tokenize_chunk(const gz_tokenizer *t, const int32_t *c, size_t n, size_t limit,
                          tk_cps *ids) {
    if (n == 0) return 0;
    return t->is_bpe ? gz_tok_bpe_chunk(t, c, n, limit, ids)
                     : gz_tok_wordpiece_chunk(t, c, n, limit, ids);
}

/* Text -> ids without the special tokens around it; may stop once there are limit ids (see
 * tok_internal.h), so a truncated 10 MB text costs its clean-up passes, not its BPE. */
static gz_status encode_body(const gz_tokenizer *t, const char *text, size_t len, size_t limit,
                             tk_cps *ids) {
    tk_cps raw = {0}, low = {0};
    gz_status st = GZ_OK;
    if (len == 0) return GZ_OK; /* (no NULL + 0 below for empty text) */
    if (gz_tok_utf8_decode(text, len, &raw)) {
        st = GZ_FAIL(GZ_ENOMEM, "out of memory");
        goto done;
    }
    const tk_cps *c = &raw;
    if (!t->is_bpe && t->do_lower_case) { /* 1. character-wise lower-case outside added tokens */
        for (size_t i = 0; i < raw.n;) {
            const tk_added *a = added_at(t, raw.v, raw.n, i);
            if (a && a->keep_case) {
                if (gz_tok_cps_append(&low, raw.v + i, a->n)) goto oom;
                i += a->n;
            } else {
                if (gz_tok_py_lower(raw.v + i, 1, 0, &low)) goto oom;
                i++;
            }
        }
        c = &low;
    }
    /* 2. split on added tokens; 3. tokenize the chunks in between */
    size_t chunk = 0, i = 0;
    int strip_next = 0; /* previous added token has rstrip: lstrip() the next chunk */
    while (i <= c->n && ids->n < limit) {
        const tk_added *a = i < c->n ? added_at(t, c->v, c->n, i) : NULL;
        if (!a && i < c->n) {
            i++;
            continue;
        }
        size_t s = chunk, e = i;
        if (strip_next)
            while (s < e && gz_tok_is_py_space(c->v[s]))
                s++;
        if (a && a->lstrip)
            while (e > s && gz_tok_is_py_space(c->v[e - 1]))
                e--;
        if (tokenize_chunk(t, c->v + s, e - s, limit, ids)) goto oom;
        if (!a) break;
        if (gz_tok_cps_push(ids, a->id)) goto oom;
        strip_next = a->rstrip;
        i += a->n;
        chunk = i;
    }
    goto done;
oom:
    st = GZ_FAIL(GZ_ENOMEM, "out of memory while tokenizing");
done:
    gz_tok_cps_free(&raw);
    gz_tok_cps_free(&low);
    return st;
}

gz_status gz_tokenizer_encode(const gz_tokenizer *t, const char *text, int max_len, int32_t **ids,
                              int *n) {
    return gz_tokenizer_encode_n(t, text, text ? strlen(text) : 0, max_len, ids, n);
}

gz_status gz_tokenizer_encode_n(const gz_tokenizer *t, const char *text, size_t len, int max_len,
                                int32_t **ids, int *n) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!t || !text || !ids || !n) return GZ_FAIL(GZ_EINVAL, "gz_tokenizer_encode: NULL argument");
    tk_cps body = {0};
    size_t limit = max_len > 2 ? (size_t)max_len - 2 : max_len > 0 ? 0 : SIZE_MAX;
    gz_status st = encode_body(t, text, len, limit, &body);
    if (st != GZ_OK) {
        gz_tok_cps_free(&body);
        return st;
    }
    size_t keep = body.n;
    if (max_len > 0) { /* truncation=True, longest_first on one sequence: cut the end */
        size_t room = max_len > 2 ? (size_t)max_len - 2 : 0;
        if (keep > room) keep = room;
    }
    if (keep > (size_t)INT32_MAX - 2) {
        gz_tok_cps_free(&body);
        return GZ_FAIL(GZ_ENOMEM, "text too long to tokenize");
    }
    int32_t *v = gz_malloc_n(keep + 2, sizeof *v, "token ids");
    if (!v) {
        gz_tok_cps_free(&body);
        return GZ_ENOMEM;
    }
    v[0] = t->bos_id;
    if (keep) memcpy(v + 1, body.v, keep * sizeof *v);
    v[keep + 1] = t->eos_id;
    gz_tok_cps_free(&body);
    *ids = v;
    *n = (int)(keep + 2);
    return GZ_OK;
}

gz_status gz_tokenizer_encode_batch(const gz_tokenizer *t, const char *const *texts, int n,
                                    gz_token_batch *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!t || !out || n < 0 || (n > 0 && !texts))
        return GZ_FAIL(GZ_EINVAL, "gz_tokenizer_encode_batch: bad argument");
    if (n == 0) return GZ_OK;
    int32_t **rows = gz_calloc_n((size_t)n, sizeof *rows, "token batch");
    int *lens = gz_calloc_n((size_t)n, sizeof *lens, "token batch");
    gz_status st = (rows && lens) ? GZ_OK : GZ_ENOMEM;
    int len = 0;
    for (int i = 0; i < n && st == GZ_OK; i++) {
        st = gz_tokenizer_encode(t, texts[i] ? texts[i] : "", t->max_length, &rows[i], &lens[i]);
        if (st == GZ_OK && lens[i] > len) len = lens[i];
    }
    size_t cells = 0;
    if (st == GZ_OK && !gz_mul_size((size_t)n, (size_t)len, &cells))
        st = GZ_FAIL(GZ_ENOMEM, "batch too large");
    if (st == GZ_OK) {
        out->ids = gz_malloc_n(cells, sizeof *out->ids, "token batch");
        out->mask = gz_malloc_n(cells, sizeof *out->mask, "token batch");
        out->type_ids = gz_calloc_n(cells, sizeof *out->type_ids, "token batch");
        if (!out->ids || !out->mask || !out->type_ids) st = GZ_ENOMEM;
    }
    if (st == GZ_OK) {
        out->n = n;
        out->len = len;
        for (int i = 0; i < n; i++) {
            int32_t *id = out->ids + (size_t)i * len, *mk = out->mask + (size_t)i * len;
            for (int j = 0; j < len; j++) {
                id[j] = j < lens[i] ? rows[i][j] : t->pad_id;
                mk[j] = j < lens[i];
            }
        }
    } else {
        gz_token_batch_free(out);
    }
    for (int i = 0; rows && i < n; i++)
        free(rows[i]);
    free(rows);
    free(lens);
    return st;
}

void gz_token_batch_free(gz_token_batch *b) {
    if (!b) return;
    free(b->ids);
    free(b->mask);
    free(b->type_ids);
    memset(b, 0, sizeof *b);
}

const char *gz_tokenizer_id_to_token(const gz_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_ids) return NULL;
    return t->id_str[id];
}

int32_t gz_tokenizer_token_id(const gz_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    int32_t id = gz_tok_map_get(&t->vocab, token, strlen(token));
    return id < t->n_ids ? id : -1;
}

int gz_tokenizer_max_length(const gz_tokenizer *t) { return t ? t->max_length : 0; }
int32_t gz_tokenizer_pad_id(const gz_tokenizer *t) { return t ? t->pad_id : -1; }
int gz_tokenizer_vocab_size(const gz_tokenizer *t) { return t ? t->n_ids : 0; }
int32_t gz_tokenizer_bos_id(const gz_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t gz_tokenizer_eos_id(const gz_tokenizer *t) { return t ? t->eos_id : -1; }
