"""Readers for the caption datasets, all returning one `Sample` per video.

Formats (the official files, read as shipped):

* MSR-VTT (`train_val_videodatainfo.json`, `test_videodatainfo.json`): a JSON object with
  "videos" (each {"video_id": "video0", "split": "train" | "validate" | "test", "id", "url",
  "start time", "end time", "category"}) and "sentences" (each {"caption", "video_id", "sen_id"});
  "info" and other keys are ignored. The official split is by the "split" field: 6513 train,
  497 validate, 2990 test videos (`MSRVTT_OFFICIAL_SPLIT`). Captions of a video are ordered by
  "sen_id". Video path: `<video_dir>/<video_id>.mp4`.
* Charades (`Charades_v1_train.csv`, `Charades_v1_test.csv`): CSV with the header
  id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length
  (fields with commas or newlines are double-quoted, standard CSV quoting). Like `objects` and
  `actions`, the `descriptions` column is a ';'-separated list: each item is one annotator's
  description of the whole video and becomes ONE caption, kept whole even when it has several
  sentences (splitting it would give captions that describe only part of the video). A video with
  an empty `descriptions` field gets an empty caption list. The split comes from the file name
  (`..._train.csv` -> "train", `..._test.csv` -> "test"). Video path: `<video_dir>/<id>.mp4`.
* Own data, CSV: header with `video` and `caption` columns (optional `split`), one caption per
  row, several rows per video allowed (grouped in the order of first appearance).
* Own data, JSONL: one JSON object per line, {"video": ..., "caption": ...} ("caption" may also
  be a list of strings; optional "split"); blank lines are skipped.
  For own data, relative video paths are resolved against the annotation file's folder (or
  `video_dir` when given), absolute paths are kept; the video id is the `video` value as written.
  Without a split column/field every sample gets the requested split (or "all").

Splits are normalised to "train", "val", "test" (MSR-VTT's "validate" becomes "val"). Malformed
input raises `DataFormatError` naming the file and the line or field.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Union

PathArg = Union[str, "PathLike[str]"]

KINDS: tuple[str, ...] = ("msrvtt", "charades", "csv", "jsonl")
DATA_FORMATS: tuple[str, ...] = ("auto", *KINDS)  # what --data-format accepts
SPLITS: tuple[str, ...] = ("train", "val", "test")
MSRVTT_OFFICIAL_SPLIT: dict[str, int] = {"train": 6513, "val": 497, "test": 2990}
CHARADES_COLUMNS: tuple[str, ...] = (
    "id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions",
    "actions", "length",
)
_SPLIT_ALIASES = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}


class DataFormatError(ValueError):
    """Malformed annotation file; the message names the file and the line or field."""


@dataclass
class Sample:
    """One video and all of its captions.

    video_id: the dataset's id ("video0" for MSR-VTT, "46GP8" for Charades, the `video` value for
    own data); video_path: where the video file is expected (None when no video_dir was given for
    MSR-VTT/Charades); captions: the raw caption strings (not tokenised); split: "train", "val",
    "test" (or the requested split / "all" for own data without split information).
    """

    video_id: str
    video_path: Path | None
    captions: list[str] = field(default_factory=list)
    split: str = "all"


def normalize_split(split: str) -> str:
    """'train' / 'val' / 'test' for a split name or alias ('validate', 'validation')."""
    try:
        return _SPLIT_ALIASES[split.strip().lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)} (or 'validate')") from None


def split_counts(samples: Iterable[Sample]) -> dict[str, int]:
    """Number of videos per split (compare with `MSRVTT_OFFICIAL_SPLIT` for the full MSR-VTT)."""
    counts: dict[str, int] = {}
    for sample in samples:
        counts[sample.split] = counts.get(sample.split, 0) + 1
    return counts


# ---------------------------------------------------------------------------------------------
# MSR-VTT


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not UTF-8 text ({err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: line {err.lineno} column {err.colno}: invalid JSON: {err.msg}") from None


def _require_str(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(f"{path}: {where}: expected a non-empty string, got {value!r}")
    return value


def read_msrvtt(path: PathArg, video_dir: PathArg | None = None) -> list[Sample]:
    """Videos of one MSR-VTT annotation file (`train_val_videodatainfo.json` or
    `test_videodatainfo.json`), in file order, with captions ordered by sen_id."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: top level must be a JSON object with 'videos' and 'sentences'")
    for key in ("videos", "sentences"):
        if not isinstance(data.get(key), list):
            raise DataFormatError(f"{path}: field '{key}': missing or not a list")
    samples: dict[str, Sample] = {}
    for i, video in enumerate(data["videos"]):
        if not isinstance(video, dict):
            raise DataFormatError(f"{path}: videos[{i}]: expected an object, got {video!r}")
        video_id = _require_str(video.get("video_id"), f"videos[{i}].video_id", path)
        raw_split = _require_str(video.get("split"), f"videos[{i}].split", path)
        if raw_split not in ("train", "validate", "test"):
            raise DataFormatError(
                f"{path}: videos[{i}].split: {raw_split!r} is not one of 'train', 'validate', 'test'")
        if video_id in samples:
            raise DataFormatError(f"{path}: videos[{i}].video_id: duplicate video id {video_id!r}")
        video_path = Path(video_dir) / f"{video_id}.mp4" if video_dir is not None else None
        samples[video_id] = Sample(video_id, video_path, [], normalize_split(raw_split))
    keyed: dict[str, list[tuple[float, int, str]]] = {vid: [] for vid in samples}
    for i, sentence in enumerate(data["sentences"]):
        if not isinstance(sentence, dict):
            raise DataFormatError(f"{path}: sentences[{i}]: expected an object, got {sentence!r}")
        video_id = _require_str(sentence.get("video_id"), f"sentences[{i}].video_id", path)
        caption = _require_str(sentence.get("caption"), f"sentences[{i}].caption", path)
        if video_id not in keyed:
            raise DataFormatError(f"{path}: sentences[{i}].video_id: {video_id!r} is not in 'videos'")
        sen_id = sentence.get("sen_id", i)
        if isinstance(sen_id, bool) or not isinstance(sen_id, (int, float)):
            raise DataFormatError(f"{path}: sentences[{i}].sen_id: expected a number, got {sen_id!r}")
        keyed[video_id].append((sen_id, i, caption.strip()))
    for video_id, entries in keyed.items():
        samples[video_id].captions = [caption for _, _, caption in sorted(entries)]
    return list(samples.values())


# ---------------------------------------------------------------------------------------------
# Charades


def _charades_split(path: Path) -> str | None:
    match = re.search(r"_(train|test)\.csv$", path.name, re.IGNORECASE)
    return match.group(1).lower() if match else None


def _csv_rows(path: Path, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """(first line number of the record, row) for each CSV record; checks the header and that
    every record has exactly the header's number of fields."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
        with handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if header is None:
                raise DataFormatError(f"{path}: empty file (expected a header line)")
            missing = [name for name in required if name not in header]
            if missing:
                raise DataFormatError(
                    f"{path}: line 1: header lacks column(s) {', '.join(missing)} (has {', '.join(header)})")
            line = reader.line_num + 1
            try:
                for row in reader:
                    if None in row:
                        raise DataFormatError(f"{path}: line {line}: more fields than the header's {len(header)}")
                    if any(value is None for value in row.values()):
                        raise DataFormatError(f"{path}: line {line}: fewer fields than the header's {len(header)}")
                    yield line, row
                    line = reader.line_num + 1
            except csv.Error as err:
                raise DataFormatError(f"{path}: line {reader.line_num}: malformed CSV: {err}") from None
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not UTF-8 text ({err})") from None


def read_charades(path: PathArg, video_dir: PathArg | None = None, split: str | None = None) -> list[Sample]:
    """Videos of one Charades CSV (`Charades_v1_train.csv` / `Charades_v1_test.csv`); each
    ';'-separated item of `descriptions` is one caption. `split` is taken from the file name;
    pass it for a file named otherwise."""
    path = Path(path)
    file_split = _charades_split(path)
    if file_split is None and split is None:
        raise DataFormatError(f"{path}: cannot tell the split from the file name (expected *_train.csv or "
                              "*_test.csv); pass split=")
    sample_split = file_split if file_split is not None else normalize_split(split)  # type: ignore[arg-type]
    samples: dict[str, Sample] = {}
    for line, row in _csv_rows(path, CHARADES_COLUMNS):
        video_id = row["id"].strip()
        if not video_id:
            raise DataFormatError(f"{path}: line {line}: field 'id' is empty")
        if video_id in samples:
            raise DataFormatError(f"{path}: line {line}: field 'id': duplicate video id {video_id!r}")
        captions = [part.strip() for part in row["descriptions"].split(";") if part.strip()]
        video_path = Path(video_dir) / f"{video_id}.mp4" if video_dir is not None else None
        samples[video_id] = Sample(video_id, video_path, captions, sample_split)
    return list(samples.values())


# ---------------------------------------------------------------------------------------------
# Own data: CSV and JSONL


def _own_video_path(video: str, base: Path) -> Path:
    candidate = Path(video)
    return candidate if candidate.is_absolute() else base / candidate


def _add_own(samples: dict[str, Sample], video: str, captions: list[str], split: str, base: Path,
             where: str) -> None:
    sample = samples.get(video)
    if sample is None:
        samples[video] = Sample(video, _own_video_path(video, base), list(captions), split)
    elif sample.split != split:
        raise DataFormatError(f"{where}: video {video!r} is in split {split!r} here but {sample.split!r} earlier")
    else:
        sample.captions.extend(captions)


def read_caption_csv(path: PathArg, video_dir: PathArg | None = None, split: str | None = None) -> list[Sample]:
    """Own data as CSV: header `video,caption` (optional `split`), one caption per row."""
    path = Path(path)
    base = Path(video_dir) if video_dir is not None else path.parent
    default_split = normalize_split(split) if split is not None else "all"
    samples: dict[str, Sample] = {}
    for line, row in _csv_rows(path, ("video", "caption")):
        video = row["video"].strip()
        caption = row["caption"].strip()
        if not video:
            raise DataFormatError(f"{path}: line {line}: field 'video' is empty")
        if not caption:
            raise DataFormatError(f"{path}: line {line}: field 'caption' is empty")
        row_split = default_split
        if row.get("split", "").strip():
            try:
                row_split = normalize_split(row["split"])
            except ValueError as err:
                raise DataFormatError(f"{path}: line {line}: field 'split': {err}") from None
        _add_own(samples, video, [caption], row_split, base, f"{path}: line {line}")
    return list(samples.values())


def read_caption_jsonl(path: PathArg, video_dir: PathArg | None = None, split: str | None = None) -> list[Sample]:
    """Own data as JSONL: one {"video": ..., "caption": ...} object per line ("caption" may be a
    list of strings; optional "split"); blank lines are skipped."""
    path = Path(path)
    base = Path(video_dir) if video_dir is not None else path.parent
    default_split = normalize_split(split) if split is not None else "all"
    samples: dict[str, Sample] = {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not UTF-8 text ({err})") from None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{path}: line {number}"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{where}: invalid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
        video = record.get("video")
        if not isinstance(video, str) or not video.strip():
            raise DataFormatError(f"{where}: field 'video': expected a non-empty string, got {video!r}")
        raw = record.get("caption")
        captions = raw if isinstance(raw, list) else [raw]
        if not captions or not all(isinstance(c, str) and c.strip() for c in captions):
            raise DataFormatError(f"{where}: field 'caption': expected a non-empty string or list of them, "
                                  f"got {raw!r}")
        row_split = default_split
        if record.get("split") is not None:
            try:
                row_split = normalize_split(record["split"])
            except ValueError as err:
                raise DataFormatError(f"{where}: field 'split': {err}") from None
        _add_own(samples, video.strip(), [c.strip() for c in captions], row_split, base, where)
    return list(samples.values())


# ---------------------------------------------------------------------------------------------
# Dispatch


def detect_format(annotations: Sequence[PathArg], data_format: str = "auto") -> str:
    """The dataset kind of the annotation files: `data_format` itself, or for "auto" from the
    files (.json: msrvtt, .jsonl: jsonl, .csv: charades when the header has `descriptions`, else csv)."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data format must be one of {', '.join(DATA_FORMATS)}, got {data_format!r}")
    if data_format != "auto":
        return data_format
    kinds = set()
    for annotation in annotations:
        path = Path(annotation)
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            kinds.add("jsonl")
        elif suffix == ".json":
            kinds.add("msrvtt")
        elif suffix == ".csv":
            try:
                with open(path, encoding="utf-8-sig", errors="replace") as f:
                    header = f.readline().strip().split(",")
            except FileNotFoundError:
                raise FileNotFoundError(f"annotation file not found: {path}") from None
            kinds.add("charades" if "descriptions" in header else "csv")
        else:
            raise ValueError(f"{path}: cannot tell the dataset format from the name; give --data-format")
    if len(kinds) != 1:
        raise ValueError(f"the annotation files are of different formats ({', '.join(sorted(kinds))}); "
                         "give files of one dataset")
    return kinds.pop()


def load_dataset(kind: str, annotations: PathArg | Sequence[PathArg], video_dir: PathArg | None = None,
                 split: str | None = None) -> list[Sample]:
    """Samples of one dataset, optionally only one split.

    kind: "msrvtt", "charades", "csv" or "jsonl"; annotations: one annotation file or several
    (e.g. both MSR-VTT JSON files, or both Charades CSVs), read in order; video_dir: folder of the
    videos (own data: overrides the annotation file's folder as base for relative paths);
    split: "train", "val" ("validate"), "test" or None for all. A video id appearing in two of the
    given files is an error.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}: expected one of {', '.join(KINDS)}")
    wanted = normalize_split(split) if split is not None else None
    paths = [annotations] if isinstance(annotations, (str, PathLike)) else list(annotations)
    if not paths:
        raise ValueError("no annotation files given")
    result: list[Sample] = []
    seen: dict[str, Path] = {}
    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            raise FileNotFoundError(f"annotation file not found: {path}")
        if kind == "msrvtt":
            samples = read_msrvtt(path, video_dir)
        elif kind == "charades":
            samples = read_charades(path, video_dir, split=wanted)
        elif kind == "csv":
            samples = read_caption_csv(path, video_dir, split=wanted)
        else:
            samples = read_caption_jsonl(path, video_dir, split=wanted)
        for sample in samples:
            if sample.video_id in seen:
                raise DataFormatError(f"{path}: video {sample.video_id!r} is also in {seen[sample.video_id]}")
            seen[sample.video_id] = path
        result.extend(s for s in samples if wanted is None or s.split == wanted)
    return result


def load_samples(annotations: Sequence[PathArg], data_format: str = "auto",
                 video_dir: PathArg | None = None) -> list[Sample]:
    """Every video of the annotation files (all splits) with its captions, the format detected
    (`detect_format`) unless given."""
    return load_dataset(detect_format(annotations, data_format), [Path(a) for a in annotations], video_dir=video_dir)
