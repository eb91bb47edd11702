/* safetensors.h - read-only access to Hugging Face safetensors checkpoints.
 *
 * Files are memory-mapped. The JSON header is parsed with jansson and validated in full
 * before any tensor is touched: header length within the file and below GZ_ST_MAX_HEADER,
 * known dtype, shape product × dtype size == byte length, offsets inside the data area,
 * no two tensors overlapping. F32 tensors are used in place from the mapping; F16/BF16
 * tensors are converted to F32 once, on first request, into memory the file handle owns.
 * A checkpoint may be one file or sharded (model.safetensors.index.json). PyTorch torch.save
 * checkpoints (pytorch_model.bin, sharded pytorch_model.bin.index.json) are served through the
 * same API by core/torchbin.c: F32 in place, F16/BF16 converted once, integers copied.
 * Limits: at most GZ_ST_MAX_DIMS dimensions; header at most GZ_ST_MAX_HEADER bytes. */
#ifndef GZ_CORE_SAFETENSORS_H
#define GZ_CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define GZ_ST_MAX_DIMS 8
#define GZ_ST_MAX_HEADER (100u * 1024u * 1024u)

typedef enum {
    GZ_DT_F32 = 0,
    GZ_DT_F16,
    GZ_DT_BF16,
    GZ_DT_F64,
    GZ_DT_I64,
    GZ_DT_I32,
    GZ_DT_I16,
    GZ_DT_I8,
    GZ_DT_U8,
    GZ_DT_BOOL
} gz_dtype;

typedef struct {
    const char *name;
    gz_dtype dtype;
    int ndim;
    int64_t shape[GZ_ST_MAX_DIMS];
    size_t numel;
    const void *data; /* raw bytes in the mapping (little-endian); may be unaligned for I64 */
    size_t nbytes;
} gz_st_tensor;

typedef struct gz_st_file gz_st_file; /* one file, or a set of shards behind one handle */

/* Open one .safetensors file or torch.save ZIP checkpoint (detected by its "PK" magic), or a
 * sharded checkpoint of either kind when path ends in ".index.json".
 * GZ_EINVAL for a malformed file (message names the file, the tensor and the reason),
 * GZ_EIO if it cannot be read. *out is NULL on error. */
gz_status gz_st_open(const char *path, gz_st_file **out);
/* Open the weights of a model directory: model.safetensors, else model.safetensors.index.json,
 * else pytorch_model.bin, else pytorch_model.bin.index.json. */
gz_status gz_st_open_dir(const char *dir, gz_st_file **out);
void gz_st_close(gz_st_file *f);

size_t gz_st_count(const gz_st_file *f);
const gz_st_tensor *gz_st_at(const gz_st_file *f, size_t i);
/* NULL if absent. Like transformers, "<x>.weight" / "<x>.bias" fall back to the older LayerNorm
 * names "<x>.gamma" / "<x>.beta" when only those exist. */
const gz_st_tensor *gz_st_find(const gz_st_file *f, const char *name);
/* Total bytes of all files; total number of elements; dtype mix as "F32", "F16+F32", ... */
size_t gz_st_file_bytes(const gz_st_file *f);
size_t gz_st_total_params(const gz_st_file *f);
/* Dtypes present, sorted and joined with '+': "F32", "F16+F32", ... (owned by f). */
const char *gz_st_dtypes(const gz_st_file *f);
const char *gz_dtype_name(gz_dtype t);
size_t gz_dtype_size(gz_dtype t);

/* Get a float tensor as F32 (converted once for F16/BF16/F64; owned by f). If shape is not
 * NULL it must match exactly (ndim dims), else GZ_EINVAL naming the tensor and both shapes.
 * GZ_ENOTFOUND if absent (message names the tensor and the file). */
gz_status gz_st_f32(gz_st_file *f, const char *name, int ndim, const int64_t *shape,
                    const float **out);
/* Like gz_st_f32 but for a name built with printf formatting, e.g. "layer.%d.attn.q.weight". */
gz_status gz_st_f32_fmt(gz_st_file *f, const float **out, int ndim, const int64_t *shape,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Copy an integer tensor (I64/I32/U8/...) into a new int64 array (caller frees). */
gz_status gz_st_i64_copy(gz_st_file *f, const char *name, int64_t **out, size_t *n);

/* Hand back to the kernel the pages of [p, p + bytes) (whole pages inside it) when the range
 * lies in one of f's file mappings: an F32 tensor used in place that nothing will read again
 * soon, e.g. a weight whose bf16 copy (core/linear.h) replaces it. The process's resident
 * memory no longer counts them, also when another process maps the same file, and the page
 * cache keeps them; a later read maps them again from the file (the mappings are read-only,
 * so nothing is lost). A range f does not map (F16/BF16 tensors converted into memory f owns,
 * any other memory) is left alone. Returns the bytes handed back (0 when none). */
size_t gz_st_release(const gz_st_file *f, const void *p, size_t bytes);

/* Feed a checkpoint's identity into the XXH3-128 state h without reading its tensor data:
 * for a .safetensors file its size (u64, host byte order), 8-byte header length and JSON
 * header; for a torch.save ZIP (detected by content) what gz_tb_fingerprint feeds; for a
 * sharded checkpoint (path ends in ".index.json") each shard named in its weight_map, in
 * sorted order, each once (the index file itself is not fed). This is the weights part of
 * gz_model_fingerprint, whose values databases store: what is fed must never change.
 * GZ_EIO/GZ_ENOTFOUND if a file cannot be read, GZ_EINVAL for a bad header length or index;
 * h may have been partly fed on error. */
struct XXH3_state_s; /* XXH3_state_t of <xxhash.h> */
gz_status gz_st_fingerprint(const char *path, struct XXH3_state_s *h);
/* Feed h the weights' content: for each file (the file, or each shard of an index in the order
 * above) the 16-byte XXH3-128 of all its bytes (gz_content_hash, cached per file version). Two
 * checkpoints with equal shapes and different values differ here, not in gz_st_fingerprint.
 * Errors as gz_st_fingerprint. */
gz_status gz_st_fingerprint_content(const char *path, struct XXH3_state_s *h);

#endif
