"""OIDC bearer tokens: what RFC 8725 says to refuse is refused, and valid tokens become the right Principal.

The issuer is simulated: keys are generated here and its JWKS is served through httpx's MockTransport,
which counts requests so the caching and the refetch limit can be checked.
"""

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from app.domain.access import ALL_SITES, Scope, SiteAccess
from app.service.errors import Unauthenticated
from app.service.oidc import (
    FAILURE_BACKOFF_S,
    REFETCH_INTERVAL_S,
    IssuerUnavailable,
    OidcConfig,
    OidcVerifier,
)
from app.settings import Settings
from tests.jwt_factories import EC_KEY, RSA_KEY, b64, signing_input

ISSUER = "https://login.example.org/realms/trial"
AUDIENCE = "api://il6"
JWKS_URL = "https://login.example.org/realms/trial/certs"

OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()

CONFIG = OidcConfig(
    issuer=ISSUER,
    audience=AUDIENCE,
    jwks_url=JWKS_URL,
    algorithms=("RS256", "ES256", "EdDSA"),
    scope_prefix="",
    sites_claim="il6_sites",
    jwks_cache_s=300,
    leeway_s=30,
)


def jwk(kind: str, kid: str | None, **extra: str) -> dict[str, Any]:
    """A public JWK of one of the test keys."""
    if kind == "rsa":
        entry = RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True)
    elif kind == "ec":
        entry = ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True)
    else:
        entry = OKPAlgorithm.to_jwk(ED_KEY.public_key(), as_dict=True)
    if kid is not None:
        entry["kid"] = kid
    return {**entry, "use": "sig", **extra}


def standard_keys() -> list[dict[str, Any]]:
    return [jwk("rsa", "rsa-1", alg="RS256"), jwk("ec", "ec-1"), jwk("okp", "ed-1")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Issuer:
    """The JWKS endpoint: what it answers, and how often it was asked."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = standard_keys()
        self.status = 200
        self.body: bytes | None = None
        self.fail: Exception | None = None
        self.requests = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.requests += 1
        await asyncio.sleep(0)  # let concurrent verifications interleave
        if self.fail is not None:
            raise self.fail
        if self.body is not None:
            return httpx.Response(self.status, content=self.body)
        return httpx.Response(self.status, json={"keys": self.keys})


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(issuer: Issuer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle)) as http:
        yield http


@pytest.fixture
def verifier(client: httpx.AsyncClient, clock: Clock) -> OidcVerifier:
    return OidcVerifier(CONFIG, client=client, clock=clock)


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims of a client-credentials token; a change to None drops the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "client_id": "redcap-bridge",
        "sub": "5f1c9a",
        "scope": "assess read",
        "il6_sites": ["site-01", "site-02"],
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def rs256(payload: dict[str, Any] | None = None, kid: str | None = "rsa-1", key: Any = RSA_KEY) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims() if payload is None else payload, key, algorithm="RS256", headers=headers)


def es256(payload: dict[str, Any] | None = None, kid: str = "ec-1") -> str:
    return jwt.encode(
        claims() if payload is None else payload, EC_KEY, algorithm="ES256", headers={"kid": kid}
    )


async def refused(verifier: OidcVerifier, token: str) -> str:
    """The reason a token is refused; the message never carries anything of the token."""
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    assert str(caught.value) == "the credentials were not accepted"
    return caught.value.reason


# Valid tokens


async def test_rs256_token_names_the_client_with_its_scopes_and_sites(verifier: OidcVerifier) -> None:
    principal = await verifier.verify(rs256())

    assert principal.name == "oidc:redcap-bridge"
    assert principal.scopes == {Scope.ASSESS, Scope.READ}
    assert principal.sites == SiteAccess(frozenset({"site-01", "site-02"}))
    assert principal.method == "oidc"


async def test_es256_token_is_verified_with_the_ec_key(verifier: OidcVerifier) -> None:
    principal = await verifier.verify(es256(claims(scope="admin", il6_sites="*")))

    assert principal.scopes == {Scope.ADMIN}
    assert principal.sites is ALL_SITES


async def test_eddsa_token_is_verified_with_the_okp_key(verifier: OidcVerifier) -> None:
    token = jwt.encode(claims(), ED_KEY, algorithm="EdDSA", headers={"kid": "ed-1"})

    assert (await verifier.verify(token)).name == "oidc:redcap-bridge"


async def test_the_scope_prefix_selects_this_services_scopes(client: httpx.AsyncClient, clock: Clock) -> None:
    verifier = OidcVerifier(replace(CONFIG, scope_prefix="api://il6/"), client=client, clock=clock)
    scope = "api://il6/assess api://il6/nonsense api://other/admin admin openid api://il6/read"

    principal = await verifier.verify(rs256(claims(scope=scope)))

    assert principal.scopes == {Scope.ASSESS, Scope.READ}


async def test_scp_is_read_when_scope_is_absent(verifier: OidcVerifier) -> None:
    assert (await verifier.verify(rs256(claims(scope=None, scp=["read", "email"])))).scopes == {Scope.READ}
    assert (await verifier.verify(rs256(claims(scope=None, scp="admin")))).scopes == {Scope.ADMIN}


async def test_a_token_without_our_scopes_is_valid_with_no_scopes(verifier: OidcVerifier) -> None:
    assert (await verifier.verify(rs256(claims(scope="openid profile")))).scopes == frozenset()
    assert (await verifier.verify(rs256(claims(scope=None)))).scopes == frozenset()


async def test_a_malformed_scope_claim_is_refused(verifier: OidcVerifier) -> None:
    assert await refused(verifier, rs256(claims(scope=["read", 7]))) == "bad-claim"
    assert await refused(verifier, rs256(claims(scope={"read": True}))) == "bad-claim"


async def test_expiry_within_the_leeway_is_accepted(verifier: OidcVerifier) -> None:
    principal = await verifier.verify(rs256(claims(exp=int(time.time()) - 10)))

    assert principal.name == "oidc:redcap-bridge"


# Refused claims


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": None}, "missing-claim"),
        ({"iss": None}, "missing-claim"),
        ({"aud": None}, "missing-claim"),
        ({"exp": 1_600_000_000}, "expired"),
        ({"nbf": 4_000_000_000}, "not-yet-valid"),
        ({"aud": "api://another-service"}, "wrong-audience"),
        ({"aud": ["api://another-service", "api://yet-another"]}, "wrong-audience"),
        ({"iss": "https://evil.example.org/"}, "wrong-issuer"),
        ({"iat": "yesterday"}, "bad-claim"),
    ],
)
async def test_invalid_claims_are_refused(
    verifier: OidcVerifier, changes: dict[str, Any], reason: str
) -> None:
    assert await refused(verifier, rs256(claims(**changes))) == reason


# Algorithms and keys (RFC 8725 2.1, 3.1)


async def test_alg_none_is_refused_before_any_key_is_fetched(verifier: OidcVerifier, issuer: Issuer) -> None:
    token = signing_input({"alg": "none", "kid": "rsa-1"}, claims()) + "."

    assert await refused(verifier, token) == "algorithm-not-accepted"
    assert (
        await refused(verifier, signing_input({"kid": "rsa-1"}, claims()) + ".") == "algorithm-not-accepted"
    )
    assert issuer.requests == 0


async def test_hs256_signed_with_the_public_key_is_refused(verifier: OidcVerifier, issuer: Issuer) -> None:
    # The algorithm-confusion attack: a verifier that lets the token pick HS256 would use the issuer's
    # public key (which anyone can read) as the HMAC secret.
    secret = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    message = signing_input({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims())
    signature = hmac.new(secret, message.encode(), hashlib.sha256).digest()

    assert await refused(verifier, f"{message}.{b64(signature)}") == "algorithm-not-accepted"
    assert issuer.requests == 0


async def test_an_hmac_is_refused_even_if_configured(client: httpx.AsyncClient, issuer: Issuer) -> None:
    verifier = OidcVerifier(replace(CONFIG, algorithms=("RS256", "HS256")), client=client)
    token = jwt.encode(claims(), "a-shared-secret-of-32-bytes-or-more!", algorithm="HS256")

    assert await refused(verifier, token) == "algorithm-not-accepted"
    assert issuer.requests == 0


async def test_an_accepted_algorithm_not_configured_is_refused(client: httpx.AsyncClient) -> None:
    verifier = OidcVerifier(replace(CONFIG, algorithms=("ES256",)), client=client)

    assert await refused(verifier, rs256()) == "algorithm-not-accepted"


async def test_a_token_signed_by_a_key_not_in_the_jwks_is_refused(verifier: OidcVerifier) -> None:
    assert await refused(verifier, rs256(key=OTHER_RSA_KEY)) == "bad-signature"


async def test_a_tampered_payload_is_refused(verifier: OidcVerifier) -> None:
    header, _, signature = rs256().split(".")
    forged = b64(json.dumps(claims(scope="admin", il6_sites="*")).encode())

    assert await refused(verifier, f"{header}.{forged}.{signature}") == "bad-signature"


async def test_an_es256_header_over_an_rsa_key_is_refused(verifier: OidcVerifier) -> None:
    assert await refused(verifier, es256(kid="rsa-1")) == "key-mismatch"


async def test_an_rs256_header_over_an_ec_key_is_refused(verifier: OidcVerifier) -> None:
    assert await refused(verifier, rs256(kid="ec-1")) == "key-mismatch"


async def test_a_jwk_naming_another_alg_is_not_used(verifier: OidcVerifier, issuer: Issuer) -> None:
    issuer.keys = [jwk("rsa", "rsa-1", alg="PS256")]

    assert await refused(verifier, rs256()) == "key-mismatch"


async def test_an_ec_key_on_another_curve_is_not_used(verifier: OidcVerifier, issuer: Issuer) -> None:
    p384 = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True)
    issuer.keys = [{**p384, "kid": "ec-1"}]

    assert await refused(verifier, es256()) == "key-mismatch"


async def test_oct_and_encryption_keys_in_the_set_are_never_used(
    verifier: OidcVerifier, issuer: Issuer
) -> None:
    secret = b"a-shared-secret-of-32-bytes-or-more!"
    issuer.keys = [
        {"kty": "oct", "kid": "hmac-1", "k": b64(secret), "alg": "HS256"},
        jwk("rsa", "enc-1", use="enc"),
        jwk("rsa", "rsa-1"),
    ]
    # Signed with the RSA key under the oct key's kid: the oct entry is not a key this service knows.
    assert await refused(verifier, rs256(kid="hmac-1")) == "unknown-signing-key"
    assert await refused(verifier, rs256(kid="enc-1")) == "unknown-signing-key"
    assert (await verifier.verify(rs256())).name == "oidc:redcap-bridge"


async def test_a_malformed_key_in_the_set_is_passed_over(verifier: OidcVerifier, issuer: Issuer) -> None:
    issuer.keys = [{"kty": ["RSA"], "kid": "odd-1"}, {"kty": {"RSA": 1}}, jwk("rsa", "rsa-1")]

    assert (await verifier.verify(rs256())).name == "oidc:redcap-bridge"


async def test_a_jwks_of_only_oct_keys_is_no_jwks(verifier: OidcVerifier, issuer: Issuer) -> None:
    issuer.keys = [{"kty": "oct", "kid": "rsa-1", "k": b64(b"x" * 32)}]

    with pytest.raises(IssuerUnavailable) as caught:
        await verifier.verify(rs256())
    assert caught.value.reason == "no-keys"


async def test_a_private_key_published_by_mistake_is_not_used(verifier: OidcVerifier, issuer: Issuer) -> None:
    private = RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True)
    issuer.keys = [{**private, "kid": "rsa-1"}, jwk("ec", "ec-1")]

    assert await refused(verifier, rs256()) == "unknown-signing-key"


async def test_without_a_kid_the_only_key_is_used(verifier: OidcVerifier, issuer: Issuer) -> None:
    issuer.keys = [jwk("rsa", None)]

    assert (await verifier.verify(rs256(kid=None))).name == "oidc:redcap-bridge"


async def test_without_a_kid_several_keys_are_not_guessed_among(verifier: OidcVerifier) -> None:
    assert await refused(verifier, rs256(kid=None)) == "unknown-signing-key"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "bm90IGpzb24.e30.", "x" * 20_000])
async def test_malformed_tokens_are_refused(verifier: OidcVerifier, token: str) -> None:
    assert await refused(verifier, token) == "malformed-token"


# Unknown kids, caching and the issuer's availability


async def test_an_unknown_kid_refetches_once_per_interval(
    verifier: OidcVerifier, issuer: Issuer, clock: Clock
) -> None:
    await verifier.verify(rs256())
    assert issuer.requests == 1
    clock.now += REFETCH_INTERVAL_S + 1

    assert await refused(verifier, rs256(kid="made-up-1")) == "unknown-signing-key"
    assert issuer.requests == 2
    for number in range(10):
        clock.now += 1
        assert await refused(verifier, rs256(kid=f"made-up-{number + 2}")) == "unknown-signing-key"
    assert issuer.requests == 2

    clock.now += REFETCH_INTERVAL_S
    assert await refused(verifier, rs256(kid="made-up-99")) == "unknown-signing-key"
    assert issuer.requests == 3


async def test_a_rotated_key_is_found_by_refetching(
    verifier: OidcVerifier, issuer: Issuer, clock: Clock
) -> None:
    await verifier.verify(rs256())
    rotated = {**RSAAlgorithm.to_jwk(OTHER_RSA_KEY.public_key(), as_dict=True), "kid": "rsa-2"}
    issuer.keys = [*standard_keys(), rotated]
    clock.now += REFETCH_INTERVAL_S

    principal = await verifier.verify(rs256(kid="rsa-2", key=OTHER_RSA_KEY))

    assert principal.name == "oidc:redcap-bridge"
    assert issuer.requests == 2


async def test_a_failed_refetch_for_an_unknown_kid_keeps_the_cached_keys(
    verifier: OidcVerifier, issuer: Issuer, clock: Clock
) -> None:
    await verifier.verify(rs256())
    issuer.status = 500
    clock.now += REFETCH_INTERVAL_S

    assert await refused(verifier, rs256(kid="rsa-9")) == "unknown-signing-key"
    assert issuer.requests == 2
    assert (await verifier.verify(rs256())).name == "oidc:redcap-bridge"


async def test_the_jwks_is_cached_for_the_configured_time(
    verifier: OidcVerifier, issuer: Issuer, clock: Clock
) -> None:
    await verifier.verify(rs256())
    clock.now += CONFIG.jwks_cache_s - 1
    await verifier.verify(es256())
    assert issuer.requests == 1

    clock.now += 1
    await verifier.verify(rs256())
    assert issuer.requests == 2


async def test_concurrent_first_verifications_share_one_fetch(verifier: OidcVerifier, issuer: Issuer) -> None:
    principals = await asyncio.gather(*(verifier.verify(rs256()) for _ in range(8)))

    assert {principal.name for principal in principals} == {"oidc:redcap-bridge"}
    assert issuer.requests == 1


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, b'{"keys": []}', "bad-status"),
        (404, b"not found", "bad-status"),
        (200, b"<html>secret-page</html>", "not-json"),
        (200, b'{"keys": []}', "no-keys"),
        (200, b'["not", "a", "set"]', "no-keys"),
        (200, b"x" * 300_000, "too-large"),
    ],
)
async def test_an_unusable_jwks_endpoint_makes_the_issuer_unavailable(
    verifier: OidcVerifier, issuer: Issuer, status: int, body: bytes, reason: str
) -> None:
    issuer.status, issuer.body = status, body

    with pytest.raises(IssuerUnavailable) as caught:
        await verifier.verify(rs256())
    assert caught.value.reason == reason
    assert "secret-page" not in str(caught.value)


async def test_an_unreachable_issuer_is_unavailable_and_not_hammered(
    verifier: OidcVerifier, issuer: Issuer, clock: Clock
) -> None:
    issuer.fail = httpx.ConnectError("connection refused")

    with pytest.raises(IssuerUnavailable) as caught:
        await verifier.verify(rs256())
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    with pytest.raises(IssuerUnavailable):
        await verifier.verify(rs256())
    assert issuer.requests == 1

    issuer.fail = None
    clock.now += FAILURE_BACKOFF_S
    assert (await verifier.verify(rs256())).name == "oidc:redcap-bridge"
    assert issuer.requests == 2


# Sites and names


@pytest.mark.parametrize(
    ("sites", "expected"),
    [
        ("*", ALL_SITES),
        (["*"], ALL_SITES),
        (["site-01"], SiteAccess(frozenset({"site-01"}))),
        ("site-01 site_02", SiteAccess(frozenset({"site-01", "site_02"}))),
        ([], SiteAccess(frozenset())),
        (None, SiteAccess(frozenset())),
    ],
)
async def test_the_sites_claim(verifier: OidcVerifier, sites: object, expected: SiteAccess) -> None:
    assert (await verifier.verify(rs256(claims(il6_sites=sites)))).sites == expected


@pytest.mark.parametrize(
    "sites", [["site 01"], ["*", "site-01"], ["site-01\n"], [7], 7, {"site": "01"}, ["-leading-dash"]]
)
async def test_a_malformed_sites_claim_is_refused(verifier: OidcVerifier, sites: object) -> None:
    assert await refused(verifier, rs256(claims(il6_sites=sites))) == "bad-claim"


async def test_the_sites_claim_name_is_configurable(client: httpx.AsyncClient) -> None:
    verifier = OidcVerifier(replace(CONFIG, sites_claim="https://il6/sites"), client=client)
    token = rs256(claims(il6_sites="*", **{"https://il6/sites": ["site-07"]}))

    assert (await verifier.verify(token)).sites == SiteAccess(frozenset({"site-07"}))


async def test_the_name_falls_back_from_client_id_to_azp_to_sub(verifier: OidcVerifier) -> None:
    assert (await verifier.verify(rs256(claims(client_id=None, azp="portal")))).name == "oidc:portal"
    assert (await verifier.verify(rs256(claims(client_id=None)))).name == "oidc:5f1c9a"


@pytest.mark.parametrize(
    "changes",
    [
        {"client_id": "x" * 60},
        {"client_id": "redcap bridge"},
        {"client_id": "bridge\n"},
        {"client_id": 42},
        {"client_id": None, "sub": None},
    ],
)
async def test_a_client_without_a_usable_name_is_refused(
    verifier: OidcVerifier, changes: dict[str, Any]
) -> None:
    assert await refused(verifier, rs256(claims(**changes))) == "unnamed-client"


# Configuration and lifecycle


def test_the_config_comes_from_settings() -> None:
    settings = Settings(
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=JWKS_URL,
        oidc_algorithms=["ES256"],
        oidc_scope_prefix="api://il6/",
        oidc_jwks_cache_s=60,
        oidc_leeway_s=5,
    )

    config = OidcConfig.from_settings(settings)

    assert config == replace(
        CONFIG, algorithms=("ES256",), scope_prefix="api://il6/", jwks_cache_s=60, leeway_s=5
    )
    assert OidcConfig.from_settings(Settings(oidc_issuer=None)) is None


async def test_aclose_closes_only_a_client_it_created(client: httpx.AsyncClient) -> None:
    borrowed = OidcVerifier(CONFIG, client=client)
    await borrowed.aclose()
    assert not client.is_closed

    owning = OidcVerifier(CONFIG)
    await owning.aclose()
    assert owning._client.is_closed
