"""All settings in one place: `SCRIBE_*` environment variables, or a TOML file named by `SCRIBE_CONFIG`.

Settings are loaded once by the entry point (CLI, server) and passed down; nothing deeper reads
the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from scribe.errors import ConfigError

AsrEngineName = Literal["auto", "whisper", "medasr"]
NoteEngineName = Literal["auto", "extractive", "medgemma", "openai"]
Mode = Literal["dictation", "encounter"]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "scribe"


class Settings(BaseSettings):
    """Runtime configuration (see docs/interfaces.md for the public variables)."""

    model_config = SettingsConfigDict(env_prefix="SCRIBE_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    asr_engine: AsrEngineName = "auto"
    asr_model: str | None = None
    asr_device: Literal["auto", "cpu", "cuda"] = "auto"
    asr_threads: int = Field(
        default=0,
        ge=0,
        description=(
            "CPU threads per ASR call; 0 = automatic: the service runs one thread per Whisper call with as many "
            "calls at once as there are cores; an offline command (one call at a time) and MedASR use all cores"
        ),
    )
    whisper_beam_size: int = Field(default=5, ge=1, le=10)
    note_engine: NoteEngineName = "auto"
    medgemma_model: str | None = None
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    public_url: str | None = None
    allowed_origins: list[str] = Field(default_factory=list)
    secret_key: str | None = None
    ehr_fhir_url: str | None = None
    audio_retention_days: int | None = None
    audio_root: Path | None = Field(default=None, validation_alias="SCRIBE_AUDIO_DIR")
    # Request and input limits. A clinic's longest recording is a 4-hour encounter: compressed (Opus, MP3, AAC at
    # 48-64 kbps) that is 90-115 MB, so 100 MiB takes it; a WAV of 100 MiB is ~55 min of 16 kHz mono.
    max_audio_bytes: int = Field(default=100 * 1024 * 1024, gt=0, description="largest audio input accepted")
    max_audio_seconds: float = Field(default=4 * 3600.0, gt=0, description="longest audio input accepted")
    max_stream_backlog_seconds: float = Field(
        default=30.0,
        gt=0,
        description="streamed audio waiting for speech recognition before the server warns `backpressure` and stops "
        "reading the socket until it catches up (TCP then slows the client; nothing is dropped)",
    )
    max_image_bytes: int = Field(
        default=50 * 1024 * 1024, gt=0, description=("largest image accepted (a radiograph as DICOM is 10-30 MB)")
    )
    max_records_bytes: int = Field(
        default=10 * 1024 * 1024,
        gt=0,
        description=("largest prior-records bundle accepted (a long history is 1-5 MB of FHIR JSON)"),
    )
    max_note_bytes: int = Field(
        default=2 * 1024 * 1024, gt=0, description=("largest note edit or amendment accepted (a long note is 50 kB)")
    )
    upload_wait_s: float = Field(
        default=300.0,
        ge=0,
        description=("how long POST .../audio waits for the transcript before answering 202 with the upload's state"),
    )
    upload_poll_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "how often each node looks for uploads whose transcription is due (new, retried, or left by a crash)"
        ),
    )
    max_form_bytes: int = Field(
        default=64 * 1024,
        gt=0,
        description=("largest small body accepted: sign-in and token forms, encounter details, note options"),
    )
    session_lifetime_s: int = Field(
        default=12 * 3600, gt=0, le=30 * 24 * 3600, description="how long a browser sign-in lasts"
    )
    oidc_issuer: str | None = Field(default=None, description="the site's OpenID Connect issuer (`iss`)")
    oidc_audience: str | None = Field(default=None, description="`aud` its tokens carry for scribe")
    oidc_jwks_url: str | None = Field(default=None, description="where the provider publishes its keys")
    oidc_jwks_file: Path | None = Field(default=None, description="or a local copy of its key set")
    oidc_username_claim: str = Field(default="preferred_username", description="claim naming the scribe user")
    node_id: str = Field(
        default_factory=lambda: __import__("socket").gethostname()[:40],
        description="this node's name (unique per process when several share a host)",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description=(
            "`json`: one JSON object a line (time, level, logger, message, node, request and encounter ids) for a log "
            "collector"
        ),
    )
    delivery_interval_s: float = Field(default=5.0, gt=0, description="how often the EHR outbox is drained")
    stream_capacity: int | None = Field(
        default=None,
        ge=1,
        description=(
            "live streams this node takes before refusing new ones with server_busy; unset: from the measured cost "
            "of finals on its ASR workers"
        ),
    )
    stream_lease_s: float = Field(
        default=30.0,
        ge=3,
        le=600,
        description=(
            "how long a node's claim on a live stream lasts unrenewed (renewed every third of it): after a crash, "
            "the stream resumes on another node once it runs out; shorter fails over sooner for more database writes"
        ),
    )
    shutdown_grace_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=(
            "on SIGTERM, how long the node may take to drain: live streams finish their finals and move to another "
            "node, uploads finish or go back to the job queue; what is still open then is closed anyway"
        ),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("SCRIBE_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def audio_dir(self) -> Path:
        """Encounter audio: a directory every node shares (SCRIBE_AUDIO_DIR), by default in the data dir."""
        return self.audio_root or self.data_dir / "audio"

    @property
    def models_dir(self) -> Path:
        """Where assembled or pulled model weights live."""
        return self.data_dir / "models"


def load_settings() -> Settings:
    """Settings from the environment and SCRIBE_CONFIG; any problem is one ConfigError naming the variable."""
    config_file = os.environ.get("SCRIBE_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"SCRIBE_CONFIG names {config_file!r}, which is not a readable file")
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"SCRIBE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read configuration file {config_file!r}: {exc}") from None
