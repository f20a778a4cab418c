"""Signing keys made for the tests, and JSON Web Tokens built by hand: the attacks RFC 8725 describes
(``alg: none``, HMAC keyed with a public key) cannot be built with PyJWT, which refuses them."""

import base64
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_input(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """A token's header and payload, encoded, as a signature covers them."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
