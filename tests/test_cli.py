"""`scribe transcribe` and `scribe models` as a user meets them: results on stdout, messages on stderr, exit codes."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from scribe.cli import run
from scribe.config import Settings
from tests.conftest import SAMPLES
from tests.helpers.server import run_scribe

SAMPLE = sorted(SAMPLES.glob("*.wav"))[0]
BUNDLE = SAMPLE.with_name(SAMPLE.stem + ".bundle.json")


@pytest.fixture(autouse=True)
def data_dir(settings: Settings) -> Settings:
    """Every CLI run shares the session's data directory (bundled Whisper assembled once)."""
    return settings


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow  # transcribes with the bundled Whisper
@pytest.mark.parametrize("fmt", ["txt", "json", "srt", "vtt"])
def test_each_output_format(capsys, fmt):
    code, out, err = cli(capsys, "transcribe", SAMPLE, "--format", fmt, "--mode", "dictation")
    assert code == 0, err
    assert "ASR engine: whisper (auto: dictation mode but no local MedASR weights" in err
    if fmt == "json":
        data = json.loads(out)
        assert set(data) == {"text", "language", "engine", "model", "duration_s", "processing_s", "segments"}
        assert data["engine"] == "whisper" and data["language"] == "en" and data["text"]
        assert all({"id", "start", "end", "text", "speaker", "words"} <= set(s) for s in data["segments"])
    elif fmt == "srt":
        assert out.startswith("1\n00:00:") and " --> " in out
    elif fmt == "vtt":
        assert out.startswith("WEBVTT\n\n00:00:")
    else:
        assert out.strip() and "\n" not in out.strip()


@pytest.mark.slow  # transcribes with the bundled Whisper
def test_records_and_output_file(capsys, tmp_path: Path):
    target = tmp_path / "out.json"
    code, out, err = cli(capsys, "transcribe", SAMPLE, "--records", BUNDLE, "-f", "json", "-o", target)
    assert code == 0, err
    assert out == "" and json.loads(target.read_text())["segments"]


@pytest.mark.slow  # transcribes with the bundled Whisper
def test_several_files_to_a_directory_and_to_stdout(capsys, tmp_path: Path):
    second = tmp_path / "copy.flac"
    audio, rate = soundfile.read(SAMPLE)
    soundfile.write(second, audio, rate)
    code, _, err = cli(capsys, "transcribe", SAMPLE, second, "-f", "srt", "-o", tmp_path / "outdir")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "outdir").iterdir()) == sorted([f"{SAMPLE.stem}.srt", "copy.srt"])
    code, out, err = cli(capsys, "transcribe", SAMPLE, second, "-f", "json")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and all(json.loads(line)["text"] for line in lines)


def test_several_files_need_a_directory(capsys, tmp_path: Path):
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    code, out, err = cli(capsys, "transcribe", SAMPLE, SAMPLE, "-o", existing)
    assert code == 2 and "must name a directory" in err and out == ""


def write_bad_inputs(tmp_path: Path) -> dict[str, Path]:
    wav_bytes = SAMPLE.read_bytes()
    files = {
        "empty": b"",
        "truncated": wav_bytes[:20],
        "random": np.random.default_rng(0).bytes(50_000),
        "text": b"Patient notes, not audio.\n" * 50,
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.wav"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "text", "missing"])
def test_bad_audio_exits_3_without_traceback(capsys, tmp_path: Path, kind):
    path = write_bad_inputs(tmp_path).get(kind, tmp_path / "missing.wav")
    code, out, err = cli(capsys, "transcribe", path)
    assert code == 3 and out == ""
    assert f"scribe: error: {path}" in err and "Traceback" not in err


def test_over_the_duration_limit(capsys, monkeypatch):
    monkeypatch.setenv("SCRIBE_MAX_AUDIO_SECONDS", "2")
    code, out, err = cli(capsys, "transcribe", SAMPLE)
    assert code == 3 and "limit" in err and out == ""


@pytest.mark.slow  # transcribes with the bundled Whisper
def test_good_files_still_transcribed_when_one_is_bad(capsys, tmp_path: Path):
    bad = write_bad_inputs(tmp_path)["random"]
    code, out, err = cli(capsys, "transcribe", bad, SAMPLE)
    assert code == 3 and out.strip() and str(bad) in err


def test_malformed_records(capsys, tmp_path: Path):
    bundle = tmp_path / "bundle.json"
    bundle.write_text('{"resourceType": "Patient"')
    code, out, err = cli(capsys, "transcribe", SAMPLE, "--records", bundle)
    assert code == 3 and out == "" and str(bundle) in err


def test_medasr_without_weights_exits_4(capsys):
    code, out, err = cli(capsys, "transcribe", SAMPLE, "--engine", "medasr")
    assert code == 4 and "MedASR weights not found" in err and "scribe models pull medasr" in err


@pytest.mark.parametrize(
    "args",
    [
        ["transcribe"],
        ["transcribe", "x.wav", "--engine", "kaldi"],
        ["transcribe", "x.wav", "--format", "docx"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(capsys, args):
    code, out, _ = cli(capsys, *args)
    assert code == 2 and out == ""


def test_invalid_configuration_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("SCRIBE_ASR_ENGINE", "kaldi")
    code, _, err = cli(capsys, "transcribe", SAMPLE)
    assert code == 2 and "SCRIBE_ASR_ENGINE" in err


@pytest.mark.slow  # transcribes with the bundled Whisper
def test_models_list_and_verify(capsys, settings: Settings):
    cli(capsys, "transcribe", SAMPLE)  # assembles the bundled model
    code, out, _ = cli(capsys, "models", "list")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert "present" in rows["whisper"] and "missing" in rows["medasr"]
    code, out, _ = cli(capsys, "models", "verify")
    assert code == 0 and out.startswith("whisper") and " ok " in out


def test_models_verify_fails_on_corruption(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path))
    assert cli(capsys, "models", "pull", "whisper")[0] == 0
    model = tmp_path / "models" / "whisper-base" / "model.bin"
    with open(model, "r+b") as fh:
        fh.seek(1234)
        fh.write(b"\x00\x01\x02\x03")
    code, out, _ = cli(capsys, "models", "verify", "whisper")
    assert code == 4 and "FAILED" in out and "scribe models pull whisper" in out


@pytest.mark.slow  # a CLI subprocess
def test_console_script_entry_point(tmp_path: Path):
    """The real process: a usage error prints help text, not a traceback, and exits 2."""
    proc = run_scribe("transcribe", "--nope", timeout=60)
    assert proc.returncode == 2 and "No such option" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow  # a CLI subprocess that transcribes
def test_progress_bar_goes_to_stderr_only(settings: Settings):
    """Files longer than a few seconds show a progress bar on a terminal; stdout keeps only the result."""
    env = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "SCRIBE_DATA_DIR": str(settings.data_dir)}
    sample = SAMPLES / "cardiology_followup.wav"
    proc = run_scribe("transcribe", sample, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "cardiology_followup.wav" in proc.stderr and "/14 s" in proc.stderr
    assert "\x1b" not in proc.stdout and proc.stdout.count("\n") == 1


def test_bench_asr_measures_one_engine(capsys):
    code, out, err = cli(capsys, "bench", "asr", str(SAMPLES), "--engine", "auto")
    assert code == 2 and "--engine whisper or --engine medasr" in err and out == ""


def leaf_commands() -> list[list[str]]:
    """Every command a user can run, as its words after `scribe` (read from the app, so a new one is included)."""
    import typer

    from scribe.commands.base import app

    def walk(command, words: list[str]) -> list[list[str]]:
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            return [leaf for name, sub in command.commands.items() for leaf in walk(sub, [*words, name])]
        return [words]

    return walk(typer.main.get_command(app), [])


def test_every_command_is_found():
    names = {" ".join(words) for words in leaf_commands()}
    assert {
        "transcribe",
        "note",
        "serve",
        "stream",
        "dictate",
        "db upgrade",
        "token create",
        "users add",
        "clients list",
        "models verify",
        "bench stream",
    } <= names and len(names) >= 20


@pytest.mark.parametrize("words", leaf_commands(), ids=" ".join)
def test_every_command_takes_data_dir(capsys, words):
    code, out, _ = cli(capsys, *words, "--help")
    assert code == 0 and "--data-dir" in out


def test_unusable_paths_are_refused_before_the_model_loads(capsys, tmp_path: Path, monkeypatch):
    """A missing file or a directory among the inputs: exit 3 naming each, and the engine is never loaded."""
    import scribe.asr

    loads = []
    monkeypatch.setattr(scribe.asr, "load_engine", lambda *args, **kwargs: loads.append(args))
    missing = tmp_path / "missing.wav"
    code, out, err = cli(capsys, "transcribe", SAMPLE, missing, tmp_path)
    assert code == 3 and out == "" and loads == []
    assert f"scribe: error: {missing}: no such file" in err and f"scribe: error: {tmp_path}: is a directory" in err
    assert "ASR engine" not in err
