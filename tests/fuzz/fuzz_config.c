/* fuzz_config.c - libFuzzer target for config.json and preprocessor_config.json parsing.
 *
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt). To build and
 * run it for 60 s on its seed corpus (scripts/fuzz.sh lists or makes the seeds):
 *   scripts/fuzz.sh fuzz_config 60
 * The input is written to an anonymous memory file and parsed through /proc/self/fd as a model
 * config and as a preprocessor config of each family. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz.json", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    gz_model_config c;
    (void)gz_config_load(path, &c);
    gz_preproc_config p;
    for (int fam = GZ_FAMILY_BLIP; fam <= GZ_FAMILY_CHINESE_CLIP; fam++)
        (void)gz_preproc_config_load(path, (gz_family)fam, &p);
    close(fd);
    return 0;
}
