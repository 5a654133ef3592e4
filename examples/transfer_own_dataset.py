"""Transfer a source model to a dataset of your own: no registration, just the contract.

    python examples/transfer_own_dataset.py            # minutes on a CPU
    python examples/transfer_own_dataset.py --smoke    # seconds (what the test suite runs)

A dataset is a factor space plus a lookup (docs/architecture.md, "Contracts"): say the factors
and their sizes, render a batch of factor tuples as images in [0, 1]. Here: bars of 3 widths at
8 horizontal positions and 4 grey levels. The source trains on Color-dSprites; the transfer
evaluates it zero-shot on the bars, fine-tunes it there and evaluates again (Dapueto et al. 2024,
§4.2). The bars' class path is recorded in the run's config.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import disentkit as dk


class Bars(dk.FactorDataset):
    """Vertical bars on a black 64x64 RGB canvas: width (3), position (8), brightness (4)."""

    name = "bars"
    factor_names = ("width", "position", "brightness")
    factor_sizes = (3, 8, 4)
    image_shape = (3, 64, 64)

    def images(self, factors, rng=None):
        factors = self.check_factors(factors)
        out = np.zeros((len(factors), *self.image_shape), dtype=np.float32)
        for row, (width, position, brightness) in zip(out, factors):
            left = 4 + position * 7
            row[:, 8:56, left:left + 2 + 2 * width] = 0.25 + 0.25 * brightness
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds")
    args = parser.parse_args()
    steps, finetune, batch, n = (8, 4, 8, 160) if args.smoke else (3000, 500, 64, 6000)
    out = Path(args.out or tempfile.mkdtemp())

    run = dk.train(dataset="color-dsprites", method="gvae-labels", steps=steps, batch_size=batch,
                   lr=1e-3, out=out / "source", overwrite=True, progress=False)
    evaluation = dk.EvalSettings(n=n, metrics=("omes", "dci", "downstream"),
                                 downstream_models=("gbt",), backend="fast", figures=False)
    result = dk.transfer(run, target=Bars(), finetune_steps=finetune, out=out / "to-bars",
                         batch_size=batch, evaluation=evaluation)
    for key in ("gbt.mean_test_accuracy", "omes.score", "dci.disentanglement"):
        print(f"{key:24s} before {result.before[key]:.3f}  after {result.after[key]:.3f}")
    print(f"transfer folder: {result.path}")


if __name__ == "__main__":
    main()
