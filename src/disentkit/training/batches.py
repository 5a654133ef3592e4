"""The stream of training batches, optionally rendered one batch ahead in a background thread.

Rendering (pairs of dSprites or Shapes3D images) is NumPy work that releases the GIL, so while the
network trains on batch s, batch s+1 can be drawn on another core. Determinism is kept: a single
producer draws the batches in order from the run's one ``np.random.Generator``, exactly as a plain
loop would, and each batch carries the generator state *after* it was drawn, which is what a
checkpoint taken after that batch's step must save for a resumed run to see the same next batch.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Iterator

import numpy as np

from disentkit.errors import DisentkitError
from disentkit.training.checkpoint import numpy_rng_state

log = logging.getLogger(__name__)

#: seconds without a batch before the stream gives up (drawing one takes milliseconds to seconds)
STALL_S = 300.0
POLL_S = 0.25


class BatchStreamError(DisentkitError):
    """The background thread that draws training batches died or stalled."""


def draw_batch(dataset, pairs: bool, n: int, rng: np.random.Generator, k: int) -> dict:
    """One batch as NumPy arrays: ``n`` pairs (weak supervision) or ``n`` single images."""
    return render(dataset, draw_factors(dataset, pairs, n, rng, k), rng)


def draw_factors(dataset, pairs: bool, n: int, rng: np.random.Generator, k: int) -> dict:
    """The factor part of :func:`draw_batch`: every draw it makes from ``rng`` before rendering
    (all of them, for a dataset whose images draw nothing: ``thread_safe_images``)."""
    if pairs:
        from disentkit.data.pairs import sample_pair_factors

        f1, f2, changed = sample_pair_factors(dataset, n, rng, k)
        return {"factors": np.concatenate([f1, f2]), "changed": changed}
    return {"factors": dataset.sample_factors(n, rng)}


def render(dataset, drawn: dict, rng: np.random.Generator | None = None) -> dict:
    """The image part of :func:`draw_batch` for factors from :func:`draw_factors`; ``rng`` draws
    the images' nuisances (noise, crops), as :func:`disentkit.data.pairs.sample_pairs` does."""
    images = dataset.images(drawn["factors"], rng)
    if "changed" not in drawn:
        return {"x1": images}
    n = len(drawn["changed"])
    return {"x1": images[:n], "x2": images[n:], "changed": drawn["changed"]}


def batch_stream(dataset, pairs: bool, n: int, rng: np.random.Generator, k: int, count: int,
                 prefetch: bool = True, stall_s: float = STALL_S,
                 workers: int = 1) -> Iterator[tuple[dict, dict]]:
    """Yield ``count`` pairs (batch arrays, generator state after drawing it).

    With ``prefetch`` a producer thread draws ahead; its exception is re-raised here, and a
    producer that dies or delivers nothing for ``stall_s`` seconds raises :class:`BatchStreamError`.
    ``workers`` > 1 on a dataset with ``thread_safe_images`` (the real ones, whose augmentation
    is the costly part) renders up to ``workers`` batches at once in a thread pool, while the
    producer alone draws the factors from ``rng`` in order: the batches and generator states
    are exactly those of one thread (a test checks it), only sooner.
    """
    if not prefetch:
        for _ in range(count):
            arrays = draw_batch(dataset, pairs, n, rng, k)
            yield arrays, numpy_rng_state(rng)
        return
    if workers > 1 and getattr(dataset, "thread_safe_images", False):
        yield from _parallel_stream(dataset, pairs, n, rng, k, count, stall_s, workers)
        return
    yield from _prefetch_stream(lambda: draw_batch(dataset, pairs, n, rng, k), rng, count,
                                stall_s, ahead=1)


def _parallel_stream(dataset, pairs, n, rng, k, count, stall_s, workers):
    """The factors drawn by the producer in order, the images by a pool of ``workers``."""
    from concurrent import futures

    with futures.ThreadPoolExecutor(workers, thread_name_prefix="disentkit-render") as pool:
        def make():
            return pool.submit(render, dataset, draw_factors(dataset, pairs, n, rng, k))

        inner = _prefetch_stream(make, rng, count, stall_s, ahead=workers)
        try:
            for future, state in inner:
                try:
                    arrays = future.result(timeout=stall_s)
                except futures.TimeoutError:  # not the builtin before Python 3.11
                    raise BatchStreamError(f"rendering a training batch took over {stall_s:.0f} s "
                                           "(run with --set run.data_workers=1 to see where)") from None
                yield arrays, state
        finally:
            inner.close()  # the producer stops submitting first
            pool.shutdown(wait=True, cancel_futures=True)


def _prefetch_stream(make, rng: np.random.Generator, count: int, stall_s: float, ahead: int):
    """Yield ``(make(), rng state after it)`` ``count`` times, made by a producer thread that
    runs up to ``ahead`` items in front of the consumer."""
    out: queue.Queue = queue.Queue(maxsize=ahead)
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
                if not put((make(), numpy_rng_state(rng))):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="disentkit-batches", daemon=True)
    thread.start()
    stalled = False
    try:
        for _ in range(count):
            try:
                item = _next(out, thread, stall_s)
            except BatchStreamError:
                stalled = True
                raise
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=1.0 if stalled else None)  # a stuck daemon thread is abandoned


def _next(out: queue.Queue, thread: threading.Thread, stall_s: float):
    """The next item of ``out``; an error when its producer died silently or has not delivered
    for ``stall_s`` seconds, so the main thread never waits without a word."""
    waited = 0.0
    while True:
        try:
            return out.get(timeout=POLL_S)
        except queue.Empty:
            waited += POLL_S
        if not thread.is_alive() and out.empty():
            raise BatchStreamError("the batch thread ended without delivering a batch")
        if waited >= stall_s:
            raise BatchStreamError(f"no training batch arrived for {stall_s:.0f} s: drawing a "
                                   "batch is stuck (run with --set run.prefetch=false to see where)")
        if waited % 30 < POLL_S:
            log.warning("waiting %.0f s for the next training batch", waited)
