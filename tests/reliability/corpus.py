"""The malformed-image corpus, made in memory from one test photo (Pillow from the suite's venv).

Each item: (name, bytes, content type, expected (status, code) on /v1/detect). Valid but unusual
encodings (CMYK JPEG, 16-bit and palette PNG, ...) are expected to decode: 200. The HEIC items come
from Debian's heif-enc through a temporary folder removed at once; everything else is made in
memory, and the suite keeps the items in memory.
"""

from __future__ import annotations

import io
import os
import random
import struct
import subprocess
import tempfile
import zlib

from PIL import Image

OK = (200, None)
INVALID = (422, "INVALID_IMAGE_FORMAT")
TOO_LARGE = (413, "IMAGE_TOO_LARGE")
EMPTY = (400, "VALIDATION_FAILED")


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_raw(width: int, height: int, depth: int, color: int, rows: bytes | None = None) -> bytes:
    """A PNG from raw scanlines (filter byte included) or, when rows is None, from zero rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    if rows is None:
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
        line = b"\x00" * (1 + width * channels * depth // 8)
        comp = zlib.compressobj(9)
        data = b"".join(comp.compress(line) for _ in range(height)) + comp.flush()
    else:
        data = zlib.compress(rows, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def png16(img: Image.Image) -> bytes:
    """An RGB PNG of 16 bits per channel (Pillow writes 16-bit grey only)."""
    w, h = img.size
    px = img.convert("RGB").tobytes()
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for b in px[y * w * 3:(y + 1) * w * 3]:
            rows += struct.pack(">H", b * 257)
    return png_raw(w, h, 16, 2, bytes(rows))


def _find_marker(data: bytes, marker: int) -> int:
    i = data.find(bytes([0xFF, marker]))
    if i < 0:
        raise ValueError(f"marker FF{marker:02X} not found")
    return i


def jpeg_broken_huffman(jpeg: bytes) -> bytes:
    """Every code-length count of the first DHT table set to 0xFF: more codes than 16 bits allow."""
    b = bytearray(jpeg)
    i = _find_marker(b, 0xC4)
    for k in range(i + 5, i + 5 + 16):
        b[k] = 0xFF
    return bytes(b)


def jpeg_huffman_length(jpeg: bytes) -> bytes:
    """The first DHT segment's length field claims 3 bytes."""
    b = bytearray(jpeg)
    i = _find_marker(b, 0xC4)
    b[i + 2], b[i + 3] = 0x00, 0x03
    return bytes(b)


def jpeg_garbage_scan(jpeg: bytes) -> bytes:
    """Entropy-coded data replaced by random bytes after the start of scan."""
    b = bytearray(jpeg)
    sos = _find_marker(b, 0xDA)
    rng = random.Random(7)
    for k in range(sos + 20, len(b) - 2):
        v = rng.randrange(256)
        b[k] = v if v != 0xFF else 0x00
    return bytes(b)


def jpeg_dims(jpeg: bytes, width: int, height: int) -> bytes:
    """The SOF0/SOF2 frame header claims another size."""
    b = bytearray(jpeg)
    for m in (0xC0, 0xC2):
        i = b.find(bytes([0xFF, m]))
        if i >= 0:
            struct.pack_into(">HH", b, i + 5, height, width)
            return bytes(b)
    raise ValueError("no SOF")


def webp_vp8x(width: int, height: int) -> bytes:
    """A VP8X WebP header claiming a canvas, with no image data."""
    payload = bytes([0, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def heic(jpeg: bytes) -> bytes:
    """A HEIC made from JPEG bytes by Debian's heif-enc (libheif-examples), in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="facesocial-heic-") as folder:
        source, output = os.path.join(folder, "in.jpg"), os.path.join(folder, "out.heic")
        with open(source, "wb") as f:
            f.write(jpeg)
        subprocess.run(["heif-enc", "-q", "80", "-o", output, source], check=True, capture_output=True)
        with open(output, "rb") as f:
            return f.read()


def heic_dims(data: bytes, width: int, height: int) -> bytes:
    """The HEIC with every 'ispe' (image spatial extents) property claiming width x height."""
    b = bytearray(data)
    at = b.find(b"ispe")
    if at < 0:
        raise ValueError("no ispe box")
    while at >= 0:
        b[at + 8:at + 16] = struct.pack(">II", width, height)  # after version and flags
        at = b.find(b"ispe", at + 4)
    return bytes(b)


def _boxes(b: bytes, start: int, end: int) -> list:
    """ISO-BMFF boxes between start and end: (type, start, header length, end)."""
    out, at = [], start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", b[at:at + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", b[at + 8:at + 16])[0], 16
        elif size == 0:
            size = end - at
        out.append((kind.decode("latin-1"), at, header, at + size))
        at += size
    return out


def _box(kind: str, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind.encode()) + payload


def heic_irot(data: bytes, quarter_turns: int) -> bytes:
    """The HEIC with an 'irot' property (anticlockwise quarter turns) on its primary item, as phones
    write a photo taken sideways: the stored pixels stay as they are, the reader turns them. The
    new property goes last in 'ipco', its association into 'ipma', and the item locations in
    'iloc' move by the bytes added to 'meta' (heif-enc has no option to write it)."""
    top = _boxes(data, 0, len(data))
    kind, m0, mh, m1 = next(box for box in top if box[0] == "meta")
    meta_children = _boxes(data, m0 + mh + 4, m1)  # meta is a full box: version and flags first
    pitm = next(box for box in meta_children if box[0] == "pitm")
    item = struct.unpack(">H", data[pitm[1] + pitm[2] + 4:pitm[1] + pitm[2] + 6])[0]
    parts = []
    for kind, s, h, e in meta_children:
        if kind != "iprp":
            parts.append(data[s:e])
            continue
        iprp = []
        for k2, s2, h2, e2 in _boxes(data, s + h, e):
            if k2 == "ipco":
                count = len(_boxes(data, s2 + h2, e2))
                index = count + 1
                iprp.append(_box("ipco", data[s2 + h2:e2] + _box("irot", bytes([quarter_turns & 3]))))
            elif k2 == "ipma":
                version, flags = data[s2 + h2], int.from_bytes(data[s2 + h2 + 1:s2 + h2 + 4], "big")
                body = bytearray(data[s2 + h2:e2])
                entries = struct.unpack(">I", body[4:8])[0]
                at, id_size, wide = 8, (2 if version < 1 else 4), bool(flags & 1)
                for _ in range(entries):
                    item_id = int.from_bytes(body[at:at + id_size], "big")
                    n = body[at + id_size]
                    end = at + id_size + 1 + n * (2 if wide else 1)
                    if item_id == item:
                        body[at + id_size] = n + 1
                        extra = struct.pack(">H", 0x8000 | index) if wide else bytes([0x80 | index])
                        body[end:end] = extra
                        end += len(extra)
                    at = end
                iprp.append(_box("ipma", bytes(body)))
            else:
                iprp.append(data[s2:e2])
        parts.append(_box("iprp", b"".join(iprp)))
    new_meta = bytearray(_box("meta", data[m0 + mh:m0 + mh + 4] + b"".join(parts)))
    delta = len(new_meta) - (m1 - m0)
    # Item data after 'meta' (in 'mdat') moves by delta: shift the file offsets in 'iloc'.
    for kind, s, h, e in _boxes(new_meta, 12, len(new_meta)):
        if kind != "iloc":
            continue
        version = new_meta[s + h]
        at = s + h + 4
        offset_size, length_size = new_meta[at] >> 4, new_meta[at] & 15
        base_size, index_size = new_meta[at + 1] >> 4, (new_meta[at + 1] & 15 if version in (1, 2) else 0)
        at += 2
        count_size = 2 if version < 2 else 4
        items = int.from_bytes(new_meta[at:at + count_size], "big")
        at += count_size
        def shift(position, size):
            value = int.from_bytes(new_meta[position:position + size], "big") + delta
            new_meta[position:position + size] = value.to_bytes(size, "big")
        for _ in range(items):
            at += count_size  # item ID
            method = 0
            if version in (1, 2):
                method = new_meta[at + 1] & 15
                at += 2
            at += 2  # data reference index
            base_at = at
            at += base_size
            extents = int.from_bytes(new_meta[at:at + 2], "big")
            at += 2
            if method == 0 and base_size:
                shift(base_at, base_size)
            for _ in range(extents):
                at += index_size
                if method == 0 and not base_size:
                    shift(at, offset_size)
                at += offset_size + length_size
    return data[:m0] + bytes(new_meta) + data[m1:]


def build(face_jpeg: bytes) -> list:
    img = Image.open(io.BytesIO(face_jpeg)).convert("RGB")
    jpeg = _save(img, "JPEG", quality=90)
    png = _save(img, "PNG")
    webp = _save(img, "WEBP", quality=80)
    frame2 = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    phone = heic(jpeg)
    items = [
        # JPEG
        ("jpeg baseline (control)", jpeg, "image/jpeg", OK),
        ("jpeg progressive", _save(img, "JPEG", progressive=True), "image/jpeg", OK),
        ("jpeg CMYK", _save(img.convert("CMYK"), "JPEG"), "image/jpeg", OK),
        ("jpeg greyscale", _save(img.convert("L"), "JPEG"), "image/jpeg", OK),
        ("jpeg truncated to half", jpeg[: len(jpeg) // 2], "image/jpeg", INVALID),
        ("jpeg truncated in the headers", jpeg[:200], "image/jpeg", INVALID),
        ("jpeg SOI+EOI only", b"\xff\xd8\xff\xd9", "image/jpeg", INVALID),
        ("jpeg broken Huffman counts", jpeg_broken_huffman(jpeg), "image/jpeg", INVALID),
        ("jpeg Huffman segment length 3", jpeg_huffman_length(jpeg), "image/jpeg", INVALID),
        ("jpeg random entropy data", jpeg_garbage_scan(jpeg), "image/jpeg", INVALID),
        ("jpeg claiming 65500x65500", jpeg_dims(jpeg, 65500, 65500), "image/jpeg", TOO_LARGE),
        ("jpeg claiming 9000x100", jpeg_dims(jpeg, 9000, 100), "image/jpeg", TOO_LARGE),
        ("jpeg claiming 0x0", jpeg_dims(jpeg, 0, 0), "image/jpeg", INVALID),
        # PNG
        ("png 8-bit RGB (control)", png, "image/png", OK),
        ("png 16-bit RGB", png16(img), "image/png", OK),
        ("png 16-bit grey", _save(img.convert("I;16"), "PNG"), "image/png", OK),
        ("png palette", _save(img.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"), "image/png", OK),
        ("png RGBA", _save(img.convert("RGBA"), "PNG"), "image/png", OK),
        ("png truncated to half", png[: len(png) // 2], "image/png", INVALID),
        ("png bad IDAT CRC", png[:60] + bytes([png[60] ^ 0xFF]) + png[61:], "image/png", INVALID),
        ("png claiming 20000x20000", png_raw(20000, 20000, 8, 2, b"")[:33], "image/png", TOO_LARGE),
        ("png 8000x5001 zero bomb (40 MP + 1 row)", png_raw(8000, 5001, 8, 2), "image/png", TOO_LARGE),
        ("png 1x100000", png_raw(1, 100000, 8, 0), "image/png", TOO_LARGE),
        ("png 0x0", png_raw(0, 0, 8, 2, b""), "image/png", INVALID),
        ("png 7000x5000 zeros (35 MP, decodes)", png_raw(7000, 5000, 8, 2), "image/png", OK),
        # WebP
        ("webp lossy (control)", webp, "image/webp", OK),
        ("webp lossless", _save(img, "WEBP", lossless=True), "image/webp", OK),
        ("webp animated", _save(img, "WEBP", save_all=True, append_images=[frame2], duration=100, loop=0),
         "image/webp", INVALID),
        ("webp truncated", webp[: len(webp) // 2], "image/webp", INVALID),
        ("webp VP8X claiming 16000x16000", webp_vp8x(16000, 16000), "image/webp", TOO_LARGE),
        # HEIC (phones' default)
        ("heic (control)", phone, "image/heic", OK),
        ("heic truncated to half", phone[: len(phone) // 2], "image/heic", INVALID),
        ("heic ftyp box only", phone[:32], "image/heic", INVALID),
        ("heic with random data after ftyp", phone[:32] + random.Random(5).randbytes(4000), "image/heic", INVALID),
        ("heic claiming 9000x100", heic_dims(phone, 9000, 100), "image/heic", TOO_LARGE),
        ("heic claiming 0x0", heic_dims(phone, 0, 0), "image/heic", INVALID),
        ("heic stored sideways with irot", heic_irot(heic(_save(img.transpose(Image.Transpose.ROTATE_270), "JPEG",
                                                                 quality=90)), 1), "image/heic", OK),
        # Not images at all
        ("zero-size body", b"", "image/jpeg", EMPTY),
        ("one byte", b"\xff", "image/jpeg", INVALID),
        ("GIF", _save(img, "GIF"), "image/gif", INVALID),
        ("BMP", _save(img, "BMP"), "image/bmp", INVALID),
        ("TIFF", _save(img, "TIFF"), "image/tiff", INVALID),
        ("random bytes", random.Random(3).randbytes(4096), "application/octet-stream", INVALID),
        ("CSV text", b"name,age\nalice,31\n", "text/csv", INVALID),
    ]
    return items
