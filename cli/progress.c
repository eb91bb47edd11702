/* progress.c - progress reporting on stderr: a live bar on a terminal (files done/total,
 * images/s, ETA, failures), plain periodic lines otherwise, nothing with --quiet. */
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define BAR_WIDTH 28
#define TTY_INTERVAL_S 0.1   /* redraw the bar at most 10 times a second */
#define PLAIN_INTERVAL_S 5.0 /* one plain line every 5 seconds when not a terminal */

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
