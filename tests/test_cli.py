"""The command line's error convention: a user error is one line on stderr naming the culprit, exit code 2."""
import os, subprocess, sys
from pathlib import Path
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
