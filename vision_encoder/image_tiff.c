/* image_tiff.c - TIFF via libtiff (first image of the file; any layout libtiff's RGBA
 * interface reads: strips or tiles, 1-16 bits, grey, palette, RGB, CMYK, YCbCr, LZW, Deflate,
 * JPEG, PackBits).
 *
 * The file is read from memory through TIFFClientOpenExt, with libtiff's messages captured
 * (not printed) and its single-allocation cap set from the pixel limit. Pixels are read in
 * their stored order and the Orientation tag is returned to the caller, which applies it as
 * for JPEG's EXIF (PIL loads TIFFs unrotated and exif_transpose applies the same tag). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

#include "core/error.h"
#include "vision_encoder/image_internal.h"

typedef struct {
    const uint8_t *data;
    size_t size, pos;
    char msg[256]; /* libtiff's first error message */
} tiff_mem;

static tmsize_t mem_read(thandle_t h, void *buf, tmsize_t n) {
    tiff_mem *m = (tiff_mem *)h;
    if (n < 0) return -1;
    size_t left = m->size - m->pos, k = (size_t)n < left ? (size_t)n : left;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (tmsize_t)k;
}

static tmsize_t mem_write(thandle_t h, void *buf, tmsize_t n) {
    (void)h, (void)buf, (void)n;
    return -1; /* read only */
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence) {
    tiff_mem *m = (tiff_mem *)h;
    uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->size : 0;
    if (off > (uint64_t)m->size || base + off > m->size) return (toff_t)-1;
    m->pos = (size_t)(base + off);
    return m->pos;
}

static int mem_close(thandle_t h) {
    (void)h;
    return 0;
}

static toff_t mem_size(thandle_t h) { return ((tiff_mem *)h)->size; }

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif, (void)module;
    tiff_mem *m = user;
    if (!m->msg[0]) vsnprintf(m->msg, sizeof m->msg, fmt, ap);
    return 1; /* handled: libtiff prints nothing */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1; /* warnings (unknown tags and the like) are not errors: dropped */
}

gz_status gz_img_decode_tiff(const uint8_t *data, size_t size, const char *name,
                             const gz_image_params *p, gz_image *img, gz_img_exif *exif) {
    (void)exif; /* the Orientation tag is read here; see img->orientation */
    tiff_mem m = {data, size, 0, {0}};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) return GZ_FAIL(GZ_ENOMEM, "%s: cannot create TIFF reader", name);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, &m);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, &m);
    /* No single buffer libtiff allocates needs more than the RGBA raster of a picture at the
     * pixel limit (which is ours, allocated below). */
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)p->max_pixels * 4 + (1 << 20));
    /* "m": no mmap of a client handle */
    TIFF *tif = TIFFClientOpenExt(name, "rm", (thandle_t)&m, mem_read, mem_write, mem_seek,
                                  mem_close, mem_size, NULL, NULL, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif)
        return GZ_FAIL(GZ_EINVAL, "%s: cannot read TIFF: %s", name, m.msg[0] ? m.msg : "malformed");
    gz_status st = GZ_OK;
    uint32_t *raster = NULL; /* (H, W) ABGR as libtiff packs it */
    uint8_t *rgb = NULL;
    uint32_t w = 0, h = 0;
    uint16_t orientation = ORIENTATION_TOPLEFT;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &orientation);
    if ((st = gz_img_check_pixels(name, w, h, p->max_pixels)) != GZ_OK) goto done;
    char why[1024];
    if (!TIFFRGBAImageOK(tif, why)) {
        st = GZ_FAIL(GZ_EUNSUPPORTED, "%s: TIFF layout not supported: %s", name, why);
        goto done;
    }
    if (!(raster = malloc((size_t)w * h * sizeof *raster))) {
        st = GZ_FAIL(GZ_ENOMEM, "%s: cannot allocate %zu bytes for pixels", name,
                     (size_t)w * h * sizeof *raster);
        goto done;
    }
    /* Read as stored: the tag is applied by the caller, once, for every orientation 1..8. */
    TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
    if (!TIFFReadRGBAImageOriented(tif, w, h, raster, ORIENTATION_TOPLEFT, 0)) {
        st = GZ_FAIL(GZ_EINVAL, "%s: cannot decode TIFF: %s", name, m.msg[0] ? m.msg : "corrupt");
        goto done;
    }
    if ((st = gz_img_alloc_rgb(name, w, h, p->max_pixels, &rgb)) != GZ_OK) goto done;
    for (size_t i = 0; i < (size_t)w * h; i++) { /* alpha dropped, as PIL's convert('RGB') */
        rgb[3 * i + 0] = (uint8_t)TIFFGetR(raster[i]);
        rgb[3 * i + 1] = (uint8_t)TIFFGetG(raster[i]);
        rgb[3 * i + 2] = (uint8_t)TIFFGetB(raster[i]);
    }
    img->rgb = rgb;
    rgb = NULL;
    img->width = img->src_width = (int)w;
    img->height = img->src_height = (int)h;
    img->orientation = orientation >= 1 && orientation <= 8 ? orientation : 1;
    memcpy(img->format, "tiff", 5);
done:
    free(raster);
    free(rgb);
    TIFFClose(tif);
    return st;
}
