/* image_gif.c - GIF first frame via giflib, as PIL's Image.open(gif).convert('RGB').
 *
 * The canvas is the logical screen (enlarged if the first frame sticks out), filled with
 * the frame's transparent index when it has one, else index 0, as Pillow 9 does for frame
 * 0; the frame is drawn with its local palette (else the global one) and looked up to RGB
 * ignoring transparency. Only the first image descriptor is decoded. */
#include <stdlib.h>
#include <string.h>

#include <gif_lib.h>

#include "core/error.h"
#include "vision_encoder/image_internal.h"

typedef struct {
    const uint8_t *data;
    size_t size, off;
    int short_read;
} gif_src;

static int read_mem(GifFileType *g, GifByteType *out, int n) {
    gif_src *s = g->UserData;
    size_t want = n > 0 ? (size_t)n : 0;
    size_t left = s->size - s->off;
    if (want > left) {
        want = left;
        s->short_read = 1;
    }
    memcpy(out, s->data + s->off, want);
    s->off += want;
    return (int)want;
}

static gz_status gif_fail(const char *name, GifFileType *g, const gif_src *s, const char *what) {
    if (s->short_read) return GZ_FAIL(GZ_EINVAL, "%s: truncated GIF (premature end of data)", name);
    const char *why = g ? GifErrorString(g->Error) : NULL;
    return GZ_FAIL(GZ_EINVAL, "%s: corrupt GIF (%s: %s)", name, what, why ? why : "unknown error");
}

gz_status gz_img_decode_gif(const uint8_t *data, size_t size, const char *name,
                            const gz_image_params *p, gz_image *img, gz_img_exif *exif) {
    (void)exif; /* GIF has no EXIF */
    gif_src src = {data, size, 0, 0};
    int err = 0;
    GifFileType *g = DGifOpen(&src, read_mem, &err);
    if (!g) {
        if (src.short_read)
            return GZ_FAIL(GZ_EINVAL, "%s: truncated GIF (premature end of data)", name);
        const char *why = GifErrorString(err);
        return GZ_FAIL(GZ_EINVAL, "%s: corrupt GIF header (%s)", name, why ? why : "unknown error");
    }
    gz_status st = GZ_OK;
    uint8_t *idx = NULL, *rgb = NULL;
    int transparent = -1;
    for (;;) {
        GifRecordType rt;
        if (DGifGetRecordType(g, &rt) == GIF_ERROR) {
            st = gif_fail(name, g, &src, "record");
            goto done;
        }
        if (rt == TERMINATE_RECORD_TYPE) {
            st = GZ_FAIL(GZ_EINVAL, "%s: GIF contains no image", name);
            goto done;
        }
        if (rt == EXTENSION_RECORD_TYPE) {
            int code = 0;
            GifByteType *ext = NULL;
            if (DGifGetExtension(g, &code, &ext) == GIF_ERROR) {
                st = gif_fail(name, g, &src, "extension");
                goto done;
            }
            /* Graphics control: byte 1 bit 0 = has transparency, byte 4 = its index. */
            if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4)
                transparent = (ext[1] & 1) ? ext[4] : -1;
            while (ext) {
                if (DGifGetExtensionNext(g, &ext) == GIF_ERROR) {
                    st = gif_fail(name, g, &src, "extension");
                    goto done;
                }
            }
            continue;
        }
        if (rt != IMAGE_DESC_RECORD_TYPE) continue;
        if (DGifGetImageDesc(g) == GIF_ERROR) {
            st = gif_fail(name, g, &src, "image descriptor");
            goto done;
        }
        const GifImageDesc *d = &g->Image;
        if (d->Width <= 0 || d->Height <= 0 || d->Left < 0 || d->Top < 0) {
            st = GZ_FAIL(GZ_EINVAL, "%s: corrupt GIF (bad frame rectangle)", name);
            goto done;
        }
        int64_t cw = g->SWidth, ch = g->SHeight;
        if ((int64_t)d->Left + d->Width > cw) cw = (int64_t)d->Left + d->Width;
        if ((int64_t)d->Top + d->Height > ch) ch = (int64_t)d->Top + d->Height;
        st = gz_img_check_pixels(name, cw, ch, p->max_pixels);
        if (st != GZ_OK) goto done;
        /* (ch, cw) palette indices, filled as Pillow does for frame 0. */
        idx = malloc((size_t)cw * (size_t)ch);
        if (!idx) {
            st = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", name);
            goto done;
        }
        memset(idx, transparent >= 0 ? transparent : 0, (size_t)cw * (size_t)ch);
        static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
        int passes = d->Interlace ? 4 : 1;
        for (int pass = 0; pass < passes; pass++) {
            int y0 = d->Interlace ? start[pass] : 0, dy = d->Interlace ? step[pass] : 1;
            for (int y = y0; y < d->Height; y += dy) {
                uint8_t *row = idx + ((size_t)(d->Top + y) * (size_t)cw + (size_t)d->Left);
                if (DGifGetLine(g, row, d->Width) == GIF_ERROR) {
                    st = gif_fail(name, g, &src, "image data");
                    goto done;
                }
            }
        }
        const ColorMapObject *cm = d->ColorMap ? d->ColorMap : g->SColorMap;
        st = gz_img_alloc_rgb(name, cw, ch, p->max_pixels, &rgb);
        if (st != GZ_OK) goto done;
        size_t n = (size_t)cw * (size_t)ch;
        for (size_t i = 0; i < n; i++) {
            int v = idx[i];
            uint8_t *o = rgb + 3 * i;
            if (!cm) { /* no palette: Pillow treats the indices as grey levels */
                o[0] = o[1] = o[2] = (uint8_t)v;
            } else if (v < cm->ColorCount) {
                o[0] = cm->Colors[v].Red;
                o[1] = cm->Colors[v].Green;
                o[2] = cm->Colors[v].Blue;
            } else {
                o[0] = o[1] = o[2] = 0;
            }
        }
        img->rgb = rgb;
        rgb = NULL;
        img->width = img->src_width = (int)cw;
        img->height = img->src_height = (int)ch;
        memcpy(img->format, "gif", 4);
        break;
    }
done:
    free(idx);
    free(rgb);
    DGifCloseFile(g, &err);
    return st;
}
