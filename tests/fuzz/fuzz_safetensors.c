/* fuzz_safetensors.c - libFuzzer target for the safetensors header parser and shard loader.
 *
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt). To build and
 * run it for 60 s on its seed corpus (scripts/fuzz.sh lists or makes the seeds):
 *   scripts/fuzz.sh fuzz_safetensors 60
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
