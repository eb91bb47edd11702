/* image_jpeg.c - JPEG decoding with libjpeg-turbo, PIL-compatible colour conversion.
 *
 * Full-size decodes use ISLOW IDCT and fancy upsampling, libjpeg's defaults and PIL's, so
 * the pixels equal PIL's. When params->min_size > 0 libjpeg's DCT scaling (M/8, M = 1..8)
 * picks the smallest scale whose both sides stay >= min_size (fast path for big photos).
 * Errors never exit: libjpeg's error_exit longjmps back here; the "premature end of file"
 * warning (truncated data, which libjpeg would pad with grey) is treated as an error. */
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "core/error.h"
#include "vision_encoder/image_internal.h"

#define JPEG_APP1 (JPEG_APP0 + 1)
#define EXIF_MAX_SEGMENT 0xFFFF

typedef struct {
    struct jpeg_error_mgr pub; /* must be first */
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int code; /* libjpeg message code of the failure */
    int truncated;
} jpeg_err;

static void on_error_exit(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    e->code = e->pub.msg_code;
    e->pub.format_message(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings (level < 0) are ignored as PIL does, except a premature end of data. */
static void on_emit_message(j_common_ptr cinfo, int level) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    if (level < 0) {
        if (e->pub.msg_code == JWRN_JPEG_EOF) {
            e->code = e->pub.msg_code;
            e->truncated = 1;
            e->pub.format_message(cinfo, e->msg);
            longjmp(e->jb, 1);
        }
        e->pub.num_warnings++;
    }
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; /* never print */ }

/* PIL's CMYK -> RGB (Convert.c cmyk2rgb) on values already inverted by rawmode "CMYK;I". */
static uint8_t cmyk_channel(int c, int k) {
    int nk = 255 - k;
    int tmp = c * nk + 128;
    int v = nk - (((tmp >> 8) + tmp) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    uint8_t *rgb;
    uint8_t *row;
} jpeg_ctx;

gz_status gz_img_decode_jpeg(const uint8_t *data, size_t size, const char *name,
                             const gz_image_params *p, gz_image *img, gz_img_exif *exif) {
    jpeg_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return GZ_FAIL(GZ_ENOMEM, "%s: out of memory", name);
    gz_status st = GZ_OK;
    struct jpeg_decompress_struct *ci = &ctx->cinfo;
    ci->err = jpeg_std_error(&ctx->err.pub);
    ctx->err.pub.error_exit = on_error_exit;
    ctx->err.pub.emit_message = on_emit_message;
    ctx->err.pub.output_message = on_output_message;
    if (setjmp(ctx->err.jb)) {
        if (ctx->err.truncated)
            st = GZ_FAIL(GZ_EINVAL, "%s: truncated JPEG (premature end of data)", name);
        else if (ctx->err.code == JERR_BAD_PRECISION || ctx->err.code == JERR_NOT_COMPILED ||
                 ctx->err.code == JERR_ARITH_NOTIMPL)
            st = GZ_FAIL(GZ_EUNSUPPORTED, "%s: unsupported JPEG: %s", name, ctx->err.msg);
        else
            st = GZ_FAIL(GZ_EINVAL, "%s: corrupt JPEG: %s", name, ctx->err.msg);
        goto done;
    }
    jpeg_create_decompress(ci);
    jpeg_mem_src(ci, data, (unsigned long)size);
    jpeg_save_markers(ci, JPEG_APP1, EXIF_MAX_SEGMENT);
    jpeg_read_header(ci, TRUE);

    st = gz_img_check_pixels(name, ci->image_width, ci->image_height, p->max_pixels);
    if (st != GZ_OK) goto done;

    int ncomp = ci->num_components;
    int cmyk = 0;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE: ci->out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci->out_color_space = JCS_CMYK;
        cmyk = 1;
        break;
    case JCS_RGB:
    case JCS_YCbCr: ci->out_color_space = JCS_RGB; break;
    default:
        st = GZ_FAIL(GZ_EUNSUPPORTED, "%s: unsupported JPEG colour space (%d components)", name,
                     ncomp);
        goto done;
    }
    ci->dct_method = JDCT_ISLOW;
    ci->do_fancy_upsampling = TRUE;
    ci->scale_num = 8;
    ci->scale_denom = 8;
    if (p->min_size > 0) {
        for (unsigned m = 1; m <= 8; m++) {
            ci->scale_num = m;
            jpeg_calc_output_dimensions(ci);
            if ((int)ci->output_width >= p->min_size && (int)ci->output_height >= p->min_size)
                break;
        }
    }
    jpeg_start_decompress(ci);
    const int w = (int)ci->output_width, h = (int)ci->output_height;
    const int oc = ci->output_components;
    if (!((oc == 1 && !cmyk) || (oc == 3 && !cmyk) || (oc == 4 && cmyk))) {
        st = GZ_FAIL(GZ_EUNSUPPORTED, "%s: unexpected JPEG output components %d", name, oc);
        goto done;
    }
    st = gz_img_alloc_rgb(name, w, h, p->max_pixels, &ctx->rgb);
    if (st != GZ_OK) goto done;
    ctx->row = malloc((size_t)w * (size_t)oc);
    if (!ctx->row) {
        st = GZ_FAIL(GZ_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    while (ci->output_scanline < ci->output_height) {
        size_t y = ci->output_scanline;
        uint8_t *dst = ctx->rgb + y * (size_t)w * 3;
        JSAMPROW rows[1] = {oc == 3 ? dst : ctx->row};
        if (jpeg_read_scanlines(ci, rows, 1) != 1) {
            st = GZ_FAIL(GZ_EINVAL, "%s: truncated JPEG (premature end of data)", name);
            goto done;
        }
        if (oc == 1) {
            for (int x = 0; x < w; x++)
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = ctx->row[x];
        } else if (oc == 4) {
            /* PIL opens every 4-component JPEG as "CMYK;I" (Adobe inverted values). */
            for (int x = 0; x < w; x++) {
                const uint8_t *s = ctx->row + 4 * x;
                int k = 255 - s[3];
                dst[3 * x + 0] = cmyk_channel(255 - s[0], k);
                dst[3 * x + 1] = cmyk_channel(255 - s[1], k);
                dst[3 * x + 2] = cmyk_channel(255 - s[2], k);
            }
        }
    }
    /* Trailing data after the last scanline (or a missing EOI) is not an error for PIL
     * either, so we stop here instead of calling jpeg_finish_decompress. */
    for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP1 && m->data_length > 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            exif->data = malloc(m->data_length);
            if (exif->data) {
                memcpy(exif->data, m->data, m->data_length);
                exif->size = m->data_length;
            }
            break;
        }
    }
    img->rgb = ctx->rgb;
    ctx->rgb = NULL;
    img->width = w;
    img->height = h;
    img->src_width = (int)ci->image_width;
    img->src_height = (int)ci->image_height;
    memcpy(img->format, "jpeg", 5);
done:
    jpeg_destroy_decompress(ci);
    free(ctx->rgb);
    free(ctx->row);
    free(ctx);
    return st;
}
