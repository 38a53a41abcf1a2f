"""Google MedASR (transformers `LasrForCTC`, model type `lasr_ctc`): dictation-grade medical ASR.

Weights come from a local directory or the local Hugging Face cache, never from the network
(`scribe models pull medasr` downloads on purpose). Long audio runs in overlapping windows
whose central frames are stitched at frame level and decoded once, so no word is duplicated
or dropped at a window edge; word times come from the CTC frames. torch and transformers are
imported only when an engine is built.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scribe.asr.base import ProgressCallback
from scribe.asr.ctc_decode import greedy_decode, hotword_beam_decode, tokens_to_words
from scribe.asr.dictation_format import format_dictation
from scribe.audio import SAMPLE_RATE
from scribe.config import Settings
from scribe.errors import EngineUnavailableError
from scribe.records import PatientContext
from scribe.transcript import Segment, Transcript, Word

DEFAULT_MODEL = "google/medasr"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_PULL_HINT = "run `scribe models pull medasr` (needs HF_TOKEN and network) or pass a model directory"

ForwardFn = Callable[[list[np.ndarray]], list[np.ndarray]]
"""Audio windows (equal length within one call) -> per-window (frames, vocab) log-probabilities."""


# --------------------------------------------------------------------------- frame geometry


@dataclass(frozen=True)
class FrameGeometry:
    """How many CTC frames a number of samples yields, and where each frame sits in time.

    Log-mel frames every `hop_length` samples over `win_length`-sample windows (no centring),
    then `conv_layers` strided convolutions: MedASR gives one frame per 640 samples = 40 ms.
    """

    sample_rate: int = SAMPLE_RATE
    hop_length: int = 160
    win_length: int = 400
    conv_kernel: int = 5
    conv_stride: int = 2
    conv_layers: int = 2

    @classmethod
    def of(cls, model_config: Any, feature_extractor: Any) -> FrameGeometry:
        enc = model_config.encoder_config
        return cls(
            sample_rate=int(feature_extractor.sampling_rate),
            hop_length=int(feature_extractor.hop_length),
            win_length=int(feature_extractor.win_length),
            conv_kernel=int(enc.subsampling_conv_kernel_size),
            conv_stride=int(enc.subsampling_conv_stride),
        )

    @property
    def samples_per_frame(self) -> int:
        subsampling: int = self.conv_stride**self.conv_layers  # an int: conv_layers is never negative
        return self.hop_length * subsampling

    @property
    def frame_s(self) -> float:
        return self.samples_per_frame / self.sample_rate

    @property
    def first_frame_centre_s(self) -> float:
        """Centre of frame 0's receptive field (72.5 ms for MedASR)."""
        strides: int = sum(self.conv_stride**i for i in range(self.conv_layers))  # ints: i is never negative
        feature_centre = (self.conv_kernel - 1) / 2 * strides
        return (feature_centre * self.hop_length + self.win_length / 2) / self.sample_rate

    def frames_for_samples(self, n_samples: int) -> int:
        if n_samples < self.win_length:
            return 0
        length = (n_samples - self.win_length) // self.hop_length + 1
        for _ in range(self.conv_layers):
            if length < self.conv_kernel:
                return 0
            length = (length - self.conv_kernel) // self.conv_stride + 1
        return length

    def samples_for_frames(self, n_frames: int) -> int:
        """The fewest samples that yield `n_frames` frames."""
        length = max(n_frames, 1)
        for _ in range(self.conv_layers):
            length = (length - 1) * self.conv_stride + self.conv_kernel
        return (length - 1) * self.hop_length + self.win_length


# --------------------------------------------------------------------------- windowing


@dataclass(frozen=True)
class Window:
    sample_start: int
    sample_end: int
    frame_start: int  # global index of the window's first output frame
    keep_start: int  # global frames [keep_start, keep_end) are taken from this window
    keep_end: int


def plan_windows(n_samples: int, geom: FrameGeometry, window_s: float = 20.0, context_s: float = 2.0) -> list[Window]:
    """Windows of `window_s`, overlapping by twice `context_s`; their kept frames tile [0, total).

    Windows start on frame boundaries, so frame j of a window is global frame
    `frame_start + j` exactly. Each window keeps its centre and drops `context_s` of frames
    at an edge it shares with a neighbour; the first keeps its left edge, the last its right.
    """
    total = geom.frames_for_samples(n_samples)
    size = max(1, round(window_s / geom.frame_s))
    context = round(context_s / geom.frame_s)
    step = size - 2 * context
    if step <= 0:
        raise ValueError(f"window ({window_s} s) must be longer than twice the context ({context_s} s)")
    window_samples = geom.samples_for_frames(size)
    windows: list[Window] = []
    start = 0
    while total > 0:
        last = start + size >= total
        s0 = start * geom.samples_per_frame
        windows.append(
            Window(
                sample_start=s0,
                sample_end=n_samples if last else s0 + window_samples,
                frame_start=start,
                keep_start=0 if start == 0 else start + context,
                keep_end=total if last else start + context + step,
            )
        )
        if last:
            break
        start += step
    return windows


def merge_window_log_probs(
    audio: np.ndarray,
    geom: FrameGeometry,
    forward: ForwardFn,
    *,
    window_s: float = 20.0,
    context_s: float = 2.0,
    batch_size: int = 1,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Run `forward` window by window and stitch the kept frames into one (frames, vocab) matrix."""
    windows = plan_windows(len(audio), geom, window_s, context_s)
    total = windows[-1].keep_end if windows else 0
    merged: np.ndarray | None = None
    duration = len(audio) / geom.sample_rate
    i = 0
    while i < len(windows):
        batch = [windows[i]]
        size = windows[i].sample_end - windows[i].sample_start
        while (
            len(batch) < batch_size
            and i + len(batch) < len(windows)
            and windows[i + len(batch)].sample_end - windows[i + len(batch)].sample_start == size
        ):
            batch.append(windows[i + len(batch)])
        outputs = forward([audio[w.sample_start : w.sample_end] for w in batch])
        for w, out in zip(batch, outputs, strict=True):
            lo, hi = w.keep_start - w.frame_start, w.keep_end - w.frame_start
            if out.shape[0] < hi:
                raise RuntimeError(f"model gave {out.shape[0]} frames for a window that needs {hi}")
            if merged is None:
                merged = np.empty((total, out.shape[1]), dtype=np.float32)
            merged[w.keep_start : w.keep_end] = out[lo:hi]
        i += len(batch)
        if progress is not None:
            progress(min(duration, batch[-1].keep_end * geom.frame_s))
    return merged if merged is not None else np.zeros((0, 0), dtype=np.float32)


# --------------------------------------------------------------------------- finding weights


def _model_dir_ok(path: Path) -> bool:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return config.get("model_type") == "lasr_ctc" and any((path / f).is_file() for f in _WEIGHT_FILES)


def _dir_version(path: Path) -> str:
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for name in _WEIGHT_FILES:
        if (path / name).is_file():
            digest.update(f"{name}:{(path / name).stat().st_size}".encode())
    return f"{path.name}@{digest.hexdigest()[:12]}"


def _locate(source: str | None, settings: Settings) -> tuple[Path | None, str]:
    """(model directory, version) if the weights are here, else (None, why not). Never downloads."""
    name = source or settings.asr_model or DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.is_dir():
        return (path, _dir_version(path)) if _model_dir_ok(path) else (None, f"{path} holds no lasr_ctc model")
    if not _HUB_ID.match(name):
        return None, f"no MedASR model directory at {path}"
    pulled = settings.models_dir / name.split("/")[-1]
    if _model_dir_ok(pulled):
        return pulled, _dir_version(pulled)
    try:
        from huggingface_hub import snapshot_download

        from scribe.model_store import hub_cache_dir

        snapshot = Path(snapshot_download(name, cache_dir=hub_cache_dir(), local_files_only=True))
    except Exception:  # noqa: BLE001 - any cache miss (not cached, partial, bad ref) means "not here"
        return None, f"{name} is not in the local Hugging Face cache"
    if not _model_dir_ok(snapshot):
        return None, f"the cached {name} snapshot has no lasr_ctc weights"
    return snapshot, f"{name}@{snapshot.name[:12]}"


def medasr_weights_present(source: str | None, settings: Settings) -> bool:
    """Whether MedASR weights are available offline (cheap: file checks only, no torch)."""
    return _locate(source, settings)[0] is not None


def _select_device(settings: Settings) -> str:
    import torch

    if settings.asr_device == "cuda" and not torch.cuda.is_available():
        raise EngineUnavailableError("SCRIBE_ASR_DEVICE=cuda but torch sees no CUDA device")
    if settings.asr_device != "cpu" and torch.cuda.is_available():
        return "cuda"
    from scribe.asr.cores import usable_cores

    torch.set_num_threads(settings.asr_threads or usable_cores())
    return "cpu"


def _import_torch() -> None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise EngineUnavailableError(f"MedASR needs torch and transformers>=5: install scribe[gpu] ({exc})") from None


# --------------------------------------------------------------------------- the engine


class MedAsrEngine:
    """MedASR behind the AsrEngine protocol: windowed CTC, greedy (or hotword-biased) decoding."""

    name = "medasr"
    workers = 1  # one call at a time: each already uses every core

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_version: str,
        device: str = "cpu",
        window_s: float = 20.0,
        context_s: float = 2.0,
        batch_size: int | None = None,
        beam_width: int = 8,
        hotword_weight: float = 1.0,
    ) -> None:
        """Wrap an in-memory `LasrForCTC` and its `LasrProcessor` (what `load` and the benchmark build)."""
        import torch

        self._torch = torch
        self.model = model_version
        self.device = device
        self._dtype = torch.float16 if device == "cuda" else torch.float32
        self._model = model.to(device=device, dtype=self._dtype).eval()
        self._features = processor.feature_extractor
        tokenizer = processor.tokenizer
        self.geometry = FrameGeometry.of(model.config, self._features)
        if self.geometry.sample_rate != SAMPLE_RATE:
            rate = self.geometry.sample_rate
            raise EngineUnavailableError(f"this MedASR model expects {rate} Hz audio; scribe feeds {SAMPLE_RATE} Hz")
        # batching equal windows: ~5 % faster on 2 CPU cores (measured), much more on a GPU
        self.window_s, self.context_s = window_s, context_s
        self.batch_size = batch_size or (8 if device == "cuda" else 2)
        self.beam_width, self.hotword_weight = beam_width, hotword_weight
        vocab = int(model.config.vocab_size)
        self._blank = int(model.config.pad_token_id if model.config.pad_token_id is not None else 0)
        pieces = tokenizer.convert_ids_to_tokens(list(range(min(vocab, len(tokenizer)))))
        self._pieces: list[str] = [p or "" for p in pieces] + [""] * max(0, vocab - len(tokenizer))
        # <pad>/</s>/<unk>/<extra_id_N> never reach the text; special tokens such as {period} do
        self._skip_ids = {
            i for i in tokenizer.all_special_ids if i < vocab and re.fullmatch(r"<[^<>]*>", self._pieces[i])
        } - {self._blank}
        self._skip_ids |= set(range(len(tokenizer), vocab))
        # transformers' depthwise conv uses padding="same" with an even kernel: harmless, noisy
        warnings.filterwarnings("ignore", message=r"Using padding='same' with even kernel", category=UserWarning)

    @classmethod
    def load(cls, source: str | None, settings: Settings) -> MedAsrEngine:
        """Load from a directory or a cached hub id (default google/medasr); never downloads."""
        path, version = _locate(source, settings)
        if path is None:
            raise EngineUnavailableError(f"MedASR weights not found: {version}; {_PULL_HINT}")
        _import_torch()
        import torch
        from transformers import AutoModelForCTC, AutoProcessor
        from transformers.utils import logging as hf_logging

        # stderr is for scribe's own progress and engine choice
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
        device = _select_device(settings)
        try:
            processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]  # transformers: unannotated
                path, local_files_only=True
            )
            model = AutoModelForCTC.from_pretrained(
                path, local_files_only=True, dtype=torch.float16 if device == "cuda" else torch.float32
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EngineUnavailableError(f"cannot load MedASR from {path}: {exc}") from None
        return cls(model, processor, model_version=version, device=device)

    def frame_log_probs(self, audio: np.ndarray, progress: ProgressCallback | None = None) -> np.ndarray:
        """(frames, vocab) log-probabilities of the whole recording, window by window."""
        return merge_window_log_probs(
            audio,
            self.geometry,
            self.log_probs,
            window_s=self.window_s,
            context_s=self.context_s,
            batch_size=self.batch_size,
            progress=progress,
        )

    def log_probs(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """One forward pass: audio windows (equal length) -> per-window (frames, vocab) log-probabilities.

        A window starting at sample `k * geometry.samples_per_frame` yields frames `k, k+1, ...` of the
        recording, which is what lets callers stitch windows (`merge_window_log_probs`, streaming chunks).
        """
        torch = self._torch
        feats = self._features(windows, sampling_rate=self.geometry.sample_rate, return_tensors="pt")
        inputs = feats["input_features"].to(device=self.device, dtype=self._dtype)
        with torch.inference_mode():
            logits = self._model(input_features=inputs).logits
            log_probs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
        return list(log_probs)

    def pad_end(self, audio: np.ndarray) -> np.ndarray:
        """`audio` padded so its frames reach its last sample, and very short audio still yields one frame."""
        geom = self.geometry
        pad = round(geom.first_frame_centre_s * geom.sample_rate)
        return np.pad(audio, (0, max(pad, geom.samples_for_frames(1) - len(audio))))

    def words(
        self,
        log_probs: np.ndarray,
        *,
        context: PatientContext | None = None,
        start_s: float = 0.0,
        end_s: float,
    ) -> list[Word]:
        """Timed words of consecutive frames whose first starts at `start_s`; times are clipped to `end_s`.

        With the records' terms the decode is a hotword-biased beam search, else greedy. Word
        probabilities are the mean of their frames' best posteriors.
        """
        hotwords = context.hotwords() if context is not None else []
        if hotwords:
            tokens = hotword_beam_decode(
                log_probs,
                self._pieces,
                blank=self._blank,
                skip_ids=self._skip_ids,
                hotwords=hotwords,
                beam_width=self.beam_width,
                hotword_weight=self.hotword_weight,
            )
        else:
            tokens = greedy_decode(log_probs, blank=self._blank, skip_ids=self._skip_ids)
        return tokens_to_words(
            tokens,
            self._pieces,
            np.exp(log_probs.max(axis=1)) if len(log_probs) else np.zeros(0, np.float32),
            frame_s=self.geometry.frame_s,
            first_frame_centre_s=start_s + self.geometry.first_frame_centre_s,
            duration_s=end_s,
        )

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        context: PatientContext | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        started = time.perf_counter()
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        duration = len(audio) / self.geometry.sample_rate
        segments: list[Segment] = []
        text = ""
        if len(audio):
            report = None if progress is None else (lambda seconds: progress(min(seconds, duration)))
            log_probs = self.frame_log_probs(self.pad_end(audio), report)
            segments, text = format_dictation(self.words(log_probs, context=context, end_s=duration))
        if progress is not None:
            progress(duration)
        return Transcript(
            text=text,
            language="en",
            engine=self.name,
            model=self.model,
            duration_s=round(duration, 3),
            processing_s=round(time.perf_counter() - started, 3),
            segments=segments,
        )


# --------------------------------------------------------------------------- full-size, random


def _code_built_tokenizer(size: int) -> Any:
    """A `size`-piece LasrTokenizer made in code (no files): specials, "▁", characters, "▁x", "▁xy"."""
    import itertools
    import string

    from transformers import LasrTokenizer

    chars = string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,:;?!()-/'{}[]"
    pieces: list[str] = ["<pad>", "</s>", "<unk>", "\u2581"]
    pieces += list(chars) + ["\u2581" + c for c in chars]
    pieces += ["\u2581" + a + b for a, b in itertools.product(string.ascii_lowercase, repeat=2)]
    pieces = pieces[:size]
    vocab = [(p, 0.0 if i < 3 else -1.0 - i / size) for i, p in enumerate(pieces)]
    return LasrTokenizer(vocab=vocab, extra_ids=0)  # type: ignore[no-untyped-call]  # transformers: unannotated


def build_random_full_size_engine(settings: Settings | None = None, seed: int = 0) -> MedAsrEngine:
    """MedASR's full architecture (`LasrCTCConfig()` defaults, ~105 M parameters) with random weights.

    Needs no hub files: it measures MedASR's CPU/GPU cost before the real weights are here.
    """
    _import_torch()
    import torch
    from transformers import LasrCTCConfig, LasrFeatureExtractor, LasrForCTC, LasrProcessor

    settings = settings or Settings()
    device = _select_device(settings)
    torch.manual_seed(seed)
    config = LasrCTCConfig()
    tokenizer = _code_built_tokenizer(config.vocab_size)
    feature_extractor = LasrFeatureExtractor()  # type: ignore[no-untyped-call]  # transformers: unannotated
    processor = LasrProcessor(  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
        feature_extractor=feature_extractor, tokenizer=tokenizer
    )
    model = LasrForCTC(config)
    return MedAsrEngine(model, processor, model_version="lasr_ctc-full-size-random", device=device)


def parameter_count(engine: MedAsrEngine) -> int:
    return sum(p.numel() for p in engine._model.parameters())
