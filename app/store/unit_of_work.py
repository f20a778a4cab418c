"""One database transaction per use case, committed inside the use case, before any answer leaves."""

import asyncio
import logging
from types import TracebackType
from typing import Self

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.store.chain_reader import ChainReader
from app.store.classifier_repositories import ClassifierRepository, ShadowRepository
from app.store.idempotency_repository import IdempotencyRepository
from app.store.key_repository import ApiKeyRepository
from app.store.monitoring_repository import MonitoringRepository
from app.store.repositories import AssessmentRepository

logger = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The database could not be read or written; nothing was recorded."""


class WriteRefused(StoreUnavailable):
    """The database answered, but refused what was written (a constraint or a trigger): another
    transaction, without the row it refused, may succeed."""


def _unavailable(error: SQLAlchemyError, message: str) -> StoreUnavailable:
    answered = isinstance(error, DBAPIError) and not isinstance(error, OperationalError | InterfaceError)
    refused = answered and not getattr(error, "connection_invalidated", False)
    return (WriteRefused if refused else StoreUnavailable)(message)


class UnitOfWork:
    """Opens a session, exposes the repositories, and rolls back whatever was not committed.

    Database errors raised inside the block, or by ``commit()``, surface as ``StoreUnavailable``.
    """

    assessments: AssessmentRepository
    chain: ChainReader
    idempotency: IdempotencyRepository
    keys: ApiKeyRepository
    classifiers: ClassifierRepository
    shadows: ShadowRepository
    monitoring: MonitoringRepository

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    async def __aenter__(self) -> Self:
        self._session = self._session_factory()
        self.assessments = AssessmentRepository(self._session)
        self.chain = ChainReader(self._session)
        self.idempotency = IdempotencyRepository(self._session)
        self.keys = ApiKeyRepository(self._session)
        self.classifiers = ClassifierRepository(self._session)
        self.shadows = ShadowRepository(self._session)
        self.monitoring = MonitoringRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, asyncio.CancelledError):
            # Cancelled mid-statement (a deadline): the connection's state is unknown and a ROLLBACK sent
            # down a silent connection would wait as long. Discard the connection; the server rolls back.
            await self._session.invalidate()
            return
        try:
            await self._session.rollback()
            await self._session.close()
        except SQLAlchemyError as error:
            # Whatever was committed stays committed; a failed clean-up changes no outcome.
            logger.warning("database session clean-up failed: %s", type(error).__name__)
        if isinstance(exc, SQLAlchemyError):
            raise _unavailable(exc, "the database could not be read or written") from exc

    async def commit(self) -> None:
        try:
            await self._session.commit()
        except SQLAlchemyError as error:
            raise _unavailable(error, "the database could not commit the transaction") from error
