/* preprocess.c - HF-exact image preprocessing: Pillow BICUBIC resize, centre crop, normalise.
 *
 * Why not stb_image_resize (the design's resizer) for the model input: the reference is
 * Pillow 9.4's ImagingResample, which computes the bicubic (a = -0.5) weights in double,
 * widens the support by the downscale factor, rounds them to 22-bit fixed point and runs a
 * horizontal then a vertical pass with a uint8 (rounded, clamped) image in between. stb
 * filters in float with a different Catmull-Rom/Mitchell kernel, edge handling and no
 * intermediate rounding, so it lands one or more uint8 levels off on many pixels, and
 * `resized_uint8`/`pixel_values` could not be met bit-exactly. The Pillow path below
 * follows the rules in tests/data/fixtures/README.md; stb is used for thumbnails only.
 * Legend: H, W = input size, OH, OW = resized size, S = model input side. */
#include "vision_encoder/preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_STATIC
#include <stb/stb_image_resize.h>

#define PIL_BICUBIC 3
#define PRECISION_BITS 22 /* Pillow: 32 - 8 (uint8) - 2 (headroom) */

/* ---- Pillow BICUBIC ----------------------------------------------------------------- */

/* Pillow's bicubic_filter, a = -0.5, evaluated in the same order. */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct {
    int ksize;
    int *bounds; /* (out, 2): first input index, count */
    int32_t *k;  /* (out, ksize) 22-bit fixed-point weights */
} coeffs;

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
    memset(c, 0, sizeof *c);
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for in -> out samples. */
static gz_status precompute(int in, int out, coeffs *c) {
    memset(c, 0, sizeof *c);
    double scale = (double)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale; /* bicubic support 2, widened when downscaling */
    int ksize = (int)ceil(support) * 2 + 1;
    size_t nk;
    if (!gz_mul_size((size_t)out, (size_t)ksize, &nk))
        return GZ_FAIL(GZ_ENOMEM, "resize %d -> %d: coefficient table overflows", in, out);
    double *pre = malloc(nk * sizeof *pre);
    c->k = malloc(nk * sizeof *c->k);
    c->bounds = malloc((size_t)out * 2 * sizeof *c->bounds);
    if (!pre || !c->k || !c->bounds) {
        free(pre);
        coeffs_free(c);
        return GZ_FAIL(GZ_ENOMEM, "resize %d -> %d: out of memory", in, out);
    }
    c->ksize = ksize;
    const double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        double *k = pre + (size_t)xx * ksize;
        int x = 0;
        for (; x < xmax; x++) {
            double w = bicubic((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++)
            k[x] = 0;
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    for (size_t i = 0; i < nk; i++)
        c->k[i] = pre[i] < 0 ? (int32_t)(-0.5 + pre[i] * (1 << PRECISION_BITS))
                             : (int32_t)(0.5 + pre[i] * (1 << PRECISION_BITS));
    free(pre);
    return GZ_OK;
}

static uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Rows [y0, y1) of in (H, W, 3) -> out (y1 - y0, OW, 3). */
static void resample_h(const uint8_t *in, int w, int y0, int y1, uint8_t *out, int ow,
                       const coeffs *c) {
    for (int y = y0; y < y1; y++) {
        const uint8_t *src = in + (size_t)y * w * 3;
        uint8_t *dst = out + (size_t)(y - y0) * ow * 3;
        for (int xx = 0; xx < ow; xx++) {
            const int xmin = c->bounds[2 * xx], xmax = c->bounds[2 * xx + 1];
            const int32_t *k = c->k + (size_t)xx * c->ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            const uint8_t *p = src + (size_t)xmin * 3;
            for (int x = 0; x < xmax; x++, p += 3) {
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            dst[3 * xx + 0] = clip8(s0);
            dst[3 * xx + 1] = clip8(s1);
            dst[3 * xx + 2] = clip8(s2);
        }
    }
}

/* in (rows, W, 3) whose row 0 is input row `shift` -> out (OH, W, 3). */
static void resample_v(const uint8_t *in, int w, int shift, uint8_t *out, int oh, const coeffs *c) {
    const size_t stride = (size_t)w * 3;
    for (int yy = 0; yy < oh; yy++) {
        const int ymin = c->bounds[2 * yy] - shift, ymax = c->bounds[2 * yy + 1];
        const int32_t *k = c->k + (size_t)yy * c->ksize;
        uint8_t *dst = out + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int32_t s = 1 << (PRECISION_BITS - 1);
            const uint8_t *p = in + (size_t)ymin * stride + i;
            for (int y = 0; y < ymax; y++, p += stride)
                s += *p * k[y];
            dst[i] = clip8(s);
        }
    }
}

gz_status gz_resize_bicubic_pil(const uint8_t *rgb, int w, int h, uint8_t *out, int ow, int oh) {
    if (!rgb || !out || w <= 0 || h <= 0 || ow <= 0 || oh <= 0)
        return GZ_FAIL(GZ_EINVAL, "resize: bad arguments (%dx%d -> %dx%d)", w, h, ow, oh);
    const int need_h = ow != w, need_v = oh != h;
    size_t n;
    if (!need_h && !need_v) {
        memcpy(out, rgb, (size_t)w * h * 3);
        return GZ_OK;
    }
    coeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL;
    gz_status st = GZ_OK;
    if (need_v && (st = precompute(h, oh, &cv)) != GZ_OK) goto done;
    if (!need_h) {
        resample_v(rgb, w, 0, out, oh, &cv);
        goto done;
    }
    if ((st = precompute(w, ow, &ch)) != GZ_OK) goto done;
    if (!need_v) {
        resample_h(rgb, w, 0, h, out, ow, &ch);
        goto done;
    }
    /* Only the input rows the vertical pass reads go through the horizontal pass. */
    const int y0 = cv.bounds[0];
    const int y1 = cv.bounds[2 * (oh - 1)] + cv.bounds[2 * (oh - 1) + 1];
    if (!gz_mul_size((size_t)(y1 - y0), (size_t)ow * 3, &n) || !(tmp = malloc(n))) {
        st = GZ_FAIL(GZ_ENOMEM, "resize %dx%d -> %dx%d: out of memory", w, h, ow, oh);
        goto done;
    }
    resample_h(rgb, w, y0, y1, tmp, ow, &ch); /* (y1 - y0, OW, 3) */
    resample_v(tmp, ow, y0, out, oh, &cv);    /* (OH, OW, 3) */
done:
    free(tmp);
    coeffs_free(&ch);
    coeffs_free(&cv);
    return st;
}

/* ---- HF processor steps ------------------------------------------------------------- */

int gz_preproc_output_size(const gz_preproc_config *c) {
    if (c->do_center_crop) return c->crop_height == c->crop_width ? c->crop_height : 0;
    if (c->do_resize && c->size_shortest_edge <= 0 && c->size_height == c->size_width)
        return c->size_height;
    return 0;
}

int gz_preproc_min_decode_size(const gz_preproc_config *c) {
    if (!c->do_resize) return 0; /* the image is used at its own size: decode all of it */
    if (c->size_shortest_edge > 0) return c->size_shortest_edge;
    return c->size_height > c->size_width ? c->size_height : c->size_width;
}

gz_status gz_preproc_resize_dims(const gz_preproc_config *c, int w, int h, int *out_w, int *out_h) {
    if (w <= 0 || h <= 0) return GZ_FAIL(GZ_EINVAL, "preprocess: bad image size %dx%d", w, h);
    if (!c->do_resize) {
        *out_w = w;
        *out_h = h;
        return GZ_OK;
    }
    if (c->size_shortest_edge > 0) {
        /* transformers' get_resize_output_image_size(default_to_square=False):
         * new_long = int(size * long / short), Python true division then truncation. */
        const int s = c->size_shortest_edge;
        const int shrt = w <= h ? w : h, lng = w <= h ? h : w;
        double nl = (double)((int64_t)s * lng) / (double)shrt;
        if (nl >= 2147483647.0) return GZ_FAIL(GZ_EINVAL, "preprocess: %dx%d too elongated", w, h);
        int new_long = (int)nl;
        if (new_long < 1) new_long = 1;
        *out_w = w <= h ? s : new_long;
        *out_h = w <= h ? new_long : s;
        return GZ_OK;
    }
    if (c->size_height <= 0 || c->size_width <= 0)
        return GZ_FAIL(GZ_EINVAL, "preprocess: config has no valid size");
    *out_w = c->size_width;
    *out_h = c->size_height;
    return GZ_OK;
}

/* Python floor division for the centre-crop offsets (they are negative when padding). */
static int floor_div2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

gz_status gz_preproc_resize(const gz_preproc_config *c, const uint8_t *rgb, int w, int h,
                            uint8_t **out) {
    return gz_preproc_resize_as(c, rgb, w, h, w, h, out);
}

gz_status gz_preproc_resize_as(const gz_preproc_config *c, const uint8_t *rgb, int w, int h,
                               int full_w, int full_h, uint8_t **out) {
    *out = NULL;
    if (!rgb) return GZ_FAIL(GZ_EINVAL, "preprocess: no pixels");
    if (c->do_resize && c->resample != PIL_BICUBIC)
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "preprocess: resample filter %d not supported (only 3 = BICUBIC)",
                       c->resample);
    const int S = gz_preproc_output_size(c);
    if (S <= 0)
        return GZ_FAIL(GZ_EUNSUPPORTED, "preprocess: the config does not give a square output");
    int rw, rh;
    if (full_w <= 0 || full_h <= 0) {
        full_w = w;
        full_h = h;
    }
    gz_status st = gz_preproc_resize_dims(c, full_w, full_h, &rw, &rh);
    if (st != GZ_OK) return st;
    size_t n;
    if (!gz_mul_size((size_t)rw, (size_t)rh, &n) || !gz_mul_size(n, 3, &n))
        return GZ_FAIL(GZ_ENOMEM, "preprocess: resize to %dx%d overflows", rw, rh);
    uint8_t *res = malloc(n); /* (RH, RW, 3) */
    uint8_t *dst = malloc((size_t)S * S * 3);
    if (!res || !dst) {
        free(res);
        free(dst);
        return GZ_FAIL(GZ_ENOMEM, "preprocess: out of memory");
    }
    st = gz_resize_bicubic_pil(rgb, w, h, res, rw, rh);
    if (st != GZ_OK) {
        free(res);
        free(dst);
        return st;
    }
    if (!c->do_center_crop) {
        if (rw != S || rh != S) {
            free(res);
            free(dst);
            return GZ_FAIL(GZ_EUNSUPPORTED, "preprocess: resized image is %dx%d, model wants %dx%d",
                           rw, rh, S, S);
        }
        free(dst);
        *out = res;
        return GZ_OK;
    }
    /* transformers' center_crop: top = (H - S) // 2, left = (W - S) // 2; a crop larger
     * than the image is zero-padded around it, which the same offsets express. */
    const int top = floor_div2(rh - S), left = floor_div2(rw - S);
    for (int y = 0; y < S; y++) {
        uint8_t *d = dst + (size_t)y * S * 3;
        int sy = y + top;
        for (int x = 0; x < S; x++) {
            int sx = x + left;
            if (sy < 0 || sy >= rh || sx < 0 || sx >= rw) {
                d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = 0;
            } else {
                memcpy(d + 3 * x, res + ((size_t)sy * rw + sx) * 3, 3);
            }
        }
    }
    free(res);
    *out = dst;
    return GZ_OK;
}

gz_status gz_preprocess(const gz_preproc_config *c, const uint8_t *rgb, int w, int h, float *out) {
    return gz_preprocess_as(c, rgb, w, h, w, h, out);
}

gz_status gz_preprocess_image(const gz_preproc_config *c, const gz_image *img, float *out) {
    if (!img || !img->rgb) return GZ_FAIL(GZ_EINVAL, "preprocess: empty image");
    return gz_preprocess_as(c, img->rgb, img->width, img->height, img->src_width, img->src_height,
                            out);
}

gz_status gz_preprocess_as(const gz_preproc_config *c, const uint8_t *rgb, int w, int h, int full_w,
                           int full_h, float *out) {
    uint8_t *px = NULL; /* (S, S, 3) */
    gz_status st = gz_preproc_resize_as(c, rgb, w, h, full_w, full_h, &px);
    if (st != GZ_OK) return st;
    const int S = gz_preproc_output_size(c);
    const size_t plane = (size_t)S * S;
    for (int ch = 0; ch < 3; ch++) {
        const float mean = c->image_mean[ch], std = c->image_std[ch];
        float *o = out + ch * plane; /* (S, S) */
        for (size_t i = 0; i < plane; i++) {
            float v = c->do_rescale ? (float)((double)px[3 * i + ch] * c->rescale_factor)
                                    : (float)px[3 * i + ch];
            if (c->do_normalize) v = (v - mean) / std;
            o[i] = v;
        }
    }
    free(px);
    return GZ_OK;
}

/* ---- thumbnails --------------------------------------------------------------------- */

gz_status gz_image_thumbnail(const gz_image *img, int max_side, gz_image *out) {
    if (!out) return GZ_FAIL(GZ_EINVAL, "thumbnail: out is NULL");
    memset(out, 0, sizeof *out);
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0 || max_side <= 0)
        return GZ_FAIL(GZ_EINVAL, "thumbnail: bad image or size");
    int w = img->width, h = img->height, tw = w, th = h;
    if (w > max_side || h > max_side) {
        if (w >= h) {
            tw = max_side;
            th = (int)((double)h * max_side / w + 0.5);
        } else {
            th = max_side;
            tw = (int)((double)w * max_side / h + 0.5);
        }
        if (tw < 1) tw = 1;
        if (th < 1) th = 1;
    }
    *out = *img;
    out->rgb = malloc((size_t)tw * th * 3);
    if (!out->rgb) {
        memset(out, 0, sizeof *out);
        return GZ_FAIL(GZ_ENOMEM, "thumbnail: out of memory");
    }
    out->width = tw;
    out->height = th;
    if (tw == w && th == h) {
        memcpy(out->rgb, img->rgb, (size_t)w * h * 3);
        return GZ_OK;
    }
    if (!stbir_resize_uint8(img->rgb, w, h, 0, out->rgb, tw, th, 0, 3)) {
        gz_image_free(out);
        return GZ_FAIL(GZ_ENOMEM, "thumbnail: resize failed");
    }
    return GZ_OK;
}
