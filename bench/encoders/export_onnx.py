#!/usr/bin/python3
# export_onnx.py - export the benchmark's BLIP-base encoders (torch_ref.py's modules, same random
# weights from make_weights.py) to ONNX for ort_ref.js, the ONNX Runtime peer of bench_encoders.
#
# Writes under OUT (git-ignored build dir; never commit .onnx files):
#   vit224.onnx   pixels (B,3,224,224) f32 -> emb (B,256), L2-normalised (ITC image embedding)
#   vit384.onnx   pixels (B,3,384,384) f32 -> emb (B,256), last (B,577,768) post-LN states
#   text.onnx     ids, mask (B,T) int64 -> emb (B,256), L2-normalised (ITC text embedding)
#   itm.onnx      ids, mask (B,T) int64, image (Bi,577,768) f32 with Bi = 1 (broadcast, the
#                 image's K/V computed once) or Bi = B -> logits (B,2)
#   torch_*.f32   torch_ref.py's outputs on inputs.safetensors (raw little-endian float32, the
#                 same files and shapes bench_encoders --out writes), for ort_ref.js to compare.
# Opset 17, dynamic batch (and text length) axes. Weights become ONNX initializers (buffers).
#
# Usage: /usr/bin/python3 bench/encoders/export_onnx.py --models DIR --out DIR
#        (needs torch 1.13 from Debian python3-torch; the `onnx` package is not needed)
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref  # noqa: E402  (Vit, Bert, load_st)

OPSET = 17


class _StaticShapeF:
    """torch.nn.functional for torch_ref's code, except that layer_norm's normalized_shape is
    made static: under tracing torch_ref's (x.shape[-1],) is a traced value, which the ONNX
    LayerNormalization export rejects. Installed only in this process (torch_ref.F)."""

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)

    @staticmethod
    def layer_norm(x, shape, w, b, eps):
        return torch.nn.functional.layer_norm(x, tuple(int(s) for s in shape), w, b, eps)


torch_ref.F = _StaticShapeF()


class Wrapped(torch.nn.Module):
    """Holds the weight dict as buffers (so they export as initializers) and calls fn."""

    def __init__(self, w, fn):
        super().__init__()
        for i, (name, t) in enumerate(sorted(w.items())):
            self.register_buffer("w%03d_%s" % (i, name.replace(".", "_")), t)
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def pick(w, keep, drop=()):
    return {k: v for k, v in w.items() if k.startswith(keep) and not any(d in k for d in drop)}


def export(model, args, path, inputs, outputs, dyn):
    t0 = time.time()
    torch.onnx.export(model, args, path, opset_version=OPSET, input_names=inputs,
                      output_names=outputs, dynamic_axes=dyn, do_constant_folding=True)
    print("wrote %s (%.0f MB, %.0f s)" % (path, os.path.getsize(path) / 2**20, time.time() - t0),
          flush=True)


def save(out, name, t):
    t.detach().contiguous().numpy().astype("<f4").tofile(os.path.join(out, name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    inp = torch_ref.load_st(os.path.join(a.models, "inputs.safetensors"))
    batch = {0: "batch"}

    with torch.no_grad():
        d = os.path.join(a.models, "blip-vit-224")
        cfg = json.load(open(os.path.join(d, "config.json")))
        w = pick(torch_ref.load_st(os.path.join(d, "model.safetensors")), ("vision_",))
        vit = torch_ref.Vit(w, cfg["vision_config"])
        m = Wrapped(w, lambda px: vit(px)[0])
        px = inp["pixels_224"]
        export(m, (px[:2],), os.path.join(a.out, "vit224.onnx"), ["pixels"], ["emb"],
               {"pixels": batch, "emb": batch})
        save(a.out, "torch_vit224_emb.f32", vit(px)[0])
        del vit, m, w

        d = os.path.join(a.models, "blip-base-384")
        cfg = json.load(open(os.path.join(d, "config.json")))
        w = torch_ref.load_st(os.path.join(d, "model.safetensors"))
        wv = pick(w, ("vision_",))
        vit = torch_ref.Vit(wv, cfg["vision_config"])
        px = inp["pixels_384"]
        export(Wrapped(wv, lambda p: vit(p)), (px[:2],), os.path.join(a.out, "vit384.onnx"),
               ["pixels"], ["emb", "last"], {"pixels": batch, "emb": batch, "last": batch})
        emb384, last384 = vit(px)
        save(a.out, "torch_vit384_emb.f32", emb384)

        text_dyn = {0: "batch", 1: "tokens"}
        wt = pick(w, ("text_encoder.", "text_proj."), drop=("crossattention",))
        bert = torch_ref.Bert(wt, cfg["text_config"])
        ids, mask = inp["ids"].long(), inp["mask"].long()
        export(Wrapped(wt, bert.embed), (ids[:2], mask[:2]), os.path.join(a.out, "text.onnx"),
               ["ids", "mask"], ["emb"], {"ids": text_dyn, "mask": text_dyn, "emb": batch})
        save(a.out, "torch_text_emb.f32", bert.embed(ids, mask))

        wi = pick(w, ("text_encoder.", "itm_head."))
        bert = torch_ref.Bert(wi, cfg["text_config"])
        tids, tmask = inp["itm_ids"].long(), inp["itm_mask"].long()
        img = last384[:1].contiguous()
        export(Wrapped(wi, bert.itm), (tids[:2], tmask[:2], img),
               os.path.join(a.out, "itm.onnx"), ["ids", "mask", "image"], ["logits"],
               {"ids": text_dyn, "mask": text_dyn, "image": {0: "image_batch"},
                "logits": batch})
        save(a.out, "torch_itm_logits.f32", bert.itm(tids, tmask, img))
    print("done", flush=True)


if __name__ == "__main__":
    main()
