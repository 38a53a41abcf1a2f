"""The `medgemma` note engine: MedGemma (Gemma 3) through transformers, output constrained to the note schema.

An xgrammar logits processor compiled from `llm_note_schema()` masks every token that would
leave the schema, so even a weak or random-weight model returns JSON that parses and
validates. Multimodal checkpoints get attached images as image content parts. Weights are
only ever read locally (a directory, `scribe models pull`, or the Hugging Face cache).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from scribe.config import Settings
from scribe.errors import EngineUnavailableError
from scribe.notes.inputs import NoteInput
from scribe.notes.prompt import build_messages
from scribe.notes.schema import NoteMetadata, SOAPNote, llm_note_schema, note_from_llm

DEFAULT_MODEL = "google/medgemma-27b-text-it"
MAX_NEW_TOKENS = 4096
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def _model_dir_ok(path: Path) -> bool:
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type", "")
    except (OSError, ValueError, AttributeError):
        return False
    return str(model_type).startswith("gemma3") and any((path / name).is_file() for name in _WEIGHTS)


def locate_medgemma(source: str | None, settings: Settings) -> tuple[Path | None, str]:
    """(model directory, why) — a local dir, a pulled copy, or a cached snapshot; never downloads."""
    name = source or settings.medgemma_model or DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.is_dir():
        return (path, name) if _model_dir_ok(path) else (None, f"{path} holds no Gemma 3 model")
    if not _HUB_ID.match(name):
        return None, f"no MedGemma model directory at {path}"
    pulled = settings.models_dir / name.split("/")[-1]
    if _model_dir_ok(pulled):
        return pulled, name
    try:
        from huggingface_hub import snapshot_download

        from scribe.model_store import hub_cache_dir

        snapshot = Path(snapshot_download(name, cache_dir=hub_cache_dir(), local_files_only=True))
    except Exception:  # noqa: BLE001 - any cache miss means "not here"
        return None, f"{name} is not in the local Hugging Face cache (scribe models pull medgemma)"
    return (snapshot, name) if _model_dir_ok(snapshot) else (None, f"the cached {name} has no Gemma 3 weights")


def medgemma_weights_present(source: str | None, settings: Settings) -> bool:
    """Cheap file checks only: no torch import."""
    return locate_medgemma(source, settings)[0] is not None


def _hf_messages(messages: list[dict[str, Any]], attachments: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAI-shaped messages -> the transformers chat-template shape (images as PIL image parts)."""
    from PIL import Image

    converted = []
    images = iter(attachments.values())
    for message in messages:
        content = message["content"]
        parts: list[dict[str, str | Image.Image]]
        if isinstance(content, str):
            parts = [{"type": "text", "text": content}]
        else:
            parts = []
            for part in content:
                if part["type"] == "image_url":
                    parts.append({"type": "image", "image": Image.open(io.BytesIO(next(images).data)).convert("RGB")})
                else:
                    parts.append({"type": "text", "text": part["text"]})
        converted.append({"role": message["role"], "content": parts})
    return converted


class MedGemmaEngine:
    name = "medgemma"

    def __init__(
        self,
        model: Any,
        processor: Any,
        tokenizer: Any,
        model_name: str,
        *,
        multimodal: bool,
        max_new_tokens: int = MAX_NEW_TOKENS,
        schema: dict[str, Any] | None = None,
    ) -> None:
        """`schema` narrows `llm_note_schema()`'s bounds (fewer, shorter statements) for small budgets."""
        import xgrammar as xgr

        self._model = model
        self._processor = processor
        self._tokenizer = tokenizer
        self.model = model_name
        self.multimodal = multimodal
        self.max_new_tokens = max_new_tokens
        config = model.config
        vocab_size = getattr(getattr(config, "text_config", None), "vocab_size", None) or config.vocab_size
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self._grammar = xgr.GrammarCompiler(info).compile_json_schema(
            json.dumps(schema or llm_note_schema()), any_whitespace=False
        )

    @classmethod
    def load(
        cls,
        source: str | None,
        settings: Settings,
        *,
        max_new_tokens: int = MAX_NEW_TOKENS,
        schema: dict[str, Any] | None = None,
    ) -> MedGemmaEngine:
        path, why = locate_medgemma(source, settings)
        if path is None:
            raise EngineUnavailableError(f"MedGemma weights not found: {why}")
        try:
            import torch
            import xgrammar  # noqa: F401 - fail here, clearly, if the gpu extra is missing
            from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer
        except ImportError as exc:
            raise EngineUnavailableError(f"the medgemma engine needs scribe[gpu] ({exc.name} is missing)") from None
        cuda = torch.cuda.is_available()
        dtype = torch.bfloat16 if cuda else torch.float32
        multimodal = json.loads((path / "config.json").read_text()).get("model_type") == "gemma3"
        try:
            if multimodal:
                processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]  # transformers: unannotated
                    path, local_files_only=True
                )
                tokenizer = processor.tokenizer
                model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=dtype)
            else:
                processor = None
                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise EngineUnavailableError(f"cannot load MedGemma from {path}: {str(exc).splitlines()[0]}") from None
        # transformers decorates `to` with functools.wraps, whose type mypy does not bind as a method (no self)
        model.to("cuda" if cuda else "cpu").eval()  # type: ignore[arg-type]
        return cls(
            model,
            processor,
            tokenizer,
            str(source or settings.medgemma_model or DEFAULT_MODEL),
            multimodal=multimodal,
            max_new_tokens=max_new_tokens,
            schema=schema,
        )

    def _inputs(self, note_input: NoteInput, template: str) -> Any:
        images = self.multimodal and bool(note_input.attachments)
        messages = build_messages(note_input, template=template, image_parts=images)
        attachments = {a.id: a for a in note_input.attachments}
        if self.multimodal:
            return self._processor.apply_chat_template(
                _hf_messages(messages, attachments),
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
            )
        flat = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self._tokenizer.apply_chat_template(
            flat, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )

    def draft(self, note_input: NoteInput, *, template: str = "progress_note") -> SOAPNote:
        import torch
        import xgrammar as xgr

        inputs = self._inputs(note_input, template).to(self._model.device)
        processor = xgr.contrib.hf.LogitsProcessor(self._grammar)
        with torch.inference_mode():
            output = self._model.generate(
                **inputs, logits_processor=[processor], max_new_tokens=self.max_new_tokens, do_sample=False
            )
        generated = output[0][inputs["input_ids"].shape[-1] :]
        text = self._tokenizer.decode(generated, skip_special_tokens=True)
        try:
            data = json.loads(text)
        except ValueError:
            raise EngineUnavailableError(
                f"MedGemma stopped before the note was complete ({len(generated)} tokens; "
                f"max_new_tokens={self.max_new_tokens})"
            ) from None
        return note_from_llm(data, NoteMetadata(engine=self.name, model=self.model))
