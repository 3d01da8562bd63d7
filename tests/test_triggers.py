"""Tests of gravityaudit.triggers: the four trigger-table formats read from files into the package's columns, with the
label's provenance kept, and bad tables refused with the file and the column named."""
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from gravityaudit.triggers import TRIGGER_COLUMNS, TRIGGER_FORMATS, read_triggers
from gravityaudit.taxonomy import ALL_CLASSES

O3_EXPORT = Path(__file__).parent / "trigger_tables" / "gravityspy_o3a_export_rows.csv"


def test_gravityspy_o3_export_keeps_the_machine_label_and_its_confidence():
    "Real rows of the O3 export: every column mapped, the label kept as Gravity Spy's machine label with its confidence."
    raw = pd.read_csv(O3_EXPORT, dtype={"id": str})
    table = read_triggers(O3_EXPORT)
    assert list(table.columns[:len(TRIGGER_COLUMNS) - 2]) == list(TRIGGER_COLUMNS[:-2])
    assert list(table.columns[-2:]) == ["source_file", "source_format"]
    assert (table.source_format == "gravityspy_o3").all() and (table.source_file == str(O3_EXPORT)).all()
    assert table.gravityspy_id.tolist() == raw.id.tolist()
    np.testing.assert_array_equal(table.event_time, raw.GPStime)
    np.testing.assert_array_equal(table.ml_confidence, raw.confidence)
    for theirs, ours in [("peakFreq", "peak_frequency"), ("snr", "snr"), ("Q-value", "q_value"), ("centralFreq", "central_freq"),
                         ("bandwidth", "bandwidth"), ("duration", "duration"), ("chisqDof", "chisq_dof"), ("imgUrl", "image_url")]:
        assert table[ours].tolist() == raw[theirs].tolist(), ours
    assert table.label.tolist() == raw.label.tolist() == table.ml_label.tolist()
    assert set(table.label_source) == {"machine"}
    assert "Unnamed: 0" not in table.columns                      # the saved pandas index is not a trigger column


def test_v1_metadata_keeps_volunteer_labels_and_every_column(example_set):
    "The v1 metadata CSV (real layout): labels are the volunteers', the Omicron columns and sample_type pass through."
    _, csv = example_set
    raw = pd.read_csv(csv, dtype={"gravityspy_id": str})
    table = read_triggers(csv)
    assert set(table.source_format) == {"v1"} and set(table.label_source) == {"volunteer"}
    assert table.gravityspy_id.tolist() == raw.gravityspy_id.tolist() and table.label.tolist() == raw.label.tolist()
    assert table.ml_label.isna().all() and table.ml_confidence.isna().all()
    assert set(raw.columns) <= set(table.columns)
    np.testing.assert_array_equal(table.event_time, raw.event_time)
    assert table.sample_type.tolist() == raw.sample_type.tolist()


def test_o3_machine_label_release_keeps_per_class_confidences(tmp_path):
    "The O3 machine-label release: ml_label/ml_confidence kept, one p_<Class> column per class confidence."
    classes = [c for c in ALL_CLASSES if c != "None_of_the_Above"]
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(len(classes)), size=3)
    rows = pd.DataFrame({"event_time": [1238170000.125, 1238170100.5, 1238180000.0], "ifo": ["H1", "L1", "H1"],
                         "peak_frequency": [200.0, 40.0, 1100.0], "snr": [12.0, 8.5, 30.0], "duration": [0.1, 2.0, 0.5],
                         "gravityspy_id": ["a1b2c3d4e5", "f6g7h8i9j0", "k1l2m3n4o5"], "url1": ["u1", "u2", "u3"],
                         "ml_label": [classes[i] for i in p.argmax(1)], "ml_confidence": p.max(1),
                         **{c: p[:, i] for i, c in enumerate(classes)}})
    path = tmp_path / "H1_O3a.csv"
    rows.to_csv(path, index=False)
    table = read_triggers(path)
    assert set(table.source_format) == {"o3_ml"} and set(table.label_source) == {"machine"}
    assert table.label.tolist() == rows.ml_label.tolist()
    np.testing.assert_allclose(table[[f"p_{c}" for c in classes]].to_numpy(), p)
    np.testing.assert_allclose(table.ml_confidence, p.max(1))
    assert not any(c in table.columns for c in classes)          # class columns are renamed p_<Class>


def test_plain_gps_list_gets_stable_ids(tmp_path):
    "ifo, gps[, label]: ids from detector and GPS time, the same on every read; unlabelled rows have label_source 'none'."
    path = tmp_path / "mine.csv"
    path.write_text("ifo,gps,label\nH1,1238166048.5,Blip\nL1,1238166070,\n")
    first, second = read_triggers(path), read_triggers(path)
    assert first.gravityspy_id.tolist() == ["H1_1238166048.5000", "L1_1238166070.0000"] == second.gravityspy_id.tolist()
    assert first.label_source.tolist() == ["user", "none"] and first.label.isna().tolist() == [False, True]
    assert first.event_time.dtype == float


@pytest.mark.parametrize("text, message", [
    ("ifo,gps,snr\nH1,1238166048,9\n", "unknown column(s) ['snr'] for format 'gps'"),
    ("ifo,GPS\nH1,1238166048\n", "not a trigger table this package reads; nearest format 'gps'"),
    ("id,GPStime,label\nabc,1238166048,Blip\n", "misses column(s) ['ifo']"),
    ("ifo,gps\nH1,soon\n", "column 'event_time' (GPS s) is missing or not a positive number for trigger(s) H1_nan"),
    ("ifo,gps\nHanford,1238166048\n", "column 'ifo' is not a detector name"),
    ("ifo,gps,label\nH1,1238166048,Blipp\n", "column 'label' has unknown class(es) ['Blipp']"),
    ("ifo,gps\nH1,1238166048\nH1,1238166048.00001\n", "duplicate gravityspy_id(s)"),
    ("ifo,gps\n", "no triggers"),
    ("", "is not a readable CSV"),
])
def test_bad_tables_fail_naming_the_file_and_the_column(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as e: read_triggers(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_export_with_a_renamed_column_fails_naming_it(tmp_path):
    "A real export whose Q-value column was renamed, and one missing its id column: both refused by name."
    raw = pd.read_csv(O3_EXPORT)
    renamed, missing = tmp_path / "renamed.csv", tmp_path / "missing.csv"
    raw.rename(columns={"Q-value": "qvalue"}).to_csv(renamed, index=False)
    raw.drop(columns=["id"]).to_csv(missing, index=False)
    with pytest.raises(ValueError, match=r"renamed.csv: unknown column\(s\) \['qvalue'\] for format 'gravityspy_o3'"): read_triggers(renamed)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['id'\] of format 'gravityspy_o3'"): read_triggers(missing, format="gravityspy_o3")
    with pytest.raises(ValueError, match="unknown trigger format 'omicron'"): read_triggers(O3_EXPORT, format="omicron")
    with pytest.raises(FileNotFoundError, match="trigger table .*nothing.csv does not exist"): read_triggers(tmp_path / "nothing.csv")


def test_machine_confidence_must_be_a_probability(tmp_path):
    path = tmp_path / "export.csv"
    pd.read_csv(O3_EXPORT).assign(confidence=1.5).to_csv(path, index=False)
    with pytest.raises(ValueError, match="column 'ml_confidence' is not a confidence between 0 and 1"): read_triggers(path)


def test_every_format_is_detected_from_its_required_columns():
    "Each format's own required columns are detected as that format (the order of TRIGGER_FORMATS does not shadow one)."
    from gravityaudit.triggers import detect_format
    for name, fmt in TRIGGER_FORMATS.items():
        assert detect_format(list(fmt.required)) == name
