"""Errors the domain raises when an input cannot be decided on as given."""


class DomainError(Exception):
    """Base class of every error the clinical rules raise."""


class InvalidInput(DomainError):
    """An input that is well-formed but names something the rules do not know.

    ``pointer`` is a JSON Pointer into the request (RFC 6901) and ``message`` says what is accepted;
    neither ever repeats the submitted value.
    """

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"{pointer}: {message}")
        self.pointer = pointer
        self.message = message
