/* fuzz_factory.c - libFuzzer target: FAISS index factory strings as gaze validates and builds
 * them (store/vindex.c gz_vindex_check_factory, gz_vindex_create). The string comes from a
 * user's --index-type or from a database's stored parameters; unbounded parameters
 * (HNSW100000000) made FAISS build absurd graphs instead of failing.
 *
 * The input, up to its first NUL, is the factory string for vectors of dimension 8. It is
 * checked, then an index is created from it (FAISS's own parser sees what the check accepts;
 * a refused or untrainable string falls back to Flat, as gaze does), trained on a few hundred
 * fixed vectors when its minimum is that small, filled with three vectors and searched.
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt); run it with
 *   scripts/fuzz.sh fuzz_factory 60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/vindex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { DIM = 8, MAX_TRAIN = 512 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char factory[2 * GZ_VX_FACTORY_MAX]; /* longer than the limit, so the length check runs */
    size_t n = size < sizeof factory - 1 ? size : sizeof factory - 1;
    memcpy(factory, data, n);
    factory[n] = '\0';
    char why[256];
    int accepted = gz_vindex_check_factory(factory, DIM, why, sizeof why);
    if (!accepted && !why[0]) abort(); /* a refusal says why */
    static float train[MAX_TRAIN * DIM];
    if (train[0] == 0)
        for (size_t i = 0; i < sizeof train / sizeof train[0]; i++)
            train[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    size_t need = accepted ? gz_vindex_min_train(factory) : 0;
    size_t n_train = need && need <= MAX_TRAIN ? need : 0;
    gz_vindex *v = NULL;
    int fell_back = 0;
    if (gz_vindex_create(1, 0, DIM, factory, n_train ? train : NULL, n_train, &fell_back, &v) !=
        GZ_OK)
        return 0;
    if (!accepted && fell_back != 2) abort(); /* a refused string is never built */
    int64_t ids[3] = {11, 12, 13};
    if (gz_vindex_add(v, ids, train, 3) == GZ_OK) {
        int64_t out[4];
        float scores[4];
        int got = 0;
        if (gz_vindex_search(v, train, 4, 16, 2, out, scores, &got) == GZ_OK &&
            (got < 0 || got > 3))
            abort();
    }
    gz_vindex_free(v);
    return 0;
}
