"""Sweeps: a study file → many runs (sources and transfers), executed on a local process pool
or a Slurm cluster, resumable, and aggregated with uncertainty (see ``study``, ``local``,
``slurm``, ``aggregate``). Nothing is imported here: submitit and torch load only when used."""
