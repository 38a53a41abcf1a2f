from pathlib import Path

import pytest

from scribe.config import load_settings
from scribe.errors import ConfigError


def test_environment_overrides_defaults(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SCRIBE_ASR_ENGINE", "whisper")
    monkeypatch.setenv("SCRIBE_MAX_AUDIO_SECONDS", "60")
    settings = load_settings()
    assert settings.data_dir == tmp_path and settings.models_dir == tmp_path / "models"
    assert settings.asr_engine == "whisper" and settings.max_audio_seconds == 60


def test_toml_file_named_by_scribe_config(monkeypatch, tmp_path: Path):
    config = tmp_path / "scribe.toml"
    config.write_text('asr_engine = "medasr"\nwhisper_beam_size = 4\n')
    monkeypatch.setenv("SCRIBE_CONFIG", str(config))
    monkeypatch.setenv("SCRIBE_WHISPER_BEAM_SIZE", "3")  # the environment wins over the file
    settings = load_settings()
    assert settings.asr_engine == "medasr" and settings.whisper_beam_size == 3


@pytest.mark.parametrize(("name", "value"), [("SCRIBE_ASR_ENGINE", "kaldi"), ("SCRIBE_MAX_AUDIO_BYTES", "lots")])
def test_invalid_values_are_usage_errors(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_broken_toml_is_a_usage_error(monkeypatch, tmp_path: Path):
    config = tmp_path / "scribe.toml"
    config.write_text("asr_engine = \n")
    monkeypatch.setenv("SCRIBE_CONFIG", str(config))
    with pytest.raises(ConfigError, match="configuration"):
        load_settings()


def test_missing_config_file_is_a_usage_error(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("SCRIBE_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="not a readable file"):
        load_settings()
