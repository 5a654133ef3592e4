"""Every figure in one place, drawn on ``matplotlib.figure.Figure`` objects (never pyplot, so a
caller's backend stays as it is): reconstructions, traversals and the OMES relation heat map of an
evaluation (:mod:`.figures`, used by the evaluation, the report and the CLI) and a dataset's
samples and factor traversals (:mod:`.dataset`, used by ``disentkit datasets show``)."""
