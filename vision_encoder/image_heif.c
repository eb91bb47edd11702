/* image_heif.c - HEIF/HEIC (and AVIF when libheif has a decoder) via libheif.
 *
 * libheif applies the container's transforms (irot/imir/clap) while decoding, so the
 * result is already upright; the EXIF block is returned only for the capture date.
 * heif_init() is called once per process (libheif >= 1.13 loads its plugins there). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libheif/heif.h>

#include "core/error.h"
#include "vision_encoder/image_internal.h"

static pthread_once_t heif_once = PTHREAD_ONCE_INIT;
static void heif_init_once(void) { heif_init(NULL); }

/* The primary image's "Exif" metadata block (4-byte TIFF header offset, then TIFF data). */
static void get_exif(const struct heif_image_handle *h, gz_img_exif *exif) {
    heif_item_id id;
    if (heif_image_handle_get_list_of_metadata_block_IDs(h, "Exif", &id, 1) < 1) return;
    size_t n = heif_image_handle_get_metadata_size(h, id);
    if (n < 4 || n > (64u << 20)) return;
    uint8_t *buf = malloc(n);
    if (!buf) return;
    struct heif_error e = heif_image_handle_get_metadata(h, id, buf);
    uint32_t skip =
        (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    if (e.code != heif_error_Ok || skip > n - 4) {
        free(buf);
        return;
    }
    memmove(buf, buf + 4 + skip, n - 4 - skip);
    exif->data = buf;
    exif->size = n - 4 - skip;
}

gz_status gz_img_decode_heif(const uint8_t *data, size_t size, const char *name,
                             const gz_image_params *p, gz_image *img, gz_img_exif *exif) {
    pthread_once(&heif_once, heif_init_once);
    gz_status st = GZ_OK;
    struct heif_context *ctx = heif_context_alloc();
    struct heif_image_handle *h = NULL;
    struct heif_image *him = NULL;
    uint8_t *rgb = NULL;
    if (!ctx) return GZ_FAIL(GZ_ENOMEM, "%s: cannot create HEIF reader", name);
    struct heif_error e = heif_context_read_from_memory_without_copy(ctx, data, size, NULL);
    if (e.code != heif_error_Ok) {
        st = GZ_FAIL(e.code == heif_error_Unsupported_filetype ||
                             e.code == heif_error_Unsupported_feature
                         ? GZ_EUNSUPPORTED
                         : GZ_EINVAL,
                     "%s: cannot read HEIF: %s", name, e.message);
        goto done;
    }
    e = heif_context_get_primary_image_handle(ctx, &h);
    if (e.code != heif_error_Ok) {
        st = GZ_FAIL(GZ_EINVAL, "%s: HEIF has no primary image: %s", name, e.message);
        goto done;
    }
    int w = heif_image_handle_get_width(h), hh = heif_image_handle_get_height(h);
    st = gz_img_check_pixels(name, w, hh, p->max_pixels);
    if (st != GZ_OK) goto done;
    e = heif_decode_image(h, &him, heif_colorspace_RGB, heif_chroma_interleaved_RGB, NULL);
    if (e.code != heif_error_Ok) {
        st = GZ_FAIL(e.code == heif_error_Unsupported_feature ||
                             e.code == heif_error_Unsupported_filetype
                         ? GZ_EUNSUPPORTED
                         : GZ_EINVAL,
                     "%s: cannot decode HEIF: %s", name, e.message);
        goto done;
    }
    w = heif_image_get_width(him, heif_channel_interleaved);
    hh = heif_image_get_height(him, heif_channel_interleaved);
    int stride = 0;
    const uint8_t *plane = heif_image_get_plane_readonly(him, heif_channel_interleaved, &stride);
    if (!plane || w <= 0 || hh <= 0 || stride < w * 3) {
        st = GZ_FAIL(GZ_EINVAL, "%s: HEIF decoder returned no RGB plane", name);
        goto done;
    }
    st = gz_img_alloc_rgb(name, w, hh, p->max_pixels, &rgb);
    if (st != GZ_OK) goto done;
    for (int y = 0; y < hh; y++)
        memcpy(rgb + (size_t)y * w * 3, plane + (size_t)y * stride, (size_t)w * 3);
    get_exif(h, exif);
    img->rgb = rgb;
    rgb = NULL;
    img->width = img->src_width = w;
    img->height = img->src_height = hh;
    memcpy(img->format, "heif", 5);
done:
    free(rgb);
    if (him) heif_image_release(him);
    if (h) heif_image_handle_release(h);
    heif_context_free(ctx);
    return st;
}
