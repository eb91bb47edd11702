/* image.h - reading image files for the library's other layers (decoding itself is public:
 * gz_image_load / gz_image_load_memory in gaze.h). */
#ifndef GZ_VISION_IMAGE_H
#define GZ_VISION_IMAGE_H

#include <stddef.h>

#include "gaze.h"

/* Read an image file's bytes (for gz_image_load_memory, or to hash what is decoded). Only a
 * regular file is opened (a FIFO does not block: see gz_open_regular), its format is sniffed
 * from its first bytes and its size checked against that format's maximum (README "Limits")
 * before anything more is read. *data is malloc'd (caller frees), NUL-terminated past *size.
 * GZ_ENOTFOUND, GZ_EIO (unreadable, not a regular file), GZ_EUNSUPPORTED (not an image format
 * gaze decodes), GZ_EINVAL (empty, or larger than the format's maximum), GZ_ENOMEM; the message
 * names the file. */
gz_status gz_image_read_file(const char *path, unsigned char **data, size_t *size);

#endif
