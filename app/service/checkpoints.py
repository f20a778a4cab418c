"""Signed checkpoints of the audit chain: (sequence number, head hash, time), signed with Ed25519.

Like a Certificate Transparency signed tree head: a checkpoint kept outside the database lets a verifier
catch what the chain alone cannot, an owner who cuts the chain's tail or recomputes the whole chain.
The signed statement is the RFC 8785 serialisation of ``{"log", "seq", "hash", "issued_at", "key_id"}``;
``key_id`` is "ed25519:" + the SHA-256 (hex) of the raw 32-byte public key.
"""

import base64
import binascii
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.domain.audit import Checkpoint, canonical_time

logger = logging.getLogger(__name__)

LOG_NAME = "il6-eligibility-audit"
_HEX64 = frozenset("0123456789abcdef")


class InvalidCheckpoint(ValueError):
    """A checkpoint that is malformed, or whose signature does not verify under the trusted key."""


class SigningKeyMissing(Exception):
    """No signing key where the settings say, and this environment may not create one."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64 (what ``--public-key`` accepts besides PEM)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo) or base64 of the raw 32 bytes."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                raise InvalidCheckpoint("the public key is not an Ed25519 key")
            return key
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as error:
        raise InvalidCheckpoint("not an Ed25519 public key (PEM or base64 of 32 bytes)") from error


@dataclass(frozen=True)
class SignedCheckpoint:
    seq: int
    hash: str
    issued_at: str
    key_id: str
    signature: str

    def statement(self) -> dict[str, Any]:
        return {
            "log": LOG_NAME,
            "seq": self.seq,
            "hash": self.hash,
            "issued_at": self.issued_at,
            "key_id": self.key_id,
        }

    def document(self) -> dict[str, Any]:
        return {**self.statement(), "signature": self.signature}

    @property
    def link(self) -> Checkpoint:
        return Checkpoint(self.seq, self.hash)

    @classmethod
    def from_document(cls, document: Any) -> "SignedCheckpoint":
        """Read a checkpoint as published; checks its form, not yet its signature."""
        if not isinstance(document, dict) or document.get("log") != LOG_NAME:
            raise InvalidCheckpoint(f"not a checkpoint of {LOG_NAME}")
        seq, hash_ = document.get("seq"), document.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise InvalidCheckpoint("a checkpoint's seq is a non-negative integer")
        if not isinstance(hash_, str) or len(hash_) != 64 or not set(hash_) <= _HEX64:
            raise InvalidCheckpoint("a checkpoint's hash is 64 lowercase hex digits")
        fields = [document.get(name) for name in ("issued_at", "key_id", "signature")]
        if not all(isinstance(field, str) for field in fields):
            raise InvalidCheckpoint("a checkpoint names issued_at, key_id and signature as strings")
        issued_at, kid, signature = (str(field) for field in fields)
        return cls(seq, hash_, issued_at, kid, signature)

    def verify(self, public_key: Ed25519PublicKey) -> None:
        if self.key_id != key_id(public_key):
            raise InvalidCheckpoint(f"checkpoint at seq {self.seq} was signed by another key ({self.key_id})")
        try:
            public_key.verify(
                base64.b64decode(self.signature, validate=True), rfc8785.dumps(self.statement())
            )
        except (InvalidSignature, ValueError, binascii.Error):
            raise InvalidCheckpoint(f"checkpoint at seq {self.seq} has an invalid signature") from None


class CheckpointSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, seq: int, head_hash: str, issued_at: datetime) -> SignedCheckpoint:
        unsigned = SignedCheckpoint(seq, head_hash, canonical_time(issued_at), self.key_id, "")
        signature = self._private_key.sign(rfc8785.dumps(unsigned.statement()))
        return SignedCheckpoint(
            seq, head_hash, unsigned.issued_at, self.key_id, base64.b64encode(signature).decode("ascii")
        )


def generate_signing_key(path: Path) -> Ed25519PrivateKey:
    """Write a new Ed25519 key, readable by its owner only; FileExistsError rather than overwrite one.

    The key is written whole to a private temporary file and then linked into place, so a process
    starting at the same moment finds either no key or a complete one.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # A private file of a unique name (mkstemp: O_EXCL, mode 0600), so that processes starting together,
    # even with the same pid in different containers, never write into one another's.
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return key


def load_signing_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    if not path.exists():
        if not create:
            raise SigningKeyMissing(
                f"no audit signing key at {path}: create one with `il6 audit keygen --output {path}`"
            )
        try:
            key = generate_signing_key(path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            logger.warning("created an audit signing key at %s (key id %s)", path, key_id(key.public_key()))
            return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SigningKeyMissing(f"{path} does not hold an Ed25519 private key")
    return loaded


def last_signed(path: Path | None, signer: CheckpointSigner) -> SignedCheckpoint | None:
    """The last checkpoint in a checkpoint log that this signer's key signed; None when there is none."""
    if path is None or not path.is_file():
        return None
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        try:
            checkpoint = SignedCheckpoint.from_document(json.loads(line))
            checkpoint.verify(signer.public_key)
        except (ValueError, InvalidCheckpoint):
            continue  # another key's, or not a checkpoint: not ours to build on
        return checkpoint
    return None
