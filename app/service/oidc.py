"""Verifying OAuth2/OIDC client-credentials access tokens (signed JWTs) and turning them into Principals.

The checks follow RFC 8725 (JSON Web Token Best Current Practices): the token's ``alg`` must be one of a
configured list of asymmetric algorithms (3.1: never ``none``, never an HMAC whose "secret" would be the
issuer's public key), the key is chosen by ``kid`` from the issuer's published JWKS and must be of the
type that algorithm needs (3.1, 3.2), and issuer, audience and expiry are always checked (3.8, 3.9).

The issuer's keys are cached; an unknown ``kid`` refetches them at most once per ``REFETCH_INTERVAL_S``,
so a flood of made-up kids cannot be turned into a flood of requests to the issuer. Nothing a token or
the issuer sent is ever put in an exception message.
"""

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from app.domain.access import ALL_SITES, CALLER_NAME, SITE_ID, Principal, Scope, SiteAccess
from app.service.errors import Unauthenticated
from app.settings import Settings

PublicKey: TypeAlias = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey

REFETCH_INTERVAL_S = 30.0
"""The least time between two fetches of the JWKS caused by a token naming an unknown key."""
FAILURE_BACKOFF_S = 5.0
"""After a failed fetch, requests fail fast this long rather than each waiting on a dead issuer."""
FETCH_TIMEOUT_S = 5.0
MAX_JWKS_BYTES = 256 * 1024
MAX_TOKEN_CHARS = 16 * 1024
MIN_RSA_BITS = 2048

# What key each algorithm needs (RFC 7518 3.3-3.5 and 8037): key type, and the curves it may be on.
_KEY_FOR_ALG: dict[str, tuple[str, frozenset[str] | None]] = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), ("RSA", None)),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
_PARSERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "RSA": RSAAlgorithm.from_jwk,
    "EC": ECAlgorithm.from_jwk,
    "OKP": OKPAlgorithm.from_jwk,
}
# Most specific first: InvalidSignatureError is a DecodeError, the others InvalidTokenErrors.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidSignatureError, "bad-signature"),
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not-yet-valid"),
    (jwt.InvalidIssuerError, "wrong-issuer"),
    (jwt.InvalidAudienceError, "wrong-audience"),
    (jwt.MissingRequiredClaimError, "missing-claim"),
    (jwt.InvalidAlgorithmError, "algorithm-not-accepted"),
    (jwt.InvalidKeyError, "key-mismatch"),
    (jwt.DecodeError, "malformed-token"),
    (jwt.InvalidTokenError, "bad-claim"),  # iat, sub or jti of the wrong type
)


class IssuerUnavailable(Exception):
    """The issuer's signing keys could not be fetched, or were not a usable JWKS."""

    def __init__(self, reason: str) -> None:
        super().__init__("the token issuer's signing keys could not be obtained")
        self.reason = reason


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[str, ...]
    scope_prefix: str
    sites_claim: str
    jwks_cache_s: float
    leeway_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "OidcConfig | None":
        """The configuration, or None when no issuer is configured (API keys only)."""
        if settings.oidc_issuer is None:
            return None
        # Settings refuses an issuer without these two; checked again so a bad caller cannot get None in.
        if settings.oidc_audience is None or settings.oidc_jwks_url is None:
            raise ValueError("an OIDC issuer needs an audience and a JWKS URL")
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            algorithms=tuple(settings.oidc_algorithms),
            scope_prefix=settings.oidc_scope_prefix,
            sites_claim=settings.oidc_sites_claim,
            jwks_cache_s=settings.oidc_jwks_cache_s,
            leeway_s=settings.oidc_leeway_s,
        )


@dataclass(frozen=True)
class _Jwk:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: PublicKey

    def fits(self, alg: str) -> bool:
        kty, curves = _KEY_FOR_ALG[alg]
        return self.kty == kty and (curves is None or self.crv in curves) and self.alg in (None, alg)


def _usable(entry: object) -> _Jwk | None:
    """A JWK this service may verify with; None for symmetric, encryption, private or weak keys."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kty"), str):
        return None
    if entry["kty"] not in _PARSERS:  # never "oct" (RFC 8725 3.1)
        return None
    kid, crv, alg = entry.get("kid"), entry.get("crv"), entry.get("alg")
    if entry.get("use", "sig") != "sig" or not all(v is None or isinstance(v, str) for v in (kid, crv, alg)):
        return None
    try:
        key = _PARSERS[entry["kty"]](entry)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    # A published private key is a leak, not a verification key; a short RSA key is too weak to trust.
    if not isinstance(key, PublicKey) or (isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS):
        return None
    return _Jwk(kid, entry["kty"], crv, alg, key)


def _select(keys: tuple[_Jwk, ...], alg: str, kid: str | None) -> PublicKey:
    # A token without a kid is accepted only from an issuer with a single key: no guessing among several.
    named = [k for k in keys if k.kid == kid] if kid is not None else list(keys) if len(keys) == 1 else []
    if not named:
        raise Unauthenticated("unknown-signing-key")
    for candidate in named:
        if candidate.fits(alg):
            return candidate.key
    raise Unauthenticated("key-mismatch")


class OidcVerifier:
    """Verifies bearer JWTs from one issuer against its JWKS; one instance per application."""

    def __init__(
        self,
        config: OidcConfig,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._own_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=FETCH_TIMEOUT_S)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: tuple[_Jwk, ...] | None = None
        self._fetched_at = 0.0
        self._attempted_at = float("-inf")
        self._retry_at = float("-inf")

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def verify(self, token: str) -> Principal:
        """The caller a valid token names; Unauthenticated (by reason code) for any invalid token."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("malformed-token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed-token") from None
        alg = header.get("alg")
        # Before any key is looked at: "none" and the HMACs are never in the list (RFC 8725 2.1, 3.1).
        if not isinstance(alg, str) or alg not in self._config.algorithms or alg not in _KEY_FOR_ALG:
            raise Unauthenticated("algorithm-not-accepted")
        kid = header.get("kid")
        keys = await self._current_keys()
        if kid is not None and all(k.kid != kid for k in keys):
            keys = await self._refetch(keys)
        key = _select(keys, alg, kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            reason = next((code for kind, code in _REASONS if isinstance(error, kind)), "malformed-token")
            raise Unauthenticated(reason) from None
        return Principal(_name(claims), self._scopes(claims), self._sites(claims), method="oidc")

    async def _current_keys(self) -> tuple[_Jwk, ...]:
        if (keys := self._fresh_keys()) is not None:
            return keys
        async with self._lock:  # concurrent first requests share one fetch
            if (keys := self._fresh_keys()) is None:
                keys = self._keys = await self._fetch()
            return keys

    def _fresh_keys(self) -> tuple[_Jwk, ...] | None:
        fresh = self._clock() - self._fetched_at < self._config.jwks_cache_s
        return self._keys if fresh else None

    async def _refetch(self, seen: tuple[_Jwk, ...]) -> tuple[_Jwk, ...]:
        """The keys again, for a kid not among ``seen``: the issuer may have rotated them."""
        async with self._lock:
            if self._keys is not None and self._keys is not seen:
                return self._keys  # another request refetched meanwhile
            if self._clock() - self._attempted_at < REFETCH_INTERVAL_S:
                return seen
            try:
                self._keys = await self._fetch()
            except IssuerUnavailable:
                return seen  # the kid stays unknown; the cached keys still verify other tokens
            return self._keys

    async def _fetch(self) -> tuple[_Jwk, ...]:
        now = self._clock()
        if now < self._retry_at:
            raise IssuerUnavailable("backing-off")
        self._attempted_at = now
        try:
            keys = await self._download()
        except IssuerUnavailable:
            self._retry_at = self._clock() + FAILURE_BACKOFF_S
            raise
        self._fetched_at = self._clock()
        return keys

    async def _download(self) -> tuple[_Jwk, ...]:
        body = bytearray()
        try:
            async with self._client.stream("GET", self._config.jwks_url, timeout=FETCH_TIMEOUT_S) as response:
                if response.status_code != 200:
                    raise IssuerUnavailable("bad-status")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise IssuerUnavailable("too-large")
        except httpx.HTTPError as error:
            raise IssuerUnavailable("unreachable") from error
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise IssuerUnavailable("not-json") from None
        entries = document.get("keys") if isinstance(document, dict) else None
        keys = tuple(k for k in map(_usable, entries if isinstance(entries, list) else []) if k is not None)
        if not keys:
            raise IssuerUnavailable("no-keys")
        return keys

    def _scopes(self, claims: dict[str, Any]) -> frozenset[Scope]:
        listed = _strings(claims.get("scope", claims.get("scp")))
        prefix, known = self._config.scope_prefix, {scope.value for scope in Scope}
        # Other services' scopes share the token; they are not ours to interpret, so they are skipped.
        return frozenset(
            Scope(v[len(prefix) :]) for v in listed if v.startswith(prefix) and v[len(prefix) :] in known
        )

    def _sites(self, claims: dict[str, Any]) -> SiteAccess:
        listed = _strings(claims.get(self._config.sites_claim))
        if listed == ["*"]:
            return ALL_SITES
        # fullmatch: the pattern's "$" would also accept a trailing newline.
        if not all(SITE_ID.fullmatch(site) for site in listed):
            raise Unauthenticated("bad-claim")
        return SiteAccess(frozenset(listed))  # none listed: decisions without a site only


def _name(claims: dict[str, Any]) -> str:
    """``oidc:`` and the client's id: the name the audit trail records for the caller."""
    client = next((claims[c] for c in ("client_id", "azp", "sub") if claims.get(c) is not None), None)
    name = f"oidc:{client}" if isinstance(client, str) else ""
    if not CALLER_NAME.fullmatch(name):
        raise Unauthenticated("unnamed-client")
    return name


def _strings(value: object) -> list[str]:
    """A claim holding a list of strings, or one space-separated string; absent: empty."""
    listed = [] if value is None else value.split() if isinstance(value, str) else value
    if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
        raise Unauthenticated("bad-claim")
    return listed
