/* model_internal.h - what tests inspect of a gz_model beyond the API (include/gaze.h).
 * Not for programs: cli/ and serve/ include only gaze.h. */
#ifndef GZ_MODEL_INTERNAL_H
#define GZ_MODEL_INTERNAL_H

#include <stddef.h>

#include "gaze.h"

/* The bf16 weight copies m holds now (0 in fp32, and before the first bf16 forward of a
 * tower); *bytes (if not NULL) receives their size. The text tower and the ITM encoder share
 * the copies of their common BERT layers, so they count once. Thread-safe. */
size_t gz_model_bf16_copies(const gz_model *m, size_t *bytes);

#endif
