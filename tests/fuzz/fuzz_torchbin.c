/* fuzz_torchbin.c - libFuzzer target for the torch.save reader (ZIP directory + unpickler).
 *
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt). To build and
 * run it for 60 s on its seed corpus (scripts/fuzz.sh lists or makes the seeds):
 *   scripts/fuzz.sh fuzz_torchbin 60
 * The input is parsed in place (libFuzzer's exact-size buffer, so ASan sees any read past it)
 * and every accepted tensor's first and last byte is read; then it goes through gz_st_open via
 * an anonymous memory file so the safetensors integration (mmap, lookup, F16/BF16 conversion,
 * gamma/beta fallback) runs too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/safetensors.h"
#include "core/torchbin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gz_tb_tensor *t = NULL;
    size_t n = 0;
    if (gz_tb_parse(data, size, "fuzz.bin", &t, &n) == GZ_OK) {
        for (size_t i = 0; i < n; i++) {
            if (t[i].offset > size || t[i].nbytes > size - t[i].offset) abort();
            if (t[i].nbytes) {
                (void)*(volatile const uint8_t *)&data[t[i].offset];
                (void)*(volatile const uint8_t *)&data[t[i].offset + t[i].nbytes - 1];
            }
        }
        gz_tb_free(t, n);
    }
    const void *pkl = NULL;
    size_t plen = 0;
    if (gz_tb_pickle(data, size, "fuzz.bin", &pkl, &plen) == GZ_OK && plen)
        (void)*(volatile const uint8_t *)((const uint8_t *)pkl + plen - 1);

    int fd = memfd_create("fuzz.bin", MFD_CLOEXEC);
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
            const gz_st_tensor *st = gz_st_at(f, i);
            const float *p = NULL;
            if (gz_st_f32(f, st->name, st->ndim, st->shape, &p) == GZ_OK && st->numel)
                (void)*(volatile const float *)&p[st->numel - 1];
            int64_t *v = NULL;
            size_t nv = 0;
            if (gz_st_i64_copy(f, st->name, &v, &nv) == GZ_OK) free(v);
        }
        (void)gz_st_find(f, "ln.weight");
        gz_st_close(f);
    }
    close(fd);
    return 0;
}
