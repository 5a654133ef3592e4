"""Fine-tuning health: did fine-tuning collapse the posterior? (issue 13, point 6).

Fine-tuning a VAE on a target it cannot reconstruct can drive the KL towards 0: the encoder
stops using its latent dimensions and the decoder draws the mean image (measured on
Noisy-Color-dSprites after 500 steps: KL 24 → 5–6, grey reconstructions). GBT accuracies and
OMES read on such a code describe a collapsed model, not a transferred representation, so the
report flags it beside the numbers and the findings can read the flag (:func:`finetune_health`).

The rule, stated once (:data:`RULE`):

* a latent dimension is *active* on an evaluation when the variance of its posterior mean over
  the evaluated rows exceeds :data:`ACTIVE_VARIANCE` (0.01: a tenth of the prior's standard
  deviation);
* fine-tuning *collapsed* when the KL at its last logged step is below :data:`KL_RATIO` (half)
  of the KL at its first logged step, or when fewer than half of the dimensions active before
  fine-tuning (zero-shot, same rows) are active after it.

Everything is read from files an evaluation already writes: ``representations.npz`` (``mean``)
beside each ``results.json`` and the fine-tuning ``log.jsonl``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from disentkit.report.collect import Result

log = logging.getLogger(__name__)

ACTIVE_VARIANCE = 0.01
KL_RATIO = 0.5
ACTIVE_RATIO = 0.5
RULE = (f"active dimension: variance of its posterior mean over the evaluated rows > "
        f"{ACTIVE_VARIANCE:g}; collapse: KL at the last logged fine-tuning step < "
        f"{KL_RATIO:g} x the first, or active dimensions after < {ACTIVE_RATIO:g} x before")


def active_dimensions(mean: np.ndarray, threshold: float = ACTIVE_VARIANCE) -> list[int]:
    """Indices of the columns of posterior means [N, D] whose variance exceeds ``threshold``."""
    mean = np.asarray(mean, dtype=np.float64)
    if mean.ndim != 2 or len(mean) < 2:
        raise ValueError(f"posterior means must be [N >= 2, D], found shape {mean.shape}")
    return [int(i) for i in np.flatnonzero(mean.var(axis=0) > threshold)]


def evaluation_activity(result: Result) -> list[int] | None:
    """Active dimensions of one evaluation, from its ``representations.npz`` (None if absent)."""
    path = result.folder / "representations.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return active_dimensions(data["mean"])
    except (OSError, KeyError, ValueError) as exc:
        log.warning("%s: cannot read posterior means (%s)", path, exc)
        return None


def read_log(path: Path | None) -> list[dict]:
    """Records of a ``log.jsonl`` (lines cut by a kill are skipped); [] without a file."""
    if path is None or not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def kl_start_end(records: list[dict]) -> tuple[float, float] | None:
    """KL at the first and at the last logged step of a training log (None when absent)."""
    kl = [(r["step"], float(r["kl"])) for r in records if "kl" in r and "step" in r]
    if not kl:
        return None
    kl.sort()
    return kl[0][1], kl[-1][1]


@dataclass
class Health:
    """The verdict on one fine-tuned model: ``flag`` is True when it collapsed."""

    flag: bool
    reasons: list[str] = field(default_factory=list)
    kl_start: float | None = None
    kl_end: float | None = None
    active_before: list[int] | None = None
    active_after: list[int] | None = None
    rule: str = RULE

    @property
    def checked(self) -> bool:
        """False when neither the log nor the representations could be read."""
        return self.kl_start is not None or (
            self.active_before is not None and self.active_after is not None)

    def text(self) -> str:
        if not self.checked:
            return "fine-tuning health not checked (no log.jsonl with KL, no representations.npz)"
        if self.flag:
            return "COLLAPSED: " + "; ".join(self.reasons)
        parts = []
        if self.kl_start is not None:
            parts.append(f"KL {self.kl_start:.1f} → {self.kl_end:.1f}")
        if self.active_before is not None and self.active_after is not None:
            parts.append(f"active dims {len(self.active_before)} → {len(self.active_after)}")
        return "healthy (" + ", ".join(parts) + ")"

    def to_dict(self) -> dict:
        return {"flag": self.flag, "reasons": list(self.reasons), "kl_start": self.kl_start,
                "kl_end": self.kl_end, "active_before": self.active_before,
                "active_after": self.active_after, "rule": self.rule}


def finetune_health(before: Result | None, after: Result) -> Health:
    """Whether fine-tuning collapsed the model evaluated in ``after`` (see :data:`RULE`).

    ``before`` is the zero-shot evaluation of the same source on the same rows (None: only the
    KL test is applied). This is the function the findings call to qualify F1/F2.
    """
    reasons = []
    kl = kl_start_end(read_log(after.log_path()))
    kl_start = kl_end = None
    if kl is not None:
        kl_start, kl_end = kl
        if kl_start > 0 and kl_end < KL_RATIO * kl_start:
            reasons.append(f"KL fell from {kl_start:.1f} to {kl_end:.1f} during fine-tuning")
    act_before = evaluation_activity(before) if before is not None else None
    act_after = evaluation_activity(after)
    if act_before is not None and act_after is not None and act_before:
        if len(act_after) < ACTIVE_RATIO * len(act_before):
            reasons.append(f"active latent dimensions fell from {len(act_before)} to "
                           f"{len(act_after)}")
    return Health(flag=bool(reasons), reasons=reasons, kl_start=kl_start, kl_end=kl_end,
                  active_before=act_before, active_after=act_after)


def group_health(before: dict, after: dict) -> dict[tuple, Health]:
    """:func:`finetune_health` for every replicate (seed pair) of a transfer group."""
    return {key: finetune_health(before.get(key), r) for key, r in sorted(after.items(), key=str)}
