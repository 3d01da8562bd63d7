"""Tests of gravityaudit.data (and the sources, example writers and augmentation below it) on real (tiny) HDF5 files,
CSVs, PNGs and tarballs, through real DataLoaders."""
from __future__ import annotations
import os, shutil, tarfile, warnings
from pathlib import Path
import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from gravityaudit.data import GravitySpyDataModule, GravitySpyDataset, info_command, stratified_split
from gravityaudit.sources import H5GroupStore, PackedStore, default_cache_dir
from gravityaudit.examples import write_example_set, example_views, write_example_pngs
from gravityaudit.augment import augment_views
from gravityaudit.files import GRAVITY_SPY_COLUMNS, read_metadata, find_metadata
from gravityaudit.taxonomy import CLASSES_V1, ALL_CLASSES, UnknownClassError, VIEW_NAMES
from gravityaudit.layout import GlitchWriter


def raw_views(h5, label, sample_type, gid):
    "The four stored views of one glitch, read straight from the file with h5py."
    with h5py.File(h5, "r") as f:
        return np.stack([np.asarray(f[f"{label}/{sample_type}/{gid}/{v}"]).reshape(140, 170) for v in VIEW_NAMES])


# ---------------------------------------------------------------- the real v1d0 layout

def test_example_set_has_real_layout(example_set):
    h5, csv = example_set
    table = pd.read_csv(csv, dtype={"gravityspy_id": str})
    assert tuple(table.columns) == GRAVITY_SPY_COLUMNS
    assert table.isna().sum().sum() == 0
    assert set(table.ifo) <= {"H1", "L1"} and (table.snr >= 7.5).all()
    with h5py.File(h5, "r") as f:
        row = table.iloc[0]
        ds = f[f"{row.label}/{row.sample_type}/{row.gravityspy_id}/0.5.png"]
        assert ds.shape == (1, 140, 170) and ds.dtype == np.float32
        assert 0 <= ds[()].min() and ds[()].max() <= 1


@pytest.mark.parametrize("cache", [True, False])
def test_items_match_the_file(example_set, cache):
    h5, csv = example_set
    dm = GravitySpyDataModule(h5, metadata=csv, batch_size=8, cache=cache)
    dm.setup("fit")
    assert dm.classes == CLASSES_V1 and dm.num_classes == 22
    assert len(dm.metadata) == 20 and list(dm.metadata.columns) == list(GRAVITY_SPY_COLUMNS)
    assert [len(dm.split_indices(s)) for s in ("train", "validation", "test")] == [12, 4, 4]
    n = 0
    for batch in dm.predict_dataloader():
        assert batch["image"].shape[1:] == (4, 1, 140, 170) and batch["image"].dtype == torch.float32
        assert batch["label"].dtype == torch.int64 and batch["index"].dtype == torch.int64
        for image, label, index in zip(batch["image"], batch["label"], batch["index"]):
            row = dm.metadata.iloc[int(index)]
            assert CLASSES_V1[int(label)] == row.label
            np.testing.assert_array_equal(image[:, 0].numpy(), raw_views(h5, row.label, row.sample_type, row.gravityspy_id))
            n += 1
    assert n == 20


def test_official_splits_follow_sample_type(example_set):
    dm = GravitySpyDataModule(example_set[0], batch_size=64)
    dm.setup()
    for name, loader in [("train", dm.train_dataloader()), ("validation", dm.val_dataloader()), ("test", dm.test_dataloader())]:
        rows = torch.cat([b["index"] for b in loader]).numpy()
        assert set(dm.metadata.sample_type.iloc[rows]) == {name}
        assert len(rows) == len(set(rows)) == (dm.metadata.sample_type == name).sum()


@pytest.mark.parametrize("shape", [(140, 170), (140, 170, 1)])
def test_other_stored_shapes_are_read(tmp_path, shape):
    views = np.random.default_rng(0).random((4, 140, 170), dtype=np.float32)
    with h5py.File(tmp_path / "set.h5", "w") as f:
        for name, view in zip(VIEW_NAMES, views): f[f"Blip/train/a1/{name}"] = view.reshape(shape)
        for name, view in zip(VIEW_NAMES, views): f[f"Tomte/test/b2/{name}"] = view.reshape(shape)
    ds = GravitySpyDataset(tmp_path / "set.h5", cache=False)          # no CSV: table from the groups
    assert list(ds.table.gravityspy_id) == ["a1", "b2"]
    np.testing.assert_array_equal(ds[0]["image"][:, 0].numpy(), views)


# ---------------------------------------------------------------- metadata discovery

@pytest.mark.parametrize("name", ["metadata.csv", "trainingset_v1d0_metadata.csv", "my_set_metadata_v2.csv", None])
def test_metadata_found_beside_the_data(tmp_path, example_set, name):
    h5, csv = example_set
    shutil.copy(h5, tmp_path / "data.h5")
    if name: shutil.copy(csv, tmp_path / name)
    dm = GravitySpyDataModule(tmp_path / "data.h5")
    assert len(dm.metadata) == 20
    assert ("snr" in dm.metadata.columns) == (name is not None)       # without a CSV: built from the groups
    if name: assert find_metadata(tmp_path / "data.h5") == tmp_path / name


def test_extra_columns_pass_through_and_package_files_read(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    with GlitchWriter(tmp_path / "sim.h5", attrs={"generator": "test"}) as w:   # gzip, as the package writes
        for i, (label, st) in enumerate([("Blip", "train"), ("Blip", "validation"), ("Blip", "test"),
                                         ("Chirp", "train"), ("Chirp", "validation"), ("Chirp", "test")]):
            w.add(f"sim{i}", label, st, rng.random((4, 140, 170), dtype=np.float32))
            rows.append(dict(gravityspy_id=f"sim{i}", label=label, sample_type=st, scenario="drift", drift_coord=i / 6))
    pd.DataFrame(rows).to_csv(tmp_path / "metadata.csv", index=False)
    dm = GravitySpyDataModule(tmp_path / "sim.h5", batch_size=4)
    dm.setup()
    assert list(dm.metadata.scenario) == ["drift"] * 6
    np.testing.assert_allclose(dm.metadata.drift_coord, np.arange(6) / 6)
    assert sum(len(b["index"]) for b in dm.predict_dataloader()) == 6


# ---------------------------------------------------------------- view options

def test_view_options(example_set):
    h5, _ = example_set
    first = lambda **kw: next(iter(GravitySpyDataModule(h5, batch_size=2, **kw).predict_dataloader()))["image"]
    assert first().shape == (2, 4, 1, 140, 170)
    assert first(view=1.0).shape == (2, 1, 140, 170)
    assert first(durations=(0.5, 4.0)).shape == (2, 2, 1, 140, 170)
    assert first(image_size=224, channels=3).shape == (2, 4, 3, 224, 224)
    single = first(view=2.0, channels=3)
    assert single.shape == (2, 3, 140, 170) and torch.equal(single[:, 0], single[:, 2])
    np.testing.assert_array_equal(first(durations=(0.5, 4.0))[:, 1], first()[:, 3])
    with pytest.raises(ValueError, match="channels must be 1 or 3"): GravitySpyDataModule(h5, channels=2)
    with pytest.raises(ValueError, match="unknown duration 3.0"): GravitySpyDataModule(h5, durations=(3.0,))


# ---------------------------------------------------------------- splits, weights, sampler

def test_stratified_split_is_seeded_and_stratified(example_set_all_classes):
    h5, _ = example_set_all_classes
    a = GravitySpyDataModule(h5, split="stratified", seed=1).splits
    b = GravitySpyDataModule(h5, split="stratified", seed=1).splits
    c = GravitySpyDataModule(h5, split="stratified", seed=2).splits
    assert a.equals(b) and not a.equals(c)
    labels = GravitySpyDataModule(h5).metadata.label
    per_class = pd.crosstab(labels, a)
    assert (per_class[["train", "validation", "test"]] == 1).all().all()   # 3 per class -> one in each split


def test_no_sample_type_falls_back_to_stratified(tmp_path):
    h5, csv = write_example_set(tmp_path, n_per_class=4, classes=("Blip", "Tomte"), sample_types=False)
    dm = GravitySpyDataModule(h5, metadata=csv)
    with pytest.warns(UserWarning, match="stratified"): splits = dm.splits
    assert set(splits) == {"train", "validation", "test"}


def test_class_with_one_glitch_cannot_be_stratified(tmp_path):
    h5, csv = write_example_set(tmp_path, n_per_class=3, classes=("Blip", "Tomte"))
    table = pd.read_csv(csv, dtype={"gravityspy_id": str})
    table = table.drop(table.index[(table.label == "Tomte")][1:])
    table.to_csv(csv, index=False)
    dm = GravitySpyDataModule(h5, metadata=csv, split="stratified")
    with pytest.raises(ValueError, match="class 'Tomte' has 1 glitch"): dm.setup()


def test_class_weights_and_weighted_sampler(tmp_path):
    h5, csv = write_example_set(tmp_path, n_per_class=20, classes=("Blip", "Tomte"))
    table = pd.read_csv(csv, dtype={"gravityspy_id": str})
    keep = ~((table.label == "Tomte") & (table.sample_type == "train")) | (table.index % 20 < 2)
    table[keep].to_csv(csv, index=False)                               # 14 Blip, 2 Tomte in train
    dm = GravitySpyDataModule(h5, batch_size=16, weighted_sampler=True, seed=0)
    dm.setup()
    w = dm.class_weights
    assert w.shape == (22,) and w[CLASSES_V1.index("Blip")] < w[CLASSES_V1.index("Tomte")]
    assert w[CLASSES_V1.index("Whistle")] == 0
    torch.testing.assert_close(w[CLASSES_V1.index("Tomte")], torch.tensor(16 / (2 * 2)))
    drawn = torch.cat([b["label"] for _ in range(20) for b in dm.train_dataloader()])
    share = (drawn == CLASSES_V1.index("Tomte")).float().mean().item()
    assert 0.35 < share < 0.65                                         # balanced, not 2/16


# ---------------------------------------------------------------- augmentation

def test_augmentation_only_on_train_and_physics_safe(example_set):
    h5, _ = example_set
    dm = GravitySpyDataModule(h5, batch_size=64, augment=True, seed=0)
    dm.setup()
    aug = next(iter(dm.train_dataloader()))
    plain = GravitySpyDataModule(h5, batch_size=64).dataset(aug["index"].numpy())
    clean = torch.stack([plain[i]["image"] for i in range(len(plain))])
    assert not torch.equal(aug["image"], clean)
    assert (aug["image"] - clean).abs().mean() < 0.05
    # the blob keeps its frequency row (no flips): the brightest row of each view stays within a row or two
    rows_aug = aug["image"].mean(-1).argmax(-1); rows_clean = clean.mean(-1).argmax(-1)
    assert (rows_aug - rows_clean).abs().max() <= 2
    val = next(iter(dm.val_dataloader()))
    every = dm.dataset()                                               # no augmentation, position i = row i
    vplain = torch.stack([every[int(i)]["image"] for i in val["index"]])
    assert torch.equal(val["image"], vplain)


def test_augment_views_shifts_time_not_frequency():
    views = np.zeros((4, 140, 170), np.float32); views[:, 30, 85] = 1
    out = augment_views(views, np.random.default_rng(5), max_shift_s=0.03, jitter=0, speckle=0)
    rows, cols = zip(*[np.unravel_index(v.argmax(), v.shape) for v in out])
    assert set(rows) == {30}
    shifts = [c - 85 for c in cols]                                    # one time shift: more columns in short views
    assert abs(shifts[0]) >= abs(shifts[3]) and abs(shifts[0]) <= 11


# ---------------------------------------------------------------- workers, cache

@pytest.mark.filterwarnings("ignore:.*pin_memory.*")
def test_two_workers_and_pin_memory(example_set):
    dm = GravitySpyDataModule(example_set[0], batch_size=3, num_workers=2, pin_memory=True)
    dm.setup()
    assert dm.hparams.data == str(example_set[0]) and dm.hparams.num_workers == 2   # plain values for checkpoints
    seen = torch.cat([b["index"] for b in dm.predict_dataloader()]).tolist()
    assert seen == list(range(20))
    train = torch.cat([b["index"] for b in dm.train_dataloader()]).tolist()
    assert sorted(train) == sorted(dm.split_indices("train").tolist())


def test_plain_copies_read_in_process_and_match_the_workers(example_set):
    "With num_workers=2, packed-cache loaders read in this process; the nested-group reader uses the workers; same batches."
    h5, _ = example_set
    fast = GravitySpyDataModule(h5, batch_size=6, num_workers=2); fast.setup()
    naive = GravitySpyDataModule(h5, batch_size=6, num_workers=2, cache=False); naive.setup()
    assert isinstance(fast._store, PackedStore) and isinstance(naive._store, H5GroupStore)
    fast_loader, naive_loader = fast.predict_dataloader(), naive.predict_dataloader()
    assert fast_loader.num_workers == 0 and naive_loader.num_workers == 2
    for a, b in zip(fast_loader, naive_loader, strict=True):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["label"], b["label"])
        assert torch.equal(a["image"], b["image"])
    train = [b["index"] for b in fast.train_dataloader()]
    assert [len(t) for t in train] == [6, 6] and sorted(torch.cat(train).tolist()) == fast.split_indices("train").tolist()


def test_augmented_batches_from_two_workers_are_seeded(example_set):
    "Augmentation runs in the workers (batch allocated in shared memory there) and is reproducible with the seed."
    h5, _ = example_set
    runs = []
    for _ in range(2):
        dm = GravitySpyDataModule(h5, batch_size=5, num_workers=2, augment=True, seed=3); dm.setup()
        loader = dm.train_dataloader()
        assert loader.num_workers == 2
        runs.append(list(loader))
    every = GravitySpyDataModule(h5).dataset()
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["image"], b["image"])
        clean = torch.stack([every[int(i)]["image"] for i in a["index"]])
        assert a["image"].shape == clean.shape == (len(a["index"]), 4, 1, 140, 170)
        assert not torch.equal(a["image"], clean) and (a["image"] - clean).abs().mean() < 0.1
        assert (a["image"].mean(-1).argmax(-1) - clean.mean(-1).argmax(-1)).abs().max() <= 2   # blob keeps its row


def test_cache_built_reused_and_invalidated(example_copy):
    h5, csv = example_copy
    dm = GravitySpyDataModule(h5); dm.setup()
    assert isinstance(dm._store, PackedStore)
    cache = Path(dm._store.path)
    assert cache.parent == default_cache_dir(h5) == h5.parent / f"{h5.name}.packed"
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".tmp")]
    built = cache.stat().st_mtime_ns
    dm2 = GravitySpyDataModule(h5); dm2.setup()
    assert Path(dm2._store.path) == cache and cache.stat().st_mtime_ns == built          # reused
    with h5py.File(h5, "r+") as f:                                                       # the source changes
        row = dm.metadata.iloc[0]
        f[f"{row.label}/{row.sample_type}/{row.gravityspy_id}/0.5.png"][0, 0, 0] = 0.123
    dm3 = GravitySpyDataModule(h5); dm3.setup()
    assert dm3.dataset()[0]["image"][0, 0, 0, 0].item() == pytest.approx(0.123)       # rebuilt
    table = pd.read_csv(csv, dtype={"gravityspy_id": str}).iloc[:-4]                     # metadata changes
    table.to_csv(csv, index=False)
    dm4 = GravitySpyDataModule(h5); dm4.setup()
    assert len(dm4._store) == 16 and Path(dm4._store.path) != cache


def test_cache_dir_and_read_only_source(tmp_path, example_copy):
    h5, csv = example_copy
    os.chmod(h5, 0o444); os.chmod(csv, 0o444)
    dm = GravitySpyDataModule(h5, cache=str(tmp_path / "cachedir")); dm.setup()
    assert Path(dm._store.path).parent == tmp_path / "cachedir"
    assert len(list(dm.predict_dataloader())) == 1


# ---------------------------------------------------------------- PNGs

def test_png_folder_and_tarball(tmp_path, example_pngs):
    folder, views = example_pngs
    dm = GravitySpyDataModule(folder, batch_size=8, split="stratified", val_fraction=0.34, test_fraction=0.34)
    dm.setup()                                                         # no sample_type folders: asked for stratified
    assert sorted(dm.metadata.gravityspy_id) == sorted(g for g, _ in views)
    batch = next(iter(dm.predict_dataloader()))
    for image, index in zip(batch["image"], batch["index"]):
        row = dm.metadata.iloc[int(index)]
        expected = views[(row.gravityspy_id, row.label)]
        assert np.corrcoef(image[:, 0].numpy().ravel(), expected.ravel())[0, 1] > 0.9
    tarball = tmp_path / "trainingsetv1d0.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar: tar.add(folder, arcname="TrainingSet")
    dt = GravitySpyDataModule(tarball, batch_size=8, split="stratified")
    with warnings.catch_warnings(): warnings.simplefilter("ignore"); dt.setup()
    assert sorted(dt.metadata.gravityspy_id) == sorted(dm.metadata.gravityspy_id)
    a = dict(zip(dt.metadata.gravityspy_id, next(iter(dt.predict_dataloader()))["image"]))
    b = dict(zip(dm.metadata.gravityspy_id, batch["image"]))
    for gid in a: torch.testing.assert_close(a[gid], b[gid])


# ---------------------------------------------------------------- bad input, raised early

def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.h5"): GravitySpyDataModule(tmp_path / "nowhere.h5").setup()
    with pytest.raises(FileNotFoundError, match="nometa.csv"):
        GravitySpyDataModule(tmp_path, metadata=tmp_path / "nometa.csv").setup()


def test_missing_group_names_id_and_path(example_copy):
    h5, csv = example_copy
    table = pd.read_csv(csv, dtype={"gravityspy_id": str})
    table.loc[len(table)] = table.iloc[0].copy(); table.loc[len(table) - 1, "gravityspy_id"] = "Ghost12345"
    table.to_csv(csv, index=False)
    label = table.label.iloc[0]
    with pytest.raises(KeyError, match=f"'Ghost12345' \\(expected {label}/train/Ghost12345\\)"): GravitySpyDataModule(h5).setup()


@pytest.mark.parametrize("cache", [True, False])
def test_nan_or_bad_shape_raised_at_setup(example_copy, cache):
    h5, csv = example_copy
    row = pd.read_csv(csv, dtype={"gravityspy_id": str}).iloc[7]
    with h5py.File(h5, "r+") as f:
        f[f"{row.label}/{row.sample_type}/{row.gravityspy_id}/1.0.png"][0, 5, 5] = np.nan
    with pytest.raises(ValueError, match=f"{row.gravityspy_id}.*NaN"): GravitySpyDataModule(h5, cache=cache).setup()
    with h5py.File(h5, "r+") as f:
        path = f"{row.label}/{row.sample_type}/{row.gravityspy_id}/2.0.png"
        del f[path]; f[path] = np.zeros((3, 140, 170), np.float32)
        f[f"{row.label}/{row.sample_type}/{row.gravityspy_id}/1.0.png"][0, 5, 5] = 0
    with pytest.raises(ValueError, match=f"{row.gravityspy_id}.*shape \\(3, 140, 170\\)"): GravitySpyDataModule(h5, cache=cache).setup()


def test_unknown_label_lists_known_ones(example_copy):
    h5, csv = example_copy
    table = pd.read_csv(csv, dtype={"gravityspy_id": str}); table.loc[3, "label"] = "Blipp"
    table.to_csv(csv, index=False)
    with pytest.raises(UnknownClassError, match="unknown glitch class 'Blipp'; known classes: 1080Lines, 1400Ripples"):
        GravitySpyDataModule(h5).setup()
    ok = _rewrite_ok(csv)
    with pytest.raises(UnknownClassError, match="'Koi_Fish'; known classes: Blip, Whistle, Scattered_Light"):
        GravitySpyDataModule(h5, metadata=ok, classes=("Blip", "Whistle", "Scattered_Light")).setup()


def _rewrite_ok(csv):
    "Restore a valid label column so that only the `classes` restriction fails."
    table = pd.read_csv(csv, dtype={"gravityspy_id": str}); table.loc[3, "label"] = "Blip"
    out = csv.with_name("ok_metadata.csv"); table.to_csv(out, index=False)
    return out


def test_empty_split(example_copy):
    h5, csv = example_copy
    table = pd.read_csv(csv, dtype={"gravityspy_id": str})
    table[table.sample_type != "test"].to_csv(csv, index=False)
    dm = GravitySpyDataModule(h5)
    dm.setup("fit")                                                    # fit needs only train and validation
    with pytest.raises(ValueError, match="the 'test' split is empty"): dm.setup("test")
    with pytest.raises(ValueError, match="the 'test' split is empty"): dm.test_dataloader()
    assert len(GravitySpyDataModule(h5).predict_dataloader().dataset) == 16


# ---------------------------------------------------------------- info

def test_info_command(example_set, capsys):
    assert info_command([str(example_set[0]), "--metadata", str(example_set[1])]) == 0
    out = capsys.readouterr().out
    assert "glitches: 20" in out and "Scattered_Light" in out and "validation" in out
    assert "url4" in out and "source: gravityaudit example set" in out and "140 x 170" in out
    with pytest.raises(SystemExit): info_command(["--help"])


def test_cli_dispatches_info(example_set, capsys):
    from gravityaudit.cli import main
    assert main(["info", str(example_set[0])]) == 0
    assert "glitches per class and split" in capsys.readouterr().out


def test_same_id_in_two_groups(tmp_path):
    views = np.random.default_rng(0).random((4, 140, 170), dtype=np.float32)
    with GlitchWriter(tmp_path / "set.h5") as w:
        for label, st in [("Blip", "train"), ("Blip", "test"), ("Tomte", "train"), ("Tomte", "validation")]:
            w.add(f"{label}{st}", label, st, views)
        w.add("twin", "Blip", "validation", views); w.add("twin", "Tomte", "test", views * 0.5)
    with pytest.raises(ValueError, match="'twin' appears in several groups"): GravitySpyDataModule(tmp_path / "set.h5").setup()
    rows = [("Blipvalidation", "Blip", "validation")] + [(f"{l}{s}", l, s) for l, s in
            [("Blip", "train"), ("Blip", "test"), ("Tomte", "train"), ("Tomte", "validation")]] + [("twin", "Tomte", "test")]
    pd.DataFrame(rows, columns=["gravityspy_id", "label", "sample_type"]).iloc[1:].to_csv(tmp_path / "metadata.csv", index=False)
    dm = GravitySpyDataModule(tmp_path / "set.h5"); dm.setup()
    twin = int(np.flatnonzero(dm.metadata.gravityspy_id == "twin")[0])
    np.testing.assert_allclose(dm.dataset()[twin]["image"][:, 0].numpy(), views * 0.5)   # the CSV's own group
