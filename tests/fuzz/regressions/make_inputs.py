#!/usr/bin/env python3
"""make_inputs.py - write the reconstructed regression inputs of tests/fuzz/regressions/.

Each folder <target>/ holds inputs that fuzz_replay_<target> (tests/fuzz/replay_main.c) runs
through tests/fuzz/<target>.c's entry point in every build. Three kinds of file, by name:
  crash-*, leak-*, timeout-*  saved by a fuzz run (scripts/fuzz.sh) that found a defect, copied
                              here as libFuzzer wrote them (not made by this script)
  defect-*                    a hostile input of a defect fixed before these replays existed,
                              rebuilt here from its description in issue #15 / the commit
  seed-*                      a small valid input of the format, so a replay runs the parse
                              through to the end and not only its refusals
Findings of fuzz_image_<format> go to fuzz_image/: every image replay (fuzz_image and each
fuzz_image_<format>) runs that folder.
The files are committed (a replay needs no Python); run this script only to rebuild them:
  python3 tests/fuzz/regressions/make_inputs.py
"""
import json
import os
import struct
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
images = os.path.join(here, "..", "..", "hostile_images.py")


def put(target, name, data):
    os.makedirs(os.path.join(here, target), exist_ok=True)
    with open(os.path.join(here, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def image(target, name, kind, w, h):
    os.makedirs(os.path.join(here, target), exist_ok=True)
    subprocess.run([sys.executable, images, kind, str(w), str(h), os.path.join(here, target, name)],
                   check=True)


def safetensors(tensors, data_len=None):
    header, data = {}, b""
    for name, dtype, shape, raw, offsets in tensors:
        start = len(data)
        data += raw
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": offsets or [start, len(data)]}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    body = data if data_len is None else data[:data_len]
    return struct.pack("<Q", len(h)) + h + body


# ---- fuzz_safetensors ----
f32 = struct.pack("<6f", 1, -2, 0.5, 3, 0, -1)
put("fuzz_safetensors", "seed-f32.safetensors",
    safetensors([("ln.weight", "F32", [2, 3], f32, None), ("ln.bias", "F32", [3], f32[:12], None)]))
put("fuzz_safetensors", "seed-bf16.safetensors",
    safetensors([("w", "BF16", [3], struct.pack("<3H", 0x3F80, 0xC000, 0x7F80), None)]))
# the header length claims 4 KiB, the file ends after 30 bytes (the JSON would be read past
# the mapping)
put("fuzz_safetensors", "defect-truncated-header.safetensors",
    struct.pack("<Q", 4096) + b'{"w": {"dtype": "F32", "sh')
# a header length near 2^64 (8 + length overflows)
put("fuzz_safetensors", "defect-header-length-wraps.safetensors",
    struct.pack("<Q", 2**64 - 4) + b"{}      ")
# data_offsets past the end of the data area (a truncated weights file)
put("fuzz_safetensors", "defect-offsets-past-data.safetensors",
    safetensors([("w", "F32", [1024], b"\0" * 4096, None)], data_len=16))
# data_offsets 1 TiB past the end of a 100-byte file: the tensor pointer lands far outside
# the mapping (any build crashes when it is read, not only one with ASan)
put("fuzz_safetensors", "defect-offsets-past-file.safetensors",
    safetensors([("w", "F32", [2**38], b"\0" * 16, [0, 2**40])]))
# a shape whose element count overflows 64 bits
put("fuzz_safetensors", "defect-shape-overflow.safetensors",
    safetensors([("w", "F32", [2**62, 8], b"\0" * 16, [0, 16])]))

# ---- fuzz_st_index (shards a.safetensors: x, y and b.safetensors: z beside the index) ----
put("fuzz_st_index", "seed-ok.json",
    '{"metadata": {"total_size": 24}, "weight_map": {"x": "a.safetensors", '
    '"y": "a.safetensors", "z": "b.safetensors"}}\n')
put("fuzz_st_index", "defect-wrong-shard.json",
    '{"weight_map": {"x": "a.safetensors", "z": "a.safetensors"}}\n')
put("fuzz_st_index", "defect-shard-outside.json",
    '{"weight_map": {"x": "../a.safetensors", "y": "/etc/passwd"}}\n')
# one shard named by many entries, most not in it (the de-duplication and the cross-check)
put("fuzz_st_index", "defect-many-entries.json",
    json.dumps({"weight_map": dict([("x", "a.safetensors")] +
                                   [("t%d" % i, "a.safetensors") for i in range(300)])}))

# ---- fuzz_torchbin (the valid fixtures of tests/data/torchbin are replayed as seeds) ----
tb = os.path.join(here, "..", "..", "data", "torchbin", "misc.bin")
with open(tb, "rb") as f:
    misc = f.read()
put("fuzz_torchbin", "defect-truncated-zip.bin", misc[:len(misc) * 3 // 5])
# the end-of-central-directory record claims its directory at an offset past the file
eocd = misc.rfind(b"PK\x05\x06")
bad = bytearray(misc)
struct.pack_into("<I", bad, eocd + 16, 0x7FFFFFF0)
put("fuzz_torchbin", "defect-eocd-offset.bin", bytes(bad))

# ---- fuzz_config ----
put("fuzz_config", "defect-huge-image-size.json", json.dumps({
    "model_type": "clip", "projection_dim": 24,
    "text_config": {"hidden_size": 32, "intermediate_size": 128, "num_attention_heads": 4,
                    "num_hidden_layers": 2},
    "vision_config": {"hidden_size": 48, "image_size": 2147483647, "patch_size": 1,
                      "intermediate_size": 192, "num_attention_heads": 4,
                      "num_hidden_layers": 2}}))
put("fuzz_config", "defect-preprocessor-extremes.json", json.dumps({
    "do_resize": True, "size": {"shortest_edge": 2147483647},
    "crop_size": {"height": -1, "width": 1e300}, "do_center_crop": True, "resample": 99,
    "rescale_factor": "x", "image_mean": [0.5], "image_std": [0, 0, 0]}))

# ---- fuzz_eval_load ----
put("fuzz_eval_load", "defect-2000-captions.jsonl",
    json.dumps({"image": "a.jpg", "captions": ["c%d" % i for i in range(2000)]}) + "\n")
put("fuzz_eval_load", "defect-outside-paths.jsonl",
    '{"image": "/etc/passwd", "captions": ["a"]}\n'
    '{"image": "../../x.jpg", "captions": ["b"]}\n'
    '{"image": "ok/../../y.jpg", "caption": "c"}\n')
put("fuzz_eval_load", "defect-nul-and-types.jsonl",
    '{"image": "a.jpg", "captions": ["a\\u0000b", "  A  Dog!!  ", ""]}\n'
    '{"image": "b.jpg", "captions": [1, 2]}\n')
put("fuzz_eval_load", "seed-karpathy.json", json.dumps({"images": [
    {"filepath": "val2014", "filename": "a.jpg", "split": "test",
     "sentences": [{"raw": "A dog on a beach."}, {"raw": "Two dogs run."}]},
    {"filepath": "val2014", "filename": "b.jpg", "split": "train",
     "sentences": [{"raw": "A cat."}]}]}))

# ---- fuzz_image (the target's pixel limit is 262144) ----
image("fuzz_image", "defect-heif-grid-100mp.heic", "heif_grid", 10000, 10000)
image("fuzz_image", "defect-gif-screen-16k.gif", "gif", 16384, 16384)
image("fuzz_image", "defect-png-1x1000000.png", "png", 1, 1000000)
# elongated pictures within the target's pixel limit: a resize by the short side before the
# crop would allocate gigabytes
image("fuzz_image", "defect-png-1x262144.png", "png", 1, 262144)
image("fuzz_image", "defect-jpeg-65500x1.jpg", "jpeg", 65500, 1)
image("fuzz_image", "seed-flat.jpg", "jpeg", 40, 24)
image("fuzz_image", "seed-rgb.tif", "tiff", 9, 7)
image("fuzz_image", "seed-rgb.bmp", "bmp", 9, 7)
image("fuzz_image", "seed-grid.heic", "heif_grid", 64, 64)

# ---- fuzz_tokenize ----
put("fuzz_tokenize", "defect-empty.txt", b"")  # NULL + 0 in the tokenizer for empty text
put("fuzz_tokenize", "defect-long-word.txt", ("ab" * 1000) + "x")  # heap BPE == plain BPE
put("fuzz_tokenize", "defect-controls.txt",
    b"a\x00b\x1b[31mred\x1b[0m \xff\xfe\xc3( \xe4\xb8\xad\xe6\x96\x87 'll <|endoftext|> [SEP]")
put("fuzz_tokenize", "seed-sentence.txt", "A photo of two cats, sleeping on a RED sofa!")

# ---- fuzz_tokenizer_files (family byte, then parts separated by "\n@@\n") ----
sep = b"\n@@\n"


def tok(name, family, parts):
    put("fuzz_tokenizer_files", name, bytes([family]) + sep.join(p.encode() for p in parts))


wp = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "cat", "##s"])
cfg = json.dumps({"do_lower_case": True, "model_max_length": 16})
stm = json.dumps({"unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "pad_token": "[PAD]"})
tok("seed-wordpiece", 0, [wp, "", cfg, stm])
vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "c": 3, "a": 4, "t</w>": 5,
         "ca": 6, "cat</w>": 7}
bcfg = json.dumps({"model_max_length": 77})
bstm = json.dumps({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"})
tok("seed-bpe", 1, [json.dumps(vocab), "#version: 0.2\nc a\nca t</w>\n", bcfg, bstm])
# merges naming tokens the vocabulary lacks, a huge model_max_length, ids out of range
tok("defect-bpe-bad-merges", 1, [json.dumps(dict(vocab, big=2**40)), "x y\nq\n\n c a\n",
                                 json.dumps({"model_max_length": 1e30}), bstm])
tj = {"model": {"type": "BPE", "vocab": vocab, "merges": ["c a", ["ca", "t</w>"], 7, ["x"]]},
      "added_tokens": [{"id": 99, "content": "<|startoftext|>", "special": True},
                       {"id": -1, "content": "", "special": True}]}
tok("defect-tokenizer-json-ids", 1, ["", "", bcfg, bstm, json.dumps(tj)])

# ---- fuzz_records ----
# a CSV header of spaces: a memmove per leading space was O(n^2) (found by fuzz_records'
# slowest unit at the fuzzer's 8 KB bound; the 2 MB case is in tests/cli_hostile_text.sh)
put("fuzz_records", "defect-csv-header-spaces.csv", " " * 8190 + "a\n1\n")
put("fuzz_records", "defect-csv-commas.csv", "a,b\n" + "," * 8000 + "\n")  # field amplification
put("fuzz_records", "defect-csv-nul.csv", b"id,text\n1,ab\x00cd\n2,ok\n")  # NUL in a field
put("fuzz_records", "seed-products.csv",
    'sku,title,description,photo\np1,"Kettle, steel","A ""chrome"" kettle",img/k.jpg\n'
    'p2,Cups,"two\nlines",\np3,too,many,fields,here\n')
put("fuzz_records", "seed-mixed.jsonl",
    '{"id": 1, "text": "a", "n": 2.5, "o": {"k": [1, null]}}\n[1]\nnot json\n'
    '{"id": "x", "text": null}\n')
put("fuzz_records", "seed-t.tsv", "id\ttext\n1\ta cat\n2\ta dog\tx\n")

# ---- fuzz_vindex_load (byte 0: n, bits 3-5 the factory; n int64 ids; the FAISS part, dim 4) ----
ids = struct.pack("<2q", 7, 9)


def faiss_header(fourcc, n):
    return fourcc + struct.pack("<iqqqBi", 4, n, 1 << 20, 1 << 20, 1, 0)


vecs = struct.pack("<8f", 1, 0, 0, 0, 0, 1, 0, 0)
put("fuzz_vindex_load", "seed-flat2", bytes([2]) + ids + faiss_header(b"IxFI", 2) +
    struct.pack("<Q", 8) + vecs)
# the 45-byte FAISS part that claims 2^28 floats: FAISS resized to 1 GiB before reading
put("fuzz_vindex_load", "defect-flat-claims-1gib", bytes([2]) + ids + faiss_header(b"IxFI", 2) +
    struct.pack("<Q", 1 << 28))
# an HNSW part whose first array claims 2^40 doubles
put("fuzz_vindex_load", "defect-hnsw-claims", bytes([2 | 8]) + ids + faiss_header(b"IHNf", 2) +
    struct.pack("<Q", 1 << 40) + b"\0" * 16)

# IVF2,Flat (byte 0: n 2, factory 2): the IVF header, nlist 2 and nprobe 1, a flat quantizer of 2
# centroids, no direct map, then "ilar" lists of 16-byte codes, one vector in each
def ivf_flat(sizes):
    return (bytes([2 | 2 << 3]) + ids + faiss_header(b"IwFl", 2) + struct.pack("<QQ", 2, 1) +
            faiss_header(b"IxFI", 2) + struct.pack("<Q", 8) + vecs + b"\0" + struct.pack("<Q", 0) +
            b"ilar" + struct.pack("<QQ", 2, 16) + b"full" + struct.pack("<3Q", 2, *sizes))


put("fuzz_vindex_load", "seed-ivf2-flat", ivf_flat((1, 1)) + vecs[:16] + ids[:8] + vecs[16:] +
    ids[8:])
# the first list claims 2^28 entries (6 GiB): FAISS sized every list before reading one
put("fuzz_vindex_load", "defect-ivf-list-claims", ivf_flat((1 << 28, 1)) + vecs[:16] + ids[:8])
# PQ2 (factory 4): d 4, M 2, 8 bits, 4 x 256 centroids, 2 codes of 2 bytes, then search_type,
# encode_signs, polysemous_ht; a trained PQ file was refused on load before its layout was walked
put("fuzz_vindex_load", "seed-pq2", bytes([2 | 4 << 3]) + ids + faiss_header(b"IxPq", 2) +
    struct.pack("<3Q", 4, 2, 8) + struct.pack("<Q", 1024) + struct.pack("<1024f", *range(1024)) +
    struct.pack("<Q", 4) + bytes([0, 1, 2, 3]) + struct.pack("<iBi", 0, 0, 0))

# ---- fuzz_factory (the FAISS factory string, dimension 8) ----
put("fuzz_factory", "defect-hnsw-100000000", "HNSW100000000")  # FAISS built a huge graph
put("fuzz_factory", "defect-ivf-huge", "IVF99999999999,PQ4x64")
put("fuzz_factory", "defect-pq-not-dividing", "PQ3")
put("fuzz_factory", "seed-hnsw32", "HNSW32,Flat")
put("fuzz_factory", "seed-ivf4", "IVF4,Flat")
