"""Caption a dataset split from stored features with a trained run and score it (paper section IV).

    python -m vccv_gpu.evaluate runs/rae --split test
    python -m vccv_gpu.evaluate runs/rae --data test_videodatainfo.json --video-dir videos --features feats

The run's best checkpoint (`checkpoint.resolve_checkpoint`) says which annotation files and which
feature store it was trained on; `--data`, `--features` etc. override them. Captions come from beam
search (beam 5, as in the paper), are scored against every reference caption of their video with
the COCO toolkit (`metrics.score_captions`) and written to RUN/predictions-<split>.json as
[{"video_id", "video", "caption"}, ...]. In-process (benchmarks): `evaluate_run(run, split, beam)`.

Training also uses `caption_videos` (batches of stored features captioned) for its validation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from vccv_gpu.data import DATA_FORMATS, DataFormatError, Vocabulary, load_samples
from vccv_gpu.feature_dataset import StoredFeatures, find_in_store, warn_missing
from vccv_gpu.kernels.backend import BACKENDS
from vccv_gpu.model import VCCV
from vccv_gpu.runtime import atomic_write, plain_warnings, resolve_device

__all__ = ["VARIANT_LABELS", "caption_videos", "evaluate_run", "main", "plain_warnings"]

# Row names of the paper's Tables I and II.
VARIANT_LABELS: dict[str, str] = {"iframe": "I-frame", "rae_no_gate_no_residual": "RAE w/o gate and residuals",
                                  "rae_no_gate": "RAE w/o gate", "rae": "RAE(full)"}


def _stack(items: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    return torch.stack([v for v, _ in items]), torch.stack([a for _, a in items])


def caption_videos(model: VCCV, vocab: Vocabulary, store_root: str | os.PathLike[str], keys: Sequence[str], *,
                   beam: int = 5, batch_size: int = 16, device: torch.device | str = "cpu", workers: int = 0,
                   progress: bool = True, desc: str = "captioning") -> list[str]:
    """The best beam-search caption of each stored video (in the order of `keys`), as text."""
    from tqdm import tqdm

    device = torch.device(device)
    loader = DataLoader(StoredFeatures(store_root, keys), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=_stack, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(0))  # leaves the global RNG untouched
    captions: list[str] = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    with tqdm(total=len(keys), desc=desc, unit="video", disable=not progress, leave=False) as bar:
        for v_i, a_r in loader:
            with autocast:
                results = model.generate(v_i.to(device, non_blocking=True), a_r.to(device, non_blocking=True),
                                         beam_size=beam)
            captions.extend(vocab.decode(beams[0].tokens) if beams else "" for beams in results)
            bar.update(len(results))
    return captions


# ---------------------------------------------------------------------------------------------
# Evaluating a run


def evaluate_run(run: str | os.PathLike[str], split: str = "test", beam: int = 5, *,
                 data: Sequence[str | os.PathLike[str]] | None = None, data_format: str | None = None,
                 video_dir: str | os.PathLike[str] | None = None, features: str | os.PathLike[str] | None = None,
                 out: str | os.PathLike[str] | None = None, device: str = "auto", batch_size: int = 16,
                 workers: int = 2, meteor: bool = True, progress: bool = True, verbose: bool = True,
                 backend: str | None = None) -> dict[str, float]:
    """Captions of `split` by the run's best checkpoint, scored; writes the predictions JSON (default
    RUN/predictions-<split>.json) and, when verbose, prints the table. Data and features default to
    those the run was trained on."""
    from vccv_gpu.checkpoint import load_checkpoint, resolve_checkpoint
    from vccv_gpu.features import FeatureStore
    from vccv_gpu.metrics import format_table, score_captions

    checkpoint_dir = resolve_checkpoint(run)
    torch_device = resolve_device(device)
    checkpoint = load_checkpoint(checkpoint_dir, device=torch_device, backend=backend)
    info = checkpoint.info
    data = list(data) if data else list(info.get("data") or [])
    if not data:
        raise ValueError(f"{checkpoint_dir}: the checkpoint does not say which data it was trained on; give --data")
    data_format = data_format or info.get("data_format") or "auto"
    video_dir = video_dir if video_dir is not None else info.get("video_dir")
    features = features if features is not None else info.get("features")
    if not features:
        raise ValueError(f"{checkpoint_dir}: the checkpoint does not name its feature store; give --features")
    store = FeatureStore(features)
    model_config = checkpoint.model.config
    config = store.config
    if (config.d_i, config.d_r, tuple(config.grid), config.num_segments) != (
            model_config.d_i, model_config.d_r, tuple(model_config.grid), model_config.n_frames):
        raise ValueError(f"{features}: features of {config.num_segments}x{config.grid} ({config.d_i}, {config.d_r}) "
                         f"do not fit the model ({model_config.n_frames}x{model_config.grid}, "
                         f"({model_config.d_i}, {model_config.d_r}))")
    samples = [s for s in load_samples(data, data_format, video_dir) if s.split == split]
    if not samples:
        raise ValueError(f"no {split} videos in {', '.join(map(str, data))}")
    videos, missing = find_in_store(samples, store.keys())
    warn_missing(missing, len(samples), features, split)
    videos = [v for v in videos if v.captions]
    if not videos:
        raise ValueError(f"none of the {len(samples)} {split} videos has features and captions in {features}")
    predictions = caption_videos(checkpoint.model, checkpoint.vocab, features, [v.key for v in videos], beam=beam,
                                 batch_size=batch_size, device=torch_device, workers=workers, progress=progress,
                                 desc=f"captioning {split}")
    scores = score_captions({v.video_id: list(v.captions) for v in videos},
                            {v.video_id: caption for v, caption in zip(videos, predictions)}, meteor=meteor)
    run_dir = Path(run) if (Path(run) / "best").is_dir() else checkpoint_dir.parent  # never inside a checkpoint
    out_path = Path(out) if out is not None else run_dir / f"predictions-{split}.json"
    rows = [{"video_id": v.video_id, "video": v.path, "caption": caption} for v, caption in zip(videos, predictions)]
    atomic_write(out_path, lambda f: f.write((json.dumps(rows, indent=1, ensure_ascii=False) + "\n").encode()))
    if verbose:
        label = VARIANT_LABELS.get(model_config.variant, model_config.variant)
        print(f"{split}: {len(videos)} videos, beam {beam}, checkpoint {checkpoint_dir}")
        print(format_table({label: scores}))
        print(f"predictions: {out_path}")
    return scores


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vccv_gpu.evaluate",
        description="Caption a split of a dataset from stored features with a trained run's best checkpoint, "
                    "print BLEU@1-4, METEOR, CIDEr and ROUGE-L (COCO toolkit, percent; METEOR needs Java) "
                    "and write the captions as JSON.")
    p.add_argument("run", help="training run folder (its best/ checkpoint is used) or a checkpoint folder")
    p.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                   help="split to caption (default test; 'all' for own data without splits)")
    p.add_argument("--beam", type=int, default=5, help="beam size (default 5, as in the paper)")
    p.add_argument("--data", nargs="+", metavar="ANNOT", help="annotation file(s) (default: the run's)")
    p.add_argument("--data-format", choices=DATA_FORMATS,
                   help="format of --data (default: the run's, or auto from the file names)")
    p.add_argument("--video-dir", metavar="D", help="folder of the dataset's videos (default: the run's)")
    p.add_argument("--features", metavar="STORE", help="feature store folder (default: the run's)")
    p.add_argument("--out", metavar="JSON", help="predictions file (default RUN/predictions-<split>.json)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:K (default auto)")
    p.add_argument("--batch", type=int, default=16, help="videos per beam search batch (default 16)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes reading features (default 2)")
    p.add_argument("--backend", choices=BACKENDS,
                   help="how the encoder runs (default: $VCCV_BACKEND, else auto)")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (its Java start takes a few seconds)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    plain_warnings()
    if args.beam < 1 or args.batch < 1 or args.workers < 0:
        parser.error("--beam and --batch must be >= 1, --workers >= 0")
    try:
        evaluate_run(args.run, args.split, args.beam, data=args.data, data_format=args.data_format,
                     video_dir=args.video_dir, features=args.features, out=args.out, device=args.device,
                     batch_size=args.batch, workers=args.workers, meteor=not args.no_meteor,
                     progress=not args.no_progress, backend=args.backend)
    except (FileNotFoundError, ValueError, DataFormatError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
