"""The batch's 200 answer, assembled from its items' JSON, is the very JSON pydantic writes for BatchOut."""

import pytest
from fastapi import Response
from pydantic import TypeAdapter

from app.api.routers.batch import BatchItemOut, BatchOut, _answer


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7])
def test_the_answer_splices_each_item_in_once_with_the_counts_around_them(count: int) -> None:
    items = [
        BatchItemOut(index=index, status=422, problem={"title": f"item {index}", "status": 422})
        for index in range(count)
    ]
    counts = BatchOut(created=0, failed=count, not_attempted=0, items=[])
    sent = Response()  # as FastAPI hands a route its Response: headers only
    del sent.headers["content-length"]
    sent.headers["Retry-After"] = "5"

    answer = _answer(counts, [TypeAdapter(BatchItemOut).dump_json(item) for item in items], sent)

    whole = BatchOut(created=0, failed=count, not_attempted=0, items=items)
    assert answer.body == TypeAdapter(BatchOut).dump_json(whole)
    assert answer.headers["retry-after"] == "5"
    assert answer.headers.getlist("content-length") == [str(len(answer.body))]
