"""What each factor of variation *is*: a small fixed vocabulary of factor kinds and nuisances.

Dapueto et al. 2024 (§5) find that disentanglement transfers where source and target share their
factors of variation at a similar granularity, and degrades where the target has factors the
source never saw. Deciding that from factor *names* fails (dSprites' ``orientation`` is Coins'
``rotation``; Shapes3D's ``orientation`` is a 3-D pose, not an in-plane rotation), so every
dataset declares, as data:

* ``factor_kinds``: ``{factor name: kind}`` with kinds from :data:`FACTOR_KINDS`;
* ``nuisances``: what varies in its images without being a factor, from :data:`NUISANCES`
  (noise backgrounds, real texture, lighting, a background no factor describes).

The report pairs a source factor with a target factor of the same kind, and counts as *hidden*
every target nuisance the source's images did not have, and every target factor of kind
``background`` without a counterpart (a background the source never saw).
"""

from __future__ import annotations

#: factor kinds and what they mean
FACTOR_KINDS = {
    "identity": "shape, object, category or instance identity",
    "scale": "size of the object in the image",
    "rotation": "in-plane rotation (orientation in the image plane)",
    "pose": "3-D pose or viewpoint: out-of-plane rotation, camera elevation",
    "position": "position of the object in the image",
    "colour": "hue or colour of the object",
    "background": "colour or content of the background (floor, wall)",
    "other": "not declared (a user's folder): corresponds to nothing",
}
#: what may vary in a dataset's images without being one of its factors
NUISANCES = {
    "noise": "random noise in the background, drawn per image",
    "texture": "real or painted texture (photographs, the Scream patch)",
    "lighting": "illumination that changes between images",
    "background": "a background (clutter, scenery) that no factor describes",
}


def kinds_of(dataset) -> list[str]:
    """The kind of each of ``dataset``'s factors, in factor order (``other`` where undeclared)."""
    declared = getattr(dataset, "factor_kinds", None) or {}
    return [declared.get(name, "other") for name in dataset.factor_names]


def check_kinds(dataset) -> None:
    """Raise ``ValueError`` naming the dataset and the factor when a kind or nuisance is missing
    or not in the vocabulary."""
    declared = getattr(dataset, "factor_kinds", None)
    if not isinstance(declared, dict):
        raise ValueError(f"{dataset.name}: factor_kinds must be a dict {{factor: kind}}")
    for name in dataset.factor_names:
        kind = declared.get(name)
        if kind not in FACTOR_KINDS:
            raise ValueError(f"{dataset.name}: factor {name!r} has kind {kind!r}; expected one of "
                             f"{', '.join(FACTOR_KINDS)}")
    for nuisance in getattr(dataset, "nuisances", ()):
        if nuisance not in NUISANCES:
            raise ValueError(f"{dataset.name}: nuisance {nuisance!r} is not one of "
                             f"{', '.join(NUISANCES)}")
