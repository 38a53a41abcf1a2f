"""Speech recognition engines behind one protocol (`AsrEngine`), chosen by name or by mode."""

from scribe.asr.base import SAMPLE_RATE, AsrEngine, ProgressCallback
from scribe.asr.registry import ENGINE_NAMES, EngineChoice, choose_engine, load_engine

__all__ = [
    "ENGINE_NAMES",
    "SAMPLE_RATE",
    "AsrEngine",
    "EngineChoice",
    "ProgressCallback",
    "choose_engine",
    "load_engine",
]
