/* image_internal.h - decoder entry points shared by vision_encoder/image*.c (not public).
 *
 * Each decoder takes the whole file in memory, checks the stored size against
 * params->max_pixels from the header before allocating, and fills img->rgb (H, W, 3),
 * width/height (as decoded, before orientation), src_width/src_height (full stored size)
 * and format. It may hand back the raw EXIF block it found (TIFF data, with or without the
 * "Exif\0\0" prefix) in *exif (malloc'd, caller frees). Errors name the file. */
#ifndef GZ_VISION_IMAGE_INTERNAL_H
#define GZ_VISION_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gaze.h"

typedef struct {
    uint8_t *data; /* raw EXIF block or NULL (malloc'd) */
    size_t size;
} gz_img_exif;

gz_status gz_img_decode_jpeg(const uint8_t *data, size_t size, const char *name,
                             const gz_image_params *p, gz_image *img, gz_img_exif *exif);
gz_status gz_img_decode_png(const uint8_t *data, size_t size, const char *name,
                            const gz_image_params *p, gz_image *img, gz_img_exif *exif);
gz_status gz_img_decode_webp(const uint8_t *data, size_t size, const char *name,
                             const gz_image_params *p, gz_image *img, gz_img_exif *exif);
/* HEIF/HEIC/AVIF via libheif; the container's rotation/mirror (irot/imir) is applied by
 * libheif, so the caller must not apply the EXIF orientation again. */
gz_status gz_img_decode_heif(const uint8_t *data, size_t size, const char *name,
                             const gz_image_params *p, gz_image *img, gz_img_exif *exif);
/* GIF: first frame only, palette lookup as PIL's convert('RGB') (transparency ignored). */
gz_status gz_img_decode_gif(const uint8_t *data, size_t size, const char *name,
                            const gz_image_params *p, gz_image *img, gz_img_exif *exif);

/* TIFF via libtiff, first image; sets img->orientation from the Orientation tag (applied by
 * the caller like EXIF's), no EXIF block. */
gz_status gz_img_decode_tiff(const uint8_t *data, size_t size, const char *name,
                             const gz_image_params *p, gz_image *img, gz_img_exif *exif);
/* BMP via stb_image (no RLE). */
gz_status gz_img_decode_bmp(const uint8_t *data, size_t size, const char *name,
                            const gz_image_params *p, gz_image *img, gz_img_exif *exif);

/* Camera RAW via LibRaw: the embedded JPEG preview when at least half the sensor's size, else a
 * half-size demosaic; sets img->orientation (the camera's), no EXIF block. GZ_EUNSUPPORTED when
 * LibRaw does not know the file. */
gz_status gz_img_decode_raw(const uint8_t *data, size_t size, const char *name,
                            const gz_image_params *p, gz_image *img, gz_img_exif *exif);

/* Parse an EXIF block: *orientation = IFD0 Orientation (1..8; 1 when absent or invalid),
 * taken_at = DateTimeOriginal as "YYYY-MM-DD HH:MM:SS" ("" when absent or malformed).
 * Never fails: malformed EXIF is simply ignored. */
void gz_img_exif_parse(const uint8_t *data, size_t size, int *orientation, char taken_at[20]);

/* Allocate a (h, w, 3) buffer after checking w*h against max_pixels and overflow.
 * GZ_ENOMEM with a message naming the file when refused. */
gz_status gz_img_alloc_rgb(const char *name, int64_t w, int64_t h, int64_t max_pixels,
                           uint8_t **out);
/* Pictures whose long side is more than this many times the short side are refused: no photo,
 * panorama (about 1:12 for a full turn) or scrolling screenshot comes near it, and a model sees
 * only a centre crop of such a strip (CLIP) or a smear of it (BLIP). */
#define GZ_IMAGE_MAX_ASPECT 100

/* GZ_ENOMEM "too large" if w*h > max_pixels (or w, h out of int range); GZ_EINVAL "too
 * elongated" beyond GZ_IMAGE_MAX_ASPECT; GZ_OK otherwise. */
gz_status gz_img_check_pixels(const char *name, int64_t w, int64_t h, int64_t max_pixels);

#endif
