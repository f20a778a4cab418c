"""Scoring a REDCap record when its IL6 form is saved Complete, and writing the decision back to it.

A Data Entry Trigger is a notice that carries no data. REDCap cannot sign it, so its URL carries a secret
(IL6_REDCAP_TRIGGER_SECRET) that the receiver checks before it reads or fetches anything. Even so the record
is always read from the configured project through its API, with the service's own token, and only the
configured project's triggers are acted on: a trigger can at most make the service score a real record of
that project as REDCap holds it.

Export, decide and write-back are not one transaction: the record can be saved again in between. So
triggers for one record are taken one at a time within the process, and the inputs are exported again just
before writing back: if they changed, the decision (which stands, recorded) is not written next to inputs it
was not made from; the save that changed them fires a trigger of its own.
"""

import asyncio
import hashlib
import hmac
import logging
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from app.domain.access import ALL_SITES
from app.domain.errors import InvalidInput
from app.interop.redcap import (
    COMPLETE,
    RECORD_MEDIA_TYPE,
    FieldMap,
    InvalidRecord,
    PlainReader,
    Trigger,
    WriteBackMap,
    idempotency_key,
    in_record_terms,
    select_row,
    submission_from_record,
    write_back_row,
)
from app.service.assessments import AssessmentService, Caller, Outcome, RawRequest
from app.service.redcap_client import RedcapClient, RedcapError
from app.settings import Settings

logger = logging.getLogger(__name__)


class UpstreamUnavailable(Exception):
    """REDCap could not be read, so nothing was decided."""


class SourceNotAccepted(Exception):
    """A trigger from a REDCap project this service is not configured to accept."""


@dataclass(frozen=True)
class RedcapProject:
    """The one project whose triggers are acted on, and how its records map to the service's inputs."""

    project_id: int
    instrument: str
    fields: FieldMap
    write_back: WriteBackMap | None
    timezone: ZoneInfo | None

    @property
    def client_id(self) -> str:
        """Who the audit trail names as the caller of decisions made on this project's triggers."""
        return f"redcap:{self.project_id}"


@dataclass(frozen=True)
class Ignored:
    """A trigger that asks for nothing: another form, or the IL6 form not (yet) Complete."""

    reason: str


@dataclass(frozen=True)
class Scored:
    outcome: Outcome
    written_back: bool


class RedcapReceiver:
    """Acts on Data Entry Triggers: read the record, decide through the audited path, write back."""

    def __init__(
        self,
        project: RedcapProject,
        client: RedcapClient,
        assessments: AssessmentService,
        read_plain: PlainReader,
        trigger_secret: SecretStr,
    ) -> None:
        self.project = project
        self._client = client
        self._assessments = assessments
        self._read_plain = read_plain
        self._secret_digest = _digest(trigger_secret.get_secret_value())
        self._records: weakref.WeakValueDictionary[tuple[str, str | None], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, assessments: AssessmentService, read_plain: PlainReader
    ) -> "RedcapReceiver | None":
        """The receiver the settings configure; None when IL6_REDCAP_API_URL is unset (receiver off)."""
        if settings.redcap_api_url is None:
            return None
        # Settings refuse a URL without a token, secret and project id; checked again for the type checker.
        token, secret = settings.redcap_api_token, settings.redcap_trigger_secret
        if token is None or secret is None or settings.redcap_project_id is None:
            raise ValueError(
                "IL6_REDCAP_API_URL needs IL6_REDCAP_API_TOKEN, IL6_REDCAP_TRIGGER_SECRET and "
                "IL6_REDCAP_PROJECT_ID"
            )
        write_back = settings.redcap_write_back
        project = RedcapProject(
            project_id=settings.redcap_project_id,
            instrument=settings.redcap_instrument,
            fields=FieldMap(**settings.redcap_fields.model_dump()),
            write_back=None if write_back is None else WriteBackMap(**write_back.model_dump()),
            timezone=None if settings.redcap_timezone is None else ZoneInfo(settings.redcap_timezone),
        )
        client = RedcapClient(settings.redcap_api_url, token, settings.redcap_timeout_s)
        return cls(project, client, assessments, read_plain, secret)

    async def aclose(self) -> None:
        await self._client.aclose()

    def authenticates(self, secret: str | None) -> bool:
        """Whether a trigger's URL carried the configured secret; compared in constant time (of digests,
        so that not even the secret's length shows)."""
        return secret is not None and hmac.compare_digest(_digest(secret), self._secret_digest)

    def _record_lock(self, trigger: Trigger) -> asyncio.Lock:
        """The lock that takes this record's triggers one at a time; dropped once no trigger holds it."""
        key = (trigger.record, trigger.event)
        lock = self._records.get(key)
        if lock is None:
            lock = self._records[key] = asyncio.Lock()
        return lock

    async def receive(self, trigger: Trigger, request_id: str | None) -> Scored | Ignored:
        """Act on one (authenticated) trigger.

        Raises SourceNotAccepted for another project, UpstreamUnavailable when REDCap cannot be read,
        InvalidRecord when the record cannot be decided on as it stands (nothing decided, nothing written).
        A record REDCap does not have is ignored, as a trigger that asks for nothing is.
        """
        result = await self._receive(trigger, request_id)
        if isinstance(result, Ignored):
            logger.info("REDCap trigger ignored: %s", result.reason)
        return result

    async def _receive(self, trigger: Trigger, request_id: str | None) -> Scored | Ignored:
        project = self.project
        if trigger.project_id != project.project_id:
            raise SourceNotAccepted("triggers are accepted from one configured REDCap project only")
        if trigger.instrument != project.instrument:
            return Ignored("another instrument was saved")
        if trigger.status != COMPLETE:
            return Ignored("the instrument is not marked Complete")
        if trigger.repeat_instance is not None:
            raise InvalidRecord(
                [
                    InvalidInput(
                        "/redcap_repeat_instance", "Repeating instruments and events are not supported."
                    )
                ]
            )
        async with self._record_lock(trigger):
            return await self._score(trigger, request_id)

    async def _score(self, trigger: Trigger, request_id: str | None) -> Scored | Ignored:
        project = self.project
        try:
            export = await self._client.export_record(
                trigger.record, project.fields.export_fields(project.instrument), trigger.event
            )
        except RedcapError as error:
            logger.warning("REDCap export failed: %s", error)
            raise UpstreamUnavailable(str(error)) from None
        row = select_row(export.rows, trigger, project.fields.record_id)
        if row is None:
            return Ignored("REDCap has no such record (or event)")
        if row.get(f"{project.instrument}_complete") != COMPLETE:
            # The trigger said Complete; REDCap, which is the authority, says otherwise now.
            return Ignored("the instrument is not Complete in REDCap")
        submission = submission_from_record(row, trigger, project.fields, self._read_plain, project.timezone)
        try:
            outcome = await self._assessments.decide(
                submission,
                RawRequest(body=export.body, media_type=RECORD_MEDIA_TYPE),
                Caller(project.client_id, request_id, ALL_SITES),
                idempotency_key(trigger, export.body),
            )
        except InvalidInput as error:
            raise in_record_terms(error, project.fields) from None
        return Scored(outcome, await self._write_back(trigger, outcome, row))

    async def _write_back(self, trigger: Trigger, outcome: Outcome, read: Mapping[str, Any]) -> bool:
        """Write the decision into the record, if its inputs are still those it was made from (``read``);
        again for a replayed decision, which repairs a write-back that failed the first time. A failure
        leaves the recorded decision as it is and is reported."""
        outputs = self.project.write_back
        if outputs is None:
            return False
        recorded = outcome.recorded
        if not await self._unchanged(trigger, read, recorded.id):
            return False
        row = write_back_row(trigger, self.project.fields, outputs, recorded.id, recorded.decision)
        try:
            count = await self._client.import_record(row)
        except RedcapError as error:
            logger.warning("REDCap write-back of assessment %s failed: %s", recorded.id, error)
            return False
        if count != 1:
            logger.warning(
                "REDCap write-back of assessment %s imported %d records, not 1", recorded.id, count
            )
            return False
        return True

    async def _unchanged(self, trigger: Trigger, read: Mapping[str, Any], assessment_id: uuid.UUID) -> bool:
        """Whether REDCap still holds the inputs (and the Complete status) the decision was made from.

        A save in between would otherwise leave the record showing its new inputs next to the decision on
        the old ones. (A save in the moment between this export and the import can still slip through;
        its own trigger then writes its own decision.)"""
        project = self.project
        try:
            export = await self._client.export_record(
                trigger.record, project.fields.export_fields(project.instrument), trigger.event
            )
            now = select_row(export.rows, trigger, project.fields.record_id)
        except (RedcapError, InvalidRecord) as error:
            logger.warning(
                "REDCap write-back of assessment %s skipped: the record could not be read again (%s)",
                assessment_id,
                type(error).__name__,
            )
            return False
        if now != read:
            logger.warning(
                "REDCap write-back of assessment %s skipped: the record changed after it was read",
                assessment_id,
            )
            return False
        return True


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "replace")).digest()
