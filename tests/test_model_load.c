/* test_fusion_model.c - the gz_model facade end to end through the public API (gaze.h).
 *
 * For BLIP, CLIP and Chinese-CLIP fixture models with F32, F16 and BF16 weight files: the 12
 * captions of inputs.json, the 5 fixture image files (decoded with gz_image_load, EXIF not
 * applied, full decode) and the fixture pixel_values against the transformers references;
 * gz_match_image_texts / gz_match_text_images against itm_logits/itm_probs/itc_sim (BLIP) and
 * logits_per_image (CLIP family); re-ranking against an order computed here from the fixture
 * scores; fingerprints, lazy loading, image decode parameters and errors. */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/safetensors.h"
#include "gaze.h"
#include "testutil.h"

#define NT 12 /* captions */
#define NI 5  /* images */

static int checks;
static char *captions[NT];
static const char *images[NI];
static json_t *inputs;

typedef struct {
    const char *dir;
    gz_family family;
    const char *text_key, *image_key; /* normalised embeddings in expected.safetensors */
} family_case;

static const family_case CASES[] = {
    {"blip_itm", GZ_FAMILY_BLIP, "itc_text_embeds", "itc_image_embeds"},
    {"clip", GZ_FAMILY_CLIP, "text_embeds", "image_embeds"},
    {"chinese_clip", GZ_FAMILY_CHINESE_CLIP, "text_embeds", "image_embeds"},
};

typedef struct {
    const char *file;   /* NULL = default weights */
    const char *prefix; /* expected tensor prefix */
} weights_case;

static const weights_case WEIGHTS[] = {
    {NULL, ""},
    {"model.f16.safetensors", "f16w."},
    {"model.bf16.safetensors", "bf16w."},
};

static void load_inputs(void) {
    json_error_t err;
    inputs = json_load_file(gz_test_path("fixtures/inputs.json"), 0, &err);
    if (!inputs) {
        fprintf(stderr, "inputs.json: %s\n", err.text);
        exit(2);
    }
    json_t *caps = json_object_get(inputs, "captions"), *ims = json_object_get(inputs, "images");
    if (json_array_size(caps) != NT || json_array_size(ims) != NI) {
        fprintf(stderr, "inputs.json: expected %d captions and %d images\n", NT, NI);
        exit(2);
    }
    for (int i = 0; i < NT; i++)
        captions[i] = (char *)json_string_value(json_object_get(json_array_get(caps, i), "text"));
    for (int i = 0; i < NI; i++)
        images[i] = json_string_value(json_object_get(json_array_get(ims, i), "file"));
}

/* Expected tensor "<prefix><name>" with n elements; NULL (and a failure) if absent or of
 * another size. */
static const float *want(gz_st_file *ex, const char *prefix, const char *name, size_t n) {
    char key[128];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    const float *p = NULL;
    checks++;
    if (gz_st_f32(ex, key, 0, NULL, &p) != GZ_OK || gz_st_find(ex, key)->numel != n) {
        fprintf(stderr, "expected tensor %s missing or of the wrong size\n", key);
        gz_test_failures++;
        return NULL;
    }
    return p;
}

static void close_to(const char *label, const char *what, const float *got, const float *w,
                     size_t n, float atol, float rtol) {
    char full[200];
    snprintf(full, sizeof full, "%s %s", label, what);
    checks++;
    if (!w) return;
    gz_check_close(full, got, w, n, atol, rtol);
    printf("  %-30s %-28s max diff %.3g\n", label, what, gz_max_abs_diff(got, w, n));
}

/* Selection of the best remaining index by (score desc, index asc): an independent
 * reference for gz_rank_by_score. */
static void reference_order(const float *score, int n, int *order) {
    int used[64] = {0};
    for (int r = 0; r < n; r++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!used[i] && (best < 0 || score[i] > score[best])) best = i;
        used[best] = 1;
        order[r] = best;
    }
}

static void test_rank_unit(void) {
    gz_match s[6];
    memset(s, 0, sizeof s);
    const float sc[6] = {1.0f, 3.0f, -2.0f, 3.0f, 2.5f, 1.0f};
    for (int i = 0; i < 6; i++)
        s[i].score = sc[i];
    int order[6], want_order[6] = {1, 3, 4, 0, 5, 2};
    gz_rank_by_score(s, 6, order);
    checks++;
    CHECK(memcmp(order, want_order, sizeof order) == 0);
}

/* Matching: every image against all captions, then every caption against all images. */
static void check_matching(gz_model *m, const family_case *c, gz_st_file *ex, const char *pre,
                           const char *label, gz_image *imgs) {
    const int blip = c->family == GZ_FAMILY_BLIP;
    gz_match res[NI][NT];
    for (int i = 0; i < NI; i++)
        CHECK_OK(gz_match_image_texts(m, &imgs[i], (const char *const *)captions, NT, res[i]));
    float itc[NI * NT], logit[NI * NT], itm[NI * NT * 2], prob[NI * NT], score[NI * NT];
    for (int i = 0; i < NI; i++)
        for (int t = 0; t < NT; t++) {
            const gz_match *r = &res[i][t];
            itc[i * NT + t] = r->itc;
            logit[i * NT + t] = r->logit;
            itm[(i * NT + t) * 2] = r->itm_logit[0];
            itm[(i * NT + t) * 2 + 1] = r->itm_logit[1];
            prob[i * NT + t] = r->itm_prob;
            score[i * NT + t] = r->score;
        }
    float want_score[NI * NT];
    if (blip) {
        const float *sim = want(ex, pre, "itc_sim", NI * NT);
        const float *wl = want(ex, pre, "itm_logits", NI * NT * 2);
        const float *wp = want(ex, pre, "itm_probs", NI * NT);
        close_to(label, "match itc vs itc_sim", itc, sim, NI * NT, 1e-5f, 0);
        close_to(label, "match logit (= itc)", logit, sim, NI * NT, 1e-5f, 0);
        close_to(label, "match itm_logit", itm, wl, NI * NT * 2, 1e-4f, 1e-4f);
        close_to(label, "match itm_prob", prob, wp, NI * NT, 1e-5f, 0);
        if (!sim || !wl) return;
        for (int k = 0; k < NI * NT; k++)
            want_score[k] = wl[2 * k + 1] + sim[k];
        close_to(label, "match score (itm[1] + itc)", score, want_score, NI * NT, 1e-4f, 1e-4f);
    } else {
        const float *wl = want(ex, pre, "logits_per_image", NI * NT);
        const float *wi = want(ex, pre, c->image_key, NI * 24);
        const float *wt = want(ex, pre, c->text_key, NT * 24);
        close_to(label, "match logit", logit, wl, NI * NT, 1e-4f, 1e-4f);
        close_to(label, "match score (= logit)", score, wl, NI * NT, 1e-4f, 1e-4f);
        if (wi && wt) {
            float cos[NI * NT];
            for (int i = 0; i < NI; i++)
                for (int t = 0; t < NT; t++) {
                    double s = 0;
                    for (int e = 0; e < 24; e++)
                        s += (double)wi[i * 24 + e] * wt[t * 24 + e];
                    cos[i * NT + t] = (float)s;
                }
            close_to(label, "match itc (cosine)", itc, cos, NI * NT, 1e-5f, 0);
        }
        float zero[NI * NT * 2] = {0};
        close_to(label, "match itm fields are 0", itm, zero, NI * NT * 2, 0, 0);
        close_to(label, "match itm_prob is 0", prob, zero, NI * NT, 0, 0);
        if (!wl) return;
        memcpy(want_score, wl, sizeof want_score);
    }
    // re-rank each image's captions: the order from the fixture scores, computed here
    for (int i = 0; i < NI; i++) {
        int got[NT], ref[NT];
        gz_rank_by_score(res[i], NT, got);
        reference_order(want_score + i * NT, NT, ref);
        checks++;
        if (memcmp(got, ref, sizeof got) != 0) {
            // near-ties within the tolerance may swap: accept only swaps of close scores
            for (int r = 0; r < NT; r++)
                if (got[r] != ref[r] &&
                    fabsf(want_score[i * NT + got[r]] - want_score[i * NT + ref[r]]) > 2e-4f) {
                    fprintf(stderr, "%s: re-rank of image %d differs at rank %d: got %d want %d\n",
                            label, i, r, got[r], ref[r]);
                    gz_test_failures++;
                    break;
                }
        }
    }
    // text -> images gives the same numbers as image -> texts
    gz_match col[NI];
    float a[NI], b[NI];
    for (int t = 0; t < NT; t++) {
        CHECK_OK(gz_match_text_images(m, captions[t], imgs, NI, col));
        for (int i = 0; i < NI; i++) {
            a[i] = col[i].score;
            b[i] = res[i][t].score;
        }
        char what[64];
        snprintf(what, sizeof what, "text %d vs images: score", t);
        checks++;
        gz_check_close(what, a, b, NI, 1e-5f, 1e-5f);
    }
}

static void run_case(const family_case *c, const weights_case *wc) {
    char label[96];
    snprintf(label, sizeof label, "%s/%s", c->dir, wc->file ? wc->file : "model.safetensors");
    gz_st_file *ex = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/expected.safetensors", c->dir), &ex));
    gz_model_params mp = gz_model_default_params();
    mp.weights_file = wc->file;
    mp.exif_orient = 0;
    mp.fast_decode = 0;
    mp.batch_size = 2; // exercise chunking over the 5 images
    gz_model *m = NULL;
    CHECK_OK(gz_model_load(gz_test_path("fixtures/%s", c->dir), &mp, &m));
    if (!m || !ex) goto done;
    const int E = gz_model_dim(m), S = gz_model_image_size(m);
    checks++;
    CHECK(gz_model_family(m) == c->family);
    CHECK(strcmp(gz_family_name(gz_model_family(m)), c->family == GZ_FAMILY_BLIP ? "blip"
                                                     : c->family == GZ_FAMILY_CLIP
                                                         ? "clip"
                                                         : "chinese_clip") == 0);
    CHECK(gz_model_has_itm(m) == (c->family == GZ_FAMILY_BLIP));
    CHECK(E == (c->family == GZ_FAMILY_BLIP ? 32 : 24));

    // texts
    float *temb = gz_test_alloc_f((size_t)NT * E);
    CHECK_OK(gz_encode_texts(m, (const char *const *)captions, NT, temb));
    close_to(label, c->text_key, temb, want(ex, wc->prefix, c->text_key, (size_t)NT * E),
             (size_t)NT * E, 1e-5f, 0);
    // a text alone gives the same vector as in the batch
    float one[64];
    CHECK_OK(gz_encode_texts(m, (const char *const *)&captions[8], 1, one));
    close_to(label, "caption 8 alone vs batch", one, temb + 8 * E, (size_t)E, 1e-5f, 0);

    // pixels
    const float *pv = want(ex, "", "pixel_values", (size_t)NI * 3 * S * S);
    const float *wi = want(ex, wc->prefix, c->image_key, (size_t)NI * E);
    float *iemb = gz_test_alloc_f((size_t)NI * E);
    if (pv) {
        CHECK_OK(gz_encode_pixels(m, pv, NI, iemb));
        close_to(label, "pixels -> image embeds", iemb, wi, (size_t)NI * E, 1e-5f, 0);
    }

    // image files, decoded as the HF processors see them (no EXIF, full size)
    gz_image imgs[NI];
    memset(imgs, 0, sizeof imgs);
    gz_image_params ip = gz_model_image_params(m);
    checks++;
    CHECK(ip.exif_orient == 0 && ip.min_size == 0 && ip.max_pixels == mp.max_pixels);
    int decoded = 1;
    for (int i = 0; i < NI; i++) {
        gz_status st = gz_image_load(gz_test_path("fixtures/images/%s", images[i]), &ip, &imgs[i]);
        CHECK_OK(st);
        if (st != GZ_OK) decoded = 0;
    }
    if (decoded) {
        memset(iemb, 0, (size_t)NI * E * sizeof(float));
        CHECK_OK(gz_encode_images(m, imgs, NI, iemb));
        close_to(label, "image files -> image embeds", iemb, wi, (size_t)NI * E, 1e-5f, 0);
        check_matching(m, c, ex, wc->prefix, label, imgs);
    }

    if (!wc->file) {
        checks++;
        if (c->family == GZ_FAMILY_BLIP) {
            CHECK(gz_model_logit_scale(m) == 1.0f);
        } else {
            const float *ls = want(ex, "", "logit_scale_exp", 1);
            if (ls) CHECK(fabsf(gz_model_logit_scale(m) - ls[0]) <= 1e-5f * ls[0]);
        }
    }

    // original BLIP's [ENC] convention; an ITM-only option on a CLIP model is refused
    if (!wc->file && decoded) {
        gz_model *m2 = NULL;
        gz_model_params p2 = mp;
        p2.itm_enc_token = 1;
        CHECK_OK(gz_model_load(gz_test_path("fixtures/%s", c->dir), &p2, &m2));
        gz_match r[NT];
        gz_status st = m2 ? gz_match_image_texts(m2, &imgs[1], (const char *const *)captions, NT, r)
                          : GZ_EINVAL;
        checks++;
        if (c->family == GZ_FAMILY_BLIP) {
            CHECK_OK(st);
            const float *we = want(ex, "", "itm_logits_enc_token", (size_t)NI * NT * 2);
            float got[NT * 2];
            for (int t = 0; t < NT; t++) {
                got[2 * t] = r[t].itm_logit[0];
                got[2 * t + 1] = r[t].itm_logit[1];
            }
            close_to(label, "[ENC] itm_logits (image 1)", got, we ? we + NT * 2 : NULL, NT * 2,
                     1e-4f, 1e-4f);
        } else {
            CHECK(st == GZ_EUNSUPPORTED);
            CHECK(strstr(gz_last_error(), "BLIP") != NULL);
        }
        gz_model_free(m2);
    }
    for (int i = 0; i < NI; i++)
        gz_image_free(&imgs[i]);
    free(temb);
    free(iemb);
done:
    gz_model_free(m);
    gz_st_close(ex);
}

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int ok = a && b;
    char buf[1 << 16];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0)
        ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b && fclose(b) != 0) ok = 0;
    return ok;
}

/* Write tensors [lo, hi) of f as one safetensors file (header padded to 8 bytes). */
static int write_shard(gz_st_file *f, size_t lo, size_t hi, const char *path) {
    json_t *hdr = json_object();
    size_t off = 0;
    for (size_t i = lo; i < hi; i++) {
        const gz_st_tensor *t = gz_st_at(f, i);
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        json_object_set_new(hdr, t->name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", gz_dtype_name(t->dtype),
                                      "shape", shape, "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + t->nbytes)));
        off += t->nbytes;
    }
    char *js = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    size_t hl = strlen(js), padded = (hl + 7) / 8 * 8;
    FILE *o = fopen(path, "wb");
    int ok = o != NULL;
    unsigned char len8[8];
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((uint64_t)padded >> (8 * k));
    ok = ok && fwrite(len8, 1, 8, o) == 8 && fwrite(js, 1, hl, o) == hl;
    for (size_t k = hl; ok && k < padded; k++)
        ok = fputc(' ', o) != EOF;
    for (size_t i = lo; ok && i < hi; i++) {
        const gz_st_tensor *t = gz_st_at(f, i);
        ok = fwrite(t->data, 1, t->nbytes, o) == t->nbytes;
    }
    if (o && fclose(o) != 0) ok = 0;
    free(js);
    return ok;
}

/* The Chinese-CLIP fixture re-saved as a two-shard checkpoint (tokenizer and configs linked
 * from the fixture): loads through model.safetensors.index.json with the same outputs. */
static void test_sharded(void) {
    const char *src = gz_test_path("fixtures/chinese_clip");
    const char *tmp = gz_test_tmpdir("fusion_model_sharded");
    static const char *const links[] = {"config.json", "preprocessor_config.json", "vocab.txt",
                                        "tokenizer_config.json", "special_tokens_map.json"};
    char a[1024], b[1024];
    int ok = 1;
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", src, links[i]);
        snprintf(b, sizeof b, "%s/%s", tmp, links[i]);
        ok = ok && symlink(a, b) == 0;
    }
    gz_st_file *f = NULL;
    snprintf(a, sizeof a, "%s/model.safetensors", src);
    CHECK_OK(gz_st_open(a, &f));
    if (!f || !ok) {
        CHECK(ok);
        gz_st_close(f);
        return;
    }
    size_t n = gz_st_count(f), half = n / 2;
    static const char *const shard[2] = {"model-00001-of-00002.safetensors",
                                         "model-00002-of-00002.safetensors"};
    json_t *map = json_object();
    for (int s = 0; s < 2; s++) {
        size_t lo = s ? half : 0, hi = s ? n : half;
        snprintf(b, sizeof b, "%s/%s", tmp, shard[s]);
        ok = ok && write_shard(f, lo, hi, b);
        for (size_t i = lo; i < hi; i++)
            json_object_set_new(map, gz_st_at(f, i)->name, json_string(shard[s]));
    }
    gz_st_close(f);
    json_t *index = json_pack("{s:{}, s:o}", "metadata", "weight_map", map);
    snprintf(b, sizeof b, "%s/model.safetensors.index.json", tmp);
    ok = ok && json_dump_file(index, b, JSON_INDENT(1)) == 0;
    json_decref(index);
    checks++;
    CHECK(ok);

    gz_model *m = NULL, *m1 = NULL;
    CHECK_OK(gz_model_load(tmp, NULL, &m));
    CHECK_OK(gz_model_load(src, NULL, &m1));
    gz_st_file *ex = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/chinese_clip/expected.safetensors"), &ex));
    if (m && m1 && ex) {
        const int E = gz_model_dim(m), S = gz_model_image_size(m);
        float t[NT * 64], im[NI * 64];
        CHECK_OK(gz_encode_texts(m, (const char *const *)captions, NT, t));
        close_to("chinese_clip sharded", "text_embeds", t,
                 want(ex, "", "text_embeds", (size_t)NT * E), (size_t)NT * E, 1e-5f, 0);
        const float *pv = want(ex, "", "pixel_values", (size_t)NI * 3 * S * S);
        if (pv) {
            CHECK_OK(gz_encode_pixels(m, pv, NI, im));
            close_to("chinese_clip sharded", "image_embeds", im,
                     want(ex, "", "image_embeds", (size_t)NI * E), (size_t)NI * E, 1e-5f, 0);
        }
        char fa[65], fb[65];
        CHECK_OK(gz_model_fingerprint(m, fa));
        CHECK_OK(gz_model_fingerprint(m1, fb));
        checks++;
        CHECK(strcmp(fa, fb) != 0 && strlen(fa) == strlen(fb));
    }
    gz_st_close(ex);
    gz_model_free(m);
    gz_model_free(m1);
}

typedef struct {
    gz_model *m;
    float text[NT * 64];
    gz_status st;
} thread_job;

/* Encode all captions from a thread: the first call of each thread races the lazy load. */
static void *thread_main(void *arg) {
    thread_job *j = arg;
    j->st = gz_encode_texts(j->m, (const char *const *)captions, NT, j->text);
    return NULL;
}

/* Threads sharing a freshly loaded model; an empty image in a batch is reported by index. */
static void test_model_threads(void) {
    gz_model *m = NULL;
    CHECK_OK(gz_model_load(gz_test_path("fixtures/chinese_clip"), NULL, &m));
    if (!m) return;
    const int E = gz_model_dim(m);
    thread_job *jobs = calloc(4, sizeof *jobs);
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        jobs[t].m = m;
        CHECK(pthread_create(&th[t], NULL, thread_main, &jobs[t]) == 0);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++) {
        checks++;
        CHECK(jobs[t].st == GZ_OK);
        close_to("chinese_clip threads", "thread vs thread 0", jobs[t].text, jobs[0].text,
                 (size_t)NT * E, 1e-6f, 0);
    }
    free(jobs);

    gz_image ims[5];
    memset(ims, 0, sizeof ims);
    gz_image_params ip = gz_model_image_params(m);
    for (int i = 0; i < 5; i++)
        if (i != 3)
            CHECK_OK(gz_image_load(gz_test_path("fixtures/images/%s", images[i]), &ip, &ims[i]));
    float out[5 * 64];
    checks++;
    CHECK(gz_encode_images(m, ims, 5, out) == GZ_EINVAL);
    CHECK(strstr(gz_last_error(), "image 3") != NULL);
    for (int i = 0; i < 5; i++)
        gz_image_free(&ims[i]);
    gz_model_free(m);
}

/* Fingerprints, lazy loading, decode parameters and load errors. */
static void test_model_misc(void) {
    const char *src = gz_test_path("fixtures/clip");
    char fp1[65], fp2[65], fp3[65], fp4[65];
    gz_model *m = NULL;
    CHECK_OK(gz_model_load(src, NULL, &m));
    if (!m) return;
    CHECK_OK(gz_model_fingerprint(m, fp1));
    gz_image_params ip = gz_model_image_params(m);
    checks++;
    // the default decode is the reference one (full size); fast decode is opt-in, see below
    CHECK(ip.exif_orient == 1 && ip.max_pixels == 100000000 && ip.min_size == 0);
    gz_model_free(m);

    // the same checkpoint in another directory, without tokenizer files: same fingerprint,
    // and image encoding works (the tokenizer and text tower are never loaded)
    const char *tmp = gz_test_tmpdir("fusion_model");
    static const char *const files[] = {"config.json", "preprocessor_config.json",
                                        "model.safetensors"};
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        char from[1024], to[1024];
        snprintf(from, sizeof from, "%s/%s", src, files[i]);
        snprintf(to, sizeof to, "%s/%s", tmp, files[i]);
        ok = ok && copy_file(from, to);
    }
    CHECK(ok);
    m = NULL;
    CHECK_OK(gz_model_load(tmp, NULL, &m));
    if (m) {
        CHECK_OK(gz_model_fingerprint(m, fp2));
        checks++;
        CHECK(strcmp(fp1, fp2) == 0);
        CHECK(strlen(fp1) >= 32 && strspn(fp1, "0123456789abcdef") == strlen(fp1));
        int S = gz_model_image_size(m), E = gz_model_dim(m);
        float *px = gz_test_alloc_f((size_t)3 * S * S), *e = gz_test_alloc_f((size_t)E);
        CHECK_OK(gz_encode_pixels(m, px, 1, e));
        const char *q = "a cat";
        checks++;
        CHECK(gz_encode_texts(m, &q, 1, e) != GZ_OK); // no tokenizer files here
        free(px);
        free(e);
        gz_model_free(m);
    }

    // other weights: another fingerprint
    gz_model_params mp = gz_model_default_params();
    mp.weights_file = "model.f16.safetensors";
    m = NULL;
    CHECK_OK(gz_model_load(src, &mp, &m));
    if (m) {
        CHECK_OK(gz_model_fingerprint(m, fp3));
        checks++;
        CHECK(strcmp(fp1, fp3) != 0);
        gz_model_free(m);
    }
    m = NULL;
    CHECK_OK(gz_model_load(gz_test_path("fixtures/blip_itm"), NULL, &m));
    if (m) {
        CHECK_OK(gz_model_fingerprint(m, fp4));
        checks++;
        CHECK(strcmp(fp1, fp4) != 0);
        gz_model_free(m);
    }

    // errors name the path
    m = (gz_model *)1;
    checks++;
    CHECK(gz_model_load(gz_test_path("fixtures/no_such_model"), NULL, &m) != GZ_OK && m == NULL);
    CHECK(strstr(gz_last_error(), "no_such_model") != NULL);
    mp.weights_file = "missing.safetensors";
    m = (gz_model *)1;
    checks++;
    CHECK(gz_model_load(src, &mp, &m) == GZ_ENOTFOUND && m == NULL);
    CHECK(strstr(gz_last_error(), "missing.safetensors") != NULL);
    checks++;
    CHECK(strlen(gz_version()) > 0);
}

/* Symlink the Chinese-CLIP fixture's configs and tokenizer and the given files of
 * tests/data/torchbin (pairs: source, name in dir) into dir. */
static int link_torchbin_dir(const char *dir, const char *const *bins, size_t nb) {
    static const char *const links[] = {"config.json", "preprocessor_config.json", "vocab.txt",
                                        "tokenizer_config.json", "special_tokens_map.json"};
    char a[4096], b[4096];
    int ok = 1;
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(a, sizeof a, "%s", gz_test_path("fixtures/chinese_clip/%s", links[i]));
        snprintf(b, sizeof b, "%s/%s", dir, links[i]);
        ok = ok && symlink(a, b) == 0;
    }
    for (size_t i = 0; i + 1 < nb; i += 2) {
        snprintf(a, sizeof a, "%s", gz_test_path("torchbin/%s", bins[i]));
        snprintf(b, sizeof b, "%s/%s", dir, bins[i + 1]);
        ok = ok && symlink(a, b) == 0;
    }
    return ok;
}

/* Sum of numel and the file size of a fixture's weights, read here with the safetensors
 * reader, for gz_model_describe to agree with. */
static void weights_totals(const char *path, size_t *numel, size_t *count, long long *bytes) {
    gz_st_file *f = NULL;
    *numel = *count = 0;
    *bytes = -1;
    CHECK_OK(gz_st_open(path, &f));
    if (!f) return;
    *count = gz_st_count(f);
    for (size_t i = 0; i < *count; i++)
        *numel += gz_st_at(f, i)->numel;
    gz_st_close(f);
    struct stat sb;
    if (stat(path, &sb) == 0) *bytes = (long long)sb.st_size;
}

/* gz_model_describe against config.json and the weights, for every family and dtype. */
static void test_describe(void) {
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        const char *dir = gz_test_path("fixtures/%s", CASES[c].dir);
        json_error_t jerr;
        json_t *cfg =
            json_load_file(gz_test_path("fixtures/%s/config.json", CASES[c].dir), 0, &jerr);
        checks++;
        CHECK(cfg != NULL);
        if (!cfg) continue;
        json_t *tc = json_object_get(cfg, "text_config"),
               *vc = json_object_get(cfg, "vision_config");
        for (size_t w = 0; w < sizeof WEIGHTS / sizeof WEIGHTS[0]; w++) {
            gz_model_info mi;
            CHECK_OK(gz_model_describe(dir, WEIGHTS[w].file, &mi));
            size_t numel, count;
            long long bytes;
            weights_totals(gz_test_path("fixtures/%s/%s", CASES[c].dir,
                                        WEIGHTS[w].file ? WEIGHTS[w].file : "model.safetensors"),
                           &numel, &count, &bytes);
            static const char *const dt[] = {"F32", "F16", "BF16"};
            checks++;
            CHECK(strcmp(mi.model_type, json_string_value(json_object_get(cfg, "model_type"))) ==
                  0);
            CHECK(strcmp(mi.architecture, json_string_value(json_array_get(
                                              json_object_get(cfg, "architectures"), 0))) == 0);
            CHECK(mi.family == CASES[c].family &&
                  mi.has_itm == (CASES[c].family == GZ_FAMILY_BLIP));
            CHECK(mi.text.hidden_size == json_integer_value(json_object_get(tc, "hidden_size")));
            CHECK(mi.text.layers == json_integer_value(json_object_get(tc, "num_hidden_layers")));
            if (json_object_get(tc, "vocab_size")) /* else the family's default */
                CHECK(mi.text.vocab_size == json_integer_value(json_object_get(tc, "vocab_size")));
            CHECK(mi.text.vocab_size > 0);
            CHECK(mi.vision.hidden_size == json_integer_value(json_object_get(vc, "hidden_size")));
            CHECK(mi.vision.image_size == json_integer_value(json_object_get(vc, "image_size")));
            CHECK(mi.vision.patches == (mi.vision.image_size / mi.vision.patch_size) *
                                           (mi.vision.image_size / mi.vision.patch_size));
            CHECK(strcmp(mi.text.tokenizer,
                         CASES[c].family == GZ_FAMILY_CLIP ? "byte-level BPE" : "WordPiece") == 0);
            CHECK(mi.text.act && mi.vision.act && strcmp(mi.vision.act, "?") != 0);
            CHECK(mi.parameters == numel && mi.tensors == count &&
                  (long long)mi.file_bytes == bytes);
            if (strcmp(mi.dtypes, dt[w]) != 0) {
                fprintf(stderr, "%s %s: dtypes %s, want %s\n", CASES[c].dir,
                        WEIGHTS[w].file ? WEIGHTS[w].file : "default", mi.dtypes, dt[w]);
                gz_test_failures++;
            }
            gz_model *m = NULL;
            CHECK_OK(gz_model_load(dir, NULL, &m));
            if (m)
                CHECK(mi.projection_dim == gz_model_dim(m) &&
                      mi.vision.image_size == gz_model_image_size(m));
            gz_model_free(m);
        }
        json_decref(cfg);
    }
    // config.json and the weights are all it needs (no preprocessor or tokenizer files)
    const char *tmp = gz_test_tmpdir("model_describe");
    char a[1024], b[1024];
    int ok = 1;
    static const char *const two[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s", gz_test_path("fixtures/clip/%s", two[i]));
        snprintf(b, sizeof b, "%s/%s", tmp, two[i]);
        ok = ok && symlink(a, b) == 0;
    }
    gz_model_info mi;
    checks++;
    CHECK(ok);
    CHECK_OK(gz_model_describe(tmp, NULL, &mi));
    CHECK(mi.family == GZ_FAMILY_CLIP && mi.tensors > 0);
    // errors name the file, and leave *out zeroed
    checks++;
    memset(&mi, 0x5a, sizeof mi);
    CHECK(gz_model_describe(gz_test_path("fixtures/no_such_model"), NULL, &mi) != GZ_OK);
    CHECK(strstr(gz_last_error(), "no_such_model") != NULL && mi.tensors == 0 &&
          mi.text.act == NULL);
    CHECK(gz_model_describe(gz_test_path("fixtures/clip"), "missing.safetensors", &mi) != GZ_OK);
    CHECK(strstr(gz_last_error(), "missing.safetensors") != NULL);
    CHECK(gz_model_describe(NULL, NULL, &mi) == GZ_EINVAL);
}

/* gz_model_tokenize / gz_model_token_text / gz_model_max_length: the model's own tokenizer
 * against the HF slow tokenizer cases, and the three truncation modes. */
static void test_tokenize(void) {
    static const int want_max_len[] = {35, 77, 52}; /* tokenizer_config.json model_max_length */
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        gz_model *m = NULL;
        CHECK_OK(gz_model_load(gz_test_path("fixtures/%s", CASES[c].dir), NULL, &m));
        json_error_t jerr;
        json_t *tc = json_load_file(gz_test_path("fixtures/%s/tokenizer_cases.json", CASES[c].dir),
                                    JSON_ALLOW_NUL, &jerr);
        checks++;
        CHECK(m && tc);
        if (!m || !tc) {
            gz_model_free(m);
            json_decref(tc);
            continue;
        }
        checks++;
        CHECK(gz_model_max_length(m) == want_max_len[c]);
        json_t *cases = json_object_get(tc, "cases");
        int n_bad = 0, n_run = 0;
        for (size_t i = 0; i < json_array_size(cases); i++) {
            json_t *k = json_array_get(cases, i);
            const char *text = json_string_value(json_object_get(k, "text"));
            if (strlen(text) != json_string_length(json_object_get(k, "text"))) continue; /* NUL */
            json_t *ids_w = json_object_get(k, "ids"), *toks_w = json_object_get(k, "tokens");
            int32_t *ids = NULL;
            int n = -1;
            CHECK_OK(gz_model_tokenize(m, text, 0, &ids, &n));
            n_run++;
            int same = ids && (size_t)n == json_array_size(ids_w);
            for (int j = 0; same && j < n; j++) {
                const char *tt = gz_model_token_text(m, ids[j]);
                same = ids[j] == json_integer_value(json_array_get(ids_w, (size_t)j)) && tt &&
                       strcmp(tt, json_string_value(json_array_get(toks_w, (size_t)j))) == 0;
            }
            if (!same && n_bad++ < 3)
                fprintf(stderr, "%s: tokenize case %zu differs from the HF tokenizer\n",
                        CASES[c].dir, i);
            free(ids);
        }
        checks++;
        CHECK(n_bad == 0 && n_run > 60);

        // truncation: < 0 the model's maximum, 0 none, > 0 that many; special tokens kept
        char longtext[2048] = "";
        for (int i = 0; i < 200; i++)
            strcat(longtext, "dog ");
        int32_t *a = NULL, *full = NULL, *five = NULL;
        int na = 0, nf = 0, n5 = 0;
        CHECK_OK(gz_model_tokenize(m, longtext, -1, &a, &na));
        CHECK_OK(gz_model_tokenize(m, longtext, 0, &full, &nf));
        CHECK_OK(gz_model_tokenize(m, longtext, 5, &five, &n5));
        checks++;
        CHECK(na == want_max_len[c] && nf > na && n5 == 5);
        CHECK(a && full && five && a[0] == full[0] && a[na - 1] == full[nf - 1] &&
              five[4] == full[nf - 1]);
        free(a);
        free(full);
        free(five);
        // out-of-range ids and bad arguments
        checks++;
        CHECK(gz_model_token_text(m, -1) == NULL && gz_model_token_text(m, 1 << 30) == NULL);
        int32_t *ids = (int32_t *)1;
        int n = 7;
        CHECK(gz_model_tokenize(m, NULL, -1, &ids, &n) == GZ_EINVAL && ids == NULL && n == 0);
        json_decref(tc);
        gz_model_free(m);
    }
    // a model directory without tokenizer files: the load error, no crash
    const char *tmp = gz_test_tmpdir("model_tokenize");
    static const char *const files[] = {"config.json", "preprocessor_config.json",
                                        "model.safetensors"};
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        char from[1024], to[1024];
        snprintf(from, sizeof from, "%s", gz_test_path("fixtures/clip/%s", files[i]));
        snprintf(to, sizeof to, "%s/%s", tmp, files[i]);
        ok = ok && symlink(from, to) == 0;
    }
    gz_model *m = NULL;
    CHECK_OK(gz_model_load(tmp, NULL, &m));
    if (m) {
        int32_t *ids = NULL;
        int n = 0;
        checks++;
        CHECK(ok && gz_model_tokenize(m, "a cat", -1, &ids, &n) != GZ_OK && ids == NULL);
        CHECK(gz_model_max_length(m) == -1 && gz_model_token_text(m, 0) == NULL);
        gz_model_free(m);
    }
}

/* gz_model_load_pixels: the fixture's pixel_values, a missing key, a tensor of another shape. */
static void test_load_pixels(void) {
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        gz_model *m = NULL;
        CHECK_OK(gz_model_load(gz_test_path("fixtures/%s", CASES[c].dir), NULL, &m));
        gz_st_file *ex = NULL;
        const char *exp = gz_test_path("fixtures/%s/expected.safetensors", CASES[c].dir);
        CHECK_OK(gz_st_open(exp, &ex));
        if (!m || !ex) {
            gz_model_free(m);
            gz_st_close(ex);
            continue;
        }
        const int S = gz_model_image_size(m);
        const size_t sz = (size_t)NI * 3 * S * S;
        const float *w = want(ex, "", "pixel_values", sz);
        for (int k = 0; k < 2; k++) { /* the key given, then the default */
            float *px = NULL;
            int n = 0;
            CHECK_OK(gz_model_load_pixels(m, exp, k ? NULL : "pixel_values", &px, &n));
            checks++;
            CHECK(n == NI && px && w && memcmp(px, w, sz * sizeof *px) == 0);
            free(px);
        }
        float *px = (float *)1;
        int n = 9;
        checks++;
        CHECK(gz_model_load_pixels(m, exp, "nope", &px, &n) == GZ_ENOTFOUND && !px && n == 0);
        CHECK(strstr(gz_last_error(), "no tensor 'nope'") != NULL);
        CHECK(strstr(gz_last_error(), "--") == NULL); /* the CLI adds its flags, not the library */
        checks++;
        CHECK(gz_model_load_pixels(m, exp, CASES[c].text_key, &px, &n) == GZ_EINVAL && !px);
        CHECK(strstr(gz_last_error(), "must be (N, 3,") != NULL);
        checks++;
        CHECK(gz_model_load_pixels(m, gz_test_path("fixtures/nope.safetensors"), NULL, &px, &n) !=
                  GZ_OK &&
              !px);
        gz_st_close(ex);
        gz_model_free(m);
    }
}

/* Fingerprints are stored in databases (models.fingerprint). The legacy values (want_legacy)
 * were computed by the code of commit 2bd1876, before the hashing moved into
 * core/safetensors.c and core/torchbin.c: databases made before issue #15 store them and are
 * migrated by them (gz_db_adopt_fingerprint), so they must never change. The fingerprints
 * proper (want) add the weights' content (issue #15, commit of this change); any change to
 * them orphans every stored vector. */
static void test_fingerprint_pinned(void) {
    const char *tmp = gz_test_tmpdir("model_fingerprint_pinned");
    static const char *const single[] = {"chinese_clip.f32.bin", "pytorch_model.bin"};
    static const char *const sharded[] = {
        "pytorch_model-00001-of-00002.bin", "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin", "pytorch_model-00002-of-00002.bin",
        "pytorch_model.bin.index.json",     "pytorch_model.bin.index.json"};
    char bin1[1200], bin2[1200];
    snprintf(bin1, sizeof bin1, "%s/bin1", tmp);
    snprintf(bin2, sizeof bin2, "%s/bin2", tmp);
    checks++;
    CHECK(mkdir(bin1, 0700) == 0 && link_torchbin_dir(bin1, single, 2));
    CHECK(mkdir(bin2, 0700) == 0 && link_torchbin_dir(bin2, sharded, 6));
    static const struct {
        const char *what, *weights, *want_legacy, *want;
    } pins[] = {
        {"blip_itm", NULL, "49657713ed7532cf148f15a9687a6a68", "5671881a453f86285249288016f6ff12"},
        {"clip", NULL, "88f6d99c53dc9daa1b05876c631f5464", "eeb652c58db58ad45de98e5e19a8e149"},
        {"chinese_clip", NULL, "e3fb0516cf1456ca71f5cb5854f2221a",
         "36c6364a1d4ebcd61af42d0c29d05bf1"},
        {"clip", "model.f16.safetensors", "e5103a70944c0e9dd9bdc051516cf598",
         "2035503f2b630a428c8fe67c5ada802f"},
        {"bin1", NULL, "4632baf23dd30df4656b3167b3024f10", "f0d3e1e7f6454491c1e87e5335cec47a"},
        {"bin2", NULL, "a58931bc583a1722c09411797e873ced", "71bfb80d2ccc42a346d178cb5641b2b1"},
    };
    for (size_t i = 0; i < sizeof pins / sizeof pins[0]; i++) {
        const char *dir = strcmp(pins[i].what, "bin1") == 0 ? bin1
                          : strcmp(pins[i].what, "bin2") == 0
                              ? bin2
                              : gz_test_path("fixtures/%s", pins[i].what);
        gz_model_params mp = gz_model_default_params();
        mp.weights_file = pins[i].weights;
        gz_model *m = NULL;
        char fp[65] = "", legacy[65] = "";
        CHECK_OK(gz_model_load(dir, &mp, &m));
        if (m) CHECK_OK(gz_model_fingerprint(m, fp));
        if (m) CHECK_OK(gz_model_legacy_fingerprint(m, legacy));
        gz_model_free(m);
        checks += 2;
        if (strcmp(fp, pins[i].want) != 0 || strcmp(legacy, pins[i].want_legacy) != 0) {
            fprintf(stderr, "fingerprint of %s (%s): got %s (legacy %s) want %s (legacy %s)\n",
                    pins[i].what, pins[i].weights ? pins[i].weights : "default weights", fp, legacy,
                    pins[i].want, pins[i].want_legacy);
            gz_test_failures++;
        }
    }
}

/* A large photo through the fast (DCT-scaled) decode and through the default full decode:
 * smaller decode, nearly the same embedding. */
static void test_fast_decode(void) {
    const char *photo = gz_test_path("photos/large_dandelions_5312px_progressive.jpg");
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        gz_model_params fast = gz_model_default_params(), full = fast;
        fast.fast_decode = 1;
        full.fast_decode = 0;
        checks++;
        CHECK(gz_model_default_params().fast_decode == 0);
        gz_model *mf = NULL, *mx = NULL;
        CHECK_OK(gz_model_load(gz_test_path("fixtures/%s", CASES[c].dir), &fast, &mf));
        CHECK_OK(gz_model_load(gz_test_path("fixtures/%s", CASES[c].dir), &full, &mx));
        if (!mf || !mx) {
            gz_model_free(mf);
            gz_model_free(mx);
            continue;
        }
        gz_image_params pf = gz_model_image_params(mf), px = gz_model_image_params(mx);
        CHECK(pf.min_size >= gz_model_image_size(mf) && px.min_size == 0);
        gz_image a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        CHECK_OK(gz_image_load(photo, &pf, &a));
        CHECK_OK(gz_image_load(photo, &px, &b));
        const int E = gz_model_dim(mf), S = gz_model_image_size(mf);
        float ea[64], eb[64];
        checks++;
        if (a.rgb && b.rgb) {
            CHECK(a.width < b.width && a.height < b.height);
            CHECK((a.width < a.height ? a.width : a.height) >= S);
            CHECK_OK(gz_encode_images(mf, &a, 1, ea));
            CHECK_OK(gz_encode_images(mx, &b, 1, eb));
            double cos = 0;
            for (int e = 0; e < E; e++)
                cos += (double)ea[e] * eb[e];
            printf("  %-30s fast %dx%d vs full %dx%d: cosine %.6f\n", CASES[c].dir, a.width,
                   a.height, b.width, b.height, cos);
            CHECK(cos > 0.99);
        }
        gz_image_free(&a);
        gz_image_free(&b);
        gz_model_free(mf);
        gz_model_free(mx);
    }
}

/* Two checkpoints with equal shapes and different weights are two models (issue #15): one
 * value of the weights changed in place, the modification time put back, the size unchanged.
 * The legacy fingerprint (headers only) cannot tell them apart; the fingerprint must. The
 * content-hash cache must not hide the change (its key has ctime, which cannot be put back). */
static void test_fingerprint_weights(void) {
    const char *src = gz_test_path("fixtures/clip");
    const char *tmp = gz_test_tmpdir("model_fingerprint_weights");
    static const char *const files[] = {"config.json", "preprocessor_config.json",
                                        "model.safetensors"};
    int ok = 1;
    char weights[1200];
    for (int i = 0; i < 3; i++) {
        char from[1024], to[1200];
        snprintf(from, sizeof from, "%s/%s", src, files[i]);
        snprintf(to, sizeof to, "%s/%s", tmp, files[i]);
        ok = ok && copy_file(from, to);
    }
    snprintf(weights, sizeof weights, "%s/model.safetensors", tmp);
    checks++;
    CHECK(ok);
    char fp[3][65] = {"", "", ""}, legacy[3][65] = {"", "", ""};
    for (int round = 0; round < 3; round++) {
        if (round == 2) { /* flip the last float's sign bit, keep size and mtime */
            struct stat sb;
            FILE *f = fopen(weights, "r+b");
            CHECK(f && stat(weights, &sb) == 0);
            if (!f) return;
            unsigned char last;
            CHECK(fseek(f, -1, SEEK_END) == 0 && fread(&last, 1, 1, f) == 1);
            last ^= 0x80;
            CHECK(fseek(f, -1, SEEK_END) == 0 && fwrite(&last, 1, 1, f) == 1);
            CHECK(fclose(f) == 0);
            struct timespec times[2] = {sb.st_atim, sb.st_mtim};
            CHECK(utimensat(AT_FDCWD, weights, times, 0) == 0);
            checks += 5;
        }
        gz_model *m = NULL;
        CHECK_OK(gz_model_load(tmp, NULL, &m));
        if (!m) return;
        CHECK_OK(gz_model_fingerprint(m, fp[round]));
        CHECK_OK(gz_model_legacy_fingerprint(m, legacy[round]));
        gz_model_free(m);
    }
    checks += 4;
    CHECK(strcmp(fp[0], fp[1]) == 0);         /* the second load (from the cache) agrees */
    CHECK(strcmp(fp[0], fp[2]) != 0);         /* other weights: another model */
    CHECK(strcmp(legacy[0], legacy[2]) == 0); /* which the header-only identity missed */
    CHECK(strcmp(fp[0], legacy[0]) != 0);
    printf("fingerprint: weights changed in place -> %s (was %s; legacy %s both)\n", fp[2], fp[0],
           legacy[0]);
}

int main(void) {
    /* the content-hash cache of this run, not the user's */
    setenv("XDG_CACHE_HOME", gz_test_tmpdir("model_load_cache"), 1);
    load_inputs();
    test_rank_unit();
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++)
        for (size_t w = 0; w < sizeof WEIGHTS / sizeof WEIGHTS[0]; w++)
            run_case(&CASES[c], &WEIGHTS[w]);
    test_model_misc();
    test_fingerprint_pinned();
    test_fingerprint_weights();
    test_describe();
    test_tokenize();
    test_load_pixels();
    test_model_threads();
    test_sharded();
    test_fast_decode();
    json_decref(inputs);
    return gz_test_finish("fusion_model", checks);
}
