/* fuzz_image.c - libFuzzer target for image decoding (every format: the input's first bytes
 * choose the decoder, as for a file), EXIF parsing and preprocessing.
 *
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt):
 *   scripts/fuzz.sh fuzz_image 600
 * Each input is decoded at full size and DCT-scaled, with and without EXIF orientation; a
 * decoded picture is preprocessed for a CLIP-style (shortest edge + centre crop) and a
 * BLIP-style (fixed size) model; the input is also parsed as a raw EXIF block. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
    int orientation;
    char taken_at[20];
    gz_img_exif_parse(data, size, &orientation, taken_at);
    return 0;
}
