/* metrics.c - request counters and latency histograms per endpoint, as Prometheus text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_internal.h"

/* Upper bounds (seconds) of the latency buckets: from a cached page to a re-ranked search. */
static const double BUCKET_BOUNDS[SERVE_N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1,    2.5,   10};

static const char *const ENDPOINT_NAMES[EP_COUNT] = {"page",      "healthz", "info",  "openapi",
                                                     "search",    "embed",   "match", "items",
                                                     "thumbnail", "metrics", "other"};

const char *serve_endpoint_name(serve_endpoint ep) { return ENDPOINT_NAMES[ep]; }

void serve_metrics_init(serve_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void serve_metrics_free(serve_metrics *m) { pthread_mutex_destroy(&m->mu); }

void serve_metrics_observe(serve_metrics *m, serve_endpoint ep, int status, double seconds) {
    pthread_mutex_lock(&m->mu);
    m->requests[ep]++;
    if (status >= 400) m->errors[ep]++;
    for (int b = 0; b < SERVE_N_BUCKETS; b++)
        if (seconds <= BUCKET_BOUNDS[b]) m->bucket[ep][b]++;
    m->seconds_sum[ep] += seconds;
    pthread_mutex_unlock(&m->mu);
}

char *serve_metrics_text(serve_metrics *m, const char *extra) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    serve_metrics s; /* the counters only (its mutex is not used), copied under the lock */
    pthread_mutex_lock(&m->mu);
    memcpy(s.requests, m->requests, sizeof s.requests);
    memcpy(s.errors, m->errors, sizeof s.errors);
    memcpy(s.bucket, m->bucket, sizeof s.bucket);
    memcpy(s.seconds_sum, m->seconds_sum, sizeof s.seconds_sum);
    pthread_mutex_unlock(&m->mu);
    fputs("# HELP gaze_http_requests_total HTTP requests answered, by endpoint.\n"
          "# TYPE gaze_http_requests_total counter\n",
          f);
    for (int e = 0; e < EP_COUNT; e++)
        fprintf(f, "gaze_http_requests_total{endpoint=\"%s\"} %lld\n", ENDPOINT_NAMES[e],
                (long long)s.requests[e]);
    fputs("# HELP gaze_http_errors_total HTTP requests answered with a status >= 400.\n"
          "# TYPE gaze_http_errors_total counter\n",
          f);
    for (int e = 0; e < EP_COUNT; e++)
        fprintf(f, "gaze_http_errors_total{endpoint=\"%s\"} %lld\n", ENDPOINT_NAMES[e],
                (long long)s.errors[e]);
    fputs("# HELP gaze_http_request_duration_seconds Time from request to reply.\n"
          "# TYPE gaze_http_request_duration_seconds histogram\n",
          f);
    for (int e = 0; e < EP_COUNT; e++) {
        for (int b = 0; b < SERVE_N_BUCKETS; b++)
            fprintf(f,
                    "gaze_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %lld\n",
                    ENDPOINT_NAMES[e], BUCKET_BOUNDS[b], (long long)s.bucket[e][b]);
        fprintf(f, "gaze_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %lld\n",
                ENDPOINT_NAMES[e], (long long)s.requests[e]);
        fprintf(f, "gaze_http_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n",
                ENDPOINT_NAMES[e], s.seconds_sum[e]);
        fprintf(f, "gaze_http_request_duration_seconds_count{endpoint=\"%s\"} %lld\n",
                ENDPOINT_NAMES[e], (long long)s.requests[e]);
    }
    if (extra) fputs(extra, f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
