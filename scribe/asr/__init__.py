"""Speech recognition engines behind one protocol (`AsrEngine`), chosen by name or by mode."""

from scribe.asr.base import AsrEngine, ProgressCallback
from scribe.asr.registry import ENGINE_NAMES, EngineChoice, choose_engine, load_engine
from scribe.audio import SAMPLE_RATE

__all__ = [
    "ENGINE_NAMES",
    "SAMPLE_RATE",
    "AsrEngine",
    "EngineChoice",
    "ProgressCallback",
    "choose_engine",
    "load_engine",
]
