# lib_serve.sh - helpers for the tests that run `gaze serve` (sourced after lib_cli.sh): start a
# server on a free loopback port (the port comes back through --port-file), wait for it, stop
# it. Every server started here is stopped on exit, whatever happens.
SERVE_PIDS=()
serve_cleanup() {
    for p in "${SERVE_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${SERVE_PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap 'serve_rc=$?; serve_cleanup; (exit $serve_rc); cli_on_exit' EXIT

# serve_start NAME ARGS... : start `gaze serve ARGS` in the background; sets NAME_PID and
# NAME_PORT; its stderr goes to $TMP/NAME.log. Returns non-zero if it is not listening in 60 s.
serve_start() {
    local name=$1
    shift
    rm -f "$TMP/$name.port"
    "$GAZE" serve --listen 127.0.0.1:0 --port-file "$TMP/$name.port" "$@" 2>"$TMP/$name.log" &
    local pid=$!
    SERVE_PIDS+=("$pid")
    printf -v "${name}_PID" %s "$pid"
    for _ in $(seq 600); do
        if [ -s "$TMP/$name.port" ]; then
            printf -v "${name}_PORT" %s "$(cat "$TMP/$name.port")"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "server $name did not start:" >&2
    cat "$TMP/$name.log" >&2
    return 1
}

# serve_stop PID : SIGTERM and wait (at most 60 s); returns the server's exit status.
serve_stop() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    wait "$pid"
}

# http METHOD URL [curl args...] : prints the body, then "\n<status>" on the last line, to stdout.
http() {
    local method=$1 url=$2
    shift 2
    curl -s --max-time 60 -X "$method" -w '\n%{http_code}' "$@" "$url"
}
