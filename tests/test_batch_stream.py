"""The training batch stream: parallel rendering of real datasets (``run.data_workers``) gives
exactly the batches and generator states of one thread, and is used only where it is safe."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from disentkit.data.base import FactorDataset
from disentkit.data.views import CombinationSubset
from disentkit.training.batches import batch_stream


class Grid(FactorDataset):
    """Images that are a pure function of the factors; some take longer, so that parallel
    renders finish out of order. Records the threads that rendered."""

    name = "grid"
    factor_names = ("a", "b", "c")
    factor_sizes = (5, 4, 3)
    image_shape = (1, 8, 8)
    thread_safe_images = True

    def __init__(self, fail_at: int | None = None):
        self.threads: set[str] = set()
        self.calls, self.fail_at = 0, fail_at
        self.lock = threading.Lock()

    def images(self, factors, rng=None):
        f = self.check_factors(factors)
        with self.lock:
            self.threads.add(threading.current_thread().name)
            self.calls += 1
            if self.fail_at is not None and self.calls >= self.fail_at:
                raise ValueError("broken image file")
        time.sleep(0.02 if int(f.sum()) % 2 else 0.0)
        out = np.zeros((len(f), 1, 8, 8), np.float32)
        out[:, 0, 0, :3] = f / 5.0
        return out


class Unsafe(Grid):
    thread_safe_images = False


def _take(stream):
    return [(arrays, state) for arrays, state in stream]


@pytest.mark.parametrize("pairs", [True, False])
def test_parallel_rendering_yields_the_one_thread_batches_and_states(pairs):
    one = _take(batch_stream(Grid(), pairs, 6, np.random.default_rng(3), 1, count=7))
    ds = Grid()
    many = _take(batch_stream(ds, pairs, 6, np.random.default_rng(3), 1, count=7, workers=3))
    assert len(one) == len(many) == 7
    for (a, sa), (b, sb) in zip(one, many):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        assert sa == sb
    assert any(name.startswith("disentkit-render") for name in ds.threads)


def test_only_datasets_that_declare_thread_safe_images_render_in_parallel():
    unsafe = Unsafe()
    _take(batch_stream(unsafe, True, 4, np.random.default_rng(0), 1, count=3, workers=4))
    assert unsafe.threads == {"disentkit-batches"}  # the one producer thread
    view = CombinationSubset(Grid(), "train", 0.25, 0)
    assert view.thread_safe_images and not CombinationSubset(Unsafe(), "train", 0.25, 0).thread_safe_images


def test_a_render_error_reaches_the_training_loop():
    with pytest.raises(ValueError, match="broken image file"):
        _take(batch_stream(Grid(fail_at=3), True, 4, np.random.default_rng(0), 1, count=6,
                           workers=2))
