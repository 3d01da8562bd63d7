"""Shared pytest fixtures: tiny data sets in the real Gravity Spy v1d0 layout, written by gravityaudit.examples.

Session-scoped fixtures are shared by every test: treat their files as read-only (copy them to `tmp_path`
before changing anything). A packed cache may appear beside them (`*.h5.packed/`) once a DataModule reads them.
"""
from __future__ import annotations
from pathlib import Path
import numpy as np
import pytest

EXAMPLE_CLASSES = ("Blip", "Koi_Fish", "Scattered_Light", "Whistle")


@pytest.fixture(scope="session")
def example_set(tmp_path_factory):
    "(h5_path, csv_path) of a tiny real-layout set: 4 classes x 5 glitches (3 train, 1 validation, 1 test each)."
    from gravityaudit.examples import write_example_set
    return write_example_set(tmp_path_factory.mktemp("example_set"), n_per_class=5, seed=0, classes=EXAMPLE_CLASSES)


@pytest.fixture(scope="session")
def example_set_all_classes(tmp_path_factory):
    "(h5_path, csv_path) of a real-layout set with all 22 v1 classes x 3 glitches (1 per official split each)."
    from gravityaudit.examples import write_example_set
    return write_example_set(tmp_path_factory.mktemp("example_set_all"), n_per_class=3, seed=1)


@pytest.fixture
def example_copy(tmp_path, example_set):
    "A private copy of `example_set` in `tmp_path` (h5_path, csv_path) that a test may change."
    import shutil
    h5, csv = example_set
    return Path(shutil.copy(h5, tmp_path / h5.name)), Path(shutil.copy(csv, tmp_path / csv.name))


@pytest.fixture(scope="session")
def example_pngs(tmp_path_factory):
    "(folder, {(gravityspy_id, label): views}) of a folder of Gravity Spy-like PNG figures, 2 classes x 3 glitches."
    from gravityaudit.examples import write_example_pngs, example_views
    from gravityaudit.taxonomy import CLASSES_V1
    rng = np.random.default_rng(3)
    views = {(f"png{label[:3]}{i:05d}", label): example_views(CLASSES_V1.index(label), rng)
             for label in ("Blip", "Whistle") for i in range(3)}
    folder = write_example_pngs(tmp_path_factory.mktemp("pngs") / "TrainingSet", views)
    return folder, views
