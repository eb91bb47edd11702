/* image.c - decode any photo into (H, W, 3) uint8 RGB: format sniffing, EXIF orientation.
 *
 * The format is detected from the first bytes, never from the extension: JPEG (libjpeg-turbo),
 * PNG (libpng), WebP (libwebp), HEIF/HEIC/AVIF (libheif), GIF (giflib, first frame), TIFF
 * (libtiff, first page), BMP (stb_image), camera RAW (LibRaw: embedded preview or half-size
 * demosaic).
 * Colour handling mirrors PIL's Image.open(path).convert('RGB') so that the Hugging Face
 * image processors can be reproduced bit-exactly (see tests/data/fixtures/README.md):
 * alpha is dropped (no compositing), palettes are looked up, grey is replicated, CMYK JPEGs
 * use PIL's inverted-Adobe convention. EXIF orientation is applied as PIL's
 * ImageOps.exif_transpose does (transformers' load_image). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "vision_encoder/image.h"
#include "vision_encoder/image_internal.h"

/* Largest file accepted per format, checked from the file's size before it is read (the whole
 * file is read once: hashed and decoded from the same bytes). Each is far above what a photo of
 * the pixel limit (100 MP) takes in that format, and keeps a mistaken path (a disk image or a
 * video renamed .jpg, a sparse file) from being read into memory:
 *   JPEG, WebP, HEIF, GIF: compressed; a 100 MP JPEG at quality 100 is about 60 MiB.
 *   PNG: may be stored nearly uncompressed; 100 MP of 16-bit RGBA is 800 MB.
 *   TIFF: often uncompressed; 100 MP of 16-bit RGB is 600 MB (plus other pages).
 *   BMP: uncompressed; 100 MP at 32 bits is 400 MB.
 *   camera RAW: 100 MP of uncompressed 16-bit sensor data is 200 MB, plus previews. */
#define MAX_BYTES_COMPRESSED ((size_t)256 << 20)
#define MAX_BYTES_PNG ((size_t)1 << 30)
#define MAX_BYTES_TIFF ((size_t)1 << 30)
#define MAX_BYTES_BMP ((size_t)512 << 20)
#define MAX_BYTES_RAW ((size_t)512 << 20)
/* The decompression-bomb rule of gz_image_load_memory (README "Limits"). */
#define MAX_PIXELS_PER_BYTE 1000
#define BOMB_FLOOR_PIXELS INT64_C(16000000)
/* Bytes the format sniffing looks at. */
#define SNIFF_BYTES 16

gz_image_params gz_image_default_params(void) {
    gz_image_params p;
    memset(&p, 0, sizeof p);
    p.exif_orient = 1;
    p.max_pixels = GZ_DEFAULT_MAX_PIXELS;
    p.min_size = 0;
    return p;
}

void gz_image_free(gz_image *img) {
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

gz_status gz_img_check_pixels(const char *name, int64_t w, int64_t h, int64_t max_pixels) {
    if (w <= 0 || h <= 0)
        return GZ_FAIL(GZ_EINVAL, "%s: invalid image size %lldx%lld", name, (long long)w,
                       (long long)h);
    /* Both sides fit an int (the gz_image fields), so the product cannot overflow int64; the
     * message of a larger side must not form the product either (HEIF grids declare 32 bits). */
    if (w > 0x7fffffffLL || h > 0x7fffffffLL)
        return GZ_FAIL(GZ_ENOMEM, "%s: image too large: %lldx%lld (a side above %d), limit %lld",
                       name, (long long)w, (long long)h, 0x7fffffff, (long long)max_pixels);
    if (w * h > max_pixels)
        return GZ_FAIL(GZ_ENOMEM, "%s: image too large: %lldx%lld = %lld pixels, limit %lld", name,
                       (long long)w, (long long)h, (long long)(w * h), (long long)max_pixels);
    const int64_t lng = w > h ? w : h, shrt = w > h ? h : w;
    if (lng > shrt * GZ_IMAGE_MAX_ASPECT)
        return GZ_FAIL(GZ_EINVAL, "%s: image too elongated: %lldx%lld, aspect ratio limit 1:%d",
                       name, (long long)w, (long long)h, GZ_IMAGE_MAX_ASPECT);
    return GZ_OK;
}

gz_status gz_img_alloc_rgb(const char *name, int64_t w, int64_t h, int64_t max_pixels,
                           uint8_t **out) {
    *out = NULL;
    gz_status st = gz_img_check_pixels(name, w, h, max_pixels);
    if (st != GZ_OK) return st;
    size_t n;
    if (!gz_mul_size((size_t)w, (size_t)h, &n) || !gz_mul_size(n, 3, &n))
        return GZ_FAIL(GZ_ENOMEM, "%s: image size %lldx%lld overflows", name, (long long)w,
                       (long long)h);
    *out = malloc(n);
    if (!*out) return GZ_FAIL(GZ_ENOMEM, "%s: cannot allocate %zu bytes for pixels", name, n);
    return GZ_OK;
}

/* ---- format sniffing ---------------------------------------------------------------- */

typedef enum {
    FMT_UNKNOWN,
    FMT_JPEG,
    FMT_PNG,
    FMT_WEBP,
    FMT_HEIF,
    FMT_GIF,
    FMT_TIFF, /* also the TIFF-based RAW formats (DNG, CR2, NEF, ARW...): see decode_tiff_or_raw */
    FMT_BMP,
    FMT_RAW /* RAW formats with their own signature: RAF, ORF, CR3 */
} img_format;

static int has_prefix(const uint8_t *d, size_t n, const char *magic, size_t m) {
    return n >= m && memcmp(d, magic, m) == 0;
}

/* Detect the format; for known but unsupported formats *other names it (for the message). */
static img_format sniff(const uint8_t *d, size_t n, const char **other) {
    *other = NULL;
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return FMT_JPEG;
    if (has_prefix(d, n, "\x89PNG\r\n\x1a\n", 8)) return FMT_PNG;
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) return FMT_WEBP;
    if (has_prefix(d, n, "GIF87a", 6) || has_prefix(d, n, "GIF89a", 6)) return FMT_GIF;
    if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0) {
        /* ISO base media: HEIF-family brands only (a .mp4/.mov is not a photo). */
        static const char *const brands[] = {"heic", "heix", "hevc", "hevx", "heim", "heis",
                                             "mif1", "msf1", "avif", "avis", "mif2"};
        for (size_t i = 0; i < sizeof brands / sizeof brands[0]; i++)
            if (memcmp(d + 8, brands[i], 4) == 0) return FMT_HEIF;
        if (memcmp(d + 8, "crx ", 4) == 0) return FMT_RAW; /* Canon CR3 */
        *other = "ISO media (not HEIF)";
        return FMT_UNKNOWN;
    }
    if (has_prefix(d, n, "BM", 2)) return FMT_BMP;
    if (has_prefix(d, n, "FUJIFILMCCD-RAW", 15) || has_prefix(d, n, "IIRO", 4) ||
        has_prefix(d, n, "IIRS", 4) || has_prefix(d, n, "MMOR", 4))
        return FMT_RAW; /* Fujifilm RAF, Olympus ORF */
    if (has_prefix(d, n, "II*\0", 4) || has_prefix(d, n, "MM\0*", 4)) return FMT_TIFF;
    if (has_prefix(d, n, "\0\0\1\0", 4))
        *other = "ICO";
    else if (has_prefix(d, n, "8BPS", 4))
        *other = "PSD";
    else if (has_prefix(d, n, "\xff\x0a", 2) || has_prefix(d, n, "\0\0\0\x0cJXL ", 8))
        *other = "JPEG XL";
    else if (has_prefix(d, n, "%PDF", 4))
        *other = "PDF";
    else if (has_prefix(d, n, "<svg", 4) || has_prefix(d, n, "<?xml", 5))
        *other = "SVG/XML";
    else if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7')
        *other = "PNM";
    return FMT_UNKNOWN;
}

static const char *format_name(img_format f) {
    switch (f) {
    case FMT_JPEG: return "JPEG";
    case FMT_PNG: return "PNG";
    case FMT_WEBP: return "WebP";
    case FMT_HEIF: return "HEIF";
    case FMT_GIF: return "GIF";
    case FMT_TIFF: return "TIFF";
    case FMT_BMP: return "BMP";
    case FMT_RAW: return "camera RAW";
    default: return "unknown";
    }
}

static size_t format_max_bytes(img_format f) {
    switch (f) {
    case FMT_PNG: return MAX_BYTES_PNG;
    case FMT_TIFF: return MAX_BYTES_TIFF;
    case FMT_BMP: return MAX_BYTES_BMP;
    case FMT_RAW: return MAX_BYTES_RAW;
    default: return MAX_BYTES_COMPRESSED;
    }
}

#define SUPPORTED_FORMATS "JPEG, PNG, WebP, HEIF, GIF, TIFF, BMP, camera RAW"

/* The "unsupported format" error for a file whose first bytes sniff() did not accept. */
static gz_status fail_unsupported(const char *name, const char *other) {
    if (other)
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "%s: unsupported format (%s); supported: " SUPPORTED_FORMATS, name, other);
    return GZ_FAIL(GZ_EUNSUPPORTED,
                   "%s: unsupported format (not a recognised image); supported: " SUPPORTED_FORMATS,
                   name);
}

/* The size check of format_max_bytes, with the error naming the file and the limit. */
static gz_status check_file_size(const char *name, img_format f, uint64_t size) {
    if (size > format_max_bytes(f))
        return GZ_FAIL(GZ_EINVAL, "%s: file too large for %s: %llu bytes, limit %zu", name,
                       format_name(f), (unsigned long long)size, format_max_bytes(f));
    return GZ_OK;
}

/* ---- orientation -------------------------------------------------------------------- */

/* Apply EXIF orientation o (2..8) as PIL's exif_transpose: 2 mirror, 3 rotate 180,
 * 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
 * For output pixel (ox, oy) the source pixel is given by the table below. */
static gz_status apply_orientation(const char *name, gz_image *img, int o) {
    const int w = img->width, h = img->height;
    const int swap = o >= 5;
    const int ow = swap ? h : w, oh = swap ? w : h;
    size_t n;
    if (!gz_mul_size((size_t)w * (size_t)h, 3, &n))
        return GZ_FAIL(GZ_ENOMEM, "%s: image size overflows", name);
    uint8_t *out = malloc(n);
    if (!out) return GZ_FAIL(GZ_ENOMEM, "%s: cannot allocate %zu bytes to rotate", name, n);
    const uint8_t *src = img->rgb;
    for (int oy = 0; oy < oh; oy++) {
        uint8_t *dst = out + (size_t)oy * ow * 3;
        for (int ox = 0; ox < ow; ox++) {
            int sx, sy;
            switch (o) {
            case 2:
                sx = w - 1 - ox;
                sy = oy;
                break;
            case 3:
                sx = w - 1 - ox;
                sy = h - 1 - oy;
                break;
            case 4:
                sx = ox;
                sy = h - 1 - oy;
                break;
            case 5:
                sx = oy;
                sy = ox;
                break;
            case 6:
                sx = oy;
                sy = h - 1 - ox;
                break;
            case 7:
                sx = w - 1 - oy;
                sy = h - 1 - ox;
                break;
            case 8:
                sx = w - 1 - oy;
                sy = ox;
                break;
            default:
                sx = ox;
                sy = oy;
                break;
            }
            const uint8_t *s = src + ((size_t)sy * w + sx) * 3;
            dst[ox * 3 + 0] = s[0];
            dst[ox * 3 + 1] = s[1];
            dst[ox * 3 + 2] = s[2];
        }
    }
    free(img->rgb);
    img->rgb = out;
    img->width = ow;
    img->height = oh;
    if (swap) { /* src size follows the picture's orientation */
        int t = img->src_width;
        img->src_width = img->src_height;
        img->src_height = t;
    }
    return GZ_OK;
}

/* ---- entry points ------------------------------------------------------------------- */

gz_status gz_image_load_memory(const void *data, size_t size, const char *name,
                               const gz_image_params *params, gz_image *img) {
    if (!img) return GZ_FAIL(GZ_EINVAL, "gz_image_load_memory: img is NULL");
    memset(img, 0, sizeof *img);
    if (!name) name = "(memory)";
    if (!data && size) return GZ_FAIL(GZ_EINVAL, "%s: data is NULL", name);
    gz_image_params p = params ? *params : gz_image_default_params();
    if (p.max_pixels <= 0) p.max_pixels = GZ_DEFAULT_MAX_PIXELS;
    /* Decompression bombs: a 35-byte GIF (a huge screen, a 1x1 frame) or a 527-byte progressive
     * JPEG can declare 100 MP, and the decoders need the whole frame (GIF's canvas, a
     * progressive JPEG's coefficients, PNG/WebP/HEIF rows), 300-600 MB, before any pixel
     * shows the file is empty. Above BOMB_FLOOR_PIXELS a file must bring at least one byte per
     * MAX_PIXELS_PER_BYTE pixels; real pictures stay far below that ratio (a flat 8-bit PNG
     * cannot pass about 1000 pixels per byte, zlib's limit; photos are under 10). */
    const int64_t bomb_limit = size > (size_t)(INT64_MAX / MAX_PIXELS_PER_BYTE)
                                   ? INT64_MAX
                                   : (int64_t)size * MAX_PIXELS_PER_BYTE;
    const int64_t ratio_limit = bomb_limit > BOMB_FLOOR_PIXELS ? bomb_limit : BOMB_FLOOR_PIXELS;
    const int bomb_binds = ratio_limit < p.max_pixels;
    if (bomb_binds) p.max_pixels = ratio_limit;
    if (p.min_size < 0) p.min_size = 0;
    if (size == 0) return GZ_FAIL(GZ_EINVAL, "%s: empty file", name);

    const uint8_t *d = data;
    const char *other = NULL;
    gz_status st;
    img_format fmt = sniff(d, size, &other);
    if (fmt != FMT_UNKNOWN && (st = check_file_size(name, fmt, size)) != GZ_OK) return st;
    gz_img_exif exif = {NULL, 0};
    switch (fmt) {
    case FMT_JPEG: st = gz_img_decode_jpeg(d, size, name, &p, img, &exif); break;
    case FMT_PNG: st = gz_img_decode_png(d, size, name, &p, img, &exif); break;
    case FMT_WEBP: st = gz_img_decode_webp(d, size, name, &p, img, &exif); break;
    case FMT_HEIF: st = gz_img_decode_heif(d, size, name, &p, img, &exif); break;
    case FMT_GIF: st = gz_img_decode_gif(d, size, name, &p, img, &exif); break;
    case FMT_TIFF:
        /* DNG, CR2, NEF, ARW and others are TIFF files too: LibRaw first, libtiff for what
         * LibRaw does not take as a camera file. */
        st = gz_img_decode_raw(d, size, name, &p, img, &exif);
        if (st == GZ_EUNSUPPORTED) {
            gz_clear_error();
            st = gz_img_decode_tiff(d, size, name, &p, img, &exif);
        } else if (st == GZ_OK) {
            fmt = FMT_RAW;
        }
        break;
    case FMT_RAW: st = gz_img_decode_raw(d, size, name, &p, img, &exif); break;
    case FMT_BMP: st = gz_img_decode_bmp(d, size, name, &p, img, &exif); break;
    default: return fail_unsupported(name, other);
    }
    if (st != GZ_OK) {
        free(exif.data);
        gz_image_free(img);
        if (st == GZ_ENOMEM && bomb_binds) { /* say why the limit is lower than asked */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", gz_last_error());
            st = GZ_FAIL(st,
                         "%s (a %zu-byte file may decode to at most %d pixels per byte above %d "
                         "MP: a likely decompression bomb)",
                         msg, size, MAX_PIXELS_PER_BYTE, (int)(BOMB_FLOOR_PIXELS / 1000000));
        }
        return st;
    }
    /* A decoder that reads the orientation itself (TIFF's tag) has set it; else EXIF or 1. */
    if (img->orientation < 1 || img->orientation > 8) img->orientation = 1;
    img->taken_at[0] = '\0';
    if (exif.data) gz_img_exif_parse(exif.data, exif.size, &img->orientation, img->taken_at);
    free(exif.data);
    /* libheif has already applied the container's transforms (irot/imir). */
    /* (RAW: a demosaiced picture is upright and says 1; a preview carries the camera's flip) */
    if (p.exif_orient && fmt != FMT_HEIF && img->orientation >= 2 && img->orientation <= 8) {
        st = apply_orientation(name, img, img->orientation);
        if (st != GZ_OK) {
            gz_image_free(img);
            return st;
        }
    }
    return GZ_OK;
}

gz_status gz_image_read_file(const char *path, unsigned char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    int fd = gz_open_regular(path);
    if (fd < 0)
        return GZ_FAIL(errno == ENOENT ? GZ_ENOTFOUND : GZ_EIO, "%s: %s", path,
                       errno == EINVAL ? "not a regular file" : strerror(errno));
    struct stat sb;
    uint8_t head[SNIFF_BYTES];
    ssize_t got = fstat(fd, &sb) == 0 ? pread(fd, head, sizeof head, 0) : -1;
    gz_status st = GZ_OK;
    const char *other = NULL;
    img_format fmt = FMT_UNKNOWN;
    if (got < 0)
        st = GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(errno));
    else if (got == 0)
        st = GZ_FAIL(GZ_EINVAL, "%s: empty file", path);
    else if ((fmt = sniff(head, (size_t)got, &other)) == FMT_UNKNOWN)
        st = fail_unsupported(path, other);
    else
        st = check_file_size(path, fmt, (uint64_t)sb.st_size);
    /* the same descriptor: one open per file, and a file swapped in meanwhile is not read */
    if (st == GZ_OK) st = gz_read_fd(fd, path, format_max_bytes(fmt), data, size);
    close(fd);
    return st;
}

gz_status gz_image_load(const char *path, const gz_image_params *params, gz_image *img) {
    if (!img) return GZ_FAIL(GZ_EINVAL, "gz_image_load: img is NULL");
    memset(img, 0, sizeof *img);
    if (!path) return GZ_FAIL(GZ_EINVAL, "gz_image_load: path is NULL");
    unsigned char *buf;
    size_t size;
    gz_status st = gz_image_read_file(path, &buf, &size);
    if (st != GZ_OK) return st;
    st = gz_image_load_memory(buf, size, path, params, img);
    free(buf);
    return st;
}
