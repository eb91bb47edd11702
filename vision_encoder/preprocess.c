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
#include "core/fileio.h"

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

/* Coefficients of the output samples [first, first + count) of an in -> out resample: each
 * output sample's weights depend on its own index only, so a window of the output can be
 * computed exactly without the rest (what the centre crop keeps, see resize_window). */
typedef struct {
    int ksize;
    int count;
    int *bounds; /* (count, 2): first input index, number of inputs */
    int32_t *k;  /* (count, ksize) 22-bit fixed-point weights */
} coeffs;

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
    memset(c, 0, sizeof *c);
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for in -> out samples, output samples
 * [first, first + count) only. */
static gz_status precompute(int in, int out, int first, int count, coeffs *c) {
    memset(c, 0, sizeof *c);
    double scale = (double)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale; /* bicubic support 2, widened when downscaling */
    int ksize = (int)ceil(support) * 2 + 1;
    size_t nk;
    if (!gz_mul_size((size_t)count, (size_t)ksize, &nk))
        return GZ_FAIL(GZ_ENOMEM, "resize %d -> %d: coefficient table overflows", in, out);
    double *pre = malloc((size_t)ksize * sizeof *pre); /* (ksize) one sample's weights */
    c->k = gz_malloc_n(nk, sizeof *c->k, "resize coefficients");
    c->bounds = malloc((size_t)count * 2 * sizeof *c->bounds);
    if (!pre || !c->k || !c->bounds) {
        free(pre);
        coeffs_free(c);
        return GZ_FAIL(GZ_ENOMEM, "resize %d -> %d: out of memory", in, out);
    }
    c->ksize = ksize;
    c->count = count;
    const double ss = 1.0 / filterscale;
    for (int i = 0; i < count; i++) {
        const int xx = first + i;
        double center = (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        int x = 0;
        for (; x < xmax; x++) {
            double w = bicubic((x + xmin - center + 0.5) * ss);
            pre[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) pre[x] /= ww;
        for (; x < ksize; x++)
            pre[x] = 0;
        int32_t *k = c->k + (size_t)i * ksize;
        for (x = 0; x < ksize; x++)
            k[x] = pre[x] < 0 ? (int32_t)(-0.5 + pre[x] * (1 << PRECISION_BITS))
                              : (int32_t)(0.5 + pre[x] * (1 << PRECISION_BITS));
        c->bounds[2 * i] = xmin;
        c->bounds[2 * i + 1] = xmax;
    }
    free(pre);
    return GZ_OK;
}

static uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Rows [y0, y1) of in (H, W, 3) -> out (y1 - y0, CW, 3), CW = c->count output columns. */
static void resample_h(const uint8_t *in, int w, int y0, int y1, uint8_t *out, const coeffs *c) {
    const int cw = c->count;
    for (int y = y0; y < y1; y++) {
        const uint8_t *src = in + (size_t)y * w * 3;
        uint8_t *dst = out + (size_t)(y - y0) * cw * 3;
        for (int xx = 0; xx < cw; xx++) {
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

/* in (rows, CW, 3) whose row 0 is input row `shift` -> out rows [r0, r1) of c (each CW wide),
 * written from out's row 0. */
static void resample_v(const uint8_t *in, int cw, int shift, uint8_t *out, int r0, int r1,
                       const coeffs *c) {
    const size_t stride = (size_t)cw * 3;
    for (int yy = r0; yy < r1; yy++) {
        const int ymin = c->bounds[2 * yy] - shift, ymax = c->bounds[2 * yy + 1];
        const int32_t *k = c->k + (size_t)yy * c->ksize;
        uint8_t *dst = out + (size_t)(yy - r0) * stride;
        for (size_t i = 0; i < stride; i++) {
            int32_t s = 1 << (PRECISION_BITS - 1);
            const uint8_t *p = in + (size_t)ymin * stride + i;
            for (int y = 0; y < ymax; y++, p += stride)
                s += *p * k[y];
            dst[i] = clip8(s);
        }
    }
}

/* Columns [x0, x0 + CW) of rows [y0, y1) of in (H, W, 3) -> out (y1 - y0, CW, 3): the
 * horizontal pass when the width does not change (Pillow then skips it). */
static void copy_columns(const uint8_t *in, int w, int x0, int cw, int y0, int y1, uint8_t *out) {
    for (int y = y0; y < y1; y++)
        memcpy(out + (size_t)(y - y0) * cw * 3, in + ((size_t)y * w + x0) * 3, (size_t)cw * 3);
}

/* The horizontal pass's output is produced in strips of input rows, each strip no larger than
 * this (or than what one output row needs, when that is more): a picture 1 px wide and a million
 * tall then costs a strip, not a million resized rows. Exact: every row of the horizontal pass
 * is independent of the others. */
#define RESIZE_STRIP_BYTES ((size_t)16 << 20)

/* The window [x0, x0 + CW) x [y0, y0 + CH) of Pillow's BICUBIC resize of in (H, W, 3) to
 * (OH, OW) -> out (CH, CW, 3), bit-exact with resizing everything and cropping: only the
 * output samples the window keeps are computed, from only the input rows they read. */
static gz_status resize_window(const uint8_t *rgb, int w, int h, int ow, int oh, int x0, int y0,
                               int cw, int ch, uint8_t *out) {
    const int need_h = ow != w, need_v = oh != h;
    coeffs cx = {0}, cy = {0};
    uint8_t *strip = NULL;
    gz_status st = GZ_OK;
    if (need_h && (st = precompute(w, ow, x0, cw, &cx)) != GZ_OK) goto done;
    if (!need_v) { /* rows are kept as they are: the horizontal pass writes out directly */
        if (need_h)
            resample_h(rgb, w, y0, y0 + ch, out, &cx);
        else
            copy_columns(rgb, w, x0, cw, y0, y0 + ch, out);
        goto done;
    }
    if ((st = precompute(h, oh, y0, ch, &cy)) != GZ_OK) goto done;
    const size_t row_bytes = (size_t)cw * 3;
    size_t max_rows = 1; /* the strip's height: at least what one output row reads */
    for (int r = 0; r < ch; r++)
        if ((size_t)cy.bounds[2 * r + 1] > max_rows) max_rows = (size_t)cy.bounds[2 * r + 1];
    if (max_rows * row_bytes < RESIZE_STRIP_BYTES) max_rows = RESIZE_STRIP_BYTES / row_bytes;
    if (max_rows > (size_t)h) max_rows = (size_t)h;
    if (!(strip = gz_malloc_n(max_rows, row_bytes, "resize strip"))) { /* (rows, CW, 3) */
        st = GZ_ENOMEM;
        goto done;
    }
    for (int r0 = 0; r0 < ch;) {
        /* Output rows [r0, r1) read input rows [first, last): both grow with the row index. */
        const int first = cy.bounds[2 * r0];
        int last = first + cy.bounds[2 * r0 + 1], r1 = r0 + 1;
        while (r1 < ch) {
            int end = cy.bounds[2 * r1] + cy.bounds[2 * r1 + 1];
            if (end < last) end = last;
            if ((size_t)(end - first) > max_rows) break;
            last = end;
            r1++;
        }
        if (need_h)
            resample_h(rgb, w, first, last, strip, &cx);
        else
            copy_columns(rgb, w, x0, cw, first, last, strip);
        resample_v(strip, cw, first, out + (size_t)r0 * row_bytes, r0, r1, &cy);
        r0 = r1;
    }
done:
    free(strip);
    coeffs_free(&cx);
    coeffs_free(&cy);
    return st;
}

gz_status gz_resize_bicubic_pil(const uint8_t *rgb, int w, int h, uint8_t *out, int ow, int oh) {
    if (!rgb || !out || w <= 0 || h <= 0 || ow <= 0 || oh <= 0)
        return GZ_FAIL(GZ_EINVAL, "resize: bad arguments (%dx%d -> %dx%d)", w, h, ow, oh);
    return resize_window(rgb, w, h, ow, oh, 0, 0, ow, oh, out);
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
    if (!c->do_center_crop && (rw != S || rh != S))
        return GZ_FAIL(GZ_EUNSUPPORTED, "preprocess: resized image is %dx%d, model wants %dx%d", rw,
                       rh, S, S);
    /* transformers' center_crop: top = (H - S) // 2, left = (W - S) // 2; a crop larger
     * than the image is zero-padded around it, which the same offsets express. Only the part
     * of the resized image inside the crop is computed: an elongated photo resized by its
     * short side would otherwise need its whole long side resized (1x1,000,000 px to
     * 224x224,000,000 for CLIP) to keep 224x224 of it. */
    const int top = c->do_center_crop ? floor_div2(rh - S) : 0;
    const int left = c->do_center_crop ? floor_div2(rw - S) : 0;
    const int wx0 = left > 0 ? left : 0, wy0 = top > 0 ? top : 0;
    const int wx1 = left + S < rw ? left + S : rw, wy1 = top + S < rh ? top + S : rh;
    uint8_t *dst = calloc((size_t)S * S * 3, 1); /* (S, S, 3), zero where padded */
    uint8_t *win = NULL;                         /* (wy1 - wy0, wx1 - wx0, 3) */
    if (!dst || !(win = malloc((size_t)(wy1 - wy0) * (size_t)(wx1 - wx0) * 3))) {
        free(dst);
        return GZ_FAIL(GZ_ENOMEM, "preprocess: out of memory");
    }
    st = resize_window(rgb, w, h, rw, rh, wx0, wy0, wx1 - wx0, wy1 - wy0, win);
    if (st != GZ_OK) {
        free(win);
        free(dst);
        return st;
    }
    for (int y = wy0; y < wy1; y++)
        memcpy(dst + ((size_t)(y - top) * S + (size_t)(wx0 - left)) * 3,
               win + (size_t)(y - wy0) * (wx1 - wx0) * 3, (size_t)(wx1 - wx0) * 3);
    free(win);
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
