"""The classifier registry of record is the store: which versions exist, and their lifecycle.

The versions shipped with the service (the bundled registry directory, or ``IL6_CLASSIFIER_DIR``) are
added to the store the first time a process starts on it, with the status the directory gives them; after
that the store's lifecycle events decide. Every process keeps the verified versions in memory and reloads
when the lifecycle changes: at once for a change it made itself, within ``refresh_interval_s`` for a change
made by another process (docs/classifiers.md). A process that has not yet read the store makes no decision.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.domain.classifiers.base import Classifier, ClassifierDefinitionError, VersionStatus
from app.domain.classifiers.lifecycle import (
    Event,
    Lifecycle,
    LifecycleEvent,
    LifecycleRefused,
    lifecycles,
    plan_change,
)
from app.domain.classifiers.manifest import manifest_digest
from app.domain.classifiers.registry import (
    PIN,
    Builder,
    ClassifierRegistry,
    RegisteredVersion,
    RejectedVersion,
    build_version,
)
from app.store.models import ClassifierEvent, ClassifierVersion
from app.store.unit_of_work import StoreUnavailable, UnitOfWork

logger = logging.getLogger(__name__)

BUNDLED_BY = "service:bundled"
"""Who the lifecycle names for versions the service brought with it."""


class VersionExists(Exception):
    """A version with this name and number is registered already: versions never change."""


class UnknownVersion(Exception):
    """No version with this name and number is registered."""


def _event(row: ClassifierEvent) -> Event:
    return Event(row.name, row.version, LifecycleEvent(row.event), row.at, row.by, row.reason)


class ClassifierCatalog:
    """The verified classifier versions this process serves, as the store's lifecycle says."""

    def __init__(
        self,
        bundled: ClassifierRegistry,
        unit_of_work: Callable[[], UnitOfWork],
        builders: Mapping[str, Builder],
        *,
        readers: Callable[[], UnitOfWork] | None = None,
        refresh_interval_s: float = 2.0,
        load_timeout_s: float = 10.0,
    ) -> None:
        """``unit_of_work`` records changes; ``readers`` (read-only, so that SQLite's write lock is not
        taken by reading) reads the registry back, ``unit_of_work`` when not given."""
        self._bundled = bundled
        self._unit_of_work = unit_of_work
        self._readers = readers or unit_of_work
        self._builders = builders
        self._refresh_interval_s = refresh_interval_s
        self._current = bundled
        self._loaded = False
        self._unservable: str | None = None
        """Why the store's lifecycle cannot be served here (its default classifier's active version
        failed verification in this process): decisions are refused until a reload succeeds."""
        self._generation = -1
        self._built: dict[tuple[str, str, str], Classifier] = {
            (v.definition.name, v.definition.version, v.digest): v.classifier for v in bundled.versions
        }
        self._load_timeout_s = load_timeout_s
        self._refreshing = asyncio.Lock()
        self._loading: asyncio.Future[None] | None = None

    @property
    def current(self) -> ClassifierRegistry:
        """The versions as last read from the store (the bundled ones, until the store has been read)."""
        return self._current

    @property
    def default_name(self) -> str:
        return self._bundled.default_name

    async def for_decisions(self) -> ClassifierRegistry:
        """The registry to decide with; StoreUnavailable until the store's lifecycle has been read."""
        if not self._loaded:
            await self._load()
        if self._unservable is not None:
            raise StoreUnavailable(self._unservable)
        return self._current

    async def start(self) -> None:
        """Add the bundled versions the store lacks, then read the store; a store that cannot be reached
        now is read later, by ``run`` or the first decision."""
        try:
            await self._load()
        except StoreUnavailable as error:
            logger.warning("classifier registry not read from the store yet: %s", error)

    async def _load(self) -> None:
        """The first reading of the store, within a deadline, shared by everything waiting for it: a batch
        of decisions on an unreachable store waits out one attempt, not one each."""
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._first_load())
        await asyncio.shield(self._loading)

    async def _first_load(self) -> None:
        try:
            async with asyncio.timeout(self._load_timeout_s):
                await self.add_bundled()
                await self.refresh()
        except TimeoutError:
            raise StoreUnavailable("the classifier registry could not be read in time") from None

    async def run(self) -> None:
        """Reload whenever another process changed a lifecycle (polled every ``refresh_interval_s``)."""
        while True:
            await asyncio.sleep(self._refresh_interval_s)
            try:
                if not self._loaded:
                    await self._load()
                    continue
                async with self._readers() as uow:
                    generation = await uow.classifiers.last_event_id()
                if generation != self._generation or self._unservable is not None:
                    await self.refresh()
            except StoreUnavailable as error:
                logger.warning("classifier registry refresh failed: %s", error)
            except Exception:  # the refresher must outlive any one failure; the next turn tries again
                logger.exception("classifier registry refresh failed unexpectedly")
                # The lifecycle changed and could not be read: what is served may be retired by now.
                self._unservable = "the classifier registry could not be reloaded after a change"

    async def add_bundled(self) -> None:
        """Store each bundled version the store does not have, with the status the directory gives it
        (an active one only if its classifier has no active version yet)."""
        async with self._readers() as uow:
            stored = {(h.name, h.version) for h in await uow.classifiers.headers()}
        if all((v.definition.name, v.definition.version) in stored for v in self._bundled.versions):
            return
        async with self._unit_of_work() as uow:
            await uow.classifiers.lock()
            stored = {(h.name, h.version) for h in await uow.classifiers.headers()}
            missing = [
                v for v in self._bundled.versions if (v.definition.name, v.definition.version) not in stored
            ]
            if not missing:
                return
            now = await uow.classifiers.now()
            known = lifecycles(_event(row) for row in await uow.classifiers.events())
            events: list[ClassifierEvent] = []
            for entry in missing:
                definition = entry.definition
                await uow.classifiers.add(_stored_version(entry, "bundled", BUNDLED_BY, now))
                events.append(_row(definition.name, definition.version, LifecycleEvent.REGISTERED, now))
                lifecycle = known.get(definition.name)
                if entry.status is VersionStatus.ACTIVE and (lifecycle is None or lifecycle.active() is None):
                    events.append(_row(definition.name, definition.version, LifecycleEvent.ACTIVATED, now))
                elif entry.status is VersionStatus.RETIRED:
                    events.append(_row(definition.name, definition.version, LifecycleEvent.RETIRED, now))
            await uow.classifiers.record(events)
            await uow.commit()

    async def refresh(self) -> None:
        """Read every stored version and the lifecycle, verify what is new, and serve the result."""
        async with self._refreshing:
            async with self._readers() as uow:
                generation = await uow.classifiers.last_event_id()
                events = [_event(row) for row in await uow.classifiers.events()]
                headers = await uow.classifiers.headers()
                new = [
                    (h.name, h.version) for h in headers if (h.name, h.version, h.digest) not in self._built
                ]
                rows = [
                    (row.name, row.version, row.digest, row.manifest, row.artifact)
                    for row in await uow.classifiers.get_many(new)
                ]
            rejected = list(self._bundled.rejected)
            for name, version, digest, manifest, artifact in rows:
                try:
                    classifier, _ = build_version(manifest, artifact, name, version, digest, self._builders)
                except ClassifierDefinitionError as error:
                    logger.error("classifier %s@%s is not served: %s", name, version, error)
                    rejected.append(RejectedVersion(name, version, str(error)))
                    continue
                self._built[(name, version, digest)] = classifier
            if self._install(headers, events, rejected):
                self._generation = generation
            self._loaded = True

    def _install(self, headers: Sequence[Any], events: list[Event], rejected: list[RejectedVersion]) -> bool:
        """Serve what the store says; False when it cannot be served here (then no decision is made)."""
        by_name = lifecycles(events)
        versions: list[RegisteredVersion] = []
        for header in headers:
            classifier = self._built.get((header.name, header.version, header.digest))
            status = by_name.get(header.name, Lifecycle(header.name, ())).statuses().get(header.version)
            if classifier is None or status is None:
                continue
            versions.append(RegisteredVersion(classifier, status, header.digest))
            bundled = self._bundled.get(header.name, header.version)
            if bundled is not None and bundled.digest != header.digest:
                logger.error(
                    "classifier %s@%s: the bundled definition differs from the stored one, which is served",
                    header.name,
                    header.version,
                )
        shadows = {name: shadow for name, lc in by_name.items() if (shadow := lc.shadow()) is not None}
        try:
            self._current = ClassifierRegistry(
                self._bundled.default_name, tuple(versions), tuple(rejected), shadows
            )
        except ClassifierDefinitionError as error:
            # Never go on deciding with a version the store has retired: refuse until a reload succeeds.
            self._unservable = f"the stored classifier registry cannot be served by this process: {error}"
            logger.error("%s; no decisions until it can", self._unservable)
            return False
        self._unservable = None
        return True

    async def register(
        self,
        manifest: dict[str, Any],
        artifact: bytes | None,
        *,
        by: str,
        reason: str,
        digest: str | None = None,
    ) -> RegisteredVersion:
        """Verify a new version (exactly as it will load, and against the digest its maker published,
        when given) and store it as a draft."""
        if digest is not None and manifest_digest(manifest) != digest:
            raise ClassifierDefinitionError(
                f"digest mismatch: expected {digest}, the manifest hashes to {manifest_digest(manifest)}"
            )
        digest = manifest_digest(manifest)
        name, version = str(manifest.get("name")), str(manifest.get("version"))
        match = PIN.fullmatch(f"{name}@{version}")
        if match is None or match["version"] is None:
            raise ClassifierDefinitionError("a version needs a name and a version number major.minor.patch")
        classifier, _ = build_version(manifest, artifact, name, version, digest, self._builders)
        entry = RegisteredVersion(classifier, VersionStatus.DRAFT, digest, artifact)
        async with self._unit_of_work() as uow:
            await uow.classifiers.lock()
            if await uow.classifiers.get(name, version) is not None:
                raise VersionExists(f"{name}@{version} is registered already; versions never change")
            now = await uow.classifiers.now()
            await uow.classifiers.add(_stored_version(entry, "registered", by, now))
            await _kept_exactly(uow, name, version, digest)
            await uow.classifiers.record([_row(name, version, LifecycleEvent.REGISTERED, now, by, reason)])
            await uow.commit()
        self._built[(name, version, digest)] = classifier
        await self._refresh_after_change()
        return entry

    async def _refresh_after_change(self) -> None:
        """Serve a change just committed; if the store cannot be read back now, the change stands and the
        refresher serves it at its next turn."""
        try:
            await self.refresh()
        except StoreUnavailable as error:
            logger.warning("classifier registry not reloaded after a change: %s", error)

    async def change(
        self, name: str, version: str, event: LifecycleEvent, *, by: str, reason: str
    ) -> list[Event]:
        """Record one lifecycle change (with what it implies: activating retires the previous version), in
        the lifecycle's turn, and serve the result at once."""
        if self._current.get(name, version) is None:
            await self.refresh()  # registered moments ago by another process, perhaps
        verified = self._current.get(name, version)
        async with self._unit_of_work() as uow:
            await uow.classifiers.lock()
            if await uow.classifiers.get(name, version) is None:
                raise UnknownVersion(f"{name}@{version} is not registered")
            lifecycle = Lifecycle(name, tuple(_event(row) for row in await uow.classifiers.events(name)))
            changes = plan_change(lifecycle, version, event, reason, default_name=self.default_name)
            if verified is None and event in (LifecycleEvent.ACTIVATED, LifecycleEvent.SHADOW_STARTED):
                raise LifecycleRefused(f"{name}@{version} failed verification in this process: not served")
            now = await uow.classifiers.now()
            rows = [_row(name, c.version, c.event, now, by, c.reason) for c in changes]
            await uow.classifiers.record(rows)
            await uow.commit()
        recorded = [_event(row) for row in rows]
        await self._refresh_after_change()
        return recorded

    async def lifecycle(self, name: str) -> Lifecycle | None:
        async with self._readers() as uow:
            events = [_event(row) for row in await uow.classifiers.events(name)]
        return Lifecycle(name, tuple(events)) if events else None


async def _kept_exactly(uow: UnitOfWork, name: str, version: str, digest: str) -> None:
    """Refuse (before commit) a manifest the store gives back as another: PostgreSQL's JSONB keeps
    numbers as numbers, not as written (1e16 comes back as the integer 10000000000000000, which has no
    RFC 8785 form), and every process verifies a version by the digest of what the store gives back."""
    kept = await uow.classifiers.stored_manifest(name, version)
    try:
        same = isinstance(kept, dict) and manifest_digest(kept) == digest
    except ClassifierDefinitionError:
        same = False
    if not same:
        raise ClassifierDefinitionError(
            "the store gives this manifest back changed, so no process could verify it: the store keeps a "
            "JSON number as a number, not as written (1e16 comes back as an integer beyond 2**53)"
        )


def _stored_version(entry: RegisteredVersion, origin: str, by: str, now: Any) -> ClassifierVersion:
    definition = entry.definition
    return ClassifierVersion(
        name=definition.name,
        version=definition.version,
        kind=definition.kind,
        digest=entry.digest,
        manifest=dict(definition.manifest),
        artifact=entry.artifact,
        origin=origin,
        registered_at=now,
        registered_by=by,
    )


def _row(
    name: str,
    version: str,
    event: LifecycleEvent,
    at: Any,
    by: str = BUNDLED_BY,
    reason: str = "shipped with the service",
) -> ClassifierEvent:
    return ClassifierEvent(name=name, version=version, event=event.value, at=at, by=by, reason=reason)
