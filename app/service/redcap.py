"""Scoring a REDCap record when its IL6 form is saved Complete, and writing the decision back to it.

A Data Entry Trigger is an unauthenticated notice that carries no data: the record is always read from the
configured project through its API, with the service's own token, and only the configured project's
triggers are acted on. A forged trigger can therefore at most make the service score a real record of that
project as REDCap holds it.
"""

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

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
    ) -> None:
        self.project = project
        self._client = client
        self._assessments = assessments
        self._read_plain = read_plain

    @classmethod
    def from_settings(
        cls, settings: Settings, assessments: AssessmentService, read_plain: PlainReader
    ) -> "RedcapReceiver | None":
        """The receiver the settings configure; None when IL6_REDCAP_API_URL is unset (receiver off)."""
        if settings.redcap_api_url is None:
            return None
        # Settings refuse a URL without a token and project id; checked again for the type checker.
        if settings.redcap_api_token is None or settings.redcap_project_id is None:
            raise ValueError("IL6_REDCAP_API_URL needs IL6_REDCAP_API_TOKEN and IL6_REDCAP_PROJECT_ID")
        write_back = settings.redcap_write_back
        project = RedcapProject(
            project_id=settings.redcap_project_id,
            instrument=settings.redcap_instrument,
            fields=FieldMap(**settings.redcap_fields.model_dump()),
            write_back=None if write_back is None else WriteBackMap(**write_back.model_dump()),
            timezone=None if settings.redcap_timezone is None else ZoneInfo(settings.redcap_timezone),
        )
        client = RedcapClient(settings.redcap_api_url, settings.redcap_api_token, settings.redcap_timeout_s)
        return cls(project, client, assessments, read_plain)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def receive(self, trigger: Trigger, request_id: str | None) -> Scored | Ignored:
        """Act on one trigger.

        Raises SourceNotAccepted for another project, UpstreamUnavailable when REDCap cannot be read,
        InvalidRecord when the record cannot be decided on as it stands (nothing decided, nothing written).
        """
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
        try:
            export = await self._client.export_record(
                trigger.record, project.fields.export_fields(project.instrument), trigger.event
            )
        except RedcapError as error:
            logger.warning("REDCap export failed: %s", error)
            raise UpstreamUnavailable(str(error)) from None
        row = select_row(export.rows, trigger, project.fields.record_id)
        if row.get(f"{project.instrument}_complete") != COMPLETE:
            # The trigger said Complete; REDCap, which is the authority, says otherwise now.
            return Ignored("the instrument is not Complete in REDCap")
        submission = submission_from_record(row, trigger, project.fields, self._read_plain, project.timezone)
        try:
            outcome = await self._assessments.decide(
                submission,
                RawRequest(body=export.body, media_type=RECORD_MEDIA_TYPE),
                Caller(project.client_id, request_id),
                idempotency_key(trigger, export.body),
            )
        except InvalidInput as error:
            raise in_record_terms(error, project.fields) from None
        return Scored(outcome, await self._write_back(trigger, outcome))

    async def _write_back(self, trigger: Trigger, outcome: Outcome) -> bool:
        """Write the decision into the record; again for a replayed decision, which repairs a write-back
        that failed the first time. A failure leaves the recorded decision as it is and is reported."""
        outputs = self.project.write_back
        if outputs is None:
            return False
        recorded = outcome.recorded
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
