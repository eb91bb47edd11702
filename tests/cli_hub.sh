#!/usr/bin/env bash
# cli_hub.sh - models by name through the real gaze binary: `gaze model pull|list|rm` against
# tests/hub_standin.py (a loopback stand-in of the Hugging Face Hub serving the fixture models),
# and --model ORG/NAME resolved from the cache offline by index, search, embed and info.
# Usage: bash tests/cli_hub.sh <gaze binary> <tests/data dir>
# Exit codes checked: 0 ok, 2 usage (a malformed id), 3 failure (an id not in the cache, HTTP
# and network errors).
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
FIX=$DATA/fixtures
GAZE=$(realpath "$GAZE") # some checks run from another folder
STANDIN=$DATA/../hub_standin.py
COMMIT=5d3a1f0e9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e # hub_standin.py's fixed commit

# The cache and the Hub are this test's own: nothing of the user's environment leaks in.
unset HF_TOKEN HF_TOKEN_PATH HF_HUB_OFFLINE HF_HUB_CACHE GAZE_MODEL XDG_CACHE_HOME
export HF_HOME=$TMP/hf
export HOME=$TMP/home
CACHE=$HF_HOME/hub

pids=()
stop_all() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    pids=()
}
trap 'rc=$?; stop_all; (exit $rc); cli_on_exit' EXIT # cli_on_exit reads the exit status

# Start the stand-in (extra arguments passed on); sets PORT and SPID. Port 0: any free port.
start_standin() {
    local out=$TMP/port.$RANDOM
    python3 "$STANDIN" --port 0 --log "$TMP/standin.log" "$@" >"$out" &
    SPID=$!
    pids+=("$SPID")
    PORT=
    for _ in $(seq 200); do
        PORT=$(head -n1 "$out" 2>/dev/null)
        [ -n "$PORT" ] && break
        sleep 0.05
    done
    [ -n "$PORT" ] || { bad "hub_standin.py did not start"; cli_finish cli_hub; exit 1; }
}
stop_standin() {
    kill "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
}

# A repository of a family gaze cannot run.
mkdir -p "$TMP/bert"
echo '{"model_type": "bert", "architectures": ["BertModel"]}' >"$TMP/bert/config.json"
echo 'weights' >"$TMP/bert/model.safetensors"

start_standin --repo "org/clip=$FIX/clip" --repo "org/blip=$FIX/blip_itm" \
    --repo "org/bert=$TMP/bert"
export HF_ENDPOINT=http://127.0.0.1:$PORT

# ---- usage ----
"$GAZE" model >/dev/null 2>&1
check "model without a command: usage (2)" [ $? -eq 2 ]
"$GAZE" model --help >"$TMP/help.txt" 2>&1
check "model --help exits 0" [ $? -eq 0 ]
check "model --help has examples and HF_TOKEN" grep -q "gaze model pull openai/clip-vit-base-patch32" "$TMP/help.txt"
check "model --help names HF_TOKEN" grep -q "HF_TOKEN" "$TMP/help.txt"
"$GAZE" model pull --help >"$TMP/help.txt" 2>&1
check "model pull --help exits 0" [ $? -eq 0 ]
check "model pull --help shows usage" grep -q "usage: gaze model pull REPO_ID\[@REVISION\]" "$TMP/help.txt"
"$GAZE" model pull >/dev/null 2>&1
check "model pull without id: usage (2)" [ $? -eq 2 ]
"$GAZE" model pull not-an-id >/dev/null 2>"$TMP/err.txt"
check "model pull of a malformed id: usage (2)" [ $? -eq 2 ]
check "malformed id message" grep -q "not a repository id" "$TMP/err.txt"
"$GAZE" model frobnicate >/dev/null 2>&1
check "unknown model command: usage (2)" [ $? -eq 2 ]
"$GAZE" --help | grep -q "^  model " && ok || bad "top-level help lists 'model'"

# ---- pull ----
"$GAZE" model pull org/clip >"$TMP/pull1.txt" 2>"$TMP/pull1.err"
check "pull exits 0" [ $? -eq 0 ]
SNAP=$CACHE/models--org--clip/snapshots/$COMMIT
check "summary: files and bytes" grep -q "^pulled org/clip (commit 5d3a1f0e9b8c): 7 files" "$TMP/pull1.txt"
check "summary: downloaded 7 files" grep -q "^downloaded 7 files" "$TMP/pull1.txt"
check "summary: family and embedding size" grep -q "^model clip (CLIPModel), embedding size 24" "$TMP/pull1.txt"
check "summary: snapshot path" grep -qx "snapshot $SNAP" "$TMP/pull1.txt"
# stderr is not a terminal here: plain lines, one per finished file, no escape sequences
check "plain progress line per file" grep -q "^model.safetensors: .* done" "$TMP/pull1.err"
check "no terminal escapes when stderr is a file" bash -c "! grep -q $'\r' '$TMP/pull1.err'"
for f in config.json model.safetensors vocab.json merges.txt preprocessor_config.json; do
    check "$f byte-exact" cmp -s "$SNAP/$f" "$FIX/clip/$f"
    case $(readlink "$SNAP/$f") in ../../blobs/*) ok ;; *) bad "$f: not a relative blob link" ;; esac
done
check "refs/main holds the commit" [ "$(cat "$CACHE/models--org--clip/refs/main")" = "$COMMIT" ]
check "no unwanted file pulled" [ ! -e "$SNAP/expected.safetensors" ]

n_resolve=$(grep -c "/resolve/" "$TMP/standin.log")
"$GAZE" model pull org/clip >"$TMP/pull2.txt" 2>/dev/null
check "pull again exits 0" [ $? -eq 0 ]
check "pull again downloads nothing" grep -q "^downloaded nothing" "$TMP/pull2.txt"
check "pull again: no file request" [ "$(grep -c "/resolve/" "$TMP/standin.log")" -eq "$n_resolve" ]

"$GAZE" model pull org/blip --quiet >"$TMP/pullq.txt" 2>"$TMP/pullq.err"
check "pull --quiet exits 0" [ $? -eq 0 ]
check "pull --quiet prints the snapshot only" [ "$(cat "$TMP/pullq.txt")" = "$CACHE/models--org--blip/snapshots/$COMMIT" ]
check "pull --quiet: nothing on stderr" [ ! -s "$TMP/pullq.err" ]

# ---- errors of pull ----
"$GAZE" model pull org/nope >/dev/null 2>"$TMP/err.txt"
check "404 repository: exit 3" [ $? -eq 3 ]
check "404 repository message" grep -q "repository org/nope not found on $HF_ENDPOINT" "$TMP/err.txt"
"$GAZE" model pull org/clip@v9 >/dev/null 2>"$TMP/err.txt"
check "404 revision: exit 3" [ $? -eq 3 ]
check "404 revision message" grep -q "revision v9 not found in repository org/clip" "$TMP/err.txt"
"$GAZE" model pull org/bert >/dev/null 2>"$TMP/err.txt"
check "family gaze cannot run: exit 3" [ $? -eq 3 ]
check "family gaze cannot run: says which" grep -q "org/bert holds no model gaze can run.*'bert'" "$TMP/err.txt"
check "one error line" [ "$(grep -c '^gaze: ' "$TMP/err.txt")" -eq 1 ]
start=$(date +%s%N)
HF_ENDPOINT=http://127.0.0.1:1 "$GAZE" model pull org/other >/dev/null 2>"$TMP/err.txt"
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "unreachable endpoint: exit 3" [ $rc -eq 3 ]
check "unreachable endpoint: named" grep -q "cannot reach http://127.0.0.1:1" "$TMP/err.txt"
check "unreachable endpoint: fails quickly (${ms} ms)" [ "$ms" -lt 5000 ]
HF_HUB_OFFLINE=1 "$GAZE" model pull org/other >/dev/null 2>"$TMP/err.txt"
check "offline pull of an uncached id: exit 3" [ $? -eq 3 ]
check "offline pull: says HF_HUB_OFFLINE" grep -q "HF_HUB_OFFLINE is set" "$TMP/err.txt"
HF_HUB_OFFLINE=1 "$GAZE" model pull org/clip >"$TMP/off.txt" 2>/dev/null
check "offline pull of a cached id: exit 0" [ $? -eq 0 ]
check "offline pull: nothing downloaded" grep -q "^downloaded nothing" "$TMP/off.txt"

# 401: a gated repository, without and with a token.
stop_standin
start_standin --repo "org/gated=$FIX/clip" --token hf_secret
HF_ENDPOINT=http://127.0.0.1:$PORT "$GAZE" model pull org/gated >/dev/null 2>"$TMP/err.txt"
check "401: exit 3" [ $? -eq 3 ]
check "401: gated or private, set HF_TOKEN" grep -q "gated or private.*HF_TOKEN" "$TMP/err.txt"
check "401: hint to log in" grep -q "huggingface-cli login" "$TMP/err.txt"
mkdir -p "$HF_HOME"
printf 'hf_secret\n' >"$HF_HOME/token" # as huggingface-cli login leaves it
HF_ENDPOINT=http://127.0.0.1:$PORT "$GAZE" model pull org/gated --quiet >/dev/null 2>"$TMP/err.txt"
check "401: the token file of huggingface-cli login is used" [ $? -eq 0 ]
rm -f "$HF_HOME/token"
"$GAZE" model rm org/gated >/dev/null 2>&1
check "rm org/gated" [ ! -e "$CACHE/models--org--gated" ]
stop_standin

# ---- list ----
# A repository gaze cannot run, as another tool would leave it: skipped, counted.
B=$CACHE/models--acme--bert
mkdir -p "$B/blobs" "$B/refs" "$B/snapshots/$COMMIT"
cp "$TMP/bert/config.json" "$B/blobs/b1"
ln -s ../../blobs/b1 "$B/snapshots/$COMMIT/config.json"
printf '%s' "$COMMIT" >"$B/refs/main"
"$GAZE" model list >"$TMP/list.txt" 2>"$TMP/list.err"
check "list exits 0" [ $? -eq 0 ]
check "list: header" grep -q "^MODEL *REVISION *COMMIT *FAMILY *DIM *PARAMS *SIZE" "$TMP/list.txt"
check "list: org/clip with family and dim" grep -Eq "^org/clip +main +5d3a1f0e9b8c +clip +24 +1\.7M" "$TMP/list.txt"
check "list: org/blip" grep -Eq "^org/blip +main +5d3a1f0e9b8c +blip +32 " "$TMP/list.txt"
check "list: a repo gaze cannot run is not shown" bash -c "! grep -q acme/bert '$TMP/list.txt'"
# (2: acme/bert, and the config.json that the refused pull of org/bert left, as documented)
check "list: ... but counted" grep -q "2 cached snapshots gaze cannot run not shown" "$TMP/list.err"
"$GAZE" model list --all >"$TMP/list.txt" 2>/dev/null
check "list --all marks it" grep -Eq "^acme/bert +main .*\(cannot run\)" "$TMP/list.txt"
"$GAZE" model list --json >"$TMP/list.json" 2>/dev/null
check "list --json" python3 - "$TMP/list.json" "$FIX/clip/model.safetensors" <<'EOF'
import json, struct, sys
rows = {r["repo_id"]: r for r in json.load(open(sys.argv[1]))}
with open(sys.argv[2], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
params = 0
for k, v in h.items():
    if k == "__metadata__": continue
    p = 1
    for d in v["shape"]: p *= d
    params += p
c = rows["org/clip"]
assert set(rows) == {"org/clip", "org/blip"}, rows.keys()
assert c["family"] == "clip" and c["dim"] == 24 and c["revisions"] == ["main"], c
assert c["parameters"] == params, (c["parameters"], params)
assert c["runnable"] is True and c["commit"] == "5d3a1f0e9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e", c
EOF

# ---- --model ORG/NAME, offline (the stand-in is stopped; no endpoint can be reached) ----
export HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1
DB=$TMP/photos.db
"$GAZE" index "$FIX/images" --db "$DB" --model org/clip --quiet >/dev/null 2>"$TMP/err.txt"
check "index --model org/clip offline exits 0" [ $? -eq 0 ]
"$GAZE" search "a rocket" --db "$DB" --model org/clip -k 3 --paths >"$TMP/s1.txt" 2>"$TMP/err.txt"
check "search --model org/clip exits 0" [ $? -eq 0 ]
check "search --model org/clip finds images" [ "$(wc -l <"$TMP/s1.txt")" -eq 3 ]
"$GAZE" search "a rocket" --db "$DB" -k 3 --paths >"$TMP/s2.txt" 2>"$TMP/err.txt"
check "search without --model: the db's org/clip, from the cache" [ $? -eq 0 ]
check "same hits with the recorded id" cmp -s "$TMP/s1.txt" "$TMP/s2.txt"
"$GAZE" info --db "$DB" >"$TMP/info.txt" 2>&1
check "info --db: the model is recorded by id" grep -q "^model 1 *org/clip (clip, dim 24" "$TMP/info.txt"
check "info --db: repo id, revision, commit" grep -q "hub *org/clip, revision main, commit $COMMIT" "$TMP/info.txt"
"$GAZE" info --db "$DB" --json >"$TMP/info.json" 2>/dev/null
check "info --db --json: hub fields" python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))["models"][0]
assert m["name"] == "org/clip" and m["hub_id"] == "org/clip" and m["hub_revision"] == "main", m
assert m["hub_commit"] == sys.argv[2], m' "$TMP/info.json" "$COMMIT"
GAZE_MODEL=org/clip "$GAZE" embed --text "a rocket" >/dev/null 2>"$TMP/err.txt"
check "GAZE_MODEL=org/clip" [ $? -eq 0 ]
"$GAZE" info org/clip@$COMMIT >"$TMP/info.txt" 2>&1
check "info ORG/NAME@COMMIT" grep -q "^hub *org/clip, revision $COMMIT, commit $COMMIT" "$TMP/info.txt"

# A model laid out by hand as huggingface_hub / transformers leave it: blobs named by sha256
# (LFS) or git sha1, relative snapshot links, refs/main. Used without any network.
H=$CACHE/models--acme--tiny-cn
HC=1111111111111111111111111111111111111111
mkdir -p "$H/blobs" "$H/refs" "$H/snapshots/$HC"
for f in "$FIX"/chinese_clip/*; do
    name=$(basename "$f")
    case $name in expected.safetensors | *.f16.* | *.bf16.*) continue ;; esac
    if [ "$name" = model.safetensors ]; then
        h=$(sha256sum "$f" | cut -d' ' -f1)
    else
        h=$( (printf 'blob %d\0' "$(stat -c %s "$f")"; cat "$f") | sha1sum | cut -d' ' -f1)
    fi
    cp "$f" "$H/blobs/$h"
    ln -s "../../blobs/$h" "$H/snapshots/$HC/$name"
done
printf '%s' "$HC" >"$H/refs/main"
"$GAZE" embed --model acme/tiny-cn --text "一只猫" >"$TMP/e1.txt" 2>"$TMP/err.txt"
check "hand-laid cache: embed --model acme/tiny-cn" [ $? -eq 0 ]
"$GAZE" embed --model "$FIX/chinese_clip" --text "一只猫" >"$TMP/e2.txt" 2>/dev/null
check "hand-laid cache: same embedding as the folder" cmp -s "$TMP/e1.txt" "$TMP/e2.txt"
"$GAZE" info acme/tiny-cn >"$TMP/info.txt" 2>&1
check "hand-laid cache: info acme/tiny-cn" grep -q "^family *chinese_clip" "$TMP/info.txt"
"$GAZE" model list >"$TMP/list.txt" 2>/dev/null
check "hand-laid cache: listed" grep -Eq "^acme/tiny-cn +main +111111111111 +chinese_clip" "$TMP/list.txt"

# An id that is not cached: the library says so, the command says what to run; a --model
# that names nothing is a usage error (exit 2).
"$GAZE" embed --model org/nope --text x >/dev/null 2>"$TMP/err.txt"
check "uncached id: exit 2" [ $? -eq 2 ]
check "uncached id: message and the command to run" grep -qx "gaze: org/nope is not in the Hugging Face cache ($CACHE), nor a folder; run: gaze model pull org/nope" "$TMP/err.txt"
"$GAZE" index "$FIX/images" --db "$TMP/other.db" --model org/nope@v2 --quiet >/dev/null 2>"$TMP/err.txt"
check "uncached id@rev (index): exit 2" [ $? -eq 2 ]
check "uncached id@rev (index): run hint" grep -q "; run: gaze model pull org/nope@v2$" "$TMP/err.txt"
"$GAZE" info org/nope >/dev/null 2>"$TMP/err.txt"
check "uncached id (info): exit 3 and hint" grep -q "run: gaze model pull org/nope" "$TMP/err.txt"
HF_HUB_CACHE=$TMP/elsewhere "$GAZE" embed --model org/clip --text x >/dev/null 2>"$TMP/err.txt"
check "HF_HUB_CACHE is honoured" grep -q "org/clip is not in the Hugging Face cache ($TMP/elsewhere)" "$TMP/err.txt"

# A folder that exists wins over an id of the same name.
mkdir -p "$TMP/cwd/org"
cp -r "$FIX/chinese_clip" "$TMP/cwd/org/clip"
(cd "$TMP/cwd" && "$GAZE" info org/clip) >"$TMP/info.txt" 2>&1
check "an existing folder wins over an id" grep -q "^family *chinese_clip" "$TMP/info.txt"
check "... and has no hub origin" bash -c "! grep -q '^hub' '$TMP/info.txt'"

# ---- rm ----
unset HF_HUB_OFFLINE
"$GAZE" model rm org/clip >"$TMP/rm.txt" 2>&1
check "rm exits 0" [ $? -eq 0 ]
check "rm removes the repository" [ ! -e "$CACHE/models--org--clip" ]
check "rm leaves the others" [ -e "$CACHE/models--org--blip/refs/main" ]
"$GAZE" model list >"$TMP/list.txt" 2>/dev/null
check "rm: no longer listed" bash -c "! grep -q '^org/clip ' '$TMP/list.txt'"
"$GAZE" model rm org/clip >/dev/null 2>"$TMP/err.txt"
check "rm of an uncached id: exit 3" [ $? -eq 3 ]
check "rm of an uncached id: message" grep -q "org/clip" "$TMP/err.txt"
# The database still names org/clip: the command to run is named.
"$GAZE" search "a rocket" --db "$DB" -k 3 >/dev/null 2>"$TMP/err.txt"
check "db's model removed from the cache: exit 3" [ $? -eq 3 ]
check "db's model removed from the cache: run hint" grep -q "run: gaze model pull org/clip$" "$TMP/err.txt"

cli_finish cli_hub
