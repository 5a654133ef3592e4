"""Checkpoints that resume exactly and load without unpickling (docs/architecture.md, "Contracts", run folder).

One file, ``RUN/checkpoint/checkpoint.safetensors``, written atomically (temporary name, then
rename), so a run killed at any moment keeps its previous checkpoint intact. It holds:

* tensors ``model/<name>``: the network's ``state_dict`` (weights and BatchNorm buffers);
* tensors ``optim/<param index>/<key>``: the optimiser's per-parameter state (Adam's moments and
  step counters), with its ``param_groups`` as JSON metadata;
* tensor ``rng/torch``: the state of the torch generator that draws the reparameterisation noise;
* metadata (JSON strings): format tag, step, the NumPy bit-generator state of the data stream,
  the network's description (arch, channels, latent size) and the resolved device and precision.

Only tensors and JSON are read back, never pickles, so a checkpoint from an untrusted source
cannot execute code. Anything unreadable raises :class:`CheckpointError` with the path and reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from disentkit.errors import DisentkitError
from disentkit.io import atomic_path

FORMAT = "disentkit-checkpoint/1"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "checkpoint.safetensors"


class CheckpointError(DisentkitError):
    """A checkpoint or run folder is missing, corrupt, or not written by disentkit."""


@dataclass
class TrainingState:
    """Everything needed to continue a run bit for bit."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    torch_rng: torch.Tensor | None = None
    numpy_rng: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / CHECKPOINT_FILE


def save_checkpoint(run_dir: str | Path, state: TrainingState) -> Path:
    """Write ``state`` atomically to ``run_dir/checkpoint/checkpoint.safetensors``."""
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in state.model.items()}
    meta = {"format": FORMAT, "step": str(int(state.step)), "info": json.dumps(state.info)}
    if state.optimizer is not None:
        opt_tensors, opt_meta = _flatten_optimizer(state.optimizer)
        tensors.update(opt_tensors)
        meta["optimizer"] = json.dumps(opt_meta)
    if state.torch_rng is not None:
        tensors["rng/torch"] = state.torch_rng.cpu()
    if state.numpy_rng is not None:
        meta["numpy_rng"] = json.dumps(state.numpy_rng)
    path = checkpoint_path(run_dir)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def load_checkpoint(run_dir: str | Path) -> TrainingState:
    """Read the checkpoint of ``run_dir``; :class:`CheckpointError` if absent or unreadable."""
    from safetensors import SafetensorError, safe_open

    path = checkpoint_path(run_dir)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint in run folder {run_dir}: expected file {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            _check_metadata(meta, path)  # before any tensor is read
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({exc})") from exc
    try:
        state = TrainingState(
            step=int(meta["step"]),
            model={k[6:]: v for k, v in tensors.items() if k.startswith("model/")},
            torch_rng=tensors.get("rng/torch"),
            numpy_rng=json.loads(meta["numpy_rng"]) if "numpy_rng" in meta else None,
            info=json.loads(meta.get("info", "{}")),
        )
        if "optimizer" in meta:
            state.optimizer = _unflatten_optimizer(tensors, json.loads(meta["optimizer"]))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path} has malformed metadata ({exc!r})") from exc
    if not state.model:
        raise CheckpointError(f"checkpoint {path} holds no model weights")
    return state


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer ``state_dict`` -> (tensors, JSON): tensors by name, the rest as JSON."""
    tensors, scalars = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim/{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars,
                     "indices": [int(i) for i in sd["state"]]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {int(i): {} for i in meta["indices"]}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state[int(idx)][key] = value
    for idx, entry in meta["scalars"].items():
        state[int(idx)].update(entry)
    groups = meta["param_groups"]
    for g in groups:  # JSON turned tuples into lists; Adam expects a tuple of betas
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


#: NumPy bit generators a checkpoint may name (never ``getattr`` on file content)
BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
                  "Philox": np.random.Philox, "SFC64": np.random.SFC64, "MT19937": np.random.MT19937}
#: data-generator tags that are not NumPy's (on-device data of train.ensemble saves a torch state)
OTHER_DATA_GENERATORS = ("torch",)
_META_KEYS = {"format", "step", "info", "optimizer", "numpy_rng"}


class CheckpointCorruptError(CheckpointError, ValueError):
    """Metadata of a checkpoint outside the allow-list (caught apart from safetensors' errors)."""


def _check_metadata(meta: dict, path: Path) -> None:
    """Validate the metadata strings against an allow-list before anything else is read."""
    def bad(what: str):
        raise CheckpointCorruptError(f"{path} is not a disentkit checkpoint: {what}")

    if meta.get("format") != FORMAT:
        bad(f"expected metadata format={FORMAT!r}, found {str(meta.get('format'))[:60]!r}")
    unknown = sorted(set(meta) - _META_KEYS)
    if unknown:
        bad(f"unknown metadata keys {unknown[:5]}; expected a subset of {sorted(_META_KEYS)}")
    if not str(meta.get("step", "")).isdigit():
        bad(f"step must be a non-negative integer, found {str(meta.get('step'))[:60]!r}")
    try:
        info = json.loads(meta.get("info", "{}"))
        rng = json.loads(meta["numpy_rng"]) if "numpy_rng" in meta else None
        opt = json.loads(meta["optimizer"]) if "optimizer" in meta else None
    except ValueError as exc:
        bad(f"metadata is not valid JSON ({exc})")
    if not isinstance(info, dict):
        bad("metadata 'info' must be a JSON object")
    if rng is not None and not (isinstance(rng, dict) and rng.get("bit_generator") in
                                (*BIT_GENERATORS, *OTHER_DATA_GENERATORS)):
        bad(f"numpy_rng must name one of {sorted(BIT_GENERATORS)}, found "
            f"{str(rng.get('bit_generator') if isinstance(rng, dict) else rng)[:60]!r}")
    if opt is not None and not (isinstance(opt, dict) and isinstance(opt.get("param_groups"), list)
                                and isinstance(opt.get("scalars"), dict)
                                and isinstance(opt.get("indices"), list)):
        bad("metadata 'optimizer' must hold param_groups, scalars and indices")


def numpy_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def restore_numpy_rng(state: dict[str, Any]) -> np.random.Generator:
    """A Generator whose bit generator (PCG64 by default) continues from ``state``."""
    cls = BIT_GENERATORS.get(state.get("bit_generator")) if isinstance(state, dict) else None
    if cls is None:
        raise CheckpointError(f"unknown NumPy bit generator in a checkpoint; expected one of "
                              f"{sorted(BIT_GENERATORS)}")
    bit_generator = cls()
    try:
        bit_generator.state = state
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"malformed NumPy generator state in a checkpoint ({exc})") from exc
    return np.random.Generator(bit_generator)


def remove_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files a killed save left in ``run_dir`` and its checkpoint folder
    (names ``.<target>.<random>.tmp``, see :func:`disentkit.io.atomic_path`); return them."""
    from disentkit.runfolder import TEMP_NAME

    gone = []
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINT_DIR):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if TEMP_NAME.match(p.name) and p.is_file() and not p.is_symlink():
                p.unlink()
                gone.append(p)
    return gone


def load_model_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], source) -> None:
    """Load ``weights`` into ``model`` strictly; mismatches raise :class:`CheckpointError`."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"weights in {source} do not fit a {getattr(model, 'arch', type(model).__name__)} "
            f"network: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, value in weights.items():
        if value.shape != own[name].shape:
            raise CheckpointError(
                f"weights in {source}: {name} has shape {list(value.shape)}, the network "
                f"expects {list(own[name].shape)} (different channels or latent size?)"
            )
    model.load_state_dict(weights)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu"):
    """The trained network of a run folder, in eval mode on ``device``, and its ``TrainConfig``.

    Reads ``config.json`` and the checkpoint; any problem raises :class:`CheckpointError` (a
    :class:`~disentkit.errors.DisentkitError`) naming the file and what was expected.
    """
    from disentkit.config import TrainConfig, from_dict
    from disentkit.io import read_json
    from disentkit.models import build_model

    run_dir = Path(run_dir)
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{run_dir} is not a run folder: expected file {config_file}")
    try:
        cfg = from_dict(TrainConfig, read_json(config_file))
    except (ValueError, TypeError, OSError) as exc:
        raise CheckpointError(f"{config_file} is not a disentkit training config: {exc}") from exc
    state = load_checkpoint(run_dir)
    in_channels = state.info.get("in_channels")
    if not isinstance(in_channels, int):
        raise CheckpointError(f"checkpoint of {run_dir} does not record in_channels")
    model = build_model(cfg.model.arch, in_channels, cfg.model.latent_dim)
    load_model_weights(model, state.model, checkpoint_path(run_dir))
    return model.to(device).eval(), cfg
