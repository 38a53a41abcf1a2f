"""A newcomer's path: non-editable `pip install .` into a fresh venv, then `scribe transcribe` on a sample."""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "audio_samples" / "cardiology_followup.wav"


@pytest.mark.slow
def test_wheel_install_transcribes_a_sample(tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(REPO)], capture_output=True, text=True, timeout=900
    )
    assert install.returncode == 0, install.stderr[-3000:]
    # Non-editable: the package and its templates come from site-packages, not from the checkout.
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import scribe, scribe.resources as r, scribe.api.web as w; "
            "print(scribe.__file__); print(r.templates_dir()); print(w.STATIC_DIR); print(w.CAPTURE_DIR)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    module_file, templates, static, capture = where.stdout.split()
    # the real-time layer is installed inside the package: no top-level `streaming` to clash with another distribution
    layer = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util, scribe.streaming.client as c; "
            "print(importlib.util.find_spec('streaming')); print(c.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    spec, client_file = layer.stdout.split()
    assert spec == "None" and client_file.startswith(str(env_dir)) and "/scribe/streaming/" in client_file
    assert str(env_dir) in module_file and str(env_dir) in templates
    # the web app ships whole: every page template, module, style sheet and the capture code the pages load
    for checkout, installed in (
        (REPO / "templates", Path(templates)),
        (REPO / "scribe" / "static", Path(static)),
        (REPO / "streaming" / "web", Path(capture)),
    ):
        shipped = {p.relative_to(checkout) for p in checkout.rglob("*") if p.is_file()}
        assert shipped and shipped <= {p.relative_to(installed) for p in installed.rglob("*") if p.is_file()}
        assert str(env_dir) in str(installed.resolve())
    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, cwd=tmp_path)
    assert no_torch.returncode != 0, "the core install must not pull in torch"

    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRIBE_")}
    env["SCRIBE_DATA_DIR"] = str(tmp_path / "data")
    run = subprocess.run(
        [
            str(env_dir / "bin" / "scribe"),
            "transcribe",
            str(SAMPLE),
            "--mode",
            "dictation",
            "--records",
            str(SAMPLE.with_name(SAMPLE.stem + ".bundle.json")),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    transcript = json.loads(run.stdout)
    assert transcript["engine"] == "whisper" and transcript["segments"]
    assert "ASR engine: whisper" in run.stderr
    reference = SAMPLE.with_suffix(".txt").read_text().lower()
    assert sum(w in transcript["text"].lower() for w in reference.split()[:10]) >= 5
    sys.stdout.write(run.stderr)
