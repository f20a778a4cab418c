"""SeqPages: paging by seq reads every row once, rows stored under one seq at a page's end included."""

import pytest

from app.store.seq_pages import SeqPages

Row = tuple[int, str]


def read_all(table: list[Row], from_seq: int, batch_size: int, to_seq: int | None = None) -> list[list[Row]]:
    """Every page, as a database would answer ``seq >= start AND seq <= to_seq ORDER BY seq LIMIT limit``
    (rows of one seq in the order they were stored)."""
    pages, read = SeqPages(from_seq, batch_size), []
    while not pages.done:
        answer = [row for row in table if row[0] >= pages.start and (to_seq is None or row[0] <= to_seq)]
        page = pages.take(answer[: pages.limit], lambda row: row[0])
        if page:
            read.append(list(page))
    return read


CHAIN = [(seq, f"r{seq}") for seq in range(1, 8)]
TWICE_STORED = sorted([*CHAIN, (3, "forged-3"), (6, "forged-6"), (6, "forged-6b")])


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 5, 10])
@pytest.mark.parametrize("table", [CHAIN, TWICE_STORED], ids=["chain", "seq-stored-twice"])
def test_every_row_is_read_once_in_seq_order(table: list[Row], batch_size: int) -> None:
    pages = read_all(table, 1, batch_size)

    assert [row for page in pages for row in page] == table
    assert all(0 < len(page) <= batch_size for page in pages)


def test_a_range_starts_and_ends_where_asked() -> None:
    pages = read_all(TWICE_STORED, 3, 2, to_seq=6)

    assert [row for page in pages for row in page] == [row for row in TWICE_STORED if 3 <= row[0] <= 6]


def test_a_range_past_the_end_reads_nothing() -> None:
    assert read_all(CHAIN, 8, 3) == []


def test_a_page_holds_at_least_one_row() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        SeqPages(1, 0)
