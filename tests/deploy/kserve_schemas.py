"""Minimal JSON schemas for the KServe resources in deploy/k8s/kserve/ (no cluster, no download).

Written by hand from KServe's CRDs and API types
(``config/crd/full/serving.kserve.io_servingruntimes.yaml``, ``ServingRuntime``
``serving.kserve.io/v1alpha1``; ``serving.kserve.io_inferenceservices.yaml``,
``InferenceService`` ``serving.kserve.io/v1beta1``; enums from
``pkg/constants`` and ``ScaleMetric``'s kubebuilder marker). They cover only
the KServe fields these manifests use, typed as there, and allow no other
field, so a typo fails. Everything KServe takes from Kubernetes (the
containers, and the container fields ``model`` inlines: env, resources,
probes) is checked against the Kubernetes schema itself, from the
kubernetes-validate package.
"""

from __future__ import annotations

import json

DEFS = "/api/_definitions.json#/$defs/"  # kubernetes-validate's definitions, registered under this URI
PROTOCOLS = ["v1", "v2", "grpc-v1", "grpc-v2"]  # constants.InferenceServiceProtocol
SCALE_METRICS = ["cpu", "memory", "concurrency", "rps"]  # +kubebuilder:validation:Enum=cpu;memory;concurrency;rps


def _resource(api_version: str, kind: str, spec: dict) -> dict:
    return {
        "$id": f"https://kubernetes.io/api/kserve-{kind.lower()}.json",  # beside the definitions' URI
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": {"$ref": DEFS + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": spec,
        },
    }


def serving_runtime() -> dict:
    return _resource(
        "serving.kserve.io/v1alpha1",
        "ServingRuntime",
        {
            "type": "object",
            "required": ["containers"],
            "additionalProperties": False,
            "properties": {
                "supportedModelFormats": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "autoSelect": {"type": "boolean"},
                            "priority": {"type": "integer", "minimum": 1},
                        },
                    },
                },
                "protocolVersions": {"type": "array", "items": {"enum": PROTOCOLS}},
                "multiModel": {"type": "boolean"},
                "disabled": {"type": "boolean"},
                "containers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": DEFS + "io.k8s.api.core.v1.Container"},
                },
            },
        },
    )


def inference_service(container_schema: dict) -> dict:
    """``container_schema``: Kubernetes' Container definition; ``model`` inlines its fields (``name`` optional)."""
    # its references are relative to the definitions document: point them there from this one
    model = json.loads(json.dumps(container_schema).replace('"#/$defs/', '"' + DEFS))
    model.pop("required", None)
    model["additionalProperties"] = False
    model["required"] = ["modelFormat"]
    model["properties"].update(
        {
            "modelFormat": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
            },
            "runtime": {"type": "string"},
            "protocolVersion": {"enum": PROTOCOLS},
            "storageUri": {"type": "string", "pattern": r"^(pvc|s3|gs|https?|hdfs|webhdfs|oci|hf)://"},
        }
    )
    return _resource(
        "serving.kserve.io/v1beta1",
        "InferenceService",
        {
            "type": "object",
            "required": ["predictor"],
            "additionalProperties": False,
            "properties": {
                "predictor": {
                    "type": "object",
                    "required": ["model"],
                    "additionalProperties": False,
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                        "scaleMetric": {"enum": SCALE_METRICS},
                        "scaleTarget": {"type": "integer", "minimum": 1},
                        "model": model,
                    },
                }
            },
        },
    )
