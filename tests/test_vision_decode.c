/* test_vision_decode.c - image decoding: PIL parity on the fixtures, every sample photo,
 * EXIF orientation 1..8, DCT-scaled decode, and broken inputs that must fail cleanly. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libheif/heif.h>

#include "core/safetensors.h"
#include "gaze.h"
#include "testutil.h"

/* x265 (libheif's HEVC encoder, used only by test_heif) keeps a small allocation until exit;
 * tell LeakSanitizer in sanitizer builds (this hook is ignored otherwise). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libx265\n"; }

static int checks = 0;
#define T(cond) CHECK_COUNTED(checks, cond)

/* Tolerances. Decoding the fixtures is compared bit-exact with PIL (no tolerance); the bounds
 * below are for comparisons between two different encodings of one picture, where lossy
 * re-encoding makes exact equality impossible. Each is set well above what we measure and well
 * below what the bug it guards against would give (measured values in uint8 levels, 0..255).
 *
 * ORIENT_MAX_MEAN_DIFF: mean |diff| of exif_orient_N.jpg turned upright against
 * exif_orient_1.jpg on a 24x24 box-averaged grid. Each file is a separately JPEG-encoded
 * rotated copy: measured 0.11..0.28, against 64.6..79.6 for untransformed pixels (below).
 * ORIENT_MIN_RAW_DIFF: the same distance for the stored (untransformed) pixels of 2..4, which
 * must be far, or the orientation test proves nothing: measured 64.6..79.6. */
#define ORIENT_MAX_MEAN_DIFF 3.0
#define ORIENT_MIN_RAW_DIFF 10.0
/* HUGE_REFUSE_MAX_CPU_S: a 100000 x 100000 PNG header must be refused before any pixel
 * buffer exists; measured ~1e-5 s of CPU, while allocating and filling 30 GB would take
 * seconds (or fail). */
#define HUGE_REFUSE_MAX_CPU_S 0.5
/* HEIF_HIGH / HEIF_LOW: test_heif writes 220 and 30 in the red and blue channels of two
 * halves (HEVC, quality 95); a pixel 5 rows in from the edge decodes to 220/30 (measured 219 or
 * 220, and 30). The thresholds only tell which half landed where (a wrong rotation swaps them),
 * so they sit about midway. */
#define HEIF_HIGH 150
#define HEIF_LOW 100
/* CMYK_MAX_MEAN_DIFF: food_coffee_cmyk_adobe.jpg against food_coffee.png, the same picture
 * converted to CMYK and JPEG-encoded: measured 2.17; a wrong Adobe inversion gives a photo
 * negative, mean difference ~100. */
#define CMYK_MAX_MEAN_DIFF 6.0
/* CMYK_RED_MIN / CMYK_RED_MAX_OTHER: pixel (0, 0) of Pillow's cmyk_pil_sample.jpg is C=0,
 * M,Y>0.8, K=0, i.e. red: measured (255, 13, 25). The margins allow for JPEG's chroma
 * subsampling at the corner; inverted CMYK would give a cyan pixel. */
#define CMYK_RED_MIN 240
#define CMYK_RED_MAX_OTHER 60

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(d, 1, n, f);
    fclose(f);
}

/* ---- fixture images vs PIL's decode ------------------------------------------------- */

static void compare_rgb(const char *what, const gz_image *im, const gz_st_tensor *t) {
    T(t != NULL);
    if (!t) return;
    T(t->dtype == GZ_DT_U8 && t->ndim == 3 && t->shape[2] == 3);
    if (t->shape[0] != im->height || t->shape[1] != im->width) {
        fprintf(stderr, "%s: size %dx%d, PIL %lldx%lld\n", what, im->width, im->height,
                (long long)t->shape[1], (long long)t->shape[0]);
        T(0);
        return;
    }
    const uint8_t *want = t->data;
    size_t n = (size_t)im->width * im->height * 3, bad = 0;
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)im->rgb[i] - (int)want[i]);
        if (d) bad++;
        if (d > maxd) maxd = d;
    }
    printf("  %-40s %4dx%-4d max|diff| %d, %zu of %zu values differ\n", what, im->width, im->height,
           maxd, bad, n);
    T(bad == 0);
}

static void test_fixture_images(void) {
    static const char *const names[] = {"a1_chelsea.jpg", "a2_rocket.jpg", "a3_coffee_exif6.jpg",
                                        "a4_coins_gray.png", "a5_clip_diagram_rgba.png"};
    gz_st_file *st = NULL;
    CHECK_OK(gz_st_open(gz_test_path("fixtures/images/decoded_rgb.safetensors"), &st));
    if (!st) return;
    printf("fixture images vs PIL Image.open().convert('RGB'):\n");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        gz_image_params p = gz_image_default_params();
        p.exif_orient = 0;
        gz_image im;
        gz_status s = gz_image_load(gz_test_path("fixtures/images/%s", names[i]), &p, &im);
        CHECK_OK(s);
        T(s == GZ_OK);
        if (s != GZ_OK) continue;
        compare_rgb(names[i], &im, gz_st_find(st, names[i]));
        T(im.src_width == im.width && im.src_height == im.height);
        char key[128];
        snprintf(key, sizeof key, "%s:exif_transposed", names[i]);
        const gz_st_tensor *tt = gz_st_find(st, key);
        if (tt) {
            gz_image im2;
            p.exif_orient = 1;
            CHECK_OK(gz_image_load(gz_test_path("fixtures/images/%s", names[i]), &p, &im2));
            T(im2.orientation == im.orientation && im.orientation != 1);
            compare_rgb(key, &im2, tt);
            gz_image_free(&im2);
        } else {
            T(im.orientation == 1);
        }
        gz_image_free(&im);
    }
    gz_st_close(st);
}

/* ---- every sample photo ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_photos(void) {
    const char *dir = gz_test_path("photos");
    DIR *d = opendir(dir);
    T(d != NULL);
    if (!d) return;
    char *files[256];
    int nf = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nf < 256)
        if (e->d_name[0] != '.' && !strstr(e->d_name, ".md")) files[nf++] = strdup(e->d_name);
    closedir(d);
    qsort(files, (size_t)nf, sizeof files[0], cmp_str);
    T(nf >= 30);
    printf("sample photos (%d): upright size, format, EXIF orientation, date; then with "
           "min_size 224\n",
           nf);
    for (int i = 0; i < nf; i++) {
        const char *path = gz_test_path("photos/%s", files[i]);
        gz_image im;
        gz_image_params p = gz_image_default_params();
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        gz_status s = gz_image_load(path, &p, &im);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        CHECK_OK(s);
        T(s == GZ_OK);
        if (s != GZ_OK) continue;
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        T(im.width > 0 && im.height > 0 && im.rgb != NULL);
        T(im.width == im.src_width && im.height == im.src_height); /* full-size decode */
        /* DCT-scaled decode: both sides >= 224 (unless the photo is smaller), same source. */
        gz_image sm;
        p.min_size = 224;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        s = gz_image_load(path, &p, &sm);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        CHECK_OK(s);
        double ms2 = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (s == GZ_OK) {
            int minside = im.width < im.height ? im.width : im.height;
            int smin = sm.width < sm.height ? sm.width : sm.height;
            T(smin >= (minside < 224 ? minside : 224));
            T(sm.width <= im.width && sm.height <= im.height);
            T(sm.src_width == im.src_width && sm.src_height == im.src_height);
            /* same aspect as the full picture, to within libjpeg's rounding up */
            T(abs(sm.width * im.height - sm.height * im.width) <= im.width + im.height);
            T(sm.orientation == im.orientation);
            /* JPEG scales are M/8: the next smaller one would be below 224 */
            if (strcmp(im.format, "jpeg") == 0 && sm.width < im.width) T(smin < 2 * 224 + 8);
        }
        printf("  %-42s %4dx%-4d %-4s o=%d %-19s %6.1f ms | min224: %4dx%-4d %6.1f ms\n", files[i],
               im.width, im.height, im.format, im.orientation, im.taken_at[0] ? im.taken_at : "-",
               ms, sm.width, sm.height, ms2);
        gz_image_free(&sm);
        gz_image_free(&im);
    }
    for (int i = 0; i < nf; i++)
        free(files[i]);
}

/* ---- EXIF orientation 1..8 ---------------------------------------------------------- */

#define G 24 /* comparison grid */

/* Box-average an image down to (G, G, 3) floats. */
static void grid(const gz_image *im, float *out) {
    for (int gy = 0; gy < G; gy++)
        for (int gx = 0; gx < G; gx++) {
            int y0 = gy * im->height / G, y1 = (gy + 1) * im->height / G;
            int x0 = gx * im->width / G, x1 = (gx + 1) * im->width / G;
            double s[3] = {0, 0, 0};
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++)
                    for (int c = 0; c < 3; c++)
                        s[c] += im->rgb[((size_t)y * im->width + x) * 3 + c];
            double n = (double)(y1 - y0) * (x1 - x0);
            for (int c = 0; c < 3; c++)
                out[(gy * G + gx) * 3 + c] = (float)(s[c] / n);
        }
}

static double mean_abs(const float *a, const float *b) {
    double s = 0;
    for (int i = 0; i < G * G * 3; i++)
        s += a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
    return s / (G * G * 3);
}

static void test_orientation(void) {
    float ref[G * G * 3], got[G * G * 3];
    gz_image_params p = gz_image_default_params();
    gz_image im1;
    CHECK_OK(gz_image_load(gz_test_path("photos/exif_orient_1.jpg"), &p, &im1));
    if (!im1.rgb) return;
    grid(&im1, ref);
    printf("EXIF orientation: mean |diff| vs exif_orient_1 on a %dx%d grid (upright | as stored)\n",
           G, G);
    for (int o = 1; o <= 8; o++) {
        const char *path = gz_test_path("photos/exif_orient_%d.jpg", o);
        gz_image up, raw;
        p.exif_orient = 1;
        CHECK_OK(gz_image_load(path, &p, &up));
        p.exif_orient = 0;
        CHECK_OK(gz_image_load(path, &p, &raw));
        if (!up.rgb || !raw.rgb) continue;
        T(up.orientation == o && raw.orientation == o);
        T(up.width == im1.width && up.height == im1.height);
        grid(&up, got);
        double d_up = mean_abs(ref, got);
        double d_raw = -1;
        if (raw.width == im1.width && raw.height == im1.height) {
            grid(&raw, got);
            d_raw = mean_abs(ref, got);
        }
        printf("  orientation %d: %6.2f | %s", o, d_up, d_raw < 0 ? "different size" : "");
        if (d_raw >= 0) printf("%6.2f", d_raw);
        printf("\n");
        T(d_up < ORIENT_MAX_MEAN_DIFF);
        /* The stored pixels of 2..8 really are transformed (else this test proves nothing). */
        if (o != 1) T(d_raw < 0 || d_raw > ORIENT_MIN_RAW_DIFF);
        gz_image_free(&up);
        gz_image_free(&raw);
    }
    /* Portrait camera shot stored landscape with orientation 6. */
    gz_image pt;
    p.exif_orient = 1;
    CHECK_OK(gz_image_load(gz_test_path("photos/exif_orient_6_portrait.jpg"), &p, &pt));
    T(pt.orientation == 6 && pt.height > pt.width && pt.src_height == pt.height);
    gz_image_free(&pt);
    p.exif_orient = 0;
    CHECK_OK(gz_image_load(gz_test_path("photos/exif_orient_6_portrait.jpg"), &p, &pt));
    T(pt.orientation == 6 && pt.width > pt.height && pt.src_width == pt.width);
    gz_image_free(&pt);
    /* DCT-scaled + rotated: src size is the upright full size */
    p.exif_orient = 1;
    p.min_size = 100;
    CHECK_OK(gz_image_load(gz_test_path("photos/exif_orient_6_portrait.jpg"), &p, &pt));
    T(pt.height > pt.width && pt.src_height > pt.src_width && pt.src_width > pt.width);
    gz_image_free(&pt);
    gz_image_free(&im1);
}

/* ---- broken inputs ------------------------------------------------------------------ */

static void expect_fail(const char *what, const void *d, size_t n, const gz_image_params *p,
                        gz_status want, const char *needle) {
    gz_image im;
    memset(&im, 0xAB, sizeof im);
    gz_status s = gz_image_load_memory(d, n, what, p, &im);
    const char *msg = gz_last_error();
    printf("  %-34s -> %-13s %s\n", what, gz_status_name(s), s ? msg : "");
    T(s == want);
    T(im.rgb == NULL && im.width == 0 && im.height == 0);
    T(strstr(msg, what) != NULL); /* names the input */
    if (needle) T(strstr(msg, needle) != NULL);
    if (s == GZ_OK) gz_image_free(&im);
}

static uint32_t crc_table[256];
static uint32_t crc32_png(const uint8_t *d, size_t n) {
    if (!crc_table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            crc_table[i] = c;
        }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ d[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_broken(void) {
    gz_image_params p = gz_image_default_params();
    printf("broken inputs:\n");
    size_t n = 0, np = 0, ng = 0, nw = 0, npr = 0;
    uint8_t *jpg = read_all(gz_test_path("fixtures/images/a1_chelsea.jpg"), &n);
    uint8_t *png = read_all(gz_test_path("fixtures/images/a4_coins_gray.png"), &np);
    uint8_t *gif = read_all(gz_test_path("photos/people_hopper.gif"), &ng);
    uint8_t *webp = read_all(gz_test_path("photos/animal_kitten.webp"), &nw);
    uint8_t *prog = read_all(gz_test_path("photos/animal_dogs_window_progressive.jpg"), &npr);
    T(jpg && png && gif && webp && prog);
    if (!jpg || !png || !gif || !webp || !prog) goto out;

    expect_fail("truncated.jpg", jpg, n / 2, &p, GZ_EINVAL, "truncated");
    expect_fail("truncated_header.jpg", jpg, 200, &p, GZ_EINVAL, NULL);
    expect_fail("truncated_progressive.jpg", prog, npr * 2 / 3, &p, GZ_EINVAL, "truncated");
    expect_fail("truncated.png", png, np / 2, &p, GZ_EINVAL, "truncated");
    expect_fail("truncated_header.png", png, 20, &p, GZ_EINVAL, NULL);
    expect_fail("truncated.gif", gif, ng / 2, &p, GZ_EINVAL, "truncated");
    expect_fail("truncated.webp", webp, nw / 2, &p, GZ_EINVAL, NULL);
    expect_fail("empty.jpg", "", 0, &p, GZ_EINVAL, "empty");

    uint8_t rnd[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof rnd; i++) {
        x = x * 1664525u + 1013904223u;
        rnd[i] = (uint8_t)(x >> 24);
    }
    expect_fail("random.jpg", rnd, sizeof rnd, &p, GZ_EUNSUPPORTED, "unsupported format");
    /* a BMP header cut before its info block: BMP is decoded (#12), this one is corrupt */
    const char bmp[] = "BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00";
    expect_fail("image.bmp", bmp, sizeof bmp - 1, &p, GZ_EINVAL, "cannot read BMP");

    /* JPEG header + random entropy data: must not crash (result may be OK or EINVAL). */
    {
        uint8_t *c = malloc(n);
        memcpy(c, jpg, n);
        for (size_t i = n / 3; i < n - 2; i += 97)
            c[i] ^= 0x5A;
        gz_image im;
        gz_status s = gz_image_load_memory(c, n, "corrupted.jpg", &p, &im);
        printf("  %-34s -> %-13s %s\n", "corrupted.jpg (bit flips)", gz_status_name(s),
               s ? gz_last_error() : "(decoded with libjpeg's recovery)");
        T(s == GZ_OK || s == GZ_EINVAL);
        gz_image_free(&im);
        free(c);
    }

    /* A PNG whose valid IHDR claims 100000 x 100000: refused from the header. */
    {
        uint8_t b[8 + 25 + 12 + 12]; /* signature, IHDR, empty IDAT, IEND */
        memcpy(b, "\x89PNG\r\n\x1a\n", 8);
        put_be32(b + 8, 13);
        memcpy(b + 12, "IHDR", 4);
        put_be32(b + 16, 100000);
        put_be32(b + 20, 100000);
        b[24] = 8; /* depth */
        b[25] = 2; /* RGB */
        b[26] = b[27] = b[28] = 0;
        put_be32(b + 29, crc32_png(b + 12, 17));
        put_be32(b + 33, 0);
        memcpy(b + 37, "IDAT", 4);
        put_be32(b + 41, crc32_png(b + 37, 4));
        put_be32(b + 45, 0);
        memcpy(b + 49, "IEND", 4);
        put_be32(b + 53, crc32_png(b + 49, 4));
        clock_t t0 = clock();
        expect_fail("huge_100000x100000.png", b, sizeof b, &p, GZ_ENOMEM, "too large");
        T((double)(clock() - t0) / CLOCKS_PER_SEC < HUGE_REFUSE_MAX_CPU_S);
    }
    /* A JPEG whose SOF claims 65000 x 65000 (JPEG's limit is 65535 per side). */
    {
        uint8_t *c = malloc(n);
        memcpy(c, jpg, n);
        size_t i = 2;
        int patched = 0;
        while (i + 9 < n && c[i] == 0xFF) {
            int m = c[i + 1];
            size_t len = (size_t)c[i + 2] << 8 | c[i + 3];
            if (m == 0xC0 || m == 0xC2) {
                c[i + 5] = c[i + 7] = 65000 >> 8;
                c[i + 6] = c[i + 8] = 65000 & 0xFF;
                patched = 1;
                break;
            }
            i += 2 + len;
        }
        T(patched);
        expect_fail("huge_65000x65000.jpg", c, n, &p, GZ_ENOMEM, "too large");
        free(c);
    }
    /* A 12-bit JPEG (SOF precision patched): refused clearly by the 8-bit libjpeg-turbo. */
    {
        uint8_t *c = malloc(n);
        memcpy(c, jpg, n);
        size_t i = 2;
        while (i + 9 < n && c[i] == 0xFF && c[i + 1] != 0xC0 && c[i + 1] != 0xC2)
            i += 2 + ((size_t)c[i + 2] << 8 | c[i + 3]);
        T(i + 9 < n && c[i] == 0xFF);
        c[i + 4] = 12;
        expect_fail("precision12.jpg", c, n, &p, GZ_EUNSUPPORTED, "precision");
        free(c);
    }
    /* A settable limit. */
    {
        gz_image_params q = p;
        q.max_pixels = 1000;
        expect_fail("limited.jpg", jpg, n, &q, GZ_ENOMEM, "too large");
        expect_fail("limited.png", png, np, &q, GZ_ENOMEM, "too large");
        expect_fail("limited.gif", gif, ng, &q, GZ_ENOMEM, "too large");
        expect_fail("limited.webp", webp, nw, &q, GZ_ENOMEM, "too large");
    }
    /* A text file named .jpg, through the file API; and a file that does not exist. */
    {
        const char *dir = gz_test_tmpdir("decode");
        char path[1200];
        snprintf(path, sizeof path, "%s/notes.jpg", dir);
        const char *txt = "This is not a picture.\nJust some text.\n";
        write_all(path, txt, strlen(txt));
        gz_image im;
        gz_status s = gz_image_load(path, &p, &im);
        printf("  %-34s -> %-13s %s\n", "notes.jpg (text)", gz_status_name(s), gz_last_error());
        T(s == GZ_EUNSUPPORTED);
        T(strstr(gz_last_error(), "unsupported format") && strstr(gz_last_error(), path));
        snprintf(path, sizeof path, "%s/missing.jpg", dir);
        s = gz_image_load(path, &p, &im);
        T(s == GZ_ENOTFOUND && strstr(gz_last_error(), path));
        s = gz_image_load(dir, &p, &im);
        T(s != GZ_OK);
    }
out:
    free(jpg);
    free(png);
    free(gif);
    free(webp);
    free(prog);
}

/* ---- HEIF: encoded here with libheif (no sample file), rotation via irot + EXIF ------- */

typedef struct {
    uint8_t *d;
    size_t n;
} membuf;

static struct heif_error write_mem(struct heif_context *ctx, const void *data, size_t size,
                                   void *user) {
    (void)ctx;
    membuf *m = user;
    struct heif_error ok = {heif_error_Ok, heif_suberror_Unspecified, "ok"};
    uint8_t *nd = realloc(m->d, m->n + size);
    if (!nd) {
        struct heif_error e = {heif_error_Memory_allocation_error, heif_suberror_Unspecified,
                               "oom"};
        return e;
    }
    memcpy(nd + m->n, data, size);
    m->d = nd;
    m->n += size;
    return ok;
}

/* Minimal little-endian TIFF: IFD0 {Orientation = 6, ExifIFD}, ExifIFD {DateTimeOriginal}. */
static size_t make_exif(uint8_t *b) {
    static const uint8_t t[] = {
        'I',  'I',  42,  0,   8,   0,   0,   0,                     /* header, IFD0 at 8 */
        2,    0,                                                    /* IFD0: 2 entries */
        0x12, 0x01, 3,   0,   1,   0,   0,   0,   6,   0,   0,   0, /* Orientation SHORT 6 */
        0x69, 0x87, 4,   0,   1,   0,   0,   0,   38,  0,   0,   0, /* ExifIFD LONG -> 38 */
        0,    0,    0,   0,                                         /* no IFD1 */
        1,    0,                                                    /* ExifIFD (38): 1 entry */
        0x03, 0x90, 2,   0,   20,  0,   0,   0,   56,  0,   0,   0, /* DateTimeOriginal ASCII[20]
                                                                       @56 */
        0,    0,    0,   0,                                         /* next 0 */
        '2',  '0',  '2', '1', ':', '0', '7', ':', '0', '4', ' ', '1', '2',
        ':',  '3',  '4', ':', '5', '6', 0};
    memcpy(b, t, sizeof t);
    return sizeof t;
}

static void test_heif(void) {
    const int W = 64, H = 48;
    struct heif_context *ctx = heif_context_alloc();
    struct heif_encoder *enc = NULL;
    struct heif_error e = heif_context_get_encoder_for_format(ctx, heif_compression_HEVC, &enc);
    if (e.code != heif_error_Ok) {
        printf("HEIF: no HEVC encoder in this libheif, skipped (%s)\n", e.message);
        heif_context_free(ctx);
        return;
    }
    heif_encoder_set_lossy_quality(enc, 95);
    struct heif_image *im = NULL;
    heif_image_create(W, H, heif_colorspace_RGB, heif_chroma_interleaved_RGB, &im);
    heif_image_add_plane(im, heif_channel_interleaved, W, H, 8);
    int stride = 0;
    uint8_t *pl = heif_image_get_plane(im, heif_channel_interleaved, &stride);
    /* left half red, right half blue, top rows brighter */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *px = pl + (size_t)y * stride + 3 * x;
            px[0] = x < W / 2 ? 220 : 30;
            px[1] = y < H / 2 ? 120 : 40;
            px[2] = x < W / 2 ? 30 : 220;
        }
    struct heif_encoding_options *opt = heif_encoding_options_alloc();
    opt->image_orientation = heif_orientation_rotate_90_cw; /* written as irot */
    struct heif_image_handle *h = NULL;
    e = heif_context_encode_image(ctx, im, enc, opt, &h);
    T(e.code == heif_error_Ok);
    uint8_t ex[128];
    size_t exn = make_exif(ex);
    if (h) heif_context_add_exif_metadata(ctx, h, ex, (int)exn);
    membuf m = {NULL, 0};
    struct heif_writer wr = {1, write_mem};
    e = heif_context_write(ctx, &wr, &m);
    T(e.code == heif_error_Ok && m.n > 0);
    if (h) heif_image_handle_release(h);
    heif_encoding_options_free(opt);
    heif_image_release(im);
    heif_encoder_release(enc);
    heif_context_free(ctx);

    gz_image out;
    gz_status s = gz_image_load_memory(m.d, m.n, "test.heic", NULL, &out);
    CHECK_OK(s);
    if (s == GZ_OK) {
        printf("HEIF: %zu bytes -> %dx%d %s o=%d taken_at '%s'\n", m.n, out.width, out.height,
               out.format, out.orientation, out.taken_at);
        /* rotated once (by libheif from irot), not again from the EXIF orientation */
        T(out.width == H && out.height == W && strcmp(out.format, "heif") == 0);
        T(strcmp(out.taken_at, "2021-07-04 12:34:56") == 0);
        /* 90 deg clockwise: the original left (red) half is now the top half */
        const uint8_t *top = out.rgb + ((size_t)5 * out.width + out.width / 2) * 3;
        const uint8_t *bot = out.rgb + ((size_t)(out.height - 6) * out.width + out.width / 2) * 3;
        T(top[0] > HEIF_HIGH && top[2] < HEIF_LOW && bot[2] > HEIF_HIGH && bot[0] < HEIF_LOW);
        gz_image_free(&out);
    }
    if (m.n > 64) expect_fail("truncated.heic", m.d, m.n / 2, NULL, GZ_EINVAL, NULL);
    free(m.d);
}

/* ---- CMYK JPEG: PIL's inverted-Adobe convention ----------------------------------------- */

static void test_cmyk(void) {
    gz_image a, b, c;
    CHECK_OK(gz_image_load(gz_test_path("photos/food_coffee_cmyk_adobe.jpg"), NULL, &a));
    CHECK_OK(gz_image_load(gz_test_path("photos/food_coffee.png"), NULL, &b));
    if (a.rgb && b.rgb && a.width == b.width && a.height == b.height) {
        /* the same picture saved as an Adobe CMYK JPEG: close to the RGB original (a wrong
         * inversion would give a photo negative, mean difference ~ 100) */
        double sum = 0;
        size_t n = (size_t)a.width * a.height * 3;
        for (size_t i = 0; i < n; i++)
            sum += abs((int)a.rgb[i] - (int)b.rgb[i]);
        printf("CMYK JPEG vs RGB original: mean |diff| %.2f\n", sum / n);
        T(sum / n < CMYK_MAX_MEAN_DIFF);
    } else {
        T(0);
    }
    /* Pillow's own test image: pixel (0, 0) is C=0, M,Y>0.8, K=0, i.e. red */
    CHECK_OK(gz_image_load(gz_test_path("photos/cmyk_pil_sample.jpg"), NULL, &c));
    if (c.rgb)
        T(c.rgb[0] > CMYK_RED_MIN && c.rgb[1] < CMYK_RED_MAX_OTHER &&
          c.rgb[2] < CMYK_RED_MAX_OTHER);
    gz_image_free(&a);
    gz_image_free(&b);
    gz_image_free(&c);
}

/* ---- damaged files: every truncation point and byte mutations, never a crash ------------ */

static void test_damage(void) {
    static const char *const files[] = {
        "fixtures/images/a3_coffee_exif6.jpg", "photos/scene_beach_icc400k_progressive.jpg",
        "fixtures/images/a5_clip_diagram_rgba.png", "photos/people_hopper.gif",
        "photos/landmark_eiffel_tower.webp"};
    int runs = 0, ok = 0, failed_cleanly = 0;
    uint32_t x = 777;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t n = 0;
        uint8_t *d = read_all(gz_test_path("%s", files[f]), &n);
        T(d != NULL);
        if (!d) continue;
        uint8_t *c = malloc(n);
        for (int k = 0; k < 48; k++) {
            memcpy(c, d, n);
            size_t len = n;
            if (k < 24) {
                len = (size_t)k * n / 24; /* truncated */
            } else {
                for (int j = 0; j < 8; j++) { /* a few random byte changes */
                    x = x * 1664525u + 1013904223u;
                    c[(x >> 8) % n] = (uint8_t)(x >> 3);
                }
            }
            gz_image im;
            gz_status s = gz_image_load_memory(c, len, "damaged", NULL, &im);
            runs++;
            if (s == GZ_OK) {
                ok++;
                T(im.rgb && im.width > 0 && im.height > 0);
                gz_image_free(&im);
            } else {
                failed_cleanly++;
                T(im.rgb == NULL);
                /* a damaged file is invalid (or, if its header became absurd, too large or an
                 * unknown format), never an I/O or internal error */
                T(s == GZ_EINVAL || s == GZ_ENOMEM || s == GZ_EUNSUPPORTED);
            }
        }
        free(c);
        free(d);
    }
    printf("damaged inputs: %d runs, %d decoded anyway, %d refused cleanly\n", runs, ok,
           failed_cleanly);
}

/* ---- in-memory decode equals file decode -------------------------------------------- */

static void test_memory_api(void) {
    size_t n = 0;
    uint8_t *d = read_all(gz_test_path("photos/png_interlaced_astronaut.png"), &n);
    T(d != NULL);
    if (!d) return;
    gz_image a, b;
    CHECK_OK(gz_image_load_memory(d, n, "astronaut", NULL, &a));
    CHECK_OK(gz_image_load(gz_test_path("photos/people_astronaut.png"), NULL, &b));
    /* The interlaced copy holds the same pixels as the plain one. */
    T(a.width == b.width && a.height == b.height);
    if (a.rgb && b.rgb && a.width == b.width && a.height == b.height)
        T(memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3) == 0);
    gz_image_free(&a);
    gz_image_free(&b);
    free(d);
}

int main(void) {
    test_fixture_images();
    test_photos();
    test_orientation();
    test_broken();
    test_memory_api();
    test_heif();
    test_cmyk();
    test_damage();
    return gz_test_finish("test_vision_decode", checks);
}
