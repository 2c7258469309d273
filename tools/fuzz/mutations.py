"""Mutations of the seed clips: each case applies one or a few, deterministically from its seed."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .corpus import IDR, PPS, SLICE, SPS, Clip, _rewrite_field, pps_fields, slice_fields, sps_fields

# ------------------------------------------------------------------------------------------------
# Mutations
# ------------------------------------------------------------------------------------------------

_BYTES = (0x00, 0x01, 0x03, 0x7F, 0x80, 0xFF, 0xFE, 0x40, 0x20, 0x10)
# nal_unit_type values to retype a unit to: slices, SEI, parameter sets, delimiters, filler, data
# partitions, SPS extension, prefix, auxiliary and extension slices, reserved and unspecified
_NAL_TYPES = (1, 5, 6, 7, 8, 9, 10, 11, 12, 0, 2, 3, 4, 13, 14, 19, 20, 21, 24, 31)


class _Work:
    """One case being built: a list of [prefix, NAL unit] (Annex B) or the file bytes with the
    clip's NAL unit regions (containers, mutated in place; length-changing file edits last)."""

    def __init__(self, clip: Clip, corpus: list[Clip], rng: random.Random) -> None:
        self.clip, self.corpus, self.rng = clip, corpus, rng
        if clip.annexb:
            self.units = [[clip.data[n.prefix:n.start], bytearray(clip.nal(i))] for i, n in enumerate(clip.nals)]
        else:
            self.buf = bytearray(clip.data)
        self.file_ops: list[Callable[[bytearray], str]] = []

    # -- NAL units ---------------------------------------------------------------------------
    def count(self) -> int:
        return len(self.units) if self.clip.annexb else len(self.clip.nals)

    def get(self, i: int) -> bytearray:
        if self.clip.annexb:
            return self.units[i][1]
        n = self.clip.nals[i]
        return self.buf[n.start:n.end]

    def set(self, i: int, nal: bytes) -> None:
        """Replaces NAL unit i. In a container the unit keeps its size (the sample tables fix
        it): shorter content is padded with zero bytes, longer content is cut."""
        if self.clip.annexb:
            self.units[i][1] = bytearray(nal)
            return
        n = self.clip.nals[i]
        size = n.end - n.start
        self.buf[n.start:n.end] = bytes(nal[:size]).ljust(size, b"\0")

    def type(self, i: int) -> int:
        nal = self.get(i)
        return nal[0] & 0x1F if nal else -1

    def pick(self, kinds: tuple[int, ...] | None = None) -> int | None:
        candidates = [i for i in range(self.count()) if kinds is None or self.type(i) in kinds]
        return self.rng.choice(candidates) if candidates else None

    def pick_weighted(self) -> int | None:
        """Mostly slices (where most of the bits are), sometimes parameter sets or anything."""
        x = self.rng.random()
        kinds = (SLICE, IDR) if x < 0.7 else (SPS, PPS) if x < 0.85 else None
        i = self.pick(kinds)
        return self.pick() if i is None else i

    def build(self) -> bytes:
        if self.clip.annexb:
            return b"".join(bytes(p) + bytes(n) for p, n in self.units)
        return bytes(self.buf)


def _other_clip(w: _Work) -> Clip:
    return w.rng.choice(w.corpus)


def _other_nal(w: _Work, kinds: tuple[int, ...]) -> bytes | None:
    clip = _other_clip(w)
    idx = clip.indices(kinds)
    return clip.nal(w.rng.choice(idx)) if idx else None


def _m_bitflip(w: _Work) -> str | None:
    i = w.pick_weighted()
    if i is None:
        return None
    nal = w.get(i)
    lo = 0 if w.rng.random() < 0.1 else 1
    if len(nal) <= lo:
        return None
    flips = w.rng.choice((1, 1, 1, 2, 3, 4, 8))
    t = w.type(i)
    where = []
    for _ in range(flips):
        pos = w.rng.randrange(lo, len(nal))
        nal[pos] ^= 1 << w.rng.randrange(8)
        where.append(pos)
    w.set(i, nal)
    return f"bitflip nal {i} (type {t}) bytes {where}"


def _m_byteset(w: _Work) -> str | None:
    i = w.pick_weighted()
    if i is None or len(w.get(i)) < 2:
        return None
    nal = w.get(i)
    where = []
    for _ in range(w.rng.randint(1, 4)):
        pos = w.rng.randrange(1, len(nal))
        nal[pos] = w.rng.choice(_BYTES) if w.rng.random() < 0.5 else w.rng.randrange(256)
        where.append(pos)
    w.set(i, nal)
    return f"byteset nal {i} bytes {where}"


def _m_insert(w: _Work) -> str | None:
    i = w.pick_weighted()
    if i is None:
        return None
    nal = w.get(i)
    pos = w.rng.randint(1, len(nal))
    k = w.rng.choice((1, 1, 2, 4, 8, 16, 32))
    if w.rng.random() < 0.5 and len(nal) > 1:  # repeat a piece of the unit itself
        a = w.rng.randrange(1, len(nal))
        piece = bytes(nal[a:a + k])
    else:
        piece = w.rng.randbytes(k)
    nal[pos:pos] = piece
    w.set(i, nal)
    return f"insert {len(piece)} bytes into nal {i} at {pos}"


def _m_delete(w: _Work) -> str | None:
    i = w.pick_weighted()
    if i is None or len(w.get(i)) < 3:
        return None
    nal = w.get(i)
    pos = w.rng.randrange(1, len(nal) - 1)
    k = min(w.rng.choice((1, 1, 2, 4, 8, 16, 64)), len(nal) - pos)
    del nal[pos:pos + k]
    w.set(i, nal)
    return f"delete {k} bytes from nal {i} at {pos}"


def _m_truncate_nal(w: _Work) -> str | None:
    i = w.pick((SLICE, IDR, SPS, PPS) if w.rng.random() < 0.9 else None)
    if i is None or len(w.get(i)) < 2:
        return None
    nal = w.get(i)
    keep = w.rng.randint(1, len(nal) - 1)
    w.set(i, nal[:keep])
    return f"truncate nal {i} to {keep} of {len(nal)} bytes"


def _m_truncate_stream(w: _Work) -> str | None:
    def cut(buf: bytearray) -> str:
        keep = w.rng.randrange(1, len(buf))
        del buf[keep:]
        return f"truncate stream at byte {keep}"
    w.file_ops.append(cut)
    return "truncate stream"


def _m_splice(w: _Work) -> str | None:
    """The head of one slice with the tail of another (same clip or another one)."""
    i = w.pick((SLICE, IDR))
    other = _other_nal(w, (SLICE, IDR)) if w.rng.random() < 0.5 else None
    if i is None:
        return None
    if other is None:
        j = w.pick((SLICE, IDR))
        other = bytes(w.get(j))
    nal = w.get(i)
    a = w.rng.randint(1, len(nal))
    b = w.rng.randint(1, len(other))
    new = nal[:a] + other[b:]
    if not w.clip.annexb:  # in place: the rest of the old unit stays where the new one is short
        new += nal[len(new):]
    w.set(i, new)
    return f"splice nal {i}[:{a}] + slice[{b}:]"


def _m_transplant(w: _Work) -> str | None:
    """A whole slice from another clip (or another picture) inserted or replacing one."""
    other = _other_nal(w, (SLICE, IDR))
    if other is None or not w.clip.annexb:
        return None
    i = w.pick((SLICE, IDR))
    if i is None:
        return None
    if w.rng.random() < 0.5:
        w.units[i][1] = bytearray(other)
        return f"replace nal {i} with a foreign slice"
    w.units.insert(i + w.rng.randint(0, 1), [b"\0\0\0\1", bytearray(other)])
    return f"insert a foreign slice near nal {i}"


def _m_ps_swap(w: _Work) -> str | None:
    """Parameter sets of another clip: sizes, entropy coding, profiles, matrices that do not fit."""
    other = w.rng.choice([c for c in w.corpus if c.name != w.clip.name] or w.corpus)
    mode = w.rng.choice(("sps", "pps", "both", "insert"))
    if mode == "insert":
        if not w.clip.annexb:
            return None
        i = w.pick((SLICE, IDR))
        if i is None:
            return None
        sets = [other.nal(k) for k in other.indices((SPS, PPS))[:2]]
        for nal in reversed(sets):
            w.units.insert(i, [b"\0\0\0\1", bytearray(nal)])
        return f"insert the SPS/PPS of {other.name} before nal {i}"
    done = []
    for kind in ((SPS,) if mode == "sps" else (PPS,) if mode == "pps" else (SPS, PPS)):
        idx = other.indices((kind,))
        if not idx:
            continue
        replacement = other.nal(idx[0])
        for i in range(w.count()):
            if w.type(i) == kind and w.get(i) != replacement:
                w.set(i, replacement)
                done.append(i)
    return f"{mode} of {other.name} swapped into nals {done}" if done else None


def _m_field(w: _Work, kinds: tuple[int, ...]) -> str | None:
    i = w.pick(kinds)
    if i is None:
        return None
    nal = bytes(w.get(i))
    t = nal[0] & 0x1F
    r = sps_fields(nal) if t == SPS else pps_fields(nal) if t == PPS else slice_fields(nal, w.clip.params)
    same = not w.clip.annexb or w.rng.random() < 0.5
    for _ in range(4):
        out = _rewrite_field(nal, r, w.rng, same)
        if out is not None:
            w.set(i, out[0])
            return f"nal {i} (type {t}) {out[1]}"
    return None


def _m_nal_header(w: _Work) -> str | None:
    i = w.pick()
    if i is None:
        return None
    nal = w.get(i)
    old = nal[0]
    while nal[0] == old:
        x = w.rng.random()
        if x < 0.6:
            nal[0] = (old & 0xE0) | w.rng.choice(_NAL_TYPES)
        elif x < 0.9:
            nal[0] = (old & 0x9F) | (w.rng.randrange(4) << 5)
        else:
            nal[0] = old | 0x80  # forbidden_zero_bit
    w.set(i, nal)
    return f"nal {i} header {old:#04x} -> {nal[0]:#04x}"


def _m_nal_dup(w: _Work) -> str | None:
    if not w.clip.annexb:
        return None
    i = w.pick_weighted()
    if i is None:
        return None
    j = i + 1 if w.rng.random() < 0.5 else w.rng.randint(0, len(w.units))
    w.units.insert(j, [w.units[i][0], bytearray(w.units[i][1])])
    return f"duplicate nal {i} at {j}"


def _m_nal_drop(w: _Work) -> str | None:
    if not w.clip.annexb or len(w.units) < 2:
        return None
    x = w.rng.random()
    i = w.pick((SLICE, IDR) if x < 0.5 else (SPS,) if x < 0.65 else (PPS,) if x < 0.8 else None)
    if i is None:
        return None
    t = w.type(i)
    del w.units[i]
    return f"drop nal {i} (type {t})"


def _m_nal_swap(w: _Work) -> str | None:
    if not w.clip.annexb or len(w.units) < 2:
        return None
    i = w.rng.randrange(len(w.units) - 1)
    j = i + 1 if w.rng.random() < 0.5 else w.rng.choice([k for k in range(len(w.units)) if k != i])
    w.units[i], w.units[j] = w.units[j], w.units[i]
    return f"swap nals {i} and {j}"


def _m_nal_length(w: _Work) -> str | None:
    """Container only: a NAL unit length field (in a packet or the avcC) that lies."""
    if w.clip.annexb:
        return None
    i = w.pick()
    if i is None:
        return None
    n = w.clip.nals[i]
    width = n.start - n.prefix
    size = n.end - n.start
    top = (1 << (8 * width)) - 1
    new = w.rng.choice((0, 1, 2, size - 1, size + 1, size + w.rng.randint(2, 64), size * 2, top, top >> 1,
                        w.rng.randrange(top + 1)))
    new = max(0, min(new, top))
    w.buf[n.prefix:n.start] = new.to_bytes(width, "big")
    return f"nal {i} length field {size} -> {new}"


def _m_avcc(w: _Work) -> str | None:
    """Container only: the avcC record's NAL length size and parameter set counts."""
    if w.clip.annexb or w.clip.avcc < 0:
        return None
    a = w.clip.avcc
    which = w.rng.choice(("length_size", "sps_count", "version", "profile"))
    if which == "length_size":
        w.buf[a + 4] = 0xFC | w.rng.randrange(4)
    elif which == "sps_count":
        w.buf[a + 5] = 0xE0 | w.rng.choice((0, 2, 3, 31))
    elif which == "version":
        w.buf[a] = w.rng.choice((0, 2, 0xFF))
    else:
        w.buf[a + 1] = w.rng.choice((66, 77, 88, 100, 110, 122, 244, 0, 255))
    return f"avcC {which}"


def _file_edit(w: _Work, kind: str) -> str | None:
    """Container only: damage anywhere in the file (boxes, EBML elements, sample data)."""
    if w.clip.annexb:
        return None

    def edit(buf: bytearray) -> str:
        pos = w.rng.randrange(len(buf))
        if kind == "insert":
            k = w.rng.choice((1, 4, 16, 100))
            buf[pos:pos] = w.rng.randbytes(k)
            return f"insert {k} bytes at file offset {pos}"
        if kind == "delete":
            k = w.rng.choice((1, 4, 16, 100))
            del buf[pos:pos + k]
            return f"delete {k} bytes at file offset {pos}"
        buf[pos] ^= 1 << w.rng.randrange(8)
        return f"bitflip at file offset {pos}"
    w.file_ops.append(edit)
    return f"file {kind}"


MUTATIONS: dict[str, tuple[float, Callable[[_Work], str | None]]] = {
    # name: (weight, mutation); each returns what it did, or None where it does not apply
    "bitflip": (6, _m_bitflip),
    "byteset": (2, _m_byteset),
    "insert": (1.5, _m_insert),
    "delete": (1.5, _m_delete),
    "truncate_nal": (1.5, _m_truncate_nal),
    "truncate_stream": (1, _m_truncate_stream),
    "splice": (2, _m_splice),
    "transplant": (1, _m_transplant),
    "ps_swap": (1.5, _m_ps_swap),
    "sps_field": (1.5, lambda w: _m_field(w, (SPS,))),
    "pps_field": (1.5, lambda w: _m_field(w, (PPS,))),
    "slice_header_field": (2, lambda w: _m_field(w, (SLICE, IDR))),
    "nal_header": (1, _m_nal_header),
    "nal_dup": (1, _m_nal_dup),
    "nal_drop": (1, _m_nal_drop),
    "nal_swap": (0.7, _m_nal_swap),
    "nal_length": (1.5, _m_nal_length),
    "avcc": (0.5, _m_avcc),
    "file_bitflip": (0.5, lambda w: _file_edit(w, "bitflip")),
    "file_insert": (0.3, lambda w: _file_edit(w, "insert")),
    "file_delete": (0.3, lambda w: _file_edit(w, "delete")),
}
_NAMES = list(MUTATIONS)
_WEIGHTS = [MUTATIONS[n][0] for n in _NAMES]


@dataclass
class Case:
    number: int
    clip: str
    data: bytes
    suffix: str
    mutations: list[str]    # mutation names, in the order applied
    description: list[str]  # what each did


def make_case(corpus: list[Clip], seed: int, number: int) -> Case:
    """Case `number` of campaign `seed`: a clip and one to four mutations (deterministic)."""
    rng = random.Random(f"vccv-fuzz/{seed}/{number}")
    clip = corpus[rng.randrange(len(corpus))]
    w = _Work(clip, corpus, rng)
    wanted = 1 if rng.random() < 0.6 else rng.randint(2, 4)
    names: list[str] = []
    descriptions: list[str] = []
    file_edits: list[tuple[int, Callable[[bytearray], str]]] = []
    tries = 0
    while len(names) < wanted and tries < 20:
        tries += 1
        name = rng.choices(_NAMES, _WEIGHTS)[0]
        scheduled = len(w.file_ops)
        done = MUTATIONS[name][1](w)
        if done is not None:
            names.append(name)
            descriptions.append(done)
            file_edits += [(len(descriptions) - 1, op) for op in w.file_ops[scheduled:]]
    data = bytearray(w.build())
    for index, op in file_edits:  # length-changing edits of the whole file come last
        if len(data) > 1:
            descriptions[index] = op(data)
    return Case(number, clip.name, bytes(data), clip.suffix if not clip.annexb else ".h264", names, descriptions)
