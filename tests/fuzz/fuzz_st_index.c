/* fuzz_st_index.c - libFuzzer target: sharded checkpoints, *.safetensors.index.json
 * (core/safetensors.c open_index): the weight_map, shard name checks and de-duplication, and
 * the cross-check of every listed tensor against the shard it names.
 *
 * The input is the index file, written next to two small valid shards (a.safetensors with
 * tensors "x" and "y", b.safetensors with "z") in one folder per fuzzer process.
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt); run it with
 *   scripts/fuzz.sh fuzz_st_index 60 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

/* The folder goes when the process exits normally (libFuzzer's end, or a replay run). */
static void remove_dir(void) {
    static const char *const names[] = {"a.safetensors", "b.safetensors",
                                        "model.safetensors.index.json"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* A safetensors file of F32 tensors of 2 elements each, named by names. */
static void write_shard(const char *name, const char *const *names, int n) {
    char header[256] = "{", path[128];
    for (int i = 0; i < n; i++)
        snprintf(header + strlen(header), sizeof header - strlen(header),
                 "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%d,%d]}",
                 i ? "," : "", names[i], 8 * i, 8 * i + 8);
    strcat(header, "}");
    while (strlen(header) % 8)
        strcat(header, " ");
    uint64_t hl = strlen(header);
    float v[2] = {1.0f, -2.0f};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(&hl, 8, 1, f);
    fwrite(header, 1, hl, f);
    for (int i = 0; i < n; i++)
        fwrite(v, sizeof v, 1, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/gaze-fuzz-index-XXXXXX");
        if (!mkdtemp(dir)) abort();
        atexit(remove_dir);
        write_shard("a.safetensors", (const char *[]){"x", "y"}, 2);
        write_shard("b.safetensors", (const char *[]){"z"}, 1);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    gz_st_file *st = NULL;
    if (gz_st_open(path, &st) != GZ_OK) return 0;
    for (size_t i = 0; i < gz_st_count(st); i++) {
        const gz_st_tensor *t = gz_st_at(st, i);
        if (!t || !gz_st_find(st, t->name)) abort();
    }
    gz_st_close(st);
    return 0;
}
