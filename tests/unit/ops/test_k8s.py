"""ops/k8s: every manifest, as kustomize renders it, against the Kubernetes, KEDA and
Prometheus Operator schemas, and against the code it deploys (settings, CLI, topics, groups).

Core kinds are checked by kubernetes-validate's pinned schemas (strict: unknown fields are
errors); the CRDs by the validators that ``@kubernetes-models/keda`` and
``@kubernetes-models/prometheus-operator`` compile from the projects' own CRDs (npm, run with
node). Overlays are JSON 6902 patches, applied here as RFC 6902 says.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.main
import yaml

from stream_aimass.cli.main import app as cli_app
from stream_aimass.kafka.topics import configured_topics
from stream_aimass.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "ops" / "k8s"
OVERLAYS = ("base", "overlays/gpu")
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0", "1.37.0")
CRD_PACKAGES = ("@kubernetes-models/keda@2.0.0", "@kubernetes-models/prometheus-operator@6.0.0")
CRD_MODELS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (
        "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor"
    ),
}
Doc = dict[str, Any]


# -- rendering (kustomize's resources + JSON 6902 patches) ---------------------------------


def _pointer(path: str) -> list[str]:
    assert path.startswith("/"), path
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def apply_patch(doc: Doc, ops: list[Doc]) -> Doc:
    """RFC 6902 add / replace / remove (the ops the overlays use)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if op["op"] == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), op["value"])
            else:
                node[last] = op["value"]
        elif op["op"] == "replace":
            if isinstance(node, list):
                node[int(last)] = op["value"]
            else:
                assert last in node, f"replace of a missing {op['path']}"
                node[last] = op["value"]
        elif op["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise AssertionError(f"op {op['op']} is not used by the overlays")
    return doc


def _matches(doc: Doc, target: Doc) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    return (
        doc["kind"] == target["kind"]
        and doc["metadata"]["name"] == target.get("name", doc["metadata"]["name"])
        and group == target.get("group", "")
        and version == target["version"]
    )


def render(directory: Path) -> list[Doc]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[Doc] = []
    for entry in kustomization["resources"]:
        path = directory / entry
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch in kustomization.get("patches", []):
        ops = yaml.safe_load((directory / patch["path"]).read_text())
        hits = [i for i, d in enumerate(docs) if _matches(d, patch["target"])]
        assert len(hits) == 1, f"{patch['path']} targets {len(hits)} resources"
        docs[hits[0]] = apply_patch(docs[hits[0]], ops)
    return docs


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, render(K8S / request.param)


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The environment a container starts with (ConfigMap and Secret, then its own env)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(named(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            env.update(named(docs, "Secret", source["secretRef"]["name"])["stringData"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", f"<{item['name']} from the pod>")
    return env


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in env.items():
        if key.startswith("AIMASS_"):
            monkeypatch.setenv(key, value)
    return Settings()


def worker_args(container: Doc) -> tuple[str, int]:
    """(role, processes) of a ``worker`` container."""
    args = container["args"]
    assert args[0] == "worker", args
    role = args[args.index("--role") + 1]
    processes = int(args[args.index("--processes") + 1]) if "--processes" in args else 1
    return role, processes


# -- schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_manifests_are_valid_kubernetes_objects(
    rendered: tuple[str, list[Doc]], version: str
) -> None:
    _, docs = rendered
    core = [d for d in docs if (d["apiVersion"], d["kind"]) not in CRD_MODELS]
    assert {d["kind"] for d in core} >= {
        "Namespace", "ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget", "Job"
    }  # fmt: skip
    for doc in core:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_core_validator_refuses_a_broken_manifest() -> None:
    deployment = named(render(K8S / "base"), "Deployment", "aimass-enrich")
    broken = apply_patch(deployment, [{"op": "add", "path": "/spec/replica", "value": 2}])
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)
    broken = apply_patch(deployment, [{"op": "replace", "path": "/spec/replicas", "value": "2"}])
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


VALIDATE_MJS = """
import { readFileSync } from "node:fs";
const models = JSON.parse(process.argv[2]);
const docs = JSON.parse(readFileSync(0, "utf8"));
const errors = [];
for (const doc of docs) {
  const mod = await import(models[doc.apiVersion + " " + doc.kind]);
  const Model = mod[doc.kind];
  try { new Model(doc).validate(); }
  catch (e) { errors.push(doc.kind + "/" + doc.metadata.name + ": " + e.message); }
}
console.log(JSON.stringify(errors));
"""


@pytest.fixture(scope="session")
def crd_validator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the KEDA and Prometheus Operator validators")
    folder = tmp_path_factory.mktemp("crd-validators")
    (folder / "package.json").write_text('{"private": true, "type": "module"}\n')
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", *CRD_PACKAGES],
        cwd=folder, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (folder / "validate.mjs").write_text(VALIDATE_MJS)
    return folder


def validate_crds(folder: Path, docs: list[Doc]) -> list[str]:
    models = {f"{api} {kind}": module for (api, kind), module in CRD_MODELS.items()}
    done = subprocess.run(
        ["node", "validate.mjs", json.dumps(models)],
        cwd=folder, input=json.dumps(docs), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    errors: list[str] = json.loads(done.stdout)
    return errors


def test_custom_resources_match_the_keda_and_prometheus_operator_schemas(
    rendered: tuple[str, list[Doc]], crd_validator: Path
) -> None:
    _, docs = rendered
    custom = [d for d in docs if (d["apiVersion"], d["kind"]) in CRD_MODELS]
    assert len(of_kind(custom, "ScaledObject")) == 3 and of_kind(custom, "ServiceMonitor")
    assert validate_crds(crd_validator, custom) == []


def test_the_crd_validator_refuses_a_broken_scaled_object(crd_validator: Path) -> None:
    scaled = named(render(K8S / "base"), "ScaledObject", "aimass-enrich")
    broken = apply_patch(
        scaled,
        [
            {"op": "replace", "path": "/spec/maxReplicaCount", "value": "12"},
            {"op": "remove", "path": "/spec/triggers/0/type"},
        ],
    )
    errors = validate_crds(crd_validator, [broken])
    assert len(errors) == 1
    assert "maxReplicaCount must be integer" in errors[0] and "property type" in errors[0]


# -- the manifests against the code they deploy -------------------------------------------


def test_every_setting_is_a_real_one_and_the_settings_load(
    rendered: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, docs = rendered
    known = {f"AIMASS_{name.upper()}" for name in Settings.model_fields}
    for deployment in of_kind(docs, "Deployment") + of_kind(docs, "Job"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            env = pod_env(docs, container)
            unknown = {k for k in env if k.startswith("AIMASS_")} - known
            assert not unknown, f"{deployment['metadata']['name']}: not settings: {unknown}"
            settings_of(env, monkeypatch)  # raises on a value the settings refuse
    secret_keys = set(named(docs, "Secret", "aimass-secrets")["stringData"])
    config_keys = set(named(docs, "ConfigMap", "aimass-settings")["data"])
    secret_fields = {
        f"AIMASS_{n.upper()}"
        for n, f in Settings.model_fields.items()
        if "SecretStr" in str(f.annotation) or n.endswith(("password", "key"))
    }
    assert not config_keys & secret_fields, "keys belong in the Secret"
    assert secret_keys <= secret_fields


def test_every_command_parses_with_the_cli(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    group = typer.main.get_command(cli_app)
    commands = []
    for workload in of_kind(docs, "Deployment") + of_kind(docs, "Job"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            args = list(container["args"])
            command: Any = group
            while args and hasattr(command, "commands") and args[0] in command.commands:
                command = command.commands[args.pop(0)]
            assert not hasattr(command, "commands"), f"no command in {container['args']}"
            command.make_context(command.name, args)  # raises on an unknown option or value
            commands.append(container["args"][:2])
    assert ["topics", "create"] in commands and ["db", "migrate"] in commands


def test_one_deployment_per_role_with_probes_drain_and_disruption_budget(
    rendered: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, docs = rendered
    roles = {}
    for deployment in of_kind(docs, "Deployment"):
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        role, _ = worker_args(container)
        roles[role] = deployment["metadata"]["name"]
        assert (
            deployment["spec"]["selector"]["matchLabels"].items()
            <= pod["metadata"]["labels"].items()
        )
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        settings = settings_of(pod_env(docs, container), monkeypatch)
        assert ports["http"] == settings.web_port and settings.web_host == "0.0.0.0"
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
        # The drain must finish before the kubelet's SIGKILL.
        sleep = container["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep"
        grace = pod["spec"]["terminationGracePeriodSeconds"]
        assert grace >= float(sleep[1]) + settings.shutdown_timeout_s + 5
        pdbs = [
            p
            for p in of_kind(docs, "PodDisruptionBudget")
            if p["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        ]
        assert len(pdbs) == 1 and pdbs[0]["spec"]["maxUnavailable"] == 1
    assert set(roles) == {"enrich", "sink", "events"}
    # Separate deployments: the enrich pods leave the events path to aimass-events.
    enrich = named(docs, "Deployment", roles["enrich"])["spec"]["template"]["spec"]
    assert not settings_of(pod_env(docs, enrich["containers"][0]), monkeypatch).enrich_runs_events


def test_services_and_the_service_monitor_reach_every_process(
    rendered: tuple[str, list[Doc]],
) -> None:
    _, docs = rendered
    monitor = named(docs, "ServiceMonitor", "stream-aimass")
    scraped = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert {e["path"] for e in monitor["spec"]["endpoints"]} == {"/metrics"}
    for deployment in of_kind(docs, "Deployment"):
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        _, processes = worker_args(container)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        # Process i of `--processes N` listens on web port + i.
        assert sorted(ports.values()) == [ports["http"] + i for i in range(processes)]
        labels = pod["metadata"]["labels"]
        (service,) = [
            s for s in of_kind(docs, "Service") if s["spec"]["selector"].items() <= labels.items()
        ]
        assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
        service_ports = {p["name"] for p in service["spec"]["ports"]}
        assert service_ports <= scraped, f"{service['metadata']['name']} is not fully scraped"
        selector = monitor["spec"]["selector"]
        assert selector["matchLabels"].items() <= service["metadata"]["labels"].items()
        (expression,) = selector["matchExpressions"]
        assert service["metadata"]["labels"][expression["key"]] in expression["values"]


def test_keda_scales_each_group_within_its_partitions_on_a_threshold_from_its_rate(
    rendered: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, docs = rendered
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(docs, "ScaledObject")}
    assert set(scaled) == {d["metadata"]["name"] for d in of_kind(docs, "Deployment")}
    for deployment in of_kind(docs, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = pod_env(docs, container)
        settings = settings_of(env, monkeypatch)
        role, processes = worker_args(container)
        group, topic = {
            "enrich": (settings.enrich_group, settings.topic_documents),
            "sink": (settings.sink_group, settings.topic_enriched),
            "events": (settings.app_id, settings.topic_events),
        }[role]
        partitions = {t.name: t.partitions for t in configured_topics(settings)}
        obj = scaled[deployment["metadata"]["name"]]
        (trigger,) = obj["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert (meta["consumerGroup"], meta["topic"]) == (group, topic)
        assert meta["bootstrapServersFromEnv"] in env
        # Never more consumers than partitions: each pod runs `processes` group members.
        assert 1 <= obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]
        assert obj["spec"]["maxReplicaCount"] * processes <= partitions[topic]
        assert obj["spec"]["maxReplicaCount"] == partitions[topic] // processes
        notes = obj["metadata"]["annotations"]
        rate = int(notes["aimass.io/rate-per-replica"])
        drain = int(notes["aimass.io/drain-seconds"])
        assert int(meta["lagThreshold"]) == rate * drain
        assert meta["allowIdleConsumers"] == "false"


def test_the_gpu_overlay_puts_enrich_on_gpu_nodes_and_leaves_the_rest() -> None:
    base, gpu = render(K8S / "base"), render(K8S / "overlays" / "gpu")
    pod = named(gpu, "Deployment", "aimass-enrich")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert {"name": "AIMASS_DEVICE", "value": "cuda"} in container["env"]
    assert worker_args(container) == ("enrich", 4)
    changed = {(d["kind"], d["metadata"]["name"]) for d in gpu if d not in base}
    assert changed == {
        ("Deployment", "aimass-enrich"),
        ("Service", "aimass-enrich"),
        ("ScaledObject", "aimass-enrich"),
        ("ServiceMonitor", "stream-aimass"),
    }


def test_every_manifest_file_is_rendered() -> None:
    used = set()
    for overlay in OVERLAYS:
        folder = K8S / overlay
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        used |= {(folder / r).resolve() for r in kustomization["resources"]}
        used |= {(folder / p["path"]).resolve() for p in kustomization.get("patches", [])}
        used.add((folder / "kustomization.yaml").resolve())
    files = {p.resolve() for p in K8S.rglob("*.yaml")}
    assert files - used == set(), "manifests no kustomization uses"
