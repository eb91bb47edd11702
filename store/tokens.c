/* tokens.c - int8 (per-token scale) and bf16 codecs for stored vision token states.
 *
 * Legend: P = tokens, D = vision hidden size. Written by hand: Debian has no small library for
 * either format, and each is a few lines over the float's bits. */
#include "store/tokens.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

#define INT8_LEVELS 127 /* symmetric: -127..127, so that -x and x round alike */

size_t gz_tokens_bytes(gz_tokens_format format, int P, int D) {
    size_t n, bytes;
    if (P <= 0 || D <= 0 || !gz_mul_size((size_t)P, (size_t)D, &n)) return 0;
    switch (format) {
    case GZ_TOKENS_INT8:
        if (!gz_add_size(n, (size_t)P * sizeof(float), &bytes)) return 0;
        return bytes;
    case GZ_TOKENS_BF16: return gz_mul_size(n, sizeof(uint16_t), &bytes) ? bytes : 0;
    case GZ_TOKENS_NONE: break;
    }
    return 0;
}

const char *gz_tokens_format_name(gz_tokens_format format) {
    switch (format) {
    case GZ_TOKENS_INT8: return "int8";
    case GZ_TOKENS_BF16: return "bf16";
    case GZ_TOKENS_NONE: break;
    }
    return "?";
}

/* float32 -> bfloat16 bits, rounding to the nearest even (values are finite here). */
static uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

gz_status gz_tokens_encode(gz_tokens_format format, const float *states, int P, int D,
                           uint8_t *out) {
    if (!states || !out || gz_tokens_bytes(format, P, D) == 0)
        return GZ_FAIL(GZ_EINVAL, "token states: bad format %d or sizes (%d, %d)", (int)format, P,
                       D);
    for (int p = 0; p < P; p++)
        for (int d = 0; d < D; d++)
            if (!isfinite(states[(size_t)p * D + d]))
                return GZ_FAIL(GZ_EINVAL, "token states: token %d, column %d is not finite", p, d);
    if (format == GZ_TOKENS_BF16) {
        for (size_t i = 0; i < (size_t)P * D; i++) {
            uint16_t h = to_bf16(states[i]);
            memcpy(out + 2 * i, &h, sizeof h);
        }
        return GZ_OK;
    }
    uint8_t *values = out + (size_t)P * sizeof(float); /* (P, D) int8 after the scales */
    for (int p = 0; p < P; p++) {
        const float *x = states + (size_t)p * D;
        float amax = 0;
        for (int d = 0; d < D; d++)
            amax = fmaxf(amax, fabsf(x[d]));
        float scale = amax / INT8_LEVELS;
        memcpy(out + (size_t)p * sizeof(float), &scale, sizeof scale);
        float inv = scale > 0 ? 1.0f / scale : 0.0f;
        for (int d = 0; d < D; d++) {
            float q = nearbyintf(x[d] * inv); /* the default rounding mode: to nearest */
            if (q > INT8_LEVELS) q = INT8_LEVELS;
            if (q < -INT8_LEVELS) q = -INT8_LEVELS;
            int8_t v = (int8_t)q;
            memcpy(values + (size_t)p * D + d, &v, 1);
        }
    }
    return GZ_OK;
}

gz_status gz_tokens_decode(gz_tokens_format format, const uint8_t *data, size_t len, int P, int D,
                           float *out) {
    size_t want = gz_tokens_bytes(format, P, D);
    if (want == 0 || !out)
        return GZ_FAIL(GZ_EINVAL, "token states: bad format %d or sizes (%d, %d)", (int)format, P,
                       D);
    if (!data || len != want)
        return GZ_FAIL(GZ_ECORRUPT, "token states: %zu bytes, %s (%d, %d) needs %zu", len,
                       gz_tokens_format_name(format), P, D, want);
    if (format == GZ_TOKENS_BF16) {
        for (size_t i = 0; i < (size_t)P * D; i++) {
            uint16_t h;
            memcpy(&h, data + 2 * i, sizeof h);
            out[i] = from_bf16(h);
        }
        return GZ_OK;
    }
    const uint8_t *values = data + (size_t)P * sizeof(float);
    for (int p = 0; p < P; p++) {
        float scale;
        memcpy(&scale, data + (size_t)p * sizeof(float), sizeof scale);
        if (!(scale >= 0) || !isfinite(scale))
            return GZ_FAIL(GZ_ECORRUPT, "token states: token %d has scale %g", p, (double)scale);
        for (int d = 0; d < D; d++) {
            int8_t v;
            memcpy(&v, values + (size_t)p * D + d, 1);
            out[(size_t)p * D + d] = (float)v * scale;
        }
    }
    return GZ_OK;
}
