"""Micro-batching: merged calls give each request exactly its own predictions, and a bad one fails alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mlkit.serving.batching import MicroBatcher
from mlkit.serving.schema import Batch


def _batch(values, params=None) -> Batch:
    values = np.asarray(values, dtype=float)
    return Batch({"x": values, "y": -values}, len(values), params or {})


class Model:
    """Predicts x * 10 + y (= 9x) row by row, records each call's size, and refuses x == 666."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, batch: Batch) -> np.ndarray:
        self.calls.append(batch.n)
        if (batch.columns["x"] == 666).any():
            raise ValueError("the model cannot score this row")
        return batch.columns["x"] * 10 + batch.columns["y"]


async def _gather(batcher: MicroBatcher, batches) -> list:
    async def one(b):
        await asyncio.sleep(0)  # arrive together, as requests read in one turn of the event loop
        return await batcher.predict(b)

    return await asyncio.gather(*(one(b) for b in batches), return_exceptions=True)


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows():
    model, sizes = Model(), []
    batcher = MicroBatcher(model, max_rows=256, on_batch=sizes.append)
    batches = [_batch([i]) if i % 3 else _batch([i, i + 0.5]) for i in range(60)]
    results = asyncio.run(_gather(batcher, batches))
    for b, got in zip(batches, results):
        assert got == (b.columns["x"] * 9).tolist()
    assert len(model.calls) < 10, model.calls  # 60 requests, a handful of model calls
    assert sum(model.calls) == sum(b.n for b in batches)
    assert sum(sizes) == 60 and max(sizes) > 1


def test_max_rows_bounds_every_call():
    model = Model()
    batcher = MicroBatcher(model, max_rows=7)
    results = asyncio.run(_gather(batcher, [_batch([i, i, i]) for i in range(20)]))
    assert results == [[9.0 * i] * 3 for i in range(20)]
    assert max(model.calls) <= 7 and sum(model.calls) == 60


def test_a_failing_request_fails_alone():
    model = Model()
    batcher = MicroBatcher(model)
    batches = [_batch([1]), _batch([2]), _batch([666]), _batch([4])]
    results = asyncio.run(_gather(batcher, batches))
    assert results[0] == [9.0] and results[1] == [18.0] and results[3] == [36.0]
    assert isinstance(results[2], ValueError)


def test_requests_with_params_and_large_requests_are_scored_alone():
    model = Model()
    batcher = MicroBatcher(model, max_rows=4)
    batches = [_batch([1], params={"threshold": 0.3}), _batch([1, 2, 3, 4, 5]), _batch([2]), _batch([3])]
    results = asyncio.run(_gather(batcher, batches))
    assert results == [[9.0], [9.0, 18.0, 27.0, 36.0, 45.0], [18.0], [27.0]]
    assert sorted(model.calls) == [1, 2, 5]  # the params request and the 5-row one alone; the two others merged


def test_a_new_event_loop_gets_a_working_batcher():
    """A test client starts an event loop per client; the batcher must follow it, not hang."""
    model = Model()
    batcher = MicroBatcher(model)
    assert asyncio.run(_gather(batcher, [_batch([1])])) == [[9.0]]
    assert asyncio.run(_gather(batcher, [_batch([2]), _batch([3])])) == [[18.0], [27.0]]


def test_max_rows_must_be_positive():
    with pytest.raises(ValueError, match="max_rows must be at least 1"):
        MicroBatcher(Model(), max_rows=0)


@pytest.mark.parametrize("name", ["H11NoDelay", "HttpToolsNoDelay"])
def test_server_protocols_turn_nagle_off(name):
    """With Nagle on, each answer's body waits ~40 ms for the client's delayed ACK (uvicorn #3149)."""
    import socket

    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from mlkit.serving import protocol

    cls = getattr(protocol, name)
    assert cls is not None, f"{name} needs its parser installed (the serving extra)"

    class Transport:
        def __init__(self, sock):
            self.sock = sock

        def get_extra_info(self, key, default=None):
            return self.sock if key == "socket" else default

        def is_closing(self):
            return False

    async def connect(sock):
        config = Config(app=None, http=cls)
        config.load()
        cls(config=config, server_state=ServerState(), app_state={}).connection_made(Transport(sock))

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        asyncio.run(connect(sock))
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert protocol.best() is protocol.HttpToolsNoDelay


def test_with_scores_each_request_gets_its_own_scores():
    model = Model()

    def scored(batch):
        return model(batch), batch.columns["x"] / 100

    batcher = MicroBatcher(scored, max_rows=5, with_scores=True)
    batches = [_batch([i]) if i % 3 else _batch([i, i + 0.5]) for i in range(12)] + [_batch([1, 2, 3, 4, 5, 6])]
    results = asyncio.run(_gather(batcher, batches))
    for b, (predictions, scores) in zip(batches, results):
        assert predictions == (b.columns["x"] * 9).tolist() and scores == (b.columns["x"] / 100).tolist()
    assert len(model.calls) < len(batches)
    no_scores = MicroBatcher(lambda batch: (model(batch), None), with_scores=True)
    assert asyncio.run(_gather(no_scores, [_batch([1]), _batch([2])])) == [([9.0], None), ([18.0], None)]
