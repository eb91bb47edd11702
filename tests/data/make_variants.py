#!/usr/bin/env python3
"""make_variants.py - checkpoints as the Hugging Face Hub really holds them, built from the
fixture models (tests/data/fixtures/{blip_itm,clip,chinese_clip}).

The fixtures were saved by transformers 4.40.2; public checkpoints were saved by older versions
and by other tools. Each variant here rewrites what an older saver wrote differently (config
style, preprocessor fields, weight dtypes and buffers, sharding, tokenizer files) WITHOUT
changing what the model computes, so tests/test_model_variants.c checks every variant against
the fixture's own expected.safetensors. Only config rewrites and re-saved weight files: no
expected value is written here. Unchanged files are symlinked to the fixture.

Usage: make_variants.py OUT_DIR   (python3 + numpy only; safetensors written by hand)
Writes OUT_DIR/<family>-<variant>/ for every variant (about 60 MB, a few seconds) and
OUT_DIR/variants.json listing them. Fully rewrites OUT_DIR's variant folders each run.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")

# safetensors dtype name -> numpy dtype (little-endian)
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1",
          "BF16": "<u2"}

# ---- safetensors by hand: u64 LE header length, JSON header, raw little-endian data ----


def st_read(path):
    """Return (tensors, metadata): tensors = {name: (dtype, shape, bytes)} in header order."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, t in hdr.items():
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], list(t["shape"]), raw[base + a:base + b])
    return out, meta


def st_write(path, tensors, meta=None):
    """Write like the safetensors library: data ordered by dtype alignment (largest first) then
    name, header keys sorted, header padded with spaces to a multiple of 8."""
    def align(dt):
        return np.dtype(DTYPES[dt]).itemsize

    order = sorted(tensors, key=lambda k: (-align(tensors[k][0]), k))
    hdr, off = {}, 0
    for k in order:
        dt, shape, data = tensors[k]
        hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
    if meta is not None:
        hdr["__metadata__"] = meta
    js = json.dumps(hdr, sort_keys=True, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for k in order:
            f.write(tensors[k][2])


def tensor(dt, arr):
    arr = np.ascontiguousarray(np.asarray(arr, dtype=DTYPES[dt]))
    return (dt, list(arr.shape), arr.tobytes())


def as_f32(t):
    return np.frombuffer(t[2], dtype=DTYPES[t[0]]).astype(np.float32).reshape(t[1])

# ---- files ----


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_json(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def link(src_dir, dst_dir, names):
    for n in names:
        src = os.path.join(src_dir, n)
        if os.path.exists(src):
            os.symlink(src, os.path.join(dst_dir, n))


FAMILIES = {
    # family: (fixture dir, tokenizer files, position-id buffers an older save_pretrained kept)
    "blip": ("blip_itm", ["vocab.txt", "added_tokens.json", "tokenizer_config.json",
                          "special_tokens_map.json"],
             {"text_encoder.embeddings.position_ids": 512}),
    "clip": ("clip", ["vocab.json", "merges.txt", "tokenizer_config.json",
                      "special_tokens_map.json"],
             {"text_model.embeddings.position_ids": 77,
              "vision_model.embeddings.position_ids": 17}),
    "cnclip": ("chinese_clip", ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"],
               {"text_model.embeddings.position_ids": 512,
                "vision_model.embeddings.position_ids": 17}),
}

# CLIPTextConfig / CLIPVisionConfig class defaults, as an old to_dict() wrote them next to the
# *_config_dict that holds the real values (CLIPConfig lets *_config_dict win).
CLIP_TEXT_DEFAULTS = {"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8,
                      "num_hidden_layers": 12, "max_position_embeddings": 77,
                      "vocab_size": 49408, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
CLIP_VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                        "num_hidden_layers": 12, "image_size": 224, "patch_size": 32,
                        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}


class Variant:
    def __init__(self, out, fam, name, kind="ok", **info):
        self.fam, self.src = fam, os.path.join(FIXTURES, FAMILIES[fam][0])
        self.name = "%s-%s" % (fam, name)
        self.dir = os.path.join(out, self.name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.entry = dict(name=self.name, family=fam, fixture=FAMILIES[fam][0], kind=kind, **info)

    def link(self, *names):
        link(self.src, self.dir, names)

    def link_tokenizer(self):
        self.link(*FAMILIES[self.fam][1])

    def path(self, n):
        return os.path.join(self.dir, n)

    def weights(self):
        return st_read(os.path.join(self.src, "model.safetensors"))


def v_legacy_config(out, fam):
    """Older config.json styles: every key written (incl. class defaults and generation keys),
    CLIP/Chinese-CLIP *_config_dict beside stale *_config, torch_dtype, unknown keys."""
    v = Variant(out, fam, "legacy-config", what="old-style config.json")
    full = load_json(os.path.join(v.src, "config.full.json"))
    cfg = load_json(os.path.join(v.src, "config.json"))
    if fam == "blip":
        cfg = full  # BlipConfig has no *_dict keys; old saves wrote every value
    else:
        full["text_config_dict"] = full.pop("text_config")
        full["vision_config_dict"] = full.pop("vision_config")
        if fam == "clip":  # stale class defaults beside the real values
            full["text_config"] = dict(CLIP_TEXT_DEFAULTS)
            full["vision_config"] = dict(CLIP_VISION_DEFAULTS)
        else:  # a config saved with text_config=None, vision_config=None
            full["text_config"] = None
            full["vision_config"] = None
        cfg = full
    cfg["torch_dtype"] = "float32"
    cfg["transformers_version"] = "4.21.0.dev0"
    cfg["some_future_key"] = {"nested": [1, 2, 3]}
    cfg["text_config" if fam == "blip" else "text_config_dict"]["unknown_text_key"] = "x"
    save_json(cfg, v.path("config.json"))
    v.link("model.safetensors", "preprocessor_config.json")
    v.link_tokenizer()
    return v


def v_legacy_preproc(out, fam):
    """preprocessor_config.json of a feature-extractor era save: feature_extractor_type,
    size / crop_size as plain integers, only a few keys."""
    v = Variant(out, fam, "legacy-preproc", what="feature_extractor_type, integer sizes")
    pp = load_json(os.path.join(v.src, "preprocessor_config.json"))
    mean, std = pp["image_mean"], pp["image_std"]
    if fam == "blip":
        new = {"do_normalize": True, "do_resize": True, "image_mean": mean, "image_std": std,
               "feature_extractor_type": "BlipFeatureExtractor", "size": pp["size"]["height"]}
    elif fam == "clip":
        new = {"crop_size": pp["crop_size"]["height"], "do_center_crop": True,
               "do_normalize": True, "do_resize": True,
               "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": mean,
               "image_std": std, "resample": 3, "size": pp["size"]["shortest_edge"]}
    else:  # ChineseCLIPImageProcessor.resize needs height/width: only crop_size may be an int
        new = {"crop_size": pp["crop_size"]["height"], "do_center_crop": False,
               "do_normalize": True, "do_resize": True,
               "feature_extractor_type": "ChineseCLIPFeatureExtractor", "image_mean": mean,
               "image_std": std, "resample": 3, "size": pp["size"]}
    save_json(new, v.path("preprocessor_config.json"))
    v.link("config.json", "model.safetensors")
    v.link_tokenizer()
    return v


def v_minimal(out, fam):
    """Keys that only restate class defaults (or that BlipConfig derives) left out of both
    configs: they must take the transformers class defaults."""
    v = Variant(out, fam, "minimal", what="keys left to class defaults")
    cfg = load_json(os.path.join(v.src, "config.json"))
    for k in ("architectures", "torch_dtype", "transformers_version", "initializer_factor",
              "initializer_range", "logit_scale_init_value", "label_smoothing"):
        cfg.pop(k, None)
    for sub in ("text_config", "vision_config"):
        cfg[sub].pop("model_type", None)
    if fam == "blip":
        cfg["text_config"].pop("encoder_hidden_size")  # BlipConfig sets it to vision hidden
        cfg.pop("projection_dim")  # unused by BlipForImageTextRetrieval
    save_json(cfg, v.path("config.json"))
    pp = load_json(os.path.join(v.src, "preprocessor_config.json"))
    for k in ("_valid_processor_keys", "do_convert_rgb", "do_normalize", "do_rescale",
              "do_resize", "image_mean", "image_std", "resample", "rescale_factor",
              "image_processor_type", "processor_class"):
        pp.pop(k, None)
    save_json(pp, v.path("preprocessor_config.json"))
    v.link("model.safetensors")
    v.link_tokenizer()
    return v


def v_buffers(out, fam):
    """Weights as older transformers saved them: persistent position_ids (I64) buffers,
    logit_scale in another dtype, and tensors gaze does not know (ignored)."""
    v = Variant(out, fam, "buffers", what="I64 buffers, logit_scale dtype, unknown tensors",
                logit_scale_dtype={"clip": "F64", "cnclip": "F16"}.get(fam, "F32"))
    w, meta = v.weights()
    for name, n in FAMILIES[fam][2].items():
        w[name] = tensor("I64", np.arange(n, dtype=np.int64)[None, :])
    if fam == "cnclip":
        w["text_model.embeddings.token_type_ids"] = tensor("I64", np.zeros((1, 512)))
        # F16 changes the value: the test allows the rounding
        w["logit_scale"] = tensor("F16", as_f32(w["logit_scale"]))
    elif fam == "clip":
        w["logit_scale"] = tensor("F64", as_f32(w["logit_scale"]))  # exact
    if fam == "cnclip":  # ChineseCLIPTextModel(add_pooling_layer=False) never reads these
        w["text_model.pooler.dense.weight"] = tensor("F32", np.eye(32))
        w["text_model.pooler.dense.bias"] = tensor("F32", np.zeros(32))
    if fam == "blip":
        # pieces of the captioning model a retrieval checkpoint never reads
        w["text_decoder.cls.predictions.bias"] = tensor("F32", np.zeros(30524))
        w["text_encoder.pooler.dense.weight"] = tensor("F32", np.eye(32))
    w["unknown.extra_tensor"] = tensor("F32", np.ones((3, 5)))
    w["unknown.counter"] = tensor("I32", np.array([7]))
    w["unknown.flags"] = tensor("U8", np.array([1, 0, 1]))
    st_write(v.path("model.safetensors"), w, meta)
    v.link("config.json", "preprocessor_config.json")
    v.link_tokenizer()
    return v


def v_half(out, fam, dt):
    """An F16 (or BF16) checkpoint: model.safetensors holds the fixture's model.f16.safetensors,
    config.json says torch_dtype float16 (bfloat16); the reference is expected's f16w. (bf16w.)
    outputs, which transformers computed from exactly these rounded weights."""
    v = Variant(out, fam, dt, expect_prefix=dt + "w.", logit_scale_dtype=dt.upper(),
                what=dt.upper() + " model.safetensors")
    os.symlink(os.path.join(v.src, "model.%s.safetensors" % dt), v.path("model.safetensors"))
    cfg = load_json(os.path.join(v.src, "config.json"))
    cfg["torch_dtype"] = {"f16": "float16", "bf16": "bfloat16"}[dt]
    save_json(cfg, v.path("config.json"))
    v.link("preprocessor_config.json")
    v.link_tokenizer()
    return v


def v_sharded(out, fam):
    """Sharded safetensors: model.safetensors.index.json + 3 shards (the last without
    __metadata__), tensors spread in name order as save_pretrained does."""
    v = Variant(out, fam, "sharded", what="index + 3 shards")
    w, meta = v.weights()
    names = sorted(w)
    k = 3
    cut = [len(names) * i // k for i in range(k + 1)]
    wmap, total = {}, 0
    for s in range(k):
        fn = "model-%05d-of-%05d.safetensors" % (s + 1, k)
        part = {n: w[n] for n in names[cut[s]:cut[s + 1]]}
        st_write(v.path(fn), part, meta if s < k - 1 else None)
        for n in part:
            wmap[n] = fn
            total += len(part[n][2])
    save_json({"metadata": {"total_size": total}, "weight_map": wmap},
              v.path("model.safetensors.index.json"))
    v.link("config.json", "preprocessor_config.json")
    v.link_tokenizer()
    return v


def v_tokjson(out, fam, bare=False):
    """A repository with only the fast tokenizer's tokenizer.json (no vocab.txt / vocab.json +
    merges.txt), beside tokenizer_config.json and special_tokens_map.json; bare: tokenizer.json
    alone (class defaults, no model_max_length)."""
    v = Variant(out, fam, "tokjson-bare" if bare else "tokjson",
                what="tokenizer.json alone" if bare else "tokenizer.json, no vocabulary files",
                untruncated_only=bare and fam != "clip")
    tc = load_json(os.path.join(v.src, "tokenizer_config.json"))
    added = [dict(id=int(i), content=t["content"], single_word=t.get("single_word", False),
                  lstrip=t["lstrip"], rstrip=t["rstrip"], normalized=t["normalized"],
                  special=t["special"])
             for i, t in sorted(tc["added_tokens_decoder"].items(), key=lambda x: int(x[0]))]
    if fam == "clip":
        vocab = load_json(os.path.join(v.src, "vocab.json"))
        with open(os.path.join(v.src, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().strip().split("\n")
        merges = lines[1:49152 - 256 - 2 + 1]  # CLIPTokenizer's slice: no "#version" line
        model = {"type": "BPE", "dropout": None, "unk_token": "<|endoftext|>",
                 "continuing_subword_prefix": "", "end_of_word_suffix": "</w>",
                 "fuse_unk": False, "vocab": vocab, "merges": merges}
        norm = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}
    else:
        with open(os.path.join(v.src, "vocab.txt"), encoding="utf-8") as f:
            toks = f.read().split("\n")
        if toks and toks[-1] == "":
            toks.pop()
        vocab = {t: i for i, t in enumerate(toks)}
        model = {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                 "max_input_chars_per_word": 100, "vocab": vocab}
        norm = {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                "strip_accents": None, "lowercase": True}
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": norm, "pre_tokenizer": None, "post_processor": None, "decoder": None,
          "model": model}
    save_json(tj, v.path("tokenizer.json"))
    v.link("config.json", "preprocessor_config.json", "model.safetensors")
    if not bare:
        v.link("tokenizer_config.json", "special_tokens_map.json")
    return v


VERY_LARGE_INTEGER = int(1e30)  # what transformers writes when a tokenizer has no max length


def v_tokconfig_legacy(out, fam):
    """tokenizer_config.json as older transformers saved it: special tokens as AddedToken
    dicts with "__type", special_tokens_map_file and name_or_path of the saver's machine, no
    added_tokens_decoder; BLIP's (like bert-base-uncased's) with model_max_length =
    VERY_LARGE_INTEGER (1e30, too big for a 64-bit integer: no truncation)."""
    big = fam != "clip"
    v = Variant(out, fam, "tokconfig-legacy", what="old tokenizer_config.json",
                untruncated_only=big)
    tc = load_json(os.path.join(v.src, "tokenizer_config.json"))

    def added(content, normalized):
        return {"__type": "AddedToken", "content": content, "lstrip": False,
                "normalized": normalized, "rstrip": False, "single_word": False}

    new = {"name_or_path": "/home/someone/.cache/torch/transformers/0123abcd",
           "special_tokens_map_file": "/home/someone/.cache/special_tokens_map.json",
           "tokenizer_class": tc["tokenizer_class"]}
    if fam == "clip":
        new.update(unk_token=added("<|endoftext|>", True), bos_token=added("<|startoftext|>", True),
                   eos_token=added("<|endoftext|>", True), pad_token="<|endoftext|>",
                   add_prefix_space=False, errors="replace", do_lower_case=True,
                   model_max_length=77)
    else:
        new.update(do_lower_case=True, do_basic_tokenize=True, never_split=None,
                   unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
                   mask_token="[MASK]", tokenize_chinese_chars=True, strip_accents=None,
                   model_max_length=VERY_LARGE_INTEGER)
    save_json(new, v.path("tokenizer_config.json"))
    v.link("config.json", "preprocessor_config.json", "model.safetensors")
    v.link(*[n for n in FAMILIES[fam][1] if n != "tokenizer_config.json"])
    return v


def v_vocabonly(out, fam):
    """Only the slow tokenizer's vocabulary files: no tokenizer.json, tokenizer_config.json,
    special_tokens_map.json or added_tokens.json; the tokenizer class defaults apply
    (model_max_length unset: gaze caps at max_position_embeddings)."""
    v = Variant(out, fam, "vocabonly", what="vocabulary files only", untruncated_only=True)
    v.link("config.json", "preprocessor_config.json", "model.safetensors")
    v.link(*[n for n in FAMILIES[fam][1] if n in ("vocab.txt", "vocab.json", "merges.txt")])
    return v


def v_layernorm_names(out, fam):
    """Pre-2020 BERT LayerNorm names (gamma/beta), which transformers renames on load."""
    v = Variant(out, fam, "gamma-beta", what="LayerNorm.gamma / LayerNorm.beta")
    w, meta = v.weights()
    for n in list(w):
        if "LayerNorm." in n:
            new = n.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
                "LayerNorm.bias", "LayerNorm.beta")
            w[new] = w.pop(n)
    st_write(v.path("model.safetensors"), w, meta)
    v.link("config.json", "preprocessor_config.json")
    v.link_tokenizer()
    return v


def v_missing(out, fam, drop, when):
    """A required tensor missing: an error naming it (at load, or when its tower loads)."""
    tag = drop.replace(".", "_")
    v = Variant(out, fam, "missing-" + tag, kind="missing_" + when, missing=drop,
                what="no " + drop)
    w, meta = v.weights()
    del w[drop]
    st_write(v.path("model.safetensors"), w, meta)
    v.link("config.json", "preprocessor_config.json")
    v.link_tokenizer()
    return v


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_variants.py OUT_DIR")
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out, exist_ok=True)
    vs = []
    for fam in ("blip", "clip", "cnclip"):
        for make in (v_legacy_config, v_legacy_preproc, v_minimal, v_buffers, v_sharded,
                     v_tokjson, v_tokconfig_legacy, v_vocabonly):
            vs.append(make(out, fam))
        vs.append(v_tokjson(out, fam, bare=True))
        vs.append(v_half(out, fam, "f16"))
        vs.append(v_half(out, fam, "bf16"))
    vs.append(v_layernorm_names(out, "cnclip"))
    vs.append(v_layernorm_names(out, "blip"))
    vs.append(v_missing(out, "clip", "text_model.final_layer_norm.weight", "text"))
    vs.append(v_missing(out, "cnclip", "vision_model.pre_layrnorm.bias", "image"))
    vs.append(v_missing(out, "blip", "vision_proj.weight", "image"))
    vs.append(v_missing(out, "blip", "itm_head.bias", "match"))
    vs.append(v_missing(out, "clip", "logit_scale", "load"))
    save_json([v.entry for v in vs], os.path.join(out, "variants.json"))


if __name__ == "__main__":
    main()
