/* fuzz_image.c - libFuzzer target for image decoding (every format: the input's first bytes
 * choose the decoder, as for a file), EXIF parsing and preprocessing.
 *
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt):
 *   scripts/fuzz.sh fuzz_image 600
 * Each input is decoded at full size and DCT-scaled, with and without EXIF orientation; a
 * decoded picture is preprocessed for a CLIP-style (shortest edge + centre crop) and a
 * BLIP-style (fixed size) model; the input is also parsed as a raw EXIF block.
 *
 * The same file built with GZ_FUZZ_IMAGE_FORMAT (a string: "jpeg", "png", "webp", "gif",
 * "heif", "tiff" or "bmp") is fuzz_image_<format>: the input first gets that format's signature
 * written over its first bytes, so every mutation reaches the one decoder (the fuzzer no longer
 * spends its runs on inputs the other decoders or the sniffing refuse). The signature is what
 * a file of the format starts with, so nothing reaches a decoder that a real file could not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "gaze.h"
#include "vision_encoder/image_internal.h"
#include "vision_encoder/preprocess.h"

/* Small enough that one run stays fast; the limit checks are still reached from the headers. */
#define FUZZ_MAX_PIXELS 262144
#define FUZZ_SIDE 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void preprocess_both(const gz_image *img) {
    static float out[3 * FUZZ_SIDE * FUZZ_SIDE];
    gz_preproc_config c;
    memset(&c, 0, sizeof c);
    c.do_resize = 1;
    c.resample = 3;
    c.do_rescale = 1;
    c.rescale_factor = 1.0 / 255;
    c.size_shortest_edge = FUZZ_SIDE;
    c.do_center_crop = 1;
    c.crop_height = c.crop_width = FUZZ_SIDE;
    (void)gz_preprocess_image(&c, img, out);
    c.size_shortest_edge = 0;
    c.do_center_crop = 0;
    c.size_height = c.size_width = FUZZ_SIDE;
    (void)gz_preprocess_image(&c, img, out);
}

#ifdef GZ_FUZZ_IMAGE_FORMAT
/* Write GZ_FUZZ_IMAGE_FORMAT's signature over the start of d (n >= 16 bytes); a variant that
 * the input already has (GIF87a, big-endian TIFF, another HEIF brand) is kept. */
static void sign(uint8_t *d) {
    const char *f = GZ_FUZZ_IMAGE_FORMAT;
    if (!strcmp(f, "jpeg")) {
        memcpy(d, "\xff\xd8\xff", 3);
    } else if (!strcmp(f, "png")) {
        memcpy(d, "\x89PNG\r\n\x1a\n", 8);
    } else if (!strcmp(f, "webp")) {
        memcpy(d, "RIFF", 4);
        memcpy(d + 8, "WEBP", 4);
    } else if (!strcmp(f, "gif")) {
        if (memcmp(d, "GIF87a", 6) != 0) memcpy(d, "GIF89a", 6);
    } else if (!strcmp(f, "heif")) {
        static const char *const brands[] = {"heic", "heix", "mif1", "msf1", "avif", "mif2"};
        int known = 0;
        for (size_t i = 0; i < sizeof brands / sizeof brands[0]; i++)
            known |= memcmp(d + 8, brands[i], 4) == 0;
        memcpy(d + 4, "ftyp", 4);
        if (!known) memcpy(d + 8, "heic", 4);
    } else if (!strcmp(f, "tiff")) {
        memcpy(d, d[0] == 'M' ? "MM\0*" : "II*\0", 4);
    } else if (!strcmp(f, "bmp")) {
        memcpy(d, "BM", 2);
    } else {
        abort(); /* a format this file does not know: fix tests/fuzz/targets.cmake */
    }
}
#endif

static void decode_all(const uint8_t *data, size_t size) {
    gz_image_params p = gz_image_default_params();
    p.max_pixels = FUZZ_MAX_PIXELS;
    for (int mode = 0; mode < 2; mode++) {
        p.min_size = mode ? FUZZ_SIDE : 0;
        p.exif_orient = !mode;
        gz_image img;
        if (gz_image_load_memory(data, size, "fuzz", &p, &img) == GZ_OK) {
            preprocess_both(&img);
            gz_image_free(&img);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
#ifdef GZ_FUZZ_IMAGE_FORMAT
    enum { SIGNATURE_BYTES = 16 };
    size_t n = size < SIGNATURE_BYTES ? SIGNATURE_BYTES : size;
    uint8_t *signed_copy = calloc(n, 1); /* exact size: ASan sees a read past it */
    if (!signed_copy) return 0;
    memcpy(signed_copy, data, size);
    sign(signed_copy);
    decode_all(signed_copy, n);
    free(signed_copy);
#else
    decode_all(data, size);
    int orientation;
    char taken_at[20];
    gz_img_exif_parse(data, size, &orientation, taken_at);
#endif
    return 0;
}
