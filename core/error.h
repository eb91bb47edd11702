/* error.h - status codes and the thread-local error message behind gz_last_error().
 *
 * Library code never prints. It records what went wrong with GZ_FAIL, which keeps the
 * source line for debugging, and returns the status up the stack:
 *
 *   if (hdr_len > file_size - 8)
 *       return GZ_FAIL(GZ_EINVAL, "%s: header length %llu exceeds file size %llu", path, ...);
 *
 * The message should name the file (or item) and the reason, in words a user can act on.
 * The source line is not part of it: gz_last_error_where() gives it, and with GAZE_DEBUG=1 in
 * the environment gz_last_error() ends with it, " [core/safetensors.c:123]" (any other value,
 * or none, leaves the message as is). gz_error_prefix keeps the line of the original GZ_FAIL. */
#ifndef GZ_CORE_ERROR_H
#define GZ_CORE_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define GZ_FAIL(status, ...) gz_fail_at(__FILE__, __LINE__, (status), __VA_ARGS__)

/* Record a formatted message for the calling thread and return status unchanged. */
gz_status gz_fail_at(const char *file, int line, gz_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Source location of the last GZ_FAIL on this thread ("core/safetensors.c:123", relative to the
 * source root), for -v output; "" after gz_clear_error. */
const char *gz_last_error_where(void);

/* Clear the calling thread's message (used by callers that retry or skip an item). */
void gz_clear_error(void);

/* Prefix the current message with "prefix: " (for adding context such as a file name
 * as an error travels up). Returns status unchanged. */
gz_status gz_error_prefix(gz_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Overflow-checked size arithmetic: return 0 and leave *out untouched on overflow. */
int gz_mul_size(size_t a, size_t b, size_t *out);
int gz_add_size(size_t a, size_t b, size_t *out);

#endif
