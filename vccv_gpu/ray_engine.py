"""Corpus scale on Ray Data: sampling actors on CPUs feed model actors on GPUs, streaming.

    connect()                       # or connect("auto"): the cluster `ray start` set up
    rows = run(paths, SamplingSpec.of(config), CaptionWorker, dict(checkpoint=..., beam=5), EngineOptions())
    for block in rows:   # finished videos, a dict each: "path", "error" ("" if none), "kind",
        ...              # and the model stage's columns

The pipeline (`caption --engine ray`, `extract --engine ray`):

    the video paths, one per block -> SampleClips (actor pool, `sampling_workers` CPUs each running
    `codec.sample_clip`) -> the model stage (actor pool, one actor per GPU, its model loaded once,
    batches of `batch_size` clips formed by Ray Data) -> the driver, which writes the output.

The two stages scale separately, and Ray Data's streaming executor bounds the memory in flight
(back-pressure), not the corpus size. With `sampling_workers` 0 the model actors sample their
clips themselves on their own device (on a GPU: NVDEC and the residual kernels of the GPU front
end). An actor that dies (a crash, a lost node) is restarted and its batch retried on a live
actor (Ray Data's actor pools: max_restarts and max_task_retries -1), so a batch can reach the
driver twice: the writers keep one line per video. A clip that cannot be read is a row whose
"error" names what is wrong; other exceptions fail the run.

Fault injection for the tests: VCCV_RAY_FAULT="STAGE[,STAGE]@DIR" (STAGE: sample or model) makes
one actor of each named stage exit abruptly on its first batch, once per DIR (a marker file there
records it), as a crashed worker would.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FAULT_ENV", "CaptionWorker", "EngineError", "EngineOptions", "ExtractWorker", "SampleClips",
           "SamplingSpec", "add_arguments", "check_arguments", "connect", "import_ray", "options_from", "run"]

FAULT_ENV = "VCCV_RAY_FAULT"
INSTALL_HINT = 'pip install "vccv_gpu[scale]" (from a checkout: pip install -e ".[scale]")'


class EngineError(RuntimeError):
    """The Ray engine cannot run as asked (Ray missing, a cluster without the resources asked for)."""


def import_ray() -> Any:
    """The `ray` module with Ray Data, or EngineError naming the extra that installs it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the engine needs Ray Data, not only Ray Core
    except ImportError as e:
        raise EngineError(f"--engine ray needs Ray Data, which is not installed ({e}): {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class EngineOptions:
    sampling_workers: int = 1         # CPU actors sampling clips; 0: the model actors sample their own
    model_workers: int = 1            # model actors
    gpus_per_model_worker: float = 0  # 0: model actors run on the CPU
    batch_size: int = 8               # clips per model batch

    def cpus_needed(self) -> float:
        return self.sampling_workers + (0 if self.gpus_per_model_worker else self.model_workers)


@dataclass(frozen=True)
class SamplingSpec:
    """The `sample_clip` arguments a model's backbones fix."""

    num_segments: int
    size: int
    residual: str
    keep_aspect: bool

    @classmethod
    def of(cls, config: Any) -> SamplingSpec:
        """From a backbones.BackboneConfig."""
        return cls(config.num_segments, config.size, config.residual_mode, config.keep_aspect)


def connect(address: str | None = None, cpus: int = 1) -> None:
    """Joins the cluster at `address`, or starts a local instance with every core and GPU of this
    machine (and at least `cpus` CPUs, so the actors asked for can start); an instance this
    process already started is reused."""
    ray = import_ray()
    if ray.is_initialized():
        return
    # Quiet: Ray logs its start-up, plans and cautions about actor restarts on the terminal; its
    # full logs stay under /tmp/ray/session_*/logs. Errors that stop a run come back as exceptions.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=max(os.cpu_count() or 1, cpus), include_dashboard=False, **quiet)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine options of `caption` and `extract`."""
    g = parser.add_argument_group("engine (corpus scale: --engine ray)")
    g.add_argument("--engine", choices=("plain", "ray"), default="plain",
                   help="plain: this process (default); ray: a Ray Data pipeline of sampling and model workers, on "
                        f"this machine or a cluster (needs the scale extra: {INSTALL_HINT})")
    g.add_argument("--address", default=None,
                   help="ray: the cluster to join ('auto' finds the one `ray start` set up here); default: a local "
                        "instance with every core and GPU of this machine")
    g.add_argument("--sampling-workers", type=int, default=None,
                   help="ray: CPU workers sampling clips (default: the CPUs the model workers leave, at least 1); "
                        "0 samples in the model workers, on their GPU where they have one")
    g.add_argument("--model-workers", type=int, default=None,
                   help="ray: workers running the model (default: one per GPU, else 1)")
    g.add_argument("--gpus-per-model-worker", type=float, default=None,
                   help="ray: GPUs per model worker (default 1 where the cluster has GPUs, else 0: CPU)")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """parser.error for engine options out of range or without --engine ray."""
    ray_only = ("address", "sampling_workers", "model_workers", "gpus_per_model_worker")
    given = [name for name in ray_only if getattr(args, name) is not None]
    if args.engine != "ray" and given:
        parser.error(f"--{given[0].replace('_', '-')} needs --engine ray")
    if args.sampling_workers is not None and args.sampling_workers < 0:
        parser.error("--sampling-workers must be >= 0")
    if args.model_workers is not None and args.model_workers < 1:
        parser.error("--model-workers must be >= 1")
    if args.gpus_per_model_worker is not None and args.gpus_per_model_worker < 0:
        parser.error("--gpus-per-model-worker must be >= 0")


def options_from(args: argparse.Namespace) -> EngineOptions:
    """Connects (`connect`) and fills the options the command line left out from what the
    cluster has (module docstring)."""
    ray = import_ray()
    explicit = (args.sampling_workers or 0) + (args.model_workers or 1)
    connect(args.address, explicit)
    total = ray.cluster_resources()
    gpus_total, cpus_total = total.get("GPU", 0), total.get("CPU", 0)
    gpus = args.gpus_per_model_worker
    if gpus is None:
        gpus = 1.0 if gpus_total > 0 else 0.0
    model = args.model_workers or (max(1, int(gpus_total // gpus)) if gpus else 1)
    sampling = args.sampling_workers
    if sampling is None:
        sampling = max(1, int(cpus_total) - (0 if gpus else model))
    options = EngineOptions(sampling, model, gpus, args.batch)
    if model * gpus > gpus_total:
        raise EngineError(f"{model} model workers x {gpus:g} GPUs need {model * gpus:g} GPUs; the cluster has "
                          f"{gpus_total:g}")
    if options.cpus_needed() > cpus_total:
        raise EngineError(f"the workers need {options.cpus_needed():g} CPUs (one per sampling worker and per CPU "
                          f"model worker); the cluster has {cpus_total:g}")
    return options


# -----------------------------------------------------------------------------------------------
# Stages (Ray Data callable classes: constructed once per actor, called once per batch)


def _maybe_fail(stage: str, fault: str | None) -> None:
    """The injected fault (module docstring): exit without cleanup, as a crashed worker does."""
    if not fault:
        return
    stages, _, folder = fault.partition("@")
    if stage not in stages.split(","):
        return
    try:
        (Path(folder) / f"{stage}.crashed").touch(exist_ok=False)
    except FileExistsError:
        return
    os._exit(1)


def _sample_all(paths: Sequence[str], spec: SamplingSpec, device: Any) -> tuple[dict[str, np.ndarray], list[Any]]:
    """(columns path, error and kind ("" for a clip that sampled), info (JSON); the ClipSample of
    each path, None where it failed)."""
    import json

    from vccv_gpu.codec.loader import ClipError, sample_or_error

    samples: list[Any] = []
    errors, kinds, infos = [], [], []
    for path in paths:
        sample = sample_or_error(path, num_segments=spec.num_segments, size=spec.size, residual=spec.residual,
                                 device=device, keep_aspect=spec.keep_aspect)
        failed = isinstance(sample, ClipError)
        samples.append(None if failed else sample)
        errors.append(sample.reason if failed else "")
        kinds.append(sample.kind if failed else "")
        infos.append("{}" if failed else json.dumps(sample.info()))
    columns = {"path": np.asarray(paths, dtype=object), "error": np.asarray(errors, dtype=object),
               "kind": np.asarray(kinds, dtype=object), "info": np.asarray(infos, dtype=object)}
    return columns, samples


class SampleClips:
    """Sampling stage: paths in; out, per path, the columns of `_sample_all` and the clip's
    iframes (uint8) and residuals (float16), [N, 3, S, S] each (zeros for a clip that failed)."""

    def __init__(self, spec: SamplingSpec, fault: str | None = None) -> None:
        self.spec, self.fault = spec, fault

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _maybe_fail("sample", self.fault)
        columns, samples = _sample_all([str(p) for p in batch["path"]], self.spec, "cpu")
        shape = (len(samples), self.spec.num_segments, 3, self.spec.size, self.spec.size)
        iframes, residuals = np.zeros(shape, np.uint8), np.zeros(shape, np.float16)
        for i, sample in enumerate(samples):
            if sample is not None:
                iframes[i], residuals[i] = sample.iframes.numpy(), sample.residuals.numpy()
        return {**columns, "iframes": iframes, "residuals": residuals}


class _ModelStage:
    """A model actor: its device (the GPU Ray gave it, else the CPU) and its inputs, sampled by
    the sampling stage or, without one, here on that device (NVDEC and the residual kernels on a
    GPU), where the clips stay."""

    def __init__(self, spec: SamplingSpec, use_gpu: bool, fault: str | None) -> None:
        import torch

        self.spec, self.fault = spec, fault
        self.device = torch.device("cuda", 0) if use_gpu else torch.device("cpu")  # Ray sets CUDA_VISIBLE_DEVICES

    def inputs(self, batch: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray, Any, Any]:
        """(columns path, error, kind, info; the indices of the clips that sampled; their iframes
        and residuals [B, N, 3, S, S] on this actor's device, None when none sampled)."""
        import torch

        _maybe_fail("model", self.fault)
        if "iframes" in batch:
            good = np.flatnonzero(batch["error"] == "")
            columns = {key: batch[key] for key in ("path", "error", "kind", "info")}
            return (columns, good, torch.from_numpy(batch["iframes"][good]).to(self.device),
                    torch.from_numpy(batch["residuals"][good]).to(self.device))
        columns, samples = _sample_all([str(p) for p in batch["path"]], self.spec, self.device)
        good = np.asarray([i for i, sample in enumerate(samples) if sample is not None], dtype=np.int64)
        if not len(good):
            return columns, good, None, None
        return (columns, good, torch.stack([samples[i].iframes for i in good]),
                torch.stack([samples[i].residuals for i in good]))


class CaptionWorker(_ModelStage):
    """Model stage of `caption`: the checkpoint's backbones and beam search. Adds caption, score
    and seconds (the batch's time in this actor per clip captioned)."""

    def __init__(self, spec: SamplingSpec, checkpoint: str, backend: str | None, beam: int, max_len: int | None,
                 use_gpu: bool = False, fault: str | None = None) -> None:
        super().__init__(spec, use_gpu, fault)
        from vccv_gpu.checkpoint import load_checkpoint

        self.checkpoint = load_checkpoint(checkpoint, device=self.device, backend=backend)
        self.beam, self.max_len = beam, max_len

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        columns, good, iframes, residuals = self.inputs(batch)
        n = len(columns["path"])
        captions = np.full(n, "", dtype=object)
        scores = np.zeros(n, np.float64)
        if len(good):
            _, _, best = self.checkpoint.caption(iframes, residuals, beam=self.beam, max_len=self.max_len)
            for i, c in zip(good, best):
                captions[i] = self.checkpoint.vocab.decode(c.tokens)
                scores[i] = float(c.log_prob)
        seconds = np.full(n, (time.perf_counter() - start) / max(len(good), 1))
        return {**columns, "caption": captions, "score": scores, "seconds": seconds}


class ExtractWorker(_ModelStage):
    """Model stage of `extract`: a saved FeatureExtractor. Adds v_i and a_r (fp16, zeros for a
    clip that failed)."""

    def __init__(self, spec: SamplingSpec, backbones: str, use_gpu: bool = False, fault: str | None = None) -> None:
        super().__init__(spec, use_gpu, fault)
        import torch

        from vccv_gpu.backbones import FeatureExtractor

        self.extractor = FeatureExtractor.load(backbones, self.device).to(memory_format=torch.channels_last)
        config = self.extractor.config
        self.shapes = [(config.num_segments, *config.grid, d) for d in (config.d_i, config.d_r)]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        columns, good, iframes, residuals = self.inputs(batch)
        n = len(columns["path"])
        v_i, a_r = (np.zeros((n, *shape), np.float16) for shape in self.shapes)
        if len(good):
            v_good, a_good = self.extractor.stored_features(iframes, residuals)
            v_i[good], a_r[good] = v_good.numpy(), a_good.numpy()
        return {**columns, "v_i": v_i, "a_r": a_r}


# -----------------------------------------------------------------------------------------------
# The pipeline


def run(paths: Sequence[str], spec: SamplingSpec, stage: type[_ModelStage], stage_kwargs: dict[str, Any],
        options: EngineOptions) -> Iterator[list[dict[str, Any]]]:
    """Runs the pipeline over `paths` (after `connect`) and yields the rows of each finished
    block, one per path, in completion order (a retried batch's rows may come twice)."""
    ray = import_ray()
    if not paths:
        return
    fault = os.environ.get(FAULT_ENV) or None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller draws one bar over videos
    context.verbose_progress = False
    # One video per block: the sampling actors take videos one at a time (balanced whatever
    # their lengths), and a lost actor costs at most the videos it held.
    ds = ray.data.from_items([{"path": str(p)} for p in paths], override_num_blocks=len(paths))
    if options.sampling_workers > 0:  # (no more actors than videos: the others would idle)
        ds = ds.map_batches(SampleClips, fn_constructor_kwargs={"spec": spec, "fault": fault}, batch_size=1,
                            compute=ray.data.ActorPoolStrategy(size=min(options.sampling_workers, len(paths))),
                            num_cpus=1, batch_format="numpy")
    model_workers = min(options.model_workers, -(-len(paths) // options.batch_size))
    use_gpu = options.gpus_per_model_worker > 0
    ds = ds.map_batches(stage, fn_constructor_kwargs={"spec": spec, "use_gpu": use_gpu, "fault": fault,
                                                      **stage_kwargs},
                        batch_size=options.batch_size, compute=ray.data.ActorPoolStrategy(size=model_workers),
                        num_cpus=0 if use_gpu else 1, num_gpus=options.gpus_per_model_worker or None,
                        batch_format="numpy")
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        yield [{key: _plain(column[i]) for key, column in batch.items()} for i in range(len(batch["path"]))]


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (arrays stay arrays)."""
    return value.item() if isinstance(value, np.generic) else value
