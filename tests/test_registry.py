import shutil
from pathlib import Path

import pytest

from scribe.asr import choose_engine
from scribe.config import Settings
from scribe.errors import EngineUnavailableError


def test_encounter_mode_uses_whisper_even_with_medasr_present(settings: Settings, tiny_medasr_dir: Path):
    shutil.copytree(tiny_medasr_dir, settings.models_dir / "medasr", dirs_exist_ok=True)
    try:
        choice = choose_engine("auto", "encounter", settings)
        assert choice.name == "whisper" and "encounter" in choice.reason
        dictation = choose_engine("auto", "dictation", settings)
        assert dictation.name == "medasr" and "MedASR weights found" in dictation.reason
    finally:
        shutil.rmtree(settings.models_dir / "medasr")


def test_dictation_without_medasr_weights_falls_back_to_whisper(settings: Settings):
    choice = choose_engine("auto", "dictation", settings)
    assert choice.name == "whisper" and "no local MedASR weights" in choice.reason


def test_a_model_directory_decides_the_engine(settings: Settings, tiny_medasr_dir: Path, tmp_path: Path):
    assert choose_engine("auto", "encounter", settings, str(tiny_medasr_dir)).name == "medasr"
    (tmp_path / "config.json").write_text('{"architectures": ["WhisperForConditionalGeneration"]}')
    assert choose_engine("auto", "dictation", settings, str(tmp_path)).name == "whisper"


def test_explicit_engine_wins(settings: Settings):
    assert choose_engine("medasr", "encounter", settings).name == "medasr"
    assert choose_engine("whisper", "dictation", settings).name == "whisper"


def test_unknown_engine(settings: Settings):
    with pytest.raises(EngineUnavailableError, match="unknown ASR engine"):
        choose_engine("kaldi", "dictation", settings)
