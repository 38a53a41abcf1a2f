"""Reading deploy/ as the tests check it: the compose file, the Kubernetes manifests, the image definition and
the nginx configuration, parsed, with the CLI and the app they must agree with."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import typer
import yaml
from typer.testing import CliRunner

from scribe.cli import app as cli_app
from scribe.config import Settings
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
MIB = 1024 * 1024
HOUR = 3600


# ---------------------------------------------------------------------------------------------------- helpers


def env_example() -> dict[str, str]:
    """deploy/env.example as the `.env` compose interpolates from."""
    pairs = (
        line.split("=", 1)
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {name.strip(): value.strip() for name, value in pairs}


def interpolate(value, env: dict[str, str]):
    """Compose's `${NAME}`, `${NAME:-default}`, `${NAME:?message}` and `$$`, applied through a parsed document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in env and (env[name] or op != ":-"):
            return env[name]
        if op == ":?":
            raise AssertionError(f"compose needs {name} ({arg}) and deploy/env.example does not set it")
        return arg or ""

    value = re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value.replace("$$", "\0"))
    return value.replace("\0", "$")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def k8s_documents() -> dict[str, list[dict]]:
    """Every Kubernetes manifest under deploy/k8s, by file name (kustomization.yaml is kustomize's, not the API's)."""
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def k8s_objects(kind: str | None = None) -> list[dict]:
    return [doc for docs in k8s_documents().values() for doc in docs if kind is None or doc["kind"] == kind]


def k8s_object(kind: str, name: str) -> dict:
    found = [doc for doc in k8s_objects(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} definitions"
    return found[0]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def dockerfile_env() -> dict[str, str]:
    """The image's ENV settings."""
    env = {}
    for name, args in dockerfile_instructions():
        if name == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def dockerfile_exec_form(instruction: str) -> list[str]:
    """The last ENTRYPOINT or CMD, which must be in exec (JSON) form: no shell between the runtime and scribe."""
    values = [args for name, args in dockerfile_instructions() if name == instruction]
    assert values, f"the Dockerfile has no {instruction}"
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list) and all(isinstance(part, str) for part in parsed), values[-1]
    return parsed


def scribe_argv(entrypoint: list[str], args: list[str]) -> list[str]:
    """The arguments the `scribe` CLI receives when the image runs `args` (Kubernetes args / compose command)."""
    assert entrypoint[0] == "scribe", f"the image's entrypoint is {entrypoint}, not the scribe CLI"
    return entrypoint[1:] + args


def resolve_cli(argv: list[str]):
    """Parse argv exactly as `scribe` would (groups, subcommands, every option and its type), without running it."""
    command = typer.main.get_command(cli_app)
    context = command.make_context("scribe", list(argv))
    while hasattr(command, "resolve_command"):  # a group (typer's own click: not an instance of click.Group)
        pending = [*getattr(context, "_protected_args", getattr(context, "protected_args", [])), *context.args]
        name, sub, rest = command.resolve_command(context, pending)
        assert sub is not None, f"scribe has no command {name!r}"
        command, context = sub, sub.make_context(name, rest, parent=context)
    assert not context.args, f"arguments left over: {context.args}"
    return context


def assert_real_cli_command(argv: list[str]) -> None:
    context = resolve_cli(argv)  # raises click's UsageError / NoSuchOption / BadParameter when the CLI would refuse it
    result = CliRunner().invoke(cli_app, [*argv, "--help"], prog_name="scribe")
    assert result.exit_code == 0, result.output
    assert f"Usage: {context.command_path} " in result.output


def app_routes() -> set[str]:
    """Every path the app serves, websocket included (read from the app, as tests/test_route_guard.py does)."""
    from scribe.api.app import create_app
    from tests.test_route_guard import all_routes

    return {path for _kind, path, _methods in all_routes(create_app(Settings(data_dir=Path("/nonexistent"))))}


def setting_env_names() -> set[str]:
    """Every environment variable scribe's Settings reads, and SCRIBE_CONFIG, which names its TOML file."""
    names = {"SCRIBE_CONFIG"}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else f"SCRIBE_{name.upper()}")
    return names


def nginx_conf() -> str:
    return (DEPLOY / "nginx" / "scribe.conf").read_text()


def nginx_tls_server() -> tuple[dict[str, str], dict[str, dict[str, list[str]]]]:
    """The TLS server block of the nginx config: its own directives, and each location's (name -> values)."""
    text = re.sub(r"#[^\n]*", "", nginx_conf())
    servers = re.findall(r"server\s*\{((?:[^{}]|\{[^{}]*\})*)\}", text)
    tls = [body for body in servers if re.search(r"listen\s+443\b", body)]
    assert len(tls) == 1, "one server listens on 443"
    body = tls[0]
    locations = {}
    for match in re.finditer(r"location\s+([^{]+?)\s*\{([^{}]*)\}", body):
        locations[match.group(1).strip()] = directives(match.group(2))
    outside = re.sub(r"location\s+[^{]+\{[^{}]*\}", "", body)
    return {k: v[-1] for k, v in directives(outside).items()}, locations


def directives(block: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for statement in block.split(";"):
        words = statement.split(None, 1)
        if words:
            found.setdefault(words[0], []).append(words[1].strip() if len(words) > 1 else "")
    return found


def nginx_seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def nginx_bytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[unit.lower()]


def location_for(path: str, locations: dict) -> dict[str, list[str]]:
    """The nginx location that serves `path`: exact match, then the first matching regex, then the longest prefix."""
    for name, block in locations.items():
        if name.startswith("= ") and name[2:].strip() == path:
            return block
    for name, block in locations.items():
        if name.startswith("~ ") and re.search(name[2:].strip(), path):
            return block
    prefixes = [name for name in locations if not name.startswith(("=", "~")) and path.startswith(name)]
    assert prefixes, f"no nginx location serves {path}"
    return locations[max(prefixes, key=len)]
