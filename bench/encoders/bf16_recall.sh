#!/usr/bin/env bash
# bf16_recall.sh - how far a bf16 index agrees with an fp32 index at the retrieval level (#14).
#
# For each shared evalset (gcompris-photos, tuxpaint-stamps: captions.jsonl + images/), index the
# images twice with the same model, once with --precision fp32 and once with --precision bf16,
# into two databases; take every image's first caption as a text query, encoded in the same
# precision as the database it queries (`gaze embed --text ...`, one process per precision);
# rank the database's images for it exactly as `gaze search` does on the default Flat index
# (inner product of the L2-normalised vectors read from the database, best first); check that
# ranking against real `gaze search -k 10 --json` runs for the first --check queries of each
# set and precision (one process per query costs 1-2 s with the full-size model: too slow for
# all ~1300); and report
#   - overlap@10: mean |top10_fp32 ∩ top10_bf16| / 10 over the queries,
#   - the fraction of queries whose two top-10 sets are identical,
#   - recall@10 of each: the fraction of captions whose own image is in the top 10,
#   - the min and mean cosine of each image's bf16 and fp32 embedding (from the two databases)
#     and of each caption's.
# With --eval it also runs `gaze eval` on each set in both precisions (LAVIS Recall@K).
#
# With random full-size weights (bench models) recall is near chance (10/N): then the numbers
# measure the agreement of bf16 with fp32 only, not retrieval quality.
#
# Usage: bench/encoders/bf16_recall.sh [--gaze BIN] [--model DIR] [--evalsets DIR]
#                                      [--out DIR] [--threads N] [--check Q] [--eval]
#                                      [--sets "A B"]
# Prints a Markdown summary (also written to OUT/summary.md). Needs python3 (stdlib only).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
gaze=$root/build/gaze
model=/work/bench-models/blip-base-384
evalsets=$root/../shared/evalsets
[ -d "$evalsets" ] || evalsets=/work/shared/evalsets
out=
threads=2
run_eval=0
check_q=20
sets="gcompris-photos tuxpaint-stamps"
while [ $# -gt 0 ]; do
  case "$1" in
    --gaze) gaze=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --evalsets) evalsets=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --check) check_q=$2; shift 2 ;;
    --eval) run_eval=1; shift ;;
    --sets) sets=$2; shift 2 ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "bf16_recall.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$gaze" ] || { echo "bf16_recall.sh: no gaze binary at $gaze (build first)" >&2; exit 2; }
[ -d "$model" ] || { echo "bf16_recall.sh: no model at $model" >&2; exit 2; }
if [ -z "$out" ]; then out=$(mktemp -d /tmp/gaze-bf16-recall.XXXXXX); fi
mkdir -p "$out"
# Without AVX512-BF16 (or with GAZE_NO_BF16) bf16 would be fp32 twice: nothing to compare.
if [ -n "${GAZE_NO_BF16:-}" ] || ! grep -qw avx512_bf16 /proc/cpuinfo; then
  echo "bf16_recall.sh: no bf16 path here (GAZE_NO_BF16 set or no AVX512-BF16)" >&2
  exit 2
fi

for set in $sets; do
  dir=$evalsets/$set
  [ -f "$dir/captions.jsonl" ] || { echo "bf16_recall.sh: no $dir/captions.jsonl" >&2; exit 2; }
  # queries: "image<TAB>first caption", one per image with a caption
  python3 - "$dir/captions.jsonl" >"$out/$set.queries.tsv" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r.get("captions"):
        print(r["image"] + "\t" + " ".join(r["captions"][0].split()))
PY
  nq=$(wc -l <"$out/$set.queries.tsv")
  for p in fp32 bf16; do
    db=$out/$set-$p.db
    rm -f "$db" "$db"-* "$db".*
    echo "[$set] index $p ($(ls "$dir/images" | wc -l) files)" >&2
    start=$(date +%s.%N)
    "$gaze" index "$dir/images" --db "$db" --model "$model" --precision "$p" \
      --threads "$threads" --quiet --json >"$out/$set-$p.index.json"
    echo "$start $(date +%s.%N)" >"$out/$set-$p.index.time"
    echo "[$set] embed the $nq captions in $p" >&2
    args=()
    while IFS=$'\t' read -r _ cap; do args+=(--text "$cap"); done <"$out/$set.queries.tsv"
    "$gaze" embed --model "$model" --precision "$p" --threads "$threads" "${args[@]}" \
      >"$out/$set-$p.text.jsonl"
    echo "[$set] gaze search for the first $check_q of $nq queries against the $p index" >&2
    : >"$out/$set-$p.search.jsonl"
    head -n "$check_q" "$out/$set.queries.tsv" | while IFS=$'\t' read -r img cap; do
      hits=$("$gaze" search --db "$db" --model "$model" --precision "$p" --threads "$threads" \
        -k 10 --json --quiet -- "$cap" | paste -sd, -)
      python3 -c 'import json, sys
print(json.dumps({"query_image": sys.argv[1], "hits": json.loads("[" + sys.argv[2] + "]")}))' \
        "$img" "$hits" >>"$out/$set-$p.search.jsonl"
    done
    if [ "$run_eval" = 1 ]; then
      echo "[$set] gaze eval $p" >&2
      "$gaze" eval "$dir/captions.jsonl" --model "$model" --precision "$p" \
        --threads "$threads" --captions first --json --quiet >"$out/$set-$p.eval.json" || true
    fi
  done
done

python3 - "$out" "$model" "$sets" <<'PY' | tee "$out/summary.md"
import json, math, operator, os, sqlite3, struct, sys
out, model, sets = sys.argv[1], sys.argv[2], sys.argv[3].split()

def vectors(db):
    """path -> image embedding (the database holds one model)."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    rows = con.execute("SELECT i.path, e.vec FROM items i JOIN embeddings e ON e.item_id = i.id"
                       " WHERE i.kind = 1").fetchall()  # 1 = GZ_ITEM_IMAGE
    con.close()
    v = {}
    for path, blob in rows:
        p = path.decode() if isinstance(path, bytes) else path
        v[p] = struct.unpack("<%df" % (len(blob) // 4), blob)
    return v

def dot(a, b):
    return sum(map(operator.mul, a, b))

def cos(a, b):
    return dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))

def top10(q, imgs):
    """The 10 best images for query vector q, as gaze's Flat (inner product) index ranks them."""
    return [p for _, p in sorted((-dot(q, v), p) for p, v in imgs.items())[:10]]

def text_vecs(path):
    return [json.loads(line)["embedding"] for line in open(path)]

print("model: %s" % model)
print()
print("| set | images | queries | overlap@10 (mean) | identical top-10 | recall@10 fp32 | "
      "recall@10 bf16 | chance (10/N) | image cos min / mean | caption cos min / mean | "
      "gaze search top-10 = this ranking | index s fp32 / bf16 |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
evals = []
for s in sets:
    queries = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, s + ".queries.tsv"))]
    n = len(queries)
    vf = vectors(os.path.join(out, s + "-fp32.db"))
    vb = vectors(os.path.join(out, s + "-bf16.db"))
    assert vf and set(vf) == set(vb), "the two databases hold different images"
    tf = text_vecs(os.path.join(out, s + "-fp32.text.jsonl"))
    tb = text_vecs(os.path.join(out, s + "-bf16.text.jsonl"))
    assert len(tf) == len(tb) == n
    rf = [top10(q, vf) for q in tf]
    rb = [top10(q, vb) for q in tb]
    overlap = sum(len(set(x) & set(y)) / 10.0 for x, y in zip(rf, rb)) / n
    same = sum(set(x) == set(y) for x, y in zip(rf, rb)) / n

    def recall(ranked):
        return sum(any(p.endswith("/" + q[0]) for p in r) for q, r in zip(queries, ranked)) / n

    ic = [cos(vf[p], vb[p]) for p in vf]
    tc = [cos(x, y) for x, y in zip(tf, tb)]
    # gaze search's own top 10 against this ranking, for the queries it ran
    agree = total = 0
    for prec, ranked in (("fp32", rf), ("bf16", rb)):
        for i, line in enumerate(open(os.path.join(out, "%s-%s.search.jsonl" % (s, prec)))):
            r = json.loads(line)
            assert r["query_image"] == queries[i][0]
            total += 1
            agree += [h["path"] for h in r["hits"]] == ranked[i]
    times = []
    for p in ("fp32", "bf16"):
        t0, t1 = map(float, open(os.path.join(out, "%s-%s.index.time" % (s, p))).read().split())
        times.append(t1 - t0)
    print("| %s | %d | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.6f / %.6f | %.6f / %.6f | "
          "%d of %d | %.0f / %.0f |" % (
              s, len(vf), n, overlap, same, recall(rf), recall(rb), min(1.0, 10.0 / len(vf)),
              min(ic), sum(ic) / len(ic), min(tc), sum(tc) / len(tc), agree, total, times[0],
              times[1]))
    for p in ("fp32", "bf16"):
        ep = os.path.join(out, "%s-%s.eval.json" % (s, p))
        if os.path.exists(ep) and os.path.getsize(ep) > 0:
            try:
                e = json.load(open(ep))
                evals.append((s, p, e.get("txt_r10"), e.get("img_r10"), e.get("r_mean")))
            except ValueError:
                evals.append((s, p, None, None, None))
if evals:
    print()
    print("| set | precision | gaze eval txt_r10 | img_r10 | r_mean |")
    print("|---|---|---|---|---|")
    for row in evals:
        print("| %s | %s | %s | %s | %s |" % row)
PY
echo "bf16_recall.sh: files in $out" >&2
