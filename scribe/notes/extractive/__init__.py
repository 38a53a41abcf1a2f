"""Deterministic extractive note engine (CPU, no weights): see `engine.py`."""

from scribe.notes.extractive.engine import ExtractiveEngine

__all__ = ["ExtractiveEngine"]
