"""Where a CPU training step of custom_hgnet_2 spends its time, and what makes it faster.

    python benchmarks/train_profile.py [--steps 12] [--model custom_hgnet_2]

On a synthetic training set (benchmarks/train_speed.py's) it times, per batch of 64: data loading
with HawkEars' augmentation (one process), forward, backward and the optimizer step, then batch-norm
recalibration (20 batches), validation (per batch) and saving a checkpoint. Then the step (forward +
backward + optimizer) under variants: memory format, torch threads, BF16 autocast (fast where the CPU
has AVX512-BF16 or AMX, slow elsewhere) and torch.compile. Each variant runs in its own process so none inherits another's state.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import make_set  # noqa: E402

CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np, torch
from timm.optim import create_optimizer_v2
from hawk.augment import AugmentSettings, Augmenter
from hawk.ckpt import save_checkpoint
from hawk.models import create_model
from hawk.specset import SpecSet
from hawk.training.data import SpecDataset
from hawk.training.module import recalibrate_bn
specs, model_name, steps, variant, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), Path(sys.argv[5])
torch.manual_seed(0)
if variant.get("threads"):
    torch.set_num_threads(variant["threads"])
ss = SpecSet.open(specs)
idx = np.arange(len(ss))
ds = SpecDataset(ss, idx, seed=0)
ds.augmenter = Augmenter(AugmentSettings(), ss.labels, ds.fetch, ss.class_codes.index("Noise"))
loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=0)
fmt = torch.channels_last if variant.get("channels_last", True) else torch.contiguous_format
model = create_model(model_name, len(ss.class_codes)).to(memory_format=fmt)
opt = create_optimizer_v2(model.parameters(), "adamp", lr=0.0025)
step_model = torch.compile(model) if variant.get("compile") else model
res = {}
t = time.perf_counter(); batches = [b for _, b in zip(range(steps + 2), loader)]; res["data"] = (time.perf_counter() - t) / len(batches)
def step(x, y, timed):
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(variant.get("bf16"))):
        logits = step_model(x.contiguous(memory_format=fmt))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
    t1 = time.perf_counter(); loss.backward(); t2 = time.perf_counter()
    opt.step(); opt.zero_grad(set_to_none=True); t3 = time.perf_counter()
    if timed:
        for k, v in (("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", t3 - t2)):
            res[k] = res.get(k, 0) + v / steps
model.train()
for x, y in batches[:2]:
    step(x, y, False)  # warm-up (and compilation)
t = time.perf_counter()
for x, y in batches[2:]:
    step(x, y, True)
res["step"] = (time.perf_counter() - t) / steps
if not variant.get("only_step"):
    t = time.perf_counter(); recalibrate_bn(model, batches, 20); res["bn_recalibrate_20"] = time.perf_counter() - t
    model.eval()
    with torch.no_grad():
        t = time.perf_counter()
        for x, _ in batches[:steps]:
            model(x.contiguous(memory_format=fmt))
        res["validate"] = (time.perf_counter() - t) / steps
    t = time.perf_counter(); save_checkpoint(out / "p.ckpt", model_name, model, [(c, c) for c in ss.class_codes], {}); res["checkpoint"] = time.perf_counter() - t
print(json.dumps(res))
"""

VARIANTS = {
    "channels_last, 2 threads (today)": {},
    "contiguous (NCHW)": {"channels_last": False, "only_step": True},
    "1 thread": {"threads": 1, "only_step": True},
    "bf16 autocast": {"bf16": True, "only_step": True},
    "torch.compile": {"compile": True, "only_step": True},
    "bf16 autocast + torch.compile": {"bf16": True, "compile": True, "only_step": True},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--model", default="custom_hgnet_2")
    p.add_argument("--only", help="run one variant (a key of VARIANTS)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        specs = make_set(Path(tmp) / "set", 64 * (args.steps + 2))
        for name, variant in VARIANTS.items():
            if args.only and name != args.only:
                continue
            out = subprocess.run([sys.executable, "-c", CHILD, str(specs), args.model, str(args.steps),
                                  json.dumps(variant), tmp], capture_output=True, text=True)
            if out.returncode:
                print(f"{name}: failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            parts = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in r.items())
            print(f"{name}: {64 / r['step']:.1f} spectrograms/s in steps; per batch of 64: {parts}", flush=True)


if __name__ == "__main__":
    main()
