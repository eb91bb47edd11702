/* fuzz_records.c - libFuzzer target: the record reader (engine/records.c) on arbitrary bytes
 * as JSONL, CSV, TSV and sniffed (AUTO): every record, every field by name, the metadata JSON.
 *
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt); run it with
 *   scripts/fuzz.sh fuzz_records 60 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/engine_internal.h"
#include "gaze.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz.records", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    static const gz_rec_format fmts[] = {GZ_REC_AUTO, GZ_REC_JSONL, GZ_REC_CSV, GZ_REC_TSV};
    static const char *const fields[] = {"id", "text", "title", "image", "description", ""};
    for (int f = 0; f < 4; f++) {
        gz_records *r = NULL;
        if (gz_records_open(path, fmts[f], &r) != GZ_OK) continue;
        long line = 0, prev = 0;
        int rc, rows = 0;
        while ((rc = gz_records_next(r, &line)) != 0) {
            if (++rows > 1000000) abort(); /* more records than bytes: the reader loops */
            if (line < prev) abort();      /* line numbers never go back */
            prev = line;
            if (rc < 0) {
                if (!gz_records_error(r)[0]) abort(); /* a malformed row says why */
                continue;
            }
            for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
                const char *v = gz_records_get(r, fields[k]);
                if (v) (void)strlen(v);
            }
            free(gz_records_meta_json(r));
        }
        gz_records_close(r);
    }
    close(fd);
    return 0;
}
