#!/usr/bin/python3
# torch_ref.py - the BLIP-base encoders in plain PyTorch (F.linear / F.layer_norm / F.conv2d,
# manual softmax attention: torch 1.13 has no SDPA), on the same safetensors and inputs as
# bench_encoders.c, timed the same way (warm-up, then the median of N runs).
#
# The computation mirrors transformers 4.40 BlipForImageTextRetrieval in eval mode:
#   vision: conv patch embed + class token + positions, 12 pre-LN blocks (fused qkv, exact GELU,
#           eps 1e-5), post_layernorm on every token; ITC embedding normalize(vision_proj(x[:,0])).
#   text:   BERT (word + position embeddings, LN eps 1e-12, post-LN blocks, additive
#           finfo.min key mask); ITC embedding normalize(text_proj(h[:,0])).
#   ITM:    the same BERT with cross-attention to the image's post-LN states in every layer,
#           itm_head(h[:,0]). Two torch variants: "shared" computes the cross-attention K/V of
#           the one image once and broadcasts it (what gaze does); "hf" repeats the image
#           states per pair as a transformers user batching (image, text) pairs would.
#
# Prints "RESULT <name> <median ms per item> <median ms per call> <items> <min ms per item>" lines, "RSS <phase> <cur MB> <peak MB>"
# and "AGREE <name> <max abs diff>" against gaze's outputs (--gaze-out, written by
# bench_encoders) when given.
#
# Usage: /usr/bin/python3 torch_ref.py --models DIR [--threads 2] [--gaze-out DIR] [--quick]
import argparse
import json
import math
import os
import resource
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_st(path, prefix=("",)):
    """Read a safetensors file into a dict of torch tensors (names starting with prefix)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    dt = {"F32": np.float32, "I32": np.int32}
    out = {}
    for name, h in header.items():
        if name == "__metadata__" or not name.startswith(prefix):
            continue
        a, b = h["data_offsets"]
        arr = np.array(mm[a:b]).view(dt[h["dtype"]]).reshape(h["shape"])
        out[name] = torch.from_numpy(arr)
    return out


def rss_mb():
    cur = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return cur, peak


def attention(q, k, v, H, add_mask=None):
    """q (B, Tq, D), k/v (B or 1, Tk, D) -> (B, Tq, D); softmax(q k^T / sqrt(Dh) + mask) v."""
    B, Tq, D = q.shape
    Dh = D // H
    q = q.view(B, Tq, H, Dh).transpose(1, 2)
    k = k.view(k.shape[0], k.shape[1], H, Dh).transpose(1, 2)
    v = v.view(v.shape[0], v.shape[1], H, Dh).transpose(1, 2)
    s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(Dh)
    if add_mask is not None:
        s = s + add_mask
    p = torch.softmax(s, dim=-1)
    return torch.matmul(p, v).transpose(1, 2).reshape(B, Tq, D)


class Vit:
    def __init__(self, w, cfg):
        self.w, self.L = w, cfg["num_hidden_layers"]
        self.H, self.P = cfg["num_attention_heads"], cfg.get("patch_size", 16)

    def __call__(self, pixels):
        w, p = self.w, "vision_model."
        x = F.conv2d(pixels, w[p + "embeddings.patch_embedding.weight"],
                     w[p + "embeddings.patch_embedding.bias"], stride=self.P)
        x = x.flatten(2).transpose(1, 2)
        B, D = x.shape[0], x.shape[2]
        x = torch.cat([w[p + "embeddings.class_embedding"].expand(B, 1, D), x], 1)
        x = x + w[p + "embeddings.position_embedding"]
        for i in range(self.L):
            q = f"{p}encoder.layers.{i}."
            h = F.layer_norm(x, (D,), w[q + "layer_norm1.weight"], w[q + "layer_norm1.bias"], 1e-5)
            qkv = F.linear(h, w[q + "self_attn.qkv.weight"], w[q + "self_attn.qkv.bias"])
            a = attention(*qkv.split(D, dim=-1), self.H)
            x = x + F.linear(a, w[q + "self_attn.projection.weight"],
                             w[q + "self_attn.projection.bias"])
            h = F.layer_norm(x, (D,), w[q + "layer_norm2.weight"], w[q + "layer_norm2.bias"], 1e-5)
            h = F.gelu(F.linear(h, w[q + "mlp.fc1.weight"], w[q + "mlp.fc1.bias"]))
            x = x + F.linear(h, w[q + "mlp.fc2.weight"], w[q + "mlp.fc2.bias"])
        last = F.layer_norm(x, (D,), w[p + "post_layernorm.weight"], w[p + "post_layernorm.bias"],
                            1e-5)
        emb = F.normalize(F.linear(last[:, 0], w["vision_proj.weight"], w["vision_proj.bias"]),
                          dim=-1)
        return emb, last


class Bert:
    def __init__(self, w, cfg):
        self.w, self.L, self.H = w, cfg["num_hidden_layers"], cfg["num_attention_heads"]

    def _ln(self, x, name):
        return F.layer_norm(x, (x.shape[-1],), self.w[name + ".weight"], self.w[name + ".bias"],
                            1e-12)

    def _lin(self, x, name):
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def __call__(self, ids, mask, image_states=None):
        """ids, mask (B, T) int; image_states (B or 1, Ti, Dv) for ITM; returns h[:, 0]."""
        w, p = self.w, "text_encoder."
        T = ids.shape[1]
        x = w[p + "embeddings.word_embeddings.weight"][ids] + \
            w[p + "embeddings.position_embeddings.weight"][:T]
        x = self._ln(x, p + "embeddings.LayerNorm")
        add_mask = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in range(self.L):
            q = f"{p}encoder.layer.{i}."
            a = attention(self._lin(x, q + "attention.self.query"),
                          self._lin(x, q + "attention.self.key"),
                          self._lin(x, q + "attention.self.value"), self.H, add_mask)
            x = self._ln(self._lin(a, q + "attention.output.dense") + x,
                         q + "attention.output.LayerNorm")
            if image_states is not None:  # encoder_attention_mask all ones: no mask
                a = attention(self._lin(x, q + "crossattention.self.query"),
                              self._lin(image_states, q + "crossattention.self.key"),
                              self._lin(image_states, q + "crossattention.self.value"), self.H)
                x = self._ln(self._lin(a, q + "crossattention.output.dense") + x,
                             q + "crossattention.output.LayerNorm")
            h = F.gelu(self._lin(x, q + "intermediate.dense"))
            x = self._ln(self._lin(h, q + "output.dense") + x, q + "output.LayerNorm")
        return x[:, 0]

    def embed(self, ids, mask):
        return F.normalize(self._lin(self(ids, mask), "text_proj"), dim=-1)

    def itm(self, ids, mask, image_states):
        return self._lin(self(ids, mask, image_states), "itm_head")


def bench(fn, warm, runs):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), min(ts)


def report(name, med_min, items):
    med, best = med_min
    print(f"RESULT {name} {med / items:.2f} {med:.2f} {items} {best / items:.2f}", flush=True)


def agree(name, mine, gaze_out, fname, shape):
    if not gaze_out:
        return
    path = os.path.join(gaze_out, fname)
    if not os.path.exists(path):
        print(f"AGREE {name} missing({fname})")
        return
    g = torch.from_numpy(np.fromfile(path, dtype="<f4").reshape(shape))
    d = (g - mine).abs().max().item()
    print(f"AGREE {name} {d:.3e}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gaze-out", default=None)
    ap.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    # timed runs (median) per benchmark; the same counts as bench_encoders.c
    q = a.quick
    r224, r384, r8, rt1, rt32, ritm = (1,) * 6 if q else (5, 3, 3, 10, 3, 3)
    inp = load_st(os.path.join(a.models, "inputs.safetensors"))
    print(f"INFO torch {torch.__version__} threads {torch.get_num_threads()} "
          f"blas {torch.__config__.show().split('BLAS_INFO=')[1].split(',')[0]}", flush=True)

    with torch.inference_mode():
        # ViT-B/16 @ 224
        d = os.path.join(a.models, "blip-vit-224")
        cfg = json.load(open(os.path.join(d, "config.json")))
        vit = Vit(load_st(os.path.join(d, "model.safetensors")), cfg["vision_config"])
        px = inp["pixels_224"]
        report("vit224_b1", bench(lambda: vit(px[:1]), 1, r224), 1)
        report("vit224_b8", bench(lambda: vit(px), 1, r8), 8)
        agree("vit224_emb", vit(px)[0], a.gaze_out, "vit224_emb.f32", (8, -1))
        print("RSS vit224 %.0f %.0f" % rss_mb(), flush=True)
        del vit

        # BLIP-base @ 384: vision, text, ITM
        d = os.path.join(a.models, "blip-base-384")
        cfg = json.load(open(os.path.join(d, "config.json")))
        w = load_st(os.path.join(d, "model.safetensors"))
        vit, bert = Vit(w, cfg["vision_config"]), Bert(w, cfg["text_config"])
        px = inp["pixels_384"]
        report("vit384_b1", bench(lambda: vit(px[:1]), 1, r384), 1)
        report("vit384_b8", bench(lambda: vit(px), 1, r8), 8)
        emb384, last384 = vit(px)
        agree("vit384_emb", emb384, a.gaze_out, "vit384_emb.f32", (8, -1))

        ids, mask = inp["ids"].long(), inp["mask"].long()
        n1 = int(mask[0].sum())
        report("text_b1", bench(lambda: bert.embed(ids[:1, :n1], mask[:1, :n1]), 2, rt1), 1)
        report("text_b32", bench(lambda: bert.embed(ids, mask), 1, rt32), 32)
        agree("text_emb", bert.embed(ids, mask), a.gaze_out, "text_emb.f32", (32, -1))

        tids, tmask = inp["itm_ids"].long(), inp["itm_mask"].long()
        img = last384[:1]  # (1, Ti, Dv): image 0's post-LN states
        B = tids.shape[0]
        report("itm_1x16", bench(lambda: bert.itm(tids, tmask, img), 1, ritm), B)
        report("itm_pairs", bench(lambda: bert.itm(tids, tmask, img.repeat(B, 1, 1)), 1,
                                    ritm), B)
        agree("itm_logits", bert.itm(tids, tmask, img), a.gaze_out, "itm_logits.f32", (B, 2))
        print("RSS blip384 %.0f %.0f" % rss_mb(), flush=True)


if __name__ == "__main__":
    main()
