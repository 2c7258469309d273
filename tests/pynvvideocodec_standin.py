"""A stand-in for PyNvVideoCodec 2.2.4 that decodes and encodes with PyAV on the CPU.

It has the calls vccv_gpu makes, with the binding's signatures, and behaves as the binding does
where that is known (its compiled module loaded without a GPU, its Python wrappers read):

* `CreateDemuxer(filename)` takes a file name only (bytes are read as one, up to a NUL byte) and
  raises PyNvVCException for a file it cannot open; iterating it yields the video packets
  only, then an empty packet (`bsl` 0). `PacketData()` is an empty packet; handed to
  `Decode`, it flushes the decoder.
* `SimpleDecoder` follows the binding's wrapper (decoders/SimpleDecoder.py): a bare Exception
  for a source of 0 frames, out-of-range indices skipped with a warning, and IndexError when
  the native call returns fewer frames than asked for. Its frames' `timestamp` is the
  pts in the stream's time base (as the binding's were on an H100).
* `CreateEncoder` follows the binding's wrapper (its values made strings); `Encode(frame,
  NV_ENC_PIC_PARAMS)` returns dicts with 'data' (Annex B, SPS/PPS in the first packet),
  'timestamp' (inputTimeStamp echoed) and 'picture_type'.
* `Transcoder` refuses non-string settings (TypeError, as `CreateTranscoder(..., kwargs:
  Dict[str, str])` does) and inputs without audio (PyNvVCException, before any CUDA call).

Tests inject other behaviour by patching the classes (e.g. `FakeSimpleDecoder.native_frames`).
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from fractions import Fraction
from typing import Any

import av
import numpy as np

# NV_ENC_PIC_TYPE (nvEncodeAPI.h)
PIC_TYPE_P, PIC_TYPE_B, PIC_TYPE_I, PIC_TYPE_IDR = 0, 1, 2, 3


class PyNvVCException(Exception):
    pass


class PyNvVCExceptionUnsupported(Exception):
    pass


class FakeFrame:
    """A decoded frame: exports its NV12 array through DLPack, as DecodedFrame does."""

    def __init__(self, array: np.ndarray, timestamp: int | None = None) -> None:
        self.array = array
        self.timestamp = timestamp

    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        return self.array.__dlpack__()

    def __dlpack_device__(self) -> Any:
        return self.array.__dlpack_device__()


class FakePacket:
    """PacketData: `bsl` is its size (0: an empty packet, the end of the stream). PyNvVideoCodec's
    demuxer hands out Annex B; here the decoder gets the container's avcC with each packet."""

    def __init__(self, packet: av.Packet | None = None, extradata: bytes | None = None) -> None:
        self.packet, self.extradata = packet, extradata
        self.bsl = packet.size if packet is not None else 0


class FakeDemuxer:
    def __init__(self, nvc: FakeNvc, filename: str | bytes) -> None:
        if isinstance(filename, bytes):  # pybind11 takes bytes for a std::string: a name up to a NUL
            filename = filename.split(b"\0")[0].decode(errors="replace")
        if not isinstance(filename, str):
            raise TypeError("CreateDemuxer(): incompatible function arguments")
        if not os.path.isfile(filename):
            raise PyNvVCException(f"CreateFormatContext: avformat_open_input({filename!r}) returned error "
                                  "\"No such file or directory\"")
        self.nvc = nvc
        self.container = av.open(filename)
        self.stream = self.container.streams.video[0]

    def GetNvCodecId(self) -> str:
        return self.stream.codec_context.name

    def Width(self) -> int:
        return self.stream.codec_context.width

    def Height(self) -> int:
        return self.stream.codec_context.height

    def __iter__(self):
        extradata = self.stream.codec_context.extradata
        for packet in self.container.demux(self.stream):  # ends with an empty packet
            with self.nvc.lock:
                self.nvc.demuxed += 1
            yield FakePacket(packet if packet.size else None, extradata)


class FakeDecoder:
    def __init__(self, nvc: FakeNvc) -> None:
        self.nvc = nvc
        self.context = av.CodecContext.create("h264", "r")

    def Decode(self, packet: FakePacket) -> list[FakeFrame]:
        if packet.extradata and not self.context.extradata:
            self.context.extradata = packet.extradata
        if packet.bsl:
            self.nvc.fed.append(packet.packet.pts)
        return [FakeFrame(f.to_ndarray(format="nv12")) for f in self.context.decode(packet.packet)]


class FakeSimpleDecoder:
    """decoders/SimpleDecoder.py over a PyAV decode of the whole source."""

    def __init__(self, nvc: FakeNvc, source: str | bytes, need_scanned_stream_metadata: bool) -> None:
        self.nvc = nvc
        self.need_scanned_stream_metadata = need_scanned_stream_metadata
        self._open(source)
        if len(self) == 0:
            raise Exception("Elementary streams not supported by Simple Decoder. Invalid input stream.")

    def _open(self, source: str | bytes) -> None:
        if self.need_scanned_stream_metadata:
            with self.nvc.lock:
                self.nvc.scans += 1  # the binding reads the whole file for the scanned metadata
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else source) as container:
            self.frames = [FakeFrame(f.to_ndarray(format="nv12"), f.pts)
                           for f in container.decode(video=0)]

    def __len__(self) -> int:
        return len(self.frames)

    def reconfigure_decoder(self, new_source: str) -> None:
        with self.nvc.lock:
            self.nvc.reconfigured.append(new_source)
        self._open(new_source)

    def native_frames(self, indices: list[int]) -> list[FakeFrame]:
        """The compiled SimpleDecoder.get_batch_frames_by_index."""
        return [self.frames[i] for i in indices]

    def get_batch_frames_by_index(self, indices: list[int]) -> list[FakeFrame]:
        with self.nvc.lock:
            self.nvc.requests.append(list(indices))
            self.nvc.threads.add(threading.get_ident())
        valid = []
        for index in indices:
            if 0 <= index < len(self):
                if index not in valid:
                    valid.append(index)
            else:
                warnings.warn(f"Skipping index {index}: Out of valid range [0, {len(self) - 1}]")
        ordered = sorted(valid)
        frames = self.native_frames(ordered)
        mapping = {index: frames[k] for k, index in enumerate(ordered)}  # IndexError if fewer came back
        return [mapping[index] for index in valid]


class FakeEncoder:
    """PyNvEncoder, encoding NV12 frames with libx264: an IDR every `idrperiod` frames (`gop`
    without it) and `bf` B-frames, or (honour_gop False) a GOP of its own, as a misconfigured
    encoder would."""

    honour_gop = True

    def __init__(self, width: int, height: int, fmt: str, config: dict[str, str]) -> None:
        assert fmt == "NV12"
        gop = int(config.get("idrperiod", config.get("gop", "30"))) + (0 if self.honour_gop else 1)
        bframes = int(config.get("bf", "0"))
        self.context = av.CodecContext.create("libx264", "w")
        self.context.width, self.context.height, self.context.pix_fmt = width, height, "yuv420p"
        self.context.time_base = Fraction(1, 25)
        self.context.options = {"preset": "veryfast", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:"
                                f"open-gop=0:bframes={bframes}"}

    def _packets(self, packets: list[av.Packet]) -> list[dict[str, Any]]:
        return [{"data": bytes(p), "timestamp": p.pts,
                 "picture_type": PIC_TYPE_IDR if p.is_keyframe else PIC_TYPE_P} for p in packets]

    def Encode(self, frame: FakeFrame, params: NV_ENC_PIC_PARAMS) -> list[dict[str, Any]]:
        picture = av.VideoFrame.from_ndarray(frame.array, format="nv12").reformat(format="yuv420p")
        picture.pts, picture.time_base = params.inputTimeStamp, self.context.time_base
        return self._packets(self.context.encode(picture))

    def EndEncode(self) -> list[dict[str, Any]]:
        return self._packets(self.context.encode(None))


class NV_ENC_PIC_PARAMS:  # noqa: N801 - the binding's name
    def __init__(self) -> None:
        self.inputTimeStamp = 0


class FakeNvc:
    """The module: PyNvVideoCodec's calls used by vccv_gpu, with the binding's signatures, on PyAV."""

    PyNvVCException = PyNvVCException
    PyNvVCExceptionUnsupported = PyNvVCExceptionUnsupported
    PacketData = FakePacket
    NV_ENC_PIC_PARAMS = NV_ENC_PIC_PARAMS

    class OutputColorType:
        NATIVE, RGB, RGBP = "NATIVE", "RGB", "RGBP"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: list[str | bytes] = []
        self.reconfigured: list[str] = []
        self.requests: list[list[int]] = []
        self.threads: set[int] = set()
        self.scans = 0  # whole-file scans for need_scanned_stream_metadata
        self.demuxed = 0  # packets read by demuxers
        self.fed: list[int | None] = []  # timestamps of the packets the forward decoder was given
        self.encoders: list[tuple[int, int, str, bool, dict[str, str]]] = []

    def SimpleDecoder(self, enc_file_path, gpu_id=0, cuda_context=0, cuda_stream=0, use_device_memory=True,
                      max_width=0, max_height=0, need_scanned_stream_metadata=0, decoder_cache_size=4,
                      output_color_type="NATIVE", bWaitForSessionWarmUp=False, enableDecodeStats=False):
        assert use_device_memory and output_color_type == "NATIVE" and max_width >= 1920 and max_height >= 1088
        assert isinstance(enc_file_path, (str, bytes))
        with self.lock:
            self.created.append(enc_file_path)
        return FakeSimpleDecoder(self, enc_file_path, bool(need_scanned_stream_metadata))

    def CreateDemuxer(self, filename):
        return FakeDemuxer(self, filename)

    def CreateDecoder(self, gpuid=0, codec=None, cudacontext=0, cudastream=0, usedevicememory=False,
                      maxwidth=0, maxheight=0, outputColorType="NATIVE", enableSEIMessage=False,
                      bWaitForSessionWarmUp=False, latency=None, enableDecodeStats=False):
        assert codec == "h264" and usedevicememory
        return FakeDecoder(self)

    def CreateEncoder(self, width, height, fmt, usecpuinputbuffer, **kwargs):
        # the binding's wrapper: CUDA handles taken out, every other value made a string
        kwargs.pop("cudacontext", None)
        kwargs.pop("cudastream", None)
        config = {key: str(value) for key, value in kwargs.items()}
        self.encoders.append((width, height, fmt, usecpuinputbuffer, config))
        return FakeEncoder(width, height, fmt, config)

    def Transcoder(self, enc_file_path, muxed_file_path, gpu_id, cuda_context, cuda_stream, **kwargs):
        if not all(isinstance(v, str) for v in kwargs.values()):
            raise TypeError("CreateTranscoder(): incompatible function arguments. The following argument types "
                            "are supported: (encSource: str, muxedDst: str, gpuId: int = 0, cudaContext: int = 0, "
                            "cudaStream: int = 0, kwargs: Dict[str, str] = 0)")
        with av.open(enc_file_path) as container:
            if not container.streams.audio:
                raise PyNvVCException("SimpleTranscoder constructor failed: No audio stream found in the input "
                                      "file. Please provide an input file with audio stream.")
        raise NotImplementedError("the stand-in transcodes nothing: vccv_gpu does not use the Transcoder")
