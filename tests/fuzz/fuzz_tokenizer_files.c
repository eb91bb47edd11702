/* fuzz_tokenizer_files.c - libFuzzer target: loading tokenizer files (tokenizer.c, bpe.c).
 *
 * The input is split at "\n@@\n" into up to five files of one model folder: the vocabulary
 * (vocab.txt for WordPiece, vocab.json for BPE), merges.txt, tokenizer_config.json,
 * special_tokens_map.json and tokenizer.json (written only when the vocabulary part is empty,
 * since gaze reads tokenizer.json only without a vocabulary file). The first byte picks the
 * family. A tokenizer that loads then encodes a few texts, truncated and not.
 *
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt); run it with
 *   scripts/fuzz.sh fuzz_tokenizer_files 60 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text_encoder/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64]; /* one folder for the fuzzer process, its files rewritten per input */

static void put(const char *name, const uint8_t *p, size_t n, int present);

/* The folder goes when the process exits normally (libFuzzer's end, or a replay run). */
static void remove_dir(void) {
    static const char *const names[] = {"vocab.txt",
                                        "vocab.json",
                                        "merges.txt",
                                        "tokenizer_config.json",
                                        "special_tokens_map.json",
                                        "tokenizer.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        put(names[i], NULL, 0, 0);
    rmdir(dir);
}

static void put(const char *name, const uint8_t *p, size_t n, int present) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    if (!present) return;
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(p, 1, n, f) != n) abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/gaze-fuzz-tok-XXXXXX");
        if (!mkdtemp(dir)) abort();
        atexit(remove_dir);
    }
    if (size < 1) return 0;
    static const gz_family fams[] = {GZ_FAMILY_BLIP, GZ_FAMILY_CLIP, GZ_FAMILY_CHINESE_CLIP};
    gz_family fam = fams[data[0] % 3];
    int fast = (data[0] / 3) & 1;
    const uint8_t *p = data + 1, *end = data + size;
    const uint8_t *part[5] = {0};
    size_t len[5] = {0};
    int n = 0;
    while (n < 5) {
        const uint8_t *sep = NULL;
        for (const uint8_t *q = p; q + 4 <= end; q++)
            if (memcmp(q, "\n@@\n", 4) == 0) {
                sep = q;
                break;
            }
        part[n] = p;
        len[n] = (size_t)((sep ? sep : end) - p);
        n++;
        if (!sep) break;
        p = sep + 4;
    }
    int bpe = fam == GZ_FAMILY_CLIP;
    put("vocab.txt", part[0], len[0], !bpe && len[0] > 0);
    put("vocab.json", part[0], len[0], bpe && len[0] > 0);
    put("merges.txt", part[1], len[1], n > 1);
    put("tokenizer_config.json", part[2], len[2], n > 2);
    put("special_tokens_map.json", part[3], len[3], n > 3);
    put("tokenizer.json", part[4], len[4], n > 4 && len[0] == 0);
    gz_tokenizer_params prm = gz_tokenizer_default_params();
    prm.clip_fast = fast;
    gz_tokenizer *t = NULL;
    if (gz_tokenizer_load(dir, fam, 64, &prm, &t) != GZ_OK) return 0;
    static const char *const texts[] = {"", "a photo of a cat", "[CLS] Hello, WORLD! [SEP]",
                                        "<|startoftext|>caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 'll",
                                        "\xff\xfe\x00x"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL;
        int k = 0;
        if (gz_tokenizer_encode(t, texts[i], 0, &ids, &k) == GZ_OK) {
            for (int j = 0; j < k; j++)
                (void)gz_tokenizer_id_to_token(t, ids[j]);
            free(ids);
        }
        if (gz_tokenizer_encode(t, texts[i], gz_tokenizer_max_length(t), &ids, &k) == GZ_OK) {
            if (k > gz_tokenizer_max_length(t)) abort();
            free(ids);
        }
    }
    gz_token_batch b;
    if (gz_tokenizer_encode_batch(t, texts, 5, &b) == GZ_OK) gz_token_batch_free(&b);
    gz_tokenizer_free(t);
    return 0;
}
