"""Every built-in dataset declares the kind of each factor and its nuisances (disentkit.data.kinds)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from disentkit.data.kinds import FACTOR_KINDS, NUISANCES, check_kinds, kinds_of
from disentkit.data.registry import DATASETS, dataset_class
from disentkit.data.views import CombinationSubset


@pytest.mark.parametrize("name", [n for n in DATASETS if n != "folder"])
def test_every_builtin_dataset_declares_its_factor_kinds(name):
    cls = dataset_class(name)
    check_kinds(cls)  # every factor a kind of the vocabulary, every nuisance known
    assert len(kinds_of(cls)) == len(cls.factor_names) and "other" not in kinds_of(cls)
    assert set(cls.nuisances) <= set(NUISANCES)


def test_kinds_that_the_findings_rely_on():
    assert dataset_class("coins-augmented").factor_kinds["rotation"] == "rotation"
    assert dataset_class("dsprites").factor_kinds["orientation"] == "rotation"
    assert dataset_class("shapes3d").factor_kinds["orientation"] == "pose"
    assert "noise" in dataset_class("noisy-color-dsprites").nuisances
    assert not dataset_class("color-dsprites").nuisances
    assert dataset_class("rgbd-objects").factor_kinds["instance"] == "identity"  # 4-factor variant


def test_folder_kinds_are_other_and_views_keep_kinds(tmp_path, toy_dataset_cls):
    from disentkit.data.folder import FolderDataset

    for i in range(2):
        Image.fromarray(np.full((64, 64), 80 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "factors.csv").write_text("image,shade\n0.png,0\n1.png,1\n")
    ds = FolderDataset(tmp_path, cache_dir=tmp_path / "cache")
    assert kinds_of(ds) == ["other"]
    check_kinds(ds)
    toy = toy_dataset_cls(sizes=(3, 4))
    toy.factor_kinds = {"f0": "identity", "f1": "scale"}
    assert kinds_of(CombinationSubset(toy, "heldout", 0.5, 0)) == ["identity", "scale"]
    toy.factor_kinds = {"f0": "shade"}
    with pytest.raises(ValueError, match="factor 'f0' has kind 'shade'"):
        check_kinds(toy)
    assert set(kinds_of(toy)) - set(FACTOR_KINDS) == {"shade"}
