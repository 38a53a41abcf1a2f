"""The linters the project is held to, as pyproject.toml configures them: ruff (lint and format) and mypy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

CHECKED = ["scribe", "streaming", "tests", "audio_samples", "deploy"]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    proc = run("ruff", "check", "--no-cache", *CHECKED)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_code_is_formatted_as_ruff_formats_it():
    proc = run("ruff", "format", "--check", "--no-cache", *CHECKED)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy_finds_nothing():
    """Strict on the domain packages, untyped bodies checked everywhere else (about 90 s without a cache)."""
    proc = run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
