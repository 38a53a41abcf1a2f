"""Locate files shipped with scribe (Jinja templates) in a source checkout and in an installed wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

_PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """`scribe/_templates` inside a wheel; the repository's top-level `templates/` in a checkout."""
    for candidate in (_PACKAGE_DIR / "_templates", _PACKAGE_DIR.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("scribe's templates directory is missing from this installation")


@cache
def template_environment() -> jinja2.Environment:
    """One environment for every template; HTML templates are autoescaped, text ones are not."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2", "xml")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_template(name: str, **values: object) -> str:
    return template_environment().get_template(name).render(**values)
