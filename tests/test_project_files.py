"""The README's two commands stay true: the test command is what CI runs, the run command names real files."""

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_has_exactly_two_setup_commands():
    assert len(readme_commands()) == 2


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = next(c for c in readme_commands() if "pytest" in c)
    assert test_command in (REPO / ".ci" / "run").read_text()


def test_run_command_installs_and_starts_the_service_on_the_embedded_defaults():
    run_command = next(c for c in readme_commands() if "pytest" not in c)
    steps = [shlex.split(step) for step in run_command.split("&&")]
    assert steps[1][-2:] == ["install", "."]  # the core install: no extra, no torch
    assert steps[-1] == [".venv/bin/scribe", "serve"]  # no option, no variable: the defaults


def test_files_the_readme_names_exist():
    for path in re.findall(r"\b(?:audio_samples|docs|streaming)/[\w./-]+\.\w+", (REPO / "README.md").read_text()):
        assert (REPO / path).is_file(), path


def test_samples_fit_the_size_budget():
    total = sum(p.stat().st_size for p in (REPO / "audio_samples").iterdir() if p.is_file())
    assert 0 < total <= 2 * 1024 * 1024


def test_every_document_the_code_and_docs_cite_is_in_the_repository():
    """A reference to a Markdown file (`docs/fhir.md`, `streaming/PROTOCOL.md`, "README.md") names a file a person
    who clones the project has: relative to the repository or to the folder of the file that cites it, or, named
    bare ("PROTOCOL.md"), the one file of that name in the project."""
    cited = re.compile(r"[\w./-]*[\w-]+\.md\b")
    folders = ("scribe", "streaming", "tests", "docs", "deploy", "templates")
    sources = [
        path
        for folder in folders
        for path in (REPO / folder).rglob("*")
        if path.suffix in (".py", ".md", ".js", ".html", ".yaml")
    ]
    documents = [path.name for path in sources if path.suffix == ".md"] + ["README.md"]
    missing = sorted(
        {
            f"{path.relative_to(REPO)}: {name}"
            for path in [*sources, REPO / "README.md"]
            for name in cited.findall(path.read_text(errors="ignore"))
            if not (REPO / name).exists()
            and not (path.parent / name).exists()
            and not ("/" not in name and documents.count(name) == 1)
        }
    )
    assert missing == []


def test_the_real_time_layer_is_imported_only_as_scribe_streaming():
    """`streaming/` installs as `scribe.streaming` (`scribe/streaming` links to it); a bare `streaming` import would
    work only in a checkout, and load the same files a second time as other modules."""
    link = REPO / "scribe" / "streaming"
    assert link.is_symlink() and link.resolve() == (REPO / "streaming").resolve()
    bare = re.compile(r"^\s*(from streaming[ .]|import streaming\b)", re.M)
    files = [
        p
        for folder in ("scribe", "streaming", "tests", "audio_samples", "deploy")
        for p in (REPO / folder).rglob("*.py")
    ]
    assert [str(p.relative_to(REPO)) for p in files if bare.search(p.read_text(encoding="utf-8"))] == []
