/* image_heif.c - HEIF/HEIC (and AVIF when libheif has a decoder) via libheif.
 *
 * libheif applies the container's transforms (irot/imir/clap) while decoding, so the
 * result is already upright; the EXIF block is returned only for the capture date.
 * heif_init() is called once per process (libheif >= 1.13 loads its plugins there). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libheif/heif.h>

#include "core/error.h"
#include "vision_encoder/image_internal.h"

#define HEIF_SIDE_LIMIT 32768 /* libheif's default maximum side */

static pthread_once_t heif_once = PTHREAD_ONCE_INIT;
static void heif_init_once(void) { heif_init(NULL); }

/* ---- the size libheif will really produce --------------------------------------------
 * libheif reports a picture's size from its 'ispe' property, but decodes a 'grid' or 'iovl'
 * (overlay) item to the output size written in the item's own data, allocating that first: a
 * 481-byte file can declare a 64x64 'ispe' and a 32767x32767 grid (3.2 GB). libheif 1.15 has
 * no call that reports that size, so the primary item's data is read here from the file's
 * boxes (ISO/IEC 14496-12 'meta': pitm, iinf/infe, iloc, idat; ISO/IEC 23008-12 grid/iovl)
 * and checked against the pixel limit before decoding. Only what is needed is parsed; a
 * malformed structure is left for libheif to reject. */

typedef struct {
    const uint8_t *p;
    size_t n;
} span;

static uint64_t be(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* Find the first child box of the given type in [s.p, s.p + s.n); its payload in *out. */
static int find_box(span s, const char *type, span *out) {
    size_t off = 0;
    while (s.n - off >= 8) {
        uint64_t size = be(s.p + off, 4);
        size_t head = 8;
        if (size == 1) {
            if (s.n - off < 16) return 0;
            size = be(s.p + off + 8, 8);
            head = 16;
        } else if (size == 0) {
            size = s.n - off;
        }
        if (size < head || size > s.n - off) return 0;
        if (memcmp(s.p + off + 4, type, 4) == 0) {
            out->p = s.p + off + head;
            out->n = (size_t)size - head;
            return 1;
        }
        off += (size_t)size;
    }
    return 0;
}

/* Bytes [off, off + len) of s, if inside. A box the file lacks (s.p NULL: an iloc entry that
 * points into a missing idat) holds nothing, not even an empty span (NULL + 0 is undefined). */
static int sub(span s, uint64_t off, uint64_t len, span *out) {
    if (!s.p || off > s.n || len > s.n - off) return 0;
    out->p = s.p + off;
    out->n = (size_t)len;
    return 1;
}

/* The primary item's type and its data (single extent, in the file or in idat). */
static int primary_item(span file, char type[5], span *data) {
    span meta, pitm, iinf, iloc, idat = {NULL, 0};
    if (!find_box(file, "meta", &meta) || meta.n < 4) return 0;
    meta.p += 4, meta.n -= 4; /* FullBox version and flags */
    if (!find_box(meta, "pitm", &pitm) || !find_box(meta, "iinf", &iinf) ||
        !find_box(meta, "iloc", &iloc))
        return 0;
    find_box(meta, "idat", &idat);
    if (pitm.n < 6) return 0;
    const uint64_t primary = pitm.p[0] == 0 ? be(pitm.p + 4, 2)
                             : pitm.n >= 8  ? be(pitm.p + 4, 4)
                                            : 0;
    /* iinf: version, flags, entry count (16 or 32 bits), then infe boxes */
    if (iinf.n < 6) return 0;
    size_t skip = iinf.p[0] == 0 ? 6 : 8;
    if (iinf.n < skip) return 0;
    span entries = {iinf.p + skip, iinf.n - skip}, infe;
    type[0] = 0;
    while (find_box(entries, "infe", &infe)) {
        if (infe.n >= 12 && infe.p[0] >= 2) {
            const int idb = infe.p[0] == 2 ? 2 : 4;
            if (infe.n >= (size_t)(4 + idb + 2 + 4) && be(infe.p + 4, idb) == primary) {
                memcpy(type, infe.p + 4 + idb + 2, 4);
                type[4] = 0;
                break;
            }
        }
        const size_t used = (size_t)(infe.p + infe.n - entries.p);
        entries.p += used, entries.n -= used;
    }
    if (!type[0]) return 0;
    /* iloc */
    if (iloc.n < 8) return 0;
    const int ver = iloc.p[0];
    const int off_sz = iloc.p[4] >> 4, len_sz = iloc.p[4] & 15, base_sz = iloc.p[5] >> 4;
    const int idx_sz = ver >= 1 ? iloc.p[5] & 15 : 0;
    size_t at = 6;
    const int cnt_sz = ver < 2 ? 2 : 4, id_sz = ver < 2 ? 2 : 4;
    if (iloc.n < at + cnt_sz) return 0;
    uint64_t count = be(iloc.p + at, cnt_sz);
    at += cnt_sz;
    for (uint64_t i = 0; i < count; i++) {
        if (iloc.n < at + id_sz + 2 + 2 + base_sz + 2) return 0;
        uint64_t id = be(iloc.p + at, id_sz);
        at += id_sz;
        int method = 0;
        if (ver >= 1) method = iloc.p[at + 1] & 15, at += 2;
        at += 2; /* data_reference_index */
        if (iloc.n < at + base_sz + 2) return 0;
        uint64_t base = be(iloc.p + at, base_sz);
        at += base_sz;
        uint64_t extents = be(iloc.p + at, 2);
        at += 2;
        const size_t ext_sz = (size_t)idx_sz + off_sz + len_sz;
        if (extents > (iloc.n - at) / (ext_sz ? ext_sz : 1)) return 0;
        if (id == primary) {
            if (extents != 1) return 0;
            uint64_t off = base + be(iloc.p + at + idx_sz, off_sz);
            uint64_t len = be(iloc.p + at + idx_sz + off_sz, len_sz);
            return method == 0   ? sub(file, off, len, data)
                   : method == 1 ? sub(idat, off, len, data)
                                 : 0;
        }
        at += (size_t)extents * ext_sz;
    }
    return 0;
}

/* The output size of a grid or overlay primary item: 1 and *w, *h set; 0 for other items. */
static int derived_size(const uint8_t *d, size_t n, int64_t *w, int64_t *h) {
    char type[5];
    span data;
    if (!primary_item((span){d, n}, type, &data)) return 0;
    size_t at;
    if (strcmp(type, "grid") == 0)
        at = 4; /* version, flags, rows - 1, columns - 1 */
    else if (strcmp(type, "iovl") == 0)
        at = 2 + 8; /* version, flags, canvas fill (4 x 16 bits) */
    else
        return 0;
    if (data.n < 2) return 0;
    const int field = data.p[1] & 1 ? 4 : 2;
    if (data.n < at + 2 * (size_t)field) return 0;
    *w = (int64_t)be(data.p + at, field);
    *h = (int64_t)be(data.p + at + field, field);
    return 1;
}

/* The primary image's "Exif" metadata block (4-byte TIFF header offset, then TIFF data). */
static void get_exif(const struct heif_image_handle *h, gz_img_exif *exif) {
    heif_item_id id;
    if (heif_image_handle_get_list_of_metadata_block_IDs(h, "Exif", &id, 1) < 1) return;
    size_t n = heif_image_handle_get_metadata_size(h, id);
    if (n < 4 || n > (64u << 20)) return;
    uint8_t *buf = malloc(n);
    if (!buf) return;
    struct heif_error e = heif_image_handle_get_metadata(h, id, buf);
    uint32_t skip =
        (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    if (e.code != heif_error_Ok || skip > n - 4) {
        free(buf);
        return;
    }
    memmove(buf, buf + 4 + skip, n - 4 - skip);
    exif->data = buf;
    exif->size = n - 4 - skip;
}

gz_status gz_img_decode_heif(const uint8_t *data, size_t size, const char *name,
                             const gz_image_params *p, gz_image *img, gz_img_exif *exif) {
    pthread_once(&heif_once, heif_init_once);
    gz_status st = GZ_OK;
    struct heif_context *ctx = heif_context_alloc();
    struct heif_image_handle *h = NULL;
    struct heif_image *him = NULL;
    uint8_t *rgb = NULL;
    if (!ctx) return GZ_FAIL(GZ_ENOMEM, "%s: cannot create HEIF reader", name);
    int64_t gw, gh;
    if (derived_size(data, size, &gw, &gh) &&
        (st = gz_img_check_pixels(name, gw, gh, p->max_pixels)) != GZ_OK)
        goto done;
    /* libheif's own limit on a side (its default is 32768), for what the check above does not
     * see (grid tiles, other derived items): no side of an allowed picture exceeds this. */
    const double side = sqrt((double)p->max_pixels * GZ_IMAGE_MAX_ASPECT) + 1;
    heif_context_set_maximum_image_size_limit(ctx,
                                              side < HEIF_SIDE_LIMIT ? (int)side : HEIF_SIDE_LIMIT);
    struct heif_error e = heif_context_read_from_memory_without_copy(ctx, data, size, NULL);
    if (e.code != heif_error_Ok) {
        st = GZ_FAIL(e.code == heif_error_Unsupported_filetype ||
                             e.code == heif_error_Unsupported_feature
                         ? GZ_EUNSUPPORTED
                         : GZ_EINVAL,
                     "%s: cannot read HEIF: %s", name, e.message);
        goto done;
    }
    e = heif_context_get_primary_image_handle(ctx, &h);
    if (e.code != heif_error_Ok) {
        st = GZ_FAIL(GZ_EINVAL, "%s: HEIF has no primary image: %s", name, e.message);
        goto done;
    }
    int w = heif_image_handle_get_width(h), hh = heif_image_handle_get_height(h);
    st = gz_img_check_pixels(name, w, hh, p->max_pixels);
    if (st != GZ_OK) goto done;
    e = heif_decode_image(h, &him, heif_colorspace_RGB, heif_chroma_interleaved_RGB, NULL);
    if (e.code != heif_error_Ok) {
        st = GZ_FAIL(e.code == heif_error_Unsupported_feature ||
                             e.code == heif_error_Unsupported_filetype
                         ? GZ_EUNSUPPORTED
                         : GZ_EINVAL,
                     "%s: cannot decode HEIF: %s", name, e.message);
        goto done;
    }
    w = heif_image_get_width(him, heif_channel_interleaved);
    hh = heif_image_get_height(him, heif_channel_interleaved);
    int stride = 0;
    const uint8_t *plane = heif_image_get_plane_readonly(him, heif_channel_interleaved, &stride);
    if (!plane || w <= 0 || hh <= 0 || stride < w * 3) {
        st = GZ_FAIL(GZ_EINVAL, "%s: HEIF decoder returned no RGB plane", name);
        goto done;
    }
    st = gz_img_alloc_rgb(name, w, hh, p->max_pixels, &rgb);
    if (st != GZ_OK) goto done;
    for (int y = 0; y < hh; y++)
        memcpy(rgb + (size_t)y * w * 3, plane + (size_t)y * stride, (size_t)w * 3);
    get_exif(h, exif);
    img->rgb = rgb;
    rgb = NULL;
    img->width = img->src_width = w;
    img->height = img->src_height = hh;
    memcpy(img->format, "heif", 5);
done:
    free(rgb);
    if (him) heif_image_release(him);
    if (h) heif_image_handle_release(h);
    heif_context_free(ctx);
    return st;
}
