"""Errors the use cases surface to their callers."""

from app.store.repositories import AppendConflict
from app.store.unit_of_work import StoreUnavailable

__all__ = ["AppendConflict", "StoreUnavailable"]
