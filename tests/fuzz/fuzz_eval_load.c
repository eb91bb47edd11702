/* fuzz_eval_load.c - libFuzzer target for evaluation-set parsing (gz_eval_load: JSONL, LAVIS
 * JSON list, Karpathy dataset_*.json) and LAVIS caption pre-processing (gz_eval_blip_caption).
 *
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt). To build and
 * run it for 60 s on its seed corpus (scripts/fuzz.sh lists or makes the seeds):
 *   scripts/fuzz.sh fuzz_eval_load 60
 * The input is written to an anonymous memory file and loaded in every caption mode, with and
 * without a language; each caption loaded then goes through the pre-processing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gaze.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz.jsonl", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    const char *langs[] = {NULL, "zh_TW"};
    for (int mode = 0; mode < 4; mode++) {
        gz_eval_load_opts o = gz_eval_default_load_opts();
        o.captions = (mode & 1) ? GZ_EVAL_CAPTIONS_FIRST : GZ_EVAL_CAPTIONS_ALL;
        o.lang = langs[mode >> 1];
        gz_eval_set *s = NULL;
        if (gz_eval_load(path, &o, &s) != 0) continue;
        for (int t = 0; t < s->n_texts; t++) {
            char *c = gz_eval_blip_caption(s->texts[t], 1 + t % 50);
            free(c);
        }
        gz_eval_set_free(s);
    }
    close(fd);
    /* the bytes themselves as a caption (NUL-terminated copy) */
    char *str = malloc(size + 1);
    if (str) {
        memcpy(str, data, size);
        str[size] = '\0';
        free(gz_eval_blip_caption(str, 3));
        free(str);
    }
    return 0;
}
