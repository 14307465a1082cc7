"""deploy/k8s: every manifest validated offline against the Kubernetes schemas, and wired to the others.

No cluster is reachable here. Kubernetes kinds are checked with
kubernetes-validate (the API's JSON schemas, shipped in the package, strict:
an unknown field fails) for the oldest and newest Kubernetes versions named
below; the KServe kinds with tests/deploy/kserve_schemas.py, whose
Kubernetes parts use the same schemas. Nothing is downloaded.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version, schema_contents
from referencing import Registry, Resource

from tests.deploy import kserve_schemas

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
VERSIONS = ["1.28.0", latest_version()]  # the oldest Kubernetes still common in managed clusters, and the newest


def load_all() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((str(path.relative_to(ROOT)), doc))
    return docs


DOCS = load_all()


def by_kind(kind: str, component: str | None = None) -> list[dict]:
    return [
        doc
        for _, doc in DOCS
        if doc["kind"] == kind
        and (component is None or doc["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]


def kserve_validator(kind: str) -> jsonschema.Draft202012Validator:
    version = latest_version()
    definitions = schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)
    schema = (
        kserve_schemas.serving_runtime()
        if kind == "ServingRuntime"
        else kserve_schemas.inference_service(definitions["$defs"]["io.k8s.api.core.v1.Container"])
    )
    registry = Resource.from_contents(definitions) @ Registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate(doc: dict, version: str) -> None:
    if doc["apiVersion"].startswith("serving.kserve.io/"):
        kserve_validator(doc["kind"]).validate(doc)
    else:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_expected_manifests_exist():
    kinds = sorted(doc["kind"] for _, doc in DOCS)
    assert kinds == sorted(
        [
            "Deployment",
            "Deployment",
            "Service",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "PersistentVolumeClaim",
            "Job",
            "Secret",
            "ServingRuntime",
            "InferenceService",
        ]
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("where, doc", DOCS, ids=[f"{w}:{d['kind']}" for w, d in DOCS])
def test_manifest_is_valid(where, doc, version):
    validate(doc, version)


@pytest.mark.parametrize("breakage", ["typo", "wrong type", "missing required"])
@pytest.mark.parametrize("kind", ["Deployment", "ServingRuntime", "InferenceService"])
def test_the_validation_catches_mistakes(kind, breakage):
    """The checks above can fail: a broken copy of a manifest is refused."""
    doc = copy.deepcopy(by_kind(kind)[0])
    container = {
        "Deployment": lambda: doc["spec"]["template"]["spec"]["containers"][0],
        "ServingRuntime": lambda: doc["spec"]["containers"][0],
        "InferenceService": lambda: doc["spec"]["predictor"]["model"],
    }[kind]()
    if breakage == "typo":
        container["resource"] = container.pop("resources")
    elif breakage == "wrong type":
        container["env"] = {"YYAI_MIGRATE": "0"}
    elif kind == "InferenceService":
        del container["modelFormat"]
    else:
        del container["name"]
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, latest_version())


def pod(component: str) -> dict:
    return by_kind("Deployment", component)[0]["spec"]["template"]


def test_http_pods_probes_and_resources():
    spec = pod("http")["spec"]
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 180, "too short to load and warm the models"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):  # Django refuses hosts it does not allow
        host = {h["name"]: h["value"] for h in container[probe]["httpGet"]["httpHeaders"]}["Host"]
        allowed = {e["name"]: e.get("value") for e in container["env"]}["DJANGO_ALLOWED_HOSTS"].split(",")
        assert host in allowed
    assert spec["terminationGracePeriodSeconds"] >= 35  # gunicorn's graceful_timeout (30 s) + preStop


def test_every_container_requests_resources_and_runs_as_the_image_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    image_user = int(dockerfile.split("\nUSER ")[1].split(":")[0])
    for doc in by_kind("Deployment") + by_kind("Job"):
        spec = doc["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] == image_user
        for container in spec["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_resources_refer_to_each_other():
    (pvc,) = by_kind("PersistentVolumeClaim")
    (secret,) = by_kind("Secret")
    http = pod("http")
    for template in (http, pod("grpc"), by_kind("Job")[0]["spec"]["template"]):
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in template["spec"].get("volumes", [])
            if "persistentVolumeClaim" in v
        ]
        assert claims in ([], [pvc["metadata"]["name"]])
        for container in template["spec"]["containers"]:
            assert [e["secretRef"]["name"] for e in container["envFrom"]] == [secret["metadata"]["name"]]
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]  # every pod mounts the same store
    for service in by_kind("Service"):
        component = service["spec"]["selector"]["app.kubernetes.io/component"]
        selected = pod(component)
        assert service["spec"]["selector"].items() <= selected["metadata"]["labels"].items()
        ports = {p["name"] for c in selected["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    (hpa,) = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == by_kind("Deployment", "http")[0]["metadata"]["name"]
    (pdb,) = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= http["metadata"]["labels"].items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a drain can always proceed


def test_pods_never_migrate_the_shared_database():
    for component in ("http", "grpc"):
        for container in pod(component)["spec"]["containers"]:
            assert {e["name"]: e.get("value") for e in container["env"]}["YYAI_MIGRATE"] == "0"
    job = by_kind("Job")[0]["spec"]["template"]["spec"]["containers"][0]
    assert "manage.py migrate" in " ".join(job["args"])


def test_inference_service_uses_the_runtime():
    (runtime,) = by_kind("ServingRuntime")
    (isvc,) = by_kind("InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"] in runtime["spec"]["supportedModelFormats"] or model["modelFormat"]["name"] in {
        f["name"] for f in runtime["spec"]["supportedModelFormats"]
    }
    assert model["protocolVersion"] == "v2" and "v2" in runtime["spec"]["protocolVersions"]
    assert model["storageUri"].startswith(f"pvc://{by_kind('PersistentVolumeClaim')[0]['metadata']['name']}/")
    (container,) = runtime["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["YYAI_MODEL_STORE"] == "/mnt/models"  # where KServe's storage initializer puts storageUri
    assert {p["containerPort"] for p in container["ports"]} == {int(env["PORT"])}
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
