/* test_core_error.c - the thread-local error message: GAZE_DEBUG=1 appends the GZ_FAIL location. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"
#include "testutil.h"

static int checks;
#define T(c) CHECK_COUNTED(checks, c)

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* A failure raised here, at a line the test knows. */
static int fail_line;
static gz_status fail_here(void) {
    fail_line = __LINE__ + 1;
    return GZ_FAIL(GZ_EINVAL, "thing.bin: no good");
}

static void test_debug_location(void) {
    char want[256];
    unsetenv("GAZE_DEBUG");
    T(fail_here() == GZ_EINVAL);
    /* the location is kept relative to the source root, and not shown without GAZE_DEBUG */
    snprintf(want, sizeof want, "tests/test_core_error.c:%d", fail_line);
    T(strcmp(gz_last_error_where(), want) == 0);
    T(strcmp(gz_last_error(), "thing.bin: no good") == 0);

    setenv("GAZE_DEBUG", "1", 1);
    snprintf(want, sizeof want, "thing.bin: no good [tests/test_core_error.c:%d]", fail_line);
    T(strcmp(gz_last_error(), want) == 0);
    /* context added on the way up keeps the place of the original failure */
    gz_error_prefix(GZ_EINVAL, "loading %s", "model");
    snprintf(want, sizeof want, "loading model: thing.bin: no good [tests/test_core_error.c:%d]",
             fail_line);
    T(strcmp(gz_last_error(), want) == 0);

    /* a failure inside the library: its file and line, whatever GZ_FAIL raised it */
    T(gz_config_load("/nonexistent/config.json", &(gz_model_config){0}) == GZ_EIO);
    const char *where = gz_last_error_where();
    T(strncmp(where, "core/", 5) == 0 && strchr(where, ':') && atoi(strchr(where, ':') + 1) > 0);
    snprintf(want, sizeof want, " [%s]", where);
    T(ends_with(gz_last_error(), want));
    T(strstr(gz_last_error(), "/nonexistent/config.json") == gz_last_error());

    /* only "1" turns it on; no error stays "no error" */
    setenv("GAZE_DEBUG", "0", 1);
    T(!strchr(gz_last_error(), '['));
    setenv("GAZE_DEBUG", "1", 1);
    gz_clear_error();
    T(strcmp(gz_last_error(), "no error") == 0);
    unsetenv("GAZE_DEBUG");
}

int main(void) {
    test_debug_location();
    return gz_test_finish("core_error", checks);
}
