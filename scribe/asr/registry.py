"""Engine registry: pick an engine by name or by mode (`auto`), load it once, reuse it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

from scribe.asr.base import AsrEngine
from scribe.config import Mode, Settings
from scribe.errors import EngineUnavailableError

ENGINE_NAMES = ("whisper", "medasr")


@dataclass(frozen=True)
class EngineChoice:
    name: str
    model: str | None
    reason: str


def _is_medasr_dir(model: str) -> bool:
    config = Path(model).expanduser() / "config.json"
    try:
        model_type: object = json.loads(config.read_text()).get("model_type")  # any JSON value
        return model_type == "lasr_ctc"
    except (OSError, ValueError, AttributeError):
        return False


def choose_engine(requested: str, mode: Mode, settings: Settings, model: str | None = None) -> EngineChoice:
    """Resolve `auto` by mode: dictation prefers MedASR when its weights are here, conversations use Whisper.

    MedASR leads on single-speaker dictation but drops much of two-speaker conversation
    (52.5 % WER on PriMock57 consultations against 11.9 % for Whisper large-v3).
    """
    model = model or settings.asr_model
    if requested in ENGINE_NAMES:
        return EngineChoice(requested, model, f"--engine {requested}")
    if requested != "auto":
        raise EngineUnavailableError(f"unknown ASR engine {requested!r}; choose auto, whisper or medasr")
    if model:
        name = "medasr" if _is_medasr_dir(model) else "whisper"
        return EngineChoice(name, model, f"auto: model {model!r} is a {name} model")
    if mode == "encounter":
        return EngineChoice("whisper", None, "auto: encounter mode (conversation) -> whisper")
    from scribe.asr.medasr import medasr_weights_present

    if medasr_weights_present(None, settings):
        return EngineChoice("medasr", None, "auto: dictation mode and MedASR weights found -> medasr")
    return EngineChoice("whisper", None, "auto: dictation mode but no local MedASR weights -> bundled whisper")


_loaded: dict[tuple[str, str | None, bool, str], AsrEngine] = {}  # name, model, serving, settings
_lock = Lock()


def load_engine(choice: EngineChoice, settings: Settings, *, serving: bool = False) -> AsrEngine:
    """Load (once per process) the chosen engine; heavy libraries are imported only here.

    `serving`: the engine will run many calls at once (the service), not one call at a time (the CLI).
    """
    key = (
        choice.name,
        choice.model,
        serving,
        settings.model_dump_json(include={"asr_device", "asr_threads", "data_dir", "whisper_beam_size"}),
    )
    with _lock:
        engine = _loaded.get(key)
        if engine is None:
            if choice.name == "whisper":
                from scribe.asr.whisper import WhisperEngine

                engine = WhisperEngine.load(choice.model, settings, serving=serving)
            else:
                from scribe.asr.medasr import MedAsrEngine

                engine = MedAsrEngine.load(choice.model, settings)
            _loaded[key] = engine
        return engine
