"""The websocket wire protocol of streaming/PROTOCOL.md as types: parse what clients send, build what
the server sends. No web framework here, so the session, the Python client and the tests share one
definition, and every way a client can be wrong maps to one documented error `code` and close code.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import soxr

from scribe.audio import SAMPLE_RATE, pcm16_to_float, resample
from scribe.encounter_audio import is_encounter_id
from scribe.errors import ScribeError
from scribe.transcript import Segment, Transcript

# code -> websocket close code. PROTOCOL.md's error table lists exactly these (a test checks it).
ERROR_CODES: Final[dict[str, int]] = {
    "bad_json": 4400,
    "bad_message": 4400,
    "unknown_type": 4400,
    "bad_field": 4400,
    "bad_encounter_id": 4400,
    "unauthorized": 4401,
    "forbidden": 4403,
    "idle_timeout": 4408,
    "already_streaming": 4409,
    "format_mismatch": 4409,
    "message_too_large": 4413,
    "frame_too_large": 4413,
    "session_too_long": 4413,
    "unsupported_encoding": 4415,
    "unsupported_sample_rate": 4415,
    "unsupported_channels": 4415,
    "already_started": 4422,
    "frame_before_start": 4422,
    "stop_before_start": 4422,
    "odd_length": 4422,
    "frame_too_short": 4422,
    "internal_error": 1011,
    "server_busy": 1013,
}
CLOSE_NORMAL: Final = 1000  # after `done`
CLOSE_RESTART: Final = 1012  # after `reconnect`: the node is going away, resume elsewhere

ENCODINGS: Final[dict[str, int]] = {"pcm_s16le": 2, "pcm_f32le": 4}  # encoding -> bytes per sample
MIN_SAMPLE_RATE: Final = 8_000
MAX_SAMPLE_RATE: Final = 48_000
CHANNELS: Final = (1, 2)
MIN_FRAME_MS: Final = 10
MAX_FRAME_MS: Final = 500
MAX_TEXT_BYTES: Final = 4_096  # control messages are tiny; a big one is abuse, not a client bug
DEFAULT_IDLE_TIMEOUT_S: Final = 60.0
WARNING_CODES: Final = ("backpressure", "clipping", "silence")


class ProtocolError(ScribeError):
    """A client broke the protocol (or the server cannot go on): send `error(exc)`, then close with `close_code`."""

    exit_code = 3

    def __init__(self, code: str, message: str, close_code: int | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"undocumented protocol error code {code!r}; add it to ERROR_CODES and PROTOCOL.md")
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = ERROR_CODES[code] if close_code is None else close_code


def validate_encounter_id(encounter_id: str) -> str:
    """The id itself, if it is 1-64 of A-Z a-z 0-9 . _ - (and not a path step such as `..`)."""
    if not is_encounter_id(encounter_id):
        raise ProtocolError("bad_encounter_id", f"invalid encounter id {encounter_id!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    return encounter_id


@dataclass(frozen=True)
class AudioFormat:
    """What the client's binary frames contain: interleaved little-endian PCM at `sample_rate`."""

    sample_rate: int
    encoding: str = "pcm_s16le"
    channels: int = 1

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ProtocolError(
                "unsupported_encoding",
                f"encoding {self.encoding!r} is not supported; use one of {', '.join(ENCODINGS)}",
            )
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise ProtocolError(
                "unsupported_sample_rate",
                f"sample_rate {self.sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz",
            )
        if self.channels not in CHANNELS:
            raise ProtocolError("unsupported_channels", f"channels must be 1 or 2, got {self.channels}")

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample frame (one sample of every channel); every frame and offset is a multiple."""
        return ENCODINGS[self.encoding] * self.channels

    @property
    def bytes_per_ms(self) -> float:
        return self.sample_rate * self.frame_bytes / 1000

    @property
    def min_frame_bytes(self) -> int:
        return math.ceil(self.sample_rate * MIN_FRAME_MS / 1000) * self.frame_bytes

    @property
    def max_frame_bytes(self) -> int:
        return self.sample_rate * MAX_FRAME_MS // 1000 * self.frame_bytes

    def ms_for_bytes(self, n_bytes: int) -> int:
        """Whole milliseconds of audio in `n_bytes` (floor), the `received_ms` of `ready`/`ack`."""
        return n_bytes // self.frame_bytes * 1000 // self.sample_rate

    def seconds_for_bytes(self, n_bytes: int) -> float:
        return n_bytes // self.frame_bytes / self.sample_rate

    def validate_frame(self, data: bytes, *, is_last: bool = False) -> None:
        """Raise ProtocolError unless `data` is whole sample frames of 10-500 ms (the last may be shorter)."""
        n = len(data)
        if n > self.max_frame_bytes:
            raise ProtocolError(
                "frame_too_large", f"frame of {n} bytes is over {MAX_FRAME_MS} ms ({self.max_frame_bytes} bytes) {self}"
            )
        if n % self.frame_bytes:
            raise ProtocolError(
                "odd_length",
                f"frame of {n} bytes is not a whole number of {self.frame_bytes}-byte sample frames {self}",
            )
        if n == 0 or (n < self.min_frame_bytes and not is_last):
            raise ProtocolError(
                "frame_too_short",
                f"frame of {n} bytes is under {MIN_FRAME_MS} ms ({self.min_frame_bytes} bytes) {self}; "
                "only the last frame before stop may be shorter, and never empty",
            )

    def to_float_mono(self, data: bytes) -> np.ndarray:
        """Frames to float32 mono in [-1, 1] at the declared rate (channels averaged)."""
        if self.encoding == "pcm_s16le":
            return pcm16_to_float(data, self.channels)
        samples = np.frombuffer(data, dtype="<f4")
        samples = np.clip(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        return np.ascontiguousarray(samples, dtype=np.float32)

    def to_float_mono_16k(self, data: bytes) -> np.ndarray:
        """A whole buffer (e.g. stored audio) as ASR input; live frames go through StreamConverter instead."""
        return resample(self.to_float_mono(data), self.sample_rate, SAMPLE_RATE)

    def __str__(self) -> str:
        return f"({self.encoding}, {self.sample_rate} Hz, {self.channels} ch)"


class StreamConverter:
    """Frame-by-frame conversion to ASR input with one resampler state, so chunk edges leave no clicks."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._stream = (
            None
            if fmt.sample_rate == SAMPLE_RATE
            else soxr.ResampleStream(fmt.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        )

    def convert(self, data: bytes, *, last: bool = False) -> np.ndarray:
        """16 kHz mono float32 for `data`; pass last=True at stop to flush the resampler's tail."""
        return self.resample(self.format.to_float_mono(data), last=last)

    def resample(self, mono: np.ndarray, *, last: bool = False) -> np.ndarray:
        """16 kHz for mono samples at the stream's rate (what `AudioFormat.to_float_mono` gives)."""
        if self._stream is None:
            return mono
        return np.ascontiguousarray(self._stream.resample_chunk(mono, last=last), dtype=np.float32)


def check_same_format(stored: AudioFormat, declared: AudioFormat) -> None:
    """A resumed encounter appends to raw audio, so its format can never change mid-recording."""
    if stored != declared:
        raise ProtocolError(
            "format_mismatch", f"this encounter's audio is {stored}; resume with that format, not {declared}"
        )


def check_session_length(received_bytes: int, fmt: AudioFormat, max_seconds: float) -> None:
    """Raise once the encounter's stored audio (all sessions) would pass `max_seconds`."""
    if fmt.seconds_for_bytes(received_bytes) > max_seconds:
        raise ProtocolError("session_too_long", f"the encounter's audio would pass the limit of {max_seconds:g} s")


@dataclass(frozen=True)
class StartMessage:
    """`{"type":"start",...}`: declares the audio format; `encoding` and `channels` may be omitted."""

    sample_rate: int
    encoding: str = "pcm_s16le"
    channels: int = 1
    type: str = "start"

    def __post_init__(self) -> None:
        self.format  # noqa: B018 - building the AudioFormat validates the values (unsupported_*)

    @property
    def format(self) -> AudioFormat:
        return AudioFormat(self.sample_rate, self.encoding, self.channels)


@dataclass(frozen=True)
class StopMessage:
    """`{"type":"stop"}`: no more audio; the server flushes and answers with `done`."""

    type: str = "stop"


def _int_field(msg: dict[str, Any], name: str, default: int | None) -> int:
    value = msg.get(name, default)
    if value is None:
        raise ProtocolError("bad_field", f"start needs {name!r} (an integer)")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 16000.0 from a client that computed it: the same number
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("bad_field", f"{name!r} must be an integer, got {json.dumps(value)[:40]}")
    return value


def parse_client_text(text: str) -> StartMessage | StopMessage:
    """Parse one text frame from a client; every malformation is a ProtocolError with its own code."""
    if len(text) > MAX_TEXT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise ProtocolError("message_too_large", f"text messages are limited to {MAX_TEXT_BYTES} bytes")
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"text message is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_message", f"a message must be a JSON object, got {type(msg).__name__}")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", 'a message needs a string "type"')
    if kind == "stop":
        return StopMessage()
    if kind != "start":
        raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r}; clients send start or stop")
    encoding = msg.get("encoding", "pcm_s16le")
    if not isinstance(encoding, str):
        raise ProtocolError("bad_field", f"'encoding' must be a string, got {json.dumps(encoding)[:40]}")
    return StartMessage(_int_field(msg, "sample_rate", None), encoding, _int_field(msg, "channels", 1))


# Server -> client messages. Builders return plain dicts; `dumps` makes the text frame.
Message = dict[str, Any]


def dumps(message: Message) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def ready(received_bytes: int, fmt: AudioFormat) -> Message:
    return {"type": "ready", "received_ms": fmt.ms_for_bytes(received_bytes), "received_bytes": received_bytes}


def ack(received_bytes: int, fmt: AudioFormat) -> Message:
    """Send only once `received_bytes` are durably stored: the client may then drop them."""
    return {"type": "ack", "received_ms": fmt.ms_for_bytes(received_bytes), "received_bytes": received_bytes}


def partial(text: str, start: float, end: float) -> Message:
    return {"type": "partial", "text": text, "start": float(start), "end": float(end)}


def final(segment: Segment) -> Message:
    """The segment in its Transcript JSON shape, so clients build the transcript with one parser."""
    return {"type": "final", "segment": asdict(segment)}


def done(transcript: Transcript) -> Message:
    return {"type": "done", "transcript": transcript.to_dict()}


def warning(code: str, message: str | None = None) -> Message:
    if code not in WARNING_CODES:
        raise ValueError(f"undocumented warning code {code!r}")
    return {"type": "warning", "code": code, "message": message or _WARNING_TEXT[code]}


def error(exc: ProtocolError) -> Message:
    return {"type": "error", "code": exc.code, "message": exc.message}


def reconnect(reason: str = "shutdown") -> Message:
    """Sent before close 1012: the client reconnects (to any node) and resumes from `received_bytes`."""
    return {"type": "reconnect", "reason": reason}


_WARNING_TEXT = {
    "backpressure": "transcription is behind the audio; audio is still stored and acknowledged",
    "clipping": "the input is clipping; lower the microphone gain",
    "silence": "no speech signal for a while; check the microphone",
}
