"""Shared fixtures, one owner each: an isolated environment, settings and data directories for every test, the
databases and apps the API tests use, the bundled Whisper, and the `slow` mark of the tests that load it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scribe.config import Settings
from tests.accounts import KEY

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("SCRIBE_TEST_ARTIFACTS", REPO / "test-artifacts"))  # screenshots, figures
SAMPLES = REPO / "audio_samples"


# A test that asks for one of these fixtures (itself or through another) loads the bundled Whisper's real weights
# or starts `scribe serve`: it is marked `slow` here, wherever the fixture is defined (a module may define its own).
SLOW_FIXTURES = frozenset({"whisper", "models_dir"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` every test that uses a SLOW_FIXTURES fixture, so `-m "not slow"` leaves out what loads weights."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def isolate_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's config, data directory or Hugging Face cache, or reaches the hub (also what a
    module-scoped fixture calls, which runs before `isolated_env`)."""
    for name in (
        "SCRIBE_CONFIG",
        "SCRIBE_ASR_ENGINE",
        "SCRIBE_ASR_MODEL",
        "SCRIBE_DATA_DIR",
        "SCRIBE_NOTE_ENGINE",
        "SCRIBE_MEDGEMMA_MODEL",
        "SCRIBE_LLM_BASE_URL",
        "SCRIBE_LLM_MODEL",
        "SCRIBE_LLM_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf_home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs isolated from the developer's settings and caches."""
    isolate_environment(tmp_path_factory, monkeypatch)


@pytest.fixture(autouse=True)
def quick_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Accounts hash their passwords at scrypt's cheapest cost that verify_password accepts (n=2**10), not the
    production 2**15 (~0.2 s a hash, hundreds in the suite); tests/test_auth_passwords.py checks the real cost."""
    from scribe.auth import passwords, users

    if request.module.__name__.endswith("test_auth_passwords"):
        yield
        return
    monkeypatch.setitem(passwords.hash_password.__kwdefaults__, "n", 2**10)
    users._decoy_hash.cache_clear()  # the decoy an unknown user is checked against costs the same
    yield
    users._decoy_hash.cache_clear()


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for tests that load the bundled Whisper, so it is assembled once per run."""
    return tmp_path_factory.mktemp("scribe_data")


@pytest.fixture(scope="session")
def tiny_medasr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised MedASR checkpoint (`tests/tiny_medasr.py`), built once per run."""
    pytest.importorskip("transformers", reason="the tiny MedASR needs the gpu extra")
    pytest.importorskip("sentencepiece", reason="the tiny MedASR trains a sentencepiece tokenizer")
    from tests.tiny_medasr import build_tiny_medasr

    return build_tiny_medasr(tmp_path_factory.mktemp("tiny_medasr"))


@pytest.fixture
def settings(shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(shared_models_dir))
    return Settings()


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory):
    """The bundled Whisper loaded once per module that asks for it (real weights: such tests are `slow`)."""
    from scribe.asr import EngineChoice, load_engine

    settings = Settings(data_dir=tmp_path_factory.mktemp("models"))
    return load_engine(EngineChoice("whisper", None, "test"), settings)


@pytest.fixture(scope="session")
def models_dir(shared_models_dir: Path) -> Path:
    """The run's models folder (that of `settings`) with the bundled Whisper assembled once, for servers to link to."""
    from scribe.asr.bundled_whisper import ensure_bundled

    ensure_bundled(shared_models_dir / "models")
    return shared_models_dir / "models"


@pytest.fixture
def client(app):
    """The test module's `app`, started (its lifespan runs) under a TestClient; a module may define its own."""
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


PG_URL = os.environ.get("SCRIBE_TEST_DATABASE_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_target(request, tmp_path: Path, shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """(settings, schema): a fresh SQLite file, or a PostgreSQL schema of its own that is dropped afterwards."""
    import uuid

    from sqlalchemy import text

    from scribe.store.db import make_engine

    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path))
    base = dict(data_dir=tmp_path, secret_key=KEY, audio_root=tmp_path / "audio")
    models = shared_models_dir / "models"
    if request.param == "sqlite":
        yield Settings(**base), None, models
        return
    if not PG_URL:
        pytest.skip("SCRIBE_TEST_DATABASE_URL is not set (CI sets it to the local PostgreSQL server)")
    schema = f"scribe_test_{uuid.uuid4().hex[:12]}"
    yield Settings(**base, database_url=PG_URL), schema, models
    engine = make_engine(PG_URL)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def api(database_target):
    """The whole app on SQLite and on PostgreSQL, with tests/helpers/clinic.py's clinicians and EHR clients enrolled
    and the session's bundled Whisper linked in (an upload is transcribed on first use); a module may define its own."""
    from fastapi.testclient import TestClient

    from scribe.api.app import create_app
    from scribe.asr.bundled_whisper import ensure_bundled
    from tests.accounts import enrol
    from tests.helpers.clinic import DR_A, DR_B, EHR, EHR_DRAFTS

    settings, schema, models = database_target
    ensure_bundled(models)
    (settings.data_dir / "models").mkdir(parents=True, exist_ok=True)
    link = settings.data_dir / "models" / "whisper-base"
    if not link.exists():
        link.symlink_to(models / "whisper-base")
    with TestClient(create_app(settings, load_asr=False, database_schema=schema)) as client:
        enrol(client.app.state.database, DR_A, DR_B, EHR, EHR_DRAFTS)
        yield client
