"""Domain errors raised by deciders when a command breaks a business rule.

`code` is a stable, machine-readable identifier (part of the public API);
`kind` tells the gateway which HTTP status to answer with.
"""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal["conflict", "invalid", "not_found", "forbidden"]


class DomainError(Exception):
    """A command was rejected by a business rule."""

    code: str
    message: str
    kind: ErrorKind

    def __init__(self, code: str, message: str, kind: ErrorKind) -> None:
        # Passing every init argument to Exception keeps the error picklable.
        super().__init__(code, message, kind)
        self.code = code
        self.message = message
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @classmethod
    def conflict(cls, code: str, message: str) -> DomainError:
        return cls(code, message, "conflict")

    @classmethod
    def invalid(cls, code: str, message: str) -> DomainError:
        return cls(code, message, "invalid")

    @classmethod
    def not_found(cls, code: str, message: str) -> DomainError:
        return cls(code, message, "not_found")

    @classmethod
    def forbidden(cls, code: str, message: str) -> DomainError:
        return cls(code, message, "forbidden")
