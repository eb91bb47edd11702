/* contenthash.h - a weights file's identity: XXH3-128 of all its bytes, computed once per
 * file version and cached by (device, inode, size, mtime, ctime).
 *
 * The cache is one small text file per user, $XDG_CACHE_HOME/gaze/content-hashes
 * (~/.cache/gaze/content-hashes when XDG_CACHE_HOME is unset), not the database: the model
 * identity is computed when a model loads, below the store, and one cache serves every
 * database, `gaze embed` and `gaze eval`; model folders (the Hub cache) may be read-only.
 * A cache that cannot be read or written only costs the hashing again. ctime is in the key
 * because no user call can set it back (touch -d restores mtime, not ctime). */
#ifndef GZ_CORE_CONTENTHASH_H
#define GZ_CORE_CONTENTHASH_H

#include <stdint.h>

#include "core/status.h"

/* out = XXH3-128 of the file's bytes (high 64 bits first, big-endian). Links are followed;
 * only regular files are hashed. GZ_EIO (message names the file) when it cannot be read. */
gz_status gz_content_hash(const char *path, uint8_t out[16]);

#endif
