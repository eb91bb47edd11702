#!/usr/bin/env bash
# fuzz.sh - run one libFuzzer target for a while on its seed corpus from tests/data.
# Usage: scripts/fuzz.sh TARGET SECONDS
#   TARGET: one of tests/fuzz/targets.cmake (fuzz_config, fuzz_safetensors, fuzz_st_index,
#   fuzz_torchbin, fuzz_eval_load, fuzz_tokenize, fuzz_tokenizer_files, fuzz_records,
#   fuzz_vindex_load, fuzz_factory, fuzz_image, fuzz_image_<jpeg|png|webp|gif|heif|tiff|bmp>)
# Builds the fuzz targets first when needed: a separate clang build with ASan + UBSan in
# build-fuzz/ (GAZE_FUZZ_BUILD to change it), since libFuzzer comes with clang, not gcc.
# Inputs that reach new code accumulate in build-fuzz/corpus/TARGET and are reused by the next
# run; a crash, leak, sanitizer report or hang (-timeout, 20 s) saves the input as
# build-fuzz/artifacts/TARGET-crash-... (or leak-, timeout-), prints the report and exits
# non-zero. Extra libFuzzer flags can be given in FUZZ_FLAGS (e.g. FUZZ_FLAGS=-jobs=2).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS   (TARGET: one of tests/fuzz/targets.cmake)" >&2
  exit 2
fi
target=$1
secs=$2
# fuzz_image_<format> is tests/fuzz/fuzz_image.c built for one decoder (tests/fuzz/targets.cmake)
if ! grep -q "^  $target:" tests/fuzz/targets.cmake &&
  ! { [[ $target =~ ^fuzz_image_(jpeg|png|webp|gif|heif|tiff|bmp)$ ]]; }; then
  echo "fuzz.sh: no fuzz target $target (tests/fuzz/targets.cmake lists them)" >&2
  exit 2
fi
build=${GAZE_FUZZ_BUILD:-build-fuzz}
if ! command -v clang >/dev/null || ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang and clang++ are needed for libFuzzer (Debian: apt-get install clang)" >&2
  exit 1
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
  # -O1 as libFuzzer's documentation suggests (far faster than -O0, still precise reports);
  # Debug keeps assert() on.
  CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
    -DGAZE_FUZZ=ON -DGAZE_SANITIZE=ON -DGAZE_WERROR=ON >/dev/null
fi
if ! cmake --build "$build" --target fuzz -j"$(nproc)" >"$build/fuzz-build.log" 2>&1; then
  cat "$build/fuzz-build.log" >&2
  echo "fuzz.sh: building the fuzz targets in $build failed" >&2
  exit 1
fi

# Seed corpus: small valid inputs of each format, rebuilt each run (cheap) so edits to
# tests/data reach it. -max_len bounds what the fuzzer generates; larger seeds are cut to it.
seeds=$build/seeds/$target
rm -rf "$seeds"
mkdir -p "$seeds" "$build/corpus/$target" "$build/artifacts"
case $target in
fuzz_config)
  max_len=8192
  for fam in blip_itm clip chinese_clip; do
    for f in config.json config.full.json preprocessor_config.json; do
      [ -f "tests/data/fixtures/$fam/$f" ] && cp "tests/data/fixtures/$fam/$f" "$seeds/$fam.$f"
    done
  done
  ;;
fuzz_safetensors)
  max_len=4096
  # The fixtures' weight files are megabytes; seed with tiny files of each dtype instead.
  python3 - "$seeds" <<'EOF'
import json, struct, sys
def write(path, tensors):
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
f32 = struct.pack("<6f", 1, -2, 0.5, 3, 0, -1)
write(sys.argv[1] + "/f32.safetensors", [("ln.weight", "F32", [2, 3], f32), ("ln.bias", "F32", [3], f32[:12])])
write(sys.argv[1] + "/f16.safetensors", [("w", "F16", [2, 2], struct.pack("<4e", 1, -2, 0.5, 65504))])
write(sys.argv[1] + "/bf16.safetensors", [("w", "BF16", [3], struct.pack("<3H", 0x3f80, 0xc000, 0x7f80))])
write(sys.argv[1] + "/i64.safetensors", [("ids", "I64", [2, 2], struct.pack("<4q", 101, 2023, -1, 0)),
                                         ("pos", "I32", [3], struct.pack("<3i", 0, 1, 2)),
                                         ("scalar", "F32", [], struct.pack("<f", 4.6))])
EOF
  ;;
fuzz_torchbin)
  max_len=8192
  for f in misc zip64 noncontig forbidden compressed legacy; do
    cp "tests/data/torchbin/$f.bin" "$seeds/"
  done
  ;;
fuzz_eval_load)
  max_len=8192
  cp tests/data/evalset/lavis_test.json "$seeds/"
  head -n 12 tests/data/evalset/captions.jsonl >"$seeds/captions_head.jsonl"
  cat >"$seeds/dataset_tiny.json" <<'EOF'
{"images": [{"filepath": "val2014", "filename": "a.jpg", "split": "test", "sentences": [{"raw": "A dog on a beach."}, {"raw": "Two dogs run."}]}, {"filepath": "val2014", "filename": "b.jpg", "split": "train", "sentences": [{"raw": "A cat."}]}]}
EOF
  ;;
fuzz_image | fuzz_image_*)
  max_len=32768
  # the small test photos (larger ones are cut to max_len: truncated files are inputs too) and
  # tiny generated pictures of each format the generator writes
  for f in tests/data/photos/*.jpg tests/data/photos/*.png tests/data/photos/*.webp \
    tests/data/photos/*.gif tests/data/photos/*.heic tests/data/photos/*.tif \
    tests/data/photos/*.bmp tests/data/photos/*.dng; do
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 131072 ] && cp "$f" "$seeds/"
  done
  python3 tests/hostile_images.py jpeg 40 24 "$seeds/flat.jpg"
  python3 tests/hostile_images.py png 37 5 "$seeds/grad.png"
  python3 tests/hostile_images.py gif 9 7 "$seeds/screen.gif"
  python3 tests/hostile_images.py heif_grid 64 64 "$seeds/grid.heic"
  python3 tests/hostile_images.py tiff 9 7 "$seeds/rgb.tif"
  python3 tests/hostile_images.py bmp 9 7 "$seeds/rgb.bmp"
  if [ "$target" != fuzz_image ]; then # one decoder: the seeds of its format only
    case ${target#fuzz_image_} in
    jpeg) keep=jpg ;; heif) keep=heic ;; tiff) keep=tif ;; *) keep=${target#fuzz_image_} ;;
    esac
    find "$seeds" -type f ! -name "*.$keep" -delete
  fi
  ;;
fuzz_st_index)
  max_len=4096
  # The target writes shards a.safetensors (x, y) and b.safetensors (z) beside the index.
  echo '{"metadata": {"total_size": 24}, "weight_map": {"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}}' >"$seeds/ok.json"
  echo '{"weight_map": {"x": "a.safetensors", "z": "a.safetensors"}}' >"$seeds/wrong_shard.json"
  echo '{"weight_map": {"x": "../a.safetensors"}}' >"$seeds/bad_name.json"
  ;;
fuzz_tokenize)
  max_len=4096
  # the texts of the fixtures' tokenizer cases, one file each
  for fam in blip_itm clip chinese_clip; do
    python3 -c 'import json, sys
for i, c in enumerate(json.load(open(sys.argv[1]))["cases"]):
    open("%s_%03d.txt" % (sys.argv[2], i), "w").write(c["text"])' \
      "tests/data/fixtures/$fam/tokenizer_cases.json" "$seeds/$fam"
  done
  ;;
fuzz_tokenizer_files)
  max_len=16384
  # A family byte, then vocabulary / merges.txt / tokenizer_config / special_tokens_map /
  # tokenizer.json parts separated by "\n@@\n" (tests/fuzz/fuzz_tokenizer_files.c); tiny vocabularies.
  python3 - "$seeds" <<'EOF'
import json, sys
d = sys.argv[1]
sep = b"\n@@\n"
def write(name, family, parts):
    open(d + "/" + name, "wb").write(bytes([family]) + sep.join(p.encode() for p in parts))
wp = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "cat", "##s", ",", "!", "\u4e2d"])
cfg = json.dumps({"do_lower_case": True, "model_max_length": 16})
stm = json.dumps({"unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"})
write("wordpiece", 0, [wp, "", cfg, stm])
write("chinese", 2, [wp, "", cfg])
vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "c": 3, "a": 4, "t</w>": 5, "ca": 6, "cat</w>": 7, "!</w>": 8}
merges = "#version: 0.2\nc a\nca t</w>\n"
bstm = json.dumps({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"})
bcfg = json.dumps({"model_max_length": 77})
write("bpe", 1, [json.dumps(vocab), merges, bcfg, bstm])
write("bpe_fast", 4, [json.dumps(vocab), merges, bcfg, bstm])
tj = {"model": {"type": "BPE", "vocab": vocab, "merges": ["c a", ["ca", "t</w>"]]},
      "added_tokens": [{"id": 0, "content": "<|startoftext|>", "special": True},
                       {"id": 1, "content": "<|endoftext|>", "special": True}]}
write("tokenizer_json", 1, ["", "", bcfg, bstm, json.dumps(tj)])
EOF
  ;;
fuzz_vindex_load)
  max_len=4096
  # byte 0: n (low 3 bits) and HNSW (bit 3); then n int64 ids; then the FAISS part (dim 4),
  # as tests/fuzz/fuzz_vindex_load.c wraps it in a valid gaze header.
  python3 - "$seeds" <<'EOF'
import struct, sys
d = sys.argv[1]
ids = struct.pack("<2q", 7, 9)
hdr = lambda fourcc, n: fourcc + struct.pack("<iqqqBi", 4, n, 1 << 20, 1 << 20, 1, 0)
vecs = struct.pack("<8f", 1, 0, 0, 0, 0, 1, 0, 0)
flat = hdr(b"IxFI", 2) + struct.pack("<Q", 8) + vecs
open(d + "/flat2", "wb").write(bytes([2]) + ids + flat)
open(d + "/flat0", "wb").write(bytes([0]) + hdr(b"IxFI", 0) + struct.pack("<Q", 0))
EOF
  ;;
fuzz_factory)
  max_len=128
  # the forms gz_vindex_check_factory accepts (GZ_VX_FACTORY_FORMS), each in a file
  for f in Flat HNSW32 HNSW8,Flat IVF4,Flat IVF13,Flat IVF16,PQ4x4 PQ8 PQ2x8np; do
    printf '%s' "$f" >"$seeds/${f//,/_}"
  done
  ;;
fuzz_records)
  max_len=8192
  head -n 20 tests/data/evalset/captions.jsonl >"$seeds/captions.jsonl"
  printf 'sku,title,description,photo\np1,"Kettle, steel","A ""chrome"" kettle",img/k.jpg\np2,Cups,"two\nlines",\np3,too,many,fields,here\n' >"$seeds/products.csv"
  printf 'id\ttext\n1\ta cat\n2\ta dog\tx\n' >"$seeds/t.tsv"
  printf '{"id": 1, "text": "a", "n": 2.5, "o": {"k": [1, null]}}\n[1]\nnot json\n{"id": "x", "text": null}\n' >"$seeds/mixed.jsonl"
  ;;
*)
  echo "fuzz.sh: no seed corpus known for $target (add one here)" >&2
  exit 2
  ;;
esac

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log=$build/fuzz-$target.log
# shellcheck disable=SC2086  # FUZZ_FLAGS is a list of flags
if ! "$build/tests/fuzz/$target" -max_total_time="$secs" -max_len="$max_len" -timeout=20 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" ${FUZZ_FLAGS:-} \
  "$build/corpus/$target" "$seeds" >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  echo "fuzz.sh: $target FAILED (full log: $log; input saved under $build/artifacts/)" >&2
  exit 1
fi
final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
echo "$target: $(final_stat number_of_executed_units) runs in ${secs} s," \
  "$(final_stat average_exec_per_sec) exec/s, coverage ${cov:-?} edges," \
  "corpus $(find "$build/corpus/$target" -type f | wc -l) inputs, peak RSS $(final_stat peak_rss_mb) MB"
