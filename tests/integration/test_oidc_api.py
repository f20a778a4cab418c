"""OAuth2/OIDC access tokens end to end through the API, on both backends (RFC 8725, RFC 6750).

The issuer is simulated by keys generated here and a JWKS served over real HTTP on loopback, so the
service fetches, caches and parses the key set exactly as it would from a real identity provider. Every
test builds its own application: the key cache, the metrics and the rate limit start empty.
"""

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine, select

from app.settings import Environment, Settings
from app.store.models import Assessment
from tests.factories import assessment_body, subject_id
from tests.integration.conftest import app_client, bearer, count_rows, key_headers
from tests.jwt_factories import EC_KEY, RSA_KEY, b64, signing_input

ISSUER = "https://issuer.test/"
AUDIENCE = "il6-eligibility"
CLIENT = "lab-bridge"
PROBLEM = "application/problem+json"

STRANGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
"""A key the issuer never published: what a forger signs with."""


def published_keys() -> list[dict[str, Any]]:
    rsa_jwk = RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True)
    return [
        {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
        {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
    ]


# --- the issuer: a JWKS endpoint on loopback ----------------------------------------------------------


@dataclass
class Issuer:
    """The issuer's JWKS endpoint, and how many times it was asked for its keys."""

    keys: list[dict[str, Any]] = field(default_factory=published_keys)
    requests: int = 0
    jwks_url: str = ""
    stop: Callable[[], None] = lambda: None
    """Take the endpoint down: connections to it are refused from then on."""


def handler_for(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/jwks":
                self.send_error(404)
                return
            issuer.requests += 1
            payload = json.dumps({"keys": issuer.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(issuer: Issuer) -> Iterator[Issuer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(issuer))
    thread = threading.Thread(target=server.serve_forever, name="stand-in-issuer", daemon=True)
    thread.start()
    issuer.jwks_url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    issuer.stop = stop
    try:
        yield issuer
    finally:
        stop()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serving(Issuer()) as running:
        yield running


def oidc_settings(database_url: str, issuer: Issuer, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": SecretStr(database_url),
        "environment": Environment.TEST,
        "checkpoint_interval_s": 0,
        "oidc_issuer": ISSUER,
        "oidc_audience": AUDIENCE,
        "oidc_jwks_url": issuer.jwks_url,
    }
    return Settings(**{**values, **changes})


@pytest.fixture
async def api(database_url: str, issuer: Issuer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that accepts the issuer's tokens; by default it sends an admin API key."""
    async for client in app_client(oidc_settings(database_url, issuer)):
        yield client


# --- tokens --------------------------------------------------------------------------------------------


def claims(**changes: Any) -> dict[str, Any]:
    """A client-credentials token's claims; a change to None drops the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "client_id": CLIENT,
        "sub": "svc-7f3a",
        "scope": "assess read",
        "il6_sites": ["PIT"],
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def rs256(payload: dict[str, Any] | None = None, *, kid: str = "rsa-1", key: Any = RSA_KEY) -> str:
    return jwt.encode(claims() if payload is None else payload, key, algorithm="RS256", headers={"kid": kid})


def es256(payload: dict[str, Any] | None = None, *, kid: str = "ec-1") -> str:
    return jwt.encode(
        claims() if payload is None else payload, EC_KEY, algorithm="ES256", headers={"kid": kid}
    )


def unsigned() -> str:
    return (
        signing_input({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims(scope="assess read admin")) + "."
    )


def hs256_over_the_public_key() -> str:
    """The algorithm-confusion attack: an HMAC keyed with the issuer's public key, which anyone can read."""
    secret = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    message = signing_input({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims())
    return f"{message}.{b64(hmac.new(secret, message.encode(), hashlib.sha256).digest())}"


def tampered() -> str:
    header, _, signature = rs256().split(".")
    return f"{header}.{b64(json.dumps(claims(il6_sites='*', scope='admin')).encode())}.{signature}"


def unknown_critical_header() -> str:
    return jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1", "crit": ["x-il6"]})


async def send(
    client: httpx.AsyncClient, method: str, url: str, token: str | None, **kwargs: Any
) -> httpx.Response:
    """A request carrying ``token`` as its bearer credential instead of the client's key (None: none)."""
    request = client.build_request(method, url, **kwargs)
    del request.headers["Authorization"]
    if token is not None:
        request.headers["Authorization"] = f"Bearer {token}"
    return await client.send(request)


async def decide(client: httpx.AsyncClient, token: str | None, site: str = "PIT") -> httpx.Response:
    return await send(client, "POST", "/v1/assessments", token, json=assessment_body(site_id=site))


async def auth_failures(client: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    """il6_auth_failures_total by (stage, reason), read from /metrics with the client's admin key."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.labels["stage"], sample.labels["reason"]): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "il6_auth_failures_total"
    }


def assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == f"/problems/{slug}"
    assert response.json()["status"] == status


def stored_caller(db: Engine, assessment_id: str) -> tuple[str, str | None]:
    query = select(Assessment.client_id, Assessment.site_id).where(Assessment.id == uuid.UUID(assessment_id))
    with db.connect() as connection:
        client_id, site_id = connection.execute(query).one()
    return client_id, site_id


# --- refused tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    token: Callable[[], str | None]
    reason: str
    """The reason code /metrics counts it under."""
    needs_keys: bool = True
    """False: refused before the issuer's keys are even fetched (RFC 8725 2.1: the alg is checked first)."""


REFUSALS = {
    "no token": Refusal(lambda: None, "missing", needs_keys=False),
    "expired": Refusal(lambda: rs256(claims(exp=int(time.time()) - 3600)), "expired"),
    "wrong audience": Refusal(lambda: rs256(claims(aud="another-service")), "wrong-audience"),
    "audience list without ours": Refusal(lambda: rs256(claims(aud=["a", "b"])), "wrong-audience"),
    "wrong issuer": Refusal(lambda: rs256(claims(iss="https://attacker.test/")), "wrong-issuer"),
    "issuer without its trailing slash": Refusal(lambda: rs256(claims(iss=ISSUER[:-1])), "wrong-issuer"),
    "no expiry": Refusal(lambda: rs256(claims(exp=None)), "missing-claim"),
    "alg none": Refusal(unsigned, "algorithm-not-accepted", needs_keys=False),
    "HS256 keyed with the public key": Refusal(
        hs256_over_the_public_key, "algorithm-not-accepted", needs_keys=False
    ),
    "signed by a key not in the JWKS": Refusal(lambda: rs256(key=STRANGER_KEY), "bad-signature"),
    "an unknown kid": Refusal(lambda: rs256(key=STRANGER_KEY, kid="rsa-2"), "unknown-signing-key"),
    "tampered claims": Refusal(tampered, "bad-signature"),
    "ES256 header over the RSA key": Refusal(lambda: es256(kid="rsa-1"), "key-mismatch"),
    "unknown critical header": Refusal(unknown_critical_header, "malformed-token", needs_keys=False),
    "three dots of nothing": Refusal(lambda: "a.b.c", "malformed-token", needs_keys=False),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
async def test_a_refused_token_is_401_without_echo_and_counted_by_reason(
    api: httpx.AsyncClient,
    issuer: Issuer,
    db: Engine,
    caplog: pytest.LogCaptureFixture,
    case: Refusal,
) -> None:
    token = case.token()
    body = assessment_body(subject=subject_id("OIDC"))
    caplog.set_level(logging.DEBUG)

    response = await send(api, "POST", "/v1/assessments", token, json=body)

    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert count_rows(db, body["subject_id"]) == 0
    if token is not None:
        parts = [part for part in token.split(".") if len(part) >= 16]  # a header, claims or signature
        for text in (response.text, str(response.headers), caplog.text):
            assert token not in text
            assert not [part for part in parts if part in text]
    assert (await auth_failures(api)).get(("authentication", case.reason)) == 1
    assert (issuer.requests > 0) is case.needs_keys


async def test_a_flood_of_unknown_kids_is_not_a_flood_of_requests_to_the_issuer(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    assert (await decide(api, rs256())).status_code == 201
    assert issuer.requests == 1

    for number in range(20):
        assert (await decide(api, rs256(kid=f"made-up-{number}"))).status_code == 401

    assert issuer.requests == 1
    assert (await auth_failures(api))[("authentication", "unknown-signing-key")] == 20


# --- accepted tokens: scopes and sites -----------------------------------------------------------------


async def test_a_valid_token_without_the_assess_scope_may_not_decide(
    api: httpx.AsyncClient, db: Engine
) -> None:
    body = assessment_body()

    response = await send(api, "POST", "/v1/assessments", rs256(claims(scope="read openid")), json=body)

    assert_problem(response, 403, "forbidden")
    assert "assess" in response.json()["detail"]
    assert count_rows(db, body["subject_id"]) == 0
    assert (await auth_failures(api)) == {("authorisation", "missing-scope"): 1}


@pytest.mark.parametrize("sign", [rs256, es256], ids=["RS256", "ES256"])
async def test_a_site_token_decides_for_its_site_and_the_record_names_its_client(
    api: httpx.AsyncClient, db: Engine, sign: Callable[[dict[str, Any]], str]
) -> None:
    token = sign(claims(scope="assess read", il6_sites=["PIT"]))

    decided = await decide(api, token, site="PIT")

    assert decided.status_code == 201, decided.text
    assessment_id = decided.json()["id"]
    assert decided.json()["audit"]["client_id"] == f"oidc:{CLIENT}"
    assert stored_caller(db, assessment_id) == (f"oidc:{CLIENT}", "PIT")
    read = await send(api, "GET", f"/v1/assessments/{assessment_id}", token)
    assert read.status_code == 200
    assert read.json()["audit"]["client_id"] == f"oidc:{CLIENT}"


async def test_the_client_is_named_by_azp_or_sub_when_there_is_no_client_id(
    api: httpx.AsyncClient,
) -> None:
    by_azp = await decide(api, rs256(claims(client_id=None, azp="portal")))
    by_sub = await decide(api, rs256(claims(client_id=None)))

    assert by_azp.json()["audit"]["client_id"] == "oidc:portal"
    assert by_sub.json()["audit"]["client_id"] == "oidc:svc-7f3a"


async def test_a_site_token_may_not_decide_for_another_site(api: httpx.AsyncClient, db: Engine) -> None:
    body = assessment_body(site_id="UPMC")

    response = await send(api, "POST", "/v1/assessments", rs256(), json=body)

    assert_problem(response, 403, "forbidden")
    assert count_rows(db, body["subject_id"]) == 0


async def test_a_token_without_a_sites_claim_may_not_decide_for_any_site(api: httpx.AsyncClient) -> None:
    response = await decide(api, rs256(claims(il6_sites=None)), site="PIT")

    assert_problem(response, 403, "forbidden")


async def test_another_sites_decision_reads_as_unknown_and_an_every_site_token_reads_it(
    api: httpx.AsyncClient,
) -> None:
    made = await api.post("/v1/assessments", json=assessment_body(site_id="UPMC"))  # by the admin key
    assert made.status_code == 201, made.text
    upmc = made.json()["id"]

    site_reader = await send(api, "GET", f"/v1/assessments/{upmc}", rs256())
    nothing_there = await send(api, "GET", f"/v1/assessments/{uuid.uuid4()}", rs256())
    every_site = await send(api, "GET", f"/v1/assessments/{upmc}", rs256(claims(scope="read", il6_sites="*")))

    assert_problem(site_reader, 404, "not-found")
    assert site_reader.json() == nothing_there.json()  # another site's decision is indistinguishable
    assert every_site.status_code == 200, every_site.text
    assert every_site.json()["id"] == upmc
    assert every_site.json()["site_id"] == "UPMC"


async def test_the_scope_prefix_selects_this_services_scopes(
    database_url: str, issuer: Issuer, db: Engine
) -> None:
    settings = oidc_settings(database_url, issuer, oidc_scope_prefix="api://il6/")
    prefixed = rs256(claims(scope="openid api://il6/assess api://il6/read api://other/admin"))
    bare = rs256(claims(scope="assess read"))
    async for client in app_client(settings):
        accepted = await decide(client, prefixed)
        unprefixed = await decide(client, bare)
        admin_elsewhere = await send(client, "GET", "/v1/keys", prefixed)

    assert accepted.status_code == 201, accepted.text
    assert stored_caller(db, accepted.json()["id"]) == (f"oidc:{CLIENT}", "PIT")
    assert_problem(unprefixed, 403, "forbidden")
    assert_problem(admin_elsewhere, 403, "forbidden")  # another service's admin scope is not ours


# --- the issuer's availability, and API keys alongside --------------------------------------------------


async def test_an_unreachable_issuer_with_no_cached_keys_is_503_with_retry_after(
    api: httpx.AsyncClient, issuer: Issuer, db: Engine
) -> None:
    issuer.stop()
    token = rs256()
    body = assessment_body()

    response = await send(api, "POST", "/v1/assessments", token, json=body)

    assert_problem(response, 503, "issuer-unavailable")
    assert int(response.headers["retry-after"]) > 0
    assert token not in response.text
    assert count_rows(db, body["subject_id"]) == 0
    assert_problem(await decide(api, unsigned()), 401, "unauthenticated")  # refused without the keys
    assert (await api.get("/v1/keys")).status_code == 200  # API keys do not depend on the issuer


async def test_cached_keys_keep_verifying_while_the_issuer_is_down(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    assert (await decide(api, rs256())).status_code == 201
    issuer.stop()

    assert (await decide(api, es256())).status_code == 201
    assert issuer.requests == 1


async def test_api_keys_keep_working_while_oidc_is_configured(
    api: httpx.AsyncClient, issuer: Issuer, db: Engine
) -> None:
    name = f"tests-{uuid.uuid4().hex[:12]}"
    headers = await key_headers(api, scopes=("assess", "read"), sites=["PIT"], name=name)

    decided = await api.post("/v1/assessments", json=assessment_body(site_id="PIT"), headers=headers)
    other_site = await api.post("/v1/assessments", json=assessment_body(site_id="UPMC"), headers=headers)
    unknown = await api.get("/v1/keys", headers=bearer(f"il6_{'0' * 16}_{'A' * 43}"))

    assert decided.status_code == 201, decided.text
    assert decided.json()["audit"]["client_id"] == name
    assert stored_caller(db, decided.json()["id"]) == (name, "PIT")
    assert_problem(other_site, 403, "forbidden")
    assert_problem(unknown, 401, "unauthenticated")
    assert issuer.requests == 0  # an API key never sends the service to the issuer
    assert (await auth_failures(api))[("authentication", "unknown-key")] == 1


async def test_without_an_issuer_configured_a_token_is_just_an_unknown_credential(
    database_url: str, issuer: Issuer
) -> None:
    settings = Settings(database_url=SecretStr(database_url), environment=Environment.TEST)
    async for client in app_client(settings):
        response = await decide(client, rs256())
        failures = await auth_failures(client)

    assert_problem(response, 401, "unauthenticated")
    assert failures == {("authentication", "malformed-key"): 1}
    assert issuer.requests == 0


async def test_an_api_key_may_not_take_a_name_in_the_oidc_namespace(api: httpx.AsyncClient) -> None:
    by_token = await decide(api, rs256())
    assert by_token.json()["audit"]["client_id"] == f"oidc:{CLIENT}"

    impostor = await api.post(
        "/v1/keys", json={"name": f"oidc:{CLIENT}", "scopes": ["assess"], "sites": ["PIT"]}
    )

    assert_problem(impostor, 422, "validation-error")


# --- settings -------------------------------------------------------------------------------------------


def oidc_values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "oidc_issuer": ISSUER,
        "oidc_audience": AUDIENCE,
        "oidc_jwks_url": "https://issuer.test/jwks",
    }
    return {**values, **changes}


@pytest.mark.parametrize("algorithms", [["HS256"], ["none"], ["RS256", "HS256"], ["rs256"], []])
def test_settings_refuse_algorithms_that_are_not_asymmetric(algorithms: list[str]) -> None:
    with pytest.raises(ValidationError, match="accepted algorithms are"):
        Settings(**oidc_values(oidc_algorithms=algorithms))


def test_settings_refuse_an_issuer_without_an_audience_or_keys() -> None:
    with pytest.raises(ValidationError, match="needs IL6_OIDC_AUDIENCE and IL6_OIDC_JWKS_URL"):
        Settings(**oidc_values(oidc_audience=None))
    with pytest.raises(ValidationError, match="needs IL6_OIDC_AUDIENCE and IL6_OIDC_JWKS_URL"):
        Settings(**oidc_values(oidc_jwks_url=""))


def test_production_fetches_the_issuers_keys_over_https_only() -> None:
    production: dict[str, Any] = {
        "environment": Environment.PRODUCTION,
        "database_url": SecretStr("postgresql+psycopg://il6:a-real-password-7Qx@db.example.org/il6"),
    }

    with pytest.raises(ValidationError, match="https only"):
        Settings(**production, **oidc_values(oidc_jwks_url="http://issuer.test/jwks"))
    accepted = Settings(**production, **oidc_values())  # the same over https validates

    assert accepted.oidc_jwks_url == "https://issuer.test/jwks"
