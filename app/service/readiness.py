"""Whether the service can decide: the audit store reachable and at the newest migration."""

import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.migrations import current_revisions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadinessProbe:
    engine: AsyncEngine
    schema_heads: frozenset[str]

    async def problem(self) -> str | None:
        """``None`` when ready, else why not (without connection details)."""
        try:
            current = await current_revisions(self.engine)
        except (SQLAlchemyError, OSError) as error:
            logger.warning("readiness: database unreachable (%s)", type(error).__name__)
            return "The database is unreachable."
        if current != self.schema_heads:
            return "The database is not at the newest migration."
        return None
