/* test_vision_hostile.c - images built to cost too much: elongated pictures resized only where
 * the centre crop keeps them (bit-exact against a plain resize-everything reference, bounded
 * memory), per-format file-size caps checked before reading, FIFOs refused without blocking.
 * The through-the-binary side (aspect limit, bombs, a run that continues) is
 * tests/cli_hostile_images.sh. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/fileio.h"
#include "gaze.h"
#include "testutil.h"
#include "vision_encoder/image.h"
#include "vision_encoder/preprocess.h"

static int checks = 0;
#define T(cond) CHECK_COUNTED(checks, cond)

/* Peak resident memory a child may reach preprocessing a 1x1,000,000 picture for a CLIP
 * model (shortest edge 224, crop 224): the picture is 3 MB, the crop 150 KB; resizing the
 * whole long side first would need 224 x 224,000,000 x 3 bytes. Generous: it covers the
 * sanitizer build's shadow memory. */
#define ELONGATED_MAX_RSS_MB 400

/* ---- a plain reference: Pillow's BICUBIC over the whole image, then HF's centre crop ----- */

static double ref_bicubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* One pass of Pillow's ImagingResample along an axis: n_in samples -> n_out, `lines` lines of
 * `chans` uint8 values, sample i of line l at in[l * line_step + i * sample_step + c]. */
static void ref_pass(const uint8_t *in, uint8_t *out, int n_in, int n_out, int lines,
                     size_t in_line, size_t in_sample, size_t out_line, size_t out_sample) {
    const double scale = (double)n_in / n_out, fs = scale < 1 ? 1 : scale, support = 2 * fs;
    const int ksize = (int)ceil(support) * 2 + 1;
    double *w = malloc((size_t)ksize * sizeof *w);
    int32_t *k = malloc((size_t)ksize * sizeof *k);
    for (int o = 0; o < n_out; o++) {
        const double center = (o + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > n_in) hi = n_in;
        double sum = 0;
        for (int i = lo; i < hi; i++)
            sum += w[i - lo] = ref_bicubic((i - center + 0.5) / fs);
        for (int i = lo; i < hi; i++) {
            double v = sum != 0 ? w[i - lo] / sum : w[i - lo];
            k[i - lo] = (int32_t)(v < 0 ? -0.5 + v * (1 << 22) : 0.5 + v * (1 << 22));
        }
        for (int l = 0; l < lines; l++)
            for (int c = 0; c < 3; c++) {
                int32_t s = 1 << 21;
                for (int i = lo; i < hi; i++)
                    s += in[l * in_line + (size_t)i * in_sample + c] * k[i - lo];
                s >>= 22;
                out[l * out_line + (size_t)o * out_sample + c] = s < 0 ? 0 : s > 255 ? 255 : s;
            }
    }
    free(w);
    free(k);
}

/* (S, S, 3) model input of rgb (h, w, 3): resize to (rh, rw) [horizontal, then vertical], crop. */
static uint8_t *ref_preprocess(const uint8_t *rgb, int w, int h, int rw, int rh, int S) {
    uint8_t *hp = malloc((size_t)h * rw * 3), *full = malloc((size_t)rh * rw * 3);
    uint8_t *out = calloc((size_t)S * S * 3, 1);
    if (rw != w)
        ref_pass(rgb, hp, w, rw, h, (size_t)w * 3, 3, (size_t)rw * 3, 3);
    else
        memcpy(hp, rgb, (size_t)h * w * 3);
    if (rh != h)
        ref_pass(hp, full, h, rh, rw, 3, (size_t)rw * 3, 3, (size_t)rw * 3);
    else
        memcpy(full, hp, (size_t)h * rw * 3);
    const int top = (int)floor((rh - S) / 2.0), left = (int)floor((rw - S) / 2.0);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            if (y + top >= 0 && y + top < rh && x + left >= 0 && x + left < rw)
                memcpy(out + ((size_t)y * S + x) * 3,
                       full + ((size_t)(y + top) * rw + x + left) * 3, 3);
    free(hp);
    free(full);
    return out;
}

static gz_preproc_config clip_config(int shortest, int crop) {
    gz_preproc_config c;
    memset(&c, 0, sizeof c);
    c.do_resize = 1;
    c.size_shortest_edge = shortest;
    c.do_center_crop = 1;
    c.crop_height = c.crop_width = crop;
    c.resample = 3;
    return c;
}

static gz_preproc_config blip_config(int side) {
    gz_preproc_config c;
    memset(&c, 0, sizeof c);
    c.do_resize = 1;
    c.size_height = c.size_width = side;
    c.resample = 3;
    return c;
}

/* Pixels with structure in both directions, so that a window off by one sample differs. */
static uint8_t *pattern(int w, int h, uint64_t seed) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        p[i] = (uint8_t)(gz_test_splitmix64(&seed) >> 56);
    return p;
}

static void check_window(const char *what, const gz_preproc_config *c, int w, int h) {
    uint8_t *rgb = pattern(w, h, (uint64_t)w * 7919 + (uint64_t)h);
    int rw, rh;
    CHECK_OK(gz_preproc_resize_dims(c, w, h, &rw, &rh));
    const int S = gz_preproc_output_size(c);
    uint8_t *got = NULL;
    CHECK_OK(gz_preproc_resize(c, rgb, w, h, &got));
    uint8_t *want = ref_preprocess(rgb, w, h, rw, rh, S);
    size_t bad = 0, first = 0;
    for (size_t i = 0; got && i < (size_t)S * S * 3; i++)
        if (got[i] != want[i] && bad++ == 0) first = i;
    if (!got || bad)
        fprintf(stderr, "%s: %dx%d -> %dx%d crop %d: %zu values differ (first at %zu)\n", what, w,
                h, rw, rh, S, bad, first);
    T(got && bad == 0);
    free(got);
    free(want);
    free(rgb);
}

/* The windowed resize is bit-exact with resizing everything and cropping: wide, tall, up and
 * down, crops inside and larger than the picture, and a picture tall enough that the
 * horizontal pass runs in several strips (16 MiB each: 200,000 rows of 64 px are 37 MB). */
static void test_window_exact(void) {
    gz_preproc_config clip = clip_config(48, 48), blip = blip_config(64);
    check_window("clip", &clip, 97, 61);
    check_window("clip", &clip, 61, 97);
    check_window("clip", &clip, 30, 20);         /* upscale */
    check_window("clip", &clip, 3, 5000);        /* tall: the crop is the middle */
    check_window("clip", &clip, 5000, 3);        /* wide */
    check_window("blip", &blip, 5, 200000);      /* strips */
    check_window("blip", &blip, 64, 90);         /* width unchanged: vertical pass only */
    check_window("blip", &blip, 90, 64);         /* height unchanged: horizontal pass only */
    gz_preproc_config pad = clip_config(10, 13); /* crop larger than the resize: zero border */
    check_window("pad", &pad, 40, 30);
    gz_preproc_config clip224 = clip_config(224, 224);
    check_window("clip224", &clip224, 7, 3000);
}

/* 1 x 1,000,000 for CLIP 224 in a child: succeeds, within ELONGATED_MAX_RSS_MB. */
static void test_elongated_memory(void) {
    pid_t pid = fork();
    if (pid == 0) {
        const int w = 1, h = 1000000;
        uint8_t *rgb = pattern(w, h, 42);
        gz_preproc_config c = clip_config(224, 224);
        c.do_rescale = 1;
        c.rescale_factor = 1.0 / 255;
        float *x = malloc((size_t)3 * 224 * 224 * sizeof *x);
        gz_status st = gz_preprocess(&c, rgb, w, h, x);
        if (st != GZ_OK) fprintf(stderr, "elongated: %s\n", gz_last_error());
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        fprintf(stderr, "elongated 1x1000000 for CLIP 224: peak RSS %ld MB\n", ru.ru_maxrss / 1024);
        _exit(st != GZ_OK ? 2 : ru.ru_maxrss / 1024 > ELONGATED_MAX_RSS_MB ? 3 : 0);
    }
    int status = 0;
    T(pid > 0 && waitpid(pid, &status, 0) == pid);
    T(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Per-format caps: a sparse 300 MiB file that starts like a JPEG is refused from its size,
 * naming the file and the limit, before it is read; an unknown format is refused from its
 * first bytes; a FIFO is refused at once (no writer: a blocking open would hang). */
static void test_file_caps(void) {
    const char *dir = gz_test_tmpdir("vision_hostile");
    char path[1200];
    snprintf(path, sizeof path, "%s/sparse.jpg", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    T(fd >= 0);
    if (fd < 0) return;
    T(write(fd, "\xff\xd8\xff\xe0", 4) == 4);
    T(ftruncate(fd, (off_t)300 << 20) == 0);
    close(fd);
    unsigned char *data = NULL;
    size_t size = 0;
    CHECK_STATUS_COUNTED(checks, gz_image_read_file(path, &data, &size), GZ_EINVAL);
    T(data == NULL && strstr(gz_last_error(), "sparse.jpg: file too large for JPEG") &&
      strstr(gz_last_error(), "limit 268435456"));
    gz_image img;
    CHECK_STATUS_COUNTED(checks, gz_image_load(path, NULL, &img), GZ_EINVAL);
    T(img.rgb == NULL);
    unlink(path);

    snprintf(path, sizeof path, "%s/movie.jpg", dir);
    FILE *f = fopen(path, "wb");
    T(f != NULL);
    if (f) {
        T(fwrite("\0\0\0\x18"
                 "ftypmp42",
                 1, 12, f) == 12);
        fclose(f);
    }
    CHECK_STATUS_COUNTED(checks, gz_image_read_file(path, &data, &size), GZ_EUNSUPPORTED);
    unlink(path);

    snprintf(path, sizeof path, "%s/pipe.jpg", dir);
    T(mkfifo(path, 0644) == 0);
    alarm(20); /* a regression hangs: fail by signal instead */
    CHECK_STATUS_COUNTED(checks, gz_image_read_file(path, &data, &size), GZ_EIO);
    T(strstr(gz_last_error(), "not a regular file") != NULL);
    CHECK_STATUS_COUNTED(checks, gz_image_load(path, NULL, &img), GZ_EIO);
    T(gz_open_regular(path) == -1 && errno == EINVAL);
    T(gz_fopen_regular(path) == NULL);
    uint64_t hash;
    CHECK_STATUS_COUNTED(checks, gz_hash_file(path, &hash), GZ_EIO);
    alarm(0);
    unlink(path);
}

int main(void) {
    test_window_exact();
    test_elongated_memory();
    test_file_caps();
    return gz_test_finish("test_vision_hostile", checks);
}
