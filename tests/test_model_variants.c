/* test_model_variants.c - checkpoints as the Hugging Face Hub really holds them.
 *
 * tests/data/make_variants.py rebuilds the three fixture models the ways older transformers
 * versions and other tools saved them (old config styles, feature-extractor preprocessor
 * configs, I64 position_ids buffers, logit_scale in F16/F64, unknown tensors, gamma/beta
 * LayerNorm names, sharded and F16 weights, tokenizer.json-only and vocabulary-only
 * tokenizers) into the build directory, and lists them in variants.json. Every variant must
 * give the fixture's own expected outputs (expected.safetensors of transformers 4.40.2): the
 * token ids, the text embeddings of the 12 captions, the image embeddings of the 5 image files
 * and, for BLIP, the ITM probabilities of one image; the tolerances are test_model_load.c's.
 * The variants without a required tensor must fail with a message naming it.
 *
 * The variants are generated at test time (about 2 s, 65 MB in the build directory) rather
 * than committed: the weight files alone would add ~60 MB to the repository.
 *
 * The base fixtures already cover two Hub cases: none has the position_ids buffers that
 * transformers recomputes (non-persistent since 4.31), and the BLIP one is a retrieval
 * checkpoint without any text_decoder / lm head. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "gaze.h"
#include "testutil.h"

#define NT 12 /* captions */
#define NI 5  /* images */
#define EMAX 64

static int checks;
#define T(c) CHECK_COUNTED(checks, c)
#define T_OK(e) CHECK_OK_COUNTED(checks, e)

static const char *captions[NT];
static const char *images[NI];
static json_t *inputs;

static void load_inputs(void) {
    json_error_t err;
    inputs = json_load_file(gz_test_path("fixtures/inputs.json"), 0, &err);
    json_t *caps = json_object_get(inputs, "captions"), *ims = json_object_get(inputs, "images");
    if (!inputs || json_array_size(caps) != NT || json_array_size(ims) != NI) {
        fprintf(stderr, "fixtures/inputs.json: unreadable or not %d captions / %d images\n", NT,
                NI);
        exit(2);
    }
    for (int i = 0; i < NT; i++)
        captions[i] = json_string_value(json_object_get(json_array_get(caps, i), "text"));
    for (int i = 0; i < NI; i++)
        images[i] = json_string_value(json_object_get(json_array_get(ims, i), "file"));
}

/* Run make_variants.py into out with a python3 that has numpy (the pyenv shim may lack it). */
static int make_variants(const char *out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "for py in python3 /usr/bin/python3; do "
             "\"$py\" -c 'import numpy' 2>/dev/null && exec \"$py\" '%s' '%s'; done; "
             "echo 'no python3 with numpy' >&2; exit 127",
             gz_test_path("make_variants.py"), out);
    return system(cmd);
}

typedef struct {
    const char *name, *fixture, *kind, *prefix, *missing;
    gz_family family;
    const char *logit_dtype; /* dtype of logit_scale in the weights */
    int untruncated_only;
} variant;

static void compare(const char *label, const char *what, const float *got, const float *want,
                    size_t n, float atol, float rtol) {
    checks++;
    gz_test_close_report(label, 24, what, 26, got, want, n, atol, rtol);
}

/* The fixture tokenizer's model_max_length (the truncation length of the expected ids). */
static int fixture_max_length(const char *fixture) {
    json_t *j = json_load_file(gz_test_path("fixtures/%s/tokenizer_config.json", fixture), 0, NULL);
    int v = (int)json_integer_value(json_object_get(j, "model_max_length"));
    json_decref(j);
    return v;
}

/* skip[t] = 1 for the captions the fixture truncated, when the variant's tokenizer has no
 * model_max_length (untruncated_only): transformers does not truncate there and gaze caps at
 * max_position_embeddings, so those rows have no reference. */
static void truncated_rows(const variant *v, gz_st_file *ex, int skip[NT]) {
    memset(skip, 0, NT * sizeof *skip);
    if (!v->untruncated_only) return;
    int B = 0, L = 0;
    int32_t *mask = gz_test_expected_ids(ex, "attention_mask", &B, &L);
    const int fixture_max = fixture_max_length(v->fixture);
    for (int t = 0; mask && t < NT && t < B; t++) {
        int len = 0;
        for (int j = 0; j < L; j++)
            len += mask[t * L + j];
        skip[t] = len == fixture_max;
    }
    free(mask);
}

/* Texts: token ids and embeddings of every caption not skipped. */
static void check_texts(gz_model *m, const variant *v, gz_st_file *ex, const int skip[NT]) {
    const int E = gz_model_dim(m);
    int B = 0, L = 0;
    int32_t *ids = gz_test_expected_ids(ex, "input_ids", &B, &L);
    int32_t *mask = gz_test_expected_ids(ex, "attention_mask", &B, &L);
    const char *key = v->family == GZ_FAMILY_BLIP ? "itc_text_embeds" : "text_embeds";
    char name[64];
    snprintf(name, sizeof name, "%s%s", v->prefix, key);
    const float *want = gz_test_expected_f32(ex, v->name, name, NULL);
    float *emb = gz_test_alloc_f((size_t)NT * E);
    gz_status st = gz_encode_texts(m, captions, NT, emb);
    T_OK(st);
    for (int t = 0; st == GZ_OK && ids && mask && t < NT && t < B; t++) {
        if (skip[t]) continue;
        int len = 0;
        for (int j = 0; j < L; j++)
            len += mask[t * L + j];
        int32_t *got = NULL;
        int n = 0;
        T_OK(gz_model_tokenize(m, captions[t], -1, &got, &n));
        checks++;
        if (!got || n != len || memcmp(got, ids + (size_t)t * L, (size_t)n * sizeof *got) != 0) {
            fprintf(stderr, "%s: caption %d: token ids differ from input_ids (%d vs %d ids)\n",
                    v->name, t, n, len);
            gz_test_failures++;
        }
        free(got);
        char what[48];
        snprintf(what, sizeof what, "%s[%d]", key, t);
        if (want) compare(v->name, what, emb + (size_t)t * E, want + (size_t)t * E, E, 1e-5f, 0);
    }
    if (v->untruncated_only) T(gz_model_max_length(m) == (v->family == GZ_FAMILY_CLIP ? 77 : 512));
    free(emb);
    free(ids);
    free(mask);
}

/* Images from the fixture files (full decode, no EXIF: as the HF processors saw them), so the
 * preprocessing configuration is exercised; BLIP also matches image 1 against the captions. */
static void check_images(gz_model *m, const variant *v, gz_st_file *ex, const int skip[NT]) {
    const int E = gz_model_dim(m);
    gz_image imgs[NI];
    memset(imgs, 0, sizeof imgs);
    gz_image_params ip = gz_model_image_params(m);
    int ok = 1;
    for (int i = 0; i < NI; i++) {
        gz_status st = gz_image_load(gz_test_path("fixtures/images/%s", images[i]), &ip, &imgs[i]);
        T_OK(st);
        ok = ok && st == GZ_OK;
    }
    const char *key = v->family == GZ_FAMILY_BLIP ? "itc_image_embeds" : "image_embeds";
    char name[64];
    snprintf(name, sizeof name, "%s%s", v->prefix, key);
    const float *want = gz_test_expected_f32(ex, v->name, name, NULL);
    float emb[NI * EMAX];
    if (ok) {
        T_OK(gz_encode_images(m, imgs, NI, emb));
        compare(v->name, key, emb, want, (size_t)NI * E, 1e-5f, 0);
    }
    if (ok && v->family == GZ_FAMILY_BLIP) {
        gz_match r[NT];
        float prob[NT];
        T_OK(gz_match_image_texts(m, &imgs[1], captions, NT, r));
        snprintf(name, sizeof name, "%sitm_probs", v->prefix);
        const float *wp = gz_test_expected_f32(ex, v->name, name, NULL);
        for (int t = 0; t < NT; t++)
            prob[t] = skip[t] && wp ? wp[NT + t] : r[t].itm_prob;
        compare(v->name, "itm_probs (image 1)", prob, wp ? wp + NT : NULL, NT, 1e-5f, 0);
    }
    if (v->family != GZ_FAMILY_BLIP) {
        // logit_scale (~2.7) stored in F16 / BF16 is rounded by up to 2^-11 / 2^-8 relative,
        // which moves exp(logit_scale) by up to ~1.4e-3 / 1.1e-2 relative
        const float *ls = gz_test_expected_f32(ex, v->name, "logit_scale_exp", NULL);
        float got = gz_model_logit_scale(m);
        float rtol = strcmp(v->logit_dtype, "F16") == 0    ? 2e-3f
                     : strcmp(v->logit_dtype, "BF16") == 0 ? 1.2e-2f
                                                           : 1e-5f;
        compare(v->name, "logit_scale", &got, ls, 1, 0, rtol);
    }
    for (int i = 0; i < NI; i++)
        gz_image_free(&imgs[i]);
}

/* The error of a missing required tensor names it (and says where it was looked for). */
static void check_names_missing(const variant *v, gz_status st) {
    checks++;
    if (st == GZ_OK || !strstr(gz_last_error(), v->missing)) {
        fprintf(stderr, "%s: want an error naming %s, got status %d: %s\n", v->name, v->missing,
                (int)st, st == GZ_OK ? "(none)" : gz_last_error());
        gz_test_failures++;
    } else {
        printf("  %-24s error names the tensor: %s\n", v->name, gz_last_error());
    }
}

static void run_missing(gz_model *m, const variant *v) {
    if (strcmp(v->kind, "missing_text") == 0) {
        float emb[EMAX];
        check_names_missing(v, gz_encode_texts(m, captions, 1, emb));
        return;
    }
    gz_image im;
    memset(&im, 0, sizeof im);
    gz_image_params ip = gz_model_image_params(m);
    T_OK(gz_image_load(gz_test_path("fixtures/images/%s", images[0]), &ip, &im));
    if (strcmp(v->kind, "missing_image") == 0) {
        float emb[EMAX];
        check_names_missing(v, gz_encode_images(m, &im, 1, emb));
    } else {
        gz_match r[1];
        check_names_missing(v, gz_match_image_texts(m, &im, captions, 1, r));
        // the towers that are there still work
        float emb[EMAX];
        T_OK(gz_encode_texts(m, captions, 1, emb));
        T_OK(gz_encode_images(m, &im, 1, emb));
    }
    gz_image_free(&im);
}

static void run_variant(const char *root, const variant *v) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", root, v->name);
    gz_model_params mp = gz_model_default_params();
    mp.exif_orient = 0;
    mp.fast_decode = 0;
    gz_model *m = NULL;
    gz_status st = gz_model_load(dir, &mp, &m);
    if (strcmp(v->kind, "missing_load") == 0) {
        check_names_missing(v, st);
        gz_model_free(m);
        return;
    }
    T_OK(st);
    if (!m) return;
    T(gz_model_family(m) == v->family);
    if (strcmp(v->kind, "ok") != 0) {
        run_missing(m, v);
        gz_model_free(m);
        return;
    }
    gz_st_file *ex = NULL;
    T_OK(gz_st_open(gz_test_path("fixtures/%s/expected.safetensors", v->fixture), &ex));
    if (ex) {
        int skip[NT];
        truncated_rows(v, ex, skip);
        check_texts(m, v, ex, skip);
        check_images(m, v, ex, skip);
    }
    gz_st_close(ex);
    gz_model_free(m);
}

static const char *jstr(const json_t *o, const char *k, const char *dflt) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : dflt;
}

int main(void) {
    load_inputs();
    char root[2048];
    snprintf(root, sizeof root, "%s/tests/variants", GZ_BINARY_DIR);
    int rc = make_variants(root);
    if (rc != 0) {
        fprintf(stderr, "make_variants.py %s failed (status %d)\n", root, rc);
        return 1;
    }
    char list[2100];
    snprintf(list, sizeof list, "%s/variants.json", root);
    json_error_t err;
    json_t *vs = json_load_file(list, 0, &err);
    T(json_array_size(vs) >= 30); // every kind of variant for the three families
    int n_ok = 0, n_missing = 0;
    size_t i;
    json_t *o;
    json_array_foreach(vs, i, o) {
        const char *fam = jstr(o, "family", "");
        variant v = {
            .name = jstr(o, "name", "?"),
            .fixture = jstr(o, "fixture", "?"),
            .kind = jstr(o, "kind", "ok"),
            .prefix = jstr(o, "expect_prefix", ""),
            .missing = jstr(o, "missing", NULL),
            .family = strcmp(fam, "blip") == 0   ? GZ_FAMILY_BLIP
                      : strcmp(fam, "clip") == 0 ? GZ_FAMILY_CLIP
                                                 : GZ_FAMILY_CHINESE_CLIP,
            .untruncated_only = json_is_true(json_object_get(o, "untruncated_only")),
            .logit_dtype = jstr(o, "logit_scale_dtype", "F32"),
        };
        printf("%s (%s)\n", v.name, jstr(o, "what", ""));
        if (strcmp(v.kind, "ok") != 0 && !v.missing) {
            fprintf(stderr, "%s: a %s variant must say what is missing\n", v.name, v.kind);
            gz_test_failures++;
            continue;
        }
        run_variant(root, &v);
        if (strcmp(v.kind, "ok") == 0)
            n_ok++;
        else
            n_missing++;
    }
    T(n_ok >= 24 && n_missing >= 4);
    json_decref(vs);
    json_decref(inputs);
    return gz_test_finish("test_model_variants", checks);
}
