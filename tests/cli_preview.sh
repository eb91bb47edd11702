#!/usr/bin/env bash
# cli_preview.sh - `gaze search --preview` and query images given by URL, through the binary.
# Previews: each forced protocol's escape framing is checked byte by byte (kitty: chunked
# base64 of W*H*3 RGB bytes; iTerm2: base64 of a JPEG of the announced size; sixel: DCS ...
# ST per image); detection from the environment runs under a pseudo-terminal (script(1));
# an unsupported terminal, tmux or a pipe print the plain table. URLs: a loopback HTTP server
# started here serves an image (same results as the local file), an oversized answer (with
# and without Content-Length), a web page, bytes that are not an image, a 404 and a redirect;
# each refusal names the URL and the reason, and no temporary file is left behind.
# Usage: bash tests/cli_preview.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
M=$DATA/fixtures/clip
P=$TMP/photos
mkdir -p "$P"
cp "$DATA/photos/animal_dog_corgi.jpg" "$DATA/photos/food_coffee.png" "$DATA/photos/product_kettle.jpg" "$P/"
DB=$TMP/p.db
"$GAZE" index "$P" --db "$DB" --model "$M" --quiet >/dev/null 2>&1
check "index" test $? -eq 0
S=("$GAZE" search "a photo" --db "$DB" -k 3 --quiet)

"${S[@]}" >"$TMP/plain.txt" 2>/dev/null
check "plain table" test "$(wc -l <"$TMP/plain.txt")" -eq 4

# ---- forced protocols: framing ----
"${S[@]}" --preview-protocol kitty >"$TMP/kitty.bin" 2>"$TMP/e.txt"
check "kitty exits 0" test $? -eq 0
check "kitty: 3 images, chunked, payload = W*H*3 RGB bytes, a result line after each" python3 - "$TMP/kitty.bin" <<'PY'
import base64, re, sys
d = open(sys.argv[1], 'rb').read()
cmds = re.findall(rb'\x1b_G([^;\x1b]*);([A-Za-z0-9+/=]*)\x1b\\', d)
images, cur, ok = [], None, True
for ctl, payload in cmds:
    keys = dict(kv.split(b'=') for kv in ctl.split(b','))
    if cur is None:
        ok &= keys.get(b'a') == b'T' and keys.get(b'f') == b'24'
        cur = [int(keys[b's']), int(keys[b'v']), b'']
    ok &= len(payload) <= 4096
    cur[2] += payload
    if keys[b'm'] == b'0':
        images.append(cur)
        cur = None
ok &= cur is None and len(images) == 3
for w, h, b in images:
    ok &= 0 < max(w, h) <= 160 and len(base64.b64decode(b)) == w * h * 3
rest = re.sub(rb'\x1b_G[^\x1b]*\x1b\\', b'', d).decode().splitlines()
ok &= [l.split()[0] for l in rest if l] == ['1', '2', '3']
sys.exit(0 if ok else 1)
PY
"${S[@]}" --preview-protocol iterm --thumb-size 64 >"$TMP/iterm.bin" 2>/dev/null
check "iTerm2: 3 inline JPEGs of the announced size" python3 - "$TMP/iterm.bin" <<'PY'
import base64, re, sys
d = open(sys.argv[1], 'rb').read()
imgs = re.findall(rb'\x1b\]1337;File=inline=1;size=(\d+);preserveAspectRatio=1:([A-Za-z0-9+/=]+)\x07', d)
ok = len(imgs) == 3
for size, b in imgs:
    j = base64.b64decode(b)
    ok &= len(j) == int(size) and j[:2] == b'\xff\xd8' and j[-2:] == b'\xff\xd9'
sys.exit(0 if ok else 1)
PY
"${S[@]}" --preview-protocol sixel --thumb-size 48 >"$TMP/sixel.bin" 2>/dev/null
check "sixel: 3 DCS ... q ... ST images with a palette" python3 - "$TMP/sixel.bin" <<'PY'
import re, sys
d = open(sys.argv[1], 'rb').read()
imgs = re.findall(rb'\x1bP[0-9;]*q(.*?)\x1b\\', d, re.S)
sys.exit(0 if len(imgs) == 3 and all(re.search(rb'#\d+;2;\d+;\d+;\d+', i) for i in imgs) else 1)
PY
"${S[@]}" --preview-protocol none >"$TMP/none.txt" 2>/dev/null
check "protocol none: no escape at all" bash -c '! grep -q $'"'"'\e'"'"' "$1"' _ "$TMP/none.txt"
"${S[@]}" --preview-protocol vt340 >/dev/null 2>&1
check "unknown protocol: usage error" test $? -eq 2
"${S[@]}" --preview --json >/dev/null 2>&1
check "--preview with --json: usage error" test $? -eq 2

# ---- detection: a pipe or an unsupported terminal prints the plain table ----
KITTY_WINDOW_ID=1 TERM=xterm-kitty "${S[@]}" --preview >"$TMP/pipe.txt" 2>/dev/null
check "stdout not a terminal: plain table, whatever TERM says" cmp -s "$TMP/plain.txt" "$TMP/pipe.txt"
in_pty() { # in_pty OUT ENV...: run the search with --preview on a pseudo-terminal
    local out=$1
    shift
    env -u KITTY_WINDOW_ID -u TERM_PROGRAM -u LC_TERMINAL -u TMUX -u STY "$@" \
        timeout 60 script -qec "$(printf '%q ' "${S[@]}") --preview" /dev/null >"$out" 2>/dev/null
}
if in_pty "$TMP/pty_dumb.bin" TERM=dumb && [ -s "$TMP/pty_dumb.bin" ]; then
    check "pty, TERM=dumb: plain (no escape), 3 results" python3 -c '
import sys; d = open(sys.argv[1], "rb").read(); sys.exit(0 if b"\x1b" not in d and d.count(b"\n") == 4 else 1)' "$TMP/pty_dumb.bin"
    in_pty "$TMP/pty_kitty.bin" TERM=xterm-256color KITTY_WINDOW_ID=7
    check "pty, KITTY_WINDOW_ID: kitty graphics" grep -qa $'\e_Ga=T,f=24' "$TMP/pty_kitty.bin"
    in_pty "$TMP/pty_iterm.bin" TERM=xterm-256color TERM_PROGRAM=iTerm.app
    check "pty, TERM_PROGRAM=iTerm.app: iTerm2 inline images" grep -qa $'\e]1337;File=inline=1' "$TMP/pty_iterm.bin"
    in_pty "$TMP/pty_sixel.bin" TERM=mlterm
    check "pty, TERM=mlterm: sixel" grep -qa $'\eP' "$TMP/pty_sixel.bin"
    in_pty "$TMP/pty_tmux.bin" TERM=screen-256color KITTY_WINDOW_ID=7 TMUX=/tmp/x,1,0
    check "pty inside tmux: plain" bash -c '! grep -qa $'"'"'\e_G'"'"' "$1"' _ "$TMP/pty_tmux.bin"
else
    bad "script(1) could not run the search on a pseudo-terminal"
fi

# ---- query images by URL, from a loopback server ----
cat >"$TMP/server.py" <<'PY'
import http.server, sys
photo = open(sys.argv[1], 'rb').read()
big = b'\xff\xd8' + b'\0' * (2 * 1024 * 1024)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    def log_message(self, *a): pass
    def send(self, code, ctype, body, length=True, extra=()):
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        if length: self.send_header('Content-Length', str(len(body)))
        for k, v in extra: self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        p = self.path
        if p == '/dog.jpg': self.send(200, 'image/jpeg', photo)
        elif p == '/noext': self.send(200, 'application/octet-stream', photo)
        elif p == '/big.jpg': self.send(200, 'image/jpeg', big)
        elif p == '/big-unannounced.jpg': self.send(200, 'image/jpeg', big, length=False)
        elif p == '/page.jpg': self.send(200, 'text/html; charset=utf-8', b'<html><body>hi</body></html>')
        elif p == '/fake.jpg': self.send(200, 'image/jpeg', b'this is not a jpeg at all' * 10)
        elif p == '/moved.jpg': self.send(302, 'text/plain', b'', extra=[('Location', '/dog.jpg')])
        else: self.send(404, 'text/plain', b'no')
s = http.server.HTTPServer(('127.0.0.1', 0), H)
open(sys.argv[2], 'w').write(str(s.server_port))
s.serve_forever()
PY
timeout 300 python3 "$TMP/server.py" "$P/animal_dog_corgi.jpg" "$TMP/port" &
SERVER=$!
trap 'rc=$?; kill $SERVER 2>/dev/null; (exit $rc); cli_on_exit' EXIT # keep lib_cli's check
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
U=http://127.0.0.1:$(cat "$TMP/port")
mkdir -p "$TMP/tmpdir"
export TMPDIR=$TMP/tmpdir
Q=("$GAZE" search --db "$DB" -k 3 --json)
"${Q[@]}" --image "$P/animal_dog_corgi.jpg" >"$TMP/local.jsonl" 2>/dev/null
"${Q[@]}" --image "$U/dog.jpg" >"$TMP/url.jsonl" 2>"$TMP/e.txt"
check "an image URL: exit 0" test $? -eq 0
check "an image URL ranks as the same local file" python3 - "$TMP/local.jsonl" "$TMP/url.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
sys.exit(0 if len(a) == 3 and [x['path'] for x in a] == [x['path'] for x in b]
         and all(abs(x['score'] - y['score']) < 1e-6 for x, y in zip(a, b)) else 1)
PY
"${Q[@]}" --image "$U/moved.jpg" >/dev/null 2>&1
check "a redirect to an image is followed" test $? -eq 0
"${Q[@]}" --image "$U/noext" >/dev/null 2>&1
check "application/octet-stream that decodes is accepted" test $? -eq 0
"${Q[@]}" "a dog" --add "image:$U/dog.jpg" >/dev/null 2>&1
check "--add image:URL" test $? -eq 0
"${Q[@]}" --image "$U/big.jpg" --url-max-mb 1 >/dev/null 2>"$TMP/e.txt"
check "oversized (announced): exit 3" test $? -eq 3
check "... names the URL and the limit" grep -q "big.jpg: the answer is larger than the limit of 1048576 bytes" "$TMP/e.txt"
"${Q[@]}" --image "$U/big-unannounced.jpg" --url-max-mb 1 >/dev/null 2>"$TMP/e.txt"
check "oversized (no Content-Length): exit 3" test $? -eq 3
check "... names the limit" grep -q "larger than the limit" "$TMP/e.txt"
"${Q[@]}" --image "$U/page.jpg" >/dev/null 2>"$TMP/e.txt"
check "a web page: exit 3" test $? -eq 3
check "... says it is not an image" grep -q "page.jpg: not an image (Content-Type text/html" "$TMP/e.txt"
"${Q[@]}" --image "$U/fake.jpg" >/dev/null 2>"$TMP/e.txt"
check "bytes that do not decode: exit 3" test $? -eq 3
check "... says so" grep -q "fake.jpg: not an image gaze can read" "$TMP/e.txt"
"${Q[@]}" --image "$U/nothing.jpg" >/dev/null 2>"$TMP/e.txt"
check "404: exit 2 (like a missing file)" test $? -eq 2
check "... says HTTP 404" grep -q "nothing.jpg: the server answered HTTP 404" "$TMP/e.txt"
"${Q[@]}" --image "http://127.0.0.1:1/x.jpg" >/dev/null 2>"$TMP/e.txt"
check "connection refused: exit 3" test $? -eq 3
check "no temporary file left behind" test -z "$(ls -A "$TMP/tmpdir")"
kill $SERVER 2>/dev/null
wait $SERVER 2>/dev/null
cli_finish cli_preview
