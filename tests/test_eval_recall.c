/* test_engine_eval.c - `gaze eval`'s library layer: ranks and Recall@K on hand-made score
 * matrices with known answers (ties, multi-caption images, NaN, separate t2i matrix), LAVIS'
 * caption pre-processing against hand-worked Python results, the three dataset formats and
 * their errors, and whole runs on the tiny fixture models (random weights: the numbers mean
 * nothing, the protocol is what is checked) against an independent brute force computed
 * here from gz_encode_* / gz_match_image_texts one item at a time: ITC matrix, ranks, recalls,
 * failed images left out with their captions, and BLIP's ITM re-rank. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gaze.h"
#include "testutil.h"

#define ATOL_ITC 1e-5f /* library ITC (batched sgemm) vs double dot of single encodes */
#define RANK_EPS 2e-5  /* scores this close count as possibly either order */
#define ATOL_ITM 1e-3  /* ITM logits batched vs one at a time */

static int checks;

/* ---- hand-made matrices ---- */

static void test_ranks_handmade(void) {
    /* 3 images, 5 texts: image 0 has texts 0,1; image 1 text 2; image 2 texts 3,4. */
    const int txt2img[5] = {0, 0, 1, 2, 2};
    const float i2t[3 * 5] = {
        /* image 0: best GT is text 1 (0.8); text 3 (0.9) is higher -> rank 1 */
        0.5f,
        0.8f,
        0.1f,
        0.9f,
        0.2f,
        /* image 1: GT text 2 (0.3) ties with text 0 (0.3), text 4 (0.7) higher -> rank 1, tied */
        0.3f,
        0.0f,
        0.3f,
        0.1f,
        0.7f,
        /* image 2: GTs 3 (0.6), 4 (0.95) -> best 0.95, nothing higher -> rank 0 */
        0.1f,
        0.2f,
        0.3f,
        0.6f,
        0.95f,
    };
    int tr[3], ir[5], tt[3], it[5], ntt = -1, nti = -1;
    CHECK_OK(gz_eval_ranks(i2t, NULL, 3, 5, txt2img, tr, ir, tt, it, &ntt, &nti));
    checks++;
    CHECK(tr[0] == 1 && tr[1] == 1 && tr[2] == 0);
    CHECK(tt[0] == 3 && tt[1] == 4 && tt[2] == 4);
    CHECK(ntt == 1);
    /* text queries over the columns: text 0 column (0.5, 0.3, 0.1), GT image 0 -> rank 0;
     * text 1 (0.8, 0.0, 0.2) -> 0; text 2 (0.1, 0.3, 0.3), GT 1 ties image 2 -> rank 0, tied;
     * text 3 (0.9, 0.1, 0.6), GT 2 -> 1; text 4 (0.2, 0.7, 0.95) -> 0 */
    CHECK(ir[0] == 0 && ir[1] == 0 && ir[2] == 0 && ir[3] == 1 && ir[4] == 0);
    CHECK(it[2] == 1); /* the tie goes to the lower index as top candidate */
    CHECK(it[3] == 0 && it[4] == 2);
    CHECK(nti == 1);

    gz_eval_recall r;
    gz_eval_recall_from_ranks(tr, 3, ir, 5, &r);
    CHECK(fabs(r.txt_r1 - 100.0 / 3) < 1e-9 && r.txt_r5 == 100 && r.txt_r10 == 100);
    CHECK(fabs(r.img_r1 - 80) < 1e-9 && r.img_r5 == 100);
    CHECK(fabs(r.txt_r_mean - (100.0 / 3 + 200) / 3) < 1e-9);
    CHECK(fabs(r.r_mean - (r.txt_r_mean + r.img_r_mean) / 2) < 1e-12);
    CHECK(r.agg_metrics == r.txt_r_mean);

    /* a separate t2i matrix (not the transpose): text 3 now ranks its image first */
    float t2i[5 * 3];
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 3; i++)
            t2i[t * 3 + i] = i2t[i * 5 + t];
    t2i[3 * 3 + 2] = 2.0f;
    t2i[0 * 3 + 0] = NAN; /* NaN counts as lowest: text 0's GT falls behind both */
    CHECK_OK(gz_eval_ranks(i2t, t2i, 3, 5, txt2img, tr, ir, NULL, NULL, NULL, NULL));
    CHECK(ir[3] == 0 && ir[0] == 2);

    /* bad arguments */
    const int bad[5] = {0, 0, 3, 2, 2};
    CHECK(gz_eval_ranks(i2t, NULL, 3, 5, bad, tr, ir, NULL, NULL, NULL, NULL) == GZ_EINVAL);
}

static void test_recall_thresholds(void) {
    /* ranks exactly at the R@K borders: rank < K counts */
    const int tr[4] = {0, 4, 9, 10}, ir[5] = {0, 1, 5, 10, 100};
    gz_eval_recall r;
    gz_eval_recall_from_ranks(tr, 4, ir, 5, &r);
    checks++;
    CHECK(r.txt_r1 == 25 && r.txt_r5 == 50 && r.txt_r10 == 75);
    CHECK(r.img_r1 == 20 && r.img_r5 == 40 && r.img_r10 == 60);
    CHECK(fabs(r.img_r_mean - 40) < 1e-9 && fabs(r.txt_r_mean - 50) < 1e-9);
    CHECK(fabs(r.r_mean - 45) < 1e-9);
    /* an image without any text ranks n_txt (never found) */
    const int t2[2] = {0, 0};
    const float m[2 * 2] = {0.9f, 0.1f, 0.2f, 0.8f};
    int a[2], b[2];
    CHECK_OK(gz_eval_ranks(m, NULL, 2, 2, t2, a, b, NULL, NULL, NULL, NULL));
    CHECK(a[0] == 0 && a[1] == 2);
    CHECK(b[0] == 0 && b[1] == 1);
}

/* ---- LAVIS pre_caption, expected values worked out from the Python source ---- */

static void check_caption(const char *in, int max_words, const char *want) {
    char *got = gz_eval_blip_caption(in, max_words);
    checks++;
    if (!got || strcmp(got, want) != 0) {
        fprintf(stderr, "blip_caption(\"%s\", %d): got \"%s\" want \"%s\"\n", in, max_words,
                got ? got : "(null)", want);
        gz_test_failures++;
    }
    free(got);
}

static void test_blip_caption(void) {
    check_caption("A Dog.  Running!!", 50, "a dog running");
    check_caption("Hello\tworld", 50, "hello\tworld"); /* one whitespace stays as is */
    check_caption("Hello \tworld", 50, "hello world"); /* a run of two becomes a space */
    check_caption("(Big) CAT\n", 50, "big cat");
    check_caption("x\n\n", 50, "x");
    check_caption("a~b#c*d:e;f\"g", 50, "a b c d e f g");
    check_caption("one two three four", 2, "one two");
    check_caption("one two", 2, "one two");
    check_caption("\xc3\x89"
                  "COLE",
                  50,
                  "\xc3\xa9"
                  "cole");                                    /* ÉCOLE -> école */
    check_caption("\xc4\xb0stanbul", 50, "i\xcc\x87stanbul"); /* İ -> i + U+0307 */
    check_caption("\xe9\x9b\x9e\xe3\x80\x82", 50, "\xe9\x9b\x9e\xe3\x80\x82"); /* 雞。 kept */
    check_caption("a \xe3\x80\x80"
                  "b",
                  50, "a b"); /* space + ideographic space = a run */
    check_caption("...", 50, "");
    check_caption("", 50, "");
    check_caption("ab\xff"
                  "C",
                  50,
                  "ab\xff"
                  "c"); /* an invalid byte is kept */
}

/* ---- dataset loading ---- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(3);
    }
    fputs(text, f);
    fclose(f);
}

static void test_load(void) {
    const char *jl = gz_test_path("evalset/captions.jsonl");
    gz_eval_load_opts lo = gz_eval_default_load_opts();
    gz_eval_set *s = NULL, *f = NULL, *z = NULL, *l = NULL;
    CHECK_OK(gz_eval_load(jl, &lo, &s));
    checks++;
    if (!s) return;
    CHECK(!strcmp(s->format, "jsonl"));
    CHECK(s->n_images == 16 && s->n_entries == 16 && s->n_no_captions == 0);
    CHECK(s->file_hash != 0);
    int total = 0;
    for (int i = 0; i < s->n_images; i++) {
        CHECK(s->images[i].first_text == total && s->images[i].n_texts >= 1);
        for (int j = 0; j < s->images[i].n_texts; j++)
            CHECK(s->txt2img[total + j] == i);
        total += s->images[i].n_texts;
        CHECK(strstr(s->images[i].path, "evalset/images/") != NULL);
        CHECK(s->images[i].line == i + 1);
    }
    CHECK(total == s->n_texts && s->n_texts > 16);
    lo.captions = GZ_EVAL_CAPTIONS_FIRST;
    CHECK_OK(gz_eval_load(jl, &lo, &f));
    if (f) {
        CHECK(f->n_texts == 16);
        for (int i = 0; i < 16; i++)
            CHECK(!strcmp(f->texts[i], s->texts[s->images[i].first_text]));
    }
    lo.captions = GZ_EVAL_CAPTIONS_ALL;
    lo.lang = "zh_TW";
    CHECK_OK(gz_eval_load(jl, &lo, &z));
    if (z) {
        CHECK(z->n_images == 7 && z->n_no_captions == 9);
        CHECK(z->n_entries == 16);
        for (int i = 0; i < z->n_images; i++)
            CHECK(strstr(z->images[i].image, "explore_"));
        CHECK((unsigned char)z->texts[0][0] >= 0x80); /* CJK, not the English title */
    }
    lo.lang = "xx_XX";
    gz_eval_set *none = NULL;
    CHECK(gz_eval_load(jl, &lo, &none) == GZ_EINVAL && none == NULL);
    CHECK(strstr(gz_last_error(), "xx_XX") != NULL);
    lo.lang = NULL;
    /* LAVIS' JSON list holds the same images and captions */
    CHECK_OK(gz_eval_load(gz_test_path("evalset/lavis_test.json"), &lo, &l));
    if (l) {
        CHECK(!strcmp(l->format, "json-list"));
        CHECK(l->n_images == s->n_images && l->n_texts == s->n_texts);
        for (int t = 0; t < l->n_texts && t < s->n_texts; t++)
            CHECK(!strcmp(l->texts[t], s->texts[t]) && l->txt2img[t] == s->txt2img[t]);
        for (int i = 0; i < l->n_images && i < s->n_images; i++)
            CHECK(!strcmp(l->images[i].path, s->images[i].path));
    }
    gz_eval_set_free(s);
    gz_eval_set_free(f);
    gz_eval_set_free(z);
    gz_eval_set_free(l);

    const char *dir = gz_test_tmpdir("eval-load");
    char p[1200];
    /* Karpathy dataset_*.json with a split filter and filepath/filename */
    snprintf(p, sizeof p, "%s/dataset_flickr.json", dir);
    write_file(p,
               "{\"images\": ["
               "{\"filename\": \"a.jpg\", \"split\": \"train\", \"sentences\": [{\"raw\": \"x\"}]},"
               "{\"filepath\": \"val\", \"filename\": \"b.jpg\", \"split\": \"test\","
               " \"sentences\": [{\"raw\": \"B one\"}, {\"raw\": \"B two\"}]},"
               "{\"filename\": \"c.jpg\", \"split\": \"test\", \"sentences\": [{\"raw\": \"C\"}]}"
               "], \"dataset\": \"flickr30k\"}");
    gz_eval_set *k = NULL;
    lo.image_root = "/data/flickr";
    CHECK_OK(gz_eval_load(p, &lo, &k));
    if (k) {
        CHECK(!strcmp(k->format, "karpathy"));
        CHECK(k->n_images == 2 && k->n_texts == 3 && k->n_entries == 2);
        CHECK(!strcmp(k->images[0].path, "/data/flickr/val/b.jpg"));
        CHECK(!strcmp(k->images[1].path, "/data/flickr/c.jpg"));
        CHECK(!strcmp(k->texts[1], "B two") && k->txt2img[2] == 1);
    }
    gz_eval_set_free(k);
    lo.image_root = NULL;
    lo.split = "val";
    k = NULL;
    CHECK(gz_eval_load(p, &lo, &k) == GZ_EINVAL && !k); /* no entries in that split */
    lo.split = "test";
    /* malformed JSONL: the error names file:line */
    snprintf(p, sizeof p, "%s/bad.jsonl", dir);
    write_file(p, "{\"image\": \"a.jpg\", \"captions\": [\"a\"]}\n\n{\"image\": \"b.jpg\", "
                  "\"captions\": [1]}\n");
    CHECK(gz_eval_load(p, &lo, &k) == GZ_EINVAL && !k);
    CHECK(strstr(gz_last_error(), "bad.jsonl:3") != NULL);
    write_file(p, "{\"image\": \"a.jpg\", \"captions\": \"one caption\"}\n{not json\n");
    CHECK(gz_eval_load(p, &lo, &k) == GZ_EINVAL && !k);
    CHECK(strstr(gz_last_error(), "bad.jsonl:2") != NULL);
    write_file(p, "{\"captions\": [\"no image\"]}\n");
    CHECK(gz_eval_load(p, &lo, &k) == GZ_EINVAL && !k);
    CHECK(strstr(gz_last_error(), "'image'") != NULL);
    /* one line, a string caption, absolute paths kept when allowed (issue #15: refused by
     * default, see test_eval_captions.c) */
    write_file(p, "{\"image\": \"/abs/a.jpg\", \"captions\": \"one caption\"}");
    lo.allow_outside_root = 1;
    CHECK_OK(gz_eval_load(p, &lo, &k));
    lo.allow_outside_root = 0;
    if (k) CHECK(k->n_texts == 1 && !strcmp(k->images[0].path, "/abs/a.jpg"));
    gz_eval_set_free(k);
    k = NULL;
    snprintf(p, sizeof p, "%s/missing.jsonl", dir);
    CHECK(gz_eval_load(p, &lo, &k) == GZ_ENOTFOUND && !k);
}

/* ---- whole runs against a brute force ---- */

typedef struct {
    int n;
    char paths[8][1200];
} failures;

static void on_failed(void *user, const char *path, const char *reason) {
    failures *f = user;
    (void)reason;
    if (f->n < 8) snprintf(f->paths[f->n], sizeof f->paths[0], "%s", path);
    f->n++;
}

/* Brute force over the evaluated items of r: embeddings one at a time, dot in double. */
static double *brute_itc(gz_model *m, const gz_eval_set *s, const gz_eval_result *r) {
    const int E = gz_model_dim(m), I = r->n_images, T = r->n_texts;
    float *ie = calloc((size_t)I * E, sizeof *ie), *te = calloc((size_t)T * E, sizeof *te);
    double *sim = calloc((size_t)I * T, sizeof *sim);
    gz_image_params ip = gz_model_image_params(m);
    for (int i = 0; i < I; i++) {
        gz_image img;
        CHECK_OK(gz_image_load(s->images[r->image_index[i]].path, &ip, &img));
        CHECK_OK(gz_encode_images(m, &img, 1, ie + (size_t)i * E));
        gz_image_free(&img);
    }
    for (int t = 0; t < T; t++) {
        const char *txt = r->processed_texts[t];
        CHECK_OK(gz_encode_texts(m, &txt, 1, te + (size_t)t * E));
    }
    for (int i = 0; i < I; i++)
        for (int t = 0; t < T; t++) {
            double d = 0;
            for (int e = 0; e < E; e++)
                d += (double)ie[(size_t)i * E + e] * te[(size_t)t * E + e];
            sim[(size_t)i * T + t] = d;
        }
    free(ie);
    free(te);
    return sim;
}

/* A rank is right if it lies between the count of candidates surely above the ground truth
 * and the count of those possibly above it (scores within RANK_EPS). tier: re-ranked first. */
static int rank_ok(const double *val, const int *tier, int n, const int *gt, int n_gt, int got,
                   int *exact) {
    int g = gt[0];
    for (int j = 1; j < n_gt; j++) {
        int a = gt[j];
        if ((tier ? tier[a] : 0) > (tier ? tier[g] : 0) ||
            ((tier ? tier[a] : 0) == (tier ? tier[g] : 0) && val[a] > val[g]))
            g = a;
    }
    int lo = 0, hi = 0;
    for (int c = 0; c < n; c++) {
        int tc = tier ? tier[c] : 0, tg = tier ? tier[g] : 0;
        if (tc != tg) {
            lo += tc > tg, hi += tc > tg;
            continue;
        }
        lo += val[c] > val[g] + RANK_EPS;
        hi += val[c] > val[g] - RANK_EPS && c != g;
    }
    /* near-ties among the ground truths themselves can only lower the upper bound */
    if (lo != hi) *exact = 0;
    return got >= lo && got <= hi;
}

/* Top k by score (ties: lower index), the brute-force twin of the library's selection. */
static void brute_top(const double *v, size_t stride, int n, int k, int *out) {
    char *used = calloc((size_t)n, 1);
    for (int j = 0; j < k; j++) {
        int b = -1;
        for (int c = 0; c < n; c++)
            if (!used[c] && (b < 0 || v[(size_t)c * stride] > v[(size_t)b * stride])) b = c;
        used[b] = 1;
        out[j] = b;
    }
    free(used);
}

/* Check every rank of r (ITC, or re-rank with itm (I, T) = brute ITM match logits) against
 * the brute force; returns 1 when every rank is unambiguous (recall must then be equal). */
static int check_ranks(const gz_eval_result *r, const double *sim, const double *itm, int k,
                       const char *what) {
    const int I = r->n_images, T = r->n_texts;
    double *val = calloc((size_t)(I > T ? I : T), sizeof *val);
    int *tier = calloc((size_t)(I > T ? I : T), sizeof *tier);
    int *gt = calloc((size_t)T, sizeof *gt), *top = calloc((size_t)(I > T ? I : T), sizeof *top);
    int exact = 1, bad = 0;
    const int *trank = itm ? r->txt_rank_rerank : r->txt_rank_itc;
    const int *irank = itm ? r->img_rank_rerank : r->img_rank_itc;
    int k1 = k < T ? k : T, k2 = k < I ? k : I;
    for (int i = 0; i < I; i++) {
        int ng = 0;
        for (int t = 0; t < T; t++) {
            val[t] = sim[(size_t)i * T + t];
            tier[t] = 0;
            if (r->txt2img[t] == i) gt[ng++] = t;
        }
        if (itm) {
            brute_top(sim + (size_t)i * T, 1, T, k1, top);
            for (int j = 0; j < k1; j++) {
                tier[top[j]] = 1;
                val[top[j]] = itm[(size_t)i * T + top[j]] + sim[(size_t)i * T + top[j]];
            }
        }
        if (!rank_ok(val, itm ? tier : NULL, T, gt, ng, trank[i], &exact)) {
            fprintf(stderr, "%s: image %d: rank %d outside the brute-force range\n", what, i,
                    trank[i]);
            bad++;
        }
    }
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < I; i++) {
            val[i] = sim[(size_t)i * T + t];
            tier[i] = 0;
        }
        if (itm) {
            brute_top(sim + t, (size_t)T, I, k2, top);
            for (int j = 0; j < k2; j++) {
                tier[top[j]] = 1;
                val[top[j]] = itm[(size_t)top[j] * T + t] + sim[(size_t)top[j] * T + t];
            }
        }
        int g = r->txt2img[t];
        if (!rank_ok(val, itm ? tier : NULL, I, &g, 1, irank[t], &exact)) {
            fprintf(stderr, "%s: text %d: rank %d outside the brute-force range\n", what, t,
                    irank[t]);
            bad++;
        }
    }
    checks++;
    if (bad) gz_test_failures++;
    free(val);
    free(tier);
    free(gt);
    free(top);
    return exact;
}

/* Brute-force recall from brute-force ranks (re-derived here: count strictly higher). */
static void brute_recall(const gz_eval_result *r, const double *sim, gz_eval_recall *out) {
    const int I = r->n_images, T = r->n_texts;
    int *tr = calloc((size_t)I, sizeof *tr), *ir = calloc((size_t)T, sizeof *ir);
    for (int i = 0; i < I; i++) {
        double best = -INFINITY;
        for (int t = 0; t < T; t++)
            if (r->txt2img[t] == i && sim[(size_t)i * T + t] > best) best = sim[(size_t)i * T + t];
        for (int t = 0; t < T; t++)
            tr[i] += sim[(size_t)i * T + t] > best;
    }
    for (int t = 0; t < T; t++) {
        double g = sim[(size_t)r->txt2img[t] * T + t];
        for (int i = 0; i < I; i++)
            ir[t] += sim[(size_t)i * T + t] > g;
    }
    /* R@K by its definition, written out independently of gz_eval_recall_from_ranks */
    int c[6] = {0};
    for (int i = 0; i < I; i++)
        c[0] += tr[i] < 1, c[1] += tr[i] < 5, c[2] += tr[i] < 10;
    for (int t = 0; t < T; t++)
        c[3] += ir[t] < 1, c[4] += ir[t] < 5, c[5] += ir[t] < 10;
    out->txt_r1 = 100.0 * c[0] / I, out->txt_r5 = 100.0 * c[1] / I, out->txt_r10 = 100.0 * c[2] / I;
    out->img_r1 = 100.0 * c[3] / T, out->img_r5 = 100.0 * c[4] / T, out->img_r10 = 100.0 * c[5] / T;
    out->txt_r_mean = (out->txt_r1 + out->txt_r5 + out->txt_r10) / 3;
    out->img_r_mean = (out->img_r1 + out->img_r5 + out->img_r10) / 3;
    out->r_mean = (out->txt_r_mean + out->img_r_mean) / 2;
    free(tr);
    free(ir);
}

static void check_recall_equal(const char *what, const gz_eval_recall *a, const gz_eval_recall *b) {
    const double x[9] = {a->txt_r1, a->txt_r5,  a->txt_r10,    a->txt_r_mean, a->img_r1,
                         a->img_r5, a->img_r10, a->img_r_mean, a->r_mean};
    const double y[9] = {b->txt_r1, b->txt_r5,  b->txt_r10,    b->txt_r_mean, b->img_r1,
                         b->img_r5, b->img_r10, b->img_r_mean, b->r_mean};
    checks++;
    for (int j = 0; j < 9; j++)
        if (fabs(x[j] - y[j]) > 1e-9) {
            fprintf(stderr, "%s: recall field %d: %.6f vs %.6f\n", what, j, x[j], y[j]);
            gz_test_failures++;
            return;
        }
}

static void run_family(const char *fam, const char *lang) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s", gz_test_path("fixtures/%s", fam));
    gz_model_params mp = gz_model_default_params();
    mp.exif_orient = 0;
    mp.fast_decode = 0;
    gz_model *m = NULL;
    CHECK_OK(gz_model_load(dir, &mp, &m));
    if (!m) return;
    gz_eval_load_opts lo = gz_eval_default_load_opts();
    lo.lang = lang;
    gz_eval_set *s = NULL;
    CHECK_OK(gz_eval_load(gz_test_path("evalset/captions.jsonl"), &lo, &s));
    if (!s) {
        gz_model_free(m);
        return;
    }
    gz_eval_params ep = gz_eval_default_params();
    ep.image_batch = 5; /* batches that do not divide the image count */
    ep.text_batch = 7;
    gz_eval_result r;
    CHECK_OK(gz_eval_run(m, s, &ep, &r));
    checks++;
    CHECK(r.n_images == s->n_images && r.n_texts == s->n_texts && r.n_failed_images == 0);
    CHECK(r.text_process ==
          (gz_model_family(m) == GZ_FAMILY_BLIP ? GZ_EVAL_TEXT_BLIP : GZ_EVAL_TEXT_NONE));
    CHECK(r.final == &r.itc && r.rerank_k == 0 && !r.txt_rank_rerank);
    double *sim = brute_itc(m, s, &r);
    /* ITC matrix */
    double maxd = 0;
    for (size_t j = 0; j < (size_t)r.n_images * r.n_texts; j++) {
        double d = fabs(sim[j] - r.i2t_itc[j]);
        if (!(d <= maxd)) maxd = d;
    }
    printf("  %s%s%s: %d images, %d texts, ITC max |lib - brute| = %.2e, r_mean %.2f\n", fam,
           lang ? " " : "", lang ? lang : "", r.n_images, r.n_texts, maxd, r.itc.r_mean);
    CHECK(maxd <= ATOL_ITC);
    char what[64];
    snprintf(what, sizeof what, "%s itc", fam);
    if (check_ranks(&r, sim, NULL, 0, what)) {
        gz_eval_recall b;
        brute_recall(&r, sim, &b);
        check_recall_equal(what, &r.itc, &b);
    } else {
        printf("  %s: near-tied scores, recall equality not checked\n", fam);
    }
    /* top candidates are argmaxes */
    for (int i = 0; i < r.n_images; i++)
        for (int t = 0; t < r.n_texts; t++)
            CHECK(sim[(size_t)i * r.n_texts + t] <=
                  sim[(size_t)i * r.n_texts + r.txt_top_itc[i]] + RANK_EPS);
    free(sim);

    /* Failed images: a missing file and a non-image are left out with their captions; the
     * remaining evaluation equals the one of a set without them. */
    const char *tmp = gz_test_tmpdir("eval-fail");
    char p[1400], bogus[1300];
    snprintf(bogus, sizeof bogus, "%s/not_an_image.jpg", tmp);
    write_file(bogus, "this is text, not a JPEG\n");
    snprintf(p, sizeof p, "%s/with_failures.jsonl", tmp);
    FILE *f = fopen(p, "w");
    FILE *in = fopen(gz_test_path("evalset/captions.jsonl"), "r");
    char line[16384];
    int n = 0;
    while (in && fgets(line, sizeof line, in)) {
        if (n == 3)
            fprintf(f, "{\"image\": \"images/does_not_exist.jpg\", \"captions\": [\"ghost\", "
                       "\"ghost two\"], \"captions_i18n\": {\"zh_TW\": [\"鬼\"]}}\n");
        if (n == 9)
            fprintf(f,
                    "{\"image\": \"%s\", \"captions\": [\"text\"], \"captions_i18n\": "
                    "{\"zh_TW\": [\"文字\"]}}\n",
                    bogus);
        fputs(line, f);
        n++;
    }
    if (in) fclose(in);
    fclose(f);
    lo.image_root = gz_test_path("evalset");
    lo.allow_outside_root = 1; /* the bogus images live in this test's temporary folder */
    gz_eval_set *s2 = NULL;
    CHECK_OK(gz_eval_load(p, &lo, &s2));
    failures fl = {0};
    ep.image_failed = on_failed;
    ep.user = &fl;
    gz_eval_result r2;
    if (s2) {
        CHECK_OK(gz_eval_run(m, s2, &ep, &r2));
        checks++;
        CHECK(fl.n == 2 && r2.n_failed_images == 2);
        CHECK(r2.n_failed_texts == (lang ? 2 : 3));
        CHECK(strstr(fl.paths[0], "does_not_exist.jpg") && !strcmp(fl.paths[1], bogus));
        CHECK(r2.n_images == r.n_images && r2.n_texts == r.n_texts);
        for (int t = 0; t < r2.n_texts && t < r.n_texts; t++)
            CHECK(!strcmp(r2.processed_texts[t], r.processed_texts[t]));
        snprintf(what, sizeof what, "%s with failures", fam);
        check_recall_equal(what, &r2.itc, &r.itc);
        gz_eval_result_free(&r2);
    }
    gz_eval_set_free(s2);

    /* re-rank: CLIP family refuses, BLIP against a brute-force ITM re-rank */
    ep = gz_eval_default_params();
    ep.rerank_k = 4;
    if (!gz_model_has_itm(m)) {
        gz_eval_result r3;
        CHECK(gz_eval_run(m, s, &ep, &r3) == GZ_EUNSUPPORTED);
        CHECK(strstr(gz_last_error(), "BLIP") != NULL);
    } else {
        for (int pass = 0; pass < 2; pass++) {
            ep.rerank_k = pass == 0 ? 4 : 1000; /* 1000: every candidate re-ranked */
            gz_eval_result r3;
            CHECK_OK(gz_eval_run(m, s, &ep, &r3));
            if (!r3.txt_rank_rerank) continue;
            CHECK(r3.final == &r3.rerank && r3.rerank_k == ep.rerank_k);
            const int I = r3.n_images, T = r3.n_texts;
            double *sim3 = brute_itc(m, s, &r3);
            double *itm = calloc((size_t)I * T, sizeof *itm);
            gz_image_params ip = gz_model_image_params(m);
            for (int i = 0; i < I; i++) { /* ITM of every pair, one text at a time */
                gz_image img;
                CHECK_OK(gz_image_load(s->images[r3.image_index[i]].path, &ip, &img));
                for (int t = 0; t < T; t++) {
                    gz_match mt;
                    const char *txt = r3.processed_texts[t];
                    CHECK_OK(gz_match_image_texts(m, &img, &txt, 1, &mt));
                    itm[(size_t)i * T + t] = mt.itm_logit[1];
                }
                gz_image_free(&img);
            }
            snprintf(what, sizeof what, "%s rerank k=%d", fam, ep.rerank_k);
            int exact = check_ranks(&r3, sim3, itm, ep.rerank_k, what);
            /* pairs scored once each: at most I*k + T*k, at least the larger direction */
            int k1 = ep.rerank_k < T ? ep.rerank_k : T, k2 = ep.rerank_k < I ? ep.rerank_k : I;
            CHECK(r3.n_itm_pairs <= (int64_t)I * k1 + (int64_t)T * k2);
            CHECK(r3.n_itm_pairs >= (int64_t)I * k1 && r3.n_itm_pairs >= (int64_t)T * k2);
            if (pass == 1) CHECK(r3.n_itm_pairs == (int64_t)I * T);
            printf("  %s: r_mean itc %.2f -> re-rank %.2f (%lld ITM pairs)%s\n", what,
                   r3.itc.r_mean, r3.rerank.r_mean, (long long)r3.n_itm_pairs,
                   exact ? "" : ", near ties");
            free(itm);
            free(sim3);
            gz_eval_result_free(&r3);
        }
    }
    gz_eval_result_free(&r);
    gz_eval_set_free(s);
    gz_model_free(m);
}

int main(void) {
    test_ranks_handmade();
    test_recall_thresholds();
    test_blip_caption();
    test_load();
    run_family("blip_itm", NULL);
    run_family("clip", NULL);
    run_family("chinese_clip", NULL);
    run_family("chinese_clip", "zh_TW");
    return gz_test_finish("test_engine_eval", checks);
}
