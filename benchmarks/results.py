"""Benchmark results as files: each benchmark writes benchmarks/results/<name>.json with its figures,
the anchor measured beside them in the same run (a floor, a peer, the old defaults), and where and
when it ran (commit, date, machine). docs/benchmarks.md is generated from these files
(`python benchmarks/report.py`), so a figure changes by rerunning its benchmark, never by hand."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict[str, Any]:
    """CPU model, cores and GPU of this machine: figures depend on them."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu or "none"}


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    # another benchmark's result file written meanwhile is not a change to the code measured
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+changes" if dirty else "") if out.returncode == 0 else "unknown"


def record(name: str, title: str, figures: dict[str, Any], anchor: dict[str, Any] | None = None,
           command: str = "", notes: str = "", at: str | None = None) -> Path:
    """Write benchmarks/results/<name>.json (replacing the previous run's) and return its path; ``at``
    is the commit measured when it is not the one checked out now (a run that copied the code at its
    start)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"name": name, "title": title, "command": command, "figures": figures, "anchor": anchor or {},
            "notes": notes, "commit": at or commit(), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
            "machine": machine()}
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    print(f"results: {path.relative_to(ROOT)}")
    return path
