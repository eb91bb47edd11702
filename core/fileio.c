/* fileio.c - file, path, clock and hash helpers; the checked allocation wrapper (fileio.h). */
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"

void *gz_malloc_n(size_t n, size_t size, const char *what) {
    size_t bytes;
    if (!gz_mul_size(n, size, &bytes)) {
        GZ_FAIL(GZ_ENOMEM, "%s: %zu x %zu bytes overflows", what, n, size);
        return NULL;
    }
    void *p = malloc(bytes ? bytes : 1);
    if (!p) GZ_FAIL(GZ_ENOMEM, "%s: out of memory (%zu bytes)", what, bytes);
    return p;
}

void *gz_calloc_n(size_t n, size_t size, const char *what) {
    size_t bytes;
    if (!gz_mul_size(n, size, &bytes)) {
        GZ_FAIL(GZ_ENOMEM, "%s: %zu x %zu bytes overflows", what, n, size);
        return NULL;
    }
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) GZ_FAIL(GZ_ENOMEM, "%s: out of memory (%zu bytes)", what, bytes);
    return p;
}

char *gz_path_join(const char *dir, const char *name) {
    if (name[0] == '/' || !dir || !dir[0]) return strdup(name);
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (p[k - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int gz_path_resolves_inside(const char *dir_real, const char *path) {
    char real[PATH_MAX];
    if (!realpath(path, real)) return 1;
    size_t n = strlen(dir_real);
    while (n > 1 && dir_real[n - 1] == '/') /* "/data/" names the folder "/data" */
        n--;
    if (n == 1 && dir_real[0] == '/') return 1;
    return strncmp(real, dir_real, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

int gz_is_regular_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int gz_open_regular(const char *path) {
    /* O_NONBLOCK: a FIFO must not block the open; it is refused by the fstat below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = S_ISREG(st.st_mode) ? errno : EINVAL;
        close(fd);
        errno = e;
        return -1;
    }
    /* Reads of a regular file never block anyway; clear the flag so that nothing downstream
     * (stdio, mmap users) sees a non-blocking descriptor. */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

FILE *gz_fopen_regular(const char *path) {
    int fd = gz_open_regular(path);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

gz_status gz_read_fd(int fd, const char *path, size_t max, unsigned char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) return GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(errno));
    if ((uint64_t)st.st_size > max)
        return GZ_FAIL(GZ_EINVAL, "%s: larger than %zu bytes", path, max);
    size_t size = (size_t)st.st_size;
    unsigned char *buf = malloc(size + 1);
    if (!buf) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got != size) {
        free(buf);
        return GZ_FAIL(GZ_EIO, "%s: short read", path);
    }
    buf[size] = 0;
    *out = buf;
    *len = size;
    return GZ_OK;
}

gz_status gz_read_file(const char *path, size_t max, unsigned char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int fd = gz_open_regular(path);
    if (fd < 0)
        return GZ_FAIL(errno == ENOENT ? GZ_ENOTFOUND : GZ_EIO, "%s: %s", path,
                       errno == EINVAL ? "not a regular file" : strerror(errno));
    gz_status st = gz_read_fd(fd, path, max, out, len);
    close(fd);
    return st;
}

gz_status gz_hash_file(const char *path, uint64_t *hash) {
    FILE *f = gz_fopen_regular(path);
    if (!f)
        return GZ_FAIL(GZ_EIO, "%s: %s", path,
                       errno == EINVAL ? "not a regular file" : strerror(errno));
    XXH3_state_t *xs = XXH3_createState();
    if (!xs) {
        fclose(f);
        return GZ_FAIL(GZ_ENOMEM, "%s: xxhash state", path);
    }
    XXH3_64bits_reset(xs);
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        XXH3_64bits_update(xs, buf, got);
    int err = ferror(f);
    fclose(f);
    *hash = XXH3_64bits_digest(xs);
    XXH3_freeState(xs);
    if (err) return GZ_FAIL(GZ_EIO, "%s: read error", path);
    return GZ_OK;
}

double gz_monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
