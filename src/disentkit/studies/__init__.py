"""Packaged studies: ``quick.yaml`` and ``paper.yaml`` (see :mod:`disentkit.experiment.study`).

``disentkit run --preset NAME`` and ``disentkit sweep plan|run NAME`` resolve the same file.
"""
