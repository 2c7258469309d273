"""Caption vocabulary (paper section IV-A): lowercase, tokenise, words seen fewer than 3 times
in the training captions become <unk>, captions are cut at 50 words.

Tokeniser (`tokenize`): lowercase the text, turn typographic apostrophes (’ ‘) into ', then take
the maximal runs of letters/digits (Unicode-aware, '_' excluded), where an apostrophe between two
such runs stays inside the word ("man's", "don't"); everything else (spaces, punctuation,
hyphens, leading/trailing apostrophes) separates tokens and is dropped. E.g.
"A man's car—it's RED!" -> ["a", "man's", "car", "it's", "red"].

Ids: the special tokens of `vccv_gpu.model.tokens` (<pad>=0, <bos>=1, <eos>=2, <unk>=3), then the
kept words from 4 on, ordered by count (most frequent first) then alphabetically, so the same
captions always give the same vocabulary whatever their order.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Union

import torch

from ..model.tokens import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

PathArg = Union[str, "PathLike[str]"]

MIN_WORD_COUNT: int = 3
MAX_CAPTION_TOKENS: int = 50
FORMAT = "vccv_gpu.vocabulary"
FORMAT_VERSION = 1

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def tokenize(caption: str) -> list[str]:
    """Lowercased word tokens of a caption (see the module docstring for the rules)."""
    return _WORD.findall(caption.lower().translate(_APOSTROPHES))


class Vocabulary:
    """Word <-> id mapping with the special tokens at ids 0..3.

    `words[i]` is the token of id i; `counts` holds the training counts of the kept words.
    """

    def __init__(self, words: Sequence[str], counts: dict[str, int] | None = None,
                 min_count: int = MIN_WORD_COUNT) -> None:
        words = list(words)
        if tuple(words[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"vocabulary must start with {SPECIAL_TOKENS}, got {words[:len(SPECIAL_TOKENS)]}")
        if len(set(words)) != len(words):
            duplicates = sorted({w for w in words if words.count(w) > 1})
            raise ValueError(f"vocabulary has duplicate words: {duplicates[:10]}")
        self.words: list[str] = words
        self.index: dict[str, int] = {word: i for i, word in enumerate(words)}
        self.counts: dict[str, int] = dict(counts or {})
        self.min_count = min_count

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = MIN_WORD_COUNT) -> Vocabulary:
        """Vocabulary of the words seen at least `min_count` times in `captions` (the training
        captions), ordered by count (descending) then word."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counter: Counter[str] = Counter()
        for caption in captions:
            counter.update(tokenize(caption))
        for special in SPECIAL_TOKENS:  # cannot occur (tokens have no '<'), but be explicit
            counter.pop(special, None)
        kept = sorted((w for w, c in counter.items() if c >= min_count), key=lambda w: (-counter[w], w))
        return cls(list(SPECIAL_TOKENS) + kept, {w: counter[w] for w in kept}, min_count)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (self.words, self.counts, self.min_count) == (
            other.words, other.counts, other.min_count)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, min_count={self.min_count})"

    def token_id(self, word: str) -> int:
        """Id of a (lowercased) word, UNK when not in the vocabulary."""
        return self.index.get(word, UNK)

    def encode(self, caption: str, max_len: int = MAX_CAPTION_TOKENS) -> list[int]:
        """[BOS, w1 .. wn, EOS] with n <= max_len words (longer captions are cut; the EOS is
        still added, so at most max_len + 2 ids); unknown words map to UNK."""
        if max_len < 0:
            raise ValueError(f"max_len must be >= 0, got {max_len}")
        return [BOS, *(self.token_id(w) for w in tokenize(caption)[:max_len]), EOS]

    def decode(self, ids: Iterable[int], keep_unk: bool = False) -> str:
        """Words of the ids joined by spaces: stops at the first EOS, drops PAD and BOS, and drops
        UNK unless keep_unk (then written '<unk>'). Accepts a list or a 1-D tensor."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        words: list[str] = []
        for raw in ids:
            i = int(raw)
            if i == EOS:
                break
            if i in (PAD, BOS) or (i == UNK and not keep_unk):
                continue
            if not 0 <= i < len(self.words):
                raise ValueError(f"id {i} is outside the vocabulary (size {len(self.words)})")
            words.append(self.words[i])
        return " ".join(words)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (e.g. to store inside a checkpoint)."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "min_count": self.min_count,
                "words": list(self.words), "counts": [self.counts.get(w, 0) for w in self.words]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        """Inverse of `to_dict`; checks the format tag, version and special tokens."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} object")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported vocabulary version {data.get('version')!r} (expected {FORMAT_VERSION})")
        words, counts = data.get("words"), data.get("counts")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError("vocabulary field 'words' must be a list of strings")
        if not isinstance(counts, list) or len(counts) != len(words):
            raise ValueError("vocabulary field 'counts' must be a list as long as 'words'")
        special = set(SPECIAL_TOKENS)
        return cls(words, {w: int(c) for w, c in zip(words, counts) if w not in special},
                   int(data.get("min_count", MIN_WORD_COUNT)))

    def save(self, path: PathArg) -> None:
        """Write the vocabulary as JSON (UTF-8)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: PathArg) -> Vocabulary:
        """Read a vocabulary written by `save`; errors name the file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(data)
        except (json.JSONDecodeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None


def pad_batch(sequences: Sequence[Sequence[int]], pad: int = PAD) -> torch.Tensor:
    """LongTensor [B, T] of the id lists (or 1-D tensors), right-padded with `pad` to the longest (T)."""
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    length = max(len(s) for s in sequences)
    batch = torch.full((len(sequences), length), pad, dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            values = seq if isinstance(seq, torch.Tensor) else list(seq)
            batch[row, :len(seq)] = torch.as_tensor(values, dtype=torch.long)
    return batch
