/* preview.c - inline thumbnails on terminals that speak an image protocol (gaze search
 * --preview): kitty's graphics protocol, iTerm2's inline images, and sixel through libsixel.
 *
 * The protocol is chosen from the environment the terminal sets (as rclip's --preview does);
 * nothing is drawn where none is known, so a pipe or a plain terminal gets plain text. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sixel.h>

#include "cli/cli.h"

int preview_protocol_parse(const char *s, preview_protocol *out) {
    static const struct {
        const char *name;
        preview_protocol p;
    } names[] = {{"kitty", PREVIEW_KITTY},
                 {"iterm", PREVIEW_ITERM},
                 {"iterm2", PREVIEW_ITERM},
                 {"sixel", PREVIEW_SIXEL},
                 {"none", PREVIEW_NONE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].p;
            return 0;
        }
    return -1;
}

static int env_is(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

preview_protocol preview_detect(void) {
    if (!isatty(STDOUT_FILENO)) return PREVIEW_NONE;
    /* tmux and screen swallow the escapes unless passed through: plain text there */
    const char *term = getenv("TERM");
    if (getenv("TMUX") || getenv("STY") ||
        (term && (strncmp(term, "screen", 6) == 0 || strncmp(term, "tmux", 4) == 0)))
        return PREVIEW_NONE;
    if (getenv("KITTY_WINDOW_ID") || env_is("TERM", "xterm-kitty") ||
        env_is("TERM", "xterm-ghostty") || env_is("TERM_PROGRAM", "ghostty"))
        return PREVIEW_KITTY;
    if (env_is("TERM_PROGRAM", "iTerm.app") || env_is("LC_TERMINAL", "iTerm2") ||
        env_is("TERM_PROGRAM", "WezTerm"))
        return PREVIEW_ITERM;
    /* terminals whose TERM names them and that draw sixel by default */
    if (term && (strstr(term, "sixel") || strncmp(term, "mlterm", 6) == 0 ||
                 strncmp(term, "foot", 4) == 0 || strncmp(term, "yaft", 4) == 0 ||
                 strcmp(term, "contour") == 0))
        return PREVIEW_SIXEL;
    return PREVIEW_NONE;
}

/* kitty: raw RGB (f=24) in base64, sent in chunks of at most 4096 bytes as the protocol asks:
 * ESC _G a=T,f=24,s=W,v=H,m=1;<chunk> ESC \, then ESC _G m=1;<chunk> ESC \ ..., last m=0. */
#define KITTY_CHUNK 4096
static int draw_kitty(FILE *f, const gz_image *img) {
    char *b64 = out_base64(img->rgb, (size_t)img->width * (size_t)img->height * 3);
    if (!b64) return -1;
    size_t n = strlen(b64);
    for (size_t off = 0; off < n || off == 0; off += KITTY_CHUNK) {
        size_t len = n - off < KITTY_CHUNK ? n - off : KITTY_CHUNK;
        int more = off + len < n;
        if (off == 0)
            fprintf(f, "\033_Ga=T,f=24,s=%d,v=%d,m=%d;", img->width, img->height, more);
        else
            fprintf(f, "\033_Gm=%d;", more);
        fwrite(b64 + off, 1, len, f);
        fputs("\033\\", f);
        if (!more) break;
    }
    free(b64);
    return 0;
}

/* iTerm2: ESC ] 1337 ; File=inline=1;size=N:<base64 of a JPEG> BEL */
static int draw_iterm(FILE *f, const gz_image *img) {
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    if (out_jpeg(img, &jpg, &n) != 0) {
        free(jpg);
        return -1;
    }
    char *b64 = out_base64(jpg, n);
    free(jpg);
    if (!b64) return -1;
    fprintf(f, "\033]1337;File=inline=1;size=%lu;preserveAspectRatio=1:%s\a", n, b64);
    free(b64);
    return 0;
}

static int sixel_write(char *data, int size, void *priv) {
    return fwrite(data, 1, (size_t)size, (FILE *)priv) == (size_t)size ? 0 : -1;
}

/* sixel: libsixel picks a 256-colour palette and writes ESC P ... q <sixels> ESC \. */
static int draw_sixel(FILE *f, gz_image *img) {
    sixel_output_t *output = NULL;
    sixel_dither_t *dither = NULL;
    SIXELSTATUS st = sixel_output_new(&output, sixel_write, f, NULL);
    if (SIXEL_SUCCEEDED(st)) st = sixel_dither_new(&dither, 256, NULL);
    if (SIXEL_SUCCEEDED(st))
        st = sixel_dither_initialize(dither, img->rgb, img->width, img->height,
                                     SIXEL_PIXELFORMAT_RGB888, SIXEL_LARGE_AUTO, SIXEL_REP_AUTO,
                                     SIXEL_QUALITY_AUTO);
    if (SIXEL_SUCCEEDED(st))
        st = sixel_encode(img->rgb, img->width, img->height, 3, dither, output);
    if (dither) sixel_dither_unref(dither);
    if (output) sixel_output_unref(output);
    return SIXEL_SUCCEEDED(st) ? 0 : -1;
}

int preview_draw(FILE *f, preview_protocol p, const char *path, int max_side) {
    if (p == PREVIEW_NONE) return 0;
    gz_image img;
    if (out_thumbnail(path, max_side, 1, &img) != 0) return -1;
    int rc = p == PREVIEW_KITTY   ? draw_kitty(f, &img)
             : p == PREVIEW_ITERM ? draw_iterm(f, &img)
                                  : draw_sixel(f, &img);
    gz_image_free(&img);
    if (rc == 0) fputc('\n', f);
    return rc;
}
