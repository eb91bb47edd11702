/* test_text_tokenizer.c - tokenizers vs the Hugging Face fixtures: every case of every
 * tokenizer_cases.json (ids, and tokens via id_to_token), the CLIP fast-tokenizer option vs
 * nfc_whitespace_lower_ids, the batch input_ids / attention_mask / token_type_ids of each
 * expected.safetensors, truncation, and load errors (missing vocabulary, corrupt JSON). */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "tests/testutil.h"
#include "text_encoder/tok_internal.h"
#include "text_encoder/tokenizer.h"

static int checks = 0;

typedef struct {
    const char *dir;
    gz_family family;
    int max_positions;
} fam;

static const fam FAMS[] = {
    {"blip_itm", GZ_FAMILY_BLIP, 512},
    {"clip", GZ_FAMILY_CLIP, 77},
    {"chinese_clip", GZ_FAMILY_CHINESE_CLIP, 512},
};

static void print_ids(const char *what, const int32_t *v, int n) {
    fprintf(stderr, "    %s (%d):", what, n);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %d", (int)v[i]);
    fprintf(stderr, "\n");
}

/* Compare encode(text) with a JSON id array; returns 1 if equal. */
static int same_ids(const gz_tokenizer *t, const json_t *jtext, const json_t *want,
                    const char *label) {
    int32_t *ids = NULL;
    int n = 0;
    const char *text = json_string_value(jtext);
    CHECK_OK(gz_tokenizer_encode_n(t, text, json_string_length(jtext), 0, &ids, &n));
    int ok = ids && (size_t)n == json_array_size(want);
    for (int i = 0; ok && i < n; i++)
        ok = ids[i] == json_integer_value(json_array_get(want, (size_t)i));
    if (!ok) {
        char *dump = json_dumps(jtext, JSON_ENCODE_ANY);
        fprintf(stderr, "  %s mismatch for %s\n", label, dump ? dump : "?");
        free(dump);
        print_ids("got", ids, n);
        int32_t w[512];
        int wn = 0;
        for (size_t i = 0; i < json_array_size(want) && wn < 512; i++)
            w[wn++] = (int32_t)json_integer_value(json_array_get(want, i));
        print_ids("want", w, wn);
    }
    free(ids);
    return ok;
}

static void test_cases(const fam *f) {
    gz_tokenizer *t = NULL, *tf = NULL;
    gz_tokenizer_params p = gz_tokenizer_default_params();
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/%s", f->dir), f->family, f->max_positions, &p,
                               &t));
    if (!t) return;
    if (f->family == GZ_FAMILY_CLIP) {
        p.clip_fast = 1;
        CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/%s", f->dir), f->family, f->max_positions,
                                   &p, &tf));
    }
    json_error_t err;
    json_t *root = json_load_file(gz_test_path("fixtures/%s/tokenizer_cases.json", f->dir),
                                  JSON_ALLOW_NUL, &err);
    CHECK(root != NULL);
    if (!root) {
        gz_tokenizer_free(t);
        gz_tokenizer_free(tf);
        return;
    }
    const json_t *vs = json_object_get(root, "vocab_size_with_added");
    if (json_is_integer(vs)) {
        CHECK(gz_tokenizer_vocab_size(t) == json_integer_value(vs));
        checks++;
    }
    const json_t *cases = json_object_get(root, "cases");
    size_t i;
    json_t *c;
    int n_ok = 0, n_all = 0, n_fast = 0, n_fast_ok = 0;
    json_array_foreach(cases, i, c) {
        const json_t *jtext = json_object_get(c, "text");
        const char *text = json_string_value(jtext);
        const json_t *ids = json_object_get(c, "ids"), *toks = json_object_get(c, "tokens");
        CHECK(text && json_is_array(ids) && json_is_array(toks));
        if (!text) continue;
        n_all++;
        int ok = same_ids(t, jtext, ids, f->dir);
        CHECK(ok);
        n_ok += ok;
        checks++;
        for (size_t k = 0; k < json_array_size(toks); k++) {
            const char *want = json_string_value(json_array_get(toks, k));
            const char *got =
                gz_tokenizer_id_to_token(t, (int32_t)json_integer_value(json_array_get(ids, k)));
            CHECK(want && got && strcmp(want, got) == 0);
            CHECK(gz_tokenizer_token_id(t, want) == json_integer_value(json_array_get(ids, k)));
            checks += 2;
        }
        const json_t *fast = json_object_get(c, "nfc_whitespace_lower_ids");
        if (tf && json_is_array(fast)) {
            n_fast++;
            int fok = same_ids(tf, jtext, fast, "clip fast");
            CHECK(fok);
            n_fast_ok += fok;
            checks++;
        }
    }
    printf("%s: %d/%d tokenizer cases exact", f->dir, n_ok, n_all);
    if (tf) printf(", fast option %d/%d", n_fast_ok, n_fast);
    printf("\n");
    CHECK(n_all >= 60);
    json_decref(root);
    gz_tokenizer_free(t);
    gz_tokenizer_free(tf);
}

static void test_batch(const fam *f, json_t *inputs) {
    gz_tokenizer *t = NULL;
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/%s", f->dir), f->family, f->max_positions,
                               NULL, &t));
    if (!t) return;
    const json_t *caps = json_object_get(inputs, "captions");
    int n = (int)json_array_size(caps);
    const char **texts = calloc((size_t)n, sizeof *texts);
    for (int i = 0; i < n; i++)
        texts[i] = json_string_value(json_object_get(json_array_get(caps, (size_t)i), "text"));
    const json_t *pf = json_object_get(json_object_get(inputs, "per_family"), f->dir);
    CHECK(gz_tokenizer_max_length(t) == json_integer_value(json_object_get(pf, "max_length")));
    checks++;
    gz_token_batch b;
    CHECK_OK(gz_tokenizer_encode_batch(t, texts, n, &b));
    gz_st_file *st = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/expected.safetensors", f->dir), &st));
    const char *names[3] = {"input_ids", "attention_mask", "token_type_ids"};
    const int32_t *got[3] = {b.ids, b.mask, b.type_ids};
    for (int k = 0; st && k < 3; k++) {
        if (k == 2 && !gz_st_find(st, names[k])) continue; /* only chinese_clip has type ids */
        int64_t *want = NULL;
        size_t nw = 0;
        CHECK_OK(gz_st_i64_copy(st, names[k], &want, &nw));
        const gz_st_tensor *ten = gz_st_find(st, names[k]);
        CHECK(ten && ten->ndim == 2 && ten->shape[0] == n && ten->shape[1] == b.len);
        int bad = -1;
        for (size_t j = 0; want && j < nw && (size_t)b.n * b.len == nw; j++)
            if (got[k][j] != want[j]) {
                bad = (int)j;
                break;
            }
        if (bad >= 0 && b.len > 0)
            fprintf(stderr, "  %s %s: row %d col %d got %d want %lld\n", f->dir, names[k],
                    bad / b.len, bad % b.len, (int)got[k][bad], (long long)want[bad]);
        CHECK(bad < 0 && (size_t)b.n * b.len == nw);
        checks++;
        printf("%s: batch %s (%d x %d) %s\n", f->dir, names[k], b.n, b.len,
               bad < 0 ? "exact" : "MISMATCH");
        free(want);
    }
    gz_st_close(st);
    gz_token_batch_free(&b);
    free(texts);
    gz_tokenizer_free(t);
}

/* Truncation: HF keeps the first max_len-2 pieces then the closing special token. */
static void test_truncation(void) {
    gz_tokenizer *t = NULL;
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/clip"), GZ_FAMILY_CLIP, 77, NULL, &t));
    if (!t) return;
    char text[4096] = "";
    for (int i = 0; i < 100; i++)
        strcat(text, "cat ");
    int32_t *full = NULL, *cut = NULL;
    int nf = 0, nc = 0;
    CHECK_OK(gz_tokenizer_encode(t, text, 0, &full, &nf));
    CHECK_OK(gz_tokenizer_encode(t, text, 77, &cut, &nc));
    CHECK(nf == 102 && nc == 77);
    CHECK(full && cut && cut[0] == 49406 && cut[76] == 49407 &&
          memcmp(cut, full, 76 * sizeof *cut) == 0);
    checks += 2;
    free(full);
    free(cut);
    gz_token_batch b;
    const char *two[2] = {text, "a cat"};
    CHECK_OK(gz_tokenizer_encode_batch(t, two, 2, &b));
    CHECK(b.n == 2 && b.len == 77 && b.ids[77 + 3] == 49407 &&
          b.ids[77 + 4] == gz_tokenizer_pad_id(t) && b.mask[77 + 3] == 1 && b.mask[77 + 4] == 0);
    checks++;
    gz_token_batch_free(&b);
    CHECK(gz_tokenizer_token_id(t, "<|endoftext|>") == 49407 &&
          gz_tokenizer_id_to_token(t, 49408) == NULL && gz_tokenizer_id_to_token(t, -1) == NULL &&
          gz_tokenizer_token_id(t, "no such token") == -1);
    checks++;
    gz_tokenizer_free(t);

    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/blip_itm"), GZ_FAMILY_BLIP, 512, NULL, &t));
    if (!t) return;
    CHECK(gz_tokenizer_token_id(t, "[ENC]") == 30523 &&
          gz_tokenizer_token_id(t, "[DEC]") == 30522 && gz_tokenizer_pad_id(t) == 0 &&
          gz_tokenizer_max_length(t) == 35);
    CHECK_OK(gz_tokenizer_encode(t, "a b c d e", 4, &cut, &nc));
    CHECK(nc == 4 && cut && cut[0] == 101 && cut[3] == 102 &&
          cut[1] == gz_tokenizer_token_id(t, "a") && cut[2] == gz_tokenizer_token_id(t, "b"));
    checks += 2;
    free(cut);
    gz_tokenizer_free(t);
}

/* Delete the listed files of a test directory, then the directory. */
static void remove_files(const char *dir, const char *const *names) {
    char path[4096];
    for (; *names; names++) {
        snprintf(path, sizeof path, "%s/%s", dir, *names);
        remove(path);
    }
    remove(dir);
}

/* A directory with only tokenizer.json (+ tokenizer_config.json), built from a fixture's slow
 * files: vocabulary, merges (both JSON spellings) and added tokens come from it; every
 * tokenizer case must still give the fixture's ids. */
static void test_tokenizer_json(const fam *f, int merges_as_pairs) {
    char name[64], path[4096];
    snprintf(name, sizeof name, "tokjson_%s_%d", f->dir, merges_as_pairs);
    const char *dir = gz_test_tmpdir(name);
    json_error_t err;
    json_t *tj = json_object(), *model = json_object(), *added = json_array(), *vocab = NULL;
    if (f->family == GZ_FAMILY_CLIP) {
        vocab = json_load_file(gz_test_path("fixtures/%s/vocab.json", f->dir), 0, &err);
        json_t *merges = json_array();
        FILE *mf = fopen(gz_test_path("fixtures/%s/merges.txt", f->dir), "rb");
        char line[1024];
        int first = 1;
        while (mf && fgets(line, sizeof line, mf)) {
            line[strcspn(line, "\r\n")] = 0;
            if (first || !*line) {
                first = 0;
                continue;
            }
            char *sp = strchr(line, ' ');
            if (merges_as_pairs && sp) {
                *sp = 0;
                json_array_append_new(merges, json_pack("[ss]", line, sp + 1));
            } else {
                json_array_append_new(merges, json_string(line));
            }
        }
        if (mf) fclose(mf);
        json_object_set_new(model, "type", json_string("BPE"));
        json_object_set_new(model, "merges", merges);
        json_array_append_new(added, json_pack("{s:i,s:s,s:b}", "id", 49406, "content",
                                               "<|startoftext|>", "special", 1));
        json_array_append_new(added, json_pack("{s:i,s:s,s:b}", "id", 49407, "content",
                                               "<|endoftext|>", "special", 1));
    } else {
        vocab = json_object();
        FILE *vf = fopen(gz_test_path("fixtures/%s/vocab.txt", f->dir), "rb");
        char line[1024];
        int id = 0;
        while (vf && fgets(line, sizeof line, vf)) {
            line[strcspn(line, "\r\n")] = 0;
            json_object_set_new(vocab, line, json_integer(id++));
        }
        if (vf) fclose(vf);
        json_object_set_new(model, "type", json_string("WordPiece"));
        const char *sp[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
        const int spid[5] = {0, 100, 101, 102, 103};
        for (int k = 0; k < 5; k++)
            json_array_append_new(
                added, json_pack("{s:i,s:s,s:b}", "id", spid[k], "content", sp[k], "special", 1));
        if (f->family == GZ_FAMILY_BLIP) {
            json_array_append_new(
                added, json_pack("{s:i,s:s,s:b}", "id", 30522, "content", "[DEC]", "special", 1));
            json_array_append_new(
                added, json_pack("{s:i,s:s,s:b}", "id", 30523, "content", "[ENC]", "special", 1));
        }
    }
    CHECK(vocab != NULL);
    json_object_set_new(model, "vocab", vocab);
    json_object_set_new(tj, "model", model);
    json_object_set_new(tj, "added_tokens", added);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    CHECK(json_dump_file(tj, path, 0) == 0);
    json_decref(tj);
    json_t *cfg =
        json_load_file(gz_test_path("fixtures/%s/tokenizer_config.json", f->dir), 0, &err);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    CHECK(cfg && json_dump_file(cfg, path, 0) == 0);
    json_decref(cfg);

    gz_tokenizer *t = NULL;
    CHECK_OK(gz_tokenizer_load(dir, f->family, f->max_positions, NULL, &t));
    json_t *root = json_load_file(gz_test_path("fixtures/%s/tokenizer_cases.json", f->dir),
                                  JSON_ALLOW_NUL, &err);
    int n_ok = 0, n_all = 0;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(root, "cases"), i, c) {
        if (!t) break;
        n_all++;
        int ok =
            same_ids(t, json_object_get(c, "text"), json_object_get(c, "ids"), "tokenizer.json");
        CHECK(ok);
        n_ok += ok;
        checks++;
    }
    CHECK(n_all >= 60);
    printf("%s from tokenizer.json%s: %d/%d tokenizer cases exact\n", f->dir,
           f->family == GZ_FAMILY_CLIP
               ? (merges_as_pairs ? " (merges as pairs)" : " (merges as strings)")
               : "",
           n_ok, n_all);
    json_decref(root);
    gz_tokenizer_free(t);
    remove_files(dir, (const char *[]){"tokenizer.json", "tokenizer_config.json", NULL});
}

/* 1 if a and b tokenize to the same ids with t (prints both when not and loud). */
static int same_ids2(const gz_tokenizer *t, const char *a, const char *b, int loud) {
    int32_t *x = NULL, *y = NULL;
    int nx = 0, ny = 0;
    CHECK_OK(gz_tokenizer_encode(t, a, 0, &x, &nx));
    CHECK_OK(gz_tokenizer_encode(t, b, 0, &y, &ny));
    int ok = x && y && nx == ny && memcmp(x, y, (size_t)nx * sizeof *x) == 0;
    if (!ok && loud) {
        fprintf(stderr, "  expected the same ids for \"%s\" and \"%s\"\n", a, b);
        print_ids("first", x, nx);
        print_ids("second", y, ny);
    }
    free(x);
    free(y);
    checks++;
    return ok;
}
static int same_as(const gz_tokenizer *t, const char *a, const char *b) {
    return same_ids2(t, a, b, 1);
}
static int differ(const gz_tokenizer *t, const char *a, const char *b) {
    return !same_ids2(t, a, b, 0);
}

/* Documented ftfy / Python behaviour beyond the fixture cases, as equivalences between two
 * spellings (the expected side is what ftfy / str.lower() turn the first into). */
static void test_cleanup_rules(void) {
    gz_tokenizer *t = NULL, *tf = NULL, *b = NULL;
    gz_tokenizer_params p = gz_tokenizer_default_params();
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/clip"), GZ_FAMILY_CLIP, 77, &p, &t));
    p.clip_fast = 1;
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/clip"), GZ_FAMILY_CLIP, 77, &p, &tf));
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/blip_itm"), GZ_FAMILY_BLIP, 512, NULL, &b));
    if (!t || !tf || !b) goto out;
    /* HTML entities: named (html5 table, ftfy's upper-case variants), numeric, only with ';' */
    CHECK(same_as(t, "fish &amp; chips &eacute; &EACUTE; &hellip;",
                  "fish & chips \xc3\xa9 \xc3\x89 \xe2\x80\xa6"));
    CHECK(same_as(t, "&#x41;&#66;&#8364;", "AB\xe2\x82\xac"));
    CHECK(same_as(t, "&#128; &#150;", "\xe2\x82\xac \xe2\x80\x93")); /* cp1252 numeric references */
    CHECK(differ(t, "&#59;", ";")); /* kept: the result would contain ';' */
    CHECK(differ(t, "&amp", "&"));  /* kept: no ';' */
    CHECK(differ(t, "&nosuch;", ""));
    CHECK(same_as(t, "&amp;lt;", "<")); /* fixed until nothing changes */
    /* unescape_html="auto": off for a segment with '<' and every segment after it */
    CHECK(differ(t, "a &amp; <b>", "a & <b>"));
    CHECK(same_as(t, "&amp;\n<b> &amp;", "&\n<b> &amp;"));
    CHECK(differ(t, "<b>\n&amp;", "<b>\n&"));
    /* C1 controls through Windows-1252, ligatures / digraphs, width, quotes */
    CHECK(same_as(t, "\xc2\x80 \xc2\x93hi\xc2\x94", "\xe2\x82\xac \"hi\""));
    CHECK(same_as(t, "\xef\xac\x81ne \xc7\x86", "fine d\xc5\xbe"));
    CHECK(same_as(t, "\xc5\x89", "'n")); /* U+0149 -> U+02BC n -> 'n */
    CHECK(same_as(t, "\xef\xbd\xb6\xef\xbe\x9e\xe3\x80\x80x",
                  "\xe3\x82\xac x")); /* half-width ka + voiced mark */
    CHECK(same_as(t, "\xe2\x80\x98it\xe2\x80\x99s\xe2\x80\x9d \xca\xbc", "'it's\" '"));
    /* terminal escapes, control characters, line breaks */
    CHECK(same_as(t, "\x1b[1;31mred\x1b[0m text", "red text"));
    CHECK(same_as(t,
                  "a\x7f\x1b\xe2\x81\xaa"
                  "b\xef\xbb\xbf"
                  "c",
                  "abc"));
    CHECK(same_as(t,
                  "a\r\nb\rc\xe2\x80\xa8"
                  "d",
                  "a b c d"));
    /* Python str.lower(): final sigma, dotted capital I */
    CHECK(same_as(t, "\xce\x9f\xce\x94\xce\x9f\xce\xa3 \xce\xa3\xce\x91",
                  "\xce\xbf\xce\xb4\xce\xbf\xcf\x82 \xcf\x83\xce\xb1"));
    CHECK(same_as(t, "\xc4\xb0", "i\xcc\x87"));
    /* NFC in both modes; the fast option leaves ftfy-only fixes alone */
    CHECK(same_as(t, "cafe\xcc\x81", "caf\xc3\xa9"));
    CHECK(same_as(tf, "cafe\xcc\x81", "caf\xc3\xa9"));
    CHECK(differ(tf, "&amp;", "&"));
    CHECK(differ(tf, "\xef\xac\x81", "fi"));
    /* BERT: character-wise lower-casing (no final sigma), accents stripped, specials kept */
    CHECK(same_as(b, "\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x83"));
    CHECK(same_as(b, "\xc3\x85ngstr\xc3\xb6m [ENC]", "angstrom [ENC]"));
    CHECK(differ(b, "[enc]", "[ENC]"));
    CHECK(same_as(b,
                  "a\xe2\x80\xa8"
                  "b\xc2\xa0"
                  "c",
                  "a b c"));
out:
    gz_tokenizer_free(t);
    gz_tokenizer_free(tf);
    gz_tokenizer_free(b);
}

/* The merge cache: results must not depend on cache hits, cache clearing or threads. */
typedef struct {
    const gz_tokenizer *t;
    const char *const *texts;
    int n;
    const int32_t *const *want;
    const int *want_n;
    int bad;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *j = arg;
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < j->n; i++) {
            int32_t *ids = NULL;
            int n = 0;
            if (gz_tokenizer_encode(j->t, j->texts[i], 0, &ids, &n) != GZ_OK || n != j->want_n[i] ||
                memcmp(ids, j->want[i], (size_t)n * sizeof *ids) != 0)
                j->bad++;
            free(ids);
        }
    return NULL;
}

static void test_cache_threads(void) {
    gz_tokenizer *t = NULL;
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/clip"), GZ_FAMILY_CLIP, 77, NULL, &t));
    if (!t) return;
    enum { N = 3000, WORDS = 6 }; /* 18000 distinct words: more than the cache holds */
    char **texts = calloc(N, sizeof *texts);
    int32_t **want = calloc(N, sizeof *want);
    int *want_n = calloc(N, sizeof *want_n);
    unsigned seed = 12345;
    for (int i = 0; i < N; i++) {
        texts[i] = calloc(WORDS * 12 + 1, 1);
        for (int w = 0; w < WORDS; w++) {
            int len = 3 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 8;
            for (int k = 0; k < len; k++)
                texts[i][strlen(texts[i])] =
                    (char)('a' + ((seed = seed * 1103515245u + 12345u) >> 16) % 26);
            strcat(texts[i], " ");
        }
        CHECK_OK(gz_tokenizer_encode(t, texts[i], 0, &want[i], &want_n[i]));
    }
    thread_job jobs[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        jobs[k] =
            (thread_job){t, (const char *const *)texts, N, (const int32_t *const *)want, want_n, 0};
        CHECK(pthread_create(&th[k], NULL, thread_main, &jobs[k]) == 0);
    }
    int bad = 0;
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        bad += jobs[k].bad;
    }
    CHECK(bad == 0);
    checks++;
    printf("clip: %d texts x 4 threads x 3 rounds, cache cleared and refilled: %d mismatches\n", N,
           bad);
    for (int i = 0; i < N; i++) {
        free(texts[i]);
        free(want[i]);
    }
    free(texts);
    free(want);
    free(want_n);
    gz_tokenizer_free(t);
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int copy_file(const char *src, const char *dst) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    int rc = (a && b) ? 0 : -1;
    char buf[65536];
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) rc = -1;
    if (a) fclose(a);
    if (b && fclose(b)) rc = -1;
    return rc;
}

static void test_errors(void) {
    char path[4096];
    const char *dir = gz_test_tmpdir("tokenizer_errors");
    gz_tokenizer *t = NULL;
    /* missing vocabulary */
    gz_status s = gz_tokenizer_load(dir, GZ_FAMILY_BLIP, 512, NULL, &t);
    CHECK(s == GZ_ENOTFOUND && t == NULL && strstr(gz_last_error(), "vocab.txt"));
    s = gz_tokenizer_load(dir, GZ_FAMILY_CLIP, 77, NULL, &t);
    CHECK(s == GZ_ENOTFOUND && t == NULL && strstr(gz_last_error(), "vocab.json"));
    /* corrupt tokenizer_config.json */
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    CHECK(write_file(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n") == 0);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    CHECK(write_file(path, "{\"do_lower_case\": true,,}") == 0);
    s = gz_tokenizer_load(dir, GZ_FAMILY_BLIP, 512, NULL, &t);
    CHECK(s == GZ_EINVAL && t == NULL && strstr(gz_last_error(), "tokenizer_config.json"));
    /* a tiny valid WordPiece model: unknown words -> [UNK] */
    CHECK(write_file(path, "{\"do_lower_case\": true, \"model_max_length\": 8}") == 0);
    CHECK_OK(gz_tokenizer_load(dir, GZ_FAMILY_BLIP, 512, NULL, &t));
    if (t) {
        int32_t *ids = NULL;
        int n = 0;
        CHECK_OK(gz_tokenizer_encode(t, "Hello world", 0, &ids, &n));
        CHECK(n == 4 && ids && ids[0] == 2 && ids[1] == 5 && ids[2] == 1 && ids[3] == 3);
        CHECK(gz_tokenizer_max_length(t) == 8);
        free(ids);
        gz_tokenizer_free(t);
        t = NULL;
    }
    /* corrupt vocab.json / missing merges.txt */
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    CHECK(write_file(path, "{\"a\": 0, \"b\": ") == 0);
    s = gz_tokenizer_load(dir, GZ_FAMILY_CLIP, 77, NULL, &t);
    CHECK(s == GZ_EINVAL && t == NULL && strstr(gz_last_error(), "vocab.json"));
    CHECK(copy_file(gz_test_path("fixtures/clip/vocab.json"), path) == 0);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    CHECK(write_file(path, "{}") == 0);
    s = gz_tokenizer_load(dir, GZ_FAMILY_CLIP, 77, NULL, &t);
    CHECK(s == GZ_ENOTFOUND && t == NULL && strstr(gz_last_error(), "merges.txt"));
    /* a FIFO named merges.txt is refused, not waited on (opening it used to block) */
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    CHECK(mkfifo(path, 0600) == 0);
    s = gz_tokenizer_load(dir, GZ_FAMILY_CLIP, 77, NULL, &t);
    CHECK(s == GZ_EIO && t == NULL && strstr(gz_last_error(), "merges.txt") &&
          strstr(gz_last_error(), "not a regular file"));
    CHECK(remove(path) == 0);
    CHECK(write_file(path, "#version: 0.2\nc a t\n") == 0);
    s = gz_tokenizer_load(dir, GZ_FAMILY_CLIP, 77, NULL, &t);
    CHECK(s == GZ_EINVAL && t == NULL && strstr(gz_last_error(), "merges.txt"));
    checks += 13;
    remove_files(dir, (const char *[]){"vocab.txt", "vocab.json", "merges.txt",
                                       "tokenizer_config.json", NULL});
}

/* Speed: encode the captions many times (exercises the merge cache); also reported. */
static void test_speed(json_t *inputs) {
    gz_tokenizer *t = NULL;
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/clip"), GZ_FAMILY_CLIP, 77, NULL, &t));
    if (!t) return;
    const json_t *caps = json_object_get(inputs, "captions");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    size_t bytes = 0;
    for (int r = 0; r < 200; r++)
        for (size_t i = 0; i < json_array_size(caps); i++) {
            const char *s = json_string_value(json_object_get(json_array_get(caps, i), "text"));
            int32_t *ids = NULL;
            int n = 0;
            gz_tokenizer_encode(t, s, 77, &ids, &n);
            free(ids);
            bytes += strlen(s);
        }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double sec = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    printf("clip encode speed: %.1f MB/s (%zu bytes in %.3f s)\n", (double)bytes / 1e6 / sec, bytes,
           sec);
    gz_tokenizer_free(t);
}

/* The O(len log len) BPE of a word against the plain transcription of openai's bpe(), on words
 * that exercise many merges (few letters, runs, repeats, multi-byte characters). */
static void test_bpe_heap_vs_plain(void) {
    gz_tokenizer *t = NULL;
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/clip"), GZ_FAMILY_CLIP, 77, NULL, &t));
    if (!t) return;
    static const char *const alphabets[] = {"aeinrst", "a", "ab", "thequickbrownfox", "e\xc3\xa9o"};
    unsigned seed = 777;
    int bad = 0, words = 0;
    char w[600];
    for (int a = 0; a < 5; a++)
        for (int k = 0; k < 120; k++) {
            const char *alpha = alphabets[a];
            size_t na = strlen(alpha), len = 1 + ((seed = seed * 1103515245u + 12345u) >> 16) % 500;
            for (size_t i = 0; i < len; i++) /* may split a UTF-8 sequence: bytes are bytes */
                w[i] = alpha[((seed = seed * 1103515245u + 12345u) >> 16) % na];
            tk_cps plain = {0}, heap = {0};
            CHECK(gz_tok_bpe_word(t, w, len, 1, &plain) == 0);
            CHECK(gz_tok_bpe_word(t, w, len, 0, &heap) == 0);
            if (plain.n != heap.n || memcmp(plain.v, heap.v, plain.n * sizeof *plain.v) != 0) {
                if (!bad) fprintf(stderr, "bpe heap vs plain differ on %.*s\n", (int)len, w);
                bad++;
            }
            words++;
            gz_tok_cps_free(&plain);
            gz_tok_cps_free(&heap);
        }
    CHECK(bad == 0);
    checks++;
    printf("clip bpe: %d words, heap == plain in %d\n", words, words - bad);
    gz_tokenizer_free(t);
}

/* Hostile lengths: a 400 KB word (used to take 29 s: the merge loop was quadratic per word) and
 * a 10 MB text of words (truncated to 77 ids, so tokenising stops early). The test's timeout in
 * tests/CMakeLists.txt bounds them; here: the ids are those of a shorter text with the same
 * start, and empty text gives the two special tokens. */
static void test_long_texts(void) {
    for (int f = 0; f < 3; f++) {
        gz_tokenizer *t = NULL;
        CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/%s", FAMS[f].dir), FAMS[f].family,
                                   FAMS[f].max_positions, NULL, &t));
        if (!t) continue;
        int ml = gz_tokenizer_max_length(t);
        size_t big = (size_t)10 << 20, word = (size_t)400 << 10;
        char *text = malloc(big + 1);
        if (!text) return;
        static const char phrase[] = "a dog runs on the beach, ";
        for (size_t i = 0; i < big; i++)
            text[i] = phrase[i % (sizeof phrase - 1)];
        text[big] = 0;
        int32_t *ids = NULL, *want = NULL;
        int n = 0, want_n = 0;
        CHECK_OK(gz_tokenizer_encode(t, text, ml, &ids, &n));
        text[4096] = 0; /* enough words for any max length here */
        CHECK_OK(gz_tokenizer_encode(t, text, ml, &want, &want_n));
        CHECK(n == ml && n == want_n && memcmp(ids, want, (size_t)n * sizeof *ids) == 0);
        free(ids);
        free(want);
        for (size_t i = 0; i < word; i++) /* one word: letters without a break */
            text[i] = "abcdefghij"[(i * 7 + i / 3) % 10];
        text[word] = 0;
        CHECK_OK(gz_tokenizer_encode(t, text, ml, &ids, &n));
        CHECK(n >= 2 && n <= ml && ids[0] == gz_tokenizer_bos_id(t));
        free(ids);
        CHECK_OK(gz_tokenizer_encode(t, text, 0, &ids, &n)); /* untruncated: the whole word */
        CHECK(n >= 2 && ids[n - 1] == gz_tokenizer_eos_id(t));
        free(ids);
        CHECK_OK(gz_tokenizer_encode_n(t, "", 0, ml, &ids, &n));
        CHECK(n == 2 && ids[0] == gz_tokenizer_bos_id(t) && ids[1] == gz_tokenizer_eos_id(t));
        free(ids);
        checks += 5;
        printf("%s: 10 MB text -> %d ids, 400 KB word ok\n", FAMS[f].dir, want_n);
        free(text);
        gz_tokenizer_free(t);
    }
}

int main(void) {
    json_error_t err;
    json_t *inputs = json_load_file(gz_test_path("fixtures/inputs.json"), 0, &err);
    CHECK(inputs != NULL);
    for (size_t i = 0; i < sizeof FAMS / sizeof FAMS[0]; i++) {
        test_cases(&FAMS[i]);
        if (inputs) test_batch(&FAMS[i], inputs);
    }
    test_truncation();
    test_cleanup_rules();
    for (size_t i = 0; i < sizeof FAMS / sizeof FAMS[0]; i++)
        test_tokenizer_json(&FAMS[i], 0);
    test_tokenizer_json(&FAMS[1], 1);
    test_cache_threads();
    test_bpe_heap_vs_plain();
    test_long_texts();
    test_errors();
    if (inputs) test_speed(inputs);
    json_decref(inputs);
    printf("checked %d tokenizer assertions\n", checks);
    return gz_test_finish("text_tokenizer", checks);
}
