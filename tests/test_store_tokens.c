/* test_store_tokens.c - stored vision token states: the int8 (per-token scale) and bf16 codecs
 * round-trip within their error bounds, refuse what they cannot hold, and the store keeps a
 * token record only beside the (item, model) vector it was encoded with. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gaze.h"
#include "store/tokens.h"
#include "testutil.h"

static int checks;
#define T(c) CHECK_COUNTED(checks, c)
#define T_OK(e) CHECK_OK_COUNTED(checks, e)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform(void) { return (gz_test_splitmix64(&rng_state) >> 11) / 9007199254740992.0; }

/* States (P, D) with a different magnitude per token (as post-LN states have), one token all
 * zero and one with a single large outlier: the cases a per-token scale must get right. */
static void make_states(float *x, int P, int D) {
    for (int p = 0; p < P; p++) {
        double mag = pow(10.0, -3.0 + 5.0 * uniform()); /* 1e-3 .. 1e2 */
        for (int d = 0; d < D; d++)
            x[(size_t)p * D + d] = (float)((2 * uniform() - 1) * mag);
    }
    if (P > 2) {
        memset(x + (size_t)1 * D, 0, (size_t)D * sizeof *x);
        x[(size_t)2 * D + D / 2] = 1000.0f;
    }
}

/* The first element outside its bound, reported; 1 when none. */
static int within_bounds(const char *what, gz_tokens_format f, const float *x, const float *y,
                         int P, int D) {
    for (int p = 0; p < P; p++) {
        float amax = 0;
        for (int d = 0; d < D; d++)
            amax = fmaxf(amax, fabsf(x[(size_t)p * D + d]));
        for (int d = 0; d < D; d++) {
            float a = x[(size_t)p * D + d], b = y[(size_t)p * D + d];
            /* int8: half a step of the token's scale, plus the float rounding of x / scale
             * and q * scale (127 steps of 2^-24 each, far below 1e-4 of a step); bf16: half
             * an ulp of an 8-bit significand (2^-8 of the value's power of two) */
            double bound = f == GZ_TOKENS_INT8 ? (amax / 127.0) * (0.5 + 1e-4)
                                               : fabs((double)a) * ldexp(1.0, -8);
            if (!(fabs((double)a - b) <= bound)) {
                fprintf(stderr, "%s: token %d column %d: %.9g -> %.9g, error %.3g > bound %.3g\n",
                        what, p, d, a, b, fabs((double)a - b), bound);
                return 0;
            }
        }
    }
    return 1;
}

static void test_codec(int P, int D) {
    size_t n = (size_t)P * D;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint8_t *blob = malloc(n * 4 + (size_t)P * 4);
    make_states(x, P, D);
    const gz_tokens_format formats[2] = {GZ_TOKENS_INT8, GZ_TOKENS_BF16};
    for (int i = 0; i < 2; i++) {
        gz_tokens_format f = formats[i];
        size_t bytes = gz_tokens_bytes(f, P, D);
        T(bytes == (f == GZ_TOKENS_INT8 ? n + (size_t)P * 4 : n * 2));
        T_OK(gz_tokens_encode(f, x, P, D, blob));
        T_OK(gz_tokens_decode(f, blob, bytes, P, D, y));
        char what[64];
        snprintf(what, sizeof what, "%s (%d, %d)", gz_tokens_format_name(f), P, D);
        T(within_bounds(what, f, x, y, P, D));
        /* the zero token stays exactly zero; the outlier is exact in int8 (it is the max) */
        if (P > 2) {
            int zero = 1;
            for (int d = 0; d < D; d++)
                zero &= y[(size_t)D + d] == 0.0f;
            T(zero);
            T(y[(size_t)2 * D + D / 2] == 1000.0f);
        }
        /* a wrong length is a damaged record, not a crash */
        T(gz_tokens_decode(f, blob, bytes - 1, P, D, y) == GZ_ECORRUPT);
        gz_clear_error();
    }
    free(x);
    free(y);
    free(blob);
}

static void test_codec_refusals(void) {
    float x[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t blob[64];
    /* sizes: BLIP-base at 384 px (577 tokens of 768) */
    T(gz_tokens_bytes(GZ_TOKENS_INT8, 577, 768) == 577u * 768u + 577u * 4u);
    T(gz_tokens_bytes(GZ_TOKENS_BF16, 577, 768) == 577u * 768u * 2u);
    T(gz_tokens_bytes(GZ_TOKENS_NONE, 2, 4) == 0);
    T(gz_tokens_bytes(GZ_TOKENS_INT8, 0, 4) == 0);
    x[5] = NAN;
    T(gz_tokens_encode(GZ_TOKENS_INT8, x, 2, 4, blob) == GZ_EINVAL);
    T(strstr(gz_last_error(), "token 1, column 1") != NULL);
    x[5] = INFINITY;
    T(gz_tokens_encode(GZ_TOKENS_BF16, x, 2, 4, blob) == GZ_EINVAL);
    x[5] = 6;
    /* a negative scale cannot come from the encoder: a damaged record */
    T_OK(gz_tokens_encode(GZ_TOKENS_INT8, x, 2, 4, blob));
    float neg = -1.0f, y[8];
    memcpy(blob + 4, &neg, sizeof neg);
    T(gz_tokens_decode(GZ_TOKENS_INT8, blob, gz_tokens_bytes(GZ_TOKENS_INT8, 2, 4), 2, 4, y) ==
      GZ_ECORRUPT);
    gz_clear_error();
}

/* The store's rules: tokens need the vector; a different vector, a content change and removal
 * drop them; the same vector written again keeps them; a copy goes to an item of the same
 * content; stats count them. */
static void test_store(void) {
    enum { DIM = 8, P = 5, D = 6 };
    const char *dir = gz_test_tmpdir("store_tokens");
    char path[4200];
    snprintf(path, sizeof path, "%s/t.db", dir);
    gz_db_params dp = gz_db_default_params();
    gz_db *db = NULL;
    T_OK(gz_db_open(path, &dp, &db));
    if (!db) return;
    T(gz_db_schema_version() >= 3);
    int64_t mid = 0;
    T_OK(gz_db_register_model(db, "models/blip", "blip", DIM, "fp-blip", &mid));
    gz_item a = {.kind = GZ_ITEM_IMAGE, .path = "/p/a.jpg", .path_len = 8, .content_hash = 11};
    gz_item b = {.kind = GZ_ITEM_IMAGE, .path = "/p/b.jpg", .path_len = 8, .content_hash = 11};
    T_OK(gz_db_upsert_item(db, &a));
    T_OK(gz_db_upsert_item(db, &b));
    float vec[DIM], vec2[DIM], st[P * D], got[P * D];
    gz_test_xorshift_unit(1, vec, DIM);
    gz_test_xorshift_unit(2, vec2, DIM);
    make_states(st, P, D);

    /* no vector yet: refused, nothing stored */
    T(gz_db_put_tokens(db, a.id, mid, GZ_TOKENS_INT8, st, P, D) == GZ_ENOTFOUND);
    gz_clear_error();
    T_OK(gz_db_put_embedding(db, a.id, mid, vec, DIM));
    T_OK(gz_db_put_tokens(db, a.id, mid, GZ_TOKENS_BF16, st, P, D));
    gz_tokens_format f = GZ_TOKENS_NONE;
    T_OK(gz_db_get_tokens(db, a.id, mid, got, P, D, &f));
    T(f == GZ_TOKENS_BF16);
    T(within_bounds("stored bf16", GZ_TOKENS_BF16, st, got, P, D));
    T(gz_db_get_tokens(db, a.id, mid, got, P + 1, D, NULL) == GZ_EINVAL); /* wrong shape */
    gz_clear_error();
    T_OK(gz_db_put_tokens(db, a.id, mid, GZ_TOKENS_INT8, st, P, D)); /* replaces */
    T_OK(gz_db_get_tokens(db, a.id, mid, NULL, 0, 0, &f));
    T(f == GZ_TOKENS_INT8);

    /* the same vector written again (a vector copied back) keeps them */
    T_OK(gz_db_put_embedding(db, a.id, mid, vec, DIM));
    T_OK(gz_db_get_tokens(db, a.id, mid, NULL, 0, 0, NULL));
    /* copy to b (same content) needs b's vector */
    T(gz_db_copy_tokens(db, a.id, b.id, mid) == GZ_ENOTFOUND);
    gz_clear_error();
    T_OK(gz_db_put_embedding(db, b.id, mid, vec, DIM));
    T_OK(gz_db_copy_tokens(db, a.id, b.id, mid));
    T_OK(gz_db_get_tokens(db, b.id, mid, got, P, D, &f));
    T(f == GZ_TOKENS_INT8 && within_bounds("copied int8", GZ_TOKENS_INT8, st, got, P, D));
    gz_db_stats s;
    T_OK(gz_db_get_stats(db, &s));
    T(s.n_tokens == 2 && s.token_bytes == 2 * (int64_t)gz_tokens_bytes(GZ_TOKENS_INT8, P, D));

    /* a different vector (a new encode) makes them stale */
    T_OK(gz_db_put_embedding(db, b.id, mid, vec2, DIM));
    T(gz_db_get_tokens(db, b.id, mid, NULL, 0, 0, NULL) == GZ_ENOTFOUND);
    gz_clear_error();
    /* a content change drops vectors and tokens */
    T_OK(gz_db_put_tokens(db, b.id, mid, GZ_TOKENS_INT8, st, P, D));
    b.content_hash = 12;
    T_OK(gz_db_upsert_item(db, &b));
    T(gz_db_get_tokens(db, b.id, mid, NULL, 0, 0, NULL) == GZ_ENOTFOUND);
    gz_clear_error();
    /* removal drops them; a rolled-back batch keeps them */
    T_OK(gz_db_begin(db));
    T_OK(gz_db_remove_item(db, a.id));
    T_OK(gz_db_rollback(db));
    T_OK(gz_db_get_tokens(db, a.id, mid, NULL, 0, 0, NULL));
    T_OK(gz_db_remove_item(db, a.id));
    T(gz_db_get_tokens(db, a.id, mid, NULL, 0, 0, NULL) == GZ_ENOTFOUND);
    gz_clear_error();
    T_OK(gz_db_get_stats(db, &s));
    T(s.n_tokens == 0 && s.token_bytes == 0);
    T_OK(gz_db_close(db));
}

/* A schema-2 library (before the tokens table) still answers a read-only open, with no
 * tokens, and a writable open migrates it. */
static void test_schema2(void) {
    const char *dir = gz_test_tmpdir("store_tokens_v2");
    char path[4200];
    snprintf(path, sizeof path, "%s/v2.db", dir);
    gz_db_params dp = gz_db_default_params();
    gz_db *db = NULL;
    T_OK(gz_db_open(path, &dp, &db));
    if (!db) return;
    int64_t mid = 0;
    float vec[4] = {1, 0, 0, 0};
    gz_item a = {.kind = GZ_ITEM_IMAGE, .path = "/p/a.jpg", .path_len = 8, .content_hash = 1};
    T_OK(gz_db_register_model(db, "models/blip", "blip", 4, "fp", &mid));
    T_OK(gz_db_upsert_item(db, &a));
    T_OK(gz_db_put_embedding(db, a.id, mid, vec, 4));
    T_OK(gz_db_close(db));
    sqlite3 *raw = NULL;
    T(sqlite3_open(path, &raw) == SQLITE_OK);
    T(sqlite3_exec(raw, "DROP TABLE tokens; PRAGMA user_version = 2", NULL, NULL, NULL) ==
      SQLITE_OK);
    sqlite3_close(raw);
    dp.readonly = 1;
    db = NULL;
    T_OK(gz_db_open(path, &dp, &db));
    if (db) {
        gz_db_stats s;
        T_OK(gz_db_get_stats(db, &s));
        T(s.schema_version == 2 && s.n_tokens == 0 && s.n_embeddings == 1);
        T(gz_db_get_tokens(db, a.id, mid, NULL, 0, 0, NULL) == GZ_ENOTFOUND);
        gz_clear_error();
        T_OK(gz_db_close(db));
    }
    dp.readonly = 0;
    db = NULL;
    T_OK(gz_db_open(path, &dp, &db));
    if (!db) return;
    float st[2 * 3] = {1, 2, 3, 4, 5, 6};
    T_OK(gz_db_put_tokens(db, a.id, mid, GZ_TOKENS_INT8, st, 2, 3));
    gz_db_stats s;
    T_OK(gz_db_get_stats(db, &s));
    T(s.schema_version == gz_db_schema_version() && s.n_tokens == 1);
    T_OK(gz_db_close(db));
}

int main(void) {
    test_codec(17, 64);   /* the BLIP fixture: 64 px, 16 px patches, hidden 64 */
    test_codec(577, 768); /* BLIP-base at 384 px */
    test_codec_refusals();
    test_store();
    test_schema2();
    return gz_test_finish("store_tokens", checks);
}
