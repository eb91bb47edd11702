/* scratch.h - memory for a forward's activations: a fresh mapping per call, or one arena that
 * a model keeps between its calls.
 *
 * A ViT-224 image's forward works in 6 MB of scratch, a batch of 8 at 384 px in 141 MB. Fresh
 * pages are faulted in and zeroed by the kernel on every call: 5-10% of a single-image ViT-224
 * forward here (bench_encoders --only vit224b1, against --fresh-scratch). A gz_scratch keeps the
 * largest scratch it has handed out, so a model's later forwards find their pages resident;
 * its towers run one after another, so one arena serves them all and holds no more than the
 * largest of them needed. */
#ifndef GZ_CORE_SCRATCH_H
#define GZ_CORE_SCRATCH_H

#include <stddef.h>

/* Scratch for a forward's activations: n floats, 2 MiB-aligned and advised as transparent huge
 * pages from 2 MiB up (a ViT batch takes ~50 MB, and faulting that in 4 KiB pages on every
 * call cost ~10% of the forward), the whole 2 MiB pages only: the tail past the last one stays
 * on 4 KiB pages, so no partly used huge page is resident. From 2 MiB up it is always a
 * mapping of its own, so free() hands every page back (never kept in malloc's heap). NULL when
 * out of memory (no message). Free with free(). */
float *gz_scratch_floats(size_t n);

/* One kept buffer, handed to one caller at a time. Thread-safe: a take while the buffer is out
 * (two threads forwarding through one model) gets a fresh mapping instead. */
typedef struct gz_scratch gz_scratch;

/* What a model's arena keeps: a ViT-384 image (17.7 MB), a ViT-224 batch of 4, a batch of 32
 * texts (~20 MB). A batch of 8 at 384 px (141 MB) is mapped fresh: kept, it stayed resident
 * through the text and ITM forwards after it and raised the peak of BLIP-384 fp32 by 115 MB,
 * over the 890 MB cap (bench_encoders' RSS line), and its page faults cost under 1% of such a
 * forward. */
#define GZ_SCRATCH_KEEP_BYTES ((size_t)32 << 20)

/* An empty arena that keeps buffers of up to keep_bytes (0 = any size); NULL when out of
 * memory. */
gz_scratch *gz_scratch_new(size_t keep_bytes);
/* Unmaps the kept buffer. NULL is a no-op. The buffer must have been given back. */
void gz_scratch_free(gz_scratch *s);

/* n floats, contents undefined: the kept buffer when it is free and n floats fit within the
 * arena's keep_bytes (grown to n floats first when smaller: the old one is unmapped), else a
 * fresh gz_scratch_floats(n); a take over keep_bytes unmaps the kept buffer first (when it is
 * not out). s may be NULL (always fresh). NULL when out of memory. */
float *gz_scratch_take(gz_scratch *s, size_t n);
/* Ends a take: the kept buffer is marked free, anything else is freed. p may be NULL. */
void gz_scratch_give(gz_scratch *s, float *p);
/* Bytes the arena now keeps (0 for NULL): for tests and memory reports. */
size_t gz_scratch_kept_bytes(const gz_scratch *s);

#endif
