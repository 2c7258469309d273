"""Caption data: dataset readers (MSR-VTT, Charades, a user's own CSV/JSONL) and the caption
vocabulary (paper section IV-A).

`load_dataset(kind, annotations, video_dir, split)` returns one `Sample` per video with all of
its captions; `Vocabulary.build(captions, min_count=3)` builds the word list, and
`Vocabulary.encode` / `decode` / `pad_batch` turn captions into the id tensors the model takes.
"""

from .datasets import (
    DATA_FORMATS,
    KINDS,
    MSRVTT_OFFICIAL_SPLIT,
    SPLITS,
    DataFormatError,
    Sample,
    detect_format,
    load_dataset,
    load_samples,
    read_caption_csv,
    read_caption_jsonl,
    read_charades,
    read_msrvtt,
    split_counts,
)
from .vocab import MAX_CAPTION_TOKENS, MIN_WORD_COUNT, Vocabulary, pad_batch, tokenize

__all__ = [
    "DATA_FORMATS", "KINDS", "MAX_CAPTION_TOKENS", "MIN_WORD_COUNT", "MSRVTT_OFFICIAL_SPLIT", "SPLITS",
    "DataFormatError", "Sample", "Vocabulary", "detect_format", "load_dataset", "load_samples", "pad_batch",
    "read_caption_csv", "read_caption_jsonl", "read_charades", "read_msrvtt", "split_counts", "tokenize",
]
