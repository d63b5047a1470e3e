"""Micro-batching: score the rows of requests that arrive together in one model call.

One call of a scikit-learn pipeline costs several milliseconds however few rows it gets
(most of it is ``ColumnTransformer`` bookkeeping), so a server that calls the model once
per single-row request spends its time on overhead. The batcher queues each request's
validated :class:`~mlkit.serving.schema.Batch`; a single task takes everything that is
waiting (up to ``max_rows`` rows), concatenates the columns, calls the model once and
hands each request its own slice of the predictions. Nothing waits on a timer: while one
call runs, the requests that arrive meanwhile queue up and form the next batch, so a
quiet server still answers each request straight away.

Requests with ``params`` are scored alone. If a merged call fails, each request of that
batch is scored on its own, so one bad request fails alone and the others are answered.

With ``with_scores`` (a server that logs), the model call returns the predictions and a
score per row (or None), and each request gets its own slice of both.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import numpy as np

from mlkit.serving.schema import Batch

__all__ = ["MicroBatcher"]

log = logging.getLogger("mlkit.serving")


class MicroBatcher:
    """Merge concurrent requests into one ``predict`` call (see the module docstring).

    Parameters
    ----------
    predict
        The model's batch predict: a :class:`Batch` in, one prediction per row out.
    max_rows
        The most rows merged into one call; a request larger than this is scored alone.
    on_batch
        Called with the number of requests merged into each call (for metrics).
    with_scores
        ``predict`` returns ``(predictions, scores or None)``, and :meth:`predict` returns
        ``(predictions, scores or None)`` as lists.
    """

    def __init__(self, predict: Callable[[Batch], Any], max_rows: int = 256,
                 on_batch: Callable[[int], None] | None = None, with_scores: bool = False) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}.")
        self._predict, self.max_rows, self._on_batch = predict, max_rows, on_batch
        self.with_scores = with_scores
        self._queue: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    async def predict(self, batch: Batch) -> Any:
        """The predictions for ``batch``, as plain Python values (JSON-ready); with scores, ``(predictions, scores)``."""
        if batch.params or batch.n >= self.max_rows:
            return self._score_alone(batch)
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            # first request, or a new event loop (a test client starts one per client)
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue), name="mlkit-micro-batcher")
        future = loop.create_future()
        self._queue.put_nowait((batch, future))
        return await future

    def _call(self, batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        """One model call: the predictions, and the scores (None without scores)."""
        if self.with_scores:
            predictions, scores = self._predict(batch)
            return np.asarray(predictions), None if scores is None else np.asarray(scores)
        return np.asarray(self._predict(batch)), None

    def _result(self, predictions: np.ndarray, scores: np.ndarray | None) -> Any:
        if self.with_scores:
            return predictions.tolist(), None if scores is None else scores.tolist()
        return predictions.tolist()

    def _score_alone(self, batch: Batch) -> Any:
        if self._on_batch:
            self._on_batch(1)
        return self._result(*self._call(batch))

    async def _run(self, queue: asyncio.Queue) -> None:
        carry = None  # a request that did not fit in the previous call: it starts the next one
        while True:
            items = [carry if carry is not None else await queue.get()]
            carry = None
            await asyncio.sleep(0)  # let requests already read in this turn of the loop queue up too
            rows = items[0][0].n
            while not queue.empty():
                item = queue.get_nowait()
                if rows + item[0].n > self.max_rows:
                    carry = item
                    break
                items.append(item)
                rows += item[0].n
            self._score(items, rows)

    def _score(self, items: list[tuple[Batch, asyncio.Future]], rows: int) -> None:
        if len(items) == 1:
            batch, future = items[0]
            self._settle(future, batch)
            return
        try:
            first = items[0][0]
            merged = Batch({c: np.concatenate([b.columns[c] for b, _ in items]) for c in first.columns}, rows)
            predictions, scores = self._call(merged)
            if len(predictions) != rows or (scores is not None and len(scores) != rows):
                raise RuntimeError(f"the model returned {len(predictions)} predictions for {rows} rows")
        except Exception:  # score one by one, so a failing request fails alone
            log.debug("a merged batch of %d requests failed; scoring them one by one", len(items), exc_info=True)
            for batch, future in items:
                self._settle(future, batch)
            return
        if self._on_batch:
            self._on_batch(len(items))
        start = 0
        for batch, future in items:
            if not future.done():  # the client may have gone away
                end = start + batch.n
                future.set_result(self._result(predictions[start:end], None if scores is None else scores[start:end]))
            start += batch.n

    def _settle(self, future: asyncio.Future, batch: Batch) -> None:
        if future.done():
            return
        try:
            future.set_result(self._score_alone(batch))
        except Exception as exc:  # handed to the request's own handler, which answers 500 without details
            future.set_exception(exc)
