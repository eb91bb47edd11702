/* image_exif.c - EXIF orientation and capture date with libexif.
 *
 * libexif wants the block to start with "Exif\0\0" (the JPEG APP1 payload); PNG eXIf,
 * WebP EXIF and HEIF Exif items hold bare TIFF data, which gets the prefix here. Its
 * "follow specification" option is switched off: it would invent missing tags (for
 * example a DateTime of "now"). */
#include <stdlib.h>
#include <string.h>

#include <libexif/exif-data.h>

#include "vision_encoder/image_internal.h"

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* "YYYY:MM:DD HH:MM:SS" -> "YYYY-MM-DD HH:MM:SS"; "" if the value does not look like that. */
static void format_date(const ExifEntry *e, char out[20]) {
    out[0] = '\0';
    if (!e || e->format != EXIF_FORMAT_ASCII || !e->data || e->size < 19) return;
    const char *s = (const char *)e->data;
    static const char pattern[] = "dddd:dd:dd dd:dd:dd";
    for (int i = 0; i < 19; i++) {
        if (pattern[i] == 'd' ? !is_digit(s[i]) : s[i] != pattern[i]) return;
    }
    if (memcmp(s, "0000", 4) == 0) return; /* "0000:00:00 00:00:00" = unknown */
    memcpy(out, s, 19);
    out[4] = out[7] = '-';
    out[19] = '\0';
}

void gz_img_exif_parse(const uint8_t *data, size_t size, int *orientation, char taken_at[20]) {
    *orientation = 1;
    taken_at[0] = '\0';
    if (!data || size < 8 || size > (64u << 20)) return;
    uint8_t *buf = NULL;
    const uint8_t *blk = data;
    size_t n = size;
    if (memcmp(data, "Exif\0\0", 6) != 0) {
        buf = malloc(size + 6);
        if (!buf) return;
        memcpy(buf, "Exif\0\0", 6);
        memcpy(buf + 6, data, size);
        blk = buf;
        n = size + 6;
    }
    ExifData *ed = exif_data_new();
    if (!ed) {
        free(buf);
        return;
    }
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(ed, blk, (unsigned int)n);
    ExifByteOrder bo = exif_data_get_byte_order(ed);
    ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
    if (e && e->data && e->components >= 1) {
        int v = 0;
        if (e->format == EXIF_FORMAT_SHORT && e->size >= 2)
            v = exif_get_short(e->data, bo);
        else if (e->format == EXIF_FORMAT_LONG && e->size >= 4)
            v = (int)exif_get_long(e->data, bo);
        if (v >= 1 && v <= 8) *orientation = v;
    }
    format_date(exif_content_get_entry(ed->ifd[EXIF_IFD_EXIF], EXIF_TAG_DATE_TIME_ORIGINAL),
                taken_at);
    exif_data_unref(ed);
    free(buf);
}
