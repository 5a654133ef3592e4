"""Train a weakly-supervised source, encode a dataset with it, score the codes.

    python examples/train_encode_score.py            # minutes on a CPU
    python examples/train_encode_score.py --smoke    # seconds (what the test suite runs)

The paper's first step (Dapueto et al. 2024, §4.1): a VAE trained on pairs of Color-dSprites
images that differ in one factor (Ada-GVAE), then OMES, DCI and MIG on 15,008 encoded samples,
beside the same network untrained (the floor every number is read against).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import disentkit as dk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="run folder (default: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds")
    args = parser.parse_args()
    steps, batch, n = (8, 8, 160) if args.smoke else (3000, 64, 15008)
    out = Path(args.out or tempfile.mkdtemp()) / "source"

    ds = dk.datasets.get("color-dsprites")          # a torch Dataset: ds[i] -> (image, factors)
    image, factors = ds[0]
    print(f"{ds.name}: {len(ds)} images of shape {tuple(image.shape)}, factors {ds.factor_names}")

    run = dk.train(dataset=ds, method="ada-gvae", steps=steps, batch_size=batch, lr=1e-3,
                   out=out, overwrite=True, progress=False)
    print(f"trained {run.path}: last loss {run.log()[-1]['loss']:.1f}")

    codes = run.encode(ds, n=n)                     # posterior means [n, D] + factor classes
    scores = dk.metrics.compute(codes, metrics=["omes", "dci", "mig"])
    untrained = dk.train(dataset=ds, method="ada-gvae", steps=0, out=out.parent / "untrained",
                         overwrite=True, progress=False)
    floor = dk.metrics.compute(untrained.encode(ds, n=n), metrics=["omes", "dci", "mig"])
    for key in ("omes.score", "dci.disentanglement", "mig.score"):
        print(f"{key:22s} {scores[key]:.3f}   (untrained {floor[key]:.3f})")


if __name__ == "__main__":
    main()
