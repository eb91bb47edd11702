/* scratch.c - activation scratch: fresh mappings and the kept arena. */
#include "core/scratch.h"

#include "core/error.h" /* gz_mul_size */

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

/* glibc's ceiling on its dynamic mmap threshold, 4 Mi longs on 64-bit (mallopt(3)). */
#define GZ_MALLOC_MMAP_CEILING ((size_t)4 * 1024 * 1024 * sizeof(long))

float *gz_scratch_floats(size_t n) {
    const size_t huge = (size_t)2 << 20;
    size_t bytes;
    if (!gz_mul_size(n ? n : 1, sizeof(float), &bytes)) return NULL;
    size_t align = bytes >= huge ? huge : 64;
    if (bytes > SIZE_MAX - align) return NULL;
    size_t alloc = (bytes + align - 1) / align * align;
    /* glibc raises its mmap threshold to the size of each mapped chunk freed, up to the ceiling
     * (mallopt(3)): after one 17 MB ViT scratch, every later scratch below that came from the
     * heap, whose freed pages stay resident (a 13 MB text batch's scratch was still there
     * during the ITM that followed). Asked for more than the ceiling, a scratch is always a
     * mapping of its own that free() unmaps; the pages past `bytes` are never touched, so they
     * cost address space only. */
    if (align == huge && alloc < GZ_MALLOC_MMAP_CEILING) alloc = GZ_MALLOC_MMAP_CEILING;
    float *p = aligned_alloc(align, alloc);
#ifdef MADV_HUGEPAGE
    /* A hint (failure is harmless) on the whole huge pages inside the n floats only: a huge page
     * is resident in full from its first touch, so the tail past the last whole one stays on
     * 4 KiB pages (up to 2 MB less per buffer, e.g. an image's 40.6 MB of ITM keys/values). */
    if (p && align == huge) madvise(p, bytes / huge * huge, MADV_HUGEPAGE);
#endif
    return p;
}

struct gz_scratch {
    /* the kept buffer, or NULL; atomic because a give of a fresh buffer compares against it
     * while the thread holding the arena may be replacing it */
    _Atomic(float *) buf;
    size_t cap;       /* its size in floats */
    size_t keep;      /* most floats kept; SIZE_MAX = any */
    atomic_int taken; /* 1 while buf is out */
};

gz_scratch *gz_scratch_new(size_t keep_bytes) {
    gz_scratch *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->keep = keep_bytes ? keep_bytes / sizeof(float) : SIZE_MAX;
    atomic_init(&s->buf, NULL);
    atomic_init(&s->taken, 0);
    return s;
}

void gz_scratch_free(gz_scratch *s) {
    if (!s) return;
    free(atomic_load(&s->buf));
    free(s);
}

float *gz_scratch_take(gz_scratch *s, size_t n) {
    if (!n) n = 1; /* as gz_scratch_floats: a valid pointer for an empty forward */
    if (!s || atomic_exchange(&s->taken, 1)) return gz_scratch_floats(n);
    float *kept = atomic_load(&s->buf);
    if (n > s->keep || s->cap < n) {
        /* Too large to keep (a batch of 8 at 384 px: 141 MB), or grown: the kept buffer goes
         * first (its contents are not needed), so the process never holds both, and the peak
         * stays what fresh mappings gave. */
        atomic_store(&s->buf, NULL); /* before the free: a fresh buffer given back meanwhile
                                      * may sit at the freed address */
        free(kept);
        kept = n > s->keep ? NULL : gz_scratch_floats(n);
        atomic_store(&s->buf, kept);
        s->cap = kept ? n : 0;
        if (!kept) {
            atomic_store(&s->taken, 0);
            return n > s->keep ? gz_scratch_floats(n) : NULL;
        }
    }
    return kept;
}

void gz_scratch_give(gz_scratch *s, float *p) {
    if (s && p && p == atomic_load(&s->buf))
        atomic_store(&s->taken, 0);
    else
        free(p);
}

size_t gz_scratch_kept_bytes(const gz_scratch *s) { return s ? s->cap * sizeof(float) : 0; }
