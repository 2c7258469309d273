"""Caption metrics as the paper reports them (section IV-A): BLEU@1-4, METEOR, ROUGE-L and CIDEr
of the Microsoft COCO caption toolkit (pycocoevalcap), as percentages.

    scores = score_captions({"video0": ["a man is singing", ...]}, {"video0": "a man sings"})
    print(format_table({"RAE (full)": scores}))

As in the toolkit, every caption first goes through Stanford's PTBTokenizer (lowercased, then the
punctuation tokens removed), then the scorers run on the tokenised text. PTBTokenizer and METEOR are
Java programs shipped with pycocoevalcap. Without `java` on PATH the captions are tokenised by
`python_tokenize`, which follows PTBTokenizer's rules for ordinary caption text, METEOR is skipped
(absent from the result) and a warning says so once. The METEOR process loads a large paraphrase
table (several seconds), so it is started once per process and reused.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["METRICS", "TABLE_COLUMNS", "format_table", "java_available", "ptb_tokenize", "python_tokenize",
           "score_captions"]

# Keys of `score_captions`' result.
METRICS: tuple[str, ...] = ("BLEU@1", "BLEU@2", "BLEU@3", "BLEU@4", "METEOR", "ROUGE-L", "CIDEr")
# Column order of the paper's Tables I and II.
TABLE_COLUMNS: tuple[str, ...] = ("BLEU@1", "BLEU@2", "BLEU@3", "BLEU@4", "METEOR", "CIDEr", "ROUGE-L")
JAVA_MISSING = "METEOR needs Java 8+ on PATH; not found, METEOR skipped; captions tokenised in Python"

# PTBTokenizer's tokens that the COCO toolkit drops (pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS).
_PUNCTUATION = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                          "--", "...", ";"])
_warned_java = False


def java_available() -> bool:
    return shutil.which("java") is not None


def _require_pycocoevalcap() -> Path:
    try:
        import pycocoevalcap.tokenizer.ptbtokenizer as ptb
    except ImportError:
        raise ImportError("caption metrics need pycocoevalcap: pip install pycocoevalcap "
                          "(or pip install 'vccv_gpu[eval]')") from None
    return Path(ptb.__file__).parent


# ---------------------------------------------------------------------------------------------
# Tokenisation


def ptb_tokenize(captions: Sequence[str]) -> list[str]:
    """The COCO toolkit's tokenisation: Stanford PTBTokenizer (-preserveLines -lowerCase), then the
    punctuation tokens removed. Same as `pycocoevalcap.tokenizer.ptbtokenizer.PTBTokenizer`, but one
    Java run for all captions and its temporary file in the system temp folder (the toolkit writes
    into its own package folder, which may be read-only)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import STANFORD_CORENLP_3_4_1_JAR

    jar = _require_pycocoevalcap() / STANFORD_CORENLP_3_4_1_JAR
    text = "\n".join(caption.replace("\n", " ").replace("\r", " ") for caption in captions)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as handle:
        handle.write(text)
    try:
        result = subprocess.run(
            ["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase",
             handle.name], capture_output=True, check=False)
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        raise RuntimeError(f"PTBTokenizer ({jar}) failed with exit code {result.returncode}: "
                           f"{result.stderr.decode(errors='replace')[-2000:]}")
    lines = result.stdout.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the output
    if len(lines) > len(captions):
        raise RuntimeError(f"PTBTokenizer returned {len(lines)} lines for {len(captions)} captions")
    lines += [""] * (len(captions) - len(lines))  # trailing empty captions may give no line at all
    return [" ".join(w for w in line.rstrip().split(" ") if w and w not in _PUNCTUATION) for line in lines]


# Python stand-in for PTBTokenizer on caption text: the same splits for clitics, quotes, brackets and
# sentence punctuation, then the same lowercasing and punctuation removal.
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_SPLIT_WORDS = {"cannot": "can not", "gonna": "gon na", "gotta": "got ta", "wanna": "wan na", "lemme": "lem me",
                "gimme": "gim me"}
_TOKEN = re.compile(r"""
    (?:[^\W_]\.){2,}(?![^\W_])        # acronyms with dots: u.s. p.m.
  | (?:mr|mrs|ms|dr|jr|sr|vs)\.(?!\w) # titles keep their period
  | \d+(?:[.,:]\d+)+                   # numbers: 3.5 1,000 5:30
  | [^\W_]+(?:[-'&/][^\W_]+)*          # words, hyphenated words, rock'n'roll, a/b
  | \.\.\.|--|``|''|\S                 # punctuation, one token each
""", re.VERBOSE)
_TYPOGRAPHIC = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- ",
                              "\u2013": " -- "})
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")


def _python_tokens(caption: str) -> list[str]:
    tokens: list[str] = []
    text = caption.lower().translate(_TYPOGRAPHIC)
    for token in _TOKEN.findall(text):
        if token in _SPLIT_WORDS:
            tokens.extend(_SPLIT_WORDS[token].split())
            continue
        clitic = _CLITIC.match(token)
        if clitic:
            tokens.extend((clitic.group(1), clitic.group(2)))
        elif token in _BRACKETS:
            tokens.append(_BRACKETS[token])  # PTBTokenizer's -LRB- etc., lowercased: the toolkit keeps them
        elif token == '"':
            tokens.append("''")  # PTBTokenizer's `` / '' quotes, dropped below
        else:
            tokens.append(token)
    return tokens


def python_tokenize(caption: str) -> str:
    """The caption as `ptb_tokenize` gives it, without Java: lowercase, split off clitics ("man's" ->
    "man 's", "don't" -> "do n't"), punctuation and brackets, then drop the toolkit's punctuation
    tokens. Agrees with PTBTokenizer on ordinary caption text, not on every corner case."""
    return " ".join(t for t in _python_tokens(caption) if t not in _PUNCTUATION)


# ---------------------------------------------------------------------------------------------
# METEOR: one Java process per Python process

_meteor_lock = threading.Lock()
_meteor: Any = None


def _meteor_scorer() -> Any:
    global _meteor
    with _meteor_lock:
        if _meteor is None or _meteor.meteor_p.poll() is not None:
            from pycocoevalcap.meteor.meteor import Meteor

            _meteor = Meteor()
        return _meteor


@atexit.register
def _close_meteor() -> None:
    global _meteor
    if _meteor is not None:
        process = _meteor.meteor_p
        try:
            process.stdin.close()
        except OSError:
            pass
        process.kill()
        process.wait()
        _meteor = None


def _meteor_score(references: dict[str, list[str]], predictions: dict[str, list[str]]) -> float:
    scorer = _meteor_scorer()
    try:
        score, _ = scorer.compute_score(references, predictions)
    except (ValueError, OSError) as err:  # the Java process died or answered garbage: start afresh next time
        process = scorer.meteor_p
        process.kill()
        process.wait()
        stderr = process.stderr.read() if process.stderr is not None else b""
        if scorer.lock.locked():
            scorer.lock.release()
        raise RuntimeError(f"METEOR failed ({err}): {stderr.decode(errors='replace')[-2000:]}") from None
    return float(score)


# ---------------------------------------------------------------------------------------------
# Scores


def score_captions(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str], *,
                   meteor: bool = True) -> dict[str, float]:
    """BLEU@1-4, METEOR, ROUGE-L and CIDEr (percentages) of one predicted caption per video against
    that video's reference captions, computed by pycocoevalcap after PTB tokenisation.

    Every video of `predictions` must have at least one reference; references of other videos are
    ignored (so a whole dataset's references can be passed). METEOR is absent from the result when
    `meteor` is False or Java is missing (a warning says so, once per process).
    """
    _require_pycocoevalcap()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    global _warned_java
    if not predictions:
        raise ValueError("no predictions to score")
    ids = list(predictions)
    for video_id in ids:
        refs = references.get(video_id)
        if not refs:
            raise ValueError(f"video {video_id!r} has a prediction but no reference captions")
        if not isinstance(predictions[video_id], str):
            raise ValueError(f"prediction for {video_id!r} must be a string, got {predictions[video_id]!r}")
    flat = [caption for video_id in ids for caption in references[video_id]] + [predictions[v] for v in ids]
    has_java = java_available()
    if has_java:
        tokenized = ptb_tokenize(flat)
    else:
        if not _warned_java:
            warnings.warn(JAVA_MISSING, RuntimeWarning, stacklevel=2)
            _warned_java = True
        tokenized = [python_tokenize(caption) for caption in flat]
    gts: dict[str, list[str]] = {}
    position = 0
    for video_id in ids:
        count = len(references[video_id])
        gts[video_id] = tokenized[position:position + count]
        position += count
    res = {video_id: [tokenized[position + i]] for i, video_id in enumerate(ids)}

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU@{n}": 100.0 * float(bleu[n - 1]) for n in range(1, 5)}
    if meteor and has_java:
        scores["METEOR"] = 100.0 * _meteor_score(gts, res)
    scores["ROUGE-L"] = 100.0 * float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = 100.0 * float(Cider().compute_score(gts, res)[0])
    return {name: scores[name] for name in METRICS if name in scores}


def format_table(rows: Mapping[str, Mapping[str, float | None]]) -> str:
    """The paper's table layout: Model | BLEU@1 .. BLEU@4 | METEOR | CIDEr | ROUGE-L, one decimal;
    a missing metric is shown as '-'."""
    header = ["Model", *TABLE_COLUMNS]
    body = [[str(name), *(f"{row[c]:.1f}" if row.get(c) is not None else "-" for c in TABLE_COLUMNS)]
            for name, row in rows.items()]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(cells) for cells in body)])
