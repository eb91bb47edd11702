/* test_vision_preprocess.c - HF image processor parity: resized_uint8 and pixel_values
 * bit-exact for every fixture image and family, from the files (decode + preprocess) and
 * from PIL's decoded pixels; pixel_values_load_image with EXIF orientation; fast decode
 * stays close to the exact path; crop/size rules; thumbnails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/safetensors.h"
#include "gaze.h"
#include "testutil.h"
#include "vision_encoder/preprocess.h"

static int checks = 0;
#define T(cond) CHECK_COUNTED(checks, cond)

/* Tolerances. The HF parity checks (test_family) are bit-exact: no tolerance. The two bounds
 * below compare different but legitimate ways to compute one picture, in uint8 levels (0..255),
 * each set well above what we measure and well below what a bug would give.
 *
 * FAST_DECODE_MAX_MEAN_DIFF: mean |diff| of the 224 px model input from a DCT-scaled JPEG
 * decode (libjpeg's M/8 scaling, then PIL bicubic) against the exact full decode: measured
 * 0.32..1.15 on the four photos. The margin (2.6x the worst) leaves room for another
 * libjpeg-turbo version's scaled-IDCT rounding.
 * THUMB_MAX_MEAN_SHIFT: change of the mean colour when a 1200x1800 photo is thumbnailed to 256
 * px: measured 0.00 (area averaging keeps the mean up to rounding); a tinted or darkened
 * thumbnail would exceed it. */
#define FAST_DECODE_MAX_MEAN_DIFF 3.0
#define THUMB_MAX_MEAN_SHIFT 2.0

/* Batch order of the fixtures (tests/data/fixtures/inputs.json, README "Images"). */
static const char *const images[] = {"a1_chelsea.jpg", "a2_rocket.jpg", "a3_coffee_exif6.jpg",
                                     "a4_coins_gray.png", "a5_clip_diagram_rgba.png"};
#define NIMG 5

typedef struct {
    const char *dir;
    gz_family fam;
} family;

static const family families[] = {{"blip_itm", GZ_FAMILY_BLIP},
                                  {"clip", GZ_FAMILY_CLIP},
                                  {"chinese_clip", GZ_FAMILY_CHINESE_CLIP}};

/* Count differing uint8 values and the largest difference. */
static int cmp_u8(const uint8_t *a, const uint8_t *b, size_t n, size_t *nbad) {
    int maxd = 0;
    *nbad = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d) (*nbad)++;
        if (d > maxd) maxd = d;
    }
    return maxd;
}

/* Bit-exact float comparison (memcmp would also flag -0 vs 0, which numpy would not make). */
static double cmp_f32(const float *a, const float *b, size_t n, size_t *nbad) {
    double maxd = 0;
    *nbad = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) (*nbad)++;
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > maxd || d != d) maxd = d;
    }
    return maxd;
}

static void test_family(const family *f, const gz_st_file *rgbref) {
    gz_preproc_config pc;
    gz_status s = gz_preproc_config_load(
        gz_test_path("fixtures/%s/preprocessor_config.json", f->dir), f->fam, &pc);
    CHECK_OK(s);
    if (s != GZ_OK) return;
    gz_st_file *ex = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/expected.safetensors", f->dir), &ex));
    if (!ex) return;
    const gz_st_tensor *ru = gz_st_find(ex, "resized_uint8");
    const gz_st_tensor *pv = gz_st_find(ex, "pixel_values");
    const gz_st_tensor *pl = gz_st_find(ex, "pixel_values_load_image");
    T(ru && pv && pl);
    if (!ru || !pv || !pl) {
        gz_st_close(ex);
        return;
    }
    const int S = gz_preproc_output_size(&pc);
    T(ru->ndim == 4 && ru->shape[0] == NIMG && ru->shape[1] == S && ru->shape[2] == S);
    T(pv->ndim == 4 && pv->shape[1] == 3 && pv->shape[2] == S && pv->dtype == GZ_DT_F32);
    printf("%s (S = %d, %s):\n", f->dir, S,
           pc.size_shortest_edge > 0 ? "short side + centre crop" : "straight to S x S");
    const size_t npx = (size_t)S * S * 3;
    float *x = malloc(npx * sizeof *x);
    for (int i = 0; i < NIMG; i++) {
        const uint8_t *want_u8 = (const uint8_t *)ru->data + i * npx;
        const float *want_pv = (const float *)pv->data + i * npx;
        const float *want_pl = (const float *)pl->data + i * npx;
        size_t bad_a = 0, bad_b = 0, bad_c = 0, bad_d = 0;
        int md_a = -1, md_b = -1;
        double md_c = -1, md_d = -1;

        /* (a) resampler alone, from PIL's own decode */
        const gz_st_tensor *t = gz_st_find(rgbref, images[i]);
        T(t != NULL);
        if (t) {
            uint8_t *r = NULL;
            CHECK_OK(gz_preproc_resize(&pc, t->data, (int)t->shape[1], (int)t->shape[0], &r));
            if (r) md_a = cmp_u8(r, want_u8, npx, &bad_a);
            free(r);
        }
        /* (b, c) the whole path from the file: decode (no EXIF, as the processors) + preprocess */
        gz_image_params ip = gz_image_default_params();
        ip.exif_orient = 0;
        gz_image im;
        CHECK_OK(gz_image_load(gz_test_path("fixtures/images/%s", images[i]), &ip, &im));
        if (im.rgb) {
            uint8_t *r = NULL;
            CHECK_OK(gz_preproc_resize(&pc, im.rgb, im.width, im.height, &r));
            if (r) md_b = cmp_u8(r, want_u8, npx, &bad_b);
            free(r);
            CHECK_OK(gz_preprocess(&pc, im.rgb, im.width, im.height, x));
            md_c = cmp_f32(x, want_pv, npx, &bad_c);
            gz_image_free(&im);
        }
        /* (d) transformers' load_image: EXIF orientation applied */
        ip.exif_orient = 1;
        CHECK_OK(gz_image_load(gz_test_path("fixtures/images/%s", images[i]), &ip, &im));
        if (im.rgb) {
            CHECK_OK(gz_preprocess(&pc, im.rgb, im.width, im.height, x));
            md_d = cmp_f32(x, want_pl, npx, &bad_d);
            gz_image_free(&im);
        }
        printf("  %-26s resize(PIL rgb) max %d (%zu diff) | resize(file) max %d (%zu) | "
               "pixel_values max %.3g (%zu) | load_image max %.3g (%zu)\n",
               images[i], md_a, bad_a, md_b, bad_b, md_c, bad_c, md_d, bad_d);
        T(md_a == 0 && md_b == 0 && md_c == 0 && md_d == 0);
        T(bad_c == 0 && bad_d == 0);
    }
    free(x);
    gz_st_close(ex);
}

/* The fast (DCT-scaled) JPEG decode gives nearly the same model input as the exact one. */
static void test_fast_decode(void) {
    static const char *const photos[] = {"large_dandelions_5312px_progressive.jpg",
                                         "product_wine_interior_tall.jpg", "animal_ladybird.jpg",
                                         "exif_orient_6_portrait.jpg"};
    gz_preproc_config pc;
    CHECK_OK(gz_preproc_config_load(gz_test_path("fixtures/clip/preprocessor_config.json"),
                                    GZ_FAMILY_CLIP, &pc));
    /* Pretend to be a 224 model (ViT-B): the fixtures' 48 px is unrealistically small. */
    pc.size_shortest_edge = pc.crop_height = pc.crop_width = 224;
    const int S = gz_preproc_output_size(&pc);
    T(S == 224);
    T(gz_preproc_min_decode_size(&pc) >= 224);
    printf("fast decode (min_size %d) vs full decode, CLIP-style S = %d, mean |diff| in uint8 "
           "levels:\n",
           gz_preproc_min_decode_size(&pc), S);
    for (size_t k = 0; k < sizeof photos / sizeof photos[0]; k++) {
        const char *path = gz_test_path("photos/%s", photos[k]);
        gz_image_params ip = gz_image_default_params();
        gz_image full, fast;
        CHECK_OK(gz_image_load(path, &ip, &full));
        ip.min_size = gz_preproc_min_decode_size(&pc);
        CHECK_OK(gz_image_load(path, &ip, &fast));
        if (!full.rgb || !fast.rgb) continue;
        uint8_t *a = NULL, *b = NULL;
        CHECK_OK(gz_preproc_resize(&pc, full.rgb, full.width, full.height, &a));
        CHECK_OK(gz_preproc_resize_as(&pc, fast.rgb, fast.width, fast.height, fast.src_width,
                                      fast.src_height, &b));
        if (a && b) {
            double sum = 0;
            size_t n = (size_t)S * S * 3;
            for (size_t i = 0; i < n; i++)
                sum += abs((int)a[i] - (int)b[i]);
            printf("  %-42s %4dx%-4d -> %4dx%-4d: %.2f\n", photos[k], full.width, full.height,
                   fast.width, fast.height, sum / n);
            T(fast.width < full.width);
            T(sum / n < FAST_DECODE_MAX_MEAN_DIFF);
        }
        free(a);
        free(b);
        gz_image_free(&full);
        gz_image_free(&fast);
    }
}

/* Size rules: HF rounding for the long side, crop offsets, padding, unsupported configs. */
static void test_rules(void) {
    gz_preproc_config c;
    memset(&c, 0, sizeof c);
    c.do_resize = 1;
    c.size_shortest_edge = 224;
    c.do_center_crop = 1;
    c.crop_height = c.crop_width = 224;
    c.resample = 3;
    int w = 0, h = 0;
    CHECK_OK(gz_preproc_resize_dims(&c, 640, 427, &w, &h));
    T(h == 224 && w == 335); /* int(224 * 640 / 427) = int(335.737...) */
    CHECK_OK(gz_preproc_resize_dims(&c, 300, 451, &w, &h));
    T(w == 224 && h == 336); /* int(224 * 451 / 300) = int(336.746...) */
    CHECK_OK(gz_preproc_resize_dims(&c, 100, 100, &w, &h));
    T(w == 224 && h == 224);
    T(gz_preproc_output_size(&c) == 224);
    T(gz_preproc_min_decode_size(&c) == 224);

    /* Centre crop of a constant-colour image stays constant (no padding involved). */
    uint8_t img[40 * 30 * 3];
    memset(img, 77, sizeof img);
    c.size_shortest_edge = 16;
    c.crop_height = c.crop_width = 16;
    uint8_t *out = NULL;
    CHECK_OK(gz_preproc_resize(&c, img, 40, 30, &out));
    if (out) {
        int ok = 1;
        for (int i = 0; i < 16 * 16 * 3; i++)
            ok &= out[i] == 77;
        T(ok);
        free(out);
    }
    /* A crop larger than the resized image pads with zeros around it, as HF does. */
    c.size_shortest_edge = 0;
    c.size_height = c.size_width = 10;
    c.crop_height = c.crop_width = 13;
    CHECK_OK(gz_preproc_resize(&c, img, 40, 30, &out));
    if (out) {
        /* top = (10 - 13) // 2 = -2: rows 0-1 and 12 are padding, 2..11 image */
        T(out[0] == 0 && out[(1 * 13 + 5) * 3] == 0 && out[(12 * 13 + 5) * 3] == 0);
        T(out[(2 * 13 + 2) * 3] == 77 && out[(11 * 13 + 11) * 3] == 77);
        T(out[(5 * 13 + 1) * 3] == 0 && out[(5 * 13 + 12) * 3] == 0);
        free(out);
    }
    /* Unsupported filter, non-square output. */
    c.resample = 2;
    T(gz_preproc_resize(&c, img, 40, 30, &out) == GZ_EUNSUPPORTED && out == NULL);
    c.resample = 3;
    c.do_center_crop = 0;
    c.size_height = 10;
    c.size_width = 12;
    T(gz_preproc_output_size(&c) == 0);
    T(gz_preproc_resize(&c, img, 40, 30, &out) == GZ_EUNSUPPORTED);

    /* Same size in and out is a copy; upscaling a constant stays constant. */
    uint8_t big[7 * 5 * 3];
    CHECK_OK(gz_resize_bicubic_pil(img, 7, 5, big, 7, 5));
    T(memcmp(big, img, sizeof big) == 0);
    uint8_t up[50 * 45 * 3];
    CHECK_OK(gz_resize_bicubic_pil(img, 40, 30, up, 50, 45));
    int ok = 1;
    for (size_t i = 0; i < sizeof up; i++)
        ok &= up[i] == 77;
    T(ok);
}

static void test_thumbnail(void) {
    gz_image im, th;
    CHECK_OK(gz_image_load(gz_test_path("photos/exif_orient_6_portrait.jpg"), NULL, &im));
    if (!im.rgb) return;
    CHECK_OK(gz_image_thumbnail(&im, 256, &th));
    T(th.rgb && th.height == 256 && th.width == (int)(256.0 * im.width / im.height + 0.5));
    T(th.orientation == im.orientation && strcmp(th.format, im.format) == 0);
    /* Mean colour is kept. */
    if (th.rgb) {
        double m0 = 0, m1 = 0;
        for (size_t i = 0; i < (size_t)im.width * im.height * 3; i++)
            m0 += im.rgb[i];
        for (size_t i = 0; i < (size_t)th.width * th.height * 3; i++)
            m1 += th.rgb[i];
        m0 /= (double)im.width * im.height * 3;
        m1 /= (double)th.width * th.height * 3;
        printf("thumbnail %dx%d -> %dx%d, mean %.2f -> %.2f\n", im.width, im.height, th.width,
               th.height, m0, m1);
        T(fabs(m0 - m1) < THUMB_MAX_MEAN_SHIFT);
    }
    gz_image_free(&th);
    gz_image small;
    CHECK_OK(gz_image_thumbnail(&im, 100000, &small)); /* never enlarges */
    T(small.width == im.width && small.height == im.height);
    gz_image_free(&small);
    T(gz_image_thumbnail(&im, 0, &th) == GZ_EINVAL && th.rgb == NULL);
    gz_image_free(&im);
}

int main(void) {
    gz_st_file *rgbref = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/images/decoded_rgb.safetensors"), &rgbref));
    if (rgbref)
        for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
            test_family(&families[f], rgbref);
    gz_st_close(rgbref);
    test_rules();
    test_fast_decode();
    test_thumbnail();
    return gz_test_finish("test_vision_preprocess", checks);
}
