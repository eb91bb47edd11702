/* image_bmp.c - BMP via stb_image's BMP reader (Debian libstb-dev), the only BMP decoder in a
 * well-kept Debian library gaze already depends on: 1, 4, 8, 16, 24 and 32 bits, top-down and
 * bottom-up; RLE-compressed BMPs are refused (stb_image does not read them).
 *
 * The size is read from the header (stbi_info) and checked before anything is allocated. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "vision_encoder/image_internal.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_FAILURE_USERMSG
/* stb allocates the pixels it returns with these: gz_image_free (free) can own them */
#define STBI_MALLOC(sz) malloc(sz)
#define STBI_REALLOC(p, newsz) realloc(p, newsz)
#define STBI_FREE(p) free(p)
/* stb declares its whole API static; the parts not used here are reported at the end of the
 * file, so the warning is off for all of it. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_image.h>

gz_status gz_img_decode_bmp(const uint8_t *data, size_t size, const char *name,
                            const gz_image_params *p, gz_image *img, gz_img_exif *exif) {
    (void)exif; /* BMP has no EXIF */
    if (size > (size_t)INT32_MAX) return GZ_FAIL(GZ_EINVAL, "%s: BMP file too large", name);
    int w, h, comp;
    if (!stbi_info_from_memory(data, (int)size, &w, &h, &comp))
        return GZ_FAIL(GZ_EINVAL, "%s: cannot read BMP: %s", name, stbi_failure_reason());
    /* stbi_info reports a top-down BMP's height as stored, negative; the load flips it. */
    gz_status st = gz_img_check_pixels(name, w, h < 0 ? -(int64_t)h : h, p->max_pixels);
    if (st != GZ_OK) return st;
    uint8_t *px = stbi_load_from_memory(data, (int)size, &w, &h, &comp, 3); /* (H, W, 3) */
    if (!px) return GZ_FAIL(GZ_EINVAL, "%s: cannot decode BMP: %s", name, stbi_failure_reason());
    img->rgb = px;
    img->width = img->src_width = w;
    img->height = img->src_height = h;
    memcpy(img->format, "bmp", 4);
    return GZ_OK;
}
