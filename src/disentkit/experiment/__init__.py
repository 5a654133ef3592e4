"""One experiment schema and one engine (issue 12): a study describes sources, transfers,
evaluation and execution (:mod:`disentkit.experiment.study`), planned into runs with stable ids
and, optionally, ensembles (:mod:`disentkit.experiment.runs`); :mod:`disentkit.experiment.stages`
runs one planned run (an ensemble's leader trains its group, :mod:`disentkit.experiment.ensembles`);
:mod:`disentkit.experiment.engine` runs a whole study on an executor and builds the report. A
preset is a packaged study."""
