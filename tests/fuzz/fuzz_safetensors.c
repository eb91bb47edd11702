/* fuzz_safetensors.c - libFuzzer target for the safetensors header parser and shard loader.
 *
 * Not built by default. Build and run from the repository root:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -I. \
 *     $(pkg-config --cflags openblas jansson) tests/fuzz/fuzz_safetensors.c core/safetensors.c \
 *     core/kernels.c core/threads.c core/torchbin.c core/error.c \
 *     $(pkg-config --libs openblas jansson) -fopenmp -lm -lpthread \
 *     -o fuzz_safetensors
 *   ./fuzz_safetensors -max_len=4096 tests/data/fixtures/clip   (seed: any .safetensors files)
 * The input is written to an anonymous memory file and opened through /proc/self/fd, so the
 * real mmap path is exercised; every tensor found is then read as F32 or copied as integers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    gz_st_file *f = NULL;
    if (gz_st_open(path, &f) == GZ_OK) {
        for (size_t i = 0; i < gz_st_count(f); i++) {
            const gz_st_tensor *t = gz_st_at(f, i);
            const float *p = NULL;
            if (gz_st_f32(f, t->name, t->ndim, t->shape, &p) == GZ_OK && t->numel)
                (void)*(volatile const float *)&p[t->numel - 1];
            int64_t *v = NULL;
            size_t n = 0;
            if (gz_st_i64_copy(f, t->name, &v, &n) == GZ_OK) free(v);
        }
        (void)gz_st_total_params(f);
        gz_st_close(f);
    }
    close(fd);
    return 0;
}
