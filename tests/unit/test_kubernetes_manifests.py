"""The Kubernetes manifests (deploy/kubernetes/) are valid objects of the Kubernetes releases we state, and
agree with the service they run: what a schema cannot check is checked here against the Dockerfile, the
settings, the OpenAPI contract and each other.

The schemas are the Kubernetes OpenAPI definitions that ``kubernetes-validate`` bundles (strict: an
unknown field is an error), read offline; kubectl's own dry run needs an API server to ask.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from kubernetes_validate import utils as kubernetes_schemas  # type: ignore[import-untyped]
from pydantic import SecretStr

from app.settings import Environment, Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSIONS = ("1.33", "1.37")
"""The oldest release the manifests are written for (PodDisruptionBudget's unhealthyPodEvictionPolicy is
GA from 1.31; 1.33 is the oldest many managed clusters still run) and the newest whose schemas the
validator bundles."""
DRIVER_CANCELLATION_S = 5
"""How long psycopg may take, past IL6_DB_TRANSACTION_TIMEOUT_S, to cancel a query (README)."""

Document = dict[str, Any]


def _documents() -> Iterator[tuple[str, Document]]:
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                yield path.name, document


DOCUMENTS = list(_documents())
OBJECTS = [(name, document) for name, document in DOCUMENTS if document["kind"] != "Kustomization"]


def _one(kind: str) -> Document:
    found = [document for _, document in OBJECTS if document["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


DEPLOYMENT = _one("Deployment")
JOB = _one("Job")
CONFIG_MAP = _one("ConfigMap")
SERVICE = _one("Service")
DISRUPTION_BUDGET = _one("PodDisruptionBudget")
POD = DEPLOYMENT["spec"]["template"]
API = POD["spec"]["containers"][0]
MIGRATE = JOB["spec"]["template"]["spec"]["containers"][0]


def _image_command() -> list[str]:
    """The Dockerfile's CMD (exec form): what every API pod runs, as no manifest overrides it."""
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    command: list[str] = json.loads([line for line in lines if line.startswith("CMD ")][-1][4:])
    return command


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _env_names(container: Document) -> set[str]:
    names = {variable["name"] for variable in container.get("env", [])}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == CONFIG_MAP["metadata"]["name"]
        names |= set(CONFIG_MAP["data"])
    return names


def _secret_of(container: Document, variable: str) -> str:
    (entry,) = [entry for entry in container["env"] if entry["name"] == variable]
    assert "value" not in entry, f"{variable} is a secret: from a Secret, never a literal"
    name: str = entry["valueFrom"]["secretKeyRef"]["name"]
    return name


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _mount_of(container: Document, pod_spec: Document, path: Path) -> tuple[Document, Document]:
    """The volume mount (and its volume) that ``path`` lies under: the deepest one."""
    mounts = [mount for mount in container["volumeMounts"] if path.is_relative_to(mount["mountPath"])]
    assert mounts, f"{path} is on no mounted volume (the root filesystem is read-only)"
    mount = max(mounts, key=lambda mount: len(mount["mountPath"]))
    (volume,) = [volume for volume in pod_spec["volumes"] if volume["name"] == mount["name"]]
    return mount, volume


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "document",
    [document for _, document in OBJECTS],
    ids=[f"{name}:{document['kind']}" for name, document in OBJECTS],
)
def test_every_object_is_valid_for_the_stated_kubernetes_release(document: Document, version: str) -> None:
    assert kubernetes_schemas.validate(document, version, strict=True) == version


def test_the_validator_refuses_what_kubernetes_would() -> None:
    wrong_type = json.loads(json.dumps(DEPLOYMENT))
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    misspelt = json.loads(json.dumps(DEPLOYMENT))
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}

    for broken in (wrong_type, misspelt):
        with pytest.raises(kubernetes_schemas.ValidationError):
            kubernetes_schemas.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_the_kustomization_applies_every_long_lived_object_and_not_the_migration() -> None:
    (kustomization,) = [document for _, document in DOCUMENTS if document["kind"] == "Kustomization"]
    files = {name for name, _ in OBJECTS}

    assert set(kustomization["resources"]) == files - {"migration-job.yaml"}
    assert {name for name, document in OBJECTS if document["kind"] == "Job"} == {"migration-job.yaml"}


def test_probes_ask_the_health_endpoints_on_the_container_port() -> None:
    (port,) = API["ports"]
    contract = json.loads((ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8"))

    assert port["containerPort"] == int(_option(_image_command(), "--port"))
    assert API["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert API["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert API["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert API[probe]["httpGet"]["port"] in (port["name"], port["containerPort"])
    assert {"/readyz", "/healthz"} <= set(contract["paths"])
    assert SERVICE["spec"]["ports"][0]["targetPort"] in (port["name"], port["containerPort"])


def test_two_or_more_replicas_roll_without_losing_one() -> None:
    assert DEPLOYMENT["spec"]["replicas"] >= 2
    assert DEPLOYMENT["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_budget_and_the_service_select_the_api_pods_only() -> None:
    labels = POD["metadata"]["labels"]
    budget = DISRUPTION_BUDGET["spec"]
    replicas = DEPLOYMENT["spec"]["replicas"]

    assert _selects(DEPLOYMENT["spec"]["selector"]["matchLabels"], labels)
    assert _selects(budget["selector"]["matchLabels"], labels)
    assert _selects(SERVICE["spec"]["selector"], labels)
    migration_labels = JOB["spec"]["template"]["metadata"]["labels"]
    assert not _selects(budget["selector"]["matchLabels"], migration_labels)
    assert not _selects(SERVICE["spec"]["selector"], migration_labels)
    # A budget a drain can meet, that still leaves a pod serving.
    if "maxUnavailable" in budget:
        assert 1 <= budget["maxUnavailable"] < replicas
    else:
        assert 1 <= budget["minAvailable"] < replicas


def test_the_job_migrates_as_the_owner_and_the_api_connects_as_another_login() -> None:
    scripts = (ROOT / "pyproject.toml").read_text(encoding="utf-8")

    assert MIGRATE["command"] == ["il6", "db", "upgrade"]
    assert re.search(r'^il6 = "app\.cli:main"$', scripts, re.MULTILINE)
    assert MIGRATE["image"] == API["image"]
    assert JOB["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    # The service login must not own the audit trail (production refuses it: docs/audit.md).
    assert _secret_of(MIGRATE, "DATABASE_URL") != _secret_of(API, "DATABASE_URL")


@pytest.mark.parametrize("container", [API, MIGRATE], ids=["api", "migrate"])
def test_resources_are_requested_and_limited(container: Document) -> None:
    resources = container.get("resources", {})

    assert set(resources.get("requests", {})) >= {"cpu", "memory"}
    assert set(resources.get("limits", {})) >= {"cpu", "memory"}


@pytest.mark.parametrize("container", [API, MIGRATE], ids=["api", "migrate"])
def test_every_variable_named_is_a_setting(container: Document) -> None:
    settings = {f"IL6_{field.upper()}" for field in Settings.model_fields}

    assert _env_names(container) - settings == {"DATABASE_URL"}


def test_production_accepts_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"IL6_{name.upper()}", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for name, value in CONFIG_MAP["data"].items():
        assert isinstance(value, str), f"{name}: ConfigMap values are strings"
        monkeypatch.setenv(name, value)
    literal = {entry["name"]: entry["value"] for entry in API.get("env", []) if "value" in entry}
    for name, value in literal.items():
        monkeypatch.setenv(name, value)

    settings = Settings(
        database_url=SecretStr("postgresql+psycopg://il6_service:Xq9-not-a-placeholder@db/il6")
    )

    assert settings.environment is Environment.PRODUCTION
    assert settings.database_role == "il6_app"
    # The key from its Secret, mounted read-only; the checkpoint log on a writable volume.
    mount, volume = _mount_of(API, POD["spec"], settings.signing_key_file)
    assert mount["readOnly"] is True
    assert volume["secret"]["items"] == [
        {"key": settings.signing_key_file.name, "path": settings.signing_key_file.name}
    ]
    assert volume["secret"]["defaultMode"] & 0o040, "readable by the pod's fsGroup (the files are root's)"
    assert settings.checkpoint_file is not None
    mount, volume = _mount_of(API, POD["spec"], settings.checkpoint_file)
    assert "emptyDir" in volume
    assert not mount.get("readOnly", False)


@pytest.mark.parametrize("pod", [POD, JOB["spec"]["template"]], ids=["api", "migrate"])
def test_pods_run_unprivileged_on_a_read_only_root(pod: Document) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    uid = int(re.search(r"--uid (\d+)", dockerfile).group(1))  # type: ignore[union-attr]
    spec = pod["spec"]
    (container,) = spec["containers"]
    context = container["securityContext"]

    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == uid
    assert spec["automountServiceAccountToken"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]


def test_termination_drains_then_fits_the_shutdown_in_the_grace_period() -> None:
    """preStop sleeps while the pod leaves the endpoints; then uvicorn gets SIGTERM, lets requests in
    flight finish (at most --timeout-graceful-shutdown) and runs the lifespan's shutdown, which writes the
    audit writer's last group (at most IL6_DB_TRANSACTION_TIMEOUT_S and the driver's cancellation)."""
    command = _image_command()
    sleep = API["lifecycle"]["preStop"]["exec"]["command"]
    graceful_s = int(_option(command, "--timeout-graceful-shutdown"))
    transaction_s = float(CONFIG_MAP["data"]["IL6_DB_TRANSACTION_TIMEOUT_S"])

    # The API runs the image's CMD, as tests/e2e/test_graceful_shutdown.py does.
    assert "command" not in API
    assert "args" not in API
    assert sleep[0] == "sleep"
    assert int(sleep[1]) >= 5
    assert POD["spec"]["terminationGracePeriodSeconds"] >= (
        int(sleep[1]) + graceful_s + transaction_s + DRIVER_CANCELLATION_S
    )
