"""Where a clinical number or rule comes from."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    citation: str
    url: str | None = None
    quote: str | None = None
