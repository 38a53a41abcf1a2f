"""Which ASR engine streams each encounter mode on this node, loaded once in the background.

The choice is the CLI's (`choose_engine`): a dictation goes to MedASR when its weights are
here, a conversation to Whisper, and an engine or model the operator configured serves both.
Until every mode has an engine that can stream, the node is not ready (`/healthz` says why);
a configured engine that cannot serve is fatal (`on_fatal`: `scribe serve` exits), while with
`auto` a MedASR that fails to load only sends dictation to Whisper.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from scribe.asr import AsrEngine, choose_engine, load_engine
from scribe.config import Mode, Settings
from scribe.errors import ScribeError
from scribe.streaming.admission import StreamAdmission
from scribe.streaming.recogniser import recogniser_class
from scribe.streaming.scheduler import PassScheduler

log = logging.getLogger("scribe.api")

MODES: tuple[Mode, ...] = ("encounter", "dictation")


def configured_engine(settings: Settings) -> str | None:
    """The setting that names the ASR engine explicitly, as the operator wrote it; None for `auto`."""
    if settings.asr_model:
        return f"SCRIBE_ASR_MODEL={settings.asr_model}"
    if settings.asr_engine != "auto":
        return f"SCRIBE_ASR_ENGINE={settings.asr_engine}"
    return None


def _streaming_engine(mode: Mode, settings: Settings) -> tuple[AsrEngine, str]:
    """The engine that streams `mode`, loaded (cached by the registry) and checked to have a recogniser."""
    choice = choose_engine(settings.asr_engine, mode, settings)
    engine = load_engine(choice, settings, serving=True)  # many sessions' passes at once
    recogniser_class(engine.name)
    return engine, configured_engine(settings) or choice.reason


@dataclass
class AsrState:
    """The streaming engines by mode, with why each was chosen, or why there are none (yet)."""

    engines: dict[str, AsrEngine] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    loaded: threading.Event = field(default_factory=threading.Event)
    disabled: bool = False  # `scribe serve --no-asr`: this node does not stream
    stream_capacity: int | None = None  # SCRIBE_STREAM_CAPACITY; None: from the measured cost of finals
    admission: StreamAdmission | None = None  # made by `serve`, sized by the engine's workers
    _schedulers: dict[int, PassScheduler] = field(default_factory=dict)
    _scheduler_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def ready(self) -> bool:
        return self.loaded.is_set() and self.error is None and all(mode in self.engines for mode in MODES)

    @property
    def status(self) -> str | None:
        """Why the node cannot stream, or None when it can."""
        if self.ready:
            return None
        if self.disabled:
            return "speech recognition is off on this node (scribe serve --no-asr)"
        if self.error is not None:
            return self.error
        return "speech recognition is loading"

    def engine_for(self, mode: str) -> AsrEngine:
        """The engine that streams `mode` (a conversation's for any other); only once `ready`."""
        if not self.ready:
            raise RuntimeError("speech recognition is not ready")
        return self.engines.get(mode) or self.engines["encounter"]

    def scheduler_for(self, engine: AsrEngine) -> PassScheduler:
        """Every session's passes on `engine`, as many at once as it serves: one queue per engine, made on first use."""
        with self._scheduler_lock:
            scheduler = self._schedulers.get(id(engine))
            if scheduler is None:
                scheduler = self._schedulers[id(engine)] = PassScheduler(f"asr-{engine.name}", workers=engine.workers)
            return scheduler

    def pass_queue_depths(self) -> dict[str, int]:
        """Passes waiting for a worker, by the name of each engine that streams here (0 before any stream)."""
        depths: dict[str, int] = {}
        for engine in {id(engine): engine for engine in self.engines.values()}.values():
            depths[engine.name] = depths.get(engine.name, 0) + self.scheduler_for(engine).waiting
        return dict(sorted(depths.items()))

    def serve(self, engines: Mapping[str, AsrEngine], reasons: Mapping[str, str] | None = None) -> None:
        """Stream each mode with its engine from now on (the loader's result, or a test's)."""
        self.engines = dict(engines)
        self.reasons = {mode: (reasons or {}).get(mode, "given") for mode in self.engines}
        workers = max((engine.workers for engine in self.engines.values()), default=1)
        self.admission = StreamAdmission(workers, self.stream_capacity)
        self.error = None
        self.loaded.set()

    def load(self, settings: Settings, on_fatal: Callable[[str], None] | None = None) -> None:
        """Load every mode's engine (each engine once); runs on a thread of its own, off the event loop."""
        configured = configured_engine(settings)
        engines: dict[str, AsrEngine] = {}
        reasons: dict[str, str] = {}
        try:
            for mode in MODES:
                try:
                    engines[mode], reasons[mode] = _streaming_engine(mode, settings)
                except Exception as exc:
                    if configured is not None or mode == "encounter":
                        raise
                    # auto: MedASR's weights are here but it cannot serve; dictation streams as a conversation does
                    engines[mode] = engines["encounter"]
                    reasons[mode] = f"auto: MedASR cannot serve ({_reason(exc)}) -> {engines[mode].name}"
                    log.warning("dictation streams with %s: MedASR cannot serve: %s", engines[mode].name, _reason(exc))
        except Exception as exc:  # reported by /healthz as not ready; fatal when the operator chose the engine
            self.error = f"{configured} cannot serve: {_reason(exc)}" if configured else _reason(exc)
            log.error("ASR engine failed to load: %s", self.error)
            self.loaded.set()
            if configured is not None and on_fatal is not None:
                on_fatal(self.error)
            return
        for mode in MODES:
            log.info("ASR engine ready for %s: %s (%s)", mode, engines[mode].name, engines[mode].model)
        self.serve(engines, reasons)

    def describe(self) -> dict[str, dict[str, str] | None]:
        """Each mode's engine, model and why it was chosen, as `/healthz` shows them."""
        return {
            mode: (
                {
                    "name": self.engines[mode].name,
                    "model": self.engines[mode].model,
                    "reason": self.reasons.get(mode, ""),
                }
                if mode in self.engines
                else None
            )
            for mode in MODES
        }


def _reason(exc: BaseException) -> str:
    """One line: the error's own message when it is a scribe error, else its type too."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, ScribeError) and text else f"{type(exc).__name__}: {text}"
