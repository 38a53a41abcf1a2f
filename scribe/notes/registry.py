"""Note-engine registry: `auto` prefers an OpenAI-compatible server, then local MedGemma on a GPU, else extractive."""

from __future__ import annotations

from dataclasses import dataclass
from threading import Lock

from scribe.config import Settings
from scribe.errors import EngineUnavailableError
from scribe.notes.base import NoteEngine

ENGINE_NAMES = ("extractive", "medgemma", "openai")


@dataclass(frozen=True)
class NoteEngineChoice:
    name: str
    reason: str


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def choose_note_engine(requested: str | None, settings: Settings) -> NoteEngineChoice:
    requested = requested or settings.note_engine
    if requested in ENGINE_NAMES:
        return NoteEngineChoice(requested, f"--engine {requested}")
    if requested != "auto":
        raise EngineUnavailableError(f"unknown note engine {requested!r}; choose auto, extractive, medgemma or openai")
    if settings.llm_base_url:
        return NoteEngineChoice("openai", f"auto: SCRIBE_LLM_BASE_URL is set -> openai ({settings.llm_base_url})")
    if settings.medgemma_model:
        from scribe.notes.medgemma import medgemma_weights_present

        if medgemma_weights_present(settings.medgemma_model, settings) and _cuda_available():
            return NoteEngineChoice("medgemma", "auto: MedGemma weights and a GPU found -> medgemma")
    return NoteEngineChoice("extractive", "auto: no LLM server, no MedGemma on a GPU -> extractive")


def configured_note_engines(settings: Settings) -> list[str]:
    """The engines this installation can draft with: extractive always, the others once they are configured."""
    names = ["extractive"]
    if settings.medgemma_model:
        names.append("medgemma")
    if settings.llm_base_url:
        names.append("openai")
    return names


_loaded: dict[tuple[str, str], NoteEngine] = {}
_lock = Lock()


def load_note_engine(choice: NoteEngineChoice, settings: Settings) -> NoteEngine:
    """Load (once per process) the chosen engine; heavy libraries are imported only here."""
    key = (
        choice.name,
        settings.model_dump_json(include={"medgemma_model", "llm_base_url", "llm_model", "llm_api_key", "data_dir"}),
    )
    with _lock:
        engine = _loaded.get(key)
        if engine is None:
            if choice.name == "extractive":
                from scribe.notes.extractive import ExtractiveEngine

                engine = ExtractiveEngine()
            elif choice.name == "medgemma":
                from scribe.notes.medgemma import MedGemmaEngine

                engine = MedGemmaEngine.load(settings.medgemma_model, settings)
            else:
                from scribe.notes.openai_engine import OpenAIEngine

                engine = OpenAIEngine.from_settings(settings)
            _loaded[key] = engine
        return engine
