/* fileio.h - the one home for small file, path, clock and hash helpers, and the one
 * overflow-checked allocation wrapper.
 *
 * Every module used to carry its own whole-file reader, path join and monotonic clock; they
 * live here once so that a fix (a size cap, a FIFO check) reaches every caller. */
#ifndef GZ_CORE_FILEIO_H
#define GZ_CORE_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

/* malloc(n * size) with the product checked: NULL and a GZ_ENOMEM message (naming what)
 * on overflow or when out of memory. n == 0 allocates one byte so NULL always means failure. */
void *gz_malloc_n(size_t n, size_t size, const char *what);
/* calloc with the same contract. */
void *gz_calloc_n(size_t n, size_t size, const char *what);

/* "dir/name" in a malloc'd string; name is returned copied as is when it is absolute or
 * dir is NULL or empty. A trailing '/' on dir is not doubled. NULL when out of memory. */
char *gz_path_join(const char *dir, const char *name);

/* 1 if path, resolved physically (realpath: symlinks followed, "link/.." as the kernel sees
 * it), lies inside the folder dir_real, which must itself be physical (a realpath result).
 * A path that resolves to nothing counts as inside: there is nothing to read there now, and
 * its reader reports it as missing. Confines the files a dataset or catalogue names. */
int gz_path_resolves_inside(const char *dir_real, const char *path);

/* 1 if path names an existing regular file (links followed). */
int gz_is_regular_file(const char *path);

/* open(path, O_RDONLY | O_CLOEXEC) for reading a regular file, and nothing else: the open
 * cannot block on a FIFO (O_NONBLOCK, cleared again once open), and what is not a regular file
 * after opening (FIFO, device, directory, socket; also one swapped in after a scan) is closed
 * and refused. Returns the descriptor, or -1 with errno set (EINVAL when not a regular file).
 * Every reader of a file named by a user, a dataset or a scan opens it through here (or
 * gz_fopen_regular), so that no path makes gaze hang. */
int gz_open_regular(const char *path);
/* The same as a stdio stream ("rb"); NULL with errno set. */
FILE *gz_fopen_regular(const char *path);

/* Read a whole file of at most max bytes into a malloc'd, NUL-terminated buffer (*len
 * excludes the NUL). Only regular files are read. GZ_ENOTFOUND (missing), GZ_EIO (unreadable,
 * not a regular file), GZ_EINVAL (larger than max), GZ_ENOMEM; the message names the file. */
gz_status gz_read_file(const char *path, size_t max, unsigned char **out, size_t *len);

/* gz_read_file for a file already opened (gz_open_regular): reads from offset 0 with pread,
 * so what was read before does not matter; the descriptor stays open. */
gz_status gz_read_fd(int fd, const char *path, size_t max, unsigned char **out, size_t *len);

/* xxh3-64 of a whole file's bytes. GZ_EIO with the errno text if unreadable. */
gz_status gz_hash_file(const char *path, uint64_t *hash);

/* Seconds on the monotonic clock (for durations only). */
double gz_monotonic_seconds(void);

#endif
