#!/usr/bin/env bash
# run.sh - `gaze index` end to end (scan, decode, preprocess, encode, store) against the
# encoder alone, on real photos: is the pipeline around the encoder free? (issue #14: at least
# 90% of the encoder-only rate, decoding overlapped with encoding without taking its cores).
#
# Usage: bench/index/run.sh [MODEL_DIR] [OUT_DIR]
#   MODEL_DIR  a full-size model (default /work/bench-models/blip-base-384, made by
#              bench/encoders/make_weights.py)
#   OUT_DIR    databases and logs (default a temporary folder)
#   RUNS (default 3) rounds, THREADS (default 2), PRECISION (default fp32), GAZE (default
#   build/gaze), BENCH (default build/bench/encoders/bench_encoders).
# Photos: every distinct image of data/photos, tests/data/photos, tests/data/fixtures/images
# (duplicates by content dropped: a duplicate would reuse a vector and flatter the rate), and
# COPIES (default 3) copies of each JPEG and PNG among them with a comment added, so that the
# library is larger than its one-time costs (the weights paged in, the packed copy: 0.53 s,
# from 8 photos in 2.92 s against 56 in 17.23 s; 13 ms a photo over 40 photos, 4% of the
# rate); COPIES=0 for the 40 alone. A copy's bytes differ, so gaze decodes and encodes it as a
# photo of its own.
# Each round runs, one after the other (the machine's drift weighs on all three):
#   index   `gaze index` into a fresh database (the engine's own seconds from --json; the
#           command's wall time, model load included, beside it): one helper thread decodes
#           the next batch while the current one encodes (--decode overlap, the default)
#   parallel the same with --decode parallel (each batch decoded on all threads just before
#           it encodes)
#   nothread the same with --decode inline (on the encoder's thread, one image at a time)
#   encoder bench_encoders' ViT forward on preprocessed pixels at the same batch (8): the rate
#           the encoder alone reaches
# and the ratios index/encoder use the medians. Both run with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset (OpenBLAS picks its kernel as on a user's machine; DESIGN §6): this
# machine exports a Haswell setting that halves OpenBLAS's speed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
model=${1:-/work/bench-models/blip-base-384}
out=${2:-$(mktemp -d)}
runs=${RUNS:-3}
threads=${THREADS:-2}
precision=${PRECISION:-fp32}
gaze=${GAZE:-$root/build/gaze}
bench=${BENCH:-$root/build/bench/encoders/bench_encoders}
models_dir=$(dirname "$model")
copies=${COPIES:-3}
rm -rf "$out/photos"
mkdir -p "$out/photos"
python3 - "$root" "$out/photos" "$copies" <<'PY'
import hashlib, os, shutil, struct, sys, zlib
root, dst, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])

def tagged(data, name, k):
    """The same image with a comment that makes its bytes (so its hash) differ: a COM segment
    after the JPEG's APPn segments (EXIF stays where readers look), a tEXt chunk after the PNG's
    IHDR. The pixels, and so the decoding work, are the original's. None for other formats."""
    note = b'gaze index bench copy %d' % k
    if name.lower().endswith(('.jpg', '.jpeg')) and data[:2] == b'\xff\xd8':
        i = 2
        while data[i] == 0xff and 0xe0 <= data[i + 1] <= 0xef:
            i += 2 + struct.unpack('>H', data[i + 2:i + 4])[0]
        return data[:i] + b'\xff\xfe' + struct.pack('>H', len(note) + 2) + note + data[i:]
    if name.lower().endswith('.png') and data[:8] == b'\x89PNG\r\n\x1a\n':
        body = b'Comment\x00' + note
        chunk = struct.pack('>I', len(body)) + b'tEXt' + body
        chunk += struct.pack('>I', zlib.crc32(b'tEXt' + body) & 0xffffffff)
        return data[:33] + chunk + data[33:]
    return None

seen = set()
exts = ('.jpg', '.jpeg', '.png', '.webp', '.gif', '.heic', '.avif', '.tif', '.tiff', '.bmp')
for d in ('data/photos', 'tests/data/photos', 'tests/data/fixtures/images'):
    for name in sorted(os.listdir(os.path.join(root, d))):
        p = os.path.join(root, d, name)
        if not name.lower().endswith(exts) or not os.path.isfile(p):
            continue
        h = hashlib.sha256(open(p, 'rb').read()).hexdigest()
        if h not in seen:
            seen.add(h)
            shutil.copyfile(p, os.path.join(dst, name))
            data = open(p, 'rb').read()
            for k in range(1, copies + 1):
                t = tagged(data, name, k)
                if t is not None:
                    stem, ext = os.path.splitext(name)
                    open(os.path.join(dst, f'{stem}_copy{k}{ext}'), 'wb').write(t)
PY
n=$(ls "$out/photos" | wc -l)
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), gaze $(git -C "$root" rev-parse --short HEAD)," \
     "$n photos ($(du -sh "$out/photos" | cut -f1)), model $model, $threads threads, $precision," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"

index_once() { # $1 = tag, rest = extra flags; prints wall seconds
  local tag=$1 db="$out/$1.db"; shift
  rm -f "$db" "$db"-* "$db".*
  local t0 t1
  t0=$(date +%s.%N)
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    "$gaze" index "$out/photos" --db "$db" --model "$model" --threads "$threads" \
    --precision "$precision" --quiet --json "$@" >"$out/$tag.json" 2>"$out/$tag.err" || true
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2 - $1}'
}
: >"$out/times.txt"
for r in $(seq 1 "$runs"); do
  echo "index $r $(index_once "index_$r")" | tee -a "$out/times.txt"
  echo "parallel $r $(index_once "parallel_$r" --decode parallel)" | tee -a "$out/times.txt"
  echo "nothread $r $(index_once "nothread_$r" --decode inline)" | tee -a "$out/times.txt"
  enc=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$bench" --models "$models_dir" \
    --threads "$threads" --precision "$precision" --only vit384 --runs 3 | awk '$1 == "RESULT" { print $3 }')
  echo "encoder $r $enc" | tee -a "$out/times.txt"
done
python3 - "$out" "$n" "$runs" <<'PY'
import json, statistics, sys
out, n, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = {}
for line in open(f'{out}/times.txt'):
    k, _, v = line.split()
    t.setdefault(k, []).append(float(v))
enc = statistics.median(t['encoder'])  # ms per image, batch 8
print(f"encoder alone (ViT forward, batch 8, preprocessed pixels): median {enc:.1f} ms/image "
      f"(rounds {' '.join(f'{x:.1f}' for x in t['encoder'])})")
for k in ('index', 'parallel', 'nothread'):
    per = []  # the engine's own seconds (scan, decode, preprocess, encode, store) per photo
    for r in range(1, runs + 1):
        s = json.load(open(f'{out}/{k}_{r}.json'))
        assert s['encoded'] == n, f"{k} round {r}: {s['encoded']} of {n} photos encoded"
        per.append(1000 * s['seconds'] / s['encoded'])
    med = statistics.median(per)
    wall = statistics.median(t[k])
    print(f"{k:8s} engine ms/photo, rounds {' '.join(f'{x:.1f}' for x in per)}: median {med:.1f}"
          f" -> {enc / med:.0%} of the encoder's rate (command wall, model load included: "
          f"median {wall:.2f} s = {1000 * wall / n:.1f} ms/photo)")
PY
