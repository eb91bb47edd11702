/* test_fusion_torchbin.c - a model directory holding pytorch_model.bin (or a sharded
 * pytorch_model.bin.index.json) instead of model.safetensors, end to end through gaze.h:
 * the Chinese-CLIP fixture's configs and tokenizer with tests/data/torchbin weights must give
 * the transformers reference embeddings of expected.safetensors (atol 1e-5). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/safetensors.h"
#include "gaze.h"
#include "testutil.h"

#define NT 12 /* captions in inputs.json */
#define NI 5  /* images */
#define ATOL 1e-5f

static int checks;

/* Symlink the fixture's configs and tokenizer, and the given torchbin files, into dir. */
static int make_dir(const char *dir, const char *const *bins, size_t nb) {
    static const char *const links[] = {"config.json", "preprocessor_config.json", "vocab.txt",
                                        "tokenizer_config.json", "special_tokens_map.json"};
    char a[4096], b[4096];
    int ok = 1;
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(a, sizeof a, "%s", gz_test_path("fixtures/chinese_clip/%s", links[i]));
        snprintf(b, sizeof b, "%s/%s", dir, links[i]);
        ok = ok && symlink(a, b) == 0;
    }
    for (size_t i = 0; i < nb; i += 2) { /* pairs: source in tests/data/torchbin, name in dir */
        snprintf(a, sizeof a, "%s", gz_test_path("torchbin/%s", bins[i]));
        snprintf(b, sizeof b, "%s/%s", dir, bins[i + 1]);
        ok = ok && symlink(a, b) == 0;
    }
    return ok;
}

static const float *want(gz_st_file *ex, const char *key, size_t n) {
    const float *p = NULL;
    checks++;
    if (gz_st_f32(ex, key, 0, NULL, &p) != GZ_OK || gz_st_find(ex, key)->numel != n) {
        fprintf(stderr, "expected tensor %s missing or of the wrong size\n", key);
        gz_test_failures++;
        return NULL;
    }
    return p;
}

/* Load dir, encode the captions and the fixture pixels, compare with <prefix>text_embeds /
 * <prefix>image_embeds; the fingerprint goes to fp. */
static void run_case(const char *label, const char *dir, const char *prefix, gz_st_file *ex,
                     const char *const *captions, char fp[65]) {
    gz_model *m = NULL;
    CHECK_OK(gz_model_load(dir, NULL, &m));
    checks++;
    fp[0] = 0;
    if (!m) return;
    const int E = gz_model_dim(m), S = gz_model_image_size(m);
    float *t = calloc((size_t)NT * (size_t)E, sizeof(float));
    float *im = calloc((size_t)NI * (size_t)E, sizeof(float));
    char key[64];
    CHECK_OK(gz_encode_texts(m, captions, NT, t));
    snprintf(key, sizeof key, "%stext_embeds", prefix);
    const float *w = want(ex, key, (size_t)NT * (size_t)E);
    checks++;
    if (w) {
        gz_check_close(label, t, w, (size_t)NT * (size_t)E, ATOL, 0);
        printf("  %-28s text_embeds  max diff %.3g\n", label,
               gz_max_abs_diff(t, w, (size_t)NT * E));
    }
    const float *pv = want(ex, "pixel_values", (size_t)NI * 3 * (size_t)S * (size_t)S);
    snprintf(key, sizeof key, "%simage_embeds", prefix);
    w = want(ex, key, (size_t)NI * (size_t)E);
    if (pv && w) {
        CHECK_OK(gz_encode_pixels(m, pv, NI, im));
        checks += 2;
        gz_check_close(label, im, w, (size_t)NI * (size_t)E, ATOL, 0);
        printf("  %-28s image_embeds max diff %.3g\n", label,
               gz_max_abs_diff(im, w, (size_t)NI * E));
    }
    CHECK_OK(gz_model_fingerprint(m, fp));
    checks++;
    free(t);
    free(im);
    gz_model_free(m);
}

int main(void) {
    json_error_t err;
    json_t *inputs = json_load_file(gz_test_path("fixtures/inputs.json"), 0, &err);
    json_t *caps = inputs ? json_object_get(inputs, "captions") : NULL;
    if (json_array_size(caps) != NT) {
        fprintf(stderr, "inputs.json: expected %d captions\n", NT);
        return 2;
    }
    const char *captions[NT];
    for (int i = 0; i < NT; i++)
        captions[i] = json_string_value(json_object_get(json_array_get(caps, i), "text"));
    gz_st_file *ex = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/chinese_clip/expected.safetensors"), &ex));
    if (!ex) return gz_test_finish("fusion_torchbin", checks);

    char base[1024], d[3][1200];
    snprintf(base, sizeof base, "%s", gz_test_tmpdir("fusion_torchbin"));
    static const char *const single32[] = {"chinese_clip.f32.bin", "pytorch_model.bin"};
    static const char *const single16[] = {"chinese_clip.f16.bin", "pytorch_model.bin"};
    static const char *const sharded[] = {
        "pytorch_model-00001-of-00002.bin", "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin", "pytorch_model-00002-of-00002.bin",
        "pytorch_model.bin.index.json",     "pytorch_model.bin.index.json"};
    const char *const *sets[3] = {single32, single16, sharded};
    const size_t set_n[3] = {2, 2, 6};
    for (int i = 0; i < 3; i++) {
        snprintf(d[i], sizeof d[i], "%s/m%d", base, i);
        CHECK(mkdir(d[i], 0700) == 0 && make_dir(d[i], sets[i], set_n[i]));
        checks++;
    }
    char fp[3][65], fp_again[65];
    run_case("pytorch_model.bin f32", d[0], "", ex, captions, fp[0]);
    run_case("pytorch_model.bin f16", d[1], "f16w.", ex, captions, fp[1]);
    run_case("2-shard .bin.index.json f16", d[2], "f16w.", ex, captions, fp[2]);
    run_case("pytorch_model.bin f32 again", d[0], "", ex, captions, fp_again);
    /* fingerprints: stable for the same weights, different for different weights */
    CHECK(fp[0][0] && strcmp(fp[0], fp_again) == 0);
    CHECK(strcmp(fp[0], fp[1]) != 0 && strcmp(fp[1], fp[2]) != 0 && strcmp(fp[0], fp[2]) != 0);
    checks += 2;
    gz_st_close(ex);
    json_decref(inputs);
    return gz_test_finish("fusion_torchbin", checks);
}
