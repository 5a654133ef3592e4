"""The stream of training batches, optionally rendered one batch ahead in a background thread.

Rendering (pairs of dSprites or Shapes3D images) is NumPy work that releases the GIL, so while the
network trains on batch s, batch s+1 can be drawn on another core. Determinism is kept: a single
producer draws the batches in order from the run's one ``np.random.Generator``, exactly as a plain
loop would, and each batch carries the generator state *after* it was drawn, which is what a
checkpoint taken after that batch's step must save for a resumed run to see the same next batch.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import numpy as np

from disentkit.training.checkpoint import numpy_rng_state


def draw_batch(dataset, pairs: bool, n: int, rng: np.random.Generator, k: int) -> dict:
    """One batch as NumPy arrays: ``n`` pairs (weak supervision) or ``n`` single images."""
    if pairs:
        from disentkit.data.pairs import sample_pairs

        p = sample_pairs(dataset, n, rng, k=k)
        return {"x1": p.x1, "x2": p.x2, "changed": p.changed}
    return {"x1": dataset.images(dataset.sample_factors(n, rng), rng)}


def batch_stream(dataset, pairs: bool, n: int, rng: np.random.Generator, k: int, count: int,
                 prefetch: bool = True) -> Iterator[tuple[dict, dict]]:
    """Yield ``count`` pairs (batch arrays, generator state after drawing it)."""
    if not prefetch:
        for _ in range(count):
            arrays = draw_batch(dataset, pairs, n, rng, k)
            yield arrays, numpy_rng_state(rng)
        return
    out: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item) -> bool:
        """Hand ``item`` over unless the consumer has stopped; False when it has."""
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for _ in range(count):
                if not put((draw_batch(dataset, pairs, n, rng, k), numpy_rng_state(rng))):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="disentkit-batches", daemon=True)
    thread.start()
    try:
        for _ in range(count):
            item = out.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
