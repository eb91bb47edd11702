/* status.h - the status codes and model families every layer shares, from core up.
 *
 * core/ and the towers need gz_status and gz_family but must not depend on the public API
 * above them, so these few declarations live here and include/gaze.h includes this file. */
#ifndef GZ_CORE_STATUS_H
#define GZ_CORE_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GZ_OK = 0,
    GZ_EINVAL = -1,       /* bad argument or malformed input file */
    GZ_EIO = -2,          /* read/write failed; errno text in the message */
    GZ_ENOMEM = -3,       /* allocation failed or a size limit was exceeded */
    GZ_EUNSUPPORTED = -4, /* valid input we do not handle (format, model family, feature) */
    GZ_ECORRUPT = -5,     /* stored data failed a consistency check */
    GZ_ENOTFOUND = -6,    /* a named thing (file, tensor, item) does not exist */
    GZ_EINTERRUPTED = -7, /* stopped on request (signal) after leaving state consistent */
} gz_status;

typedef enum {
    GZ_FAMILY_BLIP = 1,         /* BlipForImageTextRetrieval: BERT + ViT + ITM fusion */
    GZ_FAMILY_CLIP = 2,         /* CLIPModel */
    GZ_FAMILY_CHINESE_CLIP = 3, /* ChineseCLIPModel */
} gz_family;

/* The calling thread's last error message ("<file>: <reason>"); "no error" if none. With
 * GAZE_DEBUG=1 in the environment the message ends with the source line that raised it,
 * " [core/safetensors.c:123]" (checked on every call). The pointer is valid until the
 * thread's next gaze call. */
const char *gz_last_error(void);
/* A short name for a status ("invalid input", ...). */
const char *gz_status_name(gz_status s);

#ifdef __cplusplus
}
#endif
#endif
