#!/usr/bin/env bash
# cli_replicas.sh - read-only replicas behind a load balancer, for real: `gaze snapshot` while a
# writer runs (a consistent copy: SQLite integrity, the index agrees with the rows), nginx on
# loopback (generated config, high ports, this user's own pid and log files) in front of two
# `gaze serve --read-only` replicas; one replica killed mid-load and every request still
# answered; a new snapshot published (symlink swap) and picked up without a restart.
# Usage: bash tests/cli_replicas.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"

if ! command -v nginx >/dev/null; then
    echo "FAIL: nginx is not installed (scripts/setup.sh installs nginx-light)" >&2
    exit 1
fi
M=$DATA/fixtures/blip_itm
P=$TMP/photos
mkdir -p "$P" "$TMP/more" "$TMP/pub"
for f in animal_cat_chelsea.png animal_dog_corgi.jpg food_coffee.png product_kettle.jpg; do
    cp "$DATA/photos/$f" "$P/"
done
# more photos for the writer that runs during the snapshot (copies: distinct paths)
for i in $(seq 1 6); do
    for f in "$DATA"/photos/animal_*.{jpg,png,webp} "$DATA"/photos/food_*.png; do
        cp "$f" "$TMP/more/$i-$(basename "$f")"
    done
done
DB=$TMP/shop.db
"$GAZE" index "$P" --db "$DB" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
check "index the photos" test $? -eq 0

# consistent SNAPSHOT: its rows pass integrity_check and its index holds exactly its OK images
consistent() {
    python3 - "$1" "$GAZE" <<'PY'
import json, sqlite3, subprocess, sys
db = sys.argv[1]
c = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
ok = c.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
n = c.execute('SELECT count(*) FROM items WHERE kind = 1 AND status = 0').fetchone()[0]
out = subprocess.run([sys.argv[2], 'search', 'a photo', '--db', db, '-k', '100000', '--json', '-q'],
                     capture_output=True, text=True)
hits = [json.loads(l) for l in out.stdout.splitlines()]
print('  snapshot: %d images, %d found by search' % (n, len(hits)), file=sys.stderr)
sys.exit(0 if ok and out.returncode == 0 and len(hits) == n else 1)
PY
}

# gaze snapshot while another process writes (batches of 2 images)
"$GAZE" index "$TMP/more" --db "$DB" --model "$M" --batch 2 --quiet >/dev/null 2>"$TMP/w.txt" &
w=$!
sleep 0.5
"$GAZE" snapshot --db "$DB" "$TMP/pub/gen-1/shop.db" --json >"$TMP/snap.json" 2>"$TMP/e.txt"
check "snapshot during a write: exit 0" test $? -eq 0
wait $w
check "the writer finished" test $? -eq 0
check "snapshot during a write is consistent" consistent "$TMP/pub/gen-1/shop.db"
check "snapshot reports its index files" python3 -c '
import json,sys; o=json.load(open(sys.argv[1])); sys.exit(0 if o["indexes_copied"]+o["indexes_built"]>=1 and o["bytes"]>0 else 1)' "$TMP/snap.json"
"$GAZE" snapshot --db "$DB" "$TMP/pub/gen-1/shop.db" >/dev/null 2>"$TMP/e.txt"
check "snapshot refuses an existing destination" bash -c '[ "$1" -ne 0 ] && grep -q "already exists" "$2"' _ $? "$TMP/e.txt"
"$GAZE" snapshot --db "$TMP/nope.db" "$TMP/x.db" >/dev/null 2>"$TMP/e.txt"
check "snapshot of a missing db fails naming it, writes nothing" bash -c '[ "$1" -ne 0 ] && grep -q nope.db "$2" && ! test -e "$3"' _ $? "$TMP/e.txt" "$TMP/x.db"
ln -s gen-1 "$TMP/pub/current"

# two read-only replicas over the published snapshot
serve_start R1 --db "$TMP/pub/current/shop.db" --read-only --threads 1
serve_start R2 --db "$TMP/pub/current/shop.db" --read-only --threads 1
check "two replicas listen" test -n "${R1_PORT:-}" -a -n "${R2_PORT:-}"

# nginx on a free high port, as this user, with its own files
LB_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
cat >"$TMP/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log;
daemon off;
events { worker_connections 256; }
http {
    access_log $TMP/nginx/logs/access.log;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    upstream gaze {
        server 127.0.0.1:${R1_PORT:-1} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:${R2_PORT:-1} max_fails=1 fail_timeout=30s;
    }
    server {
        listen 127.0.0.1:$LB_PORT;
        location / {
            proxy_pass http://gaze;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_connect_timeout 2s;
        }
    }
}
NGINX
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" 2>"$TMP/nginx/start.txt" &
NGINX_PID=$!
SERVE_PIDS+=("$NGINX_PID")
LB=http://127.0.0.1:$LB_PORT
for _ in $(seq 100); do curl -s -o /dev/null "$LB/healthz" && break; sleep 0.1; done
check "nginx answers through the replicas" bash -c '[ "$(curl -s "$1/healthz")" = ok ]' _ "$LB"

# load through nginx; one replica is killed in the middle
: >"$TMP/codes.txt"
(for i in $(seq 120); do curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 "$LB/v1/search" -d '{"text": "a dog", "k": 3}' >>"$TMP/codes.txt"; done) &
load=$!
for _ in $(seq 100); do [ "$(wc -l <"$TMP/codes.txt")" -ge 30 ] && break; sleep 0.05; done
kill -KILL "${R1_PID:-0}"
wait $load
check "120 searches with one replica killed mid-load: all 200" bash -c '[ "$(grep -c "^200$" "$1")" = 120 ]' _ "$TMP/codes.txt"
check "the other replica answered after the kill" bash -c '[ "$(curl -s -o /dev/null -w "%{http_code}" "$1/v1/search" -d "{\"text\": \"a cat\"}")" = 200 ]' _ "$LB"

# a new snapshot published by a symlink swap: the replica follows it without a restart
cp "$DATA/photos/landmark_eiffel_tower.webp" "$P/"
"$GAZE" index "$P" --db "$DB" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
"$GAZE" snapshot --db "$DB" "$TMP/pub/gen-2/shop.db" --quiet 2>"$TMP/e.txt"
check "snapshot gen-2" consistent "$TMP/pub/gen-2/shop.db"
ln -s gen-2 "$TMP/pub/next" && mv -T "$TMP/pub/next" "$TMP/pub/current"
out=$(curl -s "$LB/v1/search" -d '{"text": "the eiffel tower", "k": 100}')
check "the replica serves the new snapshot without a restart" bash -c '[[ "$1" == *landmark_eiffel_tower.webp* ]]' _ "$out"
check "same replica process still running" kill -0 "${R2_PID:-0}"
N2=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM items WHERE kind=1").fetchone()[0])' "$TMP/pub/gen-2/shop.db")
info=$(curl -s "$LB/v1/info")
check "info through nginx shows the new snapshot's item count" python3 -c '
import json,sys; sys.exit(0 if json.loads(sys.argv[1])["store"]["items"]["images"] == int(sys.argv[2]) else 1)' "$info" "$N2"

kill -TERM "$NGINX_PID" 2>/dev/null
wait "$NGINX_PID" 2>/dev/null
serve_stop "${R2_PID:-0}"
check "replica exits 0 on SIGTERM" test $? -eq 0
cli_finish cli_replicas
