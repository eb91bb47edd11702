#!/usr/bin/env bash
# cli_eval.sh - `gaze eval` end to end through the real binary on tests/data/evalset (16 real
# photos; tiny random fixture models, so the recalls themselves mean nothing): table and
# --json parse; recalls equal a brute-force LAVIS computation done here in Python from
# `gaze embed` vectors (ITC) and `gaze match` ITM logits (BLIP --rerank); --per-item ranks
# agree with the summary; LAVIS' JSON list gives the same numbers as JSONL; --captions
# first; --lang zh_TW with Chinese-CLIP; LAVIS' caption pre-processing against a Python
# rendering of pre_caption; a missing image is reported, left out and gives exit 1;
# --rerank with CLIP is a clear error; usage errors exit 2.
# Usage: bash tests/cli_eval.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"

SET=$DATA/evalset/captions.jsonl
FIX=$DATA/fixtures

if ! "$GAZE" eval --help >/dev/null 2>&1; then
    echo "FAIL: 'gaze eval' is not available in $GAZE (command not registered in cli/main.c?)" >&2
    echo "cli_eval: 0 passed, 1 failed"
    exit 1
fi

# Brute-force LAVIS itm_eval in Python: ranks = candidates scoring strictly higher.
cat >"$TMP/lavis.py" <<'EOF'
import json

def recall(i2t, txt2img, i2t_rr=None, t2i_rr=None, k=0):
    """i2t[i][t] ITC; optional re-rank: i2t_rr[i][t] / t2i_rr[t][i] = ITM logit + ITC for
    the ITC top-k of each query (ties: lower index), the rest behind in ITC order."""
    n_img, n_txt = len(i2t), len(txt2img)
    def order_key(scores, q, rr, kk):
        top = sorted(range(len(scores)), key=lambda c: (-scores[c], c))[:kk] if rr else []
        ts = set(top)
        return lambda c: (1, rr[q][c]) if c in ts else (0, scores[c])
    tr = []
    for i in range(n_img):
        s = i2t[i]
        key = order_key(s, i, i2t_rr, k)
        gts = [t for t in range(n_txt) if txt2img[t] == i]
        best = max(key(g) for g in gts)
        tr.append(sum(1 for c in range(n_txt) if key(c) > best))
    ir = []
    for t in range(n_txt):
        s = [i2t[i][t] for i in range(n_img)]
        key = order_key(s, t, t2i_rr, k)
        g = key(txt2img[t])
        ir.append(sum(1 for c in range(n_img) if key(c) > g))
    r = {}
    for name, ranks in (('txt', tr), ('img', ir)):
        for K in (1, 5, 10):
            r['%s_r%d' % (name, K)] = 100.0 * sum(1 for x in ranks if x < K) / len(ranks)
        r[name + '_r_mean'] = (r[name + '_r1'] + r[name + '_r5'] + r[name + '_r10']) / 3
    r['r_mean'] = (r['txt_r_mean'] + r['img_r_mean']) / 2
    return r, tr, ir

def load_set(path, first=False):
    images, texts, txt2img = [], [], []
    for line in open(path, encoding='utf-8'):
        if not line.strip():
            continue
        o = json.loads(line)
        caps = o['captions'][:1] if first else o['captions']
        for c in caps:
            texts.append(c)
            txt2img.append(len(images))
        images.append(o['image'])
    return images, texts, txt2img

FIELDS = ['txt_r1', 'txt_r5', 'txt_r10', 'txt_r_mean', 'img_r1', 'img_r5', 'img_r10',
          'img_r_mean', 'r_mean']

def same(got, want, what):
    bad = [(f, got[f], want[f]) for f in FIELDS if abs(got[f] - want[f]) > 1e-6]
    if bad:
        import sys
        print(what, 'differs:', bad, file=sys.stderr)
    return not bad
EOF

# ---- table and JSON for every family ----
for fam in blip_itm clip chinese_clip; do
    M=$FIX/$fam
    "$GAZE" eval "$SET" --model "$M" -q >"$TMP/t.txt" 2>"$TMP/e.txt"
    check "$fam: table exits 0" test $? -eq 0
    check "$fam: table has LAVIS columns and an itc row" python3 - "$TMP/t.txt" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
hdr = [l for l in lines if l.startswith('ranking')]
row = [l for l in lines if l.startswith('itc ')]
cols = 'ranking txt_r1 txt_r5 txt_r10 txt_r_mean img_r1 img_r5 img_r10 img_r_mean r_mean'.split()
ok = len(hdr) == 1 and hdr[0].split() == cols and len(row) == 1
cells = row[0].split()[1:] if ok else []
ok = ok and all(c.endswith('%') for c in cells)  # recalls are percentages, shown as such
vals = [float(c.rstrip('%')) for c in cells] if ok else []
ok = ok and len(vals) == 9 and all(0 <= v <= 100 for v in vals)
sys.exit(0 if ok else 1)
EOF
    "$GAZE" eval "$SET" --model "$M" -q --json --per-item "$TMP/pi.jsonl" >"$TMP/j.json" 2>"$TMP/e.txt"
    check "$fam: --json exits 0" test $? -eq 0
    check "$fam: --json parses, counts, fields, formulas, per-item ranks agree" python3 - "$TMP/j.json" "$TMP/pi.jsonl" "$fam" <<'EOF'
import json, re, sys
j = json.loads(open(sys.argv[1]).read())
items = [json.loads(l) for l in open(sys.argv[2])]
ok = j['n_images'] == 16 and j['n_texts'] == 24 and j['n_failed_images'] == 0
ok &= j['rerank'] is None and j['ranking'] == 'itc' and j['failed'] == []
ok &= re.fullmatch(r'[0-9a-f]{32}', j['model']['fingerprint']) is not None
ok &= j['model']['family'] == {'blip_itm': 'blip'}.get(sys.argv[3], sys.argv[3])
ok &= j['protocol']['text_process'] == ('blip_caption' if sys.argv[3] == 'blip_itm' else 'none')
ok &= j['dataset']['format'] == 'jsonl' and re.fullmatch(r'[0-9a-f]{16}', j['dataset']['xxh3_64']) is not None
ok &= all(j[f] == j['itc'][f] for f in ['txt_r1', 'img_r10', 'r_mean'])
ok &= abs(j['r_mean'] - (j['txt_r_mean'] + j['img_r_mean']) / 2) < 1e-6
ok &= abs(j['txt_r_mean'] - (j['txt_r1'] + j['txt_r5'] + j['txt_r10']) / 3) < 1e-6
ok &= abs(j['clip_benchmark']['image_retrieval_recall@5'] * 100 - j['img_r5']) < 1e-6
ok &= all(t in j['timings'] for t in ['images_s', 'texts_s', 'total_s'])
img = [r for r in items if r['query'] == 'image']
txt = [r for r in items if r['query'] == 'text']
ok &= len(img) == 16 and len(txt) == 24
ok &= all(r['rank'] >= 1 for r in items)
for K in (1, 5, 10):
    ok &= abs(100.0 * sum(r['rank'] <= K for r in img) / 16 - j['txt_r%d' % K]) < 1e-6
    ok &= abs(100.0 * sum(r['rank'] <= K for r in txt) / 24 - j['img_r%d' % K]) < 1e-6
ok &= all((r['rank'] == 1) == r['top_is_gt'] for r in img if r['n_gt'] == 1)
sys.exit(0 if ok else 1)
EOF
done

# ---- ITC recalls equal a brute force from `gaze embed` (clip; decode options as embed's) ----
M=$FIX/clip
python3 - "$SET" >"$TMP/args.txt" <<EOF
import json, os, sys
sys.path.insert(0, '$TMP')
from lavis import load_set
images, texts, t2i = load_set(sys.argv[1])
d = os.path.dirname(sys.argv[1])
for i in images: print('--image'); print(os.path.join(d, i))
for t in texts: print('--text'); print(t)
EOF
mapfile -t EARGS <"$TMP/args.txt"
"$GAZE" embed --model "$M" --fast-decode "${EARGS[@]}" >"$TMP/emb.jsonl" 2>"$TMP/e.txt"
check "clip: gaze embed of the set exits 0" test $? -eq 0
"$GAZE" eval "$SET" --model "$M" -q --json --fast-decode --exif-orient >"$TMP/j.json" 2>"$TMP/e.txt"
check "clip: recalls equal the brute force from gaze embed vectors" python3 - "$SET" "$TMP/emb.jsonl" "$TMP/j.json" "$TMP" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[4])
from lavis import load_set, recall, same
images, texts, t2i = load_set(sys.argv[1])
emb = [json.loads(l) for l in open(sys.argv[2])]
iv = [e['embedding'] for e in emb if e['kind'] == 'image']
tv = [e['embedding'] for e in emb if e['kind'] == 'text']
assert len(iv) == len(images) and len(tv) == len(texts)
i2t = [[sum(a * b for a, b in zip(x, y)) for y in tv] for x in iv]
want, _, _ = recall(i2t, t2i)
got = json.loads(open(sys.argv[3]).read())
sys.exit(0 if same(got, want, 'itc') and got['protocol']['exif_orient'] and got['protocol']['fast_decode'] else 1)
EOF

# ---- BLIP --rerank: equal to a brute force from `gaze match` ITM logits ----
M=$FIX/blip_itm
python3 - "$SET" >"$TMP/pairs.jsonl" <<EOF
import json, sys
sys.path.insert(0, '$TMP')
from lavis import load_set
images, texts, t2i = load_set(sys.argv[1])
for i in images:
    for t in texts:
        print(json.dumps({'image': i, 'text': t}))
EOF
# image paths in the pairs file are relative to its folder: a folder linking the set's images
mkdir -p "$TMP/set" && ln -s "$(cd "$DATA/evalset" && pwd)/images" "$TMP/set/images"
mv "$TMP/pairs.jsonl" "$TMP/set/pairs.jsonl"
PAIRS=$TMP/set/pairs.jsonl
"$GAZE" match --model "$M" --fast-decode --pairs "$PAIRS" --json >"$TMP/match.jsonl" 2>"$TMP/e.txt"
check "blip: gaze match of all pairs exits 0" test $? -eq 0
for K in 3 8; do
    "$GAZE" eval "$SET" --model "$M" -q --json --rerank $K --text-process none --fast-decode \
        --exif-orient >"$TMP/r.json" 2>"$TMP/e.txt"
    check "blip: --rerank $K exits 0" test $? -eq 0
    check "blip: --rerank $K recalls equal the brute force from gaze match (itm_logit + itc)" \
        python3 - "$SET" "$TMP/match.jsonl" "$TMP/r.json" "$TMP" "$K" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[4])
from lavis import load_set, recall, same
images, texts, t2i = load_set(sys.argv[1])
k = int(sys.argv[5])
rows = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == len(images) * len(texts)
nt = len(texts)
i2t = [[rows[i * nt + t]['itc'] for t in range(nt)] for i in range(len(images))]
itm = [[rows[i * nt + t]['itm_logit'] for t in range(nt)] for i in range(len(images))]
i2t_rr = [[itm[i][t] + i2t[i][t] for t in range(nt)] for i in range(len(images))]
t2i_rr = [[i2t_rr[i][t] for i in range(len(images))] for t in range(nt)]
want_itc, _, _ = recall(i2t, t2i)
want, _, _ = recall(i2t, t2i, i2t_rr, t2i_rr, k)
got = json.loads(open(sys.argv[3]).read())
ok = got['ranking'] == 'itm+itc' and got['rerank']['k'] == k
ok &= same(got['itc'], want_itc, 'itc') and same(got['rerank'], want, 'rerank')
ok &= all(got[f] == got['rerank'][f] for f in ['txt_r1', 'r_mean'])
ok &= len(images) * k <= got['rerank']['itm_pairs'] <= (len(images) + nt) * k
sys.exit(0 if ok else 1)
EOF
done
"$GAZE" eval "$SET" --model "$M" -q --rerank 4 >"$TMP/rt.txt" 2>/dev/null
check "blip: --rerank table shows the itm+itc row" grep -q "^itm+itc k=4" "$TMP/rt.txt"

# ---- CLIP --rerank: a clear error ----
for fam in clip chinese_clip; do
    "$GAZE" eval "$SET" --model "$FIX/$fam" -q --rerank 4 >/dev/null 2>"$TMP/e.txt"
    check "$fam: --rerank is a usage error (2)" test $? -eq 2
    check "$fam: --rerank error names BLIP" grep -q "BLIP" "$TMP/e.txt"
done

# ---- LAVIS JSON list = JSONL; --captions first ----
M=$FIX/clip
"$GAZE" eval "$SET" --model "$M" -q --json >"$TMP/a.json" 2>/dev/null
"$GAZE" eval "$DATA/evalset/lavis_test.json" --model "$M" -q --json >"$TMP/b.json" 2>/dev/null
check "LAVIS JSON list gives the JSONL's numbers" python3 - "$TMP/a.json" "$TMP/b.json" <<'EOF'
import json, sys
a, b = (json.loads(open(p).read()) for p in sys.argv[1:3])
ok = b['dataset']['format'] == 'json-list' and a['n_texts'] == b['n_texts']
ok &= all(a[f] == b[f] for f in ['txt_r1', 'txt_r5', 'txt_r10', 'img_r1', 'img_r5', 'img_r10', 'r_mean'])
sys.exit(0 if ok else 1)
EOF
"$GAZE" eval "$SET" --model "$M" -q --json --captions first --per-item "$TMP/pf.jsonl" >"$TMP/f.json" 2>/dev/null
check "--captions first: one text per image, the first caption" python3 - "$SET" "$TMP/f.json" "$TMP/pf.jsonl" <<'EOF'
import json, sys
first = [json.loads(l)['captions'][0] for l in open(sys.argv[1]) if l.strip()]
j = json.loads(open(sys.argv[2]).read())
txt = [json.loads(l)['text'] for l in open(sys.argv[3]) if '"query":"text"' in l]
sys.exit(0 if j['n_texts'] == 16 and txt == first and j['protocol']['captions'] == 'first' else 1)
EOF

# ---- --lang zh_TW with Chinese-CLIP ----
"$GAZE" eval "$SET" --model "$FIX/chinese_clip" --lang zh_TW -q --json --per-item "$TMP/pz.jsonl" >"$TMP/z.json" 2>"$TMP/e.txt"
check "zh_TW: exits 0" test $? -eq 0
check "zh_TW: 7 images with zh_TW captions, 9 skipped, the texts are the zh_TW captions" python3 - "$SET" "$TMP/z.json" "$TMP/pz.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
want = [c for r in rows for c in r['captions_i18n'].get('zh_TW', [])]
j = json.loads(open(sys.argv[2]).read())
txt = [json.loads(l)['text'] for l in open(sys.argv[3]) if '"query":"text"' in l]
ok = j['n_images'] == 7 and j['n_no_captions'] == 9 and j['protocol']['lang'] == 'zh_TW'
ok &= txt == want and len(want) == j['n_texts'] and all(any(ord(ch) > 0x2e80 for ch in t) for t in txt)
sys.exit(0 if ok else 1)
EOF
"$GAZE" eval "$SET" --model "$FIX/chinese_clip" --lang xx_YY -q >/dev/null 2>"$TMP/e.txt"
check "unknown language: fatal, named" bash -c '[ $0 -eq 3 ] && grep -q xx_YY "$1"' $? "$TMP/e.txt"

# ---- BLIP caption pre-processing = LAVIS pre_caption (a Python rendering of it) ----
printf '%s\n' '{"image": "images/erase__calf.jpg", "captions": ["A Calf.  Looking (UP)!!", "tab\there", "two \t spaces: ok; \"quoted\" ~end~", "w1 w2 w3 w4 w5 w6 w7"]}' \
    '{"image": "images/erase__heron.jpg", "captions": ["\u00c9COLE d\u0027\u00e9t\u00e9 #1*"]}' >"$TMP/pc.jsonl"
"$GAZE" eval "$TMP/pc.jsonl" --image-root "$DATA/evalset" --model "$FIX/blip_itm" -q --max-words 5 --per-item "$TMP/pp.jsonl" >/dev/null 2>"$TMP/e.txt"
check "pre-processing run exits 0" test $? -eq 0
check "text_processed equals LAVIS pre_caption(max_words=5)" python3 - "$TMP/pp.jsonl" <<'EOF'
import json, re, sys
def pre_caption(caption, max_words):
    caption = re.sub(r'([.!"()*#:;~])', ' ', caption.lower())
    caption = re.sub(r'\s{2,}', ' ', caption)
    caption = caption.rstrip('\n').strip(' ')
    words = caption.split(' ')
    return ' '.join(words[:max_words]) if len(words) > max_words else caption
rows = [json.loads(l) for l in open(sys.argv[1]) if '"query":"text"' in l]
bad = [(r['text'], r['text_processed'], pre_caption(r['text'], 5)) for r in rows
       if r['text_processed'] != pre_caption(r['text'], 5)]
if bad: print(bad, file=sys.stderr)
sys.exit(0 if len(rows) == 5 and not bad else 1)
EOF

# ---- a missing image: reported, left out with its captions, exit 1, results printed ----
cp "$SET" "$TMP/miss.jsonl"
echo '{"image": "images/no_such_photo.jpg", "captions": ["a ghost", "another ghost"]}' >>"$TMP/miss.jsonl"
"$GAZE" eval "$TMP/miss.jsonl" --image-root "$DATA/evalset" --model "$FIX/clip" -q --json >"$TMP/m.json" 2>"$TMP/e.txt"
check "missing image: exit 1" test $? -eq 1
check "missing image: stderr names the file" grep -q "no_such_photo.jpg" "$TMP/e.txt"
check "missing image: JSON still printed, image and its 2 captions left out, same recalls" python3 - "$TMP/m.json" "$TMP/a.json" <<'EOF'
import json, sys
m, a = (json.loads(open(p).read()) for p in sys.argv[1:3])
ok = m['n_failed_images'] == 1 and m['n_failed_texts'] == 2 and m['n_images'] == 16
ok &= len(m['failed']) == 1 and m['failed'][0]['path'].endswith('no_such_photo.jpg') and bool(m['failed'][0]['error'])
ok &= all(m[f] == a[f] for f in ['txt_r1', 'txt_r10', 'img_r5', 'r_mean'])
sys.exit(0 if ok else 1)
EOF
"$GAZE" eval "$TMP/miss.jsonl" --image-root "$DATA/evalset" --model "$FIX/clip" -q >"$TMP/mt.txt" 2>/dev/null
check "missing image: table still printed" grep -q "^itc " "$TMP/mt.txt"

# ---- errors ----
"$GAZE" eval "$SET" --model "$FIX/clip" --captions some >/dev/null 2>&1
check "--captions some: usage error (2)" test $? -eq 2
"$GAZE" eval --model "$FIX/clip" >/dev/null 2>&1
check "no dataset: usage error (2)" test $? -eq 2
echo '{"image": "a.jpg", "captions": [3]}' >"$TMP/bad.jsonl"
"$GAZE" eval "$TMP/bad.jsonl" --model "$FIX/clip" >/dev/null 2>"$TMP/e.txt"
check "malformed dataset: fatal (3), file:line named" bash -c '[ $0 -eq 3 ] && grep -q "bad.jsonl:1" "$1"' $? "$TMP/e.txt"

cli_finish cli_eval
