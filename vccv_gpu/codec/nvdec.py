"""Frames decoded by NVDEC: the front end's "nvdec" decoder (the default on CUDA devices).

Frames stay in GPU memory as NV12 surfaces (DLPack into torch, no host copy) and are converted
and resized there (`nv12.Nv12Frames`), exactly as the PyAV decoder's frames are on the CPU.

NVDEC through PyNvVideoCodec 2.2, written from its documentation and the package's own samples
(tests/pynvvideocodec_standin.py mimics that API for the CPU tests):

* Containers: `PyNvVideoCodec.SimpleDecoder` (API reference "SimpleDecoder"; the wheel's
  decoders/SimpleDecoder.py), one per pool slot, created with `use_device_memory=True`,
  `output_color_type=OutputColorType.NATIVE` (NV12: one (height * 3/2, width) uint8 buffer,
  samples/advanced/simple_decode_from_memory.py), `cuda_stream=` the slot's own torch stream
  (vLLM's PyNvVideoCodec backend does the same), `max_width`/`max_height` so that later clips can
  reuse it, and `need_scanned_stream_metadata=False` (True scans the whole file at every
  creation; the library counts the frames of containers whose header has no count by itself).
  A process-wide pool keeps up to `NVDEC_SESSIONS` of them across clips and points them at
  each new file with `reconfigure_decoder(path)` (notebook
  simple_decode_tutorial.ipynb section 5: reconfiguring avoids a new session). Frames come from
  `get_batch_frames_by_index(indices)` (ascending, unique) and enter torch with
  `torch.from_dlpack(frame)` (samples/utils/Utils.py `convert_frames_to_torch`).
  Keyframe policy: the sampled keyframes are independent, so the GOPs are split into contiguous
  runs, each decoded by its own slot in a thread (several NVDEC engines at once).
  SimpleDecoder's frame index is the display index only where its seeking is exact (closed-GOP
  MP4): each frame's timestamp (in the stream's time base) is checked against the parser's pts of
  the frame asked for.
* Forward decoding (`_decode_forward`): `CreateDemuxer(filename=...)` and `CreateDecoder(gpuid=,
  codec=demuxer.GetNvCodecId(), cudacontext=, cudastream=, usedevicememory=True)`;
  `Decode(packet)` yields frames in display order, and an empty packet (`PacketData()`, like
  the demuxer's last) flushes it (samples/advanced/decode.py, transcode.py). Used for raw
  Annex B files (SimpleDecoder takes containers only; every packet up to the last sampled
  frame), and for the
  decoded fallback of files with one picture per packet (MP4/MOV, `Stream.packet_spans`): there
  NVDEC is handed only the pictures the PyAV decoder decodes, leaving out those with nal_ref_idc 0
  that are not sampled, and is flushed after the last sampled one (the rest of the file is not
  demuxed); the k-th frame out is the k-th handed picture in display order (checked by count).
  Files only (the demuxer takes a file name). Not pooled (one decoder per such clip).
* Each slot converts its frames on its own stream right after they come out (the decoder owns
  their memory and reuses it), synchronizes that stream before the slot goes back to the pool,
  and the outputs are recorded on the caller's stream (`Tensor.record_stream`).

Without PyNvVideoCodec (or for raw Annex B given as bytes), `NvdecFrames` has PyAV decode the
frames on the CPU exactly as on a CPU device and uploads them in one copy; a warning says so
once per process. So are the frames of a clip NVDEC fails on or cannot be
trusted with (`NvdecCannotDecode`: any exception from the binding, other frame counts than the
parser's, frames other than those asked for, another layout than NV12; a warning per clip).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, wait
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from .demux import Source
from .nv12 import Nv12Frames
from .nvcodec import import_pynvvideocodec, keep_current_context, torch_context
from .plan import gop_groups, split_runs
from .pyav_frames import PyAVDecoder, decoder_workers
from .stream import Stream

__all__ = ["NVDEC_SESSIONS", "DecoderPool", "NvdecCannotDecode", "NvdecFrames", "decode_nvdec", "decoder_pool",
           "nvdec_available"]

# NVDEC sessions kept per GPU: several sessions in parallel keep several of the GPU's NVDEC
# engines busy (the H100/H200 have 7), where one session leaves most of them idle.
NVDEC_SESSIONS = 4

# A decoder is created for at least this size, so that clips up to 1080p can reuse it.
_MIN_DECODER_SIZE = (1920, 1088)

_nvc_module: Any = None
_nvc_error: str | None = None
_nvc_lock = threading.Lock()


def _nvc() -> Any:
    """PyNvVideoCodec, imported once; None (with the reason in _nvc_error) when it cannot be.
    (Its import fails without an NVIDIA driver, so it is tried only on CUDA hosts.)"""
    global _nvc_module, _nvc_error
    with _nvc_lock:
        if _nvc_module is None and _nvc_error is None:
            _nvc_module, _nvc_error = import_pynvvideocodec()
        return _nvc_module


def nvdec_available() -> bool:
    """True when PyNvVideoCodec imports (which needs an NVIDIA driver)."""
    return _nvc() is not None


def _gpu_id(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    return device.index if device.index is not None else torch.cuda.current_device()


def _new_stream(device: torch.device) -> Any:
    """A CUDA stream of its own for a decoder (None off CUDA: the stand-in used by the tests)."""
    return torch.cuda.Stream(device) if device.type == "cuda" else None


def _stream_handle(stream: Any) -> int:
    return int(stream.cuda_stream) if stream is not None else 0


@contextmanager
def _on(stream: Any, device: torch.device) -> Iterator[None]:
    """Makes `stream` (on `device`) torch's current stream in this thread."""
    if stream is None:
        yield
        return
    with torch.cuda.device(device), torch.cuda.stream(stream):
        yield


def _synchronize(stream: Any) -> None:
    if stream is not None:
        stream.synchronize()


def _as_nv12(frame: Any, width: int, height: int, name: str) -> Tensor:
    """A decoded NV12 frame as a torch view of the decoder's memory (DLPack, no copy)."""
    t = torch.from_dlpack(frame)
    if t.dim() == 3 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.dtype != torch.uint8 or tuple(t.shape) != (height * 3 // 2, width):
        # e.g. surfaces of the coded size, or NVDEC's NV12 width rounded up to even
        raise NvdecCannotDecode(f"NVDEC returned a {t.dtype} {list(t.shape)} frame for {name}, not NV12 "
                                f"[{height * 3 // 2}, {width}] ({width}x{height})")
    return t


def _check_timestamps(frames: list[int], decoded: list[Any], stream: Stream) -> None:
    """SimpleDecoder's frame index is the display index only where its seeking is exact
    (closed-GOP MP4; it announces Matroska seeking as inexact, and MOV indices come from
    timestamps): each frame's timestamp must be the pts of the frame asked for. PyNvVideoCodec
    2.2 gives it in the stream's time base, as the container stores it (seen on an H100: frame 24
    of a 25 fps MP4 with time base 1/12800 came back at 12288, not at 960 ms)."""
    for i, frame in zip(frames, decoded):
        pts = stream.frames[i].pts
        if pts is None or frame.timestamp != pts:
            raise NvdecCannotDecode(f"NVDEC returned the frame at pts {frame.timestamp} of {stream.name} for "
                                    f"frame {i}, whose pts is {pts} (time base {stream.time_base}): its "
                                    "indices are not display indices")


class NvdecCannotDecode(Exception):
    """NVDEC cannot be trusted with this clip: PyNvVideoCodec fails on it (any exception: it
    raises PyNvVCException(Unsupported), its Python wrappers IndexError and Exception, its C++
    RuntimeError), counts other frames than the parser (e.g. a truncated file), returns frames
    other than those asked for or in another layout than NV12, or cannot read the source (in-memory
    data for its demuxer). `NvdecFrames` then decodes the clip's frames with PyAV."""


class _Slot:
    """One pooled SimpleDecoder, its CUDA stream and what it is configured for."""

    def __init__(self, gpu_id: int, device: torch.device) -> None:
        self.gpu_id = gpu_id
        self.device = device
        self.stream = _new_stream(device)
        self.decoder: Any = None
        self.source_key: Any = None
        self.max_size = (0, 0)

    def drop(self) -> None:
        self.decoder, self.source_key, self.max_size = None, None, (0, 0)

    def open(self, source: Source, coded_size: tuple[int, int]) -> Any:
        """The decoder, pointed at `source` (reconfigured if it can be, else created)."""
        nvc = _nvc()
        key = _source_key(source)
        fits = coded_size[0] <= self.max_size[0] and coded_size[1] <= self.max_size[1]
        if self.decoder is not None and key is not None and key == self.source_key and fits:
            return self.decoder
        if self.decoder is not None and fits and isinstance(source, (str, os.PathLike)):
            try:
                self.decoder.reconfigure_decoder(os.fspath(source))
                self.source_key = key
                return self.decoder
            except Exception:  # noqa: BLE001 - any refusal (e.g. a bit depth change): a new session instead
                self.drop()
        max_size = (max(coded_size[0], _MIN_DECODER_SIZE[0]), max(coded_size[1], _MIN_DECODER_SIZE[1]))
        self.drop()
        with _on(self.stream, self.device):
            self.decoder = nvc.SimpleDecoder(
                os.fspath(source) if isinstance(source, (str, os.PathLike)) else bytes(source),
                gpu_id=self.gpu_id, cuda_stream=_stream_handle(self.stream), use_device_memory=True,
                max_width=max_size[0], max_height=max_size[1],
                # True would scan the whole file at every creation and reconfiguration; the
                # library scans by itself where the header has no frame count
                need_scanned_stream_metadata=False, output_color_type=nvc.OutputColorType.NATIVE)
        self.source_key, self.max_size = key, max_size
        return self.decoder


def _source_key(source: Source) -> Any:
    """Identifies a file's current contents (None for bytes: never reused without reconfiguring)."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    path = os.path.abspath(os.fspath(source))
    st = os.stat(path)
    return path, st.st_size, st.st_mtime_ns


class DecoderPool:
    """Up to `size` SimpleDecoders of one GPU, kept across clips (creating a session costs more
    than decoding a short clip's keyframes). `borrow()` hands one slot to one thread at a time."""

    def __init__(self, device: torch.device | str, size: int = NVDEC_SESSIONS) -> None:
        self.device = torch.device(device)
        self.gpu_id = _gpu_id(self.device)
        self.size = max(1, size)
        self._free: list[_Slot] = []
        self._created = 0
        self._cond = threading.Condition()

    @contextmanager
    def borrow(self) -> Iterator[_Slot]:
        with self._cond:
            while not self._free and self._created >= self.size:
                self._cond.wait()
            if self._free:
                slot = self._free.pop()
            else:
                self._created += 1
                slot = None
        if slot is None:
            slot = _Slot(self.gpu_id, self.device)
        ok = False
        try:
            yield slot
            ok = True
        finally:
            if not ok:
                slot.drop()  # its state after a failure is unknown: the next use starts afresh
            with self._cond:
                self._free.append(slot)
                self._cond.notify()


_pools: dict[tuple[str, int], DecoderPool] = {}
_pools_lock = threading.Lock()


def decoder_pool(device: torch.device) -> DecoderPool:
    """The process-wide pool of `device`'s GPU."""
    key = (device.type, _gpu_id(device))
    with _pools_lock:
        if key not in _pools:
            _pools[key] = DecoderPool(device)
        return _pools[key]


def decode_nvdec(source: Source, stream: Stream, indices: list[int], convert: Callable[[Tensor], Tensor],
                 device: torch.device, pool: Executor) -> dict[int, Tensor]:
    """{display index: convert(NV12 frame)} for `indices`, decoded by NVDEC (see the module
    docstring). `convert` runs on the decoding slot's stream; its outputs
    are recorded on the caller's current stream. Raises NvdecCannotDecode naming the file when
    NVDEC fails or cannot be trusted with it (the caller then decodes with PyAV)."""
    wanted = sorted(set(indices))
    if not wanted:
        return {}
    name = stream.name
    width, height = stream.width, stream.height
    coded = (stream.coded_width, stream.coded_height)

    def run(frames: list[int]) -> dict[int, Tensor]:
        slots = decoder_pool(device)
        with slots.borrow() as slot, keep_current_context(device.type == "cuda"):
            decoder = slot.open(source, coded)
            count = len(decoder)
            if count != len(stream.frames):
                raise NvdecCannotDecode(f"PyNvVideoCodec counts {count} frames in {name}, the parser "
                                        f"{len(stream.frames)}")
            out = {}
            with _on(slot.stream, device):
                decoded = decoder.get_batch_frames_by_index(frames)
                if len(decoded) != len(frames):
                    raise NvdecCannotDecode(f"NVDEC returned {len(decoded)} of the frames {frames} of {name}")
                _check_timestamps(frames, decoded, stream)
                for i, frame in zip(frames, decoded):
                    out[i] = convert(_as_nv12(frame, width, height, name))
                del decoded
            _synchronize(slot.stream)  # done with the decoder's memory before the slot is reused
            return out

    try:
        by_key = gop_groups(stream, wanted)  # wanted frames by preceding keyframe
        lone_keys = all(group == [stream.pictures[k].index] and stream.pictures[k].key
                        for k, group in by_key.items())
        if stream.container == "h264" or (stream.packet_spans is not None and not lone_keys):
            # forward decoding: raw streams (SimpleDecoder reads containers only), and the decoded
            # fallback where unreferenced pictures can be left out
            return _record(_decode_forward(source, stream, wanted, convert, device, width, height, name), device)
        gops = split_runs(list(by_key.values()), decoder_pool(device).size)
        runs = [[i for group in run for i in group] for run in gops]
        out: dict[int, Tensor] = {}
        if len(runs) == 1:
            out.update(run(runs[0]))
        else:
            futures = [pool.submit(run, r) for r in runs]
            wait(futures)  # all done before a failure falls back to PyAV: no slot still decoding
            for result in futures:
                out.update(result.result())
        return _record(out, device)
    except NvdecCannotDecode:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the binding raises (see NvdecCannotDecode)
        raise NvdecCannotDecode(f"NVDEC failed on {name} ({type(e).__name__}: {e})") from e


def _record(frames: dict[int, Tensor], device: torch.device) -> dict[int, Tensor]:
    """Marks tensors made on decoder streams as used by the caller's stream (allocator safety)."""
    if device.type == "cuda":
        current = torch.cuda.current_stream(device)
        for t in frames.values():
            t.record_stream(current)
    return frames


def _decode_forward(source: Source, stream: Stream, wanted: list[int], convert: Callable[[Tensor], Tensor],
                    device: torch.device, width: int, height: int, name: str) -> dict[int, Tensor]:
    """One Demuxer + Decoder decoding forward (raw Annex B files; and the decoded fallback of
    files whose packets are one picture each, `Stream.packet_spans`).

    With one picture per packet, NVDEC is handed only what the PyAV decoder decodes: from the first
    needed GOP's keyframe to the last wanted picture (decoding order), without the pictures
    nothing refers to (nal_ref_idc 0) unless they are wanted; an empty packet then flushes it
    (nothing after that picture is demuxed), and the k-th frame out is the k-th handed picture
    in display order (a count that does not match raises NvdecCannotDecode). Raw streams: every
    packet, in order, until the last wanted frame has come out. Files only: the demuxer takes
    a file name (in-memory data raises NvdecCannotDecode)."""
    if not isinstance(source, (str, os.PathLike)):
        raise NvdecCannotDecode(f"{name}: PyNvVideoCodec's demuxer reads files, not data in memory")
    nvc = _nvc()
    cuda_stream = _new_stream(device)
    frames = stream.frames
    todo = set(wanted)
    out: dict[int, Tensor] = {}
    feed: set[int] | None = None  # decode indices to hand over; None: every packet (raw streams)
    if stream.packet_spans is None and len(stream.pictures) != len(frames):
        # Raw streams are handed over whole, and NVDEC would show the unlisted pictures too.
        raise NvdecCannotDecode(f"{name}: the stream holds pictures that are not presented")
    if stream.packet_spans is not None:
        first = min(gop_groups(stream, wanted))
        last = max(frames[i].decode_index for i in wanted)
        fed = [f for f in stream.pictures[first:last + 1] if f.reference or f.index in todo]
        if any(f.index is None for f in fed):
            # NVDEC shows every picture it decodes, an edit list's left-out references too.
            raise NvdecCannotDecode(f"{name}: the needed pictures include ones the container does not present")
        feed = {f.decode_index for f in fed}
        shown_order = sorted(f.index for f in fed)  # type: ignore[type-var]
    shown = 0

    def take(decoded: list[Any]) -> None:
        nonlocal shown
        for frame in decoded:
            index = shown if feed is None else (shown_order[shown] if shown < len(shown_order) else -1)
            if index in todo:
                out[index] = convert(_as_nv12(frame, width, height, name))
                todo.discard(index)
            shown += 1

    with _on(cuda_stream, device), keep_current_context(device.type == "cuda"):
        demuxer = nvc.CreateDemuxer(filename=os.fspath(source))
        context = torch_context(_gpu_id(device)) if device.type == "cuda" else 0
        decoder = nvc.CreateDecoder(gpuid=_gpu_id(device), codec=demuxer.GetNvCodecId(), cudacontext=context,
                                    cudastream=_stream_handle(cuda_stream), usedevicememory=True)
        for decode_index, packet in enumerate(demuxer):
            end = packet.bsl == 0  # the end-of-stream packet: flushes the decoder
            if feed is not None and not end and decode_index not in feed:
                continue
            take(decoder.Decode(packet))
            if end or (feed is None and not todo):
                break
            if feed is not None and decode_index == last:
                take(decoder.Decode(nvc.PacketData()))  # flush: the rest of the file stays unread
                break
    _synchronize(cuda_stream)
    if feed is not None and shown != len(feed):
        raise NvdecCannotDecode(f"NVDEC returned {shown} frames for the {len(feed)} pictures of {name} it was given")
    if todo:
        raise NvdecCannotDecode(f"frames {sorted(todo)} (display order) of {name} did not come out of NVDEC")
    return out


_warned_cpu_frames = False


def _warn_cpu_frames(reason: str) -> None:
    global _warned_cpu_frames
    if not _warned_cpu_frames:
        _warned_cpu_frames = True
        warnings.warn(f"sample_clip(device='cuda'): {reason}; frames are decoded by PyAV on the CPU and "
                      "uploaded (residuals are still computed on the GPU)", RuntimeWarning, stacklevel=3)


class NvdecFrames:
    """The "nvdec" decoder: `decode_nvdec`'s frames, or PyAV's where NVDEC cannot be used (see the
    module docstring)."""

    def __init__(self) -> None:
        self._nvdec = Nv12Frames(decode_nvdec)
        self._pyav = PyAVDecoder()

    @property
    def threads(self) -> int:
        # NVDEC_SESSIONS slots, or PyAV's decoders when it falls back
        return max(decoder_workers(), NVDEC_SESSIONS)

    def frames(self, source: Source, stream: Stream, indices: list[int], size: int, keep_aspect: bool,
               device: torch.device, pool: Executor) -> dict[int, Tensor]:
        """{display index: uint8 RGB [3, size, size]} on `device`."""
        if not nvdec_available():
            _warn_cpu_frames(f"PyNvVideoCodec is not usable ({_nvc_error})")
        elif stream.container == "h264" and not isinstance(source, (str, os.PathLike)):
            _warn_cpu_frames("raw Annex B bytes cannot be demuxed by PyNvVideoCodec")
        else:
            try:
                return self._nvdec.frames(source, stream, indices, size, keep_aspect, device, pool)
            except NvdecCannotDecode as e:
                warnings.warn(f"{e}; its frames are decoded by PyAV instead", RuntimeWarning, stacklevel=3)
        return self._pyav.frames(source, stream, indices, size, keep_aspect, device, pool)
