/* fuzz_vindex_load.c - libFuzzer target: the .faiss cache loader as gaze validates it
 * (store/vindex.c gz_vindex_load: header, id table, the walk of the FAISS part, then FAISS's
 * own reader).
 *
 * gaze's header carries checksums that random bytes never match (they catch accidents; a
 * hostile file simply recomputes them), so the target wraps the input in a valid header: the
 * first byte picks n (bits 0-2: 0..7 positions) and the factory (bits 3-5: Flat, HNSW8,
 * IVF2,Flat, IVF2,PQ2, PQ2; Flat past them), the next 8 * n bytes are the id table and the rest
 * the FAISS part, all of dimension 4.
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt); run it with
 *   scripts/fuzz.sh fuzz_vindex_load 60 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/vindex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[96], dir[64];

/* The folder goes when the process exits normally (libFuzzer's end, or a replay run). */
static void remove_dir(void) {
    unlink(path);
    rmdir(dir);
}

static void put(uint8_t *h, size_t *at, const void *p, size_t n) {
    memcpy(h + *at, p, n);
    *at += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) {
        snprintf(dir, sizeof dir, "/tmp/gaze-fuzz-vindex-XXXXXX");
        if (!mkdtemp(dir)) abort();
        snprintf(path, sizeof path, "%s/db.m1.faiss", dir);
        atexit(remove_dir);
    }
    if (size < 1) return 0;
    int64_t n = data[0] & 7, n_dead = 0, dim = 4, model_id = 1, gen = 1;
    static const char *factories[] = {"Flat", "HNSW8", "IVF2,Flat", "IVF2,PQ2", "PQ2"};
    int pick = (data[0] >> 3) & 7;
    const char *factory = factories[pick < 5 ? pick : 0];
    data++;
    size--;
    if (size < (size_t)n * 8) return 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t id;
        memcpy(&id, data + 8 * i, 8);
        if (id <= 0) n_dead++;
    }
    uint8_t h[GZ_VX_HEADER_BYTES] = {0};
    size_t at = 0;
    uint32_t version = 1, kind = 0;
    char fac[GZ_VX_FACTORY_MAX] = {0};
    snprintf(fac, sizeof fac, "%s", factory);
    uint64_t payload_bytes = size, payload_hash = XXH3_64bits(data, size);
    put(h, &at, "GZVIDX01", 8);
    put(h, &at, &version, 4);
    put(h, &at, &kind, 4);
    put(h, &at, &model_id, 8);
    put(h, &at, &gen, 8);
    put(h, &at, &n, 8);
    put(h, &at, &n_dead, 8);
    put(h, &at, &dim, 8);
    put(h, &at, fac, sizeof fac);
    put(h, &at, fac, sizeof fac);
    put(h, &at, &payload_bytes, 8);
    put(h, &at, &payload_hash, 8);
    uint64_t header_hash = XXH3_64bits(h, at);
    put(h, &at, &header_hash, 8);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (fwrite(h, 1, at, f) != at || (size && fwrite(data, 1, size, f) != size)) abort();
    fclose(f);
    gz_vindex *v = NULL;
    if (gz_vindex_load(path, model_id, 0, (int)dim, factory, gen, &v) != GZ_OK) return 0;
    float q[4] = {1, 0, 0, 0}, scores[4];
    int64_t ids[4];
    int got = 0;
    if (gz_vindex_search(v, q, 4, 16, 1, ids, scores, &got) == GZ_OK && (got < 0 || got > 4))
        abort();
    gz_vindex_free(v);
    return 0;
}
