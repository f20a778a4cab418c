"""Reading the audit trail a page at a time by sequence number, every row of it.

Paging with ``seq > last`` would pass over a second row stored under the last seq of a page: such a row
cannot be stored while the constraints stand, but an owner can drop them (docs/audit.md), and the chain
check must then see both rows to report them. So each page starts at the previous page's last seq again
(``seq >= start``) and passes over as many rows of that seq as were read already.
"""

from collections.abc import Callable, Sequence
from typing import TypeVar

Row = TypeVar("Row")


class SeqPages:
    """The bounds of each page (``start``, ``limit``) and the rows of each page not read before (``take``)."""

    def __init__(self, from_seq: int, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError("a page holds at least one row")
        self.start = from_seq
        """The first seq of the next page: ``seq >= start``."""
        self._batch_size = batch_size
        self._read_at_start = 0
        self.done = False
        """Whether the last page was the trail's (or the range's) end."""

    @property
    def limit(self) -> int:
        """The rows to ask for: a page's worth beyond those of ``start`` read already."""
        return self._batch_size + self._read_at_start

    def take(self, rows: Sequence[Row], seq_of: Callable[[Row], int]) -> Sequence[Row]:
        """The rows of a page (``seq >= start``, in seq order, at most ``limit``) not read before."""
        skipped = 0
        while skipped < min(self._read_at_start, len(rows)) and seq_of(rows[skipped]) == self.start:
            skipped += 1
        fresh = rows[skipped:]
        if len(rows) < self.limit or not fresh:
            self.done = True
        if fresh:
            last = seq_of(rows[-1])
            at_last = 0
            for row in reversed(rows):
                if seq_of(row) != last:
                    break
                at_last += 1
            self.start, self._read_at_start = last, at_last
        return fresh
