"""The classifier versions the service may serve, loaded once and verified against their recorded digests.

A registry directory holds ``registry.json`` (each version's status and expected digest, and which
classifier answers requests that pin none) and one ``<name>/<version>/manifest.json`` per version, with its
model artifact beside it when it has one. A version whose manifest or artifact does not match the recorded
digest is never served; if that is the default classifier's active version, loading fails.
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from app.domain.classifiers import rules
from app.domain.classifiers.base import (
    Classifier,
    ClassifierDefinition,
    ClassifierDefinitionError,
    VersionStatus,
)
from app.domain.classifiers.manifest import artifact_digest, manifest_digest, parse_manifest
from app.domain.errors import InvalidInput

Builder = Callable[[ClassifierDefinition, bytes | None], Classifier]

BUILDERS: Mapping[str, Builder] = {rules.KIND: lambda definition, _: rules.RuleSetClassifier(definition)}
"""How each kind of definition becomes a classifier. Model-backed kinds are added by the caller."""

PIN = re.compile(r"(?P<name>[a-z0-9][a-z0-9-]{0,63})(?:@(?P<version>[0-9]+\.[0-9]+\.[0-9]+))?")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def bundled_definitions() -> Traversable:
    """The registry directory shipped with the service."""
    return resources.files("app.domain.classifiers") / "definitions"


@dataclass(frozen=True)
class RegisteredVersion:
    """A verified version, ready to decide, with its lifecycle status."""

    classifier: Classifier
    status: VersionStatus
    digest: str
    artifact: bytes | None = field(default=None, repr=False)
    """The model artifact's bytes, for versions that have one."""

    @property
    def definition(self) -> ClassifierDefinition:
        return self.classifier.definition


@dataclass(frozen=True)
class RejectedVersion:
    """A version listed in the registry that failed verification and is not served."""

    name: str
    version: str
    reason: str


@dataclass(frozen=True)
class ClassifierRegistry:
    default_name: str
    versions: tuple[RegisteredVersion, ...]
    rejected: tuple[RejectedVersion, ...] = ()
    shadows: Mapping[str, str] = field(default_factory=dict)
    """Per classifier name, the version deciding in the shadow of its active one (app/domain/classifiers/
    lifecycle.py): its outputs are stored for comparison, never answered."""
    _by_ref: dict[tuple[str, str], RegisteredVersion] = field(init=False, repr=False)
    _active: dict[str, RegisteredVersion] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_ref: dict[tuple[str, str], RegisteredVersion] = {}
        active: dict[str, RegisteredVersion] = {}
        for entry in self.versions:
            key = (entry.definition.name, entry.definition.version)
            if key in by_ref:
                raise ClassifierDefinitionError(f"{entry.definition.ref} is listed twice")
            by_ref[key] = entry
            if entry.status is VersionStatus.ACTIVE:
                if entry.definition.name in active:
                    raise ClassifierDefinitionError(
                        f"{entry.definition.name} has more than one active version"
                    )
                active[entry.definition.name] = entry
        if self.default_name not in active:
            why = "; ".join(f"{r.name}@{r.version} rejected: {r.reason}" for r in self.rejected)
            raise ClassifierDefinitionError(
                f"the default classifier {self.default_name} has no verified active version"
                + (f" ({why})" if why else "")
            )
        object.__setattr__(self, "_by_ref", by_ref)
        object.__setattr__(self, "_active", active)

    def listing(self) -> list[RegisteredVersion]:
        """Every verified version (drafts included, with their status), by name and semantic version."""
        return sorted(self.versions, key=lambda v: (v.definition.name, version_key(v.definition.version)))

    def get(self, name: str, version: str) -> RegisteredVersion | None:
        return self._by_ref.get((name, version))

    def shadow_of(self, entry: RegisteredVersion) -> RegisteredVersion | None:
        """The version shadowing ``entry`` when ``entry`` is its classifier's active version."""
        name = entry.definition.name
        if self._active.get(name) is not entry or name not in self.shadows:
            return None
        return self._by_ref.get((name, self.shadows[name]))

    def resolve(self, pin: str | None) -> RegisteredVersion:
        """The version a request asked for: ``name@x.y.z``, a name (its active version) or the default.

        Drafts and unknown or unverified versions are refused as invalid input.
        """
        if pin is None:
            return self._active[self.default_name]
        match = PIN.fullmatch(pin)
        if match is None:
            raise InvalidInput("/classifier", "must be 'name' or 'name@major.minor.patch'")
        name, version = match["name"], match["version"]
        entry = self._active.get(name) if version is None else self._by_ref.get((name, version))
        if entry is None or entry.status is VersionStatus.DRAFT:
            servable = ", ".join(
                sorted(v.definition.ref for v in self.versions if v.status is not VersionStatus.DRAFT)
            )
            raise InvalidInput("/classifier", f"Unknown classifier version; servable: {servable}")
        return entry


def _read_json(path: Traversable) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_version(
    directory: Traversable,
    name: str,
    version: str,
    status: VersionStatus,
    expected_digest: str,
    builders: Mapping[str, Builder],
) -> RegisteredVersion:
    """Load one version from a registry directory and verify it (``build_version``)."""
    version_dir = directory / name / version
    manifest = _read_json(version_dir / "manifest.json")
    artifact: bytes | None = None
    if isinstance(manifest, dict) and isinstance(manifest.get("artifact"), dict):
        file = manifest["artifact"].get("file")
        if not isinstance(file, str) or "/" in file or "\\" in file or file.startswith("."):
            raise ClassifierDefinitionError("'artifact.file' must name a file beside the manifest")
        artifact = (version_dir / file).read_bytes()
    classifier, digest = build_version(manifest, artifact, name, version, expected_digest, builders)
    return RegisteredVersion(classifier, status, digest, artifact)


def build_version(
    manifest: Any,
    artifact: bytes | None,
    name: str,
    version: str,
    expected_digest: str,
    builders: Mapping[str, Builder],
) -> tuple[Classifier, str]:
    """Verify a version and build its classifier: manifest digest, artifact checksum, name and version.

    ``artifact`` is the model artifact's bytes when the manifest names one, wherever they were kept (a
    registry directory or the store); the manifest's ``artifact.sha256`` must match them.
    """
    if not isinstance(manifest, dict):
        raise ClassifierDefinitionError("manifest must be a JSON object")
    digest = manifest_digest(manifest)
    if digest != expected_digest:
        raise ClassifierDefinitionError(
            f"digest mismatch: recorded {expected_digest}, manifest hashes to {digest}"
        )
    definition = parse_manifest(manifest)
    if (definition.name, definition.version) != (name, version):
        raise ClassifierDefinitionError("manifest name or version differs from its place in the registry")
    if "artifact" in manifest:
        spec = manifest["artifact"]
        if not isinstance(spec, dict) or not isinstance(spec.get("file"), str):
            raise ClassifierDefinitionError("'artifact' must be an object naming its 'file' and 'sha256'")
        if artifact is None or artifact_digest(artifact) != spec.get("sha256"):
            raise ClassifierDefinitionError("artifact checksum differs from the manifest's")
    elif artifact is not None:
        raise ClassifierDefinitionError("an artifact was given for a manifest that names none")
    builder = builders.get(definition.kind)
    if builder is None:
        raise ClassifierDefinitionError(f"no builder for classifier kind {definition.kind}")
    return builder(definition, artifact), digest


def load_registry(
    directory: Traversable | Path | None = None, builders: Mapping[str, Builder] = BUILDERS
) -> ClassifierRegistry:
    """Load and verify every listed version; rejected ones are kept aside with their reason."""
    root: Traversable = bundled_definitions() if directory is None else directory
    index = _read_json(root / "registry.json")
    loaded: list[RegisteredVersion] = []
    rejected: list[RejectedVersion] = []
    for item in index["classifiers"]:
        name, version = str(item["name"]), str(item["version"])
        try:
            status = VersionStatus(item["status"])
            entry = load_version(root, name, version, status, str(item["digest"]), builders)
        except (ClassifierDefinitionError, OSError, ValueError, KeyError, TypeError) as error:
            rejected.append(RejectedVersion(name, version, f"{type(error).__name__}: {error}"))
            continue
        loaded.append(entry)
    return ClassifierRegistry(str(index["default"]), tuple(loaded), tuple(rejected))
