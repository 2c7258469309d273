"""Container-level truncation checks: does the file hold every byte its top-level structure
declares? FFmpeg's demuxers stop quietly at a cut; these checks make the cut visible."""

from __future__ import annotations

import struct
from typing import BinaryIO

_MP4_LIKE = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"moof", b"styp", b"pdin", b"meta"}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_MKV_SEGMENT = b"\x18\x53\x80\x67"
_TS_PACKET = 188


def truncation(f: BinaryIO, size: int) -> str | None:
    """Why the file (`size` bytes, open for binary reading) is visibly truncated, or None."""
    f.seek(0)
    head = f.read(_TS_PACKET + 1)
    if head[4:8] in _MP4_LIKE:
        return _mp4_truncation(f, size)
    if head.startswith(_EBML_MAGIC):
        return _matroska_truncation(f, size)
    if head[:1] == b"\x47" and head[_TS_PACKET:] == b"\x47" and size % _TS_PACKET:
        return f"the MPEG-TS file ends inside a packet ({size} bytes is not a multiple of 188)"
    return None


def _mp4_truncation(f: BinaryIO, size: int) -> str | None:
    """Walks the top-level ISO BMFF boxes (ISO/IEC 14496-12, 4.2)."""
    offset, seen = 0, set()
    while offset + 8 <= size:
        f.seek(offset)
        box_size, box_type = struct.unpack(">I4s", f.read(8))
        if box_size == 1:  # largesize follows
            header = f.read(8)
            if len(header) < 8:
                break
            box_size = struct.unpack(">Q", header)[0]
        elif box_size == 0:  # extends to the end of the file
            box_size = size - offset
        if box_size < 8:
            return f"the MP4 box at byte {offset} has an invalid size {box_size}"
        seen.add(box_type)
        if offset + box_size > size:
            name = box_type.decode("latin-1")
            missing = "" if b"moov" in seen else " and the 'moov' index is missing"
            return (f"the MP4 file is truncated: its '{name}' box needs {offset + box_size} bytes "
                    f"but the file has {size}{missing}")
        offset += box_size
    if b"moov" not in seen and b"moof" not in seen:
        return "the MP4 file has no 'moov' index (the file was not finalised or is cut)"
    return None


def _read_vint(f: BinaryIO, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer: (value, length); all-ones sizes mean 'unknown' (-1)."""
    first = f.read(1)
    if not first:
        return None
    b = first[0]
    length = 1
    while length <= 8 and not b & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        return None
    rest = f.read(length - 1)
    if len(rest) < length - 1:
        return None
    value = b if keep_marker else b & (0xFF >> length)
    for byte in rest:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        value = -1
    return value, length


def _matroska_truncation(f: BinaryIO, size: int) -> str | None:
    """Checks the EBML header and the Segment element's declared size (RFC 9559)."""
    f.seek(0)
    for expected in (_EBML_MAGIC, _MKV_SEGMENT):
        offset = f.tell()
        element = _read_vint(f, keep_marker=True)
        length = _read_vint(f, keep_marker=False)
        if element is None or length is None:
            return f"the Matroska file ends inside an element header at byte {offset}"
        element_id = element[0].to_bytes(element[1], "big")
        if element_id != expected:
            return None  # unusual layout: leave it to the demuxer
        data_size = length[0]
        if data_size < 0:
            return None  # unknown size (live recording): nothing to check
        if f.tell() + data_size > size:
            return (f"the Matroska file is truncated: it declares {f.tell() + data_size} bytes "
                    f"but has {size}")
        if expected == _EBML_MAGIC:
            f.seek(f.tell() + data_size)
    return None
