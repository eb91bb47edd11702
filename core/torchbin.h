/* torchbin.h - read PyTorch `torch.save` checkpoints (pytorch_model.bin) without Python.
 *
 * Since torch 1.6, torch.save writes a ZIP archive whose entries are STORED (not compressed):
 *   <archive>/data.pkl     a pickle (protocol 2) of the state dict
 *   <archive>/data/<key>   the raw little-endian bytes of each storage
 *   <archive>/version      and maybe <archive>/byteorder ("little")
 * The pickle maps names to torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...),
 * where storage is persistent_load(("storage", torch.FloatStorage, key, location, numel)).
 *
 * This reader never runs anything: a restricted unpickler knows only the opcodes that state
 * dicts use and resolves GLOBAL only from an allow-list (collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 / _rebuild_parameter, torch.<Type>Storage). Everything is
 * bounds-checked: zip offsets and sizes, pickle length, memo indices, stack depth, string
 * lengths, integer widths, storage sizes against offset + shape. Only contiguous row-major
 * tensors are accepted. ZIP64 archives (checkpoints over 4 GiB) are read; compressed or
 * encrypted entries, multi-disk archives and the legacy pre-1.6 (non-zip) format are refused.
 *
 * Usage (core/safetensors.c does this for gz_st_open on a ZIP file):
 *   gz_tb_tensor *t = NULL; size_t n = 0;
 *   if (gz_tb_parse(map, size, path, &t, &n) != GZ_OK) return ...;  // t[i].offset: bytes in map
 *   gz_tb_free(t, n);
 * Limits: GZ_TB_MAX_PICKLE bytes of data.pkl; GZ_ST_MAX_DIMS dimensions per tensor. */
#ifndef GZ_CORE_TORCHBIN_H
#define GZ_CORE_TORCHBIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/safetensors.h"

/* Largest data.pkl accepted: about 100 bytes per tensor, so ~150k tensors. The unpickler's
 * arrays hold at most one entry per byte of it (under 64 bytes per byte in all). */
#define GZ_TB_MAX_PICKLE (16u * 1024u * 1024u)

typedef struct {
    char *name; /* state-dict key, NUL-terminated, owned by the array */
    gz_dtype dtype;
    int ndim;
    int64_t shape[GZ_ST_MAX_DIMS];
    size_t numel;
    size_t offset; /* byte offset of the first element in the file */
    size_t nbytes; /* numel * dtype size; [offset, offset + nbytes) lies inside the file */
} gz_tb_tensor;

/* 1 if the buffer starts like a ZIP archive (local file header "PK\3\4"). */
int gz_tb_is_zip(const void *buf, size_t size);
/* 1 if the buffer starts like a legacy (torch < 1.6, non-zip) torch.save pickle. */
int gz_tb_is_legacy(const void *buf, size_t size);

/* Parse a torch.save ZIP checkpoint held in memory (usually a read-only mapping of the whole
 * file). path is used in messages only. On GZ_OK, *out holds *n tensors in the state dict's
 * order (caller frees with gz_tb_free); tensors may share bytes (tied weights share a storage).
 * GZ_EINVAL names the file and the reason for a malformed archive or pickle, a forbidden
 * global, a non-contiguous tensor or a storage too small for its tensor; GZ_EUNSUPPORTED for
 * compressed/encrypted entries, multi-disk archives or a legacy file. *out is NULL on error. */
gz_status gz_tb_parse(const void *buf, size_t size, const char *path, gz_tb_tensor **out,
                      size_t *n);
void gz_tb_free(gz_tb_tensor *t, size_t n);

/* Locate the data.pkl entry of a torch.save ZIP in memory: *pkl points into buf. This is the
 * checkpoint's "header" (names, dtypes, shapes, storage keys), e.g. for fingerprints. */
gz_status gz_tb_pickle(const void *buf, size_t size, const char *path, const void **pkl,
                       size_t *len);

/* Read the data.pkl bytes of a torch.save ZIP file into a new buffer (caller frees).
 * Errors as gz_tb_parse, plus GZ_EIO/GZ_ENOTFOUND if the file cannot be read. */
gz_status gz_tb_read_pickle(const char *path, unsigned char **out, size_t *len);

/* Feed a torch.save ZIP file's identity into the XXH3-128 state h: its size (u64, host byte
 * order) then its data.pkl bytes, the checkpoint's header. Two copies of a checkpoint feed the
 * same bytes wherever they lie; the tensor data is not read. This is the .bin part of
 * gz_model_fingerprint: changing what is fed changes every stored fingerprint. Errors as
 * gz_tb_read_pickle; nothing is fed on error. */
struct XXH3_state_s; /* XXH3_state_t of <xxhash.h> */
gz_status gz_tb_fingerprint(const char *path, struct XXH3_state_s *h);

#endif
