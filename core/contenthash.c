/* contenthash.c - cached full-content hashes of weights files (contenthash.h). */
#include "core/contenthash.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"

#define CACHE_MAX_BYTES (1u << 20) /* ~10k entries; a larger cache is started afresh */
#define READ_CHUNK (1u << 20)

typedef struct {
    uint64_t dev, ino, size;
    int64_t mtime_ns, ctime_ns;
} file_key;

static void cache_path(char *out, size_t cap) {
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    out[0] = '\0';
    if (x && x[0] == '/')
        snprintf(out, cap, "%s/gaze/content-hashes", x);
    else if (home && home[0] == '/')
        snprintf(out, cap, "%s/.cache/gaze/content-hashes", home);
}

static void hex16(const uint8_t h[16], char out[33]) {
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* 1 and *out when the cache holds key. */
static int cache_lookup(const char *path, const file_key *k, uint8_t out[16]) {
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    char line[256];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        file_key e;
        char hex[33];
        if (sscanf(line, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNd64 " %" SCNd64 " %32s", &e.dev,
                   &e.ino, &e.size, &e.mtime_ns, &e.ctime_ns, hex) != 6 ||
            strlen(hex) != 32 || strspn(hex, "0123456789abcdef") != 32)
            continue;
        if (e.dev != k->dev || e.ino != k->ino || e.size != k->size || e.mtime_ns != k->mtime_ns ||
            e.ctime_ns != k->ctime_ns)
            continue;
        for (int i = 0; i < 16; i++) {
            unsigned b;
            sscanf(hex + 2 * i, "%2x", &b);
            out[i] = (uint8_t)b;
        }
        found = 1; /* a later duplicate line (a race of two writers) holds the same hash */
    }
    fclose(f);
    return found;
}

/* Append one line (a single write under PIPE_BUF bytes to an O_APPEND file: concurrent
 * writers do not interleave). Failures are ignored: the cache is an optimisation. */
static void cache_store(const char *path, const file_key *k, const uint8_t h[16]) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    *slash = '\0';
    char *parent = strrchr(dir, '/');
    if (parent && parent != dir) { /* ~/.cache, then ~/.cache/gaze */
        *parent = '\0';
        mkdir(dir, 0700);
        *parent = '/';
    }
    mkdir(dir, 0700);
    struct stat sb;
    if (stat(path, &sb) == 0 && sb.st_size > CACHE_MAX_BYTES) unlink(path);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return;
    char hex[33], line[256];
    hex16(h, hex);
    int n = snprintf(line, sizeof line,
                     "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRId64 " %s\n", k->dev,
                     k->ino, k->size, k->mtime_ns, k->ctime_ns, hex);
    if (n > 0 && n < (int)sizeof line && write(fd, line, (size_t)n) != n) {
        /* a short append leaves a line sscanf skips */
    }
    close(fd);
}

gz_status gz_content_hash(const char *path, uint8_t out[16]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* O_NONBLOCK: a FIFO never blocks */
    if (fd < 0) return GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return GZ_FAIL(GZ_EIO, "%s: not a regular file", path);
    }
    file_key k = {(uint64_t)sb.st_dev, (uint64_t)sb.st_ino, (uint64_t)sb.st_size,
                  (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec,
                  (int64_t)sb.st_ctim.tv_sec * 1000000000 + sb.st_ctim.tv_nsec};
    char cpath[PATH_MAX];
    cache_path(cpath, sizeof cpath);
    if (cpath[0] && cache_lookup(cpath, &k, out)) {
        close(fd);
        return GZ_OK;
    }
    XXH3_state_t *xs = XXH3_createState();
    unsigned char *buf = malloc(READ_CHUNK);
    gz_status st = xs && buf ? GZ_OK : GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
    if (st == GZ_OK) XXH3_128bits_reset(xs);
    uint64_t total = 0;
    while (st == GZ_OK) {
        ssize_t n = read(fd, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) st = GZ_FAIL(GZ_EIO, "%s: read: %s", path, strerror(errno));
        if (n <= 0) break;
        XXH3_128bits_update(xs, buf, (size_t)n);
        total += (uint64_t)n;
    }
    if (st == GZ_OK && total != k.size)
        st = GZ_FAIL(GZ_EIO, "%s: changed while being hashed", path);
    if (st == GZ_OK) {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(xs));
        memcpy(out, c.digest, 16);
        if (cpath[0]) cache_store(cpath, &k, out);
    }
    free(buf);
    XXH3_freeState(xs);
    close(fd);
    return st;
}
