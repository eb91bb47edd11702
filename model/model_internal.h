/* model_internal.h - what tests inspect of a gz_model beyond the API (include/gaze.h).
 * Not for programs: cli/ and serve/ include only gaze.h. */
#ifndef GZ_MODEL_INTERNAL_H
#define GZ_MODEL_INTERNAL_H

#include <stddef.h>

#include "gaze.h"

/* The BERT weights m holds packed copies of now (core/linear.h: bf16, or fp32 panels; 0 before
 * the first forward that packs them, and with simd 0); *bytes (if not NULL) receives the size
 * of every form. The text tower and the ITM encoder share the copies of their common BERT
 * layers, so they count once. Thread-safe. */
size_t gz_model_packed_copies(const gz_model *m, size_t *bytes);

/* Bytes m's scratch arena keeps between forwards now (core/scratch.h; 0 before the first). */
size_t gz_model_scratch_kept_bytes(const gz_model *m);

#endif
