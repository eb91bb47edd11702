#!/usr/bin/env python3
"""hostile_images.py - write small image files that decode to something large or odd, for
tests/cli_hostile_images.sh. Plain Python (struct + zlib): no imaging library is needed.

Usage: hostile_images.py KIND OUT [ARGS...]
  png W H OUT [SHIFT]  8-bit greyscale PNG of W x H (a gradient along the long side, shifted by
                       SHIFT grey levels so that pictures differ), zlib level 9
  jpeg W H OUT         baseline greyscale JPEG of W x H, every block flat grey: 2 bits a block
  gif W H OUT          GIF whose logical screen is W x H with a 1x1 frame (a few dozen bytes)
  tiff W H OUT         uncompressed 8-bit RGB TIFF (little-endian, one strip), a gradient
  bmp W H OUT          24-bit bottom-up BMP, a gradient
  dng W H OUT          DNG of a W x H 16-bit RGGB Bayer mosaic (red photosites bright), no
                       preview: a camera RAW that must be demosaiced
  heif_grid W H OUT    HEIF whose primary item is a 1x1 'grid' of W x H output ('ispe' says
                       64x64) over one HEVC tile that holds no picture (a few hundred bytes)
"""
import struct
import sys
import zlib


def png(w, h, shift=0):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    parts = []
    if w >= h:
        row = b"\0" + bytes((x * 255 // max(w - 1, 1) + shift) % 256 for x in range(w))
        for _ in range(h):
            parts.append(comp.compress(row))
    else:
        for y in range(h):
            parts.append(comp.compress(b"\0" + bytes([(y * 255 // max(h - 1, 1) + shift) % 256]) * w))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) +
            chunk(b"IEND", b""))


def jpeg(w, h):
    def seg(marker, data):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(data) + 2) + data

    dqt = seg(0xDB, b"\x00" + b"\x01" * 64)
    sof = seg(0xC0, struct.pack(">BHHB", 8, h, w, 1) + b"\x01\x11\x00")
    # One-code Huffman tables: DC difference category 0 and AC end-of-block, each the 1-bit
    # code "0", so a flat block costs 2 zero bits.
    one_code = bytes([1] + [0] * 15)
    dht = seg(0xC4, b"\x00" + one_code + b"\x00") + seg(0xC4, b"\x10" + one_code + b"\x00")
    sos = seg(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    blocks = ((w + 7) // 8) * ((h + 7) // 8)
    nbits = 2 * blocks
    data = b"\x00" * (nbits // 8)
    if nbits % 8:
        data += bytes([(1 << (8 - nbits % 8)) - 1])  # pad the last byte with 1 bits
    return b"\xff\xd8" + dqt + sof + dht + sos + data + b"\xff\xd9"


def gif(w, h):
    head = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return head + frame + b";"


def gradient_rgb(w, h):
    """Rows of W x 3 bytes, R G B per pixel."""
    return [b"".join(bytes((x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256))
                     for x in range(w)) for y in range(h)]


def tiff(w, h):
    rows = b"".join(gradient_rgb(w, h))
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, None), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, 1, None), (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, len(rows))]
    ifd_off = 8
    n = len(tags)
    extra_off = ifd_off + 2 + 12 * n + 4
    bps = struct.pack("<HHH", 8, 8, 8)
    data_off = extra_off + len(bps)
    ifd = struct.pack("<H", n)
    for tag, typ, cnt, val in tags:
        if tag == 258:
            ifd += struct.pack("<HHII", tag, typ, cnt, extra_off)
        elif tag == 273:
            ifd += struct.pack("<HHII", tag, typ, cnt, data_off)
        elif typ == 3:
            ifd += struct.pack("<HHIHH", tag, typ, cnt, val, 0)
        else:
            ifd += struct.pack("<HHII", tag, typ, cnt, val)
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_off) + ifd + bps + rows


def tiff_ifd(entries, data):
    """A little-endian TIFF: one IFD of (tag, type, values) then `data` (the strip at
    STRIP_OFFSET, patched in). Types: 1 BYTE, 2 ASCII, 3 SHORT, 4 LONG."""
    size = {1: 1, 2: 1, 3: 2, 4: 4}
    code = {1: "B", 2: "B", 3: "H", 4: "I"}
    entries = sorted(entries)
    n = len(entries)
    extra_at = 8 + 2 + 12 * n + 4
    extra = b""
    blobs = []
    for tag, typ, vals in entries:
        raw = vals if typ == 2 else struct.pack("<%d%s" % (len(vals), code[typ]), *vals)
        blobs.append((tag, typ, len(raw) // size[typ], raw))
    total_extra = sum(len(r) + (len(r) & 1) for _, _, _, r in blobs
                      if len(r) > 4 and r != b"STRIP_OFFSET")
    data_at = extra_at + total_extra
    ifd = struct.pack("<H", n)
    for tag, typ, count, raw in blobs:
        if raw == b"STRIP_OFFSET":
            raw = struct.pack("<I", data_at)
            typ, count = 4, 1
        if len(raw) <= 4:
            ifd += struct.pack("<HHI", tag, typ, count) + raw + b"\0" * (4 - len(raw))
        else:
            ifd += struct.pack("<HHII", tag, typ, count, extra_at + len(extra))
            extra += raw + b"\0" * (len(raw) & 1)
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + extra + data


def dng(w, h):
    mosaic = b"".join(struct.pack("<H", 60000 if (x % 2 == 0 and y % 2 == 0) else 3000)
                      for y in range(h) for x in range(w))
    entries = [(254, 4, [0]), (256, 4, [w]), (257, 4, [h]), (258, 3, [16]), (259, 3, [1]),
               (262, 3, [32803]), (271, 2, b"gaze\0"), (272, 2, b"test sensor\0"),
               (273, 2, b"STRIP_OFFSET"), (277, 3, [1]), (278, 4, [h]), (279, 4, [len(mosaic)]),
               (284, 3, [1]), (33421, 3, [2, 2]), (33422, 1, [0, 1, 1, 2]),
               (50706, 1, [1, 4, 0, 0]), (50708, 2, b"gaze test sensor\0")]
    return tiff_ifd(entries, mosaic)


def bmp(w, h):
    stride = (w * 3 + 3) & ~3
    body = b""
    for r in reversed(gradient_rgb(w, h)):
        px = [r[i:i + 3] for i in range(0, len(r), 3)]
        line = b"".join(bytes((p[2], p[1], p[0])) for p in px)
        body += line + b"\0" * (stride - len(line))
    head = b"BM" + struct.pack("<IHHI", 54 + len(body), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(body), 2835, 2835, 0, 0)
    return head + info + body


def heif_grid(w, h):
    def box(kind, payload):
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    def full(kind, version, payload):
        return box(kind, bytes([version, 0, 0, 0]) + payload)

    ftyp = box(b"ftyp", b"heic" + b"\0\0\0\0" + b"mif1heic")
    hdlr = full(b"hdlr", 0, b"\0" * 4 + b"pict" + b"\0" * 12 + b"\0")
    pitm = full(b"pitm", 0, struct.pack(">H", 1))
    infe1 = full(b"infe", 2, struct.pack(">HH", 1, 0) + b"grid" + b"\0")
    infe2 = full(b"infe", 2, struct.pack(">HH", 2, 0) + b"hvc1" + b"\0")
    iinf = full(b"iinf", 0, struct.pack(">H", 2) + infe1 + infe2)
    iref = full(b"iref", 0, box(b"dimg", struct.pack(">HHH", 1, 1, 2)))
    ispe = full(b"ispe", 0, struct.pack(">II", 64, 64))
    # HEVC decoder configuration without parameter sets: 8-bit 4:2:0, 4-byte NAL lengths
    hvcc = box(b"hvcC", bytes([1, 1]) + b"\0" * 4 + b"\0" * 6 +
               bytes([0, 0xF0, 0, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0, 0x0F, 0]))
    ipma = full(b"ipma", 0, struct.pack(">I", 2) + struct.pack(">HB", 1, 1) + b"\x81" +
                struct.pack(">HB", 2, 2) + b"\x81\x82")
    iprp = box(b"iprp", box(b"ipco", ispe + hvcc) + ipma)
    grid = bytes([0, 1, 0, 0]) + struct.pack(">II", w, h)
    idat = box(b"idat", grid)

    def meta_with(tile_offset):
        iloc = full(b"iloc", 1, bytes([0x44, 0x00]) + struct.pack(">H", 2) +
                    struct.pack(">HHHHII", 1, 1, 0, 1, 0, len(grid)) +
                    struct.pack(">HHHHII", 2, 0, 0, 1, tile_offset, 4))
        return full(b"meta", 0, hdlr + pitm + iinf + iref + iprp + iloc + idat)

    head = ftyp + meta_with(0)
    return ftyp + meta_with(len(head) + 8) + box(b"mdat", b"\0\0\0\0")


def main():
    kind = sys.argv[1]
    makers = {"png": png, "jpeg": jpeg, "gif": gif, "tiff": tiff, "bmp": bmp, "dng": dng,
              "heif_grid": heif_grid}
    w, h, out = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    extra = [int(a) for a in sys.argv[5:]]
    with open(out, "wb") as f:
        f.write(makers[kind](w, h, *extra))


if __name__ == "__main__":
    main()
