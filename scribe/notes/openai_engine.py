"""The `openai` note engine: any OpenAI-compatible server (vLLM serving MedGemma, Ollama, llama.cpp, TGI).

Output is requested as `response_format` json_schema and validated again here, because not
every server enforces the schema; a bad answer is one clear error, never a half-parsed note.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import httpx
import jsonschema

from scribe.config import Settings
from scribe.errors import ConfigError, EngineUnavailableError, ScribeError
from scribe.notes.inputs import NoteInput
from scribe.notes.prompt import build_messages
from scribe.notes.schema import NoteMetadata, SOAPNote, llm_note_schema, note_from_llm

RETRY_STATUSES = {429, 500, 502, 503, 504}


class InvalidNoteError(ScribeError):
    """The server answered, but not with a note that follows the schema."""

    exit_code = 5


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 300.0,
        attempts: int = 3,
        backoff_s: float = 1.0,
        max_tokens: int = 4096,
        images: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.max_tokens = max_tokens
        self.images = images
        self._validator = jsonschema.Draft202012Validator(llm_note_schema())

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEngine:
        if not settings.llm_base_url:
            raise ConfigError("the openai note engine needs SCRIBE_LLM_BASE_URL (e.g. http://vllm:8000/v1)")
        return cls(settings.llm_base_url, settings.llm_model or "google/medgemma-27b-text-it", settings.llm_api_key)

    def request_body(self, note_input: NoteInput, template: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": build_messages(note_input, template=template, image_parts=self.images),
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "soap_note", "schema": llm_note_schema(), "strict": True},
            },
        }

    def _post(self, body: dict[str, Any]) -> Any:
        """The server's decoded JSON answer: any JSON value, `parse` checks its shape."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/chat/completions"
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = httpx.post(url, json=body, headers=headers, timeout=self.timeout_s)
            except httpx.TimeoutException:
                raise EngineUnavailableError(
                    f"LLM server {self.base_url} did not answer within {self.timeout_s:g} s"
                ) from None
            except httpx.HTTPError as exc:
                problem = f"cannot reach LLM server {self.base_url}: {type(exc).__name__}"
                continue
            if response.status_code in RETRY_STATUSES:
                problem = f"LLM server {self.base_url} answered HTTP {response.status_code}"
                continue
            if response.status_code != 200:
                raise EngineUnavailableError(
                    f"LLM server {self.base_url} refused the request: HTTP {response.status_code} {response.text[:200]}"
                )
            try:
                return response.json()
            except ValueError:
                raise InvalidNoteError(f"LLM server {self.base_url} answered with something that is not JSON") from None
        raise EngineUnavailableError(f"{problem} (after {self.attempts} attempts)")

    def parse(self, answer: Any) -> dict[str, Any]:
        """The note object inside a chat-completion answer (any decoded JSON), checked against the schema."""
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise InvalidNoteError("the LLM server's answer has no message content") from None
        try:
            data = json.loads(content)
        except (TypeError, ValueError):
            raise InvalidNoteError("the LLM server returned an invalid note: not JSON") from None
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(data))
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "top level"
            raise InvalidNoteError(f"the LLM server returned an invalid note: {where}: {error.message[:200]}")
        return cast(dict[str, Any], data)  # valid against llm_note_schema, whose top level is an object

    def draft(self, note_input: NoteInput, *, template: str = "progress_note") -> SOAPNote:
        data = self.parse(self._post(self.request_body(note_input, template)))
        return note_from_llm(data, NoteMetadata(engine=self.name, model=self.model))
