"""Training: the loop (:func:`train`), checkpoints (:mod:`.checkpoint`), logs (:mod:`.logging`).

``train(cfg, out_dir, *, resume=False, overwrite=False, progress=None, dataset=None) -> Path``.
"""

from __future__ import annotations

from disentkit.training.loop import train

__all__ = ["train"]
