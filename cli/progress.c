/* progress.c - progress reporting on stderr: a live bar on a terminal (files done/total,
 * images/s, ETA, failures; or bytes, rate and ETA of a download), plain periodic lines
 * otherwise, nothing with --quiet. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define BAR_WIDTH 28
#define TTY_INTERVAL_S 0.1   /* redraw the bar at most 10 times a second */
#define PLAIN_INTERVAL_S 5.0 /* one plain line every 5 seconds when not a terminal */
#define XFER_MIN_RATE_S 0.05 /* a download this short shows no rate (it would be noise) */

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void progress_start(progress *p, const char *what, long total, int quiet) {
    p->enabled = !quiet;
    p->tty = isatty(STDERR_FILENO);
    p->what = what;
    p->total = total;
    p->t0 = cli_now();
    p->last_print = 0;
    p->shown = 0;
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void draw(progress *p, long done, long encoded, long failed, int final) {
    double el = cli_now() - p->t0;
    double frate = el > 0 ? (double)done / el : 0;   /* files handled per second */
    double rate = el > 0 ? (double)encoded / el : 0; /* images encoded per second */
    char eta[32];
    fmt_eta(eta, sizeof eta, frate > 0 ? (double)(p->total - done) / frate : -1);
    if (p->tty) {
        int fill = p->total > 0 ? (int)((double)BAR_WIDTH * (double)done / (double)p->total) : 0;
        if (fill > BAR_WIDTH) fill = BAR_WIDTH;
        char bar[BAR_WIDTH + 1];
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        fprintf(stderr, "\r\033[K%s [%s] %ld/%ld  %.1f img/s  ETA %s  failed %ld", p->what, bar,
                done, p->total, rate, final ? "0:00" : eta, failed);
        if (final) fputc('\n', stderr);
        p->shown = !final;
    } else {
        fprintf(stderr, "%s: %ld/%ld files, %.1f img/s, ETA %s, %ld failed\n", p->what, done,
                p->total, rate, final ? "0:00" : eta, failed);
    }
    fflush(stderr);
}

void progress_update(progress *p, long done, long encoded, long failed) {
    if (!p->enabled) return;
    double now = cli_now();
    double interval = p->tty ? TTY_INTERVAL_S : PLAIN_INTERVAL_S;
    if (now - p->last_print < interval) return;
    if (!p->tty && now - p->t0 < PLAIN_INTERVAL_S) return; /* quick runs print one line */
    p->last_print = now;
    draw(p, done, encoded, failed, 0);
}

void progress_finish(progress *p, long done, long encoded, long failed) {
    if (!p->enabled) return;
    if (p->tty || p->last_print > 0 || p->total > 0) draw(p, done, encoded, failed, 1);
}

/* ---- byte transfers (gaze model pull) ---- */

void cli_human_bytes(char *buf, size_t n, double b) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4)
        b /= 1024, i++;
    snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", b, unit[i]);
}

void xfer_start(xfer_progress *p, int quiet) {
    memset(p, 0, sizeof *p);
    p->enabled = !quiet;
    p->tty = isatty(STDERR_FILENO);
}

/* One line for the file on screen: a bar on a terminal (redrawn in place), else plain text. */
static void xfer_draw(xfer_progress *p, int final) {
    double el = cli_now() - p->t0;
    double rate = el > 0 ? (double)(p->done - p->start_done) / el : 0; /* bytes/s this run */
    /* A file that arrived in one piece between two callbacks has no rate to tell. */
    int has_rate = el >= XFER_MIN_RATE_S && p->done > p->start_done;
    char done[32], total[32], rb[32], eta[32];
    cli_human_bytes(done, sizeof done, (double)p->done);
    cli_human_bytes(total, sizeof total, (double)p->total);
    cli_human_bytes(rb, sizeof rb, rate);
    fmt_eta(eta, sizeof eta,
            final                      ? 0
            : rate > 0 && p->total > 0 ? (double)(p->total - p->done) / rate
                                       : -1);
    if (p->tty) {
        int fill = p->total > 0 ? (int)((double)BAR_WIDTH * (double)p->done / (double)p->total) : 0;
        if (fill > BAR_WIDTH) fill = BAR_WIDTH;
        char bar[BAR_WIDTH + 1];
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        fprintf(stderr, "\r\033[K%-28s [%s] %s / %s", p->file, bar, done,
                p->total >= 0 ? total : "?");
        if (has_rate) fprintf(stderr, "  %s/s  ETA %s", rb, eta);
        if (final) fputc('\n', stderr);
        p->shown = !final;
    } else if (final) {
        fprintf(stderr, "%s: %s done", p->file, done);
        if (has_rate) fprintf(stderr, " in %.1f s, %s/s", el, rb);
        fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %s / %s, %s/s, ETA %s\n", p->file, done, p->total >= 0 ? total : "?",
                rb, eta);
    }
    fflush(stderr);
}

void xfer_update(xfer_progress *p, const char *file, int64_t done, int64_t total) {
    if (!p->enabled) return;
    char *shown = out_term_escape(file); /* a file name the server chose */
    int same = strncmp(p->file, shown, sizeof p->file - 1) == 0;
    if (!same) { /* a new file starts */
        if (p->shown) xfer_draw(p, 1);
        snprintf(p->file, sizeof p->file, "%s", shown);
        p->start_done = done; /* a resumed prefix does not count toward the rate */
        p->t0 = cli_now();
        p->last_print = 0;
        p->finished = 0;
    }
    free(shown);
    p->done = done;
    p->total = total;
    if (p->finished) return;
    if (total >= 0 && done >= total) { /* every file ends with one final line */
        p->finished = 1;
        xfer_draw(p, 1);
        return;
    }
    double now = cli_now();
    double interval = p->tty ? TTY_INTERVAL_S : PLAIN_INTERVAL_S;
    if (now - p->last_print < interval) return;
    if (!p->tty && now - p->t0 < PLAIN_INTERVAL_S) return; /* quick files print one line */
    p->last_print = now;
    xfer_draw(p, 0);
}

void xfer_finish(xfer_progress *p) {
    if (p->enabled && p->shown && p->tty) { /* a bar left mid-way (an error): end its line */
        fputc('\n', stderr);
        p->shown = 0;
    }
}
