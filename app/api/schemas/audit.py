"""Bodies of /v1/audit: chain verification reports and signed checkpoints."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain.audit import Break, Verification
from app.service.checkpoints import LOG_NAME, SignedCheckpoint

Hash = Field(pattern=r"^[0-9a-f]{64}$")


class BrokenLinkOut(BaseModel):
    seq: int = Field(description="The sequence number where the chain first fails to verify.")
    reason: Break
    explanation: str
    expected: str | None
    found: str | None


class VerificationOut(BaseModel):
    """The outcome of checking the audit chain record by record."""

    intact: bool = Field(description="True when every record checked links and hashes as stored.")
    checked: int = Field(description="How many records verified before the end or the first break.")
    first_seq: int | None
    last_seq: int | None = Field(description="The last record that verified.")
    last_hash: str | None
    checkpoints_checked: int = Field(
        description="Signed checkpoints inside the checked range that the chain was compared with."
    )
    broken: BrokenLinkOut | None

    @classmethod
    def from_verification(cls, verification: Verification) -> "VerificationOut":
        broken = verification.broken
        return cls(
            intact=verification.intact,
            checked=verification.checked,
            first_seq=verification.first_seq,
            last_seq=verification.last_seq,
            last_hash=verification.last_hash,
            checkpoints_checked=verification.checkpoints,
            broken=None
            if broken is None
            else BrokenLinkOut(
                seq=broken.seq,
                reason=broken.reason,
                explanation=broken.explanation,
                expected=broken.expected,
                found=broken.found,
            ),
        )


class CheckpointIn(BaseModel):
    """A checkpoint as GET /v1/audit/checkpoint published it (public_key may be left out)."""

    model_config = ConfigDict(extra="ignore")

    log: Literal["il6-eligibility-audit"]
    seq: int = Field(ge=0)
    hash: str = Hash
    issued_at: str = Field(max_length=40)
    key_id: str = Field(max_length=80)
    signature: str = Field(max_length=200)

    def to_signed(self) -> SignedCheckpoint:
        return SignedCheckpoint(self.seq, self.hash, self.issued_at, self.key_id, self.signature)


class CheckpointOut(BaseModel):
    """The chain head, signed with the service's Ed25519 key over the RFC 8785 form of the first five
    fields. Keep it outside the database: verifying against it later shows a cut tail or a rewritten
    chain."""

    log: str = Field(LOG_NAME, description="Names the audit log the checkpoint is of.")
    seq: int = Field(description="The head's sequence number (0 for an empty chain).")
    hash: str = Field(description="The head's hash (64 zeros for an empty chain).")
    issued_at: str = Field(
        description="The database's time when the head was read: RFC 3339 UTC, exactly as signed."
    )
    key_id: str = Field(description="'ed25519:' + SHA-256 of the raw public key.")
    signature: str = Field(description="Base64 Ed25519 signature.")
    public_key: str = Field(description="The signing key (raw 32 bytes, base64); not signed itself.")

    @classmethod
    def from_signed(cls, checkpoint: SignedCheckpoint, signer_public_key: str) -> "CheckpointOut":
        return cls.model_validate({**checkpoint.document(), "public_key": signer_public_key})


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_seq: int = Field(1, ge=1, le=2**63 - 1)
    to_seq: int | None = Field(None, ge=1, le=2**63 - 1)
    checkpoints: list[CheckpointIn] = Field(
        default_factory=list, max_length=1000, description="Checkpoints kept earlier, to compare with."
    )
