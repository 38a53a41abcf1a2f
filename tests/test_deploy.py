"""deploy/ holds together without a container engine: every file parses, every name it uses is defined,
every command is one the CLI has, every probe is a route the app serves, and every limit fits the service's.

The Kubernetes manifests are checked against the Kubernetes JSON schemas offline with kubernetes-validate
(the schemas ship inside the package), the compose file against the Compose Specification's schema with
check-jsonschema (vendored in it); the nginx configuration passes `nginx -t` with a throwaway certificate.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
import yaml
from typer.testing import CliRunner

from scribe.cli import app as cli_app
from scribe.config import Settings

REPO = Path(__file__).resolve().parent.parent
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


# ---------------------------------------------------------------------------------------------------- compose


def test_compose_parses_and_every_name_it_uses_is_defined():
    doc = compose()
    services, volumes = doc["services"], doc.get("volumes", {})
    networks, secrets = doc.get("networks", {}), doc.get("secrets", {})
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on undefined service {dependency}"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0] if isinstance(mount, str) else mount["source"]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is not in deploy/"
            else:
                assert source in volumes, f"{name} uses undefined volume {source}"
        for secret in service.get("secrets", []):
            assert (secret if isinstance(secret, str) else secret["source"]) in secrets, f"{name}: secret {secret}"
        for network in service.get("networks", []):
            assert network in networks, f"{name} joins undefined network {network}"
    for name, secret in secrets.items():
        # The real files are git-ignored; their templates are what the repository holds.
        example = DEPLOY / (secret["file"] + ".example")
        assert example.is_file(), f"secret {name}: no {example.relative_to(REPO)} to start from"
        assert "CHANGE-ME" in example.read_text()
    interpolate(doc, env_example())  # every ${NAME:?} compose insists on is set in env.example


@pytest.mark.slow  # a check-jsonschema subprocess
def test_compose_validates_against_the_compose_specification(tmp_path: Path):
    """The compose file, as written and as interpolated with env.example, fits the Compose Specification's JSON
    schema (check-jsonschema's vendored copy: offline)."""
    interpolated = tmp_path / "compose.yaml"
    interpolated.write_text(yaml.safe_dump(interpolate(compose(), env_example())))
    for path in (DEPLOY / "compose.yaml", interpolated):
        result = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_the_migration_once_before_the_scribe_replicas():
    services = interpolate(compose(), env_example())["services"]
    scribe, migrate = services["scribe"], services["migrate"]
    assert scribe["deploy"]["replicas"] >= 2
    assert scribe["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["restart"] == "no"
    assert migrate["image"] == scribe["image"]
    entrypoint = dockerfile_exec_form("ENTRYPOINT")
    assert scribe_argv(entrypoint, migrate["command"]) == ["db", "upgrade"]
    for service in (scribe, migrate):
        assert_real_cli_command(scribe_argv(entrypoint, service["command"]))
        assert service["read_only"] is True and any(t.startswith("/tmp") for t in service["tmpfs"])
        assert "postgres" in service["depends_on"]


def test_compose_keeps_the_database_and_backs_it_up():
    services = compose()["services"]
    assert any(mount.endswith(":/var/lib/postgresql/data") for mount in services["postgres"]["volumes"])
    backup = services["db-backup"]
    script = " ".join(backup["command"])
    assert "pg_dump" in script and "--host=postgres" in script and "--format=custom" in script
    assert backup["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(mount.startswith("backups:") for mount in backup["volumes"])


def test_compose_points_the_openai_note_engine_at_the_vllm_service():
    doc = interpolate(compose(), env_example())
    services = doc["services"]
    settings = Settings(
        **{  # the values scribe would read, through its own validation
            "note_engine": services["scribe"]["environment"]["SCRIBE_NOTE_ENGINE"],
            "llm_base_url": services["scribe"]["environment"]["SCRIBE_LLM_BASE_URL"],
            "llm_model": services["scribe"]["environment"]["SCRIBE_LLM_MODEL"],
        }
    )
    assert settings.note_engine == "openai"
    host_port = re.fullmatch(r"http://([\w-]+):(\d+)/v1", settings.llm_base_url)
    assert host_port and host_port.group(1) in services, settings.llm_base_url
    vllm = services[host_port.group(1)]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    args = vllm["command"]
    assert args[args.index("--model") + 1] == settings.llm_model == "google/medgemma-27b-text-it"
    raw = compose()["services"]["vllm"]
    assert raw["command"][raw["command"].index("--tensor-parallel-size") + 1] == "${MEDGEMMA_TP:-2}"
    assert raw["deploy"]["resources"]["reservations"]["devices"][0]["count"] == "${MEDGEMMA_TP:-2}"
    assert "gpu" in raw["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"]
    assert "--port" not in args or args[args.index("--port") + 1] == host_port.group(2)
    assert host_port.group(2) == "8000"  # vLLM's default port
    assert any(mount.endswith(":/root/.cache/huggingface") for mount in vllm["volumes"])
    assert "llm" in services["scribe"]["networks"] and "llm" in vllm["networks"]
    assert "google/medgemma-4b-it" in (DEPLOY / "compose.yaml").read_text()  # the smaller alternative, documented


def test_compose_trusts_forwarded_headers_from_the_proxy_only():
    doc = compose()
    proxy_address = doc["services"]["proxy"]["networks"]["app"]["ipv4_address"]
    subnet = ipaddress.ip_network(doc["networks"]["app"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(proxy_address) in subnet
    assert doc["services"]["scribe"]["environment"]["FORWARDED_ALLOW_IPS"] == proxy_address
    assert "app" in doc["services"]["scribe"]["networks"]
    assert set(doc["services"]["proxy"].get("ports", [])) == {"443:443", "80:80"}
    assert not any(service.get("ports") for name, service in doc["services"].items() if name != "proxy")


def test_every_scribe_variable_deploy_sets_is_a_real_setting():
    known = setting_env_names()
    used = set()
    for service in compose()["services"].values():
        used |= {name for name in service.get("environment", {}) if name.startswith("SCRIBE_")}
    for doc in k8s_objects("ConfigMap") + k8s_objects("Secret"):
        used |= {name for name in {**doc.get("data", {}), **doc.get("stringData", {})} if name.startswith("SCRIBE_")}
    used |= {name for name in dockerfile_env() if name.startswith("SCRIBE_")}
    assert used, "deploy sets no SCRIBE_ variable at all"
    assert used <= known, f"not scribe settings: {sorted(used - known)}"


def test_secrets_are_never_literal_and_placeholders_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from scribe.auth.signing_key import signing_key
    from scribe.errors import ConfigError

    for name, service in compose()["services"].items():
        for variable in service.get("environment", {}):
            if re.search(r"SECRET|PASSWORD|TOKEN|API_KEY", variable) and not variable.endswith(("_FILE", "_PATH")):
                pytest.fail(f"{name} sets {variable} literally; use a compose secret")
    # The config secret is a TOML file scribe reads through SCRIBE_CONFIG: its template loads as settings...
    monkeypatch.setenv("SCRIBE_CONFIG", str(DEPLOY / "secrets" / "scribe.toml.example"))
    from scribe.config import load_settings

    settings = load_settings()
    assert settings.database_url.startswith("postgresql://") and "@postgres:5432/" in settings.database_url
    # ...and a placeholder left in place stops scribe at start (too short a signing key), here and in the Secret.
    for key in (settings.secret_key, k8s_object("Secret", "scribe-secrets")["stringData"]["SCRIBE_SECRET_KEY"]):
        assert "CHANGE-ME" in key
        with pytest.raises(ConfigError):
            signing_key(Settings(data_dir=tmp_path, secret_key=key), database=None)


# ---------------------------------------------------------------------------------------------------- Dockerfile


def dockerfile_env() -> dict[str, str]:
    env = {}
    for name, args in dockerfile_instructions():
        if name == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def test_dockerfile_runs_a_command_the_cli_really_has():
    entrypoint, cmd = dockerfile_exec_form("ENTRYPOINT"), dockerfile_exec_form("CMD")
    argv = scribe_argv(entrypoint, cmd)
    assert argv[0] == "serve"
    context = resolve_cli(argv)
    assert context.params["host"] == "0.0.0.0" and context.params["port"] == 8000
    assert_real_cli_command(argv)
    exposed = [args for name, args in dockerfile_instructions() if name == "EXPOSE"]
    assert exposed == [str(context.params["port"])]


def test_dockerfile_builds_in_two_stages_and_runs_unprivileged_on_volumes():
    instructions = dockerfile_instructions()
    stages = [args for name, args in instructions if name == "FROM"]
    assert len(stages) == 2 and stages[0].split()[0] == stages[1].split()[0], "both stages on the same base"
    assert "build" in stages[0].split()[-1] and any(
        "--from=build" in args for name, args in instructions if name == "COPY"
    )
    user = [args for name, args in instructions if name == "USER"][-1]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
    env = dockerfile_env()
    assert env["TMPDIR"] == "/tmp"
    volumes = json.loads([args for name, args in instructions if name == "VOLUME"][-1])
    data = env["SCRIBE_DATA_DIR"]
    models = str(Settings(data_dir=Path(data)).models_dir)
    audio = str(Settings(data_dir=Path(data), audio_root=Path(env["SCRIBE_AUDIO_DIR"])).audio_dir)
    assert {data, models, audio} <= set(volumes)
    assert env["HF_HOME"].startswith(models + "/")  # any hub cache lands on the models volume
    for name, args in instructions:  # every file the build copies from the context is in the repository
        if name == "COPY" and "--from=" not in args:
            for source in shlex.split(args)[:-1]:
                assert (REPO / source).exists(), source


def test_dockerignore_keeps_what_the_build_copies():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for name, args in dockerfile_instructions():
        if name == "COPY" and "--from=" not in args:
            for source in shlex.split(args)[:-1]:
                assert source.rstrip("/") in allowed, f"{source} is copied but excluded from the build context"


# ---------------------------------------------------------------------------------------------------- probes


def probe_urls() -> list[str]:
    """Every URL the Dockerfile, compose and Kubernetes probe scribe on (vLLM's own probes are vLLM's)."""
    urls = []
    healthcheck = [args for name, args in dockerfile_instructions() if name == "HEALTHCHECK"][-1]
    urls += re.findall(r"http://[^\"' ]+", healthcheck)
    deployment = k8s_object("Deployment", "scribe")
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            spec = container[probe]
            if "httpGet" in spec:
                urls.append(f"http://127.0.0.1:{container['ports'][0]['containerPort']}{spec['httpGet']['path']}")
            else:
                urls += [part for part in spec["exec"]["command"] if part.startswith("http://")]
    return urls


def test_probes_ask_routes_the_app_serves():
    routes = app_routes()
    urls = probe_urls()
    assert len(urls) >= 4
    for url in urls:
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/\S*)", url)
        assert match and match.group(1) == "8000", url
        assert match.group(2) in routes, f"{url}: the app serves no {match.group(2)}"


def test_readiness_runs_the_check_the_image_installs():
    copies = [shlex.split(args) for name, args in dockerfile_instructions() if name == "COPY"]
    installed = {dest: source for *sources, dest in copies for source in sources if source.endswith("healthcheck.py")}
    assert installed == {"/opt/scribe/healthcheck.py": "deploy/healthcheck.py"}
    healthcheck = [args for name, args in dockerfile_instructions() if name == "HEALTHCHECK"][-1]
    assert json.loads(healthcheck.split("CMD", 1)[1])[:2] == ["python", "/opt/scribe/healthcheck.py"]
    container = k8s_object("Deployment", "scribe")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["exec"]["command"][:2] == ["python", "/opt/scribe/healthcheck.py"]
    # Liveness stays an HTTP probe on /healthz: a pod whose ASR failed to load is kept (unready) with its log.
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.fixture
def live_app(tmp_path: Path):
    """scribe's app served by uvicorn on a free port, speech recognition not loaded (as before it is ready)."""
    import uvicorn

    from scribe.api.app import create_app

    app = create_app(Settings(data_dir=tmp_path, secret_key="k" * 40), load_asr=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the app did not start"
        time.sleep(0.05)
    yield app, f"http://127.0.0.1:{listener.getsockname()[1]}/healthz"
    server.should_exit = True
    thread.join(10)
    listener.close()


def run_healthcheck(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py"), url], capture_output=True, text=True, timeout=30
    )


@pytest.mark.slow  # the healthcheck script as subprocesses
def test_healthcheck_passes_only_once_speech_recognition_is_loaded(live_app):
    app, url = live_app
    not_ready = run_healthcheck(url)
    assert not_ready.returncode == 1 and "not ready" in not_ready.stderr
    whisper = SimpleNamespace(name="whisper", model="test", workers=1)
    app.state.asr.serve({"encounter": whisper, "dictation": whisper})
    assert run_healthcheck(url).returncode == 0
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert run_healthcheck(f"http://127.0.0.1:{port}/healthz").returncode == 1  # nothing listening
    assert run_healthcheck(url.replace("/healthz", "/no-such-route")).returncode == 1


# ---------------------------------------------------------------------------------------------------- nginx


def test_nginx_proxies_hour_long_websockets_and_the_largest_upload():
    server, locations = nginx_tls_server()
    routes = app_routes()
    assert "/v1/encounters/{encounter_id}/stream" in routes and "/v1/encounters/{id}/audio" in routes
    stream = location_for("/v1/encounters/ENC-1/stream", locations)
    assert stream["proxy_set_header"].count("Upgrade $http_upgrade") == 1
    assert "Connection $connection_upgrade" in stream["proxy_set_header"]
    assert "$connection_upgrade" in nginx_conf() and re.search(
        r"map\s+\$http_upgrade\s+\$connection_upgrade", nginx_conf()
    )
    for timeout in ("proxy_read_timeout", "proxy_send_timeout", "send_timeout"):
        assert nginx_seconds(stream[timeout][-1]) >= HOUR, timeout
    assert stream["proxy_buffering"] == ["off"]
    # The largest body scribe takes is audio; nginx must let it through so scribe's own limit answers.
    defaults = Settings()
    largest = max(
        defaults.max_audio_bytes,
        defaults.max_image_bytes,
        defaults.max_records_bytes,
        defaults.max_note_bytes,
        defaults.max_form_bytes,
    )
    assert nginx_bytes(server["client_max_body_size"]) >= largest
    # An upload waits up to SCRIBE_UPLOAD_WAIT_S for its transcript; nginx must not give up first.
    upload = location_for("/v1/encounters/ENC-1/audio", locations)
    assert nginx_seconds(upload.get("proxy_read_timeout", [server["proxy_read_timeout"]])[-1]) > defaults.upload_wait_s
    assert upload["proxy_request_buffering"] == ["off"]
    assert location_for("/metrics", locations).get("deny") == ["all"]
    assert location_for("/v1/notes/x", locations) is not stream
    # Every location sends to the scribe service's port, the one the image listens on.
    assert "$scribe_upstream scribe:8000" in server["set"]
    assert all(
        block["proxy_pass"] == ["http://$scribe_upstream"] for block in locations.values() if "proxy_pass" in block
    )
    assert server["ssl_certificate"].startswith("/etc/nginx/certs/")
    mounts = compose()["services"]["proxy"]["volumes"]
    assert "./nginx/scribe.conf:/etc/nginx/conf.d/default.conf:ro" in mounts
    assert "./certs:/etc/nginx/certs:ro" in mounts


def test_every_proxied_location_forwards_host_scheme_client_and_request_id():
    """nginx drops all of the server block's proxy_set_header in a location that sets one of its own (the websocket
    location must): scribe would see nginx's address, plain http and no request id on its streams."""
    _, locations = nginx_tls_server()
    forwarded = {
        "Host $host",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
        "X-Forwarded-Proto $scheme",
        "X-Request-ID $request_id",
    }
    server_level = set(re.findall(r"^ {4}proxy_set_header\s+([^;]+);", nginx_conf(), re.M))
    assert forwarded <= server_level
    own = {name: block for name, block in locations.items() if "proxy_pass" in block and "proxy_set_header" in block}
    assert own, "the websocket location sets its own headers"
    for name, block in own.items():
        assert forwarded <= set(block["proxy_set_header"]), name


@pytest.mark.slow  # an nginx subprocess
def test_nginx_accepts_the_configuration(tmp_path: Path):
    nginx, openssl = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("openssl")
    if not Path(nginx).exists() or openssl is None:
        pytest.skip("nginx and openssl are needed (.ci/run installs nginx)")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(tmp_path / "tls.key"),
            "-out",
            str(tmp_path / "tls.crt"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    site = nginx_conf().replace("/etc/nginx/certs/", f"{tmp_path}/")
    assert site != nginx_conf()
    (tmp_path / "scribe.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(  # the official image's main file, reduced: http{} includes the site
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/scribe.conf;\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------------- Kubernetes


def test_every_manifest_validates_against_the_kubernetes_schemas():
    import kubernetes_validate

    documents = k8s_documents()
    assert len(documents) >= 9
    for version in ("1.29.0", kubernetes_validate.latest_version()):
        for name, docs in documents.items():
            for doc in docs:
                try:  # strict: a misspelt or misplaced field is an error, not silently ignored
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{name} {doc['kind']}/{doc['metadata']['name']} on {version}: {exc.message}")


def test_kustomization_applies_every_manifest_but_the_migration_job():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(k8s_documents()) - {"db-upgrade-job.yaml"}


def test_manifests_refer_only_to_objects_they_define():
    defined = {(doc["kind"], doc["metadata"]["name"]) for doc in k8s_objects()}
    namespace = k8s_object("Namespace", "scribe")["metadata"]["name"]
    for doc in k8s_objects():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]
    for workload in k8s_objects("Deployment") + k8s_objects("Job"):
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                assert (kind, (source.get("configMapRef") or source["secretRef"])["name"]) in defined
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in k8s_object("Secret", ref["name"])["stringData"]
            volumes = {volume["name"] for volume in pod.get("volumes", [])}
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{workload['metadata']['name']} mounts undefined {mount['name']}"
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in defined
    for service in k8s_objects("Service"):
        targets = [
            d
            for d in k8s_objects("Deployment")
            if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, f"Service {service['metadata']['name']} selects {len(targets)} Deployments"
        port_names = {p["name"] for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert all(port["targetPort"] in port_names for port in service["spec"]["ports"])
    for ingress in k8s_objects("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = k8s_object("Service", backend["name"])
                assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
    deployment = k8s_object("Deployment", "scribe")
    for selecting in k8s_objects("PodDisruptionBudget") + [deployment]:
        assert (
            selecting["spec"]["selector"]["matchLabels"].items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items()
        )
    for policy in k8s_objects("NetworkPolicy"):
        assert any(
            policy["spec"]["podSelector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
            for d in k8s_objects("Deployment")
        )


def test_kubernetes_runs_real_commands_and_migrates_with_the_same_image():
    entrypoint = dockerfile_exec_form("ENTRYPOINT")
    deployment, job = k8s_object("Deployment", "scribe"), k8s_object("Job", "scribe-db-upgrade")
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    migration = job["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in server and "command" not in migration  # the image's entrypoint: the scribe CLI
    assert scribe_argv(entrypoint, migration["args"]) == ["db", "upgrade"]
    for container in (server, migration):
        assert_real_cli_command(scribe_argv(entrypoint, container["args"]))
    assert migration["image"] == server["image"], "the migration must be the release about to roll out"
    assert resolve_cli(server["args"]).params["port"] == server["ports"][0]["containerPort"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_scribe_pods_are_locked_down_and_sized_by_the_measured_stream_cost():
    deployment = k8s_object("Deployment", "scribe")
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    for workload in (deployment, k8s_object("Job", "scribe-db-upgrade")):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert "/tmp" in mounts and dockerfile_env()["SCRIBE_DATA_DIR"] in mounts
    container = pod["containers"][0]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    settings = k8s_object("ConfigMap", "scribe-settings")["data"]
    audio = mounts[settings["SCRIBE_AUDIO_DIR"]]
    claim = k8s_object("PersistentVolumeClaim", volumes[audio]["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "every pod must see every recording"
    assert str(Settings(data_dir=Path(dockerfile_env()["SCRIBE_DATA_DIR"])).models_dir) in mounts
    # Measured with `scribe bench stream` on 2 cores: 4 real-time streams, i.e. 0.5 core a stream. The limit is
    # the request, since scribe runs as many Whisper calls as its CPU quota allows.
    resources = container["resources"]
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"]
    cores = float(resources["requests"]["cpu"])
    text = (K8S / "deployment.yaml").read_text()
    assert "0.5 core per concurrent real-time stream" in text and f"serve {int(cores / 0.5)} streams per pod" in text
    assert "0.5 core per concurrent real-time stream" in (DEPLOY / "README.md").read_text()


def compose_seconds(duration: str) -> float:
    """A compose duration such as `45s`, `1m30s` or `2m`, in seconds."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, f"unreadable compose duration {duration!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_nodes_are_given_the_time_their_drain_takes():
    """On SIGTERM a node drains for up to SCRIBE_SHUTDOWN_GRACE_S; the orchestrator must not kill it sooner.
    Kubernetes counts the preStop pause in its grace period; Docker's default stop timeout is 10 s."""
    default = Settings().shutdown_grace_s
    pod = k8s_object("Deployment", "scribe")["spec"]["template"]["spec"]
    grace = float(k8s_object("ConfigMap", "scribe-settings")["data"].get("SCRIBE_SHUTDOWN_GRACE_S", default))
    pause = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= float(pause[1]) + grace + 5
    scribe = interpolate(compose()["services"]["scribe"], env_example())
    grace = float(scribe["environment"].get("SCRIBE_SHUTDOWN_GRACE_S", default))
    assert compose_seconds(scribe.get("stop_grace_period", "10s")) >= grace + 5
    assert "SCRIBE_SHUTDOWN_GRACE_S" in (DEPLOY / "README.md").read_text()


def test_ingress_keeps_hour_long_streams_and_takes_the_largest_upload():
    defaults = Settings()
    ingress = k8s_object("Ingress", "scribe")
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= HOUR
    assert int(annotations[prefix + "proxy-send-timeout"]) >= HOUR
    assert nginx_bytes(annotations[prefix + "proxy-body-size"]) >= defaults.max_audio_bytes
    assert ingress["spec"]["tls"] and ingress["spec"]["ingressClassName"] == "nginx"
    public = k8s_object("ConfigMap", "scribe-settings")["data"]["SCRIBE_PUBLIC_URL"]
    hosts = {rule["host"] for i in k8s_objects("Ingress") for rule in i["spec"]["rules"]}
    assert hosts == {public.removeprefix("https://")}
    assert json.loads(k8s_object("ConfigMap", "scribe-settings")["data"]["SCRIBE_ALLOWED_ORIGINS"]) == [public]
    metrics = k8s_object("Ingress", "scribe-metrics")
    assert metrics["spec"]["rules"][0]["http"]["paths"][0] == {
        **metrics["spec"]["rules"][0]["http"]["paths"][0],
        "path": "/metrics",
        "pathType": "Exact",
    }


def test_vllm_serves_medgemma_on_its_gpus_for_the_openai_engine():
    deployment, service = k8s_object("Deployment", "vllm"), k8s_object("Service", "vllm")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("vllm/vllm-openai:")
    args = dict(arg.split("=", 1) for arg in container["args"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert args["--tensor-parallel-size"] == "$(MEDGEMMA_TP)"  # expanded by Kubernetes from the env
    gpus = container["resources"]["requests"]["nvidia.com/gpu"]
    assert gpus == container["resources"]["limits"]["nvidia.com/gpu"] == int(env["MEDGEMMA_TP"])
    settings = Settings(
        **{
            "llm_base_url": k8s_object("ConfigMap", "scribe-settings")["data"]["SCRIBE_LLM_BASE_URL"],
            "llm_model": k8s_object("ConfigMap", "scribe-settings")["data"]["SCRIBE_LLM_MODEL"],
        }
    )
    assert args["--model"] == settings.llm_model == "google/medgemma-27b-text-it"
    url = re.fullmatch(r"http://([\w-]+)\.(\w+)\.svc:(\d+)/v1", settings.llm_base_url)
    assert url and url.group(1) == service["metadata"]["name"] and url.group(2) == service["metadata"]["namespace"]
    assert int(url.group(3)) == service["spec"]["ports"][0]["port"] and args.get("--port", "8000") == "8000"
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    cache = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mounts[env["HF_HOME"]])
    assert "persistentVolumeClaim" in cache
    assert "google/medgemma-4b-it" in (K8S / "vllm.yaml").read_text()


# ---------------------------------------------------------------------------------------------------- alerts

ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
PROMETHEUS_SERIES = {"up"}  # made by Prometheus itself for every scrape target


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers that are not functions (followed by `(`),
    operators, label names (inside `{}` or a grouping clause) or durations (inside `[]`)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    return {name for name in re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(?!\s*\()", bare) if name not in PROMQL_WORDS}


def exported_metric_names(data_dir: Path) -> set[str]:
    """Every metric family /metrics renders on a ready node with an EHR outbox (everything it can export)."""
    from fastapi.testclient import TestClient

    from scribe.api.app import create_app

    settings = Settings(
        data_dir=data_dir, secret_key="k" * 40, ehr_fhir_url="http://127.0.0.1:9/fhir", delivery_interval_s=3600
    )
    app = create_app(settings, load_asr=False)
    with TestClient(app) as client:
        whisper = SimpleNamespace(name="whisper", model="test", workers=1)
        app.state.asr.serve({"encounter": whisper, "dictation": whisper})
        client.get("/healthz")
        body = client.get("/metrics").text
    return set(re.findall(r"^# TYPE (\S+) (?:counter|gauge)$", body, re.M))


def test_alert_rules_are_prometheus_rule_groups():
    """The structure Prometheus documents for rule files: groups with a unique name and rules, each rule an alert
    with a PromQL expression, a duration, labels and annotations (no maintained rule validator is on PyPI)."""
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"} and document["groups"]
    group_names = [group["name"] for group in document["groups"]]
    assert len(set(group_names)) == len(group_names)
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"} and group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert rule["expr"].count("(") == rule["expr"].count(")") and rule["expr"].count("{") == rule["expr"].count(
                "}"
            )
            assert re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", str(rule.get("for", "0s"))), rule["alert"]
            assert rule["labels"]["severity"] in {"page", "warning"}
            assert {"summary", "description"} <= set(rule["annotations"])
            assert all(isinstance(value, str) for value in [*rule["labels"].values(), *rule["annotations"].values()])
    alerts = [rule["alert"] for rule in alert_rules()]
    assert len(set(alerts)) == len(alerts)
    covered = {
        "ScribeNodeNotReady",
        "ScribeStreamsRefused",
        "ScribePassQueueHigh",
        "ScribeOutboxBacklogGrowing",
        "ScribeHttpServerErrors",
        "ScribeNoteDraftingSlow",
    }
    assert covered <= set(alerts)
    assert "prometheus/alerts.yaml" in (DEPLOY / "README.md").read_text()


def test_alert_rules_use_only_metrics_scribe_exports(tmp_path: Path):
    assert promql_metric_names('sum by (instance) (rate(a_total{status=~"5.."}[5m])) / on(x) b:c > 0.05 and d') == {
        "a_total",
        "b:c",
        "d",
    }
    exported = exported_metric_names(tmp_path)
    for rule in alert_rules():
        used = promql_metric_names(rule["expr"])
        assert used and used - PROMETHEUS_SERIES <= exported, (rule["alert"], used - exported)


# ---------------------------------------------------------------------------------------------------- read-only root


@pytest.mark.slow
def test_image_command_serves_from_a_read_only_root(tmp_path: Path):
    """The image's command, with the image's environment, becomes ready when nothing but its volumes is writable.

    A private mount namespace remounts / read-only (as `readOnlyRootFilesystem` does) and keeps one directory
    writable, standing in for the data, models, audio and /tmp volumes.
    """
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    volumes = tmp_path / "volumes"
    image_env = dockerfile_env()
    root = Path(image_env["SCRIBE_DATA_DIR"])  # every volume of the image lies under the data directory, and /tmp
    for name in ("SCRIBE_AUDIO_DIR", "HF_HOME", "HOME"):
        assert Path(image_env[name]).is_relative_to(root), f"{name} is outside the image's volumes"
    env = {name: value.replace(str(root), str(volumes / "data")) for name, value in image_env.items() if name != "PATH"}
    env.update(
        TMPDIR=str(volumes / "tmp"),
        SCRIBE_SECRET_KEY="k" * 40,
        PYTHONPATH=str(REPO),
        PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",
    )
    for directory in (volumes / "tmp", Path(env["SCRIBE_AUDIO_DIR"]), volumes / "data" / "models"):
        directory.mkdir(parents=True, exist_ok=True)
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    argv = scribe_argv(dockerfile_exec_form("ENTRYPOINT"), dockerfile_exec_form("CMD"))
    argv[argv.index("--host") + 1], argv[argv.index("--port") + 1] = "127.0.0.1", str(port)
    server_command = shlex.join([sys.executable, "-m", "scribe.cli", *argv])
    script = (
        f"mount --bind {shlex.quote(str(volumes))} {shlex.quote(str(volumes))} && "
        f"mount -o remount,bind,ro / && ! touch /ro-probe 2>/dev/null && exec {server_command}"
    )
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240
        while run_healthcheck(f"http://127.0.0.1:{port}/healthz").returncode != 0:
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
    finally:
        server.terminate()
        server.wait(30)
    assert (volumes / "data" / "models" / "whisper-base" / "model.bin").is_file()  # assembled on the volume
    assert "Read-only file system" not in log.read_text()
