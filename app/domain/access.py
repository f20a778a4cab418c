"""Who may ask what: scopes, site lists, and the API keys that carry them.

A caller is a ``Principal``: the name the audit trail records, what it may do (scopes) and which sites'
subjects it may decide on or read. A caller restricted to sites must not learn that a decision or subject
of another site exists, so a record outside its sites reads exactly as a record that does not exist.

API keys are random 256-bit secrets; only their SHA-256 is stored. A fast hash is enough for secrets of
that entropy (nothing to guess, unlike a password), and it keeps a per-request check cheap.
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    ASSESS = "assess"
    """Request decisions."""
    READ = "read"
    """Read decisions, exports and the audit trail."""
    ADMIN = "admin"
    """Manage keys and classifiers."""


CALLER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
"""A caller's name as the audit trail records it (64 characters at most)."""
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
"""An API key's name: a caller's name without ':', which marks the names others are given (``oidc:<client>``,
``redcap:<project>``, ``cli:<user>``), so that a key can never pass for one of them."""
SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""A site id, as decisions carry it."""


@dataclass(frozen=True)
class SiteAccess:
    """The sites whose subjects a caller may decide on and read; ``sites`` None: every site."""

    sites: frozenset[str] | None

    def permits(self, site_id: str | None) -> bool:
        """A decision without a site is visible only to a caller with every site."""
        return self.sites is None or (site_id is not None and site_id in self.sites)

    @property
    def every_site(self) -> bool:
        return self.sites is None

    def describe(self) -> str:
        return "*" if self.sites is None else ",".join(sorted(self.sites))

    def covers(self, other: "SiteAccess") -> bool:
        """Whether every site ``other`` gives is given here too (an administrator's reach over a key)."""
        if self.sites is None:
            return True
        return other.sites is not None and other.sites <= self.sites


ALL_SITES = SiteAccess(None)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    scopes: frozenset[Scope]
    sites: SiteAccess
    method: str
    """How it authenticated: ``api-key`` or ``oidc``."""

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scope names to scopes; raises ValueError naming an unknown one."""
    scopes = set()
    for value in values:
        try:
            scopes.add(Scope(value.strip()))
        except ValueError:
            raise ValueError(f"unknown scope {value.strip()!r} (known: assess, read, admin)") from None
    if not scopes:
        raise ValueError("at least one scope is needed")
    return frozenset(scopes)


def parse_sites(values: Iterable[str]) -> SiteAccess:
    """``*`` alone: every site; else site ids. Raises ValueError for an empty list or a malformed id."""
    listed = [value.strip() for value in values if value.strip()]
    if listed == ["*"]:
        return ALL_SITES
    if not listed:
        raise ValueError("at least one site is needed, or * for every site")
    for site in listed:
        if not SITE_ID.fullmatch(site):
            raise ValueError("a site id is letters, digits, '.', '_' or '-' (64 at most), or * alone")
    return SiteAccess(frozenset(listed))


KEY_PREFIX = "il6_"
KEY_ID_LENGTH = 16
API_KEY = re.compile(r"il6_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")
"""The shape of every key this service issues: recognisable by secret scanners and in log checks."""


@dataclass(frozen=True)
class IssuedKey:
    """A new key: its public id, the whole secret (shown once) and the hash that is stored."""

    key_id: str
    secret: str
    secret_sha256: str


def issue_key() -> IssuedKey:
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return IssuedKey(key_id, secret, hash_key(secret))


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_id_of(presented: str) -> str | None:
    """The public id inside a presented key, or None when it is not one of this service's keys."""
    if not API_KEY.fullmatch(presented):
        return None
    return presented[len(KEY_PREFIX) : len(KEY_PREFIX) + KEY_ID_LENGTH]


def key_matches(presented: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(hash_key(presented), stored_sha256)
