/* image_png.c - PNG decoding with libpng, converted to RGB as PIL's convert('RGB') does.
 *
 * Palette -> looked up; grey -> replicated (1/2/4-bit grey scaled to 0..255 as PIL does);
 * alpha and tRNS -> dropped (the stored colour is kept, no compositing); 16-bit -> the high
 * byte (PIL's "RGB;16B"/"LA;16B" unpacking). One deliberate difference: PIL opens 16-bit
 * greyscale as mode "I" and convert('RGB') then clamps the 0..65535 values to 255 (a
 * nearly white image); we take the high byte like every other 16-bit mode. Adam7 interlace
 * is handled by libpng. libpng errors longjmp back here; a file cut inside the image data
 * is reported as truncated; damage after the image data (e.g. a missing IEND) is ignored
 * as PIL ignores it. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "core/error.h"
#include "vision_encoder/image_internal.h"

typedef struct {
    const uint8_t *data;
    size_t size, off;
    int truncated;
    int after_image; /* errors from here on are ignored (trailing chunks) */
    char msg[256];
    gz_status st;
    int w, h;
    uint8_t *rgb;    /* (h, w, 3) */
    png_bytep *rows; /* (h) pointers into rgb */
} png_ctx;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* never print */
}

static void read_mem(png_structp png, png_bytep out, png_size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->size - c->off) {
        c->truncated = 1;
        png_error(png, "unexpected end of file");
    }
    memcpy(out, c->data + c->off, n);
    c->off += n;
}

gz_status gz_img_decode_png(const uint8_t *data, size_t size, const char *name,
                            const gz_image_params *p, gz_image *img, gz_img_exif *exif) {
    /* Everything modified after setjmp lives on the heap so it survives the longjmp. */
    png_ctx *c = calloc(1, sizeof *c);
    if (!c) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", name);
    c->data = data;
    c->size = size;
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, c, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        if (png) png_destroy_read_struct(&png, NULL, NULL);
        free(c);
        return GZ_FAIL(GZ_ENOMEM, "%s: cannot create PNG reader", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        if (c->after_image) goto finish; /* trailing chunks damaged: keep the pixels */
        if (c->truncated)
            c->st = GZ_FAIL(GZ_EINVAL, "%s: truncated PNG (premature end of data)", name);
        else
            c->st = GZ_FAIL(GZ_EINVAL, "%s: corrupt PNG: %s", name, c->msg);
        goto done;
    }
    png_set_read_fn(png, c, read_mem);
    png_read_info(png, info);
    png_uint_32 pw = 0, ph = 0;
    int depth = 0, ctype = 0, interlace = 0;
    png_get_IHDR(png, info, &pw, &ph, &depth, &ctype, &interlace, NULL, NULL);
    c->st = gz_img_check_pixels(name, pw, ph, p->max_pixels);
    if (c->st != GZ_OK) goto done;
    c->w = (int)pw;
    c->h = (int)ph;

    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png); /* keeps the high byte */
    if ((ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)c->w * 3 || png_get_channels(png, info) != 3) {
        c->st = GZ_FAIL(GZ_EUNSUPPORTED, "%s: PNG layout not convertible to RGB", name);
        goto done;
    }
    c->st = gz_img_alloc_rgb(name, c->w, c->h, p->max_pixels, &c->rgb);
    if (c->st != GZ_OK) goto done;
    c->rows = malloc((size_t)c->h * sizeof *c->rows);
    if (!c->rows) {
        c->st = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    for (int y = 0; y < c->h; y++)
        c->rows[y] = c->rgb + (size_t)y * c->w * 3;
    png_read_image(png, c->rows);
    c->after_image = 1;
    png_read_end(png, info); /* picks up an eXIf chunk stored after the image data */
finish:;
    png_bytep ex = NULL;
    png_uint_32 exn = 0;
    if (png_get_eXIf_1(png, info, &exn, &ex) && ex && exn > 0) {
        exif->data = malloc(exn);
        if (exif->data) {
            memcpy(exif->data, ex, exn);
            exif->size = exn;
        }
    }
    c->st = GZ_OK;
    img->rgb = c->rgb;
    c->rgb = NULL;
    img->width = img->src_width = c->w;
    img->height = img->src_height = c->h;
    memcpy(img->format, "png", 4);
done:;
    gz_status st = c->st;
    png_destroy_read_struct(&png, &info, NULL);
    free(c->rgb);
    free(c->rows);
    free(c);
    return st;
}
