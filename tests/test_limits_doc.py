"""docs/limits.md stays true to the code: every size and duration limit in scribe/config.py with its default, the
throttling figures, the JSON depth and the drafts scope, so a changed default cannot leave the page behind."""

from __future__ import annotations

import pytest

from scribe.api.bodies import BoundedRoute, NoteBodyRoute
from scribe.auth import throttle
from scribe.auth.smart import DRAFTS_SCOPE
from scribe.config import Settings
from scribe.json_input import MAX_DEPTH
from tests.conftest import REPO

LIMITS = (REPO / "docs" / "limits.md").read_text(encoding="utf-8")
LIMIT_SETTINGS = sorted(name for name in Settings.model_fields if name.startswith("max_"))


def row(name: str) -> str:
    """The one table row of docs/limits.md whose first cell is `name`."""
    rows = [line for line in LIMITS.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"docs/limits.md has {len(rows)} table rows for {name}"
    return rows[0]


def as_written(name: str, value: float) -> str:
    """A default as the page writes it: 100 MiB, 64 KiB, 4 h."""
    if name.endswith("_bytes"):
        for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
            if value % size == 0:
                return f"{int(value // size)} {unit}"
        return f"{int(value)} bytes"
    assert name.endswith("_seconds"), f"{name}: a limit in a unit this test does not know; teach it"
    return f"{value / 3600:g} h" if value % 3600 == 0 else f"{value:g} s"


def test_the_settings_include_every_route_body_limit():
    body_limits = {name for name in LIMIT_SETTINGS if name.endswith("_bytes")}
    assert {BoundedRoute.limit_setting, NoteBodyRoute.limit_setting} <= body_limits
    assert {"max_audio_bytes", "max_image_bytes", "max_records_bytes"} <= body_limits


@pytest.mark.parametrize("name", LIMIT_SETTINGS)
def test_every_limit_setting_is_documented_with_its_default(name: str):
    default = Settings.model_fields[name].default
    cells = [cell.strip() for cell in row(f"SCRIBE_{name.upper()}").strip("|").split("|")]
    assert cells[1] == as_written(name, default), (name, cells[1])
    assert cells[2], f"{name}: say which routes or commands it bounds"


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("WINDOW_S", f"{throttle.WINDOW_S / 60:g} minutes"),
        ("ADDRESS_LIMIT", str(throttle.ADDRESS_LIMIT)),
        ("ACCOUNT_LIMIT", str(throttle.ACCOUNT_LIMIT)),
        ("ACCOUNT_CEILING", str(throttle.ACCOUNT_CEILING)),
    ],
)
def test_the_throttling_figures_are_the_code_s(name: str, written: str):
    assert row(name).split("|")[2].strip() == written


def test_the_json_depth_and_the_drafts_scope_are_the_code_s():
    assert f"`MAX_DEPTH` = {MAX_DEPTH} levels" in LIMITS
    assert f"`{DRAFTS_SCOPE}`" in LIMITS
    assert f"`{DRAFTS_SCOPE}`" in (REPO / "docs" / "fhir.md").read_text(encoding="utf-8")
