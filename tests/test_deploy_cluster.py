"""deploy/ for many nodes, without a container engine: the nginx proxy, the Kubernetes manifests and the alerts.

The manifests are checked against the Kubernetes JSON schemas offline with kubernetes-validate (the schemas ship
inside the package); the nginx configuration passes `nginx -t` with a throwaway certificate; every limit fits the
service's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from scribe.config import Settings
from tests.helpers.deploy import (
    DEPLOY,
    HOUR,
    K8S,
    app_routes,
    assert_real_cli_command,
    compose,
    dockerfile_env,
    dockerfile_exec_form,
    env_example,
    interpolate,
    k8s_documents,
    k8s_object,
    k8s_objects,
    location_for,
    nginx_bytes,
    nginx_conf,
    nginx_seconds,
    nginx_tls_server,
    resolve_cli,
    scribe_argv,
)

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
