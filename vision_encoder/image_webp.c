/* image_webp.c - WebP decoding with libwebp (still images; alpha dropped, no premultiply).
 *
 * The EXIF block is taken from the RIFF "EXIF" chunk with a bounded chunk walk. Animated
 * WebP needs libwebpdemux, which gaze does not link: it is refused as unsupported. */
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>

#include "core/error.h"
#include "vision_encoder/image_internal.h"

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Walk the RIFF chunks after "RIFF....WEBP" and copy the EXIF payload if there is one. */
static void find_exif(const uint8_t *d, size_t n, gz_img_exif *exif) {
    size_t off = 12;
    while (off + 8 <= n) {
        uint32_t len = le32(d + off + 4);
        if (len > n - off - 8) return;
        if (memcmp(d + off, "EXIF", 4) == 0 && len > 0) {
            exif->data = malloc(len);
            if (exif->data) {
                memcpy(exif->data, d + off + 8, len);
                exif->size = len;
            }
            return;
        }
        off += 8 + (size_t)len + (len & 1);
    }
}

gz_status gz_img_decode_webp(const uint8_t *data, size_t size, const char *name,
                             const gz_image_params *p, gz_image *img, gz_img_exif *exif) {
    WebPBitstreamFeatures f;
    VP8StatusCode vs = WebPGetFeatures(data, size, &f);
    if (vs == VP8_STATUS_NOT_ENOUGH_DATA)
        return GZ_FAIL(GZ_EINVAL, "%s: truncated WebP (premature end of data)", name);
    if (vs != VP8_STATUS_OK)
        return GZ_FAIL(GZ_EINVAL, "%s: corrupt WebP header (status %d)", name, (int)vs);
    if (f.has_animation)
        return GZ_FAIL(GZ_EUNSUPPORTED, "%s: unsupported format (animated WebP)", name);
    uint8_t *rgb = NULL;
    gz_status st = gz_img_alloc_rgb(name, f.width, f.height, p->max_pixels, &rgb);
    if (st != GZ_OK) return st;
    size_t stride = (size_t)f.width * 3;
    size_t total = stride * (size_t)f.height; /* checked by gz_img_alloc_rgb */
    if (!WebPDecodeRGBInto(data, size, rgb, total, (int)stride)) {
        free(rgb);
        /* libwebp does not say why; a shortened file is the common case. */
        return GZ_FAIL(GZ_EINVAL, "%s: corrupt or truncated WebP image data", name);
    }
    find_exif(data, size, exif);
    img->rgb = rgb;
    img->width = img->src_width = f.width;
    img->height = img->src_height = f.height;
    memcpy(img->format, "webp", 5);
    return GZ_OK;
}
