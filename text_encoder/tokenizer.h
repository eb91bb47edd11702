/* tokenizer.h - Hugging Face-exact text tokenizers: BERT WordPiece (BLIP, Chinese-CLIP) and
 * CLIP byte-level BPE, loaded from a model directory in HF layout.
 *
 * Usage:
 *   gz_tokenizer *t = NULL;
 *   gz_tokenizer_params tp = gz_tokenizer_default_params();
 *   if (gz_tokenizer_load("models/clip", GZ_FAMILY_CLIP, 77, &tp, &t) != GZ_OK) { ...
 * gz_last_error() ... } int32_t *ids = NULL; int n = 0; gz_tokenizer_encode(t, "a photo of a cat",
 * 0, &ids, &n);   // 49406 ... 49407 free(ids); gz_tokenizer_free(t);
 *
 * Semantics mirror transformers 4.40.2's SLOW tokenizers (BertTokenizer, CLIPTokenizer with
 * ftfy); see tests/data/fixtures/README.md "Tokenizers (slow HF)".
 *
 * Known differences from Python (all outside the fixtures' cases):
 *  - CLIP slow mode runs ftfy.fix_text without its mojibake repair (fix_encoding): "cafÃ©"
 *    stays as is (ftfy: "café"); every other default ftfy step is done (ftfy.c).
 *  - Unicode data is utf8proc's (Unicode 15) where Python 3.11 has Unicode 14: characters
 *    new in 15 are letters/symbols here but unassigned (dropped by BERT's clean-up) there.
 *
 * Thread safety: after loading, a gz_tokenizer may be shared by threads for encoding (the BPE
 * merge cache is protected by a mutex). Loading and freeing are not thread-safe. */
#ifndef GZ_TEXT_TOKENIZER_H
#define GZ_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct gz_tokenizer gz_tokenizer;

typedef struct {
    int clip_fast;  /* CLIP only: 1 = HF fast-tokenizer clean-up (NFC + whitespace + lower-case,
                       the fixtures' nfc_whitespace_lower_ids); 0 = slow tokenizer with ftfy
                       clean-up (default) */
    int max_length; /* 0 = model default: tokenizer_config.json model_max_length, capped at
                       max_positions (77 for CLIP) */
} gz_tokenizer_params;

/* Defaults: clip_fast 0, max_length 0. */
gz_tokenizer_params gz_tokenizer_default_params(void);

/* Load from a HF model directory. family picks WordPiece (BLIP, Chinese-CLIP: vocab.txt) or
 * byte-level BPE (CLIP: vocab.json + merges.txt); without those files the vocabulary, merges
 * and added tokens come from tokenizer.json (tokenization rules stay the slow tokenizer's).
 * tokenizer_config.json, special_tokens_map.json and added_tokens.json are read when
 * present. max_positions = the
 * text tower's max_position_embeddings (cap for the max length; <= 0 = no cap). p may be NULL
 * (defaults). Returns GZ_OK and sets *out, or GZ_ENOTFOUND / GZ_EIO / GZ_EINVAL with a message
 * naming the file; *out is NULL on error. */
gz_status gz_tokenizer_load(const char *model_dir, gz_family family, int max_positions,
                            const gz_tokenizer_params *p, gz_tokenizer **out);
void gz_tokenizer_free(gz_tokenizer *t);

/* One text (UTF-8; invalid bytes are replaced by U+FFFD) -> ids with special tokens
 * ([CLS] ... [SEP] or <|startoftext|> ... <|endoftext|>). If max_len > 0, truncate as HF
 * truncation=True does: keep the first max_len-2 pieces then the closing special token.
 * No padding. *ids is malloc'd (at least one element), caller frees. */
gz_status gz_tokenizer_encode(const gz_tokenizer *t, const char *text, int max_len, int32_t **ids,
                              int *n);

/* Like gz_tokenizer_encode for text of len bytes, which may contain NUL characters. */
gz_status gz_tokenizer_encode_n(const gz_tokenizer *t, const char *text, size_t len, int max_len,
                                int32_t **ids, int *n);

typedef struct {
    int n, len;        /* texts, padded length */
    int32_t *ids;      /* (n, len) token ids, right-padded with the pad id */
    int32_t *mask;     /* (n, len) 1 = real token, 0 = padding */
    int32_t *type_ids; /* (n, len) token type ids (all 0 for single sequences) */
} gz_token_batch;

/* HF tokenizer(texts, padding='longest', truncation=True, max_length=gz_tokenizer_max_length):
 * right padding with the pad id. out is overwritten (free it with gz_token_batch_free);
 * on error it is left empty. */
gz_status gz_tokenizer_encode_batch(const gz_tokenizer *t, const char *const *texts, int n,
                                    gz_token_batch *out);
void gz_token_batch_free(gz_token_batch *b);

/* The vocabulary string of an id (e.g. "##ing", "cat</w>", "[CLS]"); NULL if out of range. */
const char *gz_tokenizer_id_to_token(const gz_tokenizer *t, int32_t id);
/* The id of a vocabulary / added token string (e.g. "[ENC]"); -1 if absent. */
int32_t gz_tokenizer_token_id(const gz_tokenizer *t, const char *token);
/* Max sequence length incl. special tokens used by encode_batch (e.g. 35, 52, 77). */
int gz_tokenizer_max_length(const gz_tokenizer *t);
int32_t gz_tokenizer_pad_id(const gz_tokenizer *t);
/* Number of ids (base vocabulary + added tokens). */
int gz_tokenizer_vocab_size(const gz_tokenizer *t);

/* Special ids (-1 if the tokenizer has none): [CLS]/<|startoftext|>, [SEP]/<|endoftext|>. */
int32_t gz_tokenizer_bos_id(const gz_tokenizer *t);
int32_t gz_tokenizer_eos_id(const gz_tokenizer *t);

#endif
