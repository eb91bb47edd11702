/* test_core_torchbin.c - torch.save (pytorch_model.bin) checkpoints through the gz_st_file API:
 * the Chinese-CLIP fixture saved by torch (tests/data/torchbin/make.py) against its safetensors
 * twin, sharded checkpoints, every dtype, ZIP64, and malformed/forbidden archives and pickles
 * (files from make.py and ones built here). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/safetensors.h"
#include "core/torchbin.h"
#include "testutil.h"

static int checks;
static char tmp[1100];

/* expr must return want and the error message must contain `needle` (NULL: any). */
#define EXPECT_FAIL(expr, want, needle)                                                            \
    do {                                                                                           \
        int got_ = (expr);                                                                         \
        checks++;                                                                                  \
        const char *n_ = (needle);                                                                 \
        if (got_ != (want) || (n_ && !strstr(gz_last_error(), n_))) {                              \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %d and a message with '%s'\n",       \
                    __FILE__, __LINE__, #expr, got_, gz_last_error(), (int)(want), n_ ? n_ : "");  \
            gz_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
        exit(3);
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    unsigned char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, fp) != (size_t)n) exit(3);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void spill(const char *path, const void *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp || (n && fwrite(b, 1, n, fp) != n)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(3);
    }
    fclose(fp);
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    unsigned char *b = slurp(from, &n);
    spill(to, b, n);
    free(b);
}

static int mkdir_p_ok(const char *d) {
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", d);
    return system(cmd) == 0;
}

/* ---- the Chinese-CLIP fixture as pytorch_model.bin ---- */

/* Every tensor of `got` has the name, dtype, shape and bytes of the same tensor in `want`, and
 * gz_st_f32 gives identical floats. Returns the number of tensors compared. */
static size_t same_tensors(const char *what, gz_st_file *got, gz_st_file *want) {
    size_t n = 0, bad = 0;
    checks++;
    if (!got || !want || gz_st_count(got) != gz_st_count(want)) {
        fprintf(stderr, "%s: %zu tensors, want %zu\n", what, got ? gz_st_count(got) : 0,
                want ? gz_st_count(want) : 0);
        gz_test_failures++;
        return 0;
    }
    for (size_t i = 0; i < gz_st_count(want); i++) {
        const gz_st_tensor *w = gz_st_at(want, i), *g = gz_st_find(got, w->name);
        int ok = g && g->dtype == w->dtype && g->ndim == w->ndim && g->numel == w->numel &&
                 g->nbytes == w->nbytes &&
                 memcmp(g->shape, w->shape, sizeof w->shape[0] * (size_t)w->ndim) == 0 &&
                 (w->nbytes == 0 || memcmp(g->data, w->data, w->nbytes) == 0);
        const float *a = NULL, *b = NULL;
        if (ok && (w->dtype == GZ_DT_F32 || w->dtype == GZ_DT_F16)) {
            ok = gz_st_f32(got, w->name, w->ndim, w->shape, &a) == GZ_OK &&
                 gz_st_f32(want, w->name, w->ndim, w->shape, &b) == GZ_OK &&
                 memcmp(a, b, w->numel * sizeof(float)) == 0;
            /* F32 is used in place: torch aligns storages to 64 bytes */
            if (ok && w->dtype == GZ_DT_F32) ok = (const void *)a == g->data;
        }
        if (!ok && bad++ < 5) fprintf(stderr, "%s: tensor '%s' differs\n", what, w->name);
        n++;
    }
    checks++;
    if (bad) gz_test_failures++;
    printf("  %-34s %zu tensors identical%s\n", what, n - bad, bad ? " (FAILURES)" : "");
    return n;
}

static void test_fixture(void) {
    gz_st_file *st32 = NULL, *st16 = NULL, *b32 = NULL, *b16 = NULL, *sh = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/chinese_clip/model.safetensors"), &st32));
    CHECK_OK(gz_st_open(gz_test_path("fixtures/chinese_clip/model.f16.safetensors"), &st16));
    CHECK_OK(gz_st_open(gz_test_path("torchbin/chinese_clip.f32.bin"), &b32));
    CHECK_OK(gz_st_open(gz_test_path("torchbin/chinese_clip.f16.bin"), &b16));
    CHECK_OK(gz_st_open(gz_test_path("torchbin/pytorch_model.bin.index.json"), &sh));
    checks += 5;
    CHECK(same_tensors("chinese_clip f32 .bin", b32, st32) > 50);
    CHECK(same_tensors("chinese_clip f16 .bin", b16, st16) > 50);
    CHECK(same_tensors("chinese_clip f16 2-shard .bin", sh, st16) > 50);
    checks += 3;
    if (b32 && st32) {
        CHECK(strcmp(gz_st_dtypes(b32), "F32") == 0);
        CHECK(gz_st_total_params(b32) == gz_st_total_params(st32));
        CHECK(gz_st_file_bytes(b32) > 4 * gz_st_total_params(b32));
        /* state-dict order is kept: the first tensor is the same */
        CHECK(strcmp(gz_st_at(b32, 0)->name, gz_st_at(st32, 0)->name) == 0 ||
              gz_st_find(st32, gz_st_at(b32, 0)->name) != NULL);
        checks += 4;
    }
    if (sh) {
        CHECK(strcmp(gz_st_dtypes(sh), "F16") == 0);
        checks++;
    }

    /* gz_st_open_dir: pytorch_model.bin, then pytorch_model.bin.index.json; safetensors wins */
    char d1[1200], d2[1200], p[1400];
    snprintf(d1, sizeof d1, "%s/single", tmp);
    snprintf(d2, sizeof d2, "%s/sharded", tmp);
    CHECK(mkdir_p_ok(d1) && mkdir_p_ok(d2));
    checks++;
    snprintf(p, sizeof p, "%s/pytorch_model.bin", d1);
    copy_file(gz_test_path("torchbin/chinese_clip.f32.bin"), p);
    static const char *const shard_files[] = {"pytorch_model-00001-of-00002.bin",
                                              "pytorch_model-00002-of-00002.bin",
                                              "pytorch_model.bin.index.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", d2, shard_files[i]);
        copy_file(gz_test_path("torchbin/%s", shard_files[i]), p);
    }
    gz_st_file *o1 = NULL, *o2 = NULL;
    CHECK_OK(gz_st_open_dir(d1, &o1));
    CHECK_OK(gz_st_open_dir(d2, &o2));
    checks += 2;
    CHECK(o1 && st32 && gz_st_count(o1) == gz_st_count(st32) &&
          strcmp(gz_st_dtypes(o1), "F32") == 0);
    CHECK(o2 && st16 && gz_st_count(o2) == gz_st_count(st16) &&
          strcmp(gz_st_dtypes(o2), "F16") == 0);
    checks += 2;
    gz_st_close(o1);
    gz_st_close(o2);
    snprintf(p, sizeof p, "%s/model.safetensors", d2);
    copy_file(gz_test_path("fixtures/chinese_clip/model.safetensors"), p);
    o2 = NULL;
    CHECK_OK(gz_st_open_dir(d2, &o2));
    CHECK(o2 && strcmp(gz_st_dtypes(o2), "F32") == 0); /* model.safetensors preferred */
    checks += 2;
    gz_st_close(o2);
    /* a shard named in the index but missing */
    snprintf(p, sizeof p, "%s/%s", d2, shard_files[1]);
    unlink(p);
    snprintf(p, sizeof p, "%s/pytorch_model.bin.index.json", d2);
    o2 = NULL;
    EXPECT_FAIL(gz_st_open(p, &o2), GZ_ENOTFOUND, "pytorch_model-00002-of-00002.bin");
    {
        CHECK(o2 == NULL);
        checks++;
    }

    /* the data.pkl "header" for fingerprints */
    unsigned char *pk = NULL;
    size_t pkl = 0;
    CHECK_OK(gz_tb_read_pickle(gz_test_path("torchbin/chinese_clip.f32.bin"), &pk, &pkl));
    CHECK(pk && pkl > 100 && pk[0] == 0x80 && pk[1] == 2 && pk[pkl - 1] == '.');
    checks += 2;
    free(pk);
    EXPECT_FAIL(
        gz_tb_read_pickle(gz_test_path("fixtures/chinese_clip/model.safetensors"), &pk, &pkl),
        GZ_EINVAL, "not a ZIP archive");
    gz_st_close(st32);
    gz_st_close(st16);
    gz_st_close(b32);
    gz_st_close(b16);
    gz_st_close(sh);
}

/* ---- misc.bin: every dtype, views, tied storages, parameters, gamma/beta ---- */

static gz_dtype dtype_of(const char *torch_name) {
    static const struct {
        const char *n;
        gz_dtype d;
    } m[] = {{"float32", GZ_DT_F32}, {"float16", GZ_DT_F16}, {"bfloat16", GZ_DT_BF16},
             {"float64", GZ_DT_F64}, {"int64", GZ_DT_I64},   {"int32", GZ_DT_I32},
             {"int16", GZ_DT_I16},   {"int8", GZ_DT_I8},     {"uint8", GZ_DT_U8},
             {"bool", GZ_DT_BOOL}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(m[i].n, torch_name) == 0) return m[i].d;
    return (gz_dtype)-1;
}

/* Check f against misc.json (torch's own view of misc.bin). */
static void check_misc(const char *what, gz_st_file *f) {
    json_error_t je;
    json_t *want = json_load_file(gz_test_path("torchbin/misc.json"), 0, &je);
    checks++;
    if (!want || !f) {
        fprintf(stderr, "%s: misc.json or the file did not load\n", what);
        gz_test_failures++;
        json_decref(want);
        return;
    }
    CHECK(gz_st_count(f) == json_object_size(want));
    checks++;
    const char *key;
    json_t *e;
    size_t n_ok = 0;
    json_object_foreach(want, key, e) {
        const gz_st_tensor *t = gz_st_find(f, key);
        json_t *shape = json_object_get(e, "shape"), *vals = json_object_get(e, "values");
        gz_dtype dt = dtype_of(json_string_value(json_object_get(e, "dtype")));
        int ok = t && t->dtype == dt && (size_t)t->ndim == json_array_size(shape) &&
                 t->numel == json_array_size(vals);
        for (int d = 0; ok && d < t->ndim; d++)
            ok = t->shape[d] == json_integer_value(json_array_get(shape, (size_t)d));
        if (ok && (dt == GZ_DT_F32 || dt == GZ_DT_F16 || dt == GZ_DT_BF16 || dt == GZ_DT_F64)) {
            const float *p = NULL;
            ok = gz_st_f32(f, key, t->ndim, t->shape, &p) == GZ_OK;
            for (size_t i = 0; ok && i < t->numel; i++)
                ok = p[i] == (float)json_number_value(json_array_get(vals, i));
        } else if (ok) {
            int64_t *v = NULL;
            size_t nv = 0;
            ok = gz_st_i64_copy(f, key, &v, &nv) == GZ_OK && nv == t->numel;
            for (size_t i = 0; ok && i < nv; i++)
                ok = v[i] == json_integer_value(json_array_get(vals, i));
            free(v);
        }
        checks++;
        if (!ok) {
            fprintf(stderr, "%s: tensor '%s' does not match misc.json (%s)\n", what, key,
                    gz_last_error());
            gz_test_failures++;
        } else {
            n_ok++;
        }
    }
    json_decref(want);
    const gz_st_tensor *a = gz_st_find(f, "tied.a"), *b = gz_st_find(f, "tied.b");
    CHECK(a && b && a->data == b->data); /* one storage, used in place by both */
    const gz_st_tensor *v = gz_st_find(f, "view");
    CHECK(v && v->ndim == 1 && v->shape[0] == 3);
    const gz_st_tensor *s = gz_st_find(f, "scalar"), *em = gz_st_find(f, "empty");
    CHECK(s && s->ndim == 0 && s->numel == 1 && em && em->numel == 0 && em->ndim == 2);
    /* transformers' gamma/beta -> weight/bias renaming, only when the normal name is absent */
    CHECK(gz_st_find(f, "ln.weight") == gz_st_find(f, "ln.gamma") && gz_st_find(f, "ln.gamma"));
    CHECK(gz_st_find(f, "ln.bias") == gz_st_find(f, "ln.beta") && gz_st_find(f, "ln.beta"));
    CHECK(gz_st_find(f, "ln.weight_only.weight") != NULL &&
          gz_st_find(f, "nothing.weight") == NULL);
    const float *lb = NULL;
    CHECK_OK(gz_st_f32(f, "ln.bias", 1, (const int64_t[]){2}, &lb));
    CHECK(lb && lb[0] == -0.5f && lb[1] == 0.25f);
    checks += 8;
    printf("  %-34s %zu tensors match torch's values\n", what, n_ok);
}

static void test_misc(void) {
    gz_st_file *f = NULL, *z = NULL;
    CHECK_OK(gz_st_open(gz_test_path("torchbin/misc.bin"), &f));
    CHECK_OK(gz_st_open(gz_test_path("torchbin/zip64.bin"), &z));
    checks += 2;
    check_misc("misc.bin", f);
    check_misc("zip64.bin (ZIP64 records)", z);
    if (f) {
        CHECK(strcmp(gz_st_dtypes(f), "BF16+BOOL+F16+F32+F64+I16+I32+I64+I8+U8") == 0);
        checks++;
    }
    gz_st_close(f);
    gz_st_close(z);
}

/* ---- files from make.py that must be refused ---- */

static void test_refused_files(void) {
    gz_st_file *f = NULL;
    EXPECT_FAIL(gz_st_open(gz_test_path("torchbin/forbidden.bin"), &f), GZ_EINVAL,
                "forbidden.bin: pickle global os.system is not allowed");
    EXPECT_FAIL(gz_st_open(gz_test_path("torchbin/noncontig.bin"), &f), GZ_EINVAL,
                "tensor 't' is not contiguous (shape [3, 2], stride [1, 3])");
    EXPECT_FAIL(gz_st_open(gz_test_path("torchbin/legacy.bin"), &f), GZ_EUNSUPPORTED,
                "legacy (torch < 1.6, non-zip) checkpoint");
    EXPECT_FAIL(gz_st_open(gz_test_path("torchbin/compressed.bin"), &f), GZ_EUNSUPPORTED,
                "is compressed (method 8)");
    {
        CHECK(f == NULL);
        checks++;
    }
}

/* ---- archives and pickles built here ---- */

typedef struct {
    unsigned char *b;
    size_t n, cap;
} buf;

static void put(buf *o, const void *p, size_t n) {
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 64;
        o->b = realloc(o->b, o->cap);
        if (!o->b) exit(3);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put8(buf *o, unsigned v) {
    unsigned char c = (unsigned char)v;
    put(o, &c, 1);
}
static void put16(buf *o, unsigned v) { put8(o, v & 0xff), put8(o, (v >> 8) & 0xff); }
static void put32(buf *o, uint32_t v) { put16(o, v & 0xffff), put16(o, v >> 16); }
static void puts_(buf *o, const char *s) { put(o, s, strlen(s)); }

typedef struct {
    const char *name;
    const void *data;
    size_t len;
} zin;

/* A minimal stored ZIP of the given entries (what torch.save writes, without alignment). */
static buf make_zip(const zin *e, size_t n) {
    buf z = {0}, cd = {0};
    for (size_t i = 0; i < n; i++) {
        uint32_t off = (uint32_t)z.n;
        size_t nl = strlen(e[i].name);
        put32(&z, 0x04034b50), put16(&z, 20), put16(&z, 0), put16(&z, 0), put32(&z, 0);
        put32(&z, 0), put32(&z, (uint32_t)e[i].len), put32(&z, (uint32_t)e[i].len);
        put16(&z, (unsigned)nl), put16(&z, 0), put(&z, e[i].name, nl), put(&z, e[i].data, e[i].len);
        put32(&cd, 0x02014b50), put16(&cd, 20), put16(&cd, 20), put16(&cd, 0), put16(&cd, 0);
        put32(&cd, 0), put32(&cd, 0), put32(&cd, (uint32_t)e[i].len),
            put32(&cd, (uint32_t)e[i].len);
        put16(&cd, (unsigned)nl), put16(&cd, 0), put16(&cd, 0), put16(&cd, 0), put16(&cd, 0);
        put32(&cd, 0), put32(&cd, off), put(&cd, e[i].name, nl);
    }
    uint32_t cdo = (uint32_t)z.n;
    put(&z, cd.b, cd.n);
    put32(&z, 0x06054b50), put16(&z, 0), put16(&z, 0), put16(&z, (unsigned)n),
        put16(&z, (unsigned)n);
    put32(&z, (uint32_t)cd.n), put32(&z, cdo), put16(&z, 0);
    free(cd.b);
    return z;
}

/* Pickle opcodes */
static void p_str(buf *o, const char *s) {
    put8(o, 'X'), put32(o, (uint32_t)strlen(s)), puts_(o, s);
}
static void p_int(buf *o, long long v) {
    if (v >= 0 && v < 256) {
        put8(o, 'K'), put8(o, (unsigned)v);
    } else { /* LONG1 of 8 bytes */
        put8(o, 0x8a), put8(o, 8);
        for (int i = 0; i < 8; i++)
            put8(o, (unsigned)((unsigned long long)v >> (8 * i)) & 0xff);
    }
}
static void p_tuple(buf *o, const long long *v, int n) {
    put8(o, '(');
    for (int i = 0; i < n; i++)
        p_int(o, v[i]);
    put8(o, 't');
}

typedef struct {
    const char *storage_type; /* "FloatStorage" */
    const char *key;          /* storage key, "0" */
    long long numel, offset;
    int ndim;
    long long shape[10], stride[10];
} tspec;

/* {"w": _rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())} */
static void p_state_dict(buf *o, const tspec *t) {
    put8(o, 0x80), put8(o, 2), put8(o, '}'), put8(o, '('), p_str(o, "w");
    puts_(o, "ctorch._utils\n_rebuild_tensor_v2\n");
    put8(o, '('), put8(o, '('), p_str(o, "storage");
    puts_(o, "ctorch\n"), puts_(o, t->storage_type), put8(o, '\n');
    p_str(o, t->key), p_str(o, "cpu"), p_int(o, t->numel), put8(o, 't'), put8(o, 'Q');
    p_int(o, t->offset), p_tuple(o, t->shape, t->ndim), p_tuple(o, t->stride, t->ndim);
    put8(o, 0x89), puts_(o, "ccollections\nOrderedDict\n"), put8(o, ')'), put8(o, 'R');
    put8(o, 't'), put8(o, 'R'), put8(o, 'u'), put8(o, '.');
}

/* Parse a ZIP of {a/data.pkl: pkl, a/data/0: 24 bytes (6 floats)} from memory. */
static gz_status parse_with(const buf *pkl, gz_tb_tensor **t, size_t *n) {
    static const float six[6] = {1, 2, 3, 4, 5, 6};
    zin e[] = {
        {"a/data.pkl", pkl->b, pkl->n}, {"a/data/0", six, sizeof six}, {"a/version", "3\n", 2}};
    buf z = make_zip(e, 3);
    gz_status s = gz_tb_parse(z.b, z.n, "built.bin", t, n);
    free(z.b);
    return s;
}

static gz_status parse_spec(const tspec *ts) {
    buf p = {0};
    p_state_dict(&p, ts);
    gz_tb_tensor *t = NULL;
    size_t n = 0;
    gz_status s = parse_with(&p, &t, &n);
    gz_tb_free(t, n);
    free(p.b);
    return s;
}

static gz_status parse_raw(const char *bytes, size_t len) {
    buf p = {(unsigned char *)bytes, len, len};
    gz_tb_tensor *t = NULL;
    size_t n = 0;
    gz_status s = parse_with(&p, &t, &n);
    gz_tb_free(t, n);
    return s;
}

static void test_built_pickles(void) {
    const tspec good = {"FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}};
    buf p = {0};
    p_state_dict(&p, &good);
    gz_tb_tensor *t = NULL;
    size_t n = 0;
    CHECK_OK(parse_with(&p, &t, &n));
    CHECK(n == 1 && t && strcmp(t[0].name, "w") == 0 && t[0].dtype == GZ_DT_F32 && t[0].ndim == 2 &&
          t[0].shape[0] == 2 && t[0].shape[1] == 3 && t[0].numel == 6 && t[0].nbytes == 24);
    checks += 2;
    gz_tb_free(t, n);
    free(p.b);

    tspec s = good;
    s.numel = 7;
    EXPECT_FAIL(parse_spec(&s), GZ_EINVAL, "claims 7 elements of F32 but holds 24 bytes");
    s = good, s.numel = 1LL << 62;
    EXPECT_FAIL(parse_spec(&s), GZ_EINVAL, "claims");
    s = good, s.offset = 1;
    EXPECT_FAIL(parse_spec(&s), GZ_EINVAL, "offset 1 + 6 elements exceed its storage of 6");
    s = good, s.offset = 1LL << 62, s.shape[0] = 1, s.shape[1] = 1;
    EXPECT_FAIL(parse_spec(&s), GZ_EINVAL, "exceed its storage");
    s = good, s.stride[0] = 1, s.stride[1] = 2;
    EXPECT_FAIL(parse_spec(&s), GZ_EINVAL, "not contiguous");
    s = good, s.shape[0] = 1, s.shape[1] = 6, s.stride[0] = 99, s.stride[1] = 1;
    CHECK_OK(parse_spec(&s)); /* a dimension of extent 1 may have any stride */
    checks++;
    s = good, s.shape[0] = 1LL << 40, s.shape[1] = 1LL << 40;
    EXPECT_FAIL(parse_spec(&s), GZ_EINVAL, "overflows");
    s = good, s.shape[0] = -2;
    EXPECT_FAIL(parse_spec(&s), GZ_EINVAL, "non-negative dimensions");
    s = good, s.ndim = 9;
    for (int d = 0; d < 9; d++)
        s.shape[d] = 1, s.stride[d] = 1;
    EXPECT_FAIL(parse_spec(&s), GZ_EINVAL, "at most 8");
    s = good, s.key = "9";
    EXPECT_FAIL(parse_spec(&s), GZ_EINVAL, "storage entry 'a/data/9' is missing");
    s = good, s.storage_type = "UntypedStorage";
    EXPECT_FAIL(parse_spec(&s), GZ_EINVAL, "pickle global torch.UntypedStorage is not allowed");
    s = good, s.storage_type = "HalfStorage"; /* 6 halves fit in 24 bytes */
    CHECK_OK(parse_spec(&s));
    checks++;

    /* hand-written pickles */
#define RAW(lit) parse_raw(lit, sizeof(lit) - 1)
    EXPECT_FAIL(RAW("\x80\x02}q\x00X\x01\x00\x00\x00xcbuiltins\neval\nX\x01\x00\x00\x00"
                    "1\x85Rs."),
                GZ_EINVAL, "pickle global builtins.eval is not allowed");
    EXPECT_FAIL(RAW("\x80\x04\x8c\x02os\x8c\x06system\x93."), GZ_EINVAL,
                "pickle global os.system is not allowed"); /* protocol 4 STACK_GLOBAL */
    EXPECT_FAIL(RAW("\x80\x02}h\x05."), GZ_EINVAL, "unset memo slot");
    EXPECT_FAIL(RAW("\x80\x02}r\xff\xff\xff\x7f."), GZ_EINVAL, "memo index beyond");
    EXPECT_FAIL(RAW("\x80\x02}"), GZ_EINVAL, "ends without STOP");
    EXPECT_FAIL(RAW("\x80\x02K\x01."), GZ_EINVAL, "does not hold a state dict");
    EXPECT_FAIL(RAW("\x80\x02}X\x01\x00\x00\x00wK\x01s."), GZ_EINVAL, "entry 'w' is not a tensor");
    EXPECT_FAIL(RAW("\x80\x02}K\x01K\x01s."), GZ_EINVAL, "key 0 is not a string");
    EXPECT_FAIL(RAW("\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09."), GZ_EINVAL,
                "wider than 64 bits");
    EXPECT_FAIL(RAW("\x80\x02X\xff\xff\xff\x7f."), GZ_EINVAL, "runs past the end");
    EXPECT_FAIL(RAW("\x80\x02}(X\x01\x00\x00\x00w."), GZ_EINVAL, "malformed stack");
    EXPECT_FAIL(RAW("\x80\x02s."), GZ_EINVAL, "SETITEM");
    EXPECT_FAIL(RAW("\x80\x02R."), GZ_EINVAL, "REDUCE");
    EXPECT_FAIL(RAW("\x80\x02}cos\nsystem"), GZ_EINVAL, "GLOBAL name unterminated");
    EXPECT_FAIL(RAW("\x80\x02(\x85."), GZ_EINVAL, "tuple needs more values"); /* not below MARK */
    EXPECT_FAIL(RAW("\x80\x02}c__builtin__\nopen\n."), GZ_EINVAL,
                "__builtin__.open is not allowed");
    EXPECT_FAIL(RAW("\x80\x02]."), GZ_EINVAL, "unsupported pickle opcode 0x5d");
    EXPECT_FAIL(RAW("\x80\x02"
                    "ctorch\nFloatStorage\n)R."),
                GZ_EINVAL, "REDUCE of a storage class");
    EXPECT_FAIL(RAW("\x80\x02}(X\x07\x00\x00\x00storageK\x01tQ."), GZ_EINVAL, "persistent id");
    /* deep MARK nesting and many values: bounded by the pickle length, then refused */
    {
        size_t deep = 200000;
        char *b = malloc(deep + 4);
        b[0] = (char)0x80, b[1] = 2;
        memset(b + 2, '(', deep);
        b[deep + 2] = '.';
        EXPECT_FAIL(parse_raw(b, deep + 3), GZ_EINVAL, "STOP with a malformed stack");
        memset(b + 2, '}', deep);
        EXPECT_FAIL(parse_raw(b, deep + 3), GZ_EINVAL, "STOP with a malformed stack");
        free(b);
    }
#undef RAW

    /* archive-level: no data.pkl, big-endian byteorder */
    static const char pk[] = "\x80\x02}.";
    zin e1[] = {{"a/version", "3\n", 2}};
    buf z = make_zip(e1, 1);
    gz_tb_tensor *tt = NULL;
    size_t nt = 0;
    EXPECT_FAIL(gz_tb_parse(z.b, z.n, "x.bin", &tt, &nt), GZ_EINVAL, "has no <name>/data.pkl");
    free(z.b);
    zin e2[] = {{"a/data.pkl", pk, 4}, {"a/byteorder", "big", 3}};
    z = make_zip(e2, 2);
    EXPECT_FAIL(gz_tb_parse(z.b, z.n, "x.bin", &tt, &nt), GZ_EUNSUPPORTED, "little-endian");
    free(z.b);
    zin e3[] = {{"a/data.pkl", pk, 4}, {"a/byteorder", "little", 6}};
    z = make_zip(e3, 2);
    CHECK_OK(gz_tb_parse(z.b, z.n, "x.bin", &tt, &nt)); /* an empty state dict */
    CHECK(nt == 0 && tt == NULL);
    checks += 2;
    free(z.b);
    /* data.pkl over GZ_TB_MAX_PICKLE */
    {
        size_t big = (size_t)GZ_TB_MAX_PICKLE + 1;
        char *bp = calloc(big, 1);
        zin e5[] = {{"a/data.pkl", bp, big}};
        z = make_zip(e5, 1);
        EXPECT_FAIL(gz_tb_parse(z.b, z.n, "x.bin", &tt, &nt), GZ_EINVAL, "over the limit");
        free(z.b);
        free(bp);
    }
    zin e4[] = {{"a/data.pkl", pk, 4}, {"a/data.pkl", pk, 4}};
    z = make_zip(e4, 2);
    EXPECT_FAIL(gz_tb_parse(z.b, z.n, "x.bin", &tt, &nt), GZ_EINVAL, "appears twice");
    free(z.b);
}

/* ---- misc.bin damaged in every way we can think of ---- */

static size_t eocd_of(const unsigned char *b, size_t n) {
    for (size_t o = n - 22 + 1; o-- > 0;)
        if (b[o] == 0x50 && b[o + 1] == 0x4b && b[o + 2] == 5 && b[o + 3] == 6) return o;
    return 0;
}
static void w32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t r32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_damaged(void) {
    size_t n;
    unsigned char *orig = slurp(gz_test_path("torchbin/misc.bin"), &n);
    unsigned char *b = malloc(n);
    gz_tb_tensor *t = NULL;
    size_t nt = 0;
    CHECK_OK(gz_tb_parse(orig, n, "misc.bin", &t, &nt));
    checks++;
    gz_tb_free(t, nt);
    /* torch (miniz) always writes the ZIP64 end record + locator before the plain one */
    size_t eo = eocd_of(orig, n), lo = eo - 20, zo = eo - 20 - 56;
    uint32_t cd_size = r32(orig + zo + 40), cd_off = r32(orig + zo + 48);
    CHECK(eo > 76 && r32(orig + lo) == 0x07064b50 && r32(orig + zo) == 0x06064b50 &&
          cd_off + cd_size == zo && r32(orig + lo + 8) == zo);
    checks++;

#define DAMAGED(buf_, len_, want, needle, edit)                                                    \
    do {                                                                                           \
        memcpy(b, buf_, len_);                                                                     \
        edit;                                                                                      \
        EXPECT_FAIL(gz_tb_parse(b, len_, "damaged.bin", &t, &nt), want, needle);                   \
    } while (0)
    DAMAGED(orig, n, GZ_EINVAL, "lies outside the archive", w32(b + zo + 48, (uint32_t)n));
    DAMAGED(orig, n, GZ_EINVAL, "lies outside the archive", w32(b + zo + 40, cd_size + 100));
    DAMAGED(orig, n, GZ_EINVAL, "truncated", w32(b + zo + 40, cd_size - 10));
    DAMAGED(orig, n, GZ_EINVAL, "cannot hold", (b[zo + 39] = 0x10, b[zo + 31] = 0x10));
    DAMAGED(orig, n, GZ_EUNSUPPORTED, "multi-disk", b[zo + 16] = 1);
    DAMAGED(orig, n, GZ_EINVAL, "ZIP64 end record offset", w32(b + lo + 8, 3));
    DAMAGED(orig, n, GZ_EINVAL, "ZIP64 end record offset", b[lo + 15] = 0x80);
    DAMAGED(orig, n, GZ_EINVAL, "local header offset", w32(b + cd_off + 42, 0x7fffffff));
    DAMAGED(orig, n, GZ_EINVAL, "local header offset", w32(b + cd_off + 42, 1));
    DAMAGED(orig, n, GZ_EINVAL, "run past the entries",
            (w32(b + cd_off + 20, 0x7ffffff0), w32(b + cd_off + 24, 0x7ffffff0)));
    DAMAGED(orig, n, GZ_EINVAL, "has size", w32(b + cd_off + 20, 1));
    DAMAGED(orig, n, GZ_EINVAL, "ZIP64 extra field",
            (w32(b + cd_off + 20, 0xffffffff), w32(b + cd_off + 24, 0xffffffff)));
    DAMAGED(orig, n, GZ_EUNSUPPORTED, "encrypted", b[cd_off + 8] |= 1);
    DAMAGED(orig, n, GZ_EINVAL, "central directory entry 0", b[cd_off] = 'X');
    DAMAGED(orig, n, GZ_EINVAL, "no ZIP end-of-central-directory", b[eo] = 'X');
    /* without the locator, the plain end record's (valid) values are used */
    memcpy(b, orig, n);
    b[lo] = 'X';
    CHECK_OK(gz_tb_parse(b, n, "damaged.bin", &t, &nt));
    CHECK(nt == 19);
    checks += 2;
    gz_tb_free(t, nt);

    /* a plain (non-ZIP64) archive's end record */
    buf pk = {0};
    const tspec good = {"FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}};
    p_state_dict(&pk, &good);
    static const float six[6] = {1, 2, 3, 4, 5, 6};
    zin e[] = {{"a/data.pkl", pk.b, pk.n}, {"a/data/0", six, sizeof six}};
    buf z = make_zip(e, 2);
    size_t ze = z.n - 22;
    uint32_t zcs = r32(z.b + ze + 12);
    CHECK_OK(gz_tb_parse(z.b, z.n, "plain.bin", &t, &nt));
    checks++;
    gz_tb_free(t, nt);
    DAMAGED(z.b, z.n, GZ_EINVAL, "lies outside the archive", w32(b + ze + 16, (uint32_t)z.n));
    DAMAGED(z.b, z.n, GZ_EINVAL, "lies outside the archive", w32(b + ze + 12, zcs + 100));
    DAMAGED(z.b, z.n, GZ_EINVAL, "truncated", w32(b + ze + 12, zcs - 10));
    DAMAGED(z.b, z.n, GZ_EINVAL, "cannot hold", (b[ze + 10] = 0xfe, b[ze + 8] = 0xfe));
    DAMAGED(z.b, z.n, GZ_EINVAL, "ZIP64 locator is missing",
            (b[ze + 10] = 0xff, b[ze + 8] = 0xff, b[ze + 11] = 0xff, b[ze + 9] = 0xff));
    DAMAGED(z.b, z.n, GZ_EUNSUPPORTED, "multi-disk", b[ze + 4] = 1);
    DAMAGED(z.b, z.n, GZ_EINVAL, "no ZIP end-of-central-directory", b[ze + 20] = 9); /* comment */
    free(z.b);
    free(pk.b);
#undef DAMAGED

    /* every truncation fails cleanly; every single-byte corruption is handled without a crash */
    size_t trunc_ok = 0;
    for (size_t k = 0; k < n; k++)
        if (gz_tb_parse(orig, k, "misc.bin", &t, &nt) == GZ_OK) trunc_ok++, gz_tb_free(t, nt);
    CHECK(trunc_ok == 0);
    checks++;
    size_t flips_ok = 0;
    for (size_t k = 0; k < n; k++) {
        memcpy(b, orig, n);
        b[k] ^= 0xa5;
        if (gz_tb_parse(b, n, "misc.bin", &t, &nt) == GZ_OK) {
            for (size_t i = 0; i < nt; i++) /* what was accepted lies inside the buffer */
                CHECK(t[i].offset <= n && t[i].nbytes <= n - t[i].offset);
            flips_ok++;
            gz_tb_free(t, nt);
        }
    }
    printf("  damaged misc.bin: %zu truncations refused, %zu/%zu byte flips still parse "
           "(tensor bytes)\n",
           n, flips_ok, n);
    /* through gz_st_open: a truncated file names the file */
    char p[1400];
    snprintf(p, sizeof p, "%s/trunc.bin", tmp);
    spill(p, orig, n / 2);
    gz_st_file *f = NULL;
    EXPECT_FAIL(gz_st_open(p, &f), GZ_EINVAL, "trunc.bin: no ZIP end-of-central-directory");
    free(b);
    free(orig);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "%s", gz_test_tmpdir("torchbin"));
    test_fixture();
    test_misc();
    test_refused_files();
    test_built_pickles();
    test_damaged();
    return gz_test_finish("core_torchbin", checks);
}
