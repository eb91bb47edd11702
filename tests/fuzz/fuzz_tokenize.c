/* fuzz_tokenize.c - libFuzzer target: arbitrary bytes through every tokenizer of the fixtures
 * (BLIP WordPiece, CLIP BPE slow and fast clean-up, Chinese-CLIP WordPiece), truncated and not;
 * and the O(n log n) BPE of a word checked against the plain transcription of openai's bpe().
 *
 * Built with clang only under -DGAZE_FUZZ=ON (see tests/fuzz/CMakeLists.txt); run it with
 *   scripts/fuzz.sh fuzz_tokenize 60
 * The tokenizers are loaded once from tests/data/fixtures (GZ_FUZZ_DATA, set by CMake). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_encoder/tok_internal.h"
#include "text_encoder/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { N_TOK = 4 };
static gz_tokenizer *toks[N_TOK]; /* fuzzer-process lifetime: loaded once, never freed */

static gz_tokenizer *load(const char *dir, gz_family fam, int max_pos, int clip_fast) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/%s", GZ_FUZZ_DATA, dir);
    gz_tokenizer_params p = gz_tokenizer_default_params();
    p.clip_fast = clip_fast;
    gz_tokenizer *t = NULL;
    if (gz_tokenizer_load(path, fam, max_pos, &p, &t) != GZ_OK) {
        fprintf(stderr, "fuzz_tokenize: cannot load %s\n", path);
        abort();
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!toks[0]) {
        toks[0] = load("blip_itm", GZ_FAMILY_BLIP, 512, 0);
        toks[1] = load("clip", GZ_FAMILY_CLIP, 77, 0);
        toks[2] = load("clip", GZ_FAMILY_CLIP, 77, 1);
        toks[3] = load("chinese_clip", GZ_FAMILY_CHINESE_CLIP, 512, 0);
    }
    const char *text = (const char *)data;
    for (int k = 0; k < N_TOK; k++) {
        int32_t *all = NULL, *cut = NULL;
        int n_all = 0, n_cut = 0;
        int ml = gz_tokenizer_max_length(toks[k]);
        gz_status a = gz_tokenizer_encode_n(toks[k], text, size, 0, &all, &n_all);
        gz_status b = gz_tokenizer_encode_n(toks[k], text, size, ml, &cut, &n_cut);
        if (a != GZ_OK || b != GZ_OK) abort(); /* any bytes are text: only memory can fail */
        /* truncation keeps the first ml-2 ids of the untruncated body and the closing token
         * (the early stop in tokenizing must not change them) */
        int body = n_all - 2 < ml - 2 ? n_all - 2 : ml - 2;
        if (n_cut != body + 2 || memcmp(cut, all, (size_t)(body + 1) * sizeof *cut) != 0 ||
            cut[n_cut - 1] != all[n_all - 1])
            abort();
        for (int i = 0; i < n_all; i++)
            if (all[i] < 0 || all[i] >= gz_tokenizer_vocab_size(toks[k]) ||
                !gz_tokenizer_id_to_token(toks[k], all[i]))
                abort();
        free(all);
        free(cut);
    }
    /* the heap BPE equals the plain one on any bytes as one word (plain is O(n^2): short only) */
    if (size > 0 && size <= 2048) {
        tk_cps plain = {0}, heap = {0};
        if (gz_tok_bpe_word(toks[1], text, size, 1, &plain) ||
            gz_tok_bpe_word(toks[1], text, size, 0, &heap))
            abort();
        if (plain.n != heap.n || memcmp(plain.v, heap.v, plain.n * sizeof *plain.v) != 0) abort();
        gz_tok_cps_free(&plain);
        gz_tok_cps_free(&heap);
    }
    return 0;
}
