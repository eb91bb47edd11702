/* fetch.c - a query image given as an http(s) URL (gaze search --image URL, --add image:URL):
 * downloaded with libcurl into a private temp file, bounded in size and time, and checked to
 * be an image before the query uses it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/cli.h"

int cli_is_url(const char *s) {
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

typedef struct {
    FILE *f;
    long max_bytes, got;
    int too_large;
} sink;

static size_t write_body(char *data, size_t size, size_t n, void *user) {
    sink *s = user;
    size_t len = size * n;
    if ((long)len > s->max_bytes - s->got) { /* what arrives counts, whatever was announced */
        s->too_large = 1;
        return 0; /* libcurl aborts the transfer (CURLE_WRITE_ERROR) */
    }
    s->got += (long)len;
    return fwrite(data, 1, len, s->f);
}

/* Content types that are not images (a web page, JSON, text): refused before decoding. An
 * absent or generic type (application/octet-stream) is left to the decoder to judge. */
static int content_type_refused(const char *ct) {
    if (!ct || strncasecmp(ct, "image/", 6) == 0) return 0;
    return strncasecmp(ct, "text/", 5) == 0 || strncasecmp(ct, "application/json", 16) == 0 ||
           strncasecmp(ct, "application/xhtml", 17) == 0;
}

static int make_temp(char **path, FILE **f) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !dir[0]) dir = "/tmp";
    size_t n = strlen(dir) + sizeof "/gaze-url-XXXXXX";
    char *p = malloc(n);
    if (!p) return -1;
    snprintf(p, n, "%s/gaze-url-XXXXXX", dir);
    int fd = mkstemp(p); /* O_EXCL, mode 0600: a name nobody else can have prepared */
    if (fd < 0) {
        cli_errorf("%s: cannot create a temporary file: %s", dir, strerror(errno));
        free(p);
        return -1;
    }
    *f = fdopen(fd, "wb");
    if (!*f) {
        close(fd);
        unlink(p);
        free(p);
        return -1;
    }
    *path = p;
    return 0;
}

int cli_fetch_image_url(const char *url, long max_bytes, char **tmp_path) {
    *tmp_path = NULL;
    char *path = NULL;
    FILE *f = NULL;
    if (make_temp(&path, &f) != 0) return EXIT_FATAL;
    CURL *c = curl_easy_init();
    if (!c) {
        fclose(f);
        unlink(path);
        free(path);
        cli_errorf("%s: cannot start libcurl", url);
        return EXIT_FATAL;
    }
    sink s = {f, max_bytes, 0, 0};
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)CLI_URL_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "gaze/" GAZE_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    CURLcode rc = curl_easy_perform(c);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    int refused_type = rc == CURLE_OK && content_type_refused(ct);
    char type[128];
    snprintf(type, sizeof type, "%s", ct ? ct : "");
    long http = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(c);
    int write_failed = fclose(f) != 0;
    int code = EXIT_OK;
    if (s.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        cli_errorf("%s: the answer is larger than the limit of %ld bytes (--url-max-mb)", url,
                   max_bytes);
        code = EXIT_FATAL;
    } else if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
        cli_errorf("%s: not a URL gaze can fetch: %s", url, err[0] ? err : curl_easy_strerror(rc));
        code = EXIT_USAGE;
    } else if (rc == CURLE_HTTP_RETURNED_ERROR) {
        cli_errorf("%s: the server answered HTTP %ld", url, http);
        code = http == 404 || http == 410 ? EXIT_USAGE : EXIT_FATAL; /* like a missing file */
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        cli_errorf("%s: timed out after %d s", url, CLI_URL_TIMEOUT_S);
        code = EXIT_FATAL;
    } else if (rc != CURLE_OK) {
        cli_errorf("%s: %s", url, err[0] ? err : curl_easy_strerror(rc));
        code = EXIT_FATAL;
    } else if (write_failed) {
        cli_errorf("%s: cannot write the temporary file %s", url, path);
        code = EXIT_FATAL;
    } else if (refused_type) {
        cli_errorf("%s: not an image (Content-Type %s)", url, type);
        code = EXIT_FATAL;
    } else {
        /* the bytes must decode, so that a page served as image/jpeg is named as the URL's
         * fault here and not as an unreadable temp file later */
        gz_image img;
        memset(&img, 0, sizeof img);
        gz_image_params ip = gz_image_default_params();
        ip.min_size = 1; /* a check, not the query's decode: the cheapest JPEG scale will do */
        if (gz_image_load(path, &ip, &img) != GZ_OK) {
            cli_errorf("%s: not an image gaze can read (%ld bytes%s%s)", url, s.got,
                       type[0] ? ", Content-Type " : "", type);
            code = EXIT_FATAL;
        }
        gz_image_free(&img);
    }
    if (code != EXIT_OK) {
        unlink(path);
        free(path);
        return code;
    }
    *tmp_path = path;
    return EXIT_OK;
}
