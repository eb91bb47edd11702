/* test_core_config.c - config.json and preprocessor_config.json parsing: the sparse fixture
 * configs must give every value of config.full.json (transformers' own defaults applied). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "testutil.h"

static int checks;
static char tmp[1100];

#define EXPECT_INT(what, got, want)                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if ((long long)(got) != (long long)(want)) {                                               \
            fprintf(stderr, "%s:%d: %s: %s = %lld, want %lld\n", __FILE__, __LINE__, what, #got,   \
                    (long long)(got), (long long)(want));                                          \
            gz_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define EXPECT_STATUS(expr, want) CHECK_STATUS_COUNTED(checks, expr, want)

static long long jint(const json_t *o, const char *k, long long dflt) {
    const json_t *v = json_object_get(o, k);
    if (!v) return dflt;
    if (json_is_null(v)) return -1;
    return json_integer_value(v);
}

static gz_act act_of(const char *s) {
    if (!strcmp(s, "gelu")) return GZ_ACT_GELU;
    if (!strcmp(s, "quick_gelu")) return GZ_ACT_QUICK_GELU;
    if (!strcmp(s, "relu")) return GZ_ACT_RELU;
    return GZ_ACT_GELU_TANH;
}

/* Compare a parsed config with the full JSON (every value written out by transformers). */
static void compare_full(const char *what, const gz_model_config *c, const json_t *full) {
    const json_t *t = json_object_get(full, "text_config");
    const json_t *v = json_object_get(full, "vision_config");
    const char *mt = json_string_value(json_object_get(full, "model_type"));
    int blip = !strcmp(mt, "blip"), cn = !strcmp(mt, "chinese_clip");
    CHECK(!strcmp(c->model_type, mt));
    CHECK(!strcmp(c->architecture,
                  json_string_value(json_array_get(json_object_get(full, "architectures"), 0))));
    EXPECT_INT(what, c->family,
               blip ? GZ_FAMILY_BLIP
               : cn ? GZ_FAMILY_CHINESE_CLIP
                    : GZ_FAMILY_CLIP);
    EXPECT_INT(what, c->text.hidden_size, jint(t, "hidden_size", -99));
    EXPECT_INT(what, c->text.num_layers, jint(t, "num_hidden_layers", -99));
    EXPECT_INT(what, c->text.num_heads, jint(t, "num_attention_heads", -99));
    EXPECT_INT(what, c->text.intermediate_size, jint(t, "intermediate_size", -99));
    EXPECT_INT(what, c->text.vocab_size, jint(t, "vocab_size", -99));
    EXPECT_INT(what, c->text.max_position_embeddings, jint(t, "max_position_embeddings", -99));
    EXPECT_INT(what, c->text.type_vocab_size, cn ? jint(t, "type_vocab_size", -99) : 0);
    EXPECT_INT(what, c->text.encoder_hidden_size, blip ? jint(t, "encoder_hidden_size", -99) : 0);
    EXPECT_INT(what, c->text.pad_token_id, jint(t, "pad_token_id", -99));
    EXPECT_INT(what, c->text.bos_token_id, jint(t, "bos_token_id", -99));
    EXPECT_INT(what, c->text.eos_token_id, jint(t, "eos_token_id", -99));
    EXPECT_INT(what, c->text.act, act_of(json_string_value(json_object_get(t, "hidden_act"))));
    CHECK(c->text.layer_norm_eps == (float)json_number_value(json_object_get(t, "layer_norm_eps")));
    EXPECT_INT(what, c->vision.hidden_size, jint(v, "hidden_size", -99));
    EXPECT_INT(what, c->vision.num_layers, jint(v, "num_hidden_layers", -99));
    EXPECT_INT(what, c->vision.num_heads, jint(v, "num_attention_heads", -99));
    EXPECT_INT(what, c->vision.intermediate_size, jint(v, "intermediate_size", -99));
    EXPECT_INT(what, c->vision.image_size, jint(v, "image_size", -99));
    EXPECT_INT(what, c->vision.patch_size, jint(v, "patch_size", -99));
    EXPECT_INT(what, c->vision.num_channels, jint(v, "num_channels", 3)); /* BLIP: always 3 */
    EXPECT_INT(what, c->vision.act, act_of(json_string_value(json_object_get(v, "hidden_act"))));
    CHECK(c->vision.layer_norm_eps ==
          (float)json_number_value(json_object_get(v, "layer_norm_eps")));
    EXPECT_INT(what, c->projection_dim,
               jint(full, blip ? "image_text_hidden_size" : "projection_dim", -99));
    CHECK(c->logit_scale_init ==
          (float)json_number_value(json_object_get(full, "logit_scale_init_value")));
    checks += 5;
}

static void test_fixture_configs(void) {
    const char *fams[] = {"blip_itm", "clip", "chinese_clip"};
    for (int i = 0; i < 3; i++) {
        json_error_t err;
        json_t *full =
            json_load_file(gz_test_path("fixtures/%s/config.full.json", fams[i]), 0, &err);
        CHECK(full != NULL);
        checks++;
        if (!full) continue;
        gz_model_config c;
        char what[96];
        CHECK_OK(gz_config_load(gz_test_path("fixtures/%s/config.json", fams[i]), &c));
        snprintf(what, sizeof what, "%s/config.json", fams[i]);
        compare_full(what, &c, full);
        /* the full file parses to the same values */
        CHECK_OK(gz_config_load(gz_test_path("fixtures/%s/config.full.json", fams[i]), &c));
        snprintf(what, sizeof what, "%s/config.full.json", fams[i]);
        compare_full(what, &c, full);
        checks += 2;
        json_decref(full);
    }
}

static const char *write_tmp(const char *name, const char *text) {
    static char path[4][1200];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", tmp, name);
    FILE *fp = fopen(p, "w");
    fputs(text, fp);
    fclose(fp);
    return p;
}

static void test_defaults(void) {
    gz_model_config c;
    /* BlipConfig() with no sub-configs */
    CHECK_OK(gz_config_load(write_tmp("c.json", "{\"model_type\": \"blip\"}"), &c));
    EXPECT_INT("blip defaults", c.text.hidden_size, 768);
    EXPECT_INT("blip defaults", c.text.num_heads, 8);
    EXPECT_INT("blip defaults", c.text.vocab_size, 30524);
    EXPECT_INT("blip defaults", c.text.bos_token_id, 30522);
    EXPECT_INT("blip defaults", c.text.encoder_hidden_size, 768);
    EXPECT_INT("blip defaults", c.vision.num_heads, 12);
    EXPECT_INT("blip defaults", c.vision.image_size, 384);
    EXPECT_INT("blip defaults", c.vision.patch_size, 16);
    EXPECT_INT("blip defaults", c.projection_dim, 256);
    CHECK(c.text.layer_norm_eps == 1e-12f && c.vision.layer_norm_eps == 1e-5f);
    /* encoder_hidden_size always follows the vision width */
    CHECK_OK(
        gz_config_load(write_tmp("c.json", "{\"model_type\": \"blip\", \"text_config\": "
                                           "{\"encoder_hidden_size\": 5}, \"vision_config\": "
                                           "{\"hidden_size\": 1024, \"num_attention_heads\": 16}}"),
                       &c));
    EXPECT_INT("blip large", c.text.encoder_hidden_size, 1024);
    CHECK_OK(gz_config_load(write_tmp("c.json", "{\"model_type\": \"clip\"}"), &c));
    EXPECT_INT("clip defaults", c.text.hidden_size, 512);
    EXPECT_INT("clip defaults", c.text.max_position_embeddings, 77);
    EXPECT_INT("clip defaults", c.text.eos_token_id, 49407);
    EXPECT_INT("clip defaults", c.text.act, GZ_ACT_QUICK_GELU);
    EXPECT_INT("clip defaults", c.vision.patch_size, 32);
    EXPECT_INT("clip defaults", c.vision.image_size, 224);
    EXPECT_INT("clip defaults", c.projection_dim, 512);
    CHECK_OK(gz_config_load(write_tmp("c.json", "{\"model_type\": \"chinese_clip\"}"), &c));
    EXPECT_INT("chinese_clip defaults", c.text.type_vocab_size, 2);
    EXPECT_INT("chinese_clip defaults", c.text.vocab_size, 30522);
    EXPECT_INT("chinese_clip defaults", c.text.num_heads, 12);
    EXPECT_INT("chinese_clip defaults", c.text.act, GZ_ACT_GELU);
    EXPECT_INT("chinese_clip defaults", c.vision.act, GZ_ACT_QUICK_GELU);
    EXPECT_INT("chinese_clip defaults", c.text.bos_token_id, -1);
    /* old CLIP configs: *_config_dict overrides *_config; activation names */
    CHECK_OK(gz_config_load(
        write_tmp("c.json", "{\"model_type\": \"clip\", \"text_config\": {\"hidden_size\": 64},"
                            " \"text_config_dict\": {\"hidden_size\": 128, \"hidden_act\": "
                            "\"gelu_pytorch_tanh\"}, \"vision_config_dict\": {\"hidden_act\": "
                            "\"gelu\", \"patch_size\": 14, \"image_size\": 336}}"),
        &c));
    EXPECT_INT("clip config_dict", c.text.hidden_size, 128);
    EXPECT_INT("clip config_dict", c.text.act, GZ_ACT_GELU_TANH);
    EXPECT_INT("clip config_dict", c.vision.act, GZ_ACT_GELU);
    EXPECT_INT("clip config_dict", c.vision.patch_size, 14);
    CHECK(!strcmp(gz_act_name(GZ_ACT_QUICK_GELU), "quick_gelu"));
    checks += 11;
}

static void test_errors(void) {
    gz_model_config c;
    EXPECT_STATUS(gz_config_load(write_tmp("c.json", "{\"model_type\": \"llama\"}"), &c),
                  GZ_EUNSUPPORTED);
    CHECK(strstr(gz_last_error(), "llama") && strstr(gz_last_error(), "blip") &&
          strstr(gz_last_error(), "chinese_clip") && strstr(gz_last_error(), "c.json"));
    EXPECT_STATUS(gz_config_load(write_tmp("c.json", "{\"architectures\": []}"), &c), GZ_EINVAL);
    EXPECT_STATUS(gz_config_load(write_tmp("c.json", "{\"model_type\": \"clip\", "), &c),
                  GZ_EINVAL);
    CHECK(strstr(gz_last_error(), "JSON") != NULL);
    EXPECT_STATUS(gz_config_load(write_tmp("c.json", "[1]"), &c), GZ_EINVAL);
    EXPECT_STATUS(gz_config_load(write_tmp("c.json", ""), &c), GZ_EINVAL);
    EXPECT_STATUS(gz_config_load("/nonexistent/config.json", &c), GZ_EIO);
    CHECK(strstr(gz_last_error(), "/nonexistent/config.json") != NULL);
    EXPECT_STATUS(gz_config_load(write_tmp("c.json", "{\"model_type\": \"clip\", \"text_config\": "
                                                     "{\"hidden_act\": \"swish\"}}"),
                                 &c),
                  GZ_EUNSUPPORTED);
    CHECK(strstr(gz_last_error(), "swish") != NULL);
    EXPECT_STATUS(gz_config_load(write_tmp("c.json", "{\"model_type\": \"clip\", \"text_config\": "
                                                     "{\"hidden_size\": \"big\"}}"),
                                 &c),
                  GZ_EINVAL);
    CHECK(strstr(gz_last_error(), "hidden_size") != NULL);
    EXPECT_STATUS(
        gz_config_load(write_tmp("c.json", "{\"model_type\": \"clip\", \"vision_config\": "
                                           "{\"hidden_size\": 100, \"num_attention_heads\": 3}}"),
                       &c),
        GZ_EINVAL);
    EXPECT_STATUS(
        gz_config_load(write_tmp("c.json", "{\"model_type\": \"blip\", \"vision_config\": "
                                           "{\"image_size\": 100}}"),
                       &c),
        GZ_EINVAL);
    EXPECT_STATUS(
        gz_config_load(write_tmp("c.json", "{\"model_type\": \"blip\", \"text_config\": 3}"), &c),
        GZ_EINVAL);
    checks += 5;
}

static void test_preproc(void) {
    gz_preproc_config p;
    CHECK_OK(gz_preproc_config_load(gz_test_path("fixtures/blip_itm/preprocessor_config.json"),
                                    GZ_FAMILY_BLIP, &p));
    EXPECT_INT("blip pre", p.do_resize, 1);
    EXPECT_INT("blip pre", p.size_shortest_edge, 0);
    EXPECT_INT("blip pre", p.size_height, 64);
    EXPECT_INT("blip pre", p.size_width, 64);
    EXPECT_INT("blip pre", p.do_center_crop, 0);
    EXPECT_INT("blip pre", p.resample, 3);
    EXPECT_INT("blip pre", p.do_convert_rgb, 1);
    CHECK(fabs(p.rescale_factor - 1.0 / 255) < 1e-12 && p.do_rescale && p.do_normalize);
    CHECK(p.image_mean[0] == 0.48145466f && p.image_mean[2] == 0.40821073f &&
          p.image_std[1] == 0.26130258f);
    CHECK_OK(gz_preproc_config_load(gz_test_path("fixtures/clip/preprocessor_config.json"),
                                    GZ_FAMILY_CLIP, &p));
    EXPECT_INT("clip pre", p.size_shortest_edge, 48);
    EXPECT_INT("clip pre", p.do_center_crop, 1);
    EXPECT_INT("clip pre", p.crop_height, 48);
    EXPECT_INT("clip pre", p.crop_width, 48);
    CHECK_OK(gz_preproc_config_load(gz_test_path("fixtures/chinese_clip/preprocessor_config.json"),
                                    GZ_FAMILY_CHINESE_CLIP, &p));
    EXPECT_INT("chinese_clip pre", p.size_shortest_edge, 0);
    EXPECT_INT("chinese_clip pre", p.size_height, 40);
    EXPECT_INT("chinese_clip pre", p.size_width, 40);
    EXPECT_INT("chinese_clip pre", p.do_center_crop, 0);
    /* defaults per family for an empty file; unknown keys are ignored */
    const char *e = write_tmp("p.json", "{\"future_key\": [1, {\"x\": null}]}");
    CHECK_OK(gz_preproc_config_load(e, GZ_FAMILY_BLIP, &p));
    EXPECT_INT("blip pre defaults", p.size_height, 384);
    EXPECT_INT("blip pre defaults", p.do_center_crop, 0);
    CHECK_OK(gz_preproc_config_load(e, GZ_FAMILY_CLIP, &p));
    EXPECT_INT("clip pre defaults", p.size_shortest_edge, 224);
    EXPECT_INT("clip pre defaults", p.crop_height, 224);
    EXPECT_INT("clip pre defaults", p.do_center_crop, 1);
    CHECK(p.image_std[0] == 0.26862954f);
    /* legacy integer sizes */
    e = write_tmp("p.json", "{\"size\": 336, \"crop_size\": 320, \"image_mean\": [0.5, 0.5, 0.5]}");
    CHECK_OK(gz_preproc_config_load(e, GZ_FAMILY_CLIP, &p));
    EXPECT_INT("int sizes", p.size_shortest_edge, 336);
    EXPECT_INT("int sizes", p.crop_width, 320);
    CHECK(p.image_mean[1] == 0.5f);
    CHECK_OK(gz_preproc_config_load(e, GZ_FAMILY_BLIP, &p));
    EXPECT_INT("int sizes blip", p.size_height, 336);
    EXPECT_INT("int sizes blip", p.size_width, 336);
    /* errors */
    EXPECT_STATUS(gz_preproc_config_load(write_tmp("p.json", "{\"size\": {\"width\": 3}}"),
                                         GZ_FAMILY_BLIP, &p),
                  GZ_EINVAL);
    EXPECT_STATUS(gz_preproc_config_load(write_tmp("p.json", "{\"image_std\": [1, 0, 1]}"),
                                         GZ_FAMILY_CLIP, &p),
                  GZ_EINVAL);
    EXPECT_STATUS(
        gz_preproc_config_load(write_tmp("p.json", "{\"image_mean\": [1, 2]}"), GZ_FAMILY_CLIP, &p),
        GZ_EINVAL);
    EXPECT_STATUS(
        gz_preproc_config_load(write_tmp("p.json", "{\"do_resize\": "), GZ_FAMILY_CLIP, &p),
        GZ_EINVAL);
    EXPECT_STATUS(gz_preproc_config_load("/nonexistent/p.json", GZ_FAMILY_CLIP, &p), GZ_EIO);
    checks += 12;
}

int main(void) {
    snprintf(tmp, sizeof tmp, "%s", gz_test_tmpdir("config"));
    test_fixture_configs();
    test_defaults();
    test_errors();
    test_preproc();
    return gz_test_finish("core_config", checks);
}
