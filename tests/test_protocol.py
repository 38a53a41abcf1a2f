import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from scribe.audio import SAMPLE_RATE
from scribe.streaming import protocol as p
from scribe.streaming.protocol import AudioFormat, ProtocolError, StartMessage, StopMessage, parse_client_text
from scribe.transcript import Segment, Transcript, Word

DOC = (Path(__file__).resolve().parent.parent / "streaming" / "PROTOCOL.md").read_text(encoding="utf-8")
MONO16K = AudioFormat(16000)


@contextmanager
def raises(code: str, close_code: int) -> Iterator[None]:
    """Expect a ProtocolError with exactly this code and close code, and a message for humans."""
    with pytest.raises(ProtocolError) as info:
        yield
    assert (info.value.code, info.value.close_code) == (code, close_code), info.value.message
    assert info.value.message


# --- parsing client text -------------------------------------------------------------------


def test_parse_start_and_stop():
    assert parse_client_text('{"type":"start","sample_rate":16000,"encoding":"pcm_s16le","channels":1}') == (
        StartMessage(16000, "pcm_s16le", 1)
    )
    assert parse_client_text('{"type":"stop"}') == StopMessage()
    start = parse_client_text('{"type":"start","sample_rate":48000,"encoding":"pcm_f32le","channels":2,"extra":1}')
    assert start.format == AudioFormat(48000, "pcm_f32le", 2)


def test_start_defaults_and_integral_floats():
    assert parse_client_text('{"type":"start","sample_rate":44100}') == StartMessage(44100, "pcm_s16le", 1)
    assert parse_client_text('{"type":"start","sample_rate":16000.0,"channels":2.0}') == StartMessage(16000, channels=2)
    assert parse_client_text('{"type":"start","sample_rate":8000}').sample_rate == 8000
    assert parse_client_text('{"type":"stop","why":"done"}') == StopMessage()


@pytest.mark.parametrize(
    ("text", "code", "close_code"),
    [
        ("", "bad_json", 4400),
        ("{", "bad_json", 4400),
        ("{'type': 'stop'}", "bad_json", 4400),
        ("start", "bad_json", 4400),
        ("[" * 3000 + "]" * 3000, "message_too_large", 4413),
        ("[" * 2000 + "]" * 2000, "bad_json", 4400),  # nesting past the parser's recursion limit
        ('"stop"', "bad_message", 4400),
        ("[]", "bad_message", 4400),
        ("null", "bad_message", 4400),
        ("42", "bad_message", 4400),
        ("{}", "bad_message", 4400),
        ('{"type":null}', "bad_message", 4400),
        ('{"type":7}', "bad_message", 4400),
        ('{"type":["stop"]}', "bad_message", 4400),
        ('{"type":"pause"}', "unknown_type", 4400),
        ('{"type":"STOP"}', "unknown_type", 4400),
        ('{"type":"ready","received_ms":0}', "unknown_type", 4400),
        ('{"type":"start"}', "bad_field", 4400),
        ('{"type":"start","sample_rate":null}', "bad_field", 4400),
        ('{"type":"start","sample_rate":"16000"}', "bad_field", 4400),
        ('{"type":"start","sample_rate":16000.5}', "bad_field", 4400),
        ('{"type":"start","sample_rate":true}', "bad_field", 4400),
        ('{"type":"start","sample_rate":NaN}', "bad_field", 4400),
        ('{"type":"start","sample_rate":1e999}', "bad_field", 4400),
        ('{"type":"start","sample_rate":16000,"channels":"1"}', "bad_field", 4400),
        ('{"type":"start","sample_rate":16000,"channels":null}', "bad_field", 4400),
        ('{"type":"start","sample_rate":16000,"encoding":2}', "bad_field", 4400),
        ('{"type":"start","sample_rate":16000,"encoding":"mp3"}', "unsupported_encoding", 4415),
        ('{"type":"start","sample_rate":16000,"encoding":"PCM_S16LE"}', "unsupported_encoding", 4415),
        ('{"type":"start","sample_rate":7999}', "unsupported_sample_rate", 4415),
        ('{"type":"start","sample_rate":48001}', "unsupported_sample_rate", 4415),
        ('{"type":"start","sample_rate":0}', "unsupported_sample_rate", 4415),
        ('{"type":"start","sample_rate":-16000}', "unsupported_sample_rate", 4415),
        ('{"type":"start","sample_rate":' + "9" * 400 + "}", "unsupported_sample_rate", 4415),
        ('{"type":"start","sample_rate":16000,"channels":0}', "unsupported_channels", 4415),
        ('{"type":"start","sample_rate":16000,"channels":3}', "unsupported_channels", 4415),
        ('{"type":"stop","pad":"' + "x" * 5000 + '"}', "message_too_large", 4413),
        ('{"type":"stop","pad":"' + "é" * 2100 + '"}', "message_too_large", 4413),  # 4200 bytes in UTF-8
    ],
)
def test_parse_errors(text: str, code: str, close_code: int):
    with raises(code, close_code):
        parse_client_text(text)


def test_protocol_error_codes_are_closed_set():
    assert ProtocolError("odd_length", "x").close_code == 4422
    assert ProtocolError("internal_error", "x", close_code=1012).close_code == 1012
    with pytest.raises(ValueError):
        ProtocolError("made_up", "x")


# --- frames ----------------------------------------------------------------------------------


def test_frame_limits_16k_mono():
    MONO16K.validate_frame(b"\0" * 320)  # exactly 10 ms
    MONO16K.validate_frame(b"\0" * 16000)  # exactly 500 ms
    with raises("frame_too_short", 4422):
        MONO16K.validate_frame(b"\0" * 318)  # 159 samples = 9.94 ms
    with raises("frame_too_large", 4413):
        MONO16K.validate_frame(b"\0" * 16002)  # 500.06 ms
    with raises("odd_length", 4422):
        MONO16K.validate_frame(b"\0" * 321)
    with raises("odd_length", 4422):
        MONO16K.validate_frame(b"\0")


def test_frame_limits_48k():
    fmt = AudioFormat(48000)
    fmt.validate_frame(b"\0" * 960)  # 480 samples = 10 ms
    with raises("frame_too_short", 4422):
        fmt.validate_frame(b"\0" * 958)  # 479 samples = 9.979 ms
    fmt.validate_frame(b"\0" * 48000)  # 500 ms
    with raises("frame_too_large", 4413):
        fmt.validate_frame(b"\0" * 48096)  # 501 ms


def test_stereo_and_float_frames_must_be_whole_sample_frames():
    stereo = AudioFormat(48000, "pcm_s16le", 2)
    assert stereo.frame_bytes == 4 and stereo.bytes_per_ms == 192
    stereo.validate_frame(b"\0" * 1920)
    with raises("odd_length", 4422):
        stereo.validate_frame(b"\0" * 1922)  # even, but half a stereo frame
    f32 = AudioFormat(16000, "pcm_f32le", 2)
    assert f32.frame_bytes == 8
    f32.validate_frame(b"\0" * 1280)
    for n in (1284, 1282, 1281):
        with raises("odd_length", 4422):
            f32.validate_frame(b"\0" * n)


def test_last_frame_may_be_short_but_not_empty_or_ragged():
    MONO16K.validate_frame(b"\0" * 2, is_last=True)
    MONO16K.validate_frame(b"\0" * 318, is_last=True)
    with raises("frame_too_short", 4422):
        MONO16K.validate_frame(b"", is_last=True)
    with raises("frame_too_short", 4422):
        MONO16K.validate_frame(b"")
    with raises("odd_length", 4422):
        MONO16K.validate_frame(b"\0" * 3, is_last=True)
    with raises("frame_too_large", 4413):
        MONO16K.validate_frame(b"\0" * 16002, is_last=True)


def test_non_integral_sample_counts_round_min_up_and_max_down():
    fmt = AudioFormat(11025)
    assert (fmt.min_frame_bytes, fmt.max_frame_bytes) == (222, 11024)
    fmt.validate_frame(b"\0" * 222)
    fmt.validate_frame(b"\0" * 11024)
    with raises("frame_too_short", 4422):
        fmt.validate_frame(b"\0" * 220)
    with raises("frame_too_large", 4413):
        fmt.validate_frame(b"\0" * 11026)


def test_audio_format_rejects_unsupported_values():
    with raises("unsupported_encoding", 4415):
        AudioFormat(16000, "opus")
    with raises("unsupported_sample_rate", 4415):
        AudioFormat(96000)
    with raises("unsupported_channels", 4415):
        AudioFormat(16000, channels=6)


# --- conversions ------------------------------------------------------------------------------


def test_stereo_s16_48k_to_mono_16k():
    t = np.arange(48000) / 48000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = np.zeros_like(left)  # averaging halves the tone
    pcm = (np.stack([left, right], axis=1) * 32767).astype("<i2").tobytes()
    fmt = AudioFormat(48000, "pcm_s16le", 2)
    mono = fmt.to_float_mono(pcm)
    assert mono.dtype == np.float32 and mono.shape == (48000,)
    np.testing.assert_allclose(mono, left / 2, atol=1e-4)
    out = fmt.to_float_mono_16k(pcm)
    assert out.dtype == np.float32 and out.shape == (SAMPLE_RATE,)
    expected = 0.25 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    np.testing.assert_allclose(out[200:-200], expected[200:-200], atol=2e-3)


def test_f32_is_sanitised_and_clipped():
    raw = np.array([0.5, -0.25, 2.0, -3.0, np.nan, np.inf], dtype="<f4").tobytes()
    out = AudioFormat(16000, "pcm_f32le").to_float_mono(raw)
    np.testing.assert_array_equal(out, np.array([0.5, -0.25, 1.0, -1.0, 0.0, 1.0], dtype=np.float32))


def test_stream_converter_matches_one_shot_resampling():
    fmt = AudioFormat(44100)
    t = np.arange(44100) / 44100
    pcm = (0.3 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes()
    conv = p.StreamConverter(fmt)
    step = 4410 * 2  # 100 ms frames
    chunks = [conv.convert(pcm[i : i + step]) for i in range(0, len(pcm), step)] + [conv.convert(b"", last=True)]
    streamed = np.concatenate(chunks)
    whole = fmt.to_float_mono_16k(pcm)
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    np.testing.assert_allclose(streamed[:n], whole[:n], atol=1e-3)
    same = p.StreamConverter(MONO16K).convert(b"\x00\x40" * 160)
    np.testing.assert_array_equal(same, np.full(160, 0.5, np.float32))


# --- received_ms and server messages ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "received_bytes", "ms"),
    [
        (MONO16K, 0, 0),
        (MONO16K, 32, 1),
        (MONO16K, 62, 1),  # 31 samples = 1.94 ms, floored
        (MONO16K, 3200, 100),
        (AudioFormat(48000, "pcm_s16le", 2), 192_000, 1000),
        (AudioFormat(44100), 882, 10),
        (AudioFormat(44100), 880, 9),  # 440 samples = 9.977 ms
        (AudioFormat(8000, "pcm_f32le", 2), 64_000 * 3600, 3_600_000),
    ],
)
def test_received_ms_is_floored(fmt: AudioFormat, received_bytes: int, ms: int):
    assert p.ready(received_bytes, fmt) == {"type": "ready", "received_ms": ms, "received_bytes": received_bytes}
    assert p.ack(received_bytes, fmt) == {"type": "ack", "received_ms": ms, "received_bytes": received_bytes}


def test_server_message_builders():
    seg = Segment(3, 1.0, 2.5, "Continue lisinopril.", words=[Word("Continue", 1.0, 1.4, 0.9)])
    assert p.final(seg) == {
        "type": "final",
        "segment": {
            "id": 3,
            "start": 1.0,
            "end": 2.5,
            "text": "Continue lisinopril.",
            "speaker": None,
            "words": [{"word": "Continue", "start": 1.0, "end": 1.4, "probability": 0.9}],
        },
    }
    assert p.partial("blood pre", 0, 1.25) == {"type": "partial", "text": "blood pre", "start": 0.0, "end": 1.25}
    tr = Transcript("Continue lisinopril.", "en", "whisper", "base", 2.5, 0.3, [seg])
    done = p.done(tr)
    assert done["type"] == "done" and done["transcript"] == json.loads(tr.to_json())
    assert p.warning("clipping")["code"] == "clipping" and p.warning("silence", "muted?")["message"] == "muted?"
    with pytest.raises(ValueError):
        p.warning("loud")
    assert p.error(ProtocolError("odd_length", "3 bytes")) == {
        "type": "error",
        "code": "odd_length",
        "message": "3 bytes",
    }
    assert p.reconnect() == {"type": "reconnect", "reason": "shutdown"}
    assert p.CLOSE_RESTART == 1012
    assert json.loads(p.dumps(done)) == done and " " not in p.dumps(p.ready(0, MONO16K))


def test_resume_format_and_session_length_checks():
    p.check_same_format(AudioFormat(48000, "pcm_s16le", 2), AudioFormat(48000, "pcm_s16le", 2))
    with raises("format_mismatch", 4409):
        p.check_same_format(AudioFormat(48000, "pcm_s16le", 2), AudioFormat(48000, "pcm_s16le", 1))
    p.check_session_length(32_000 * 60, MONO16K, max_seconds=60)
    with raises("session_too_long", 4413):
        p.check_session_length(32_000 * 60 + 2, MONO16K, max_seconds=60)


# --- encounter ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "good", ["a", "enc-2024-0117", "A.b_C-9", "x" * 64, "...", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"]
)
def test_valid_encounter_ids(good: str):
    assert p.validate_encounter_id(good) == good


@pytest.mark.parametrize("bad", ["", "x" * 65, ".", "..", "a/b", "a b", "enc%2F", "é", "a\n", "../etc", "a\\b"])
def test_invalid_encounter_ids(bad: str):
    with raises("bad_encounter_id", 4400):
        p.validate_encounter_id(bad)


@pytest.mark.parametrize("encounter_id", ["enc-1", "a.b_c", "x" * 64, "", "x" * 65, ".", "..", "a/b", "~incoming"])
def test_the_protocol_takes_exactly_the_ids_the_audio_store_takes(encounter_id: str):
    from scribe.encounter_audio import is_encounter_id

    if is_encounter_id(encounter_id):
        p.validate_encounter_id(encounter_id)
    else:
        with raises("bad_encounter_id", 4400):
            p.validate_encounter_id(encounter_id)


# --- PROTOCOL.md and the code cannot drift ----------------------------------------------------


def test_every_error_code_is_in_the_documented_table_and_nothing_else():
    section = DOC[DOC.index("## 9. Errors") : DOC.index("## 10.")]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{4}) \|", section, flags=re.M))
    assert {code: int(close) for code, close in rows.items()} == p.ERROR_CODES


def test_documented_warning_codes_and_limits():
    assert '"backpressure"\\|"clipping"\\|"silence"' in DOC
    assert all(f"`{code}`" in DOC for code in p.WARNING_CODES)
    assert f"{p.MAX_TEXT_BYTES} bytes" in DOC and f"{int(p.DEFAULT_IDLE_TIMEOUT_S)} s" in DOC
    assert f"{p.MIN_SAMPLE_RATE} to {p.MAX_SAMPLE_RATE} Hz" in DOC
    assert all(f"`{enc}`" in DOC for enc in p.ENCODINGS)


def test_documented_frame_table_matches_the_code():
    rows = re.findall(r"^\s*\| (\d+) Hz, (\d) ch, (pcm_\w+) \| [\d.]+ \| (\d+)[^|]*\| [^|]*\| (\d+)", DOC, flags=re.M)
    assert len(rows) == 5
    for rate, channels, encoding, min_bytes, max_bytes in rows:
        fmt = AudioFormat(int(rate), encoding, int(channels))
        assert (fmt.min_frame_bytes, fmt.max_frame_bytes) == (int(min_bytes), int(max_bytes)), rate


def test_sample_sessions_are_valid_protocol():
    """Every JSON line of §10 is what the code parses or builds; an error answers the client line before it."""
    section = DOC[DOC.index("## 10. Sample session") :]
    lines = re.findall(r"^([CS]): (\{.*\})\s*$", section, flags=re.M)
    assert len(lines) > 15
    fmt, last_client, kinds = None, "", set()
    for side, text in lines:
        if side == "C":
            last_client = text
            try:
                msg = parse_client_text(text)
            except ProtocolError:
                continue
            fmt = msg.format if isinstance(msg, StartMessage) else fmt
            continue
        msg = json.loads(text)
        kind = msg["type"]
        kinds.add(kind)
        if kind in ("ready", "ack"):
            assert msg == getattr(p, kind)(msg["received_bytes"], fmt)
        elif kind == "final":
            assert p.final(Segment(**msg["segment"])) == msg
        elif kind == "partial":
            assert p.partial(msg["text"], msg["start"], msg["end"]) == msg
        elif kind == "warning":
            assert p.warning(msg["code"]) == msg
        elif kind == "done":
            assert p.done(Transcript.from_dict(msg["transcript"])) == msg
        elif kind == "error":
            with pytest.raises(ProtocolError) as info:
                parse_client_text(last_client)
            assert p.error(info.value) == msg
            assert f"<close {info.value.close_code}>" in section
        else:
            pytest.fail(f"undocumented server message {kind}")
    assert kinds == {"ready", "ack", "partial", "final", "warning", "done", "error"}
