"""README.md is written from nbs/index.ipynb (Quarto, which nbdev_readme needs, is not available): this test keeps them in step.

Regenerate with `make readme` (which runs this file with --write)."""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def readme_from_index(index=ROOT / "nbs/index.ipynb") -> str:
    "The README text: the index notebook's markdown cells, in order, separated by blank lines."
    cells = json.loads(Path(index).read_text())["cells"]
    return "\n\n".join("".join(c["source"]).strip() for c in cells if c["cell_type"] == "markdown") + "\n"

def test_readme_is_written_from_index():
    assert (ROOT / "README.md").read_text() == readme_from_index(), "README.md differs from nbs/index.ipynb: run `make readme`"

def test_readme_gives_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text

if __name__ == "__main__" and "--write" in sys.argv:
    (ROOT / "README.md").write_text(readme_from_index())
    print("README.md written from nbs/index.ipynb")
