/* image_raw.c - camera RAW (DNG, CR2, CR3, NEF, ARW, RAF, ORF and the rest LibRaw knows)
 * through Debian's LibRaw (the thread-safe libraw_r).
 *
 * A RAW file usually embeds a JPEG preview made by the camera. When that preview is at least
 * half the sensor's size it is what the model sees (it is the picture the photographer saw, and
 * decoding it costs a JPEG decode); otherwise the sensor data is demosaiced at half size
 * (LibRaw's half_size: each 2x2 Bayer cell becomes one pixel, no interpolation), with the
 * camera's white balance and LibRaw's default sRGB output, 8 bits. The sensor size is checked
 * against the pixel limit before anything is unpacked. The camera's orientation (LibRaw's
 * flip) is applied to both. */
#include <stdlib.h>
#include <string.h>

#include <libraw/libraw.h>

#include "core/error.h"
#include "vision_encoder/image_internal.h"

/* LibRaw's flip code -> EXIF orientation (LibRaw uses 0, 3, 5 and 6). */
static int flip_to_exif(int flip) {
    switch (flip) {
    case 3: return 3;
    case 5: return 8;
    case 6: return 6;
    default: return 1;
    }
}

/* Half-size demosaic of the sensor data into img (LibRaw applies the flip itself). */
static gz_status demosaic_half(libraw_data_t *lr, const char *name, const gz_image_params *p,
                               gz_image *img) {
    lr->params.half_size = 1;
    lr->params.use_camera_wb = 1;
    lr->params.output_bps = 8;
    int rc = libraw_unpack(lr);
    if (rc == LIBRAW_SUCCESS) rc = libraw_dcraw_process(lr);
    if (rc != LIBRAW_SUCCESS)
        return GZ_FAIL(GZ_EINVAL, "%s: cannot decode RAW sensor data: %s", name,
                       rc == LIBRAW_IO_ERROR ? "truncated or corrupt file" : libraw_strerror(rc));
    libraw_processed_image_t *im = libraw_dcraw_make_mem_image(lr, &rc);
    if (!im)
        return GZ_FAIL(GZ_EINVAL, "%s: cannot decode RAW sensor data: %s", name,
                       libraw_strerror(rc));
    gz_status st = GZ_OK;
    uint8_t *rgb = NULL;
    if (im->type != LIBRAW_IMAGE_BITMAP || im->colors != 3 || im->bits != 8 ||
        (size_t)im->width * im->height * 3 > im->data_size)
        st = GZ_FAIL(GZ_EUNSUPPORTED, "%s: RAW sensor data of %d colours, %d bits not supported",
                     name, im->colors, im->bits);
    else if ((st = gz_img_alloc_rgb(name, im->width, im->height, p->max_pixels, &rgb)) == GZ_OK) {
        memcpy(rgb, im->data, (size_t)im->width * im->height * 3);
        img->rgb = rgb;
        img->width = img->src_width = im->width;
        img->height = img->src_height = im->height;
        img->orientation = 1; /* already upright */
    }
    libraw_dcraw_clear_mem(im);
    return st;
}

/* The embedded JPEG preview, if it is at least half the sensor's size each way: 1 and img
 * filled, 0 when there is none that large or it does not decode (the caller demosaics). */
static int decode_preview(libraw_data_t *lr, const char *name, const gz_image_params *p,
                          gz_image *img, gz_img_exif *exif) {
    if (libraw_unpack_thumb(lr) != LIBRAW_SUCCESS) return 0;
    const libraw_thumbnail_t *t = &lr->thumbnail;
    if (t->tformat != LIBRAW_THUMBNAIL_JPEG || !t->thumb || t->tlength < 4) return 0;
    if ((int64_t)t->twidth * 2 < lr->sizes.width || (int64_t)t->theight * 2 < lr->sizes.height)
        return 0;
    gz_image pv;
    memset(&pv, 0, sizeof pv);
    if (gz_img_decode_jpeg((const uint8_t *)t->thumb, t->tlength, name, p, &pv, exif) != GZ_OK) {
        free(exif->data);
        exif->data = NULL;
        exif->size = 0;
        return 0; /* fall back to the sensor data */
    }
    *img = pv;
    /* the preview's own EXIF (if any) is replaced by the RAW file's orientation */
    free(exif->data);
    exif->data = NULL;
    exif->size = 0;
    img->orientation = flip_to_exif(lr->sizes.flip);
    return 1;
}

/* LibRaw's default handlers print to stderr; the library never prints: errors come back as
 * LibRaw's return codes, which the messages below report. */
static void quiet_data_error(void *data, const char *file, const int offset) {
    (void)data, (void)file, (void)offset;
}

static void quiet_mem_error(void *data, const char *file, const char *where) {
    (void)data, (void)file, (void)where;
}

gz_status gz_img_decode_raw(const uint8_t *data, size_t size, const char *name,
                            const gz_image_params *p, gz_image *img, gz_img_exif *exif) {
    libraw_data_t *lr = libraw_init(0);
    if (!lr) return GZ_FAIL(GZ_ENOMEM, "%s: cannot create RAW reader", name);
    libraw_set_dataerror_handler(lr, quiet_data_error, NULL);
    libraw_set_memerror_handler(lr, quiet_mem_error, NULL);
    gz_status st = GZ_OK;
    /* LibRaw does not write to the buffer; its API takes a non-const pointer. */
    int rc = libraw_open_buffer(lr, (void *)(uintptr_t)data, size);
    if (rc != LIBRAW_SUCCESS) {
        st = GZ_FAIL(rc == LIBRAW_FILE_UNSUPPORTED ? GZ_EUNSUPPORTED : GZ_EINVAL,
                     "%s: cannot read RAW: %s", name, libraw_strerror(rc));
        goto done;
    }
    /* the sensor's full size is what unpacking allocates (16 bits a photosite) */
    st = gz_img_check_pixels(name, lr->sizes.raw_width, lr->sizes.raw_height, p->max_pixels);
    if (st != GZ_OK) goto done;
    if (!decode_preview(lr, name, p, img, exif)) st = demosaic_half(lr, name, p, img);
    if (st == GZ_OK) memcpy(img->format, "raw", 4);
done:
    libraw_close(lr);
    return st;
}
