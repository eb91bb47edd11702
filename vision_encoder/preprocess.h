/* preprocess.h - turn a decoded RGB photo into the model's input tensor, exactly as the
 * Hugging Face image processors (BlipImageProcessor, CLIPImageProcessor,
 * ChineseCLIPImageProcessor, transformers 4.40 + Pillow 9.4) do.
 *
 * Usage:
 *   gz_preproc_config pc;  gz_preproc_config_load("model/preprocessor_config.json", fam, &pc);
 *   gz_image_params ip = gz_image_default_params();
 *   ip.min_size = gz_preproc_min_decode_size(&pc);     // optional fast JPEG decode
 *   gz_image im;  gz_image_load("cat.jpg", &ip, &im);
 *   int S = gz_preproc_output_size(&pc);
 *   float *x = malloc(3 * S * S * sizeof *x);            // (3, S, S)
 *   gz_preprocess_image(&pc, &im, x);                  // (or gz_preprocess on raw pixels)
 *
 * Resize: CLIP-style configs (size.shortest_edge) scale the short side to that size, the
 * long side to int(size * long / short), then centre-crop to crop_size at
 * ((H - S) // 2, (W - S) // 2); BLIP/Chinese-CLIP configs resize straight to height x width.
 * The resampler is Pillow's uint8 BICUBIC (ImagingResample): bit-exact with the reference.
 * Limits: only resample = 3 (BICUBIC); square outputs only (all supported families). */
#ifndef GZ_VISION_PREPROCESS_H
#define GZ_VISION_PREPROCESS_H

#include <stdint.h>

#include "core/config.h"
#include "gaze.h"

/* Output side S of the model input (crop size when centre-cropping, else size); 0 if the
 * config does not describe a square output. */
int gz_preproc_output_size(const gz_preproc_config *c);

/* The smallest image side the resize needs, to pass as gz_image_params.min_size for a fast
 * (DCT-scaled) JPEG decode: decoding at least this large keeps the result close to a
 * full-size decode (not bit-exact: use min_size 0 for parity). */
int gz_preproc_min_decode_size(const gz_preproc_config *c);

/* The (h, w) the resize step produces for a w x h input (before any centre crop), with
 * transformers' get_resize_output_image_size rounding. GZ_EINVAL for bad sizes. */
gz_status gz_preproc_resize_dims(const gz_preproc_config *c, int w, int h, int *out_w, int *out_h);

/* Resize (+ centre crop) an (h, w, 3) uint8 image to (S, S, 3) uint8 exactly as Pillow 9.4
 * BICUBIC + HF's center_crop (zero padding when the image is smaller than the crop).
 * *out is malloc'd (caller frees); NULL on error. GZ_EUNSUPPORTED for a resample filter
 * other than BICUBIC or a non-square output, GZ_EINVAL for bad sizes. */
gz_status gz_preproc_resize(const gz_preproc_config *c, const uint8_t *rgb, int w, int h,
                            uint8_t **out);

/* Full pipeline: resize/crop, rescale, normalise -> out (3, S, S) float32 CHW, numpy's
 * arithmetic: v = float32(double(x) * rescale_factor), then (v - mean) / std in float32. */
gz_status gz_preprocess(const gz_preproc_config *c, const uint8_t *rgb, int w, int h, float *out);

/* The same for a decoded image; use this one for images decoded with min_size > 0: the
 * resize target (and so the centre crop) is computed from the full-resolution size
 * (img->src_width x src_height) as for a full decode, and the smaller DCT-scaled pixels
 * are resampled to it. Equals gz_preprocess() when the image was decoded at full size. */
gz_status gz_preprocess_image(const gz_preproc_config *c, const gz_image *img, float *out);

/* Variants taking the full-resolution size (full_w x full_h) that a reduced (w x h) decode
 * stands for; full_w/full_h <= 0 mean "same as w/h". */
gz_status gz_preproc_resize_as(const gz_preproc_config *c, const uint8_t *rgb, int w, int h,
                               int full_w, int full_h, uint8_t **out);
gz_status gz_preprocess_as(const gz_preproc_config *c, const uint8_t *rgb, int w, int h, int full_w,
                           int full_h, float *out);

/* Pillow-exact BICUBIC resize of an (h, w, 3) uint8 image to (oh, ow, 3) into out
 * (caller-allocated, oh*ow*3 bytes). Horizontal pass then vertical, uint8 in between. */
gz_status gz_resize_bicubic_pil(const uint8_t *rgb, int w, int h, uint8_t *out, int ow, int oh);

/* gz_image_thumbnail (previews) is public: declared in gaze.h, defined in preprocess.c. */

#endif
