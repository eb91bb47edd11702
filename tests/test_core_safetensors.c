/* test_core_safetensors.c - safetensors reader: fixture models, F16/BF16 conversion, integer
 * tensors, sharded checkpoints, and malformed files built here in a temp dir. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/kernels.h"
#include "core/safetensors.h"
#include "testutil.h"

static int checks;
static const char *tmp;

#define EXPECT_STATUS(expr, want) CHECK_STATUS_COUNTED(checks, expr, want)

static const char *tmp_path(const char *name) {
    static char buf[4][1100];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmp, name);
    return p;
}

/* Write 8-byte length `hlen_field`, the header bytes, then data bytes. */
static void write_raw(const char *path, uint64_t hlen_field, const char *hdr, size_t hdr_len,
                      const void *data, size_t data_len) {
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(3);
    }
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(hlen_field >> (8 * i));
    fwrite(le, 1, 8, fp);
    if (hdr_len) fwrite(hdr, 1, hdr_len, fp);
    if (data_len) fwrite(data, 1, data_len, fp);
    fclose(fp);
}

/* A file whose header is `hdr` (length field correct) followed by data_len bytes of data. */
static void write_hdr(const char *path, const char *hdr, size_t data_len) {
    unsigned char *data = calloc(data_len ? data_len : 1, 1);
    write_raw(path, strlen(hdr), hdr, strlen(hdr), data, data_len);
    free(data);
}

typedef struct {
    const char *name;
    const char *dtype;
    int ndim;
    int64_t shape[GZ_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} wt;

/* Write a proper safetensors file from a tensor list; header padded with spaces to `align`. */
static void write_st(const char *path, const wt *t, size_t n, size_t align) {
    json_t *root = json_object();
    json_object_set_new(root, "__metadata__", json_pack("{s:s}", "format", "pt"));
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < t[i].ndim; d++)
            json_array_append_new(shape, json_integer(t[i].shape[d]));
        json_object_set_new(root, t[i].name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", t[i].dtype, "shape", shape,
                                      "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + t[i].nbytes)));
        off += t[i].nbytes;
    }
    char *h = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    size_t hl = strlen(h), padded = align > 1 ? (hl + align - 1) / align * align : hl;
    char *hp = malloc(padded + 1);
    memcpy(hp, h, hl);
    memset(hp + hl, ' ', padded - hl);
    free(h);
    unsigned char *data = malloc(off ? off : 1);
    off = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].nbytes) memcpy(data + off, t[i].data, t[i].nbytes);
        off += t[i].nbytes;
    }
    write_raw(path, padded, hp, padded, data, off);
    free(hp);
    free(data);
}

/* ---- fixtures ---- */

static const char *families[] = {"blip_itm", "clip", "chinese_clip"};

static void test_fixture_models(void) {
    for (int fi = 0; fi < 3; fi++) {
        gz_st_file *f32 = NULL, *f16 = NULL, *bf16 = NULL;
        CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/model.safetensors", families[fi]), &f32));
        CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/model.f16.safetensors", families[fi]), &f16));
        CHECK_OK(
            gz_st_open(gz_test_path("fixtures/%s/model.bf16.safetensors", families[fi]), &bf16));
        checks += 3;
        if (!f32 || !f16 || !bf16) {
            gz_st_close(f32), gz_st_close(f16), gz_st_close(bf16);
            continue;
        }
        /* gz_st_open_dir picks model.safetensors */
        gz_st_file *d = NULL;
        CHECK_OK(gz_st_open_dir(gz_test_path("fixtures/%s", families[fi]), &d));
        CHECK(d && gz_st_count(d) == gz_st_count(f32));
        gz_st_close(d);
        CHECK(gz_st_count(f32) > 0);
        CHECK(gz_st_count(f16) == gz_st_count(f32) && gz_st_count(bf16) == gz_st_count(f32));
        CHECK(gz_st_total_params(f16) == gz_st_total_params(f32));
        CHECK(strcmp(gz_st_dtypes(f32), "F32") == 0 && strcmp(gz_st_dtypes(f16), "F16") == 0 &&
              strcmp(gz_st_dtypes(bf16), "BF16") == 0);
        CHECK(gz_st_file_bytes(f32) > 4 * gz_st_total_params(f32));
        checks += 6;
        size_t bad16 = 0, bad_bound = 0, badb = 0;
        for (size_t i = 0; i < gz_st_count(f32); i++) {
            const gz_st_tensor *t = gz_st_at(f32, i);
            CHECK(gz_st_find(f32, t->name) == t);
            const float *a = NULL, *h = NULL, *b = NULL, *h2 = NULL;
            CHECK_OK(gz_st_f32(f32, t->name, t->ndim, t->shape, &a));
            CHECK_OK(gz_st_f32(f16, t->name, t->ndim, t->shape, &h));
            CHECK_OK(gz_st_f32(bf16, t->name, t->ndim, t->shape, &b));
            CHECK_OK(gz_st_f32(f16, t->name, 0, NULL, &h2));
            CHECK(h2 == h); /* converted once, cached */
            checks += 6;
            if (!a || !h || !b) continue;
            CHECK((const void *)a == t->data); /* F32 used in place */
            for (size_t j = 0; j < t->numel; j++) {
                /* torch .half()/.bfloat16() round to nearest even, as ours: exactly equal */
                if (h[j] != gz_f16_to_f32(gz_f32_to_f16(a[j]))) bad16++;
                if (b[j] != gz_bf16_to_f32(gz_f32_to_bf16(a[j]))) badb++;
                /* and within rounding: half an f16 ulp (2^-11 relative, 2^-25 subnormal) */
                if (!(fabsf(h[j] - a[j]) <= ldexpf(fabsf(a[j]), -11) + ldexpf(1, -25))) bad_bound++;
                if (!(fabsf(b[j] - a[j]) <= ldexpf(fabsf(a[j]), -8))) bad_bound++;
            }
        }
        if (bad16 || badb || bad_bound)
            fprintf(stderr, "%s: %zu f16, %zu bf16 values differ, %zu outside the bound\n",
                    families[fi], bad16, badb, bad_bound);
        CHECK(bad16 == 0 && badb == 0 && bad_bound == 0);
        checks++;
        /* lookups that fail */
        const float *p = (const float *)1;
        EXPECT_STATUS(gz_st_f32(f32, "no.such.tensor", 0, NULL, &p), GZ_ENOTFOUND);
        CHECK(p == NULL && strstr(gz_last_error(), "no.such.tensor"));
        CHECK(gz_st_find(f32, "no.such.tensor") == NULL);
        const gz_st_tensor *t0 = gz_st_at(f32, 0);
        int64_t wrong[GZ_ST_MAX_DIMS + 1] = {0};
        for (int k = 0; k < t0->ndim; k++)
            wrong[k] = t0->shape[k];
        wrong[t0->ndim] = 1;
        EXPECT_STATUS(gz_st_f32(f32, t0->name, t0->ndim + 1, wrong, &p), GZ_EINVAL);
        CHECK(strstr(gz_last_error(), t0->name) != NULL);
        CHECK(gz_st_at(f32, gz_st_count(f32)) == NULL);
        checks += 3;
        gz_st_close(f32), gz_st_close(f16), gz_st_close(bf16);
    }
}

static void test_fixture_expected(void) {
    const int L[3] = {35, 77, 0}, S[3] = {64, 48, 40};
    for (int fi = 0; fi < 3; fi++) {
        gz_st_file *f = NULL;
        CHECK_OK(gz_st_open(gz_test_path("fixtures/%s/expected.safetensors", families[fi]), &f));
        checks++;
        if (!f) continue;
        const gz_st_tensor *ids = gz_st_find(f, "input_ids");
        const gz_st_tensor *mask = gz_st_find(f, "attention_mask");
        const gz_st_tensor *u8 = gz_st_find(f, "resized_uint8");
        CHECK(ids && ids->dtype == GZ_DT_I64 && ids->ndim == 2 && ids->shape[0] == 12);
        CHECK(!L[fi] || (ids && ids->shape[1] == L[fi]));
        CHECK(u8 && u8->dtype == GZ_DT_U8 && u8->ndim == 4 && u8->shape[0] == 5 &&
              u8->shape[1] == S[fi] && u8->shape[2] == S[fi] && u8->shape[3] == 3);
        checks += 3;
        int64_t *iv = NULL, *mv = NULL, *uv = NULL;
        size_t n = 0, nm = 0, nu = 0;
        CHECK_OK(gz_st_i64_copy(f, "input_ids", &iv, &n));
        CHECK_OK(gz_st_i64_copy(f, "attention_mask", &mv, &nm));
        CHECK_OK(gz_st_i64_copy(f, "resized_uint8", &uv, &nu));
        checks += 3;
        if (iv && mv && ids && mask) {
            CHECK(n == ids->numel && nm == n);
            int ok = 1;
            for (size_t i = 0; i < n; i++) {
                int64_t raw;
                memcpy(&raw, (const char *)ids->data + 8 * i, 8);
                ok &= iv[i] == raw && iv[i] >= 0 && (mv[i] == 0 || mv[i] == 1);
            }
            CHECK(ok);
            CHECK(mv[0] == 1); /* first token of the first caption is real */
            checks += 3;
        }
        if (uv && u8) {
            int ok = nu == u8->numel;
            for (size_t i = 0; ok && i < nu; i++)
                ok = uv[i] == ((const unsigned char *)u8->data)[i];
            CHECK(ok);
            checks++;
        }
        free(uv);
        const float *pv = NULL;
        int64_t pshape[4] = {5, 3, S[fi], S[fi]};
        CHECK_OK(gz_st_f32(f, "pixel_values", 4, pshape, &pv));
        EXPECT_STATUS(gz_st_f32(f, "input_ids", 0, NULL, &pv), GZ_EINVAL); /* not a float */
        EXPECT_STATUS(gz_st_i64_copy(f, "pixel_values", &uv, &nu), GZ_EINVAL);
        CHECK(uv == NULL);
        checks++;
        if (fi == 1) { /* CLIP stores the 0-d logit_scale */
            const float *ls = NULL;
            CHECK_OK(gz_st_f32(f, "logit_scale", 0, (const int64_t[1]){0}, &ls));
            CHECK(ls && fabsf(*ls - 2.53829f) < 1e-4f);
            checks += 2;
        }
        free(iv), free(mv);
        gz_st_close(f);
    }
}

/* ---- hand-built valid files ---- */

static void test_valid_builds(void) {
    /* integer dtypes, an empty tensor, misaligned F32 (header length not a multiple of 4) */
    int32_t i32[3] = {-7, 0, 2147483647};
    int16_t i16[2] = {-32768, 12};
    int8_t i8[3] = {-128, 5, 127};
    uint8_t u8[2] = {0, 255}, bl[2] = {1, 0};
    float f[6] = {1.5f, -2, 3, 4.25f, 0, -1e-30f};
    double f64[2] = {0.1, -3e10};
    uint16_t h16[2] = {gz_f32_to_f16(0.5f), gz_f32_to_f16(-65504)};
    const wt ts[] = {
        {"a.i32", "I32", 1, {3}, i32, sizeof i32}, {"b.i16", "I16", 2, {1, 2}, i16, sizeof i16},
        {"c.i8", "I8", 1, {3}, i8, sizeof i8},     {"d.u8", "U8", 1, {2}, u8, sizeof u8},
        {"e.bool", "BOOL", 1, {2}, bl, sizeof bl}, {"f.f32", "F32", 2, {2, 3}, f, sizeof f},
        {"g.empty", "F32", 2, {0, 4}, NULL, 0},    {"h.f64", "F64", 1, {2}, f64, sizeof f64},
        {"i.f16", "F16", 1, {2}, h16, sizeof h16},
    };
    const size_t aligns[] = {8, 1};
    for (int ai = 0; ai < 2; ai++) {
        const char *p = tmp_path(ai ? "unaligned.safetensors" : "valid.safetensors");
        write_st(p, ts, sizeof ts / sizeof ts[0], aligns[ai]);
        gz_st_file *st = NULL;
        CHECK_OK(gz_st_open(p, &st));
        checks++;
        if (!st) continue;
        CHECK(gz_st_count(st) == sizeof ts / sizeof ts[0]);
        CHECK(strcmp(gz_st_dtypes(st), "BOOL+F16+F32+F64+I16+I32+I8+U8") == 0);
        int64_t *v = NULL;
        size_t n = 0;
        CHECK_OK(gz_st_i64_copy(st, "a.i32", &v, &n));
        CHECK(v && n == 3 && v[0] == -7 && v[2] == 2147483647);
        free(v);
        CHECK_OK(gz_st_i64_copy(st, "b.i16", &v, &n));
        CHECK(v && n == 2 && v[0] == -32768 && v[1] == 12);
        free(v);
        CHECK_OK(gz_st_i64_copy(st, "c.i8", &v, &n));
        CHECK(v && n == 3 && v[0] == -128 && v[2] == 127);
        free(v);
        CHECK_OK(gz_st_i64_copy(st, "d.u8", &v, &n));
        CHECK(v && n == 2 && v[1] == 255);
        free(v);
        CHECK_OK(gz_st_i64_copy(st, "e.bool", &v, &n));
        CHECK(v && n == 2 && v[0] == 1 && v[1] == 0);
        free(v);
        const float *fp = NULL;
        CHECK_OK(gz_st_f32(st, "f.f32", 2, (const int64_t[]){2, 3}, &fp));
        CHECK(fp && ((uintptr_t)fp % sizeof(float)) == 0); /* copied if the mapping is unaligned */
        if (fp) checks++, gz_check_close("f32 values", fp, f, 6, 0, 0);
        CHECK_OK(gz_st_f32(st, "g.empty", 2, (const int64_t[]){0, 4}, &fp));
        CHECK(fp != NULL);
        CHECK_OK(gz_st_f32(st, "h.f64", 1, NULL, &fp));
        CHECK(fp && fp[0] == 0.1f && fp[1] == -3e10f);
        CHECK_OK(gz_st_f32(st, "i.f16", 1, NULL, &fp));
        CHECK(fp && fp[0] == 0.5f && fp[1] == -65504.0f);
        CHECK_OK(gz_st_f32_fmt(st, &fp, 1, NULL, "%s.%s", "h", "f64"));
        EXPECT_STATUS(gz_st_f32_fmt(st, &fp, 1, NULL, "layer.%d.w", 3), GZ_ENOTFOUND);
        CHECK(strstr(gz_last_error(), "layer.3.w") != NULL);
        checks += 20;
        gz_st_close(st);
    }
    /* header with only metadata: zero tensors is valid */
    write_hdr(tmp_path("meta_only.safetensors"), "{\"__metadata__\":{\"format\":\"pt\"}}", 0);
    gz_st_file *st = NULL;
    CHECK_OK(gz_st_open(tmp_path("meta_only.safetensors"), &st));
    CHECK(st && gz_st_count(st) == 0 && gz_st_find(st, "x") == NULL);
    checks += 2;
    gz_st_close(st);
}

/* ---- malformed files ---- */

typedef struct {
    const char *what;
    const char *hdr;
    size_t data_len;
    const char *msg; /* a word the message must contain */
} bad_case;

static void test_malformed(void) {
    static const bad_case cases[] = {
        {"invalid JSON", "{\"a\": {\"dtype\": \"F32\",", 16, "JSON"},
        {"not JSON", "hello world!", 0, "JSON"},
        {"header is an array", "[1, 2, 3]", 0, "not an object"},
        {"entry not an object", "{\"w\": 5}", 0, "w"},
        {"entry is a list", "{\"w\": [\"F32\", [1], [0, 4]]}", 4, "not an object"},
        {"missing dtype", "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "dtype"},
        {"unknown dtype", "{\"w\": {\"dtype\": \"Q4\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
         4, "Q4"},
        {"dtype not a string", "{\"w\": {\"dtype\": 4, \"shape\": [1], \"data_offsets\": [0, 4]}}",
         4, "dtype"},
        {"missing shape", "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "shape"},
        {"negative dim",
         "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1, 1], \"data_offsets\": [0, 4]}}", 4, "shape"},
        {"float dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1.0], \"data_offsets\": [0, 4]}}",
         4, "shape"},
        {"too many dims",
         "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}",
         4, "dimensions"},
        {"shape overflow",
         "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4], \"data_offsets\": "
         "[0, 4]}}",
         4, "overflow"},
        {"missing offsets", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "data_offsets"},
        {"one offset", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4,
         "data_offsets"},
        {"three offsets",
         "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", 8,
         "data_offsets"},
        {"string offsets",
         "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [\"0\", \"4\"]}}", 4,
         "data_offsets"},
        {"negative offset",
         "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4,
         "data_offsets"},
        {"end before start",
         "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8, "end"},
        {"beyond data", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
         4, "beyond"},
        {"huge offsets",
         "{\"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [9223372036854775806, "
         "9223372036854775807]}}",
         4, "beyond"},
        {"size mismatch", "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}",
         12, "span"},
        {"f16 size mismatch",
         "{\"w\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 16, "span"},
        {"overlap",
         "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
         " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
         12, "overlap"},
        {"same range",
         "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
         " \"b\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
         8, "overlap"},
        {"duplicate name",
         "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
         " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
         8, "JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = tmp_path("bad.safetensors");
        write_hdr(p, cases[i].hdr, cases[i].data_len);
        gz_st_file *f = (gz_st_file *)1;
        int s = gz_st_open(p, &f);
        checks++;
        if (s != GZ_EINVAL || f != NULL || !strstr(gz_last_error(), cases[i].msg) ||
            !strstr(gz_last_error(), "bad.safetensors")) {
            fprintf(stderr, "malformed case '%s': status %d, message '%s' (want %d with '%s')\n",
                    cases[i].what, s, gz_last_error(), GZ_EINVAL, cases[i].msg);
            gz_test_failures++;
        }
        if (s == GZ_OK) gz_st_close(f);
    }
    /* length-field cases */
    const char *hdr = "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    size_t hl = strlen(hdr);
    static const struct {
        const char *what;
        uint64_t len;
        size_t write_hdr_len;
        const char *msg;
    } lens[] = {
        {"header length beyond file", 1000, 0, "exceeds file size"},
        {"header length one byte too long", 0, 1, "JSON"}, /* len = hl + 1 set below */
        {"absurd header length", 1ull << 40, 0, "limit"},
        {"header length max u64", UINT64_MAX, 0, "limit"},
        {"truncated header", 0, 2, "exceeds file size"},
        {"zero header length", 0, 3, "too small"},
    };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        const char *p = tmp_path("badlen.safetensors");
        float data = 1;
        uint64_t len = lens[i].len;
        size_t wl = hl;
        if (lens[i].write_hdr_len == 1) len = hl + 1;          /* swallows the first data byte */
        if (lens[i].write_hdr_len == 2) len = hl, wl = hl / 2; /* file cut inside the header */
        if (lens[i].write_hdr_len == 3) len = 0;
        if (lens[i].write_hdr_len == 2)
            write_raw(p, len, hdr, wl, NULL, 0);
        else
            write_raw(p, len, hdr, wl, &data, sizeof data);
        gz_st_file *f = NULL;
        int s = gz_st_open(p, &f);
        checks++;
        if (s != GZ_EINVAL || f || !strstr(gz_last_error(), lens[i].msg)) {
            fprintf(stderr, "length case '%s': status %d, message '%s' (want '%s')\n", lens[i].what,
                    s, gz_last_error(), lens[i].msg);
            gz_test_failures++;
        }
        if (s == GZ_OK) gz_st_close(f);
    }
    /* files too small to hold the length */
    const char *p = tmp_path("tiny.safetensors");
    FILE *fp = fopen(p, "wb");
    fwrite("abc", 1, 3, fp);
    fclose(fp);
    gz_st_file *f = NULL;
    EXPECT_STATUS(gz_st_open(p, &f), GZ_EINVAL);
    fp = fopen(p, "wb");
    fclose(fp);
    EXPECT_STATUS(gz_st_open(p, &f), GZ_EINVAL);
    CHECK(f == NULL);
    /* missing file and directory */
    EXPECT_STATUS(gz_st_open(tmp_path("nope.safetensors"), &f), GZ_ENOTFOUND);
    CHECK(strstr(gz_last_error(), "nope.safetensors") != NULL);
    EXPECT_STATUS(gz_st_open(tmp, &f), GZ_EIO); /* a directory */
    EXPECT_STATUS(gz_st_open_dir(tmp_path("no_dir"), &f), GZ_ENOTFOUND);
    checks += 2;
}

/* ---- sharded checkpoints ---- */

static void test_sharded(void) {
    gz_st_file *orig = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/clip/model.safetensors"), &orig));
    checks++;
    if (!orig) return;
    size_t n = gz_st_count(orig), half = n / 2;
    wt *ts = calloc(n, sizeof *ts);
    for (size_t i = 0; i < n; i++) {
        const gz_st_tensor *t = gz_st_at(orig, i);
        ts[i].name = t->name;
        ts[i].dtype = gz_dtype_name(t->dtype);
        ts[i].ndim = t->ndim;
        memcpy(ts[i].shape, t->shape, sizeof t->shape);
        ts[i].data = t->data;
        ts[i].nbytes = t->nbytes;
    }
    const char *dir = gz_test_tmpdir("st_sharded");
    char p1[1200], p2[1200], pi[1200];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(pi, sizeof pi, "%s/model.safetensors.index.json", dir);
    write_st(p1, ts, half, 8);
    write_st(p2, ts + half, n - half, 8);
    json_t *wm = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(wm, ts[i].name,
                            json_string(i < half ? "model-00001-of-00002.safetensors"
                                                 : "model-00002-of-00002.safetensors"));
    json_t *idx = json_pack("{s:{s:I}, s:o}", "metadata", "total_size",
                            (json_int_t)gz_st_file_bytes(orig), "weight_map", wm);
    json_dump_file(idx, pi, JSON_INDENT(2));
    gz_st_file *sh = NULL, *shd = NULL;
    CHECK_OK(gz_st_open(pi, &sh));
    CHECK_OK(gz_st_open_dir(dir, &shd));
    checks += 2;
    if (sh && shd) {
        CHECK(gz_st_count(sh) == n && gz_st_count(shd) == n);
        CHECK(gz_st_total_params(sh) == gz_st_total_params(orig));
        int same = 1;
        for (size_t i = 0; i < n; i++) {
            const float *a = NULL, *b = NULL;
            gz_st_f32(orig, ts[i].name, 0, NULL, &a);
            gz_st_f32(sh, ts[i].name, ts[i].ndim, ts[i].shape, &b);
            same &= a && b && memcmp(a, b, ts[i].nbytes) == 0;
        }
        CHECK(same);
        checks += 3;
    }
    gz_st_close(sh), gz_st_close(shd);

    /* tensor named in the weight map but absent from its shard */
    json_object_set_new(wm, "ghost.weight", json_string("model-00001-of-00002.safetensors"));
    json_dump_file(idx, pi, 0);
    EXPECT_STATUS(gz_st_open(pi, &sh), GZ_EINVAL);
    CHECK(sh == NULL && strstr(gz_last_error(), "ghost.weight") != NULL);
    json_object_del(wm, "ghost.weight");
    /* tensor present in both shards */
    write_st(p2, ts + half - 1, n - half + 1, 8);
    json_dump_file(idx, pi, 0);
    EXPECT_STATUS(gz_st_open(pi, &sh), GZ_EINVAL);
    CHECK(strstr(gz_last_error(), ts[half - 1].name) != NULL);
    write_st(p2, ts + half, n - half, 8);
    /* weight map pointing at a missing shard */
    json_object_set_new(wm, ts[0].name, json_string("model-00009-of-00002.safetensors"));
    json_dump_file(idx, pi, 0);
    int s = gz_st_open(pi, &sh);
    checks++;
    CHECK(s == GZ_ENOTFOUND && strstr(gz_last_error(), "model-00009-of-00002"));
    /* a shard path escaping the directory */
    json_object_set_new(wm, ts[0].name, json_string("../x.safetensors"));
    json_dump_file(idx, pi, 0);
    EXPECT_STATUS(gz_st_open(pi, &sh), GZ_EINVAL);
    /* no weight_map, broken JSON */
    FILE *fp = fopen(pi, "w");
    fputs("{\"metadata\": {}}", fp);
    fclose(fp);
    EXPECT_STATUS(gz_st_open(pi, &sh), GZ_EINVAL);
    CHECK(strstr(gz_last_error(), "weight_map") != NULL);
    fp = fopen(pi, "w");
    fputs("{\"weight_map\": {\"a\": ", fp);
    fclose(fp);
    EXPECT_STATUS(gz_st_open(pi, &sh), GZ_EINVAL);
    checks += 3;
    json_decref(idx);
    free(ts);
    gz_st_close(orig);
}

int main(void) {
    tmp = gz_test_tmpdir("safetensors");
    char keep[1100];
    snprintf(keep, sizeof keep, "%s", tmp); /* gz_test_tmpdir's buffer is reused below */
    tmp = keep;
    CHECK(strcmp(gz_dtype_name(GZ_DT_BF16), "BF16") == 0 && gz_dtype_size(GZ_DT_I64) == 8);
    checks++;
    test_fixture_models();
    test_fixture_expected();
    test_valid_builds();
    test_malformed();
    test_sharded();
    return gz_test_finish("core_safetensors", checks);
}
