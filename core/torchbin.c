/* torchbin.c - torch.save ZIP checkpoints: a hand-parsed ZIP directory and a restricted unpickler.
 *
 * The ZIP central directory is parsed here by hand (not with libzip) because tensors are used
 * in place from the file's memory mapping: we need the byte offset of each STORED entry's data,
 * which libzip does not expose. Only what torch.save writes is accepted: stored entries, one
 * disk, optional ZIP64 end records and extra fields. CRCs are not verified (that would read
 * every byte of a multi-GiB checkpoint at open); sizes and offsets are.
 *
 * The unpickler is a small stack machine over value ids. Every opcode pushes at most one new
 * value, so the value, child, dict-item, stack and memo arrays are all bounded by the length of
 * data.pkl, which is itself bounded by GZ_TB_MAX_PICKLE. It never imports or calls anything:
 * GLOBAL resolves names against a fixed allow-list and REDUCE only understands those names. */
#include "core/torchbin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "core/error.h"
#include "core/fileio.h"

/* ===== ZIP ===== */

#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP64_EOCD_SIG 0x06064b50u
#define ZIP64_LOCATOR_SIG 0x07064b50u
#define ZIP_LOCAL_LEN 30u   /* fixed part of a local file header */
#define ZIP_CENTRAL_LEN 46u /* fixed part of a central directory header */
#define ZIP_EOCD_LEN 22u    /* end of central directory record without comment */
#define ZIP64_LOCATOR_LEN 20u
#define ZIP64_EOCD_LEN 56u /* ZIP64 end record without extensible data */
#define ZIP_MAX_COMMENT 0xffffu
#define ZIP64_EXTRA_ID 0x0001u
#define ZIP_U32_MAX 0xffffffffu
#define ZIP_U16_MAX 0xffffu
#define ZIP_FLAG_ENCRYPTED 0x0001u
#define ZIP_METHOD_STORED 0u

typedef struct {
    const char *name; /* in the buffer, not NUL-terminated */
    size_t name_len;
    size_t data; /* offset of the entry's bytes in the buffer */
    size_t size;
} zentry;

typedef struct {
    const unsigned char *p;
    size_t size;
    const char *path;
    zentry *e; /* sorted by name */
    size_t n;
} zarchive;

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* 1 if [off, off + len) lies inside a buffer of size bytes. */
static int in_bounds(uint64_t off, uint64_t len, size_t size) {
    return off <= size && len <= size - off;
}

int gz_tb_is_zip(const void *buf, size_t size) {
    return buf && size >= 4 && rd32(buf) == ZIP_LOCAL_SIG;
}

int gz_tb_is_legacy(const void *buf, size_t size) {
    /* PROTO 2, LONG1 of 10 bytes: torch's legacy magic number 0x1950a86a20f9469cfc6c. */
    static const unsigned char magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                          0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    return buf && size >= sizeof magic && memcmp(buf, magic, sizeof magic) == 0;
}

static int cmp_zentry(const void *a, const void *b) {
    const zentry *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static const zentry *zip_find(const zarchive *z, const char *name, size_t len) {
    zentry key = {name, len, 0, 0};
    return bsearch(&key, z->e, z->n, sizeof *z->e, cmp_zentry);
}

/* Locate the end of central directory record; returns its offset or fails. */
static gz_status zip_find_eocd(const zarchive *z, size_t *eocd) {
    if (z->size < ZIP_EOCD_LEN)
        return GZ_FAIL(GZ_EINVAL, "%s: truncated ZIP archive (%zu bytes)", z->path, z->size);
    size_t last = z->size - ZIP_EOCD_LEN;
    size_t first = last > ZIP_MAX_COMMENT ? last - ZIP_MAX_COMMENT : 0;
    for (size_t o = last + 1; o-- > first;) {
        if (rd32(z->p + o) == ZIP_EOCD_SIG && o + ZIP_EOCD_LEN + rd16(z->p + o + 20) <= z->size) {
            *eocd = o;
            return GZ_OK;
        }
    }
    return GZ_FAIL(
        GZ_EINVAL,
        "%s: no ZIP end-of-central-directory record (truncated or not a torch.save file)", z->path);
}

/* Read the ZIP64 fields an entry marks with 0xffffffff from its 0x0001 extra field. */
static gz_status zip64_extra(const zarchive *z, const unsigned char *ex, size_t exlen,
                             uint64_t *usize, uint64_t *csize, uint64_t *off, const char *what) {
    int need_u = *usize == ZIP_U32_MAX, need_c = *csize == ZIP_U32_MAX,
        need_o = *off == ZIP_U32_MAX;
    if (!need_u && !need_c && !need_o) return GZ_OK;
    size_t i = 0;
    while (i + 4 <= exlen) {
        uint16_t id = rd16(ex + i), len = rd16(ex + i + 2);
        if (len > exlen - i - 4) break;
        if (id == ZIP64_EXTRA_ID) {
            const unsigned char *d = ex + i + 4;
            size_t k = 0;
            uint64_t *want[3] = {need_u ? usize : NULL, need_c ? csize : NULL, need_o ? off : NULL};
            for (int f = 0; f < 3; f++) {
                if (!want[f]) continue;
                if (k + 8 > len)
                    return GZ_FAIL(GZ_EINVAL, "%s: entry '%s': ZIP64 extra field too short",
                                   z->path, what);
                *want[f] = rd64(d + k);
                k += 8;
            }
            return GZ_OK;
        }
        i += 4 + (size_t)len;
    }
    return GZ_FAIL(GZ_EINVAL, "%s: entry '%s': sizes need a ZIP64 extra field, none found", z->path,
                   what);
}

/* Parse the central directory into z->e (sorted by name), checking every entry. */
static gz_status zip_open(zarchive *z) {
    size_t eocd = 0;
    gz_status s = zip_find_eocd(z, &eocd);
    if (s != GZ_OK) return s;
    const unsigned char *e = z->p + eocd;
    uint64_t disk = rd16(e + 4), cd_disk = rd16(e + 6), n_disk = rd16(e + 8), n = rd16(e + 10);
    uint64_t cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    if (eocd >= ZIP64_LOCATOR_LEN && rd32(z->p + eocd - ZIP64_LOCATOR_LEN) == ZIP64_LOCATOR_SIG) {
        const unsigned char *l = z->p + eocd - ZIP64_LOCATOR_LEN;
        uint64_t off = rd64(l + 8);
        if (rd32(l + 4) != 0 || rd32(l + 16) > 1)
            return GZ_FAIL(GZ_EUNSUPPORTED, "%s: multi-disk ZIP archives are not supported",
                           z->path);
        if (!in_bounds(off, ZIP64_EOCD_LEN, eocd - ZIP64_LOCATOR_LEN) ||
            rd32(z->p + off) != ZIP64_EOCD_SIG)
            return GZ_FAIL(GZ_EINVAL, "%s: ZIP64 end record offset %llu is invalid", z->path,
                           (unsigned long long)off);
        const unsigned char *r = z->p + off;
        disk = rd32(r + 16);
        cd_disk = rd32(r + 20);
        n_disk = rd64(r + 24);
        n = rd64(r + 32);
        cd_size = rd64(r + 40);
        cd_off = rd64(r + 48);
        eocd = (size_t)off; /* the central directory ends before the ZIP64 record */
    } else if (n == ZIP_U16_MAX || cd_size == ZIP_U32_MAX || cd_off == ZIP_U32_MAX) {
        return GZ_FAIL(GZ_EINVAL, "%s: ZIP end record needs ZIP64 but the ZIP64 locator is missing",
                       z->path);
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n)
        return GZ_FAIL(GZ_EUNSUPPORTED, "%s: multi-disk ZIP archives are not supported", z->path);
    if (!in_bounds(cd_off, cd_size, eocd))
        return GZ_FAIL(
            GZ_EINVAL,
            "%s: ZIP central directory [%llu, +%llu) lies outside the archive (%zu bytes)", z->path,
            (unsigned long long)cd_off, (unsigned long long)cd_size, eocd);
    if (n == 0 || n > cd_size / ZIP_CENTRAL_LEN)
        return GZ_FAIL(GZ_EINVAL,
                       "%s: ZIP central directory of %llu bytes cannot hold %llu entries", z->path,
                       (unsigned long long)cd_size, (unsigned long long)n);
    z->e = calloc((size_t)n, sizeof *z->e);
    if (!z->e) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory for the ZIP directory", z->path);
    size_t pos = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (uint64_t i = 0; i < n; i++) {
        if (end - pos < ZIP_CENTRAL_LEN || rd32(z->p + pos) != ZIP_CENTRAL_SIG)
            return GZ_FAIL(GZ_EINVAL,
                           "%s: ZIP central directory entry %llu is truncated or corrupt", z->path,
                           (unsigned long long)i);
        const unsigned char *c = z->p + pos;
        size_t nl = rd16(c + 28), xl = rd16(c + 30), cl = rd16(c + 32);
        if (end - pos - ZIP_CENTRAL_LEN < nl + xl + cl)
            return GZ_FAIL(GZ_EINVAL, "%s: ZIP central directory entry %llu is truncated", z->path,
                           (unsigned long long)i);
        char what[128];
        snprintf(what, sizeof what, "%.*s", (int)(nl < 100 ? nl : 100), (const char *)c + 46);
        uint16_t flags = rd16(c + 8), method = rd16(c + 10);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24), loff = rd32(c + 42);
        if (flags & ZIP_FLAG_ENCRYPTED)
            return GZ_FAIL(GZ_EUNSUPPORTED, "%s: ZIP entry '%s' is encrypted", z->path, what);
        if (method != ZIP_METHOD_STORED)
            return GZ_FAIL(GZ_EUNSUPPORTED,
                           "%s: ZIP entry '%s' is compressed (method %u); torch.save stores "
                           "entries uncompressed - was the file re-zipped?",
                           z->path, what, method);
        s = zip64_extra(z, c + ZIP_CENTRAL_LEN + nl, xl, &usize, &csize, &loff, what);
        if (s != GZ_OK) return s;
        if (csize != usize)
            return GZ_FAIL(GZ_EINVAL, "%s: stored ZIP entry '%s' has size %llu but %llu stored",
                           z->path, what, (unsigned long long)usize, (unsigned long long)csize);
        if (!in_bounds(loff, ZIP_LOCAL_LEN, cd_off) || rd32(z->p + loff) != ZIP_LOCAL_SIG)
            return GZ_FAIL(GZ_EINVAL, "%s: ZIP entry '%s': local header offset %llu is invalid",
                           z->path, what, (unsigned long long)loff);
        const unsigned char *lh = z->p + loff;
        uint64_t data = loff + ZIP_LOCAL_LEN + rd16(lh + 26) + rd16(lh + 28);
        if (rd16(lh + 26) != nl || !in_bounds(loff + ZIP_LOCAL_LEN, nl, cd_off) ||
            memcmp(lh + ZIP_LOCAL_LEN, c + ZIP_CENTRAL_LEN, nl) != 0)
            return GZ_FAIL(GZ_EINVAL, "%s: ZIP entry '%s': local header names another file",
                           z->path, what);
        if (!in_bounds(data, usize, cd_off))
            return GZ_FAIL(GZ_EINVAL,
                           "%s: ZIP entry '%s': %llu bytes at offset %llu run past the entries "
                           "(%llu bytes)",
                           z->path, what, (unsigned long long)usize, (unsigned long long)data,
                           (unsigned long long)cd_off);
        z->e[i] = (zentry){(const char *)c + ZIP_CENTRAL_LEN, nl, (size_t)data, (size_t)usize};
        pos += ZIP_CENTRAL_LEN + nl + xl + cl;
    }
    z->n = (size_t)n;
    qsort(z->e, z->n, sizeof *z->e, cmp_zentry);
    for (size_t i = 1; i < z->n; i++)
        if (cmp_zentry(&z->e[i - 1], &z->e[i]) == 0)
            return GZ_FAIL(GZ_EINVAL, "%s: ZIP entry '%.*s' appears twice", z->path,
                           (int)(z->e[i].name_len < 100 ? z->e[i].name_len : 100), z->e[i].name);
    return GZ_OK;
}

/* The archive folder ("pytorch_model", "archive", ...): the part before '/' of the entry
 * named "<folder>/data.pkl". Exactly one such entry must exist. */
static gz_status zip_pickle(const zarchive *z, const zentry **pkl, size_t *prefix_len) {
    const zentry *found = NULL;
    for (size_t i = 0; i < z->n; i++) {
        const zentry *e = &z->e[i];
        static const char tail[] = "/data.pkl";
        size_t tl = sizeof tail - 1;
        if (e->name_len <= tl || memcmp(e->name + e->name_len - tl, tail, tl) != 0) continue;
        if (memchr(e->name, '/', e->name_len - tl)) continue; /* nested deeper: not torch's */
        if (found)
            return GZ_FAIL(GZ_EINVAL, "%s: more than one */data.pkl in the archive", z->path);
        found = e;
    }
    if (!found)
        return GZ_FAIL(GZ_EINVAL, "%s: ZIP archive has no <name>/data.pkl: not a torch.save file",
                       z->path);
    *pkl = found;
    *prefix_len = found->name_len - (sizeof "/data.pkl" - 1);
    return GZ_OK;
}

/* ===== restricted unpickler ===== */

enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR };

/* Allow-listed globals. Storage classes carry their element dtype. */
enum { G_ODICT, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE };
static const struct {
    const char *module, *name;
    int kind;
    gz_dtype dt;
} allowed[] = {
    {"collections", "OrderedDict", G_ODICT, GZ_DT_F32},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, GZ_DT_F32},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, GZ_DT_F32},
    {"torch", "FloatStorage", G_STORAGE, GZ_DT_F32},
    {"torch", "HalfStorage", G_STORAGE, GZ_DT_F16},
    {"torch", "BFloat16Storage", G_STORAGE, GZ_DT_BF16},
    {"torch", "DoubleStorage", G_STORAGE, GZ_DT_F64},
    {"torch", "LongStorage", G_STORAGE, GZ_DT_I64},
    {"torch", "IntStorage", G_STORAGE, GZ_DT_I32},
    {"torch", "ShortStorage", G_STORAGE, GZ_DT_I16},
    {"torch", "CharStorage", G_STORAGE, GZ_DT_I8},
    {"torch", "ByteStorage", G_STORAGE, GZ_DT_U8},
    {"torch", "BoolStorage", G_STORAGE, GZ_DT_BOOL},
};
#define N_ALLOWED (sizeof allowed / sizeof allowed[0])
#define NO_ID UINT32_MAX
#define MAX_GLOBAL_NAME 128 /* longest module or attribute name read by GLOBAL */

typedef struct {
    uint8_t kind;
    uint8_t g;  /* V_GLOBAL: index into allowed; V_STORAGE: same, for the dtype */
    uint32_t a; /* STR: offset in data.pkl; TUPLE: first child; DICT: first item;
                 * STORAGE: persistent id tuple; TENSOR: _rebuild_tensor_v2 argument tuple */
    uint32_t b; /* STR: length; TUPLE: count; DICT: last item */
    int64_t i;  /* BOOL, INT; DICT: item count */
} pval;

typedef struct {
    uint32_t key, val, next;
} pitem;

typedef struct {
    const unsigned char *p; /* data.pkl */
    size_t len, pos;
    const char *path;
    pval *v;
    size_t nv, cv;
    uint32_t *kids;
    size_t nk, ck;
    pitem *items;
    size_t ni, ci;
    uint32_t *stack;
    size_t ns, cs;
    size_t *marks;
    size_t nm, cm;
    uint32_t *memo;
    size_t cmemo, memo_len; /* memo_len: for MEMOIZE, one past the highest index set */
} unpickler;

/* Grow *arr (elements of sz bytes) to hold at least need elements; capacity is capped by
 * the pickle length (no array can need more entries than there are opcodes). */
static int grow(void **arr, size_t *cap, size_t need, size_t sz, size_t limit) {
    if (need <= *cap) return 1;
    if (need > limit) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc = nc > limit / 2 ? limit : nc * 2;
    size_t bytes;
    if (!gz_mul_size(nc, sz, &bytes)) return 0;
    void *n = realloc(*arr, bytes);
    if (!n) return 0;
    *arr = n;
    *cap = nc;
    return 1;
}

static gz_status oom(const unpickler *u) {
    return GZ_FAIL(GZ_ENOMEM, "%s: data.pkl: out of memory or over the pickle's own bound",
                   u->path);
}

static gz_status bad(const unpickler *u, size_t at, const char *why) {
    return GZ_FAIL(GZ_EINVAL, "%s: data.pkl: %s at byte %zu", u->path, why, at);
}

/* Append a new value and return its id. */
static gz_status new_val(unpickler *u, pval v, uint32_t *id) {
    size_t limit = u->len + 1;
    if (!grow((void **)&u->v, &u->cv, u->nv + 1, sizeof *u->v, limit)) return oom(u);
    u->v[u->nv] = v;
    *id = (uint32_t)u->nv++;
    return GZ_OK;
}

static gz_status push(unpickler *u, uint32_t id) {
    if (!grow((void **)&u->stack, &u->cs, u->ns + 1, sizeof *u->stack, u->len + 1)) return oom(u);
    u->stack[u->ns++] = id;
    return GZ_OK;
}

static gz_status push_new(unpickler *u, pval v) {
    uint32_t id = NO_ID;
    gz_status s = new_val(u, v, &id);
    return s == GZ_OK ? push(u, id) : s;
}

static int pop(unpickler *u, uint32_t *id) {
    if (u->ns == 0 || (u->nm && u->ns <= u->marks[u->nm - 1])) return 0; /* never below a MARK */
    *id = u->stack[--u->ns];
    return 1;
}

/* Make a tuple of the top k stack values (k may be 0) and push it. */
static gz_status make_tuple(unpickler *u, size_t k, size_t at) {
    size_t floor_ = u->nm ? u->marks[u->nm - 1] : 0;
    if (u->ns < k || u->ns - k < floor_)
        return bad(u, at, "tuple needs more values than the stack holds");
    if (!grow((void **)&u->kids, &u->ck, u->nk + k, sizeof *u->kids, u->len + 1)) return oom(u);
    pval t = {V_TUPLE, 0, (uint32_t)u->nk, (uint32_t)k, 0};
    if (k) memcpy(u->kids + u->nk, u->stack + u->ns - k, k * sizeof *u->kids);
    u->nk += k;
    u->ns -= k;
    return push_new(u, t);
}

static gz_status dict_add(unpickler *u, uint32_t d, uint32_t key, uint32_t val) {
    if (!grow((void **)&u->items, &u->ci, u->ni + 1, sizeof *u->items, u->len + 1)) return oom(u);
    pval *dv = &u->v[d];
    u->items[u->ni] = (pitem){key, val, NO_ID};
    if (dv->i == 0)
        dv->a = (uint32_t)u->ni;
    else
        u->items[dv->b].next = (uint32_t)u->ni;
    dv->b = (uint32_t)u->ni;
    dv->i++;
    u->ni++;
    return GZ_OK;
}

/* Child j of tuple id t, or NO_ID. */
static uint32_t kid(const unpickler *u, uint32_t t, uint32_t j) {
    const pval *v = &u->v[t];
    return v->kind == V_TUPLE && j < v->b ? u->kids[v->a + j] : NO_ID;
}

static int kind_of(const unpickler *u, uint32_t id) { return id == NO_ID ? -1 : u->v[id].kind; }

/* Read an n-byte little-endian length/argument; fails past the end. */
static int arg(unpickler *u, size_t n, uint64_t *out) {
    if (u->len - u->pos < n) return 0;
    uint64_t x = 0;
    for (size_t i = n; i-- > 0;)
        x = (x << 8) | u->p[u->pos + i];
    u->pos += n;
    *out = x;
    return 1;
}

static gz_status push_str(unpickler *u, uint64_t n, size_t at) {
    if (n > u->len - u->pos) return bad(u, at, "string runs past the end of the pickle");
    pval v = {V_STR, 0, (uint32_t)u->pos, (uint32_t)n, 0};
    u->pos += (size_t)n;
    return push_new(u, v);
}

static int str_is(const unpickler *u, uint32_t id, const char *s) {
    if (kind_of(u, id) != V_STR) return 0;
    size_t n = strlen(s);
    return u->v[id].b == n && memcmp(u->p + u->v[id].a, s, n) == 0;
}

/* Resolve a module/name pair against the allow-list. */
static gz_status push_global(unpickler *u, const char *mod, size_t ml, const char *name,
                             size_t nl) {
    for (size_t g = 0; g < N_ALLOWED; g++)
        if (strlen(allowed[g].module) == ml && memcmp(allowed[g].module, mod, ml) == 0 &&
            strlen(allowed[g].name) == nl && memcmp(allowed[g].name, name, nl) == 0)
            return push_new(u, (pval){V_GLOBAL, (uint8_t)g, 0, 0, 0});
    return GZ_FAIL(GZ_EINVAL, "%s: pickle global %.*s.%.*s is not allowed", u->path,
                   (int)(ml < MAX_GLOBAL_NAME ? ml : MAX_GLOBAL_NAME), mod,
                   (int)(nl < MAX_GLOBAL_NAME ? nl : MAX_GLOBAL_NAME), name);
}

/* GLOBAL's argument: "module\nname\n". */
static gz_status op_global(unpickler *u, size_t at) {
    const char *line[2];
    size_t ll[2];
    for (int k = 0; k < 2; k++) {
        size_t room = u->len - u->pos;
        if (room > MAX_GLOBAL_NAME + 1) room = MAX_GLOBAL_NAME + 1;
        const unsigned char *nl = memchr(u->p + u->pos, '\n', room);
        if (!nl) return bad(u, at, "GLOBAL name unterminated or too long");
        line[k] = (const char *)u->p + u->pos;
        ll[k] = (size_t)(nl - (u->p + u->pos));
        u->pos += ll[k] + 1;
    }
    return push_global(u, line[0], ll[0], line[1], ll[1]);
}

/* BINPERSID: ("storage", <Type>Storage, key, location, numel) -> a storage value. */
static gz_status op_persid(unpickler *u, size_t at) {
    uint32_t pid;
    if (!pop(u, &pid)) return bad(u, at, "BINPERSID on an empty stack");
    uint32_t tag = kid(u, pid, 0), ty = kid(u, pid, 1), key = kid(u, pid, 2), loc = kid(u, pid, 3),
             num = kid(u, pid, 4);
    if (kind_of(u, pid) != V_TUPLE || u->v[pid].b != 5 || !str_is(u, tag, "storage") ||
        kind_of(u, ty) != V_GLOBAL || allowed[u->v[ty].g].kind != G_STORAGE ||
        kind_of(u, key) != V_STR || kind_of(u, loc) != V_STR || kind_of(u, num) != V_INT ||
        u->v[num].i < 0)
        return bad(u, at,
                   "persistent id is not (\"storage\", <Type>Storage, key, location, numel)");
    return push_new(u, (pval){V_STORAGE, u->v[ty].g, pid, 0, 0});
}

/* 1 if id is a tuple of at most GZ_ST_MAX_DIMS non-negative ints; *n gets its length. */
static int int_tuple(const unpickler *u, uint32_t id, uint32_t *n) {
    if (kind_of(u, id) != V_TUPLE || u->v[id].b > GZ_ST_MAX_DIMS) return 0;
    for (uint32_t j = 0; j < u->v[id].b; j++) {
        uint32_t e = kid(u, id, j);
        if (kind_of(u, e) != V_INT || u->v[e].i < 0) return 0;
    }
    *n = u->v[id].b;
    return 1;
}

/* REDUCE: only the allow-listed callables, each with the arguments torch gives it. */
static gz_status op_reduce(unpickler *u, size_t at) {
    uint32_t args, fn;
    if (!pop(u, &args) || !pop(u, &fn)) return bad(u, at, "REDUCE needs a callable and arguments");
    if (kind_of(u, args) != V_TUPLE) return bad(u, at, "REDUCE arguments are not a tuple");
    if (kind_of(u, fn) != V_GLOBAL) return bad(u, at, "REDUCE of something that is not a global");
    uint32_t na = u->v[args].b;
    switch (allowed[u->v[fn].g].kind) {
    case G_ODICT:
        if (na != 0) return bad(u, at, "OrderedDict called with arguments");
        return push_new(u, (pval){V_DICT, 0, NO_ID, NO_ID, 0});
    case G_REBUILD_V2: {
        uint32_t nsz = 0, nst = 0;
        int rg = kind_of(u, kid(u, args, 4));
        if ((na != 6 && na != 7) || kind_of(u, kid(u, args, 0)) != V_STORAGE ||
            kind_of(u, kid(u, args, 1)) != V_INT || u->v[kid(u, args, 1)].i < 0 ||
            !int_tuple(u, kid(u, args, 2), &nsz) || !int_tuple(u, kid(u, args, 3), &nst) ||
            nsz != nst || (rg != V_BOOL && rg != V_INT))
            return bad(u, at,
                       "_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, "
                       "requires_grad, hooks) with at most 8 non-negative dimensions");
        return push_new(u, (pval){V_TENSOR, 0, args, 0, 0});
    }
    case G_REBUILD_PARAM:
        if (na != 3 || kind_of(u, kid(u, args, 0)) != V_TENSOR)
            return bad(u, at,
                       "_rebuild_parameter arguments are not (tensor, requires_grad, hooks)");
        return push(u, kid(u, args, 0));
    default: return bad(u, at, "REDUCE of a storage class");
    }
}

static gz_status op_setitems(unpickler *u, size_t at, int many) {
    size_t base;
    if (many) {
        if (u->nm == 0) return bad(u, at, "SETITEMS without MARK");
        base = u->marks[--u->nm];
    } else {
        size_t floor_ = u->nm ? u->marks[u->nm - 1] : 0;
        if (u->ns < floor_ + 2) return bad(u, at, "SETITEM needs a key and a value");
        base = u->ns - 2;
    }
    if ((u->ns - base) % 2 != 0) return bad(u, at, "SETITEMS with an odd number of values");
    if (base == 0 || u->v[u->stack[base - 1]].kind != V_DICT)
        return bad(u, at, "SETITEM(S) on something that is not a dict");
    uint32_t d = u->stack[base - 1];
    for (size_t j = base; j < u->ns; j += 2) {
        gz_status s = dict_add(u, d, u->stack[j], u->stack[j + 1]);
        if (s != GZ_OK) return s;
    }
    u->ns = base;
    return GZ_OK;
}

/* Run data.pkl to STOP; *result gets the value id of the pickled object. */
static gz_status unpickle(unpickler *u, uint32_t *result) {
    gz_status s = GZ_OK;
    while (s == GZ_OK) {
        if (u->pos >= u->len) return bad(u, u->pos, "pickle ends without STOP");
        size_t at = u->pos;
        uint8_t op = u->p[u->pos++];
        uint64_t x = 0;
        uint32_t id = NO_ID, id2 = NO_ID;
        switch (op) {
        case 0x80: /* PROTO */
            if (!arg(u, 1, &x) || x > 5) return bad(u, at, "bad PROTO");
            break;
        case 0x95: /* FRAME: a length hint, the opcodes follow inline */
            if (!arg(u, 8, &x)) return bad(u, at, "truncated FRAME");
            break;
        case '(': /* MARK */
            if (!grow((void **)&u->marks, &u->cm, u->nm + 1, sizeof *u->marks, u->len + 1))
                return oom(u);
            u->marks[u->nm++] = u->ns;
            break;
        case '}': s = push_new(u, (pval){V_DICT, 0, NO_ID, NO_ID, 0}); break; /* EMPTY_DICT */
        case ')': s = make_tuple(u, 0, at); break;                            /* EMPTY_TUPLE */
        case 0x85: s = make_tuple(u, 1, at); break;                           /* TUPLE1 */
        case 0x86: s = make_tuple(u, 2, at); break;                           /* TUPLE2 */
        case 0x87: s = make_tuple(u, 3, at); break;                           /* TUPLE3 */
        case 't':                                                             /* TUPLE */
            if (u->nm == 0) return bad(u, at, "TUPLE without MARK");
            x = u->ns - u->marks[--u->nm];
            s = make_tuple(u, (size_t)x, at);
            break;
        case 'N': s = push_new(u, (pval){V_NONE, 0, 0, 0, 0}); break;
        case 0x88: s = push_new(u, (pval){V_BOOL, 0, 0, 0, 1}); break; /* NEWTRUE */
        case 0x89: s = push_new(u, (pval){V_BOOL, 0, 0, 0, 0}); break; /* NEWFALSE */
        case 'K':                                                      /* BININT1 */
        case 'M':                                                      /* BININT2 */
            if (!arg(u, op == 'K' ? 1 : 2, &x)) return bad(u, at, "truncated BININT");
            s = push_new(u, (pval){V_INT, 0, 0, 0, (int64_t)x});
            break;
        case 'J': /* BININT: signed 32-bit */
            if (!arg(u, 4, &x)) return bad(u, at, "truncated BININT");
            s = push_new(u, (pval){V_INT, 0, 0, 0, (int32_t)(uint32_t)x});
            break;
        case 0x8a: { /* LONG1: n bytes, little-endian two's complement */
            uint64_t n;
            if (!arg(u, 1, &n)) return bad(u, at, "truncated LONG1");
            if (n > 8) return bad(u, at, "integer wider than 64 bits");
            if (!arg(u, (size_t)n, &x)) return bad(u, at, "truncated LONG1");
            if (n > 0 && n < 8 && (x >> (8 * n - 1)) & 1) x |= ~(uint64_t)0 << (8 * n);
            s = push_new(u, (pval){V_INT, 0, 0, 0, (int64_t)x});
            break;
        }
        case 'G': /* BINFLOAT: big-endian double; kept only as a placeholder value */
            if (u->len - u->pos < 8) return bad(u, at, "truncated BINFLOAT");
            u->pos += 8;
            s = push_new(u, (pval){V_FLOAT, 0, 0, 0, 0});
            break;
        case 'X': /* BINUNICODE */
        case 'T': /* BINSTRING */
            if (!arg(u, 4, &x)) return bad(u, at, "truncated string length");
            if (op == 'T' && x > INT32_MAX) return bad(u, at, "negative BINSTRING length");
            s = push_str(u, x, at);
            break;
        case 0x8c: /* SHORT_BINUNICODE */
        case 'U':  /* SHORT_BINSTRING */
            if (!arg(u, 1, &x)) return bad(u, at, "truncated string length");
            s = push_str(u, x, at);
            break;
        case 0x8d: /* BINUNICODE8 */
            if (!arg(u, 8, &x)) return bad(u, at, "truncated string length");
            s = push_str(u, x, at);
            break;
        case 'c': s = op_global(u, at); break;
        case 0x93: /* STACK_GLOBAL */
            if (!pop(u, &id2) || !pop(u, &id) || kind_of(u, id) != V_STR ||
                kind_of(u, id2) != V_STR)
                return bad(u, at, "STACK_GLOBAL needs two strings");
            s = push_global(u, (const char *)u->p + u->v[id].a, u->v[id].b,
                            (const char *)u->p + u->v[id2].a, u->v[id2].b);
            break;
        case 'q':  /* BINPUT */
        case 'r':  /* LONG_BINPUT */
        case 0x94: /* MEMOIZE */
            if (op == 0x94)
                x = u->memo_len;
            else if (!arg(u, op == 'q' ? 1 : 4, &x))
                return bad(u, at, "truncated BINPUT");
            if (u->ns == 0) return bad(u, at, "memo store from an empty stack");
            if (x >= u->len) return bad(u, at, "memo index beyond the pickle's size");
            {
                size_t old = u->cmemo;
                if (!grow((void **)&u->memo, &u->cmemo, (size_t)x + 1, sizeof *u->memo, u->len))
                    return oom(u);
                for (size_t j = old; j < u->cmemo; j++)
                    u->memo[j] = NO_ID;
            }
            u->memo[x] = u->stack[u->ns - 1];
            if (x + 1 > u->memo_len) u->memo_len = (size_t)x + 1;
            break;
        case 'h': /* BINGET */
        case 'j': /* LONG_BINGET */
            if (!arg(u, op == 'h' ? 1 : 4, &x)) return bad(u, at, "truncated BINGET");
            if (x >= u->cmemo || u->memo[x] == NO_ID)
                return bad(u, at, "BINGET of an unset memo slot");
            s = push(u, u->memo[x]);
            break;
        case 'Q': s = op_persid(u, at); break; /* BINPERSID */
        case 'R': s = op_reduce(u, at); break;
        case 's': s = op_setitems(u, at, 0); break; /* SETITEM */
        case 'u': s = op_setitems(u, at, 1); break; /* SETITEMS */
        case 'b':                                   /* BUILD: state of an OrderedDict or tensor */
            if (!pop(u, &id)) return bad(u, at, "BUILD on an empty stack");
            if (u->ns == 0 || (u->v[u->stack[u->ns - 1]].kind != V_DICT &&
                               u->v[u->stack[u->ns - 1]].kind != V_TENSOR))
                return bad(u, at, "BUILD of an object that is not a dict or tensor");
            break; /* the state (e.g. state_dict._metadata) is not needed */
        case '0':  /* POP */
            if (!pop(u, &id)) return bad(u, at, "POP on an empty stack");
            break;
        case '1': /* POP_MARK */
            if (u->nm == 0) return bad(u, at, "POP_MARK without MARK");
            u->ns = u->marks[--u->nm];
            break;
        case '.': /* STOP */
            if (u->nm != 0 || u->ns != 1) return bad(u, at, "STOP with a malformed stack");
            *result = u->stack[0];
            return GZ_OK;
        default: {
            char why[64];
            snprintf(why, sizeof why, "unsupported pickle opcode 0x%02x", op);
            return bad(u, at, why);
        }
        }
    }
    return s;
}

static void unpickler_free(unpickler *u) {
    free(u->v);
    free(u->kids);
    free(u->items);
    free(u->stack);
    free(u->marks);
    free(u->memo);
}

/* ===== tensors ===== */

void gz_tb_free(gz_tb_tensor *t, size_t n) {
    if (!t) return;
    for (size_t i = 0; i < n; i++)
        free(t[i].name);
    free(t);
}

/* Fill *t (not its name) from a _rebuild_tensor_v2 value: the storage's bytes in the archive,
 * bounds of offset + shape against the storage, and a contiguous row-major layout. */
static gz_status make_tensor(const unpickler *u, const zarchive *z, const char *prefix,
                             size_t prefix_len, uint32_t tv, gz_tb_tensor *t) {
    uint32_t args = u->v[tv].a, st = kid(u, args, 0);
    uint32_t pid = u->v[st].a, key = kid(u, pid, 2), num = kid(u, pid, 4);
    uint32_t sz = kid(u, args, 2), sd = kid(u, args, 3);
    gz_dtype dt = allowed[u->v[st].g].dt;
    size_t es = gz_dtype_size(dt);
    const char *kp = (const char *)u->p + u->v[key].a;
    size_t kl = u->v[key].b;
    /* The storage's entry: "<folder>/data/<key>". */
    static const char mid[] = "/data/";
    size_t ml = sizeof mid - 1, nl;
    if (!gz_add_size(prefix_len + ml, kl, &nl))
        return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': storage key too long", z->path, t->name);
    char *ename = malloc(nl + 1);
    if (!ename) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", z->path);
    memcpy(ename, prefix, prefix_len);
    memcpy(ename + prefix_len, mid, ml);
    memcpy(ename + prefix_len + ml, kp, kl);
    ename[nl] = 0;
    const zentry *e = zip_find(z, ename, nl);
    gz_status s = GZ_OK;
    uint64_t snumel = (uint64_t)u->v[num].i;
    size_t sbytes;
    if (!e)
        s = GZ_FAIL(GZ_EINVAL,
                    "%s: tensor '%s': storage entry '%.200s' is missing from the archive", z->path,
                    t->name, ename);
    else if (snumel > SIZE_MAX || !gz_mul_size((size_t)snumel, es, &sbytes) || sbytes > e->size)
        s = GZ_FAIL(GZ_EINVAL,
                    "%s: tensor '%s': storage '%.200s' claims %llu elements of %s but holds %zu "
                    "bytes",
                    z->path, t->name, ename, (unsigned long long)snumel, gz_dtype_name(dt),
                    e->size);
    free(ename);
    if (s != GZ_OK) return s;
    t->dtype = dt;
    t->ndim = (int)u->v[sz].b;
    size_t numel = 1;
    int64_t stride[GZ_ST_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) {
        t->shape[d] = u->v[kid(u, sz, (uint32_t)d)].i;
        stride[d] = u->v[kid(u, sd, (uint32_t)d)].i;
        if (!gz_mul_size(numel, (size_t)t->shape[d], &numel))
            return GZ_FAIL(GZ_EINVAL, "%s: tensor '%s': shape size overflows", z->path, t->name);
    }
    /* Contiguous row-major: each dimension of extent > 1 steps over all later ones. */
    if (numel > 0) {
        uint64_t want = 1;
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (t->shape[d] != 1 && (uint64_t)stride[d] != want) {
                char a[200], b[200];
                size_t oa = 0, ob = 0;
                for (int k = 0; k < t->ndim; k++) {
                    oa += (size_t)snprintf(a + oa, sizeof a - oa, k ? ", %lld" : "%lld",
                                           (long long)t->shape[k]);
                    ob += (size_t)snprintf(b + ob, sizeof b - ob, k ? ", %lld" : "%lld",
                                           (long long)stride[k]);
                }
                return GZ_FAIL(GZ_EINVAL,
                               "%s: tensor '%s' is not contiguous (shape [%s], stride [%s]); "
                               "re-save it with .contiguous()",
                               z->path, t->name, a, b);
            }
            want *= (uint64_t)t->shape[d]; /* <= numel: no overflow */
        }
    }
    uint64_t off = (uint64_t)u->v[kid(u, args, 1)].i;
    if (numel > 0 && (off > snumel || numel > snumel - off))
        return GZ_FAIL(GZ_EINVAL,
                       "%s: tensor '%s': offset %llu + %zu elements exceed its storage of %llu "
                       "elements",
                       z->path, t->name, (unsigned long long)off, numel,
                       (unsigned long long)snumel);
    t->numel = numel;
    t->nbytes = numel * es; /* <= storage bytes */
    t->offset = numel > 0 ? e->data + (size_t)off * es : e->data;
    return GZ_OK;
}

/* Shared by gz_tb_parse and gz_tb_pickle: the archive directory and its data.pkl. */
static gz_status open_archive(const void *buf, size_t size, const char *path, zarchive *z,
                              const zentry **pkl, size_t *prefix_len) {
    memset(z, 0, sizeof *z);
    z->p = buf;
    z->size = size;
    z->path = path ? path : "(memory)";
    if (gz_tb_is_legacy(buf, size))
        return GZ_FAIL(GZ_EUNSUPPORTED,
                       "%s: legacy (torch < 1.6, non-zip) checkpoint format is not supported; "
                       "re-save it with torch.save in torch >= 1.6 or convert it to safetensors",
                       z->path);
    if (!gz_tb_is_zip(buf, size))
        return GZ_FAIL(GZ_EINVAL, "%s: not a ZIP archive (torch.save format)", z->path);
    gz_status s = zip_open(z);
    if (s == GZ_OK) s = zip_pickle(z, pkl, prefix_len);
    if (s != GZ_OK) return s;
    if ((*pkl)->size > GZ_TB_MAX_PICKLE)
        return GZ_FAIL(GZ_EINVAL, "%s: data.pkl is %zu bytes, over the limit of %u", z->path,
                       (*pkl)->size, GZ_TB_MAX_PICKLE);
    /* <folder>/byteorder, when present, must say little-endian. */
    char bo[64];
    snprintf(bo, sizeof bo, "%.*s/byteorder", (int)(*prefix_len < 40 ? *prefix_len : 40),
             (*pkl)->name);
    const zentry *b = *prefix_len < 40 ? zip_find(z, bo, strlen(bo)) : NULL;
    if (b && !(b->size == 6 && memcmp(z->p + b->data, "little", 6) == 0))
        return GZ_FAIL(GZ_EUNSUPPORTED, "%s: only little-endian checkpoints are supported",
                       z->path);
    return GZ_OK;
}

gz_status gz_tb_pickle(const void *buf, size_t size, const char *path, const void **pkl,
                       size_t *len) {
    *pkl = NULL;
    *len = 0;
    zarchive z;
    const zentry *pe = NULL;
    size_t pl = 0;
    gz_status s = open_archive(buf, size, path, &z, &pe, &pl);
    if (s == GZ_OK) {
        *pkl = z.p + pe->data;
        *len = pe->size;
    }
    free(z.e);
    return s;
}

gz_status gz_tb_parse(const void *buf, size_t size, const char *path, gz_tb_tensor **out,
                      size_t *n) {
    *out = NULL;
    *n = 0;
    zarchive z;
    const zentry *pe = NULL;
    size_t pl = 0;
    gz_status s = open_archive(buf, size, path, &z, &pe, &pl);
    if (s != GZ_OK) {
        free(z.e);
        return s;
    }
    unpickler u = {0};
    u.p = z.p + pe->data;
    u.len = pe->size;
    u.path = z.path;
    uint32_t root = NO_ID;
    s = unpickle(&u, &root);
    gz_tb_tensor *t = NULL;
    size_t nt = 0;
    if (s == GZ_OK && u.v[root].kind != V_DICT)
        s = GZ_FAIL(GZ_EINVAL, "%s: data.pkl does not hold a state dict (a dict of tensors)",
                    z.path);
    if (s == GZ_OK && u.v[root].i > 0) {
        t = calloc((size_t)u.v[root].i, sizeof *t);
        if (!t) s = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", z.path);
    }
    for (uint32_t it = s == GZ_OK && u.v[root].i > 0 ? u.v[root].a : NO_ID; it != NO_ID;
         it = u.items[it].next) {
        const pitem *pi = &u.items[it];
        if (kind_of(&u, pi->key) != V_STR) {
            s = GZ_FAIL(GZ_EINVAL, "%s: state dict key %zu is not a string", z.path, nt);
            break;
        }
        const char *kp = (const char *)u.p + u.v[pi->key].a;
        size_t kl = u.v[pi->key].b;
        if (memchr(kp, 0, kl)) {
            s = GZ_FAIL(GZ_EINVAL, "%s: state dict key %zu contains a NUL byte", z.path, nt);
            break;
        }
        if (kind_of(&u, pi->val) != V_TENSOR) {
            s = GZ_FAIL(GZ_EINVAL, "%s: state dict entry '%.*s' is not a tensor", z.path,
                        (int)(kl < 200 ? kl : 200), kp);
            break;
        }
        t[nt].name = malloc(kl + 1);
        if (!t[nt].name) {
            s = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", z.path);
            break;
        }
        memcpy(t[nt].name, kp, kl);
        t[nt].name[kl] = 0;
        nt++;
        s = make_tensor(&u, &z, pe->name, pl, pi->val, &t[nt - 1]);
        if (s != GZ_OK) break;
    }
    unpickler_free(&u);
    free(z.e);
    if (s != GZ_OK) {
        gz_tb_free(t, nt);
        return s;
    }
    *out = t;
    *n = nt;
    return GZ_OK;
}

gz_status gz_tb_read_pickle(const char *path, unsigned char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int fd = gz_open_regular(path); /* regular files only: a FIFO does not hang */
    if (fd < 0) {
        int e = errno;
        return GZ_FAIL(e == ENOENT ? GZ_ENOTFOUND : GZ_EIO, "%s: cannot open: %s", path,
                       strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return GZ_FAIL(GZ_EIO, "%s: not a readable, non-empty regular file", path);
    }
    size_t size = (size_t)st.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return GZ_FAIL(GZ_EIO, "%s: mmap failed: %s", path, strerror(e));
    const void *pkl = NULL;
    size_t n = 0;
    gz_status s = gz_tb_pickle(m, size, path, &pkl, &n);
    if (s == GZ_OK) {
        unsigned char *b = malloc(n ? n : 1);
        if (!b)
            s = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", path);
        else {
            memcpy(b, pkl, n);
            *out = b;
            *len = n;
        }
    }
    munmap(m, size);
    return s;
}

gz_status gz_tb_fingerprint(const char *path, struct XXH3_state_s *h) {
    struct stat st;
    if (stat(path, &st) != 0) return GZ_FAIL(GZ_EIO, "%s: %s", path, strerror(errno));
    unsigned char *pkl = NULL;
    size_t plen = 0;
    gz_status s = gz_tb_read_pickle(path, &pkl, &plen);
    if (s != GZ_OK) return s;
    uint64_t size = (uint64_t)st.st_size;
    XXH3_128bits_update(h, &size, sizeof size);
    XXH3_128bits_update(h, pkl, plen);
    free(pkl);
    return GZ_OK;
}
