"""Reads the `inline constexpr` arrays and integer constants of csrc's table headers, so tests
can check the transcribed tables without building anything."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

CSRC = Path(__file__).resolve().parents[1] / "csrc"

_DECL = re.compile(r"inline\s+constexpr\s+(\w+)\s+(\w+)\s*((?:\[\s*\d+\s*\])+)\s*=\s*\{")
_CONST = re.compile(r"inline\s+constexpr\s+int\s+(\w+)\s*=\s*(-?\d+)\s*;")
_TOKEN = re.compile(r"\{|\}|,|[^\s{},]+")


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _parse_braces(tokens: list[str], pos: int) -> tuple[list, int]:
    """One brace group starting at tokens[pos] == '{' as nested lists; returns (list, next pos)."""
    assert tokens[pos] == "{"
    pos += 1
    items: list = []
    while tokens[pos] != "}":
        if tokens[pos] == "{":
            sub, pos = _parse_braces(tokens, pos)
            items.append(sub)
        elif tokens[pos] == ",":
            pos += 1
        else:
            items.append(int(tokens[pos], 0))
            pos += 1
    return items, pos + 1


def shape_of(value) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    inner = {shape_of(v) for v in value}
    assert len(inner) == 1, f"ragged initializer: {inner}"
    return (len(value), *inner.pop())


def flatten(value) -> list[int]:
    return [x for v in value for x in flatten(v)] if isinstance(value, list) else [value]


@cache
def c_arrays(header: str) -> dict[str, tuple[str, tuple[int, ...], list]]:
    """name -> (C type, declared shape, nested initializer values) for csrc/<header>."""
    text = strip_comments((CSRC / header).read_text())
    out = {}
    for m in _DECL.finditer(text):
        ctype, name, dims = m.group(1), m.group(2), m.group(3)
        shape = tuple(int(d) for d in re.findall(r"\d+", dims))
        value, _ = _parse_braces(_TOKEN.findall(text[m.end() - 1:]), 0)
        assert name not in out, f"{name} declared twice"
        out[name] = (ctype, shape, value)
    return out


@cache
def c_int_constants(header: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in _CONST.finditer(strip_comments((CSRC / header).read_text()))}
