"""deploy/ holds together without a container engine: the compose file, the image definition and its probes.

The compose file is checked against the Compose Specification's schema with check-jsonschema (vendored in it);
every command is one the CLI has, every probe a route the app serves (tests/test_deploy_cluster.py: the proxy,
Kubernetes and the alerts).
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
import yaml

from scribe.config import Settings
from tests.helpers.deploy import (
    DEPLOY,
    REPO,
    app_routes,
    assert_real_cli_command,
    compose,
    dockerfile_env,
    dockerfile_exec_form,
    dockerfile_instructions,
    env_example,
    interpolate,
    k8s_object,
    k8s_objects,
    resolve_cli,
    scribe_argv,
    setting_env_names,
)

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
