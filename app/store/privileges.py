"""What the service's database login could do to the audit trail if it stepped out of its role."""

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_PRIVILEGES = text(
    "SELECT session_user AS login, r.rolsuper AS superuser, "
    "COALESCE(pg_has_role(session_user, c.relowner, 'MEMBER'), false) AS owner "
    "FROM pg_roles r LEFT JOIN pg_class c ON c.oid = to_regclass('assessment') "
    "WHERE r.rolname = session_user"
)


@dataclass(frozen=True)
class LoginPrivileges:
    login: str
    superuser: bool
    owns_audit_trail: bool

    @property
    def can_alter_audit_trail(self) -> bool:
        """A superuser, or a member of the table's owner, can drop its triggers and rewrite it."""
        return self.superuser or self.owns_audit_trail


async def login_privileges(engine: AsyncEngine) -> LoginPrivileges | None:
    """The PostgreSQL login's privileges (None on SQLite, which has no roles); raises when unreachable."""
    if engine.dialect.name != "postgresql":
        return None
    async with engine.connect() as connection:
        row = (await connection.execute(_PRIVILEGES)).one()
    return LoginPrivileges(row.login, bool(row.superuser), bool(row.owner))
