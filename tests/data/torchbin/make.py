#!/usr/bin/python3
"""make.py - how the files in tests/data/torchbin were made (run once; the C tests need no torch).

    /usr/bin/python3 tests/data/torchbin/make.py     # torch 1.13.1 (Debian), from the repo root

Sources: the tiny Chinese-CLIP fixture (tests/data/fixtures/chinese_clip/model.safetensors and
model.f16.safetensors), read with the small safetensors reader below because torch 1.13 cannot
read safetensors. Outputs (torch.save's default ZIP format, pickle protocol 2):
  chinese_clip.f32.bin          every fixture tensor, F32, saved from an OrderedDict carrying a
                                state_dict()-style _metadata attribute (pickle BUILD)
  chinese_clip.f16.bin          the F16 fixture
  pytorch_model-0000{1,2}-of-00002.bin + pytorch_model.bin.index.json
                                the F16 fixture in two shards, as transformers shards them
  misc.bin                      dtypes F32/F16/BF16/F64/I64/I32/I16/I8/U8/BOOL, a scalar, an empty
                                tensor, a view with a storage offset, a tied (shared-storage)
                                pair, an nn.Parameter, LayerNorm gamma/beta names
  noncontig.bin                 a transposed (non-contiguous) tensor
  legacy.bin                    _use_new_zipfile_serialization=False (pre-1.6 format)
  forbidden.bin                 a ZIP whose data.pkl names os.system: bytes written by hand,
                                never unpickled by anything
  compressed.bin                misc.bin re-zipped with DEFLATE
  zip64.bin                     misc.bin rewritten by hand with ZIP64 end records and ZIP64
                                extra fields (what miniz writes for > 4 GiB checkpoints)
misc.json lists misc.bin's expected values (computed here by torch, independently of the C code).
"""
import collections
import json
import os
import struct
import zipfile
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "chinese_clip")


def read_safetensors(path):
    dt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    out = collections.OrderedDict()
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        buf = bytearray(raw[8 + n + a:8 + n + b])
        t = torch.frombuffer(buf, dtype=dt[e["dtype"]]) if b > a else torch.empty(0, dtype=dt[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out


def with_metadata(sd):
    sd = collections.OrderedDict(sd)
    sd._metadata = collections.OrderedDict([("", {"version": 1})])  # like Module.state_dict()
    return sd


def main():
    f32 = read_safetensors(os.path.join(FIX, "model.safetensors"))
    f16 = read_safetensors(os.path.join(FIX, "model.f16.safetensors"))
    torch.save(with_metadata(f32), os.path.join(HERE, "chinese_clip.f32.bin"))
    torch.save(with_metadata(f16), os.path.join(HERE, "chinese_clip.f16.bin"))

    # Two shards + index, like transformers' shard_checkpoint (plain dicts, no _metadata).
    names = list(f16)
    half = len(names) // 2
    shards = [names[:half], names[half:]]
    wmap = {}
    total = 0
    for i, part in enumerate(shards):
        fn = "pytorch_model-%05d-of-%05d.bin" % (i + 1, len(shards))
        torch.save({k: f16[k] for k in part}, os.path.join(HERE, fn))
        for k in part:
            wmap[k] = fn
            total += f16[k].numel() * f16[k].element_size()
    with open(os.path.join(HERE, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2)

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 8 - 1
    misc = collections.OrderedDict()
    misc["f32"] = base.clone()
    misc["f16"] = base.half()
    misc["bf16"] = base.bfloat16()
    misc["f64"] = base.double()
    misc["i64"] = torch.tensor([[-(2 ** 40), -1, 0, 7, 2 ** 62]], dtype=torch.int64)
    misc["i32"] = torch.tensor([-(2 ** 31), -5, 0, 2 ** 31 - 1], dtype=torch.int32)
    misc["i16"] = torch.tensor([-32768, -2, 3, 32767], dtype=torch.int16)
    misc["i8"] = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    misc["u8"] = torch.tensor([0, 1, 200, 255], dtype=torch.uint8)
    misc["bool"] = torch.tensor([True, False, True])
    misc["scalar"] = torch.tensor(2.5)
    misc["empty"] = torch.zeros(0, 3)
    big = torch.arange(10, dtype=torch.float32) * 3
    misc["view"] = big[4:7]  # storage offset 4 into a 10-element storage
    misc["tied.a"] = base
    misc["tied.b"] = base  # same storage as tied.a
    misc["param"] = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    misc["ln.gamma"] = torch.tensor([1.5, 2.5])
    misc["ln.beta"] = torch.tensor([-0.5, 0.25])
    misc["ln.weight_only.weight"] = torch.tensor([9.0])
    torch.save(misc, os.path.join(HERE, "misc.bin"))
    want = collections.OrderedDict()
    for k, v in misc.items():
        v = v.detach()
        want[k] = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                   "values": v.double().flatten().tolist() if v.is_floating_point()
                   else v.long().flatten().tolist()}
    with open(os.path.join(HERE, "misc.json"), "w") as f:
        json.dump(want, f, indent=1)

    torch.save({"t": torch.arange(6.0).reshape(2, 3).t()}, os.path.join(HERE, "noncontig.bin"))
    torch.save({"a": torch.ones(2)}, os.path.join(HERE, "legacy.bin"),
               _use_new_zipfile_serialization=False)

    # forbidden.bin: data.pkl = {"x": os.system("true")} as raw pickle opcodes (never loaded).
    pkl = (b"\x80\x02}q\x00X\x01\x00\x00\x00xq\x01cos\nsystem\nq\x02X\x04\x00\x00\x00true"
           b"q\x03\x85q\x04Rq\x05s.")
    with zipfile.ZipFile(os.path.join(HERE, "forbidden.bin"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("forbidden/data.pkl", pkl)
        z.writestr("forbidden/version", "3\n")

    src = zipfile.ZipFile(os.path.join(HERE, "misc.bin"))
    entries = [(i.filename, src.read(i.filename)) for i in src.infolist()]
    with zipfile.ZipFile(os.path.join(HERE, "compressed.bin"), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data)
    write_zip64(os.path.join(HERE, "zip64.bin"), entries)


def write_zip64(path, entries):
    """Stored entries, data 64-byte aligned; the central directory marks size, compressed size
    and local header offset as 0xffffffff with a ZIP64 extra field, and the end record points
    to a ZIP64 end record through the ZIP64 locator."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        nb = name.encode()
        off = len(out)
        pad = (-(off + 30 + len(nb) + 4)) % 64
        extra = struct.pack("<HH", 0x4246, pad) + b"\0" * pad  # alignment padding, like miniz
        crc = zlib.crc32(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, len(data), len(data),
                           len(nb), len(extra)) + nb + extra + data
        z64 = struct.pack("<HHQQQ", 0x0001, 24, len(data), len(data), off)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(z64), 0, 0, 0, 0,
                               0xFFFFFFFF) + nb + z64
    cd_off = len(out)
    out += central
    e64 = len(out)
    n = len(entries)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, e64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
