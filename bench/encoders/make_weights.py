#!/usr/bin/env python3
# make_weights.py - random full-size BLIP-base models (Hugging Face layout) and fixed inputs
# for the encoder benchmark. Weights are random: the benchmark measures speed and checks that
# gaze and PyTorch compute the same function, nothing about quality.
#
# Writes under OUT (default: build-bench/bench-models, git-ignored; never commit weights):
#   blip-base-384/   config.json + model.safetensors: BlipForImageTextRetrieval as
#                    Salesforce/blip-itm-base-coco (ViT-B/16 @ 384, BERT-base text encoder with
#                    cross-attention, ITM head, projections 256). ~0.9 GB.
#   blip-vit-224/    the same vision tower at 224 (ViT-B/16 @ 224, DESIGN §6's reference size),
#                    vision tensors + vision_proj only. ~0.35 GB.
#   inputs.safetensors  pixels_384 (8,3,384,384), pixels_224 (8,3,224,224) F32;
#                    ids/mask (32,T) I32 captions of 8..14 tokens ([CLS] ... [SEP], 0-padded);
#                    itm_ids/itm_mask (16,T) I32.
# Tensor names and shapes follow tests/data/fixtures/blip_itm/model.safetensors scaled up.
# Every tensor's values depend only on its name (seeded by crc32(name)), so both models share
# the vision weights except the position embedding.
#
# Usage: /usr/bin/python3 bench/encoders/make_weights.py [OUT]     (needs numpy only)
import json
import os
import sys
import zlib

import numpy as np

DV, LV, HV, FV, PATCH = 768, 12, 12, 3072, 16  # vision: ViT-B/16
DT, LT, HT, FT = 768, 12, 12, 3072  # text: BERT-base
VOCAB, MAXPOS, PROJ = 30524, 512, 256


def vision_tensors(image_size):
    g = image_size // PATCH
    t = [("vision_model.embeddings.class_embedding", (1, 1, DV)),
         ("vision_model.embeddings.patch_embedding.weight", (DV, 3, PATCH, PATCH)),
         ("vision_model.embeddings.patch_embedding.bias", (DV,)),
         ("vision_model.embeddings.position_embedding", (1, g * g + 1, DV))]
    for i in range(LV):
        p = f"vision_model.encoder.layers.{i}."
        t += [(p + "layer_norm1.weight", (DV,)), (p + "layer_norm1.bias", (DV,)),
              (p + "self_attn.qkv.weight", (3 * DV, DV)), (p + "self_attn.qkv.bias", (3 * DV,)),
              (p + "self_attn.projection.weight", (DV, DV)),
              (p + "self_attn.projection.bias", (DV,)),
              (p + "layer_norm2.weight", (DV,)), (p + "layer_norm2.bias", (DV,)),
              (p + "mlp.fc1.weight", (FV, DV)), (p + "mlp.fc1.bias", (FV,)),
              (p + "mlp.fc2.weight", (DV, FV)), (p + "mlp.fc2.bias", (DV,))]
    t += [("vision_model.post_layernorm.weight", (DV,)),
          ("vision_model.post_layernorm.bias", (DV,)),
          ("vision_proj.weight", (PROJ, DV)), ("vision_proj.bias", (PROJ,))]
    return t


def text_tensors():
    t = [("text_encoder.embeddings.word_embeddings.weight", (VOCAB, DT)),
         ("text_encoder.embeddings.position_embeddings.weight", (MAXPOS, DT)),
         ("text_encoder.embeddings.LayerNorm.weight", (DT,)),
         ("text_encoder.embeddings.LayerNorm.bias", (DT,))]
    for i in range(LT):
        p = f"text_encoder.encoder.layer.{i}."
        for att, kv_in in (("attention", DT), ("crossattention", DV)):
            t += [(p + att + ".self.query.weight", (DT, DT)), (p + att + ".self.query.bias", (DT,)),
                  (p + att + ".self.key.weight", (DT, kv_in)), (p + att + ".self.key.bias", (DT,)),
                  (p + att + ".self.value.weight", (DT, kv_in)),
                  (p + att + ".self.value.bias", (DT,)),
                  (p + att + ".output.dense.weight", (DT, DT)),
                  (p + att + ".output.dense.bias", (DT,)),
                  (p + att + ".output.LayerNorm.weight", (DT,)),
                  (p + att + ".output.LayerNorm.bias", (DT,))]
        t += [(p + "intermediate.dense.weight", (FT, DT)), (p + "intermediate.dense.bias", (FT,)),
              (p + "output.dense.weight", (DT, FT)), (p + "output.dense.bias", (DT,)),
              (p + "output.LayerNorm.weight", (DT,)), (p + "output.LayerNorm.bias", (DT,))]
    t += [("text_proj.weight", (PROJ, DT)), ("text_proj.bias", (PROJ,)),
          ("itm_head.weight", (2, DT)), ("itm_head.bias", (2,))]
    return t


def values(name, shape):
    """Deterministic random values for one tensor, scaled to keep activations O(1)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    is_norm = any(k in name for k in ("LayerNorm", "layer_norm", "layernorm"))
    if is_norm and name.endswith("weight"):
        return (1.0 + 0.05 * rng.standard_normal(shape)).astype(np.float32)
    if name.endswith("bias"):
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)
    if len(shape) >= 2 and "embedding" not in name:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
    return (0.02 * rng.standard_normal(shape)).astype(np.float32)  # embeddings


def write_safetensors(path, entries):
    """entries: list of (name, shape, dtype str, producer() -> np.ndarray). Streams to disk."""
    header, off = {}, 0
    size = {"F32": 4, "I32": 4}
    for name, shape, dt, _ in entries:
        n = int(np.prod(shape)) * size[dt]
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for name, shape, dt, make in entries:
            a = np.ascontiguousarray(make())
            assert a.shape == tuple(shape), name
            f.write(a.astype("<f4" if dt == "F32" else "<i4").tobytes())
    os.replace(tmp, path)


def write_model(d, config, tensors):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"),
                      [(n, s, "F32", (lambda n=n, s=s: values(n, s))) for n, s in tensors])


def blip_config(image_size):
    return {"architectures": ["BlipForImageTextRetrieval"], "model_type": "blip",
            "image_text_hidden_size": PROJ, "projection_dim": 512,
            "text_config": {"model_type": "blip_text_model", "hidden_size": DT,
                            "num_hidden_layers": LT, "num_attention_heads": HT,
                            "intermediate_size": FT, "encoder_hidden_size": DV,
                            "vocab_size": VOCAB, "max_position_embeddings": MAXPOS},
            "vision_config": {"model_type": "blip_vision_model", "hidden_size": DV,
                              "num_hidden_layers": LV, "num_attention_heads": HV,
                              "intermediate_size": FV, "image_size": image_size,
                              "patch_size": PATCH},
            "torch_dtype": "float32"}


def captions(rng, n):
    lens = rng.integers(8, 15, size=n)  # 8..14 tokens including [CLS] and [SEP]
    T = int(lens.max())
    ids = np.zeros((n, T), np.int32)
    mask = np.zeros((n, T), np.int32)
    for i, L in enumerate(lens):
        ids[i, 0], ids[i, L - 1] = 101, 102
        ids[i, 1:L - 1] = rng.integers(1996, 29612, size=L - 2)
        mask[i, :L] = 1
    return ids, mask


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "build-bench",
                                                             "bench-models")
    out = os.path.abspath(out)
    rng = np.random.default_rng(20261122)
    ids, mask = captions(rng, 32)
    itm_ids, itm_mask = captions(rng, 16)
    pix = {s: np.clip(rng.standard_normal((8, 3, s, s)), -2.5, 2.5).astype(np.float32)
           for s in (384, 224)}
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "inputs.safetensors"), [
        ("pixels_384", pix[384].shape, "F32", lambda: pix[384]),
        ("pixels_224", pix[224].shape, "F32", lambda: pix[224]),
        ("ids", ids.shape, "I32", lambda: ids), ("mask", mask.shape, "I32", lambda: mask),
        ("itm_ids", itm_ids.shape, "I32", lambda: itm_ids),
        ("itm_mask", itm_mask.shape, "I32", lambda: itm_mask)])
    write_model(os.path.join(out, "blip-base-384"), blip_config(384),
                vision_tensors(384) + text_tensors())
    write_model(os.path.join(out, "blip-vit-224"), blip_config(224), vision_tensors(224))
    print(out)


if __name__ == "__main__":
    main()
