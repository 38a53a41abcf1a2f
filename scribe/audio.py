"""Decode any audio input to what every ASR engine takes: float32, 16 kHz, mono, in [-1, 1].

libsndfile (soundfile) reads WAV/FLAC/OGG fast and exactly; PyAV (ffmpeg) reads the rest
(MP3, WebM/Opus, M4A/AAC, ...). Both feed one streaming downmix + soxr resampler, so limits
are enforced while decoding and a long file never has to be held at its source rate.
Every failure is an `AudioError` whose message names the input and what is wrong with it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np
import soundfile
import soxr

from scribe.config import Settings
from scribe.errors import AudioError

SAMPLE_RATE = 16_000  # what every engine hears and everything scribe decodes to: mono float32 at this rate

_BLOCK_FRAMES = 65_536
_UNKNOWN_FRAMES = 2**62  # libsndfile reports SF_COUNT_MAX when the header leaves the length open
# Containers libsndfile handles natively (WAV, RF64, W64, AIFF, FLAC, OGG, CAF, AU). Everything
# else goes straight to ffmpeg, which also avoids libsndfile's MP3 decoder printing to stderr.
_SOUNDFILE_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"BW64", b"riff", b"FORM", b"fLaC", b"OggS", b"caff", b".snd")

Blocks = Iterator[tuple[int, np.ndarray]]  # (sample rate, mono float32 block), in order


@dataclass(frozen=True)
class AudioLimits:
    """Largest input accepted, so a huge or endless upload fails fast instead of exhausting memory."""

    max_bytes: int = Settings.model_fields["max_audio_bytes"].default
    max_seconds: float = Settings.model_fields["max_audio_seconds"].default

    @classmethod
    def from_settings(cls, settings: Settings) -> AudioLimits:
        return cls(max_bytes=settings.max_audio_bytes, max_seconds=settings.max_audio_seconds)


def decode_audio(
    source: str | os.PathLike[str] | bytes, limits: AudioLimits | None = None, *, label: str | None = None
) -> np.ndarray:
    """Decode a file path or in-memory file to float32 16 kHz mono, C-contiguous, in [-1, 1].

    Raises AudioError for anything unusable: missing, empty, not audio, unsupported codec,
    damaged, silent-by-absence (no samples), or over `limits` (default: the Settings defaults).
    `label` names the input in messages (default: the path). Peak memory is about the result's size.
    """
    return _concatenate(decoded_blocks(source, limits, label=label))


def decoded_blocks(
    source: str | os.PathLike[str] | bytes, limits: AudioLimits | None = None, *, label: str | None = None
) -> Iterator[np.ndarray]:
    """The decoded audio as consecutive 16 kHz mono float32 blocks, produced while the file is read.

    What `decode_audio` checks is checked here too, so a caller that keeps only part of the audio
    (a window, a span) never holds the whole recording in memory.
    """
    limits = limits or AudioLimits()
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = label or "audio data"
        data = bytes(source)
        _check_size(label, len(data), limits)
        yield from _decode_stream(io.BytesIO(data), label, limits)
        return
    path = os.fsdecode(source)
    label = label or path
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise _unreadable(label, exc) from None
    with fh:
        try:
            _check_size(label, os.fstat(fh.fileno()).st_size, limits)
        except OSError as exc:
            raise _unreadable(label, exc) from None
        yield from _decode_stream(fh, label, limits)


def decode_windows(
    source: str | os.PathLike[str], limits: AudioLimits | None = None, *, window_s: float, label: str | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """(offset in seconds, samples) windows of at most `window_s`, each cut at the quietest moment of its
    last tenth so a word is rarely split: a long recording is transcribed a window at a time."""
    window = max(int(window_s * SAMPLE_RATE), SAMPLE_RATE)
    pending: list[np.ndarray] = []
    buffered = offset = 0
    for block in decoded_blocks(source, limits, label=label):
        pending.append(block)
        buffered += len(block)
        while buffered >= window:
            audio = np.concatenate(pending)
            cut = _quiet_cut(audio[:window])
            yield offset / SAMPLE_RATE, audio[:cut].copy()
            pending, buffered, offset = [audio[cut:]], len(audio) - cut, offset + cut
    if buffered:
        yield offset / SAMPLE_RATE, np.concatenate(pending)


def decoded_seconds(
    source: str | os.PathLike[str], limits: AudioLimits | None = None, *, label: str | None = None
) -> float:
    """How long the audio is, found by decoding all of it and keeping none: a damaged file fails here."""
    return sum(len(block) for block in decoded_blocks(source, limits, label=label)) / SAMPLE_RATE


def decode_span(
    source: str | os.PathLike[str],
    start_s: float,
    end_s: float | None,
    limits: AudioLimits | None = None,
    *,
    label: str | None = None,
) -> np.ndarray:
    """Only `start_s`..`end_s` (None: the end) of the decoded audio; decoding stops at `end_s`."""
    first = int(start_s * SAMPLE_RATE)
    last = None if end_s is None else int(end_s * SAMPLE_RATE)
    kept: list[np.ndarray] = []
    position = 0
    for block in decoded_blocks(source, limits, label=label):
        low = max(first - position, 0)
        high = len(block) if last is None else min(last - position, len(block))
        if high > low:
            kept.append(block[low:high])
        position += len(block)
        if last is not None and position >= last:
            break
    return _concatenate(kept)


def _quiet_cut(window: np.ndarray, frame: int = 800) -> int:
    """The end of `window`'s least energetic 50 ms frame within its last tenth (where to split it)."""
    search = (len(window) // 10) // frame * frame
    if search < frame:
        return len(window)
    tail = window[len(window) - search :].reshape(-1, frame)
    quietest = int(np.argmin(np.einsum("ij,ij->i", tail, tail)))
    return len(window) - search + (quietest + 1) * frame


def _concatenate(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """One array of the blocks, grown in place as they come (realloc), never a list plus a second copy."""
    out = np.empty(SAMPLE_RATE * 60, dtype=np.float32)
    used = 0
    for block in blocks:
        if used + len(block) > len(out):
            out.resize(max(len(out) * 3 // 2, used + len(block)), refcheck=False)
        out[used : used + len(block)] = block
        used += len(block)
    out.resize(used, refcheck=False)
    return out


def check_audio_file(path: str | os.PathLike[str], limits: AudioLimits | None = None) -> None:
    """Refuse, as `decode_audio` would, a path that is missing, a directory, unreadable or over the size limit,
    without decoding it: a command checks every input before it spends time loading a model."""
    label = os.fsdecode(path)
    try:
        with open(label, "rb") as fh:
            _check_size(label, os.fstat(fh.fileno()).st_size, limits or AudioLimits())
    except OSError as exc:
        raise _unreadable(label, exc) from None


def _unreadable(label: str, exc: OSError) -> AudioError:
    if isinstance(exc, FileNotFoundError):
        return AudioError(f"{label}: no such file")
    if isinstance(exc, IsADirectoryError):
        return AudioError(f"{label}: is a directory, not an audio file")
    return AudioError(f"{label}: cannot be read ({exc.strerror or exc})")


def resample(audio: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample with soxr at high quality (band-limited, no aliasing into the speech band)."""
    if rate_in <= 0 or rate_out <= 0:
        raise AudioError(f"invalid sample rate: {rate_in} Hz -> {rate_out} Hz")
    audio = np.asarray(audio, dtype=np.float32)
    if rate_in == rate_out or audio.shape[0] == 0:
        return audio.copy()
    return np.ascontiguousarray(soxr.resample(audio, rate_in, rate_out, quality="HQ"), dtype=np.float32)


def pcm16_to_float(data: bytes, channels: int = 1) -> np.ndarray:
    """Raw little-endian signed 16-bit PCM (the streaming wire format) to float32 mono."""
    if channels < 1:
        raise AudioError(f"PCM audio needs at least one channel, got {channels}")
    if len(data) % (2 * channels):
        raise AudioError(f"PCM audio of {len(data)} bytes is not a whole number of {channels}-channel 16-bit frames")
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32)


def duration_s(audio: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Length in seconds of decoded audio."""
    return len(audio) / rate


def _check_size(label: str, size: int, limits: AudioLimits) -> None:
    if size == 0:
        raise AudioError(f"{label}: the file is empty; it contains no audio")
    if size > limits.max_bytes:
        raise AudioError(f"{label}: {_mib(size)} is over the size limit of {_mib(limits.max_bytes)} (max_audio_bytes)")


def _decode_stream(fh: BinaryIO, label: str, limits: AudioLimits) -> Iterator[np.ndarray]:
    magic = fh.read(4)
    fh.seek(0)
    emitted = 0
    if magic in _SOUNDFILE_MAGIC:
        sound = _open_soundfile(fh)
        if sound is not None:
            try:
                with sound:
                    _check_seconds(label, sound.frames / sound.samplerate, limits)
                    for block in _resampled(_soundfile_blocks(sound), label, limits):
                        emitted += len(block)
                        yield block
                    return
            except _SoundfileReadError:
                pass  # a FLAC cut short or with a corrupt frame: ffmpeg decodes it, or says what is wrong
        fh.seek(0)
    # ffmpeg starts from the beginning: what libsndfile already gave is not given twice
    for block in _decode_with_pyav(fh, label, limits):
        skip = min(emitted, len(block))
        emitted -= skip
        if len(block) > skip:
            yield block[skip:]


def _open_soundfile(fh: BinaryIO) -> soundfile.SoundFile | None:
    """libsndfile's reader, or None to let ffmpeg try (a codec libsndfile lacks, a length it cannot tell)."""
    try:
        sound = soundfile.SoundFile(fh)
    except (soundfile.SoundFileError, RuntimeError, TypeError):
        return None
    if sound.samplerate <= 0 or sound.frames >= _UNKNOWN_FRAMES:  # e.g. streamed FLAC: it fails to read those
        sound.close()
        return None
    return sound


class _SoundfileReadError(Exception):
    """libsndfile opened the file but could not read all of it."""


def _soundfile_blocks(sound: soundfile.SoundFile) -> Blocks:
    read = 0
    try:
        while len(block := sound.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)):
            read += len(block)
            yield sound.samplerate, block.mean(axis=1, dtype=np.float32)
    except (soundfile.SoundFileError, RuntimeError) as exc:
        raise _SoundfileReadError from exc
    if read != sound.frames:  # libsndfile skipped a corrupt frame: later timestamps would be off
        raise _SoundfileReadError


def _decode_with_pyav(fh: BinaryIO, label: str, limits: AudioLimits) -> Iterator[np.ndarray]:
    try:
        container = av.open(fh, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError, EOFError):
        raise AudioError(f"{label}: not a recognised audio file (unknown format, truncated or damaged)") from None
    with container:
        if not container.streams.audio:
            kind = "/".join(sorted({s.type for s in container.streams})) or "no streams"
            raise AudioError(
                f"{label}: unsupported format: {container.format.long_name or container.format.name} "
                f"has no audio stream ({kind})"
            )
        stream = container.streams.audio[0]
        if stream.codec_context is None:
            raise AudioError(f"{label}: unsupported audio codec in {container.format.name} (no decoder for it)")
        if stream.duration is not None and stream.time_base is not None:
            _check_seconds(label, float(stream.duration * stream.time_base), limits)
        elif container.duration is not None:
            _check_seconds(label, container.duration / av.time_base, limits)
        yield from _resampled(_pyav_blocks(container, stream, label), label, limits)


def _pyav_blocks(container: av.container.InputContainer, stream: av.AudioStream, label: str) -> Blocks:
    """Decode packet by packet: a bad packet at the very end (a recording cut short) only loses the tail,
    but one followed by good audio would shift every later timestamp, so that is an error."""
    bad_packet: av.FFmpegError | None = None
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                bad_packet = exc
                continue
            for frame in frames:
                if bad_packet is not None:
                    raise bad_packet
                yield frame.sample_rate, _frame_to_mono(frame)
    except av.FFmpegError as exc:
        raise AudioError(f"{label}: damaged audio data ({exc.strerror or type(exc).__name__})") from None


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    channels = frame.layout.nb_channels
    samples = frame.to_ndarray()
    samples = samples.reshape(channels, -1) if frame.format.is_planar else samples.reshape(-1, channels).T
    if samples.dtype == np.uint8:
        samples = (samples.astype(np.float32) - 128.0) / 128.0
    elif samples.dtype.kind == "i":  # s24 arrives left-aligned in s32, so the container width is the scale
        samples = samples.astype(np.float32) / float(2 ** (8 * samples.dtype.itemsize - 1))
    mono: np.ndarray = samples.mean(axis=0, dtype=np.float32)  # numpy types a mean as Any: here one per sample
    return mono


def _resampled(blocks: Blocks, label: str, limits: AudioLimits) -> Iterator[np.ndarray]:
    """Clean and resample blocks to 16 kHz as they come, stopping as soon as the duration limit is passed."""
    seconds = 0.0
    rate = 0
    push: Callable[[np.ndarray, bool], np.ndarray] | None = None
    for block_rate, block in blocks:
        if block_rate <= 0:
            raise AudioError(f"{label}: invalid sample rate {block_rate} Hz")
        if block_rate != rate:  # rare mid-stream rate change (e.g. HE-AAC): flush and restart
            if push is not None:
                yield _clipped(push(np.zeros(0, np.float32), True))
            rate, push = block_rate, _resampler(block_rate)
        seconds += len(block) / block_rate
        if seconds > limits.max_seconds:
            raise AudioError(
                f"{label}: longer than the limit of {_hms(limits.max_seconds)} (max_audio_seconds); stopped decoding"
            )
        block = np.nan_to_num(np.asarray(block, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
        assert push is not None  # made at the first block, whose rate (> 0) differs from the initial 0
        yield _clipped(push(np.clip(block, -1.0, 1.0), False))
    if push is not None:
        yield _clipped(push(np.zeros(0, np.float32), True))
    if seconds == 0.0:
        raise AudioError(f"{label}: contains no audio (zero samples)")


def _clipped(block: np.ndarray) -> np.ndarray:
    """The resampler may overshoot [-1, 1] slightly; every block leaves in range, float32, contiguous."""
    block = np.ascontiguousarray(block, dtype=np.float32)
    return np.clip(block, -1.0, 1.0, out=block)


def _resampler(rate_in: int) -> Callable[[np.ndarray, bool], np.ndarray]:
    if rate_in == SAMPLE_RATE:
        return lambda chunk, last: chunk
    stream = soxr.ResampleStream(rate_in, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    return lambda chunk, last: stream.resample_chunk(chunk, last=last)


def _check_seconds(label: str, seconds: float, limits: AudioLimits) -> None:
    if seconds > limits.max_seconds:
        raise AudioError(
            f"{label}: {_hms(seconds)} long, over the limit of {_hms(limits.max_seconds)} (max_audio_seconds)"
        )


def _hms(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
