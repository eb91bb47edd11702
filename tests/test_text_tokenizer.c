/* test_text_tokenizer.c - tokenizers vs the Hugging Face fixtures: every case of every
 * tokenizer_cases.json (ids, and tokens via id_to_token), the CLIP fast-tokenizer option vs
 * nfc_whitespace_lower_ids, the batch input_ids / attention_mask / token_type_ids of each
 * expected.safetensors, truncation, and load errors (missing vocabulary, corrupt JSON). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "tests/testutil.h"
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
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", (int)v[i]);
    fprintf(stderr, "\n");
}

/* Compare encode(text) with a JSON id array; returns 1 if equal. */
static int same_ids(const gz_tokenizer *t, const json_t *jtext, const json_t *want, const char *label) {
    int32_t *ids = NULL;
    int n = 0;
    const char *text = json_string_value(jtext);
    CHECK_OK(gz_tokenizer_encode_n(t, text, json_string_length(jtext), 0, &ids, &n));
    int ok = ids && (size_t)n == json_array_size(want);
    for (int i = 0; ok && i < n; i++) ok = ids[i] == json_integer_value(json_array_get(want, (size_t)i));
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
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/%s", f->dir), f->family, f->max_positions, &p, &t));
    if (!t) return;
    if (f->family == GZ_FAMILY_CLIP) {
        p.clip_fast = 1;
        CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/%s", f->dir), f->family, f->max_positions, &p, &tf));
    }
    json_error_t err;
    json_t *root = json_load_file(gz_test_path("fixtures/%s/tokenizer_cases.json", f->dir), JSON_ALLOW_NUL, &err);
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
            const char *got = gz_tokenizer_id_to_token(t, (int32_t)json_integer_value(json_array_get(ids, k)));
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
    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/%s", f->dir), f->family, f->max_positions, NULL, &t));
    if (!t) return;
    const json_t *caps = json_object_get(inputs, "captions");
    int n = (int)json_array_size(caps);
    const char **texts = calloc((size_t)n, sizeof *texts);
    for (int i = 0; i < n; i++) texts[i] = json_string_value(json_object_get(json_array_get(caps, (size_t)i), "text"));
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
            fprintf(stderr, "  %s %s: row %d col %d got %d want %lld\n", f->dir, names[k], bad / b.len, bad % b.len,
                    (int)got[k][bad], (long long)want[bad]);
        CHECK(bad < 0 && (size_t)b.n * b.len == nw);
        checks++;
        printf("%s: batch %s (%d x %d) %s\n", f->dir, names[k], b.n, b.len, bad < 0 ? "exact" : "MISMATCH");
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
    for (int i = 0; i < 100; i++) strcat(text, "cat ");
    int32_t *full = NULL, *cut = NULL;
    int nf = 0, nc = 0;
    CHECK_OK(gz_tokenizer_encode(t, text, 0, &full, &nf));
    CHECK_OK(gz_tokenizer_encode(t, text, 77, &cut, &nc));
    CHECK(nf == 102 && nc == 77);
    CHECK(full && cut && cut[0] == 49406 && cut[76] == 49407 && memcmp(cut, full, 76 * sizeof *cut) == 0);
    checks += 2;
    free(full);
    free(cut);
    gz_token_batch b;
    const char *two[2] = {text, "a cat"};
    CHECK_OK(gz_tokenizer_encode_batch(t, two, 2, &b));
    CHECK(b.n == 2 && b.len == 77 && b.ids[77 + 3] == 49407 && b.ids[77 + 4] == gz_tokenizer_pad_id(t) &&
          b.mask[77 + 3] == 1 && b.mask[77 + 4] == 0);
    checks++;
    gz_token_batch_free(&b);
    CHECK(gz_tokenizer_token_id(t, "<|endoftext|>") == 49407 && gz_tokenizer_id_to_token(t, 49408) == NULL &&
          gz_tokenizer_id_to_token(t, -1) == NULL && gz_tokenizer_token_id(t, "no such token") == -1);
    checks++;
    gz_tokenizer_free(t);

    CHECK_OK(gz_tokenizer_load(gz_test_path("fixtures/blip_itm"), GZ_FAMILY_BLIP, 512, NULL, &t));
    if (!t) return;
    CHECK(gz_tokenizer_token_id(t, "[ENC]") == 30523 && gz_tokenizer_token_id(t, "[DEC]") == 30522 &&
          gz_tokenizer_pad_id(t) == 0 && gz_tokenizer_max_length(t) == 35);
    CHECK_OK(gz_tokenizer_encode(t, "a b c d e", 4, &cut, &nc));
    CHECK(nc == 4 && cut && cut[0] == 101 && cut[3] == 102 && cut[1] == gz_tokenizer_token_id(t, "a") &&
          cut[2] == gz_tokenizer_token_id(t, "b"));
    checks += 2;
    free(cut);
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
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    CHECK(write_file(path, "#version: 0.2\nc a t\n") == 0);
    s = gz_tokenizer_load(dir, GZ_FAMILY_CLIP, 77, NULL, &t);
    CHECK(s == GZ_EINVAL && t == NULL && strstr(gz_last_error(), "merges.txt"));
    checks += 10;
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
    printf("clip encode speed: %.1f MB/s (%zu bytes in %.3f s)\n", (double)bytes / 1e6 / sec, bytes, sec);
    gz_tokenizer_free(t);
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
    test_errors();
    if (inputs) test_speed(inputs);
    json_decref(inputs);
    printf("checked %d tokenizer assertions\n", checks);
    return gz_test_finish("text_tokenizer", checks);
}
