"""One experiment schema and one engine (issue 12): a study describes sources, transfers,
evaluation and execution (:mod:`disentkit.experiment.study`); :mod:`disentkit.experiment.stages`
runs one planned run; :mod:`disentkit.experiment.engine` runs a whole study on an executor and
builds the report. A preset is a packaged study."""
