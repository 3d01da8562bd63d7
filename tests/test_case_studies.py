"""The three case-study notebooks, as a reader on a code host sees them: figures kept in the repository, no forced
backend, a parameters cell that names the audit to study."""
import json
from pathlib import Path
import pytest

NBS = Path(__file__).resolve().parents[1] / "nbs"
CASES = {"20_case_drift": ["drift_disagreement.png", "drift_atlas.png"],
         "21_case_over_split": ["over_split_contact_sheet.png", "entropy_comparison.png", "over_split_peak_frequency.png"],
         "22_case_over_compression": ["over_compression_strip.png", "over_compression_growth.png"]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_study_keeps_its_figures(name):
    "Every figure the story names is an image output of the stored, executed notebook, and is saved beside the audit."
    nb = json.loads((NBS / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= len(CASES[name]), f"{name}: {len(images)} image outputs, expected {len(CASES[name])}"
    source = "\n".join("".join(c["source"]) for c in code)
    for figure in CASES[name]: assert figure in source, figure
    assert 'matplotlib.use("Agg")' not in source and "matplotlib.use('Agg')" not in source
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code), "no parameters cell"
    assert "write_synthetic_set" not in source and "synthetic_taxonomy" not in source     # never toy vectors
