/* test_core_st_release.c - gz_st_release hands a mapped F32 tensor's pages back to the kernel
 * (the process's resident file pages drop) without losing a value, and leaves alone what the
 * file does not map (a converted F16 tensor, other memory); a bf16 pack with a source file
 * (gz_packw_pack_all) releases its weights the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels.h"
#include "core/linear.h"
#include "core/safetensors.h"
#include "testutil.h"

static int checks;

#define BIG_N (1u << 20) /* F32 elements of the big tensor: 4 MiB, 1024 pages */
#define HALF_N 4096      /* F16 elements */

/* This process's resident file-backed memory (RssFile of /proc/self/status) in KiB, -1 if
 * unknown. */
static long rss_file_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssFile: %ld kB", &v) == 1) break;
    fclose(f);
    return v;
}

static float big_value(size_t i) { return (float)(i % 1000) * 0.25f - 17.0f; }

/* A safetensors file: "big" F32 (BIG_N), "half" F16 (HALF_N, value i % 7). */
static const char *write_file(void) {
    static char path[512];
    snprintf(path, sizeof path, "%s/w.safetensors", gz_test_tmpdir("core_st_release"));
    char hdr[256];
    size_t big_bytes = (size_t)BIG_N * 4, half_bytes = (size_t)HALF_N * 2;
    int n = snprintf(hdr, sizeof hdr,
                     "{\"big\":{\"dtype\":\"F32\",\"shape\":[%u],\"data_offsets\":[0,%zu]},"
                     "\"half\":{\"dtype\":\"F16\",\"shape\":[%u],\"data_offsets\":[%zu,%zu]}}",
                     BIG_N, big_bytes, HALF_N, big_bytes, big_bytes + half_bytes);
    while (n % 8)
        hdr[n++] = ' '; /* keep the data area 8-byte aligned */
    FILE *f = fopen(path, "wb");
    if (!f) exit(2);
    unsigned long long len = (unsigned long long)n;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(len >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (size_t i = 0; i < BIG_N; i++) {
        float v = big_value(i);
        fwrite(&v, 4, 1, f);
    }
    static const uint16_t halves[7] = {0x0000, 0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600};
    for (size_t i = 0; i < HALF_N; i++)
        fwrite(&halves[i % 7], 2, 1, f);
    if (fclose(f) != 0) exit(2);
    return path;
}

/* Touch every page of big (sum it) and check every value. */
static int big_intact(const float *big) {
    for (size_t i = 0; i < BIG_N; i++)
        if (big[i] != big_value(i)) {
            fprintf(stderr, "big[%zu] = %g, want %g\n", i, big[i], big_value(i));
            return 0;
        }
    return 1;
}

static int half_intact(const float *half) {
    for (size_t i = 0; i < HALF_N; i++)
        if (half[i] != (float)(i % 7)) {
            fprintf(stderr, "half[%zu] = %g, want %zu\n", i, half[i], i % 7);
            return 0;
        }
    return 1;
}

int main(void) {
    const char *path = write_file();
    gz_st_file *f = NULL;
    CHECK_OK(gz_st_open(path, &f));
    if (!f) return gz_test_finish("core_st_release", 0);
    const float *big = NULL, *half = NULL;
    int64_t big_shape[1] = {BIG_N}, half_shape[1] = {HALF_N};
    CHECK_OK(gz_st_f32(f, "big", 1, big_shape, &big));
    CHECK_OK(gz_st_f32(f, "half", 1, half_shape, &half));
    if (!big || !half) return gz_test_finish("core_st_release", 0);

    /* the mapped tensor: released, resident file pages drop, every value reads back */
    checks += 4;
    CHECK(big_intact(big));
    long before = rss_file_kib();
    size_t released = gz_st_release(f, big, (size_t)BIG_N * 4);
    long after = rss_file_kib();
    printf("  released %zu bytes; RssFile %ld -> %ld KiB\n", released, before, after);
    CHECK(released >= (size_t)BIG_N * 4 - 8192 && released <= (size_t)BIG_N * 4);
    /* all of it was resident (just read) and now none of it is: at least 3 of the 4 MiB go */
    CHECK(before >= 0 && after >= 0 && before - after >= 3 * 1024);
    CHECK(big_intact(big));

    /* what the file does not map is left alone: the converted F16 tensor, a heap buffer, a
     * range running past the mapping */
    float *heap = malloc((size_t)BIG_N * 4);
    if (!heap) return 2;
    for (size_t i = 0; i < BIG_N; i++)
        heap[i] = big_value(i);
    checks += 6;
    CHECK(gz_st_release(f, half, (size_t)HALF_N * 4) == 0 && half_intact(half));
    CHECK(gz_st_release(f, heap, (size_t)BIG_N * 4) == 0 && big_intact(heap));
    CHECK(gz_st_release(f, big, (size_t)1 << 40) == 0);
    CHECK(gz_st_release(NULL, big, 4096) == 0 && gz_st_release(f, big, 0) == 0);
    CHECK(gz_st_release(f, big, 100) == 0); /* no whole page inside */

    /* a bf16 pack with the file as source: the copy is the same, the source goes back */
    gz_compute cx = gz_compute_make(2, 1);
    const int out = 1024, in = BIG_N / 1024;
    gz_packw with = {0}, without = {0};
    gz_packw_job j1 = {big, out, in, &with, f}, j2 = {heap, out, in, &without, NULL};
    CHECK(big_intact(big)); /* resident again */
    before = rss_file_kib();
    CHECK_OK(gz_packw_pack_all(&cx, NULL, GZ_PACK_BF16, &j1, 1));
    after = rss_file_kib();
    CHECK_OK(gz_packw_pack_all(&cx, NULL, GZ_PACK_BF16, &j2, 1));
    printf("  bf16 pack with source: RssFile %ld -> %ld KiB\n", before, after);
    checks += 3;
    CHECK(before - after >= 3 * 1024);
    CHECK(with.bf16 && without.bf16 &&
          !memcmp(with.bf16, without.bf16, (size_t)(out / 16) * (in / 2) * 32 * 2));
    CHECK(big_intact(big) && big_intact(heap));

    /* the same for the packed fp32 form, made beside the bf16 one */
    before = rss_file_kib();
    CHECK_OK(gz_packw_pack_all(&cx, NULL, GZ_PACK_F32, &j1, 1));
    after = rss_file_kib();
    CHECK_OK(gz_packw_pack_all(&cx, NULL, GZ_PACK_F32, &j2, 1));
    printf("  fp32 pack with source: RssFile %ld -> %ld KiB\n", before, after);
    checks += 3;
    CHECK(before - after >= 3 * 1024);
    CHECK(with.f32 && without.f32 && with.bf16 &&
          !memcmp(with.f32, without.f32, (size_t)out * in * sizeof(float)));
    CHECK(big_intact(big) && big_intact(heap));
    gz_packw_free(&with);
    gz_packw_free(&without);
    free(heap);
    gz_st_close(f);
    return gz_test_finish("core_st_release", checks);
}
