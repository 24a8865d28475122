"""Deploy artefacts, checked without a container engine or a cluster: every YAML parses; docker compose,
Dockerfiles, Kubernetes manifests and Prometheus rules agree on service names, ports, images, settings,
probes and metric names; `docker-compose config` (Debian's v1) accepts the compose file."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = REPO / "docker-compose.yml"
GPU_REQUIREMENTS = "deploy/requirements-gpu-worker.txt"  # written with the GPU worker (issue on vllm)

# The ranker's and worker's settings (SEMREC_* environment variables, pydantic-settings).
KNOWN_SETTINGS = {
    "SEMREC_REDIS_URL", "SEMREC_REDIS_USERNAME", "SEMREC_REDIS_PASSWORD", "SEMREC_REDIS_CA_CERT",
    "SEMREC_REDIS_TIMEOUT_S", "SEMREC_CATALOG", "SEMREC_ADMIN_TOKEN", "SEMREC_HISTORY_CAP",
    "SEMREC_POLL_INTERVAL_S", "SEMREC_ORT_THREADS", "SEMREC_BLAS_THREADS", "SEMREC_ANN_THRESHOLD",
    "SEMREC_ANN_EXPANSION", "SEMREC_DEVICE", "SEMREC_MAX_BODY_BYTES", "SEMREC_LOG_LEVEL", "SEMREC_CACHE",
    "SEMREC_BUNDLE_SIGNING_KEY", "SEMREC_HISTORY_TTL_S", "SEMREC_DOCS_ENABLED", "SEMREC_REDIS_REQUEST_TIMEOUT_S",
    "SEMREC_HEADER_TIMEOUT_S", "SEMREC_BODY_TIMEOUT_S", "SEMREC_KEEP_ALIVE_S", "SEMREC_LIMIT_CONCURRENCY",
}  # fmt: skip
# Metrics the ranker exports that alerts, recording rules and the HPA's adapter rule use.
RANKER_METRICS = {"semrec_http_request_duration_seconds", "semrec_bundle_items", "semrec_reloads_total"}
SERVE = ["semrec", "serve", "--host", "0.0.0.0", "--port", "8000"]
WORKER_PIPELINE = ("semrec train seqrec --data", "semrec export onnx --run", "semrec publish --run")


def load_all(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def yaml_files() -> list[Path]:
    return sorted([COMPOSE, *DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])


def k8s_objects() -> list[dict]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        objects += [doc for doc in load_all(path) if isinstance(doc, dict) and "kind" in doc]
    return objects


def k8s(kind: str, name: str | None = None) -> list[dict]:
    return [o for o in k8s_objects() if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def dockerfiles() -> dict[str, str]:
    return {p.name.removesuffix(".Dockerfile"): p.read_text() for p in DEPLOY.glob("*.Dockerfile")}


def image_names() -> set[str]:
    return {f"semrec/{stem}" for stem in dockerfiles()}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_names(container: dict) -> set[str]:
    env = container.get("environment") or container.get("env") or {}
    return set(env) if isinstance(env, dict) else {e["name"] if isinstance(e, dict) else e.split("=")[0] for e in env}


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_parses(path: Path) -> None:
    assert load_all(path), f"{path} is empty"


# ---------------------------------------------------------------- docker compose
def test_compose_services_and_wiring() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "worker", "ranker", "prometheus", "locust"}
    assert services["locust"]["profiles"] == ["load"]
    assert all("profiles" not in s for name, s in services.items() if name != "locust")

    ranker = services["ranker"]
    assert ranker["command"] == SERVE and "${SEMREC_BIND:-127.0.0.1}:8000:8000" in ranker["ports"]
    assert "/readyz" in " ".join(ranker["healthcheck"]["test"])
    assert ranker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert ranker["environment"]["SEMREC_REDIS_URL"] == "redis://redis:6379/0"
    assert {"SEMREC_CATALOG", "SEMREC_ADMIN_TOKEN"} <= set(ranker["environment"])

    worker = services["worker"]
    script = " ".join(worker["command"])
    positions = [script.index(step) for step in WORKER_PIPELINE]
    assert positions == sorted(positions), "train -> export -> publish"
    assert "--data synthetic --backbone sasrec" in script and worker["restart"] == "no"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"

    locust = services["locust"]
    command = locust["command"]
    assert command[command.index("--host") + 1] == "http://ranker:8000"
    assert locust["depends_on"]["ranker"]["condition"] == "service_healthy"
    assert "/redis" not in " ".join(services["redis"].get("command", []))


def test_compose_images_volumes_and_paths_are_consistent() -> None:
    doc = compose()
    images = image_names()
    for name, service in doc["services"].items():
        if "build" in service:
            dockerfile = REPO / service["build"]["dockerfile"]
            assert dockerfile.exists(), dockerfile
            assert service["image"].split(":")[0] == f"semrec/{dockerfile.name.removesuffix('.Dockerfile')}"
            assert service["image"].split(":")[0] in images
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                if not source.startswith("./runs/"):  # runs/ is created by the run
                    assert (REPO / source).exists(), f"{name}: {source}"
            else:
                assert source in doc["volumes"], f"{name}: undeclared volume {source}"
        for env in env_names(service):
            if env.startswith("SEMREC_") and name != "locust":
                assert env in KNOWN_SETTINGS, f"{name}: unknown setting {env}"
    locustfile = doc["services"]["locust"]["command"][1]
    assert locustfile == "/mnt/loadtest/locustfile.py" and (REPO / "loadtest" / "locustfile.py").exists()


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose (Debian's v1, apt package docker-compose) is not installed")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "--profile", "load", "config"], capture_output=True, text=True, timeout=60,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == set(compose()["services"])
    assert rendered["services"]["ranker"]["environment"]["SEMREC_CATALOG"] == "demo"  # ${SEMREC_CATALOG:-demo}
    assert "$SEMREC_REDIS_URL" in " ".join(rendered["services"]["worker"]["command"])  # $$ kept for the shell


# ---------------------------------------------------------------- Dockerfiles
def copy_sources(text: str) -> list[str]:
    sources = []
    for line in text.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            sources += line.split()[1:-1]
    return sources


def instructions(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_dockerfiles() -> None:
    files = dockerfiles()
    assert set(files) == {"ranker", "ranker-gpu", "worker", "worker-gpu"}
    for stem, text in files.items():
        assert (DEPLOY / f"{stem}.Dockerfile.dockerignore").exists(), f"{stem}: no build-context ignore file"
        for source in copy_sources(text):
            if source != GPU_REQUIREMENTS:
                assert (REPO / source).exists(), f"{stem}: COPY {source} does not exist"
        assert "USER semrec" in text, f"{stem}: runs as root"

    for stem, extra in (("ranker", '".[ranker]"'), ("ranker-gpu", '".[gpu-ranker]"')):
        text = files[stem]
        installs = [line for line in instructions(text).splitlines() if "pip install" in line]
        assert any(extra in line for line in installs)
        assert not any("torch" in line or "worker" in line for line in installs), "no torch in the ranker image"
        assert "services/worker" not in text, "the ranker image must not contain the worker"
        cmd = re.search(r"^CMD (.+)$", text, re.MULTILINE).group(1)
        assert yaml.safe_load(cmd) == SERVE
    assert "onnxruntime-gpu" in files["ranker-gpu"] and files["ranker-gpu"].startswith("#")
    assert re.search(r"^FROM nvidia/cuda:\S+cudnn", files["ranker-gpu"], re.MULTILINE)
    assert "download.pytorch.org/whl/cpu" in files["worker"] and '".[worker]"' in files["worker"]
    gpu = files["worker-gpu"]
    assert re.search(r"^FROM nvidia/cuda:", gpu, re.MULTILINE)
    assert GPU_REQUIREMENTS in copy_sources(gpu) and f"-r {GPU_REQUIREMENTS}" in gpu
    assert "import torch, vllm" in gpu and '".[gpu-worker]"' in gpu
    for stem in ("ranker-gpu", "worker-gpu"):  # onnxruntime-gpu only, never beside the CPU build
        assert "uninstall" not in files[stem] and '".[worker]"' not in files[stem] and '".[ranker]"' not in files[stem]


# ---------------------------------------------------------------- Kubernetes
def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    not_applied = {"secrets.example.yaml", "prometheus-adapter-values.yaml"}
    assert listed == manifests - not_applied
    for obj in k8s_objects():
        if obj["kind"] not in ("Namespace", "Kustomization"):
            assert obj["metadata"]["namespace"] == "semrec", obj["metadata"]["name"]


KUBERNETES_VERSION = "1.30.0"  # the oldest minor version the manifests must work on


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_kubernetes_objects_match_the_api_schema(path: Path) -> None:
    """Strict: an unknown or misspelt field (e.g. `readinesProbe`) fails, as `kubectl apply` would."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for obj in load_all(path):
        if isinstance(obj, dict) and obj.get("kind") not in (None, "Kustomization"):
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_kustomize_renders_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (kustomize rendering not checked)")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    listed = [o for o in k8s_objects() if o["kind"] != "Kustomization"]
    example_only = {("Secret", "semrec-redis"), ("Secret", "semrec-admin"), ("Secret", "semrec-bundle-signing")}
    expected = {(o["kind"], o["metadata"]["name"]) for o in listed} - example_only
    assert {(o["kind"], o["metadata"]["name"]) for o in rendered} == expected


def test_ranker_deployment_probes_resources_and_settings() -> None:
    (deployment,) = k8s("Deployment", "semrec-ranker")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"].split(":")[0] == "semrec/ranker" and container["command"] == SERVE
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(SERVE[SERVE.index("--port") + 1])
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ports["http"])

    configmaps = {o["metadata"]["name"]: o for o in k8s("ConfigMap")}
    secrets = {o["metadata"]["name"]: o for o in load_all(K8S / "secrets.example.yaml")}
    (source,) = container["envFrom"]
    settings = configmaps[source["configMapRef"]["name"]]["data"]
    for name in [*settings, *env_names(container)]:
        assert name in KNOWN_SETTINGS, f"unknown setting {name}"
    for env in container["env"]:
        ref = env["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["stringData"]
    assert "SEMREC_REDIS_PASSWORD" in env_names(container) and "@" not in settings["SEMREC_REDIS_URL"]


def test_ranker_service_and_redis_names_match() -> None:
    (deployment,) = k8s("Deployment", "semrec-ranker")
    (service,) = k8s("Service", "semrec-ranker")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    (redis_service,) = k8s("Service", "semrec-redis")
    (redis_set,) = k8s("StatefulSet", "semrec-redis")
    assert redis_set["spec"]["serviceName"] == redis_service["metadata"]["name"]
    for configmap in k8s("ConfigMap"):
        url = configmap["data"].get("SEMREC_REDIS_URL")
        if url:
            assert url == f"redis://{redis_service['metadata']['name']}:6379/0"


def test_hpa_scales_on_cpu_and_latency() -> None:
    (hpa,) = k8s("HorizontalPodAutoscaler", "semrec-ranker")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "semrec-ranker")
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    latency = metrics["Pods"]["pods"]
    assert latency["metric"]["name"] == "semrec_request_p99_seconds"
    assert latency["target"]["averageValue"] in ("15m", "0.015")  # below the 20 ms SLO
    adapter = yaml.safe_load((K8S / "prometheus-adapter-values.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    assert rule["name"]["as"] == "semrec_request_p99_seconds"
    assert "histogram_quantile(0.99" in rule["metricsQuery"] and "semrec_http_request_duration_seconds_bucket" in rule["metricsQuery"]


def test_worker_cronjobs_request_a_gpu_and_run_the_pipeline() -> None:
    jobs = {o["metadata"]["name"]: o for o in k8s("CronJob")}
    assert set(jobs) == {"semrec-refresh", "semrec-retrain"}
    claims = {o["metadata"]["name"] for o in k8s("PersistentVolumeClaim")}
    configmaps = {o["metadata"]["name"] for o in k8s("ConfigMap")}
    for job in jobs.values():
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"].split(":")[0] == "semrec/worker-gpu"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]} <= claims
        assert {s["configMapRef"]["name"] for s in container["envFrom"]} <= configmaps
    refresh = jobs["semrec-refresh"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert shlex.split(refresh)[:2] == ["semrec", "refresh"] and "--catalog" in refresh and "--items" in refresh
    retrain = jobs["semrec-retrain"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    positions = [retrain.index(step) for step in WORKER_PIPELINE]
    assert positions == sorted(positions)


def test_images_are_named_after_the_dockerfiles() -> None:
    images = image_names()
    used = {c["image"].split(":")[0] for o in k8s_objects() for c in _containers(o)}
    used |= {s["image"].split(":")[0] for s in compose()["services"].values() if s["image"].startswith("semrec/")}
    semrec_images = {i for i in used if i.startswith("semrec/")}
    assert semrec_images <= images, semrec_images - images
    tags = {c["image"].split(":")[1] for o in k8s_objects() for c in _containers(o) if c["image"].startswith("semrec/")}
    assert len(tags) == 1, f"one release tag for all semrec images, got {tags}"


def _containers(obj: dict) -> list[dict]:
    spec = obj.get("spec", {})
    template = spec.get("jobTemplate", {}).get("spec", spec).get("template", {})
    return template.get("spec", {}).get("containers", [])


# ---------------------------------------------------------------- Prometheus
def test_prometheus_scrapes_the_ranker() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["ranker:8000"]
    assert job["metrics_path"] == "/metrics"
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts


def alert_rules() -> dict[str, dict]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return {r.get("alert") or r["record"]: r for g in groups for r in g["rules"]}


def test_alert_rules() -> None:
    rules = alert_rules()
    p99 = rules["SemrecLatencyP99High"]
    assert p99["for"] == "5m" and p99["expr"].endswith("> 0.020")
    assert "histogram_quantile(0.99" in rules[p99["expr"].split()[0]]["expr"]
    assert "semrec_bundle_items" in rules["SemrecNoBundleLoaded"]["expr"]
    assert 'outcome="failed"' in rules["SemrecReloadFailures"]["expr"]
    used = set()
    for rule in rules.values():
        used |= set(re.findall(r"\b(semrec_[a-z_]+?)(?:_bucket|_count|_sum)?\b", rule["expr"]))
    assert used <= RANKER_METRICS, used - RANKER_METRICS


def test_kubernetes_prometheus_copies_match() -> None:
    rules_map = k8s("ConfigMap", "semrec-prometheus-rules")[0]
    assert yaml.safe_load(rules_map["data"]["alerts.yml"]) == yaml.safe_load(
        (DEPLOY / "prometheus" / "alerts.yml").read_text()
    )
    config = yaml.safe_load(k8s("ConfigMap", "semrec-prometheus")[0]["data"]["prometheus.yml"])
    relabel = config["scrape_configs"][0]["relabel_configs"]
    assert {"namespace", "pod"} <= {r.get("target_label") for r in relabel}  # what prometheus-adapter needs


def test_metric_names_exist_in_the_ranker() -> None:
    metrics_module = pytest.importorskip("semrec_ranker.core.metrics", reason="the ranker (issue 8) is not here")
    names = set()
    for family in metrics_module.Metrics().registry.collect():
        names |= {family.name, family.name + "_total"}
    assert RANKER_METRICS <= names, RANKER_METRICS - names


# ---------------------------------------------------------------- the commands the manifests run
def semrec_command_lines() -> list[tuple[str, list[str]]]:
    """Every `semrec ...` invocation in docker-compose.yml and the Kubernetes manifests, tokenised."""
    scripts = [("docker-compose.yml", " ".join(s["command"]) if isinstance(s.get("command"), list) else "")
               for s in compose()["services"].values()]  # fmt: skip
    for obj in k8s_objects():
        for container in _containers(obj):
            scripts.append((obj["metadata"]["name"], " ".join(container.get("command", []) + container.get("args", []))))
    lines = []
    for where, script in scripts:
        for part in re.split(r"&&|\n|;", script.replace("$$", "$")):
            tokens = shlex.split(part.strip().removeprefix("sh -ec").strip()) if "semrec " in part else []
            if tokens[:1] == ["semrec"] or tokens[1:2] == ["semrec"]:
                lines.append((where, tokens[tokens.index("semrec") :]))
    return lines


def test_manifest_commands_use_existing_flags() -> None:
    """Each `semrec` command line of the manifests names a registered command and only its flags; commands
    from services not on this branch are skipped (listed in the skip message when none is checked)."""
    import typer
    from semrec.cli import build_app

    root = typer.main.get_command(build_app())
    lines = semrec_command_lines()
    assert any(tokens[1] == "serve" for _, tokens in lines) and any(tokens[1] == "publish" for _, tokens in lines)
    checked, missing = 0, set()
    for where, tokens in lines:
        command, args = root, tokens[1:]
        while args and hasattr(command, "commands") and args[0] in command.commands:
            command, args = command.commands[args[0]], args[1:]
        if hasattr(command, "commands"):
            missing.add(" ".join(tokens[: len(tokens) - len(args)] + args[:1]))
            continue
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        flags = [a for a in args if a.startswith("--")]
        assert set(flags) <= known, f"{where}: `{' '.join(tokens)}` uses unknown flags {set(flags) - known}"
        checked += 1
    if not checked:
        pytest.skip(f"none of the commands is on this branch yet: {sorted(missing)}")


# ---------------------------------------------------------------- hardening
def test_pods_get_no_service_account_token_and_the_ranker_runs_from_an_empty_workdir() -> None:
    pods = [o["spec"]["template"]["spec"] for o in k8s("Deployment") + k8s("StatefulSet")]
    pods += [o["spec"]["jobTemplate"]["spec"]["template"]["spec"] for o in k8s("CronJob")]
    semrec_pods = [p for p in pods if any(c["image"].startswith(("semrec/", "redis")) for c in p["containers"])]
    assert semrec_pods and all(p.get("automountServiceAccountToken") is False for p in semrec_pods)
    for stem in ("ranker", "ranker-gpu"):
        final_stage = instructions(dockerfiles()[stem]).split("\nFROM ")[-1]
        workdirs = re.findall(r"^WORKDIR (\S+)$", final_stage, re.MULTILINE)
        assert workdirs and workdirs[-1] not in ("/", "/src"), f"{stem}: runs from {workdirs}"
        assert f"chmod 0555 {workdirs[-1]}" in final_stage  # empty and not writable by the ranker


def test_redis_memory_is_bounded_and_never_evicts_bundles() -> None:
    (redis_set,) = k8s("StatefulSet", "semrec-redis")
    args = " ".join(redis_set["spec"]["template"]["spec"]["containers"][0]["args"])
    compose_args = " ".join(compose()["services"]["redis"]["command"])
    for command in (args, compose_args):
        assert "--maxmemory " in command
        # volatile-*: only keys with a TTL (histories, unfinished publishes) can go; bundle keys have none
        assert "--maxmemory-policy volatile-lru" in command and "noeviction" not in command


def test_compose_has_no_default_secret_and_binds_loopback() -> None:
    services = compose()["services"]
    text = COMPOSE.read_text()
    assert "change-me" not in text
    assert services["ranker"]["environment"]["SEMREC_ADMIN_TOKEN"] == "${SEMREC_ADMIN_TOKEN:-}"
    for name in ("ranker", "prometheus"):
        assert all(str(p).startswith("${SEMREC_BIND:-127.0.0.1}:") for p in services[name]["ports"]), name
