/* tokens.h - the compressed form of an image's final vision token states (what BLIP's ITM
 * cross-attends to), as `gaze index --keep-tokens` stores them beside the embedding.
 *
 * Legend: P = tokens (class token + patches), D = vision hidden size.
 *
 * Layouts (host byte order, as the embeddings' floats are stored):
 *   GZ_TOKENS_INT8: scales (P) float32, then values (P, D) int8. Symmetric per token:
 *                   scale = max_d |x[p, d]| / 127, q = round-to-nearest(x / scale) in
 *                   [-127, 127], x' = q * scale. |x - x'| <= scale / 2 per element.
 *   GZ_TOKENS_BF16: values (P, D) bfloat16 (the top 16 bits of the float32, rounded to the
 *                   nearest even). |x - x'| <= 2^-8 |x| per element (half an ulp of 8
 *                   significant bits).
 * Both are pure functions of their inputs: no state, any thread. */
#ifndef GZ_STORE_TOKENS_H
#define GZ_STORE_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "gaze.h"

/* Bytes of the encoded form of (P, D) states, or 0 for an unknown format or sizes that
 * overflow. */
size_t gz_tokens_bytes(gz_tokens_format format, int P, int D);

/* Encode states (P, D), all finite, into out (gz_tokens_bytes bytes). GZ_EINVAL for an unknown
 * format, bad sizes or a non-finite value (the message names the token and the column). */
gz_status gz_tokens_encode(gz_tokens_format format, const float *states, int P, int D,
                           uint8_t *out);

/* Decode len bytes of format into out (P, D) floats. GZ_ECORRUPT when len is not
 * gz_tokens_bytes(format, P, D) or an int8 scale is negative or not finite; GZ_EINVAL for an
 * unknown format. */
gz_status gz_tokens_decode(gz_tokens_format format, const uint8_t *data, size_t len, int P, int D,
                           float *out);

/* "int8", "bf16", or "?" */
const char *gz_tokens_format_name(gz_tokens_format format);

#endif
