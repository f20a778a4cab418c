"""A small client of the REDCap API: export one record, import one record, nothing else.

Requests are form-encoded POSTs to the project's API URL with the project's token, as the REDCap API
documents them. The token is sent in the body only, and neither it nor anything REDCap answers (which can
quote record values) is ever put in an exception message or a log line.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

DAG_FIELD = "redcap_data_access_group"
MAX_RESPONSE_BYTES = 1024 * 1024
"""An export of one record is a few kilobytes; anything this large is not what was asked for."""


class RedcapError(Exception):
    """REDCap could not be reached, answered with an error, or answered in an unexpected shape.

    The message says which, in the service's words only.
    """


@dataclass(frozen=True)
class Export:
    """An export exactly as REDCap sent it, and its flat rows."""

    body: bytes
    rows: list[dict[str, str]]


def _flat_rows(body: bytes) -> list[dict[str, str]]:
    try:
        document: Any = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RedcapError("REDCap's export is not UTF-8 JSON") from None
    if not isinstance(document, list) or not all(
        isinstance(row, dict) and all(isinstance(value, str) for value in row.values()) for row in document
    ):
        raise RedcapError("REDCap's export is not a JSON array of flat records")
    return document


class RedcapClient:
    """One project's API, through one ``httpx.AsyncClient`` kept for the life of the process."""

    def __init__(
        self,
        api_url: str,
        token: SecretStr,
        timeout_s: float,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api_url = api_url
        self._token = token
        self._http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, action: str, parameters: Mapping[str, str]) -> bytes:
        data = {
            "token": self._token.get_secret_value(),
            "content": "record",
            "action": action,
            "format": "json",
            "type": "flat",
            "returnFormat": "json",
            **parameters,
        }
        try:
            async with self._http.stream("POST", self._api_url, data=data) as response:
                if response.status_code != 200:
                    raise RedcapError(f"REDCap answered the {action} with HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise RedcapError(f"REDCap's answer to the {action} is too large")
        except httpx.TimeoutException:
            raise RedcapError(f"REDCap did not answer the {action} in time") from None
        except httpx.HTTPError as error:
            raise RedcapError(
                f"REDCap could not be reached for the {action} ({type(error).__name__})"
            ) from None
        return bytes(body)

    async def export_record(self, record: str, fields: Sequence[str], event: str | None = None) -> Export:
        """Export one record's ``fields`` (and, in a longitudinal project, only ``event``)."""
        # The data access group is not a field: it is a column of the export only when asked for.
        dag = DAG_FIELD in fields
        fields = [field for field in fields if field != DAG_FIELD]
        parameters = {
            "records[0]": record,
            "rawOrLabel": "raw",
            "exportDataAccessGroups": "true" if dag else "false",
        }
        parameters |= {f"fields[{index}]": field for index, field in enumerate(fields)}
        if event is not None:
            parameters["events[0]"] = event
        body = await self._post("export", parameters)
        return Export(body, _flat_rows(body))

    async def import_record(self, row: Mapping[str, str]) -> int:
        """Import one flat record; the count REDCap reports having imported.

        ``overwrite``, not ``normal``: a blank the service writes (a risk group of null) must replace what an
        earlier decision wrote. Only the fields in ``row`` are touched either way.
        """
        body = await self._post("import", {"overwriteBehavior": "overwrite", "data": json.dumps([row])})
        try:
            answer: Any = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RedcapError("REDCap's answer to the import is not UTF-8 JSON") from None
        count = answer.get("count") if isinstance(answer, dict) else None
        if isinstance(count, str) and count.isdigit():
            count = int(count)
        if not isinstance(count, int) or isinstance(count, bool):
            raise RedcapError("REDCap's answer to the import has no count")
        return count
