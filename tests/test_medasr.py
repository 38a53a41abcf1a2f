"""MedASR engine: exact window stitching, loading without downloads, a tiny saved model end to end."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="MedASR needs torch (pip install scribe[gpu])")
pytest.importorskip("transformers", reason="MedASR needs transformers>=5 (pip install scribe[gpu])")
pytest.importorskip("sentencepiece", reason="the tiny MedASR test model trains a sentencepiece tokenizer")

from scribe.asr.ctc_decode import greedy_decode  # noqa: E402
from scribe.asr.medasr import (  # noqa: E402
    FrameGeometry,
    MedAsrEngine,
    build_random_full_size_engine,
    medasr_weights_present,
    merge_window_log_probs,
    parameter_count,
    plan_windows,
)
from scribe.config import Settings  # noqa: E402
from scribe.errors import EngineUnavailableError  # noqa: E402
from scribe.records import Medication, PatientContext, Problem  # noqa: E402
from scribe.transcript import Transcript  # noqa: E402

SR = 16_000
GEOM = FrameGeometry()


def tones(seconds: float, seed: int = 0) -> np.ndarray:
    """A tone that jumps to a new pitch and loudness every 100 ms: frames differ, so tokens do."""
    rng = np.random.default_rng(seed)
    n, step = int(seconds * SR), SR // 10
    freq = np.repeat(rng.uniform(100, 4000, n // step + 1), step)[:n]
    amp = np.repeat(rng.uniform(0, 0.5, n // step + 1), step)[:n]
    return (amp * np.sin(np.cumsum(2 * np.pi * freq / SR)) + 0.01 * rng.standard_normal(n)).astype(np.float32)


def assert_well_formed(tr: Transcript, duration: float) -> None:
    assert tr.engine == "medasr" and tr.language == "en"
    assert tr.duration_s == pytest.approx(duration, abs=1e-3)
    assert [s.id for s in tr.segments] == list(range(len(tr.segments)))
    previous = 0.0
    for seg in tr.segments:
        assert seg.words and seg.start == seg.words[0].start and seg.end == seg.words[-1].end
        for w in seg.words:
            assert previous <= w.start <= w.end <= duration
            assert w.probability is None or 0.0 <= w.probability <= 1.0
            previous = w.end
    for ch in "{}[]<>":
        assert ch not in tr.text


@pytest.fixture(scope="module")
def engine_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), asr_model=None, asr_device="cpu", asr_threads=2)


@pytest.fixture(scope="module")
def tiny_engine(tiny_medasr_dir: Path, engine_settings: Settings) -> MedAsrEngine:
    return MedAsrEngine.load(str(tiny_medasr_dir), engine_settings)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("MedASR tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --------------------------------------------------------------------------- windowing


def test_frame_geometry_matches_the_model(tiny_engine: MedAsrEngine) -> None:
    geom = tiny_engine.geometry
    assert geom.samples_per_frame == 640 and geom.frame_s == pytest.approx(0.04)
    assert geom.frames_for_samples(30 * SR) == 747  # measured on google/medasr's architecture
    for n in (geom.samples_for_frames(1), 3 * SR + 17, 20 * SR, 45 * SR + 321):
        features = tiny_engine._features([np.zeros(n, np.float32)], sampling_rate=SR, return_tensors="pt")
        logits = tiny_engine._model(input_features=features["input_features"]).logits
        assert logits.shape[1] == geom.frames_for_samples(n)
    for frames in (1, 7, 500):
        n = geom.samples_for_frames(frames)
        assert geom.frames_for_samples(n) == frames and geom.frames_for_samples(n - 1) == frames - 1


@pytest.mark.parametrize("seconds", [0.15, 1.0, 4.0, 19.9, 20.0, 20.2, 34.1, 36.05, 65.0, 131.3])
def test_windows_tile_the_frames(seconds: float) -> None:
    n = int(seconds * SR)
    windows = plan_windows(n, GEOM)
    assert windows[0].keep_start == 0 and windows[-1].keep_end == GEOM.frames_for_samples(n)
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.keep_end == b.keep_start
        assert b.keep_start - b.frame_start >= 50  # 2 s of left context
        assert a.frame_start + GEOM.frames_for_samples(a.sample_end - a.sample_start) - a.keep_end >= 50
    for w in windows:
        assert w.sample_start == w.frame_start * GEOM.samples_per_frame
        assert w.sample_end - w.sample_start <= GEOM.samples_for_frames(500)
        assert w.frame_start <= w.keep_start < w.keep_end


class FakeModel:
    """Returns the rows of a known global logit matrix for a window, garbage over its context frames.

    The audio is the sample index itself, so a window knows where it starts.
    """

    def __init__(self, total_frames: int, vocab: int = 40, context: int = 50) -> None:
        self.total, self.vocab, self.context = total_frames, vocab, context
        self.rng = np.random.default_rng(0)
        self.calls: list[int] = []

    def rows(self, start: int, stop: int) -> np.ndarray:
        g = np.arange(start, stop)
        ids = np.where(g % 3 == 0, 1 + (g // 3) % (self.vocab - 1), 0)  # token, blank, blank, next token...
        out = np.full((len(g), self.vocab), -9.0, np.float32)
        out[np.arange(len(g)), ids] = 0.0
        return out

    def expected_tokens(self) -> list[int]:
        return [1 + (g // 3) % (self.vocab - 1) for g in range(0, self.total, 3)]

    def __call__(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        self.calls.append(len(chunks))
        outs = []
        for chunk in chunks:
            start = int(chunk[0])
            assert start % GEOM.samples_per_frame == 0
            first = start // GEOM.samples_per_frame
            n = GEOM.frames_for_samples(len(chunk))
            out = self.rows(first, first + n)
            garbage = self.rng.normal(0, 5, (self.context, self.vocab)).astype(np.float32)
            if first > 0:
                out[: self.context] = garbage
            if first + n < self.total:
                out[-self.context :] = garbage
            outs.append(out)
        return outs


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("seconds", [0.2, 1.0, 19.9, 20.0, 20.1, 20.2, 34.1, 36.05, 52.07, 65.0, 131.3])
def test_stitched_windows_decode_exactly(seconds: float, batch_size: int) -> None:
    n = int(seconds * SR)
    audio = np.arange(n, dtype=np.float32)
    fake = FakeModel(GEOM.frames_for_samples(n))
    progress: list[float] = []
    merged = merge_window_log_probs(audio, GEOM, fake, batch_size=batch_size, progress=progress.append)
    assert merged.shape == (fake.total, fake.vocab)
    np.testing.assert_array_equal(merged, fake.rows(0, fake.total))
    tokens = [t.id for t in greedy_decode(merged, blank=0)]
    assert tokens == fake.expected_tokens()  # nothing duplicated, nothing dropped
    assert progress == sorted(progress) and progress[-1] == pytest.approx(fake.total * 0.04, abs=0.05)
    assert max(fake.calls) <= batch_size


# --------------------------------------------------------------------------- the tiny model, end to end


def test_tiny_model_transcribes_45_seconds(tiny_engine: MedAsrEngine, tiny_medasr_dir: Path) -> None:
    seen: list[float] = []
    tr = tiny_engine.transcribe(tones(45.0), progress=seen.append)
    assert_well_formed(tr, 45.0)
    assert tr.model.startswith(f"{tiny_medasr_dir.name}@") and len(tr.model) == len(tiny_medasr_dir.name) + 13
    assert tr.text and sum(len(s.words) for s in tr.segments) > 20
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == pytest.approx(45.0)
    assert tr.processing_s > 0


def test_windowing_keeps_the_single_pass_frame_count(tiny_engine: MedAsrEngine) -> None:
    audio = tones(45.0, seed=1)
    windowed = tiny_engine.frame_log_probs(audio)
    assert windowed.shape[0] == tiny_engine.geometry.frames_for_samples(len(audio))
    short = tones(12.0, seed=2)  # one window: identical to a plain forward pass
    np.testing.assert_allclose(tiny_engine.frame_log_probs(short), tiny_engine.log_probs([short])[0], atol=1e-5)


def test_noise_sine_and_tiny_inputs(tiny_engine: MedAsrEngine) -> None:
    rng = np.random.default_rng(0)
    for audio in (
        (0.1 * rng.standard_normal(3 * SR)).astype(np.float32),
        (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32),
        np.zeros(800, np.float32),  # 50 ms: padded to one frame
    ):
        assert_well_formed(tiny_engine.transcribe(audio), len(audio) / SR)
    empty = tiny_engine.transcribe(np.zeros(0, np.float32))
    assert empty.text == "" and empty.segments == [] and empty.duration_s == 0


def test_hotword_path_runs(tiny_engine: MedAsrEngine) -> None:
    context = PatientContext(
        medications=[Medication("Metformin 500 MG Oral Tablet", "m1")], problems=[Problem("Pleural effusion", "c1")]
    )
    audio = tones(25.0, seed=3)
    tr = tiny_engine.transcribe(audio, context=context)
    assert_well_formed(tr, 25.0)
    assert tr.text


# --------------------------------------------------------------------------- finding weights, never downloading


def test_missing_directory_is_unavailable(engine_settings: Settings, tmp_path: Path, no_network: None) -> None:
    with pytest.raises(EngineUnavailableError, match="scribe models pull medasr"):
        MedAsrEngine.load(str(tmp_path / "nowhere"), engine_settings)
    assert not medasr_weights_present(str(tmp_path / "nowhere"), engine_settings)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    with pytest.raises(EngineUnavailableError, match="no lasr_ctc model"):
        MedAsrEngine.load(str(tmp_path / "other"), engine_settings)


def test_hub_id_not_in_cache_is_unavailable_without_download(
    engine_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    assert not medasr_weights_present(None, engine_settings)
    for source in (None, "google/medasr", "someone/other-medasr"):
        with pytest.raises(EngineUnavailableError, match="not in the local Hugging Face cache.*scribe models pull"):
            MedAsrEngine.load(source, engine_settings)
    assert not (tmp_path / "empty_cache").exists() or not any((tmp_path / "empty_cache").rglob("*.safetensors"))


def test_cached_hub_snapshot_loads_offline(
    tiny_medasr_dir: Path, engine_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--google--medasr"
    shutil.copytree(tiny_medasr_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert medasr_weights_present(None, engine_settings)
    engine = MedAsrEngine.load(None, engine_settings)
    assert engine.model == "google/medasr@0123456789ab"
    assert_well_formed(engine.transcribe(tones(3.0)), 3.0)


def test_pulled_copy_under_models_dir_is_found(
    tiny_medasr_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    settings = Settings(data_dir=tmp_path / "data", asr_model=None, asr_device="cpu", asr_threads=2)
    assert not medasr_weights_present(None, settings)
    shutil.copytree(tiny_medasr_dir, settings.models_dir / "medasr")
    assert medasr_weights_present(None, settings)
    assert MedAsrEngine.load(None, settings).model.startswith("medasr@")


def test_missing_torch_asks_for_the_gpu_extra(
    tiny_medasr_dir: Path, engine_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(EngineUnavailableError, match=r"scribe\[gpu\]"):
        MedAsrEngine.load(str(tiny_medasr_dir), engine_settings)


@pytest.mark.slow  # a fresh Python subprocess
def test_importing_the_module_and_checking_weights_stay_light(tiny_medasr_dir: Path) -> None:
    code = (
        "import sys\n"
        "from scribe.config import Settings\n"
        "from scribe.asr.medasr import medasr_weights_present\n"
        f"assert medasr_weights_present({str(tiny_medasr_dir)!r}, Settings())\n"
        "heavy = {'torch', 'transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


# --------------------------------------------------------------------------- full-size architecture, random weights


@pytest.mark.slow
def test_full_size_random_engine(engine_settings: Settings) -> None:
    engine = build_random_full_size_engine(engine_settings)
    assert 100e6 <= parameter_count(engine) <= 110e6
    assert engine.geometry.frame_s == pytest.approx(0.04)
    tr = engine.transcribe(tones(5.0))
    assert_well_formed(tr, 5.0)
    assert tr.model == "lasr_ctc-full-size-random"
