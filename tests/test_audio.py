"""scribe.audio: every supported format decodes to 16 kHz mono float32; every bad input is one AudioError."""

from __future__ import annotations

import io
import os
import struct
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from scribe.audio import SAMPLE_RATE, AudioLimits, decode_audio, duration_s, pcm16_to_float, resample
from scribe.config import Settings
from scribe.errors import AudioError, BadInputError

TONE_HZ = 440.0
SECONDS = 1.5
AMPLITUDE = 0.5
LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def tone(rate: int, channels: int = 1, seconds: float = SECONDS) -> np.ndarray:
    """(frames, channels) float64 sine, the same in every channel."""
    t = np.arange(int(round(rate * seconds))) / rate
    wave = AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)
    return np.repeat(wave[:, None], channels, axis=1)


def write_pyav(
    path: Path,
    codec: str,
    rate: int,
    channels: int,
    fmt: str | None = None,
    seconds: float = SECONDS,
    seekable: bool = True,
) -> Path:
    """Encode the test tone with ffmpeg; PyAV converts our float frames to the codec's sample format."""
    samples = tone(rate, channels, seconds).T.astype(np.float32)
    sink: io.BytesIO | None = None
    if seekable:
        container = av.open(str(path), "w", format=fmt)
    else:  # a live stream: the muxer cannot go back to write the duration
        sink = _Unseekable()
        container = av.open(sink, "w", format=fmt)
    stream = container.add_stream(codec, rate=rate, layout=LAYOUTS[channels])
    step = 1024
    for start in range(0, samples.shape[1], step):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, start : start + step]), format="fltp", layout=LAYOUTS[channels]
        )
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    if sink is not None:
        path.write_bytes(sink.getvalue())
    return path


class _Unseekable(io.BytesIO):
    def seekable(self) -> bool:
        return False


def dominant_hz(audio: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[np.argmax(spectrum)])


def assert_tone(audio: np.ndarray, length_tol_s: float, amp_tol: float = 0.05, amplitude: float = AMPLITUDE) -> None:
    assert audio.dtype == np.float32
    assert audio.ndim == 1 and audio.flags.c_contiguous
    assert abs(duration_s(audio) - SECONDS) <= length_tol_s, duration_s(audio)
    assert np.abs(audio).max() <= 1.0
    middle = audio[int(0.2 * SAMPLE_RATE) : int(1.3 * SAMPLE_RATE)]  # away from codec edge transients
    assert abs(np.abs(middle).max() - amplitude) <= amp_tol, np.abs(middle).max()
    assert abs(dominant_hz(middle) - TONE_HZ) <= 2.0


# --- formats that decode -------------------------------------------------------------------------


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_every_sample_format(tmp_path: Path, subtype: str) -> None:
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(44_100, 2), 44_100, subtype=subtype)
    assert_tone(decode_audio(path), length_tol_s=0.002, amp_tol=0.01)


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100, 48_000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_wav_every_rate_and_channel_count(tmp_path: Path, rate: int, channels: int) -> None:
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(rate, channels), rate, subtype="PCM_16")
    assert_tone(decode_audio(path), length_tol_s=0.002, amp_tol=0.01)


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate", "channels"),
    [
        ("FLAC", "PCM_S8", 8_000, 1),
        ("FLAC", "PCM_16", 22_050, 2),
        ("FLAC", "PCM_24", 48_000, 6),
        ("OGG", "VORBIS", 44_100, 2),
        ("OGG", "VORBIS", 22_050, 1),
    ],
)
def test_soundfile_formats(tmp_path: Path, fmt: str, subtype: str, rate: int, channels: int) -> None:
    path = tmp_path / f"tone.{fmt.lower()}"
    soundfile.write(path, tone(rate, channels), rate, format=fmt, subtype=subtype)
    lossy = subtype == "VORBIS"
    assert_tone(decode_audio(path), length_tol_s=0.06 if lossy else 0.002, amp_tol=0.05 if lossy else 0.02)


LOSSY = [
    ("mp3", "libmp3lame", None, 8_000, 1),
    ("mp3", "libmp3lame", None, 22_050, 2),
    ("mp3", "libmp3lame", None, 44_100, 2),
    ("mp3", "libmp3lame", None, 48_000, 1),
    ("ogg", "libopus", None, 48_000, 2),
    ("opus", "libopus", "ogg", 8_000, 1),
    ("ogg", "libopus", None, 48_000, 6),
    ("webm", "libopus", None, 48_000, 1),
    ("webm", "libopus", None, 16_000, 2),
    ("webm", "libopus", None, 48_000, 6),
    ("m4a", "aac", "mp4", 44_100, 2),
    ("m4a", "aac", "mp4", 22_050, 1),
    ("m4a", "aac", "mp4", 8_000, 1),
    ("m4a", "aac", "mp4", 48_000, 6),
]


@pytest.mark.parametrize(("ext", "codec", "fmt", "rate", "channels"), LOSSY)
def test_lossy_formats(tmp_path: Path, ext: str, codec: str, fmt: str | None, rate: int, channels: int) -> None:
    path = write_pyav(tmp_path / f"tone.{ext}", codec, rate, channels, fmt)
    assert_tone(decode_audio(path), length_tol_s=0.06, amp_tol=0.1)


@pytest.mark.parametrize("codec", ["pcm_u8", "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le"])
def test_ffmpeg_sample_formats(tmp_path: Path, codec: str) -> None:
    """Matroska PCM goes through PyAV, so its own integer scaling is exercised for every width."""
    path = write_pyav(tmp_path / "tone.mka", codec, 48_000, 2)
    assert_tone(decode_audio(path), length_tol_s=0.002, amp_tol=0.02)


def test_flac_through_ffmpeg(tmp_path: Path) -> None:
    path = write_pyav(tmp_path / "tone.mka", "flac", 44_100, 6)
    assert_tone(decode_audio(path), length_tol_s=0.002, amp_tol=0.01)


def test_bytes_input_matches_path_input(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, tone(48_000, 2), 48_000)
    mp3 = write_pyav(tmp_path / "tone.mp3", "libmp3lame", 44_100, 1)
    for path in (wav, mp3):
        np.testing.assert_array_equal(decode_audio(path.read_bytes()), decode_audio(path))
    assert_tone(decode_audio(str(wav)), length_tol_s=0.002, amp_tol=0.01)


def test_flac_of_unknown_length(tmp_path: Path) -> None:
    """A streamed FLAC leaves STREAMINFO's sample count at 0; libsndfile cannot read it, ffmpeg can."""
    path = tmp_path / "streamed.flac"
    soundfile.write(path, tone(44_100, 2), 44_100, format="FLAC")
    data = bytearray(path.read_bytes())
    info = 8  # "fLaC" + metadata block header; the count is the low 36 bits ending at info + 18
    data[info + 13] &= 0xF0
    data[info + 14 : info + 18] = bytes(4)
    path.write_bytes(bytes(data))
    assert soundfile.info(path).frames > 2**62
    assert_tone(decode_audio(path), length_tol_s=0.002, amp_tol=0.01)


@pytest.mark.parametrize(
    ("ext", "codec"), [("wav", "pcm_s16le"), ("flac", "flac"), ("webm", "libopus"), ("mp3", "libmp3lame")]
)
def test_recording_cut_short_keeps_what_is_there(tmp_path: Path, ext: str, codec: str) -> None:
    full = write_pyav(tmp_path / f"full.{ext}", codec, 48_000, 2, seconds=3.0)
    data = full.read_bytes()
    audio = decode_audio(data[: len(data) * 2 // 3])
    assert 0.5 < duration_s(audio) < 2.5
    assert abs(dominant_hz(audio) - TONE_HZ) <= 2.0


def test_corruption_in_the_middle_is_an_error(tmp_path: Path) -> None:
    """Dropping a bad packet mid-file would shift every later timestamp, so it is reported instead."""
    path = write_pyav(tmp_path / "tone.mka", "flac", 44_100, 2)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = np.random.default_rng(1).integers(0, 256, 64, dtype=np.uint8).tobytes()
    expect_error(bytes(data), "damaged audio data")


def test_integer_scaling_is_exact(tmp_path: Path) -> None:
    values = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    path = tmp_path / "exact.wav"
    soundfile.write(path, values, SAMPLE_RATE, subtype="PCM_16")
    np.testing.assert_array_equal(decode_audio(path), values / 32768.0)

    container = av.open(str(tmp_path / "u8.mka"), "w")
    stream = container.add_stream("pcm_u8", rate=SAMPLE_RATE, layout="mono")
    frame = av.AudioFrame.from_ndarray(np.array([[0, 64, 128, 192, 255]], dtype=np.uint8), format="u8", layout="mono")
    frame.sample_rate, frame.pts = SAMPLE_RATE, 0
    for packet in [*stream.encode(frame), *stream.encode(None)]:
        container.mux(packet)
    container.close()
    np.testing.assert_array_equal(
        decode_audio(tmp_path / "u8.mka"), np.array([-1, -0.5, 0, 0.5, 127 / 128], np.float32)
    )


def test_downmix_is_the_channel_mean(tmp_path: Path) -> None:
    stereo = tone(SAMPLE_RATE, 2)
    stereo[:, 1] = 0.0
    path = tmp_path / "left_only.wav"
    soundfile.write(path, stereo, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(decode_audio(path), stereo[:, 0] / 2, atol=1e-7)


def test_out_of_range_and_nan_samples_are_clipped(tmp_path: Path) -> None:
    path = tmp_path / "wild.wav"
    samples = np.array([0.5, np.nan, np.inf, -np.inf, 2.0, -3.0], dtype=np.float32)
    soundfile.write(path, samples, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(decode_audio(path), np.array([0.5, 0, 1, -1, 1, -1], np.float32))


# --- bad input: one AudioError each, with a message that names the file and the problem ------------


def expect_error(source: object, fragment: str, limits: AudioLimits | None = None) -> str:
    with pytest.raises(AudioError) as info:
        decode_audio(source, limits)  # type: ignore[arg-type]
    message = str(info.value)
    assert fragment in message
    assert "Traceback" not in message and "\n" not in message
    assert info.value.__cause__ is None
    return message


def test_audio_error_is_bad_input() -> None:
    assert issubclass(AudioError, BadInputError) and AudioError.exit_code == 3


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert str(path) in expect_error(path, "contains no audio")
    expect_error(b"", "contains no audio")


def test_header_without_samples(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    soundfile.write(path, np.zeros(0, np.float32), SAMPLE_RATE)
    expect_error(path, "contains no audio")


def test_truncated_wav_header(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    soundfile.write(good, tone(SAMPLE_RATE), SAMPLE_RATE)
    path = tmp_path / "truncated.wav"
    path.write_bytes(good.read_bytes()[:20])
    assert str(path) in expect_error(path, "not a recognised audio file")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    expect_error(path, "not a recognised audio file")


def test_text_file_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("Patient reports a cough for three days.\n" * 40, encoding="utf-8")
    expect_error(path, "not a recognised audio file")


def test_wav_with_unknown_codec(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    soundfile.write(good, tone(SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    data = good.read_bytes()
    tag = data.index(b"fmt ") + 8
    path = tmp_path / "unknown_codec.wav"
    path.write_bytes(data[:tag] + struct.pack("<H", 0x1234) + data[tag + 2 :])
    expect_error(path, "unsupported audio codec")


def test_video_only_container(tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for _ in range(3):
        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    expect_error(path, "unsupported format")


def test_image(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    container = av.open(str(path), "w")
    stream = container.add_stream("png")
    stream.width, stream.height, stream.pix_fmt = 8, 8, "rgb24"
    frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
    for packet in [*stream.encode(frame), *stream.encode(None)]:
        container.mux(packet)
    container.close()
    assert path.read_bytes().startswith(b"\x89PNG")
    expect_error(path, "has no audio stream")


def test_over_the_byte_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.wav"
    soundfile.write(path, tone(48_000, 2), 48_000)
    limits = AudioLimits(max_bytes=100_000, max_seconds=60)
    expect_error(path, "over the size limit", limits)
    expect_error(path.read_bytes(), "over the size limit", limits)


@pytest.fixture(scope="module")
def hour_of_silence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 1-hour FLAC (8 kHz silence compresses to ~90 KB and encodes in a fraction of a second)."""
    path = tmp_path_factory.mktemp("long") / "hour.flac"
    with soundfile.SoundFile(path, "w", 8_000, 1, subtype="PCM_16", format="FLAC") as sound:
        minute = np.zeros(8_000 * 60, np.int16)
        for _ in range(60):
            sound.write(minute)
    return path


def test_over_the_duration_limit_is_rejected_from_the_header(hour_of_silence: Path) -> None:
    started = time.perf_counter()
    message = expect_error(hour_of_silence, "over the limit", AudioLimits(max_bytes=10**9, max_seconds=600))
    assert time.perf_counter() - started < 0.5
    assert "1:00:00" in message and "0:10:00" in message


def test_over_the_duration_limit_through_ffmpeg_header(hour_of_silence: Path, tmp_path: Path) -> None:
    """The same hour remuxed (not re-encoded) into Matroska: PyAV's container duration rejects it."""
    path = tmp_path / "hour.mka"
    with av.open(str(hour_of_silence)) as source, av.open(str(path), "w") as target:
        out = target.add_stream_from_template(source.streams.audio[0])
        for packet in source.demux(source.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = out
                target.mux(packet)
    started = time.perf_counter()
    expect_error(path, "1:00:00 long", AudioLimits(max_bytes=10**9, max_seconds=600))
    assert time.perf_counter() - started < 0.5


def test_over_the_duration_limit_while_decoding(tmp_path: Path) -> None:
    """A live-streamed WebM carries no duration, so the limit must stop the decoder itself."""
    path = write_pyav(tmp_path / "live.webm", "libopus", 48_000, 1, "webm", seconds=5.0, seekable=False)
    with av.open(str(path)) as probe:
        assert probe.duration is None and probe.streams.audio[0].duration is None
    expect_error(path, "stopped decoding", AudioLimits(max_bytes=10**9, max_seconds=2.0))
    assert abs(duration_s(decode_audio(path)) - 5.0) < 0.06


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.wav"
    assert str(path) in expect_error(path, "no such file")


def test_directory(tmp_path: Path) -> None:
    expect_error(tmp_path, "is a directory")


def test_path_through_a_file(tmp_path: Path) -> None:
    (tmp_path / "recording.wav").write_bytes(b"RIFF")
    expect_error(tmp_path / "recording.wav" / "inner.wav", "cannot be read")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    soundfile.write(path, tone(SAMPLE_RATE), SAMPLE_RATE)
    path.chmod(0)
    try:
        expect_error(path, "cannot be read")
    finally:
        path.chmod(0o600)


def test_limits_from_settings() -> None:
    settings = Settings(max_audio_bytes=1234, max_audio_seconds=5.5)
    assert AudioLimits.from_settings(settings) == AudioLimits(max_bytes=1234, max_seconds=5.5)
    assert AudioLimits() == AudioLimits.from_settings(Settings())


# --- helpers the streaming layer reuses -----------------------------------------------------------


def test_pcm16_to_float() -> None:
    mono = np.array([-32768, 0, 16384, 32767], dtype="<i2")
    out = pcm16_to_float(mono.tobytes())
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, mono / 32768.0)
    stereo = np.array([[16384, 0], [-16384, -16384]], dtype="<i2")
    np.testing.assert_array_equal(pcm16_to_float(stereo.tobytes(), channels=2), np.array([0.25, -0.5], np.float32))
    assert pcm16_to_float(b"").shape == (0,)


def test_pcm16_rejects_partial_frames() -> None:
    with pytest.raises(AudioError, match="not a whole number"):
        pcm16_to_float(b"\x00\x01\x02")
    with pytest.raises(AudioError, match="not a whole number"):
        pcm16_to_float(b"\x00\x01\x02\x03\x04\x05", channels=2)
    with pytest.raises(AudioError, match="at least one channel"):
        pcm16_to_float(b"", channels=0)


@pytest.mark.parametrize("rate_in", [8_000, 22_050, 44_100, 48_000])
def test_resample(rate_in: int) -> None:
    out = resample(tone(rate_in)[:, 0].astype(np.float32), rate_in)
    assert_tone(out, length_tol_s=0.001, amp_tol=0.01)


def test_resample_identity_and_bad_rates() -> None:
    audio = tone(SAMPLE_RATE)[:, 0].astype(np.float32)
    same = resample(audio, SAMPLE_RATE)
    np.testing.assert_array_equal(same, audio)
    assert same is not audio
    assert resample(np.zeros(0, np.float32), 44_100).shape == (0,)
    with pytest.raises(AudioError, match="invalid sample rate"):
        resample(audio, 0)
