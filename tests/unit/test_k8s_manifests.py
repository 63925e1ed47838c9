"""infra/k8s: every manifest validates against the Kubernetes JSON schemas (offline, strict) and the
pieces reference each other consistently (names, labels, ports, Secret/ConfigMap keys, probe routes)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

K8S_DIR = Path(__file__).resolve().parents[2] / "infra" / "k8s"
BASE = K8S_DIR / "base"
KUBERNETES_VERSION = "1.31"  # AKS's default minor at the time of writing
SECRET_NAME = "defectflow-secrets"
SECRET_KEYS = {"api-key", "results-url", "mlflow-tracking-uri", "storage-connection-string"}  # docs/scoring.md


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> dict[tuple[str, str], dict]:
    """(kind, name) → document, for every resource listed in the base kustomization."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for doc in load_documents(BASE / name):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def pod_specs(docs: dict) -> list[dict]:
    specs = []
    for (kind, _), doc in docs.items():
        if kind == "Deployment":
            specs.append(doc["spec"]["template"]["spec"])
        elif kind == "CronJob":
            specs.append(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return specs


def validate_strict(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", sorted(p for p in K8S_DIR.rglob("*.yaml") if p.name != "kustomization.yaml"),
                         ids=lambda p: str(p.relative_to(K8S_DIR)))
def test_manifest_is_valid_against_the_kubernetes_schema(path):
    docs = load_documents(path)
    assert docs, f"{path} holds no document"
    for doc in docs:
        validate_strict(doc)


def test_schema_validation_catches_mistakes():
    """The validator really rejects a misspelt field and a wrong type (it is not a no-op)."""
    import kubernetes_validate

    deployment = load_documents(BASE / "deployment.yaml")[0]
    misspelt = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(misspelt)
    wrong_type = yaml.safe_load(yaml.safe_dump(deployment))
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(wrong_type)


def test_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_workloads_wire_up_consistently():
    docs = manifests()
    deployments = [d for (kind, _), d in docs.items() if kind == "Deployment"]
    services = [d for (kind, _), d in docs.items() if kind == "Service"]
    assert {d["metadata"]["name"] for d in deployments} == {"defectflow-service", "defectflow-dashboard"}
    for service in services:  # each Service selects exactly one Deployment's pods, on a named port they expose
        selected = [d for d in deployments
                    if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(selected) == 1, service["metadata"]["name"]
        ports = {p["name"] for c in selected[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in c and "livenessProbe" in c
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in c:
                    action = c[probe].get("httpGet") or c[probe].get("tcpSocket")
                    assert action["port"] in {p["name"] for p in c["ports"]}
    pod_labels = docs[("Deployment", "defectflow-service")]["spec"]["template"]["metadata"]["labels"]
    pdb_selector = docs[("PodDisruptionBudget", "defectflow-service")]["spec"]["selector"]["matchLabels"]
    assert pdb_selector.items() <= pod_labels.items()
    hpa = docs[("HorizontalPodAutoscaler", "defectflow-service")]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "defectflow-service")

    config = docs[("ConfigMap", "defectflow-config")]["data"]
    for spec in pod_specs(docs):
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
            assert {"cpu", "memory"} <= c["resources"]["limits"].keys()
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert {m["name"] for m in c["volumeMounts"]} <= volumes.keys()
            for env in c.get("env", []):
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] == SECRET_NAME and ref["key"] in SECRET_KEYS
            for source in c.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in docs
        for volume in volumes.values():
            if "configMap" in volume:
                cm = docs[("ConfigMap", volume["configMap"]["name"])]
                assert {i["key"] for i in volume["configMap"]["items"]} <= cm["data"].keys()
                for item in volume["configMap"]["items"]:
                    yaml.safe_load(cm["data"][item["key"]])  # the mounted params file is YAML
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in docs
    assert all(k.replace("_", "").isalnum() and k.isupper() for k in config), "env-only ConfigMap keys"


def test_probes_hit_real_routes_and_commands_parse(tmp_path):
    from fastapi.testclient import TestClient

    from defectflow.cli import score_cmds
    from defectflow.dashboard.app import create_dashboard_app
    from defectflow.dashboard.router import DashboardConfig
    from defectflow.params import DashboardParams
    from defectflow.serving.app import create_app
    from defectflow.serving.settings import ServingSettings

    docs = manifests()
    container = docs[("Deployment", "defectflow-service")]["spec"]["template"]["spec"]["containers"][0]
    client = TestClient(create_app(ServingSettings(auth_enabled=False)))  # no lifespan: no model needed
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert client.get(container[probe]["httpGet"]["path"]).status_code != 404, probe
    dashboard_app = create_dashboard_app(DashboardConfig(
        results_url=f"sqlite:///{tmp_path / 'r.db'}", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", model_name="m",
        image_roots=(),
        blob_cache=tmp_path, gate_auc=0.9, params=DashboardParams()))
    ready = docs[("Deployment", "defectflow-dashboard")]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert TestClient(dashboard_app).get(ready["httpGet"]["path"]).status_code == 200

    parser = argparse.ArgumentParser(prog="defectflow")
    score_cmds.register(parser.add_subparsers(dest="command"))
    job = docs[("CronJob", "defectflow-batch-scoring")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert parser.parse_args(job["containers"][0]["args"]).func is score_cmds.run_score
    dashboard = docs[("Deployment", "defectflow-dashboard")]["spec"]["template"]["spec"]["containers"][0]
    parsed = parser.parse_args(dashboard["args"])
    assert parsed.func is score_cmds.run_dashboard
    assert parsed.port == dashboard["ports"][0]["containerPort"]
    config = docs[("ConfigMap", "defectflow-config")]["data"]
    assert config["SCORING_INPUT"].startswith("azure://") and config["SCORING_MODEL"] == "/opt/defectflow/model"


@pytest.mark.integration  # needs kubectl: `make test` installs it (Debian's kubernetes-client) before this tier
def test_kustomize_build_output_is_valid():
    assert shutil.which("kubectl"), "kubectl not found: scripts/install-system-deps.sh installs kubernetes-client"
    # Plain fields only (no `labels:` transformer): Debian 12's kubectl 1.20 builds it too (checked by hand
    # with that package's binary; bench/results/bare-machine-2026-12-02.md found the transformer refused).
    done = subprocess.run(["kubectl", "kustomize", str(BASE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"kubectl kustomize failed: {done.stderr.strip()}"
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert len(docs) == sum(len(load_documents(BASE / n))
                            for n in yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    for doc in docs:
        validate_strict(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "defectflow"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "defectflow", doc["metadata"]["name"]
    images = {c["image"] for d in docs if d["kind"] in ("Deployment", "CronJob")
              for c in (d["spec"].get("template")
                        or d["spec"]["jobTemplate"]["spec"]["template"])["spec"]["containers"]}
    assert all(i.startswith("defectflowacr.azurecr.io/") for i in images)
