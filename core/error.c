/* error.c - thread-local error messages (see error.h). */
#include "core/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GZ_ERROR_MAX 1024
#define GZ_WHERE_MAX 128

static _Thread_local char tls_message[GZ_ERROR_MAX];
static _Thread_local char tls_where[GZ_WHERE_MAX];
static _Thread_local char tls_debug[GZ_ERROR_MAX + GZ_WHERE_MAX + 3]; /* "message [where]" */

/* The build may pass absolute source paths: __FILE__ of this file minus "core/error.c" is the
 * source root, cut from every location so that it reads "core/safetensors.c:123". */
static const char self_file[] = __FILE__;
static size_t source_root_len(void) {
    static const char tail[] = "core/error.c";
    size_t n = sizeof self_file - 1, t = sizeof tail - 1;
    return n >= t && strcmp(self_file + n - t, tail) == 0 ? n - t : 0;
}

gz_status gz_fail_at(const char *file, int line, gz_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_message, sizeof tls_message, fmt, ap);
    va_end(ap);
    size_t root = source_root_len();
    if (root && strncmp(file, self_file, root) == 0) file += root;
    snprintf(tls_where, sizeof tls_where, "%s:%d", file, line);
    return status;
}

gz_status gz_error_prefix(gz_status status, const char *fmt, ...) {
    char prefix[512];
    char old[GZ_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tls_message, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof tls_message - 3) n = sizeof tls_message - 3;
    memcpy(tls_message, prefix, n);
    memcpy(tls_message + n, ": ", 3);
    size_t room = sizeof tls_message - n - 3;
    size_t olen = strnlen(old, room);
    memcpy(tls_message + n + 2, old, olen);
    tls_message[n + 2 + olen] = '\0';
    return status;
}

const char *gz_last_error(void) {
    if (!tls_message[0]) return "no error";
    const char *debug = getenv("GAZE_DEBUG"); /* read per call: tests and shells may change it */
    if (!debug || strcmp(debug, "1") != 0 || !tls_where[0]) return tls_message;
    snprintf(tls_debug, sizeof tls_debug, "%s [%s]", tls_message, tls_where);
    return tls_debug;
}

const char *gz_last_error_where(void) { return tls_where; }

void gz_clear_error(void) {
    tls_message[0] = '\0';
    tls_where[0] = '\0';
}

const char *gz_status_name(gz_status s) {
    switch (s) {
    case GZ_OK: return "ok";
    case GZ_EINVAL: return "invalid input";
    case GZ_EIO: return "I/O error";
    case GZ_ENOMEM: return "out of memory";
    case GZ_EUNSUPPORTED: return "unsupported";
    case GZ_ECORRUPT: return "corrupt data";
    case GZ_ENOTFOUND: return "not found";
    case GZ_EINTERRUPTED: return "interrupted";
    }
    return "unknown error";
}

int gz_mul_size(size_t a, size_t b, size_t *out) {
    if (b != 0 && a > SIZE_MAX / b) return 0;
    *out = a * b;
    return 1;
}

int gz_add_size(size_t a, size_t b, size_t *out) {
    if (a > SIZE_MAX - b) return 0;
    *out = a + b;
    return 1;
}
