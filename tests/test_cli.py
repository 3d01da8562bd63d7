"""The command line's error convention: a user error is one line on stderr naming the culprit, exit code 2."""
import os, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}


def gravityaudit(*args, cwd):
    "Run `gravityaudit ARGS` in a fresh interpreter; (exit code, stdout, stderr)."
    r = subprocess.run([str(Path(sys.executable).parent / "gravityaudit"), *map(str, args)], cwd=cwd, env=ENV,
                       capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


BAD = [  # (arguments, text the message must contain, output that must not appear)
    (["info", "missing.h5"], "missing.h5", None),
    (["simulate", "--out", "sim", "--n-glitches", "-5"], "n_glitches", "sim"),
    (["embed", "--data", "missing.h5", "--out", "emb/embeddings.h5"], "missing.h5", "emb"),
    (["similar", "--embeddings", "missing_embeddings.h5", "--id", "a1"], "missing_embeddings.h5", None),
    (["report", "--metadata", "missing.csv", "--audit", "audit", "--out", "report"], "missing.csv", "report"),
    (["predict", "--checkpoint", "missing.ckpt", "--data", "missing.h5", "--out", "p.csv"], "missing.ckpt", "p.csv"),
    (["classify", "--checkpoint", "missing.ckpt", "--strain", "missing.npy", "--sample-rate", "4096", "--out", "c.csv"], "missing", "c.csv"),
    (["scan", "--strain", "missing.npy", "--sample-rate", "4096", "--out", "scans/s.h5"], "missing.npy", "scans"),
    (["pipeline", "--config", "missing.yaml"], "missing.yaml", None),
    (["download", "--record", "1476156", "--dest", "dl", "--chunk-size", "0"], "--chunk-size", "dl"),
    (["simulate", "--out", "sim", "--n-glitches", "2", "--batch-size", "0"], "batch_size", "sim"),
]


@pytest.mark.parametrize("args,culprit,output", BAD, ids=[b[0][0] for b in BAD])
def test_user_error_is_one_line_and_exit_2(tmp_path, args, culprit, output):
    code, out, err = gravityaudit(*args, cwd=tmp_path)
    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.startswith("gravityaudit")]
    assert len(lines) == 1 and culprit in lines[0], err
    if output: assert not (tmp_path / output).exists()


def test_debug_shows_the_traceback(tmp_path):
    code, _, err = gravityaudit("info", "missing.h5", "--debug", cwd=tmp_path)
    assert code != 0 and "Traceback" in err and "missing.h5" in err


# ------------------------------------------------------------------ hostile inputs against a real little study
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    "A small data set in the Gravity Spy layout, embeddings of its glitches, and a gallery of broken inputs beside them."
    from gravityaudit.examples import write_example_set
    from gravityaudit.files import write_embeddings
    d = tmp_path_factory.mktemp("study")
    data, csv = write_example_set(d, n_per_class=4, classes=["Blip", "Whistle", "Koi_Fish"], h5_name="dataset.h5", csv_name="metadata.csv")
    meta = pd.read_csv(csv, dtype={"gravityspy_id": str})
    write_embeddings(d / "embeddings.h5", meta.gravityspy_id, np.random.default_rng(0).normal(size=(len(meta), 8)), {"encoder": "test"})
    meta.assign(label=meta.label.where(meta.index != 2, "Blip ")).to_csv(d / "padded_label.csv", index=False)
    meta.assign(label=meta.label.where(meta.index != 2, None)).to_csv(d / "missing_label.csv", index=False)
    meta.assign(snr=meta.snr.where(meta.index != 2, None)).to_csv(d / "nan_snr.csv", index=False)
    meta.iloc[:5].assign(predicted=meta.label[:5], confidence=0.9).to_csv(d / "five.csv", index=False)   # predictions of 5 glitches only
    (d / "thirty.yaml").write_text("n_neighbors: thirty\n"); (d / "negative.yaml").write_text("min_samples: -4\n")
    (d / "empty.h5").write_bytes(b""); (d / "text.ckpt").write_text("not a checkpoint\n"); (d / "empty.csv").write_text("")
    np.save(d / "flat.npy", np.zeros((2, 4096 * 8))); np.save(d / "complex.npy", np.ones(4096 * 8) * (1 + 1j))
    (d / "a_folder").mkdir()
    return d


AUDIT = ["audit", "--data", "{d}/dataset.h5", "--embeddings", "{d}/embeddings.h5", "--out", "{out}/audit"]
HOSTILE = [  # (arguments, text the one-line message must contain)
    (["info", "{d}/empty.h5"], "empty.h5 is empty"),
    (["embed", "--data", "{d}/empty.h5", "--out", "{out}/e.h5"], "empty.h5"),
    (["embed", "--data", "{d}/dataset.h5", "--ssl-epochs", "0", "--out", "{out}/e.h5"], "ssl_epochs"),
    (["embed", "--data", "{d}/dataset.h5", "--ssl-epochs", "-1", "--out", "{out}/e.h5"], "ssl_epochs"),
    (["embed", "--data", "{d}/dataset.h5", "--image-size", "0", "--out", "{out}/e.h5"], "image_size"),
    (["embed", "--data", "{d}/dataset.h5", "--batch-size", "0", "--out", "{out}/e.h5"], "batch_size"),
    (["predict", "--checkpoint", "{d}/text.ckpt", "--data", "{d}/dataset.h5", "--out", "{out}/p.csv"], "text.ckpt is not a checkpoint"),
    (["predict", "--checkpoint", "{d}/text.ckpt", "--data", "{d}/dataset.h5", "--batch-size", "0", "--out", "{out}/p.csv"], "batch_size"),
    (["predict", "--checkpoint", "{d}/text.ckpt", "--data", "{d}/dataset.h5", "--mc-samples", "-2", "--out", "{out}/p.csv"], "mc_samples"),
    (["predict", "--checkpoint", "{d}/text.ckpt", "--data", "{d}/dataset.h5", "--out", "{d}/a_folder"], "a_folder is a folder"),
    (["classify", "--checkpoint", "{d}/text.ckpt", "--strain", "{d}/flat.npy", "--sample-rate", "4096", "--out", "{out}/c.csv"], "constant"),
    (["classify", "--checkpoint", "{d}/text.ckpt", "--strain", "{d}/complex.npy", "--sample-rate", "4096", "--out", "{out}/c.csv"], "complex"),
    (["classify", "--checkpoint", "{d}/text.ckpt", "--strain", "{d}/flat.npy", "--sample-rate", "4096", "--out", "{d}/a_folder"], "a_folder is a folder"),
    (["scan", "--strain", "{d}/complex.npy", "--sample-rate", "4096", "--out", "{out}/s/scans.h5"], "complex"),
    (["scan", "--strain", "{d}/flat.npy", "--sample-rate", "4096", "--batch-size", "0", "--out", "{out}/s/scans.h5"], "--batch-size"),
    (AUDIT + ["--metadata", "{d}/padded_label.csv"], "surrounding spaces"),
    (AUDIT + ["--metadata", "{d}/missing_label.csv"], "missing label"),
    (AUDIT + ["--metadata", "{d}/nan_snr.csv"], "column 'snr'"),
    (AUDIT + ["--metadata", "{d}/empty.csv"], "empty.csv"),
    (AUDIT + ["--config", "{d}/thirty.yaml"], "n_neighbors: must be an integer >= 2, got 'thirty'"),
    (AUDIT + ["--config", "{d}/negative.yaml"], "min_samples: must be an integer >= 1, got -4"),
    (["similar", "--embeddings", "{d}/embeddings.h5", "--id", "x", "--k", "0"], "k: must be an integer >= 1"),
    (["similar", "--embeddings", "{d}/embeddings.h5", "--id", "x", "--k", "-3"], "k: must be an integer >= 1"),
    (["similar", "--embeddings", "{d}/embeddings.h5", "--id", "x", "--k", "100000"], "k: must be an integer >= 1"),
    (["report", "--metadata", "{d}/metadata.csv", "--audit", "{d}/a_folder", "--out", "{out}/report"], "no manifest.json"),
    (["report", "--metadata", "{d}/metadata.csv", "--predictions", "{d}/five.csv", "--out", "{out}/report"], "different glitches"),
]


@pytest.mark.parametrize("args,culprit", HOSTILE, ids=[f"{h[0][0]}-{i}" for i, h in enumerate(HOSTILE)])
def test_hostile_input_is_refused_at_the_door(tmp_path, study, args, culprit):
    "Exit code 2, one line naming the culprit, no traceback, and no output of any kind left behind."
    out = tmp_path / "out"; out.mkdir()
    code, _, err = gravityaudit(*[a.format(d=study, out=out) for a in args], cwd=tmp_path)
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.startswith("gravityaudit")]
    assert len(lines) == 1 and culprit in lines[0], err[-2000:]
    assert list(out.iterdir()) == [], list(out.iterdir())                       # nothing written, no folder, no temporaries


@pytest.mark.parametrize("command", ["info", "scan", "simulate", "fit", "validate", "test", "predict", "classify", "embed",
                                     "audit", "similar", "report", "pipeline", "download"])
def test_help_loads_no_pytorch(command, tmp_path):
    "`gravityaudit <command> --help` prints its page and exits 0 without importing PyTorch (so it answers at once)."
    code = ("import sys; from gravityaudit.cli import main\n"
            "try: rc = main([sys.argv[1], '--help'])\nexcept SystemExit as e: rc = e.code\n"
            "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded', rc, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, command], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.stderr.strip().splitlines()[-1] == "torch not loaded 0", r.stderr[-2000:]
    assert "usage" in r.stdout.lower() and command in r.stdout


def test_training_help_lists_configs_and_help_all_gives_lightning_page(tmp_path):
    "The short page names every shipped config; --help-all is LightningCLI's complete page with every model field."
    from gravityaudit.shipped_configs import list_configs
    rc, out, err = gravityaudit("fit", "--help", cwd=tmp_path)
    assert rc == 0 and all(f"  {name} " in out for name in list_configs()), out
    rc, out, err = gravityaudit("fit", "--help-all", cwd=tmp_path)
    assert rc == 0 and "--model.architecture" in out and "--trainer.max_epochs" in out, (out[-2000:], err[-2000:])
    assert "args parameter" not in err
