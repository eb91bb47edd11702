#!/usr/bin/env bash
# cli_models.sh - end-to-end checks of the model commands through the real gaze binary:
# info, tokenize, embed (--text / --image / --pixels), match, --help/--version.
# Usage: bash tests/cli_models.sh <gaze binary> <tests/data dir>
# References are independent of the code under test: parameter counts and sizes come from
# the safetensors headers (read here in Python), token ids from the fixtures' HF tokenizer
# cases, embeddings from transformers' outputs in expected.safetensors.
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
FIX=$DATA/fixtures

# Python helpers shared by the checks below.
cat >"$TMP/st.py" <<'EOF'
import json, struct, sys, math
def header(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        return json.loads(f.read(n)), 8 + n
def tensor(path, name):
    h, off = header(path)
    t = h[name]
    assert t['dtype'] == 'F32', t['dtype']
    a, b = t['data_offsets']
    with open(path, 'rb') as f:
        f.seek(off + a)
        raw = f.read(b - a)
    vals = list(struct.unpack('<%df' % ((b - a) // 4), raw))
    return vals, t['shape']
def jsonl(path):
    return [json.loads(l) for l in open(path) if l.strip()]
EOF

for fam in blip_itm clip chinese_clip; do
    M=$FIX/$fam
    # ---- info ----
    check "$fam: info exits 0" "$GAZE" info "$M" >"$TMP/info.txt" 2>"$TMP/err.txt"
    check "$fam: info text names the family" grep -q "^family" "$TMP/info.txt"
    if "$GAZE" info "$M" --json >"$TMP/info.json" 2>>"$TMP/err.txt"; then ok; else bad "$fam: info --json"; fi
    check "$fam: info --json matches config and safetensors header" python3 - "$M" "$TMP/info.json" <<'EOF'
import json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[2]))
from st import header
m, info = sys.argv[1], json.load(open(sys.argv[2]))
cfg = json.load(open(os.path.join(m, 'config.json')))
h, _ = header(os.path.join(m, 'model.safetensors'))
params = 0
for k, v in h.items():
    if k == '__metadata__': continue
    n = 1
    for d in v['shape']: n *= d
    params += n
errs = []
if info['family'] != cfg['model_type']: errs.append('family %s' % info['family'])
if info['parameters'] != params: errs.append('parameters %d != %d' % (info['parameters'], params))
if info['file_bytes'] != os.path.getsize(os.path.join(m, 'model.safetensors')): errs.append('file_bytes')
if info['dtypes'] != 'F32': errs.append('dtypes %s' % info['dtypes'])
vc, tc = cfg['vision_config'], cfg['text_config']
if info['vision']['hidden_size'] != vc['hidden_size']: errs.append('vision hidden')
if info['vision']['layers'] != vc['num_hidden_layers']: errs.append('vision layers')
if info['vision']['heads'] != vc['num_attention_heads']: errs.append('vision heads')
if info['vision']['image_size'] != vc.get('image_size', 224): errs.append('image size')
if info['vision']['patch_size'] != vc.get('patch_size', 16 if cfg['model_type'] != 'clip' else 32): errs.append('patch size')
if info['text']['hidden_size'] != tc['hidden_size']: errs.append('text hidden')
if info['text']['layers'] != tc['num_hidden_layers']: errs.append('text layers')
proj = cfg.get('image_text_hidden_size') if cfg['model_type'] == 'blip' else cfg.get('projection_dim')
if info['projection_dim'] != proj: errs.append('projection %s != %s' % (info['projection_dim'], proj))
if info['has_itm'] != (cfg['model_type'] == 'blip'): errs.append('has_itm')
if errs: print(errs, file=sys.stderr); sys.exit(1)
EOF
    "$GAZE" info "$M" --json --weights model.f16.safetensors >"$TMP/info16.json" 2>/dev/null
    check "$fam: info --weights f16 reports F16" grep -q '"dtypes":"F16"' "$TMP/info16.json"

    # ---- tokenize: every tokenizer case against the HF slow tokenizer's ids ----
    # argv cannot carry NUL bytes: cases containing one are left out here and in the check.
    mapfile -d '' args < <(python3 -c "
import json,sys
for c in json.load(open('$M/tokenizer_cases.json'))['cases']:
    if '\\0' not in c['text']: sys.stdout.write(c['text'] + '\\0')
")
    if "$GAZE" tokenize --model "$M" --json --no-truncate -- "${args[@]}" >"$TMP/tok.jsonl" 2>"$TMP/err.txt"; then ok; else bad "$fam: tokenize exit"; cat "$TMP/err.txt" >&2; fi
    check "$fam: tokenize ids equal the HF tokenizer cases" python3 - "$M/tokenizer_cases.json" "$TMP/tok.jsonl" <<'EOF'
import json, sys
cases = [c for c in json.load(open(sys.argv[1]))['cases'] if '\0' not in c['text']]
got = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
if len(got) != len(cases): print('count', len(got), len(cases), file=sys.stderr); sys.exit(1)
bad = [c['text'] for c, g in zip(cases, got) if g['ids'] != c['ids'] or g['text'] != c['text']]
if bad: print('mismatch:', bad[:3], file=sys.stderr); sys.exit(1)
EOF
    "$GAZE" tokenize --model "$M" "a photo of a cat" >"$TMP/tok.txt" 2>&1
    check "$fam: tokenize table output" grep -q "tokens" "$TMP/tok.txt"

    # ---- embed --pixels: transformers' image embeddings ----
    key=image_embeds
    tkey=text_embeds
    if [ "$fam" = blip_itm ]; then key=itc_image_embeds; tkey=itc_text_embeds; fi
    if "$GAZE" embed --model "$M" --pixels "$M/expected.safetensors" --key pixel_values >"$TMP/px.jsonl" 2>"$TMP/err.txt"; then ok; else bad "$fam: embed --pixels"; cat "$TMP/err.txt" >&2; fi
    check "$fam: embed --pixels equals expected $key (atol 1e-4)" python3 - "$M/expected.safetensors" "$key" "$TMP/px.jsonl" <<'EOF'
import sys, os
sys.path.insert(0, os.path.dirname(sys.argv[3]))
from st import tensor, jsonl
want, shape = tensor(sys.argv[1], sys.argv[2])
got = jsonl(sys.argv[3])
n, d = shape
if len(got) != n or any(g['dim'] != d for g in got): print('shape', file=sys.stderr); sys.exit(1)
m = max(abs(g['embedding'][j] - want[i * d + j]) for i, g in enumerate(got) for j in range(d))
print('  embed --pixels max abs diff %.2e' % m, file=sys.stderr)
sys.exit(0 if m < 1e-4 else 1)
EOF
    # ---- embed --text: transformers' text embeddings for the fixture captions ----
    mapfile -d '' caps < <(python3 -c "
import json,sys
for c in json.load(open('$FIX/inputs.json'))['captions'][:6]: sys.stdout.write(c['text'] + '\\0')")
    targs=()
    for c in "${caps[@]}"; do targs+=(--text "$c"); done
    if "$GAZE" embed --model "$M" "${targs[@]}" >"$TMP/tx.jsonl" 2>"$TMP/err.txt"; then ok; else bad "$fam: embed --text"; cat "$TMP/err.txt" >&2; fi
    check "$fam: embed --text equals expected $tkey (atol 1e-4)" python3 - "$M/expected.safetensors" "$tkey" "$TMP/tx.jsonl" <<'EOF'
import sys, os, math
sys.path.insert(0, os.path.dirname(sys.argv[3]))
from st import tensor, jsonl
want, shape = tensor(sys.argv[1], sys.argv[2])
got = jsonl(sys.argv[3])
d = shape[1]
m = max(abs(g['embedding'][j] - want[i * d + j]) for i, g in enumerate(got) for j in range(d))
print('  embed --text max abs diff %.2e over %d captions' % (m, len(got)), file=sys.stderr)
norms = [math.sqrt(sum(x * x for x in g['embedding'])) for g in got]
sys.exit(0 if m < 1e-4 and all(abs(n - 1) < 1e-4 for n in norms) and len(got) == 6 else 1)
EOF
    # ---- embed --image: runs on real photos, unit vectors of the model's dim ----
    if "$GAZE" embed --model "$M" --image "$DATA/photos/animal_dog_corgi.jpg" --image "$DATA/photos/exif_orient_6.jpg" >"$TMP/im.jsonl" 2>"$TMP/err.txt"; then ok; else bad "$fam: embed --image"; cat "$TMP/err.txt" >&2; fi
    check "$fam: embed --image gives unit vectors" python3 - "$TMP/im.jsonl" <<'EOF'
import json, sys, math
got = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if len(got) == 2 and all(abs(math.sqrt(sum(x * x for x in g['embedding'])) - 1) < 1e-4 for g in got) else 1)
EOF
    "$GAZE" embed --model "$M" --image "$TMP/nope.jpg" >/dev/null 2>"$TMP/err.txt"
    rc=$?
    check "$fam: embed of a missing file exits 2 (usage) with a message" test $rc -eq 2 -a -s "$TMP/err.txt"

    # ---- match ----
    if "$GAZE" match --model "$M" --image "$DATA/photos/animal_cat_chelsea.png" --text "a cat" --text "a dog" --json >"$TMP/match.jsonl" 2>"$TMP/err.txt"; then ok; else bad "$fam: match"; cat "$TMP/err.txt" >&2; fi
    if [ "$fam" = blip_itm ]; then
        check "blip: match has itc/itm_logit/itm_prob/score, score = itm_logit + itc" python3 - "$TMP/match.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = len(rows) == 2
for r in rows:
    ok &= all(k in r for k in ('itc', 'itm_logit', 'itm_prob', 'score'))
    ok &= 0 < r['itm_prob'] < 1 and abs(r['score'] - (r['itm_logit'] + r['itc'])) < 1e-5
sys.exit(0 if ok else 1)
EOF
        "$GAZE" match --model "$M" --image "$DATA/photos/animal_cat_chelsea.png" --text "a cat" >"$TMP/match.txt" 2>&1
        check "blip: match table has the ITM columns" grep -q "itm_prob" "$TMP/match.txt"
    else
        check "$fam: match has itc/logit, logit/itc constant (exp(logit_scale))" python3 - "$TMP/match.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = len(rows) == 2 and all('itc' in r and 'logit' in r and 'itm_prob' not in r for r in rows)
s = [r['logit'] / r['itc'] for r in rows]
ok &= abs(s[0] - s[1]) < 1e-3 * abs(s[0])
sys.exit(0 if ok else 1)
EOF
        "$GAZE" match --model "$M" --image "$DATA/photos/animal_cat_chelsea.png" --text "a cat" --itm >/dev/null 2>"$TMP/err.txt"
        rc=$?
        check "$fam: match --itm is a usage error (2)" test $rc -eq 2
        check "$fam: match --itm message names BLIP" grep -q "BLIP" "$TMP/err.txt"
    fi
done

# ---- match --pairs with a bad row ----
mkdir -p "$TMP/pairs"
cp "$DATA/photos/animal_cat_chelsea.png" "$DATA/photos/animal_dog_corgi.jpg" "$TMP/pairs/"
printf 'image,text\nanimal_cat_chelsea.png,a cat\nmissing.jpg,nothing\nanimal_dog_corgi.jpg,"a dog, running"\n' >"$TMP/pairs/p.csv"
"$GAZE" match --model "$FIX/blip_itm" --pairs "$TMP/pairs/p.csv" --json >"$TMP/pairs.jsonl" 2>"$TMP/err.txt"
rc=$?
check "match --pairs with a missing image exits 1" test $rc -eq 1
check "match --pairs reports the bad line" grep -q "p.csv:3" "$TMP/err.txt"
check "match --pairs scores the good rows" test "$(wc -l <"$TMP/pairs.jsonl")" -eq 2
check "match --pairs keeps quoted commas" grep -q '"text":"a dog, running"' "$TMP/pairs.jsonl"

# ---- help and version ----
check "--version" bash -c "'$GAZE' --version | grep -q '^gaze [0-9]'"
for c in index search add-texts match embed tokenize info; do
    check "$c --help has examples" bash -c "'$GAZE' $c --help | grep -q '^examples:'"
done
"$GAZE" nosuchcommand >/dev/null 2>&1
check "unknown command exits 2" test $? -eq 2
"$GAZE" search --k-bogus x >/dev/null 2>&1
check "unknown option exits 2" test $? -eq 2
"$GAZE" info "$TMP/nowhere" >/dev/null 2>&1
check "info on a missing dir exits 2 (a usage error, #12.11)" test $? -eq 2

cli_finish cli_models
