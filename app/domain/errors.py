"""Errors the domain raises when an input cannot be decided on as given."""

from dataclasses import dataclass


class DomainError(Exception):
    """Base class of every error the clinical rules raise."""


@dataclass(frozen=True)
class InvalidInput(DomainError):
    """An input that is well-formed but names something the rules do not know.

    ``pointer`` is a JSON Pointer into the request (RFC 6901) and ``message`` says what is accepted;
    neither ever repeats the submitted value.
    """

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"
