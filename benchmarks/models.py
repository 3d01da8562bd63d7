"""CPU cost of every named architecture: parameters, forward time per batch (inference) and a training step.

Usage: python benchmarks/models.py [--threads 2] [--batch 8] [--repeats 3] [--names small_cnn_attention merged_cnn ...]
Prints one row per model (parameters, multiply-adds per glitch, seconds) and its time as a ratio against the `merged_cnn` baseline measured in the same process.
ViTs are measured at their native 140 x 170 (dynamic size, padded) and at 224 x 224.
"""
import argparse, time
import torch
import torch.nn.functional as F
from gravityaudit.models import create_model, list_models, count_parameters
from gravityaudit.taxonomy import IMAGE_SHAPE


def timed(fn, repeats: int) -> float:
    "Median seconds of `fn()` over `repeats` runs after one warm-up run."
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def measure(name: str, batch: int, repeats: int, size=None) -> dict:
    "Parameters, inference seconds per batch and training-step seconds per batch of one model."
    torch.manual_seed(0)
    model = create_model(name, image_size=size)
    hw = (size, size) if size else IMAGE_SHAPE
    x = torch.rand(batch, 4, 1, *hw)
    y = torch.randint(0, 22, (batch,))
    model.eval()
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter: model(x[:1])   # multiply-adds of one glitch: load-independent
    with torch.no_grad(): infer = timed(lambda: model(x), repeats)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    def step():
        opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
    train = timed(step, max(1, repeats - 1))
    return dict(name=name + (f"@{size}" if size else ""), params=count_parameters(model), gmac=counter.get_total_flops() / 2e9,
                infer=infer, train=train)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--names", nargs="*", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    names = a.names or list_models()
    runs = [("merged_cnn", None)] + [(n, None) for n in names if n != "merged_cnn"]
    runs += [(n, 224) for n in names if n.startswith("vit")]
    rows = [measure(n, a.batch, a.repeats, s) for n, s in runs]
    base = rows[0]
    print(f"torch {torch.__version__}, {a.threads} thread(s), batch of {a.batch} glitches x 4 views")
    print(f"{'model':28s} {'parameters':>12s} {'GMAC/glitch':>12s} {'forward s':>10s} {'x merged':>9s} {'train step s':>13s} {'x merged':>9s}")
    for r in rows:
        print(f"{r['name']:28s} {r['params']:>12,d} {r['gmac']:>12.2f} {r['infer']:>10.3f} {r['infer'] / base['infer']:>9.1f} "
              f"{r['train']:>13.3f} {r['train'] / base['train']:>9.1f}")


if __name__ == "__main__":
    main()
