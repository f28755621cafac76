"""hawk's defaults on the realistic benchmark kit, the way a new user would run them.

Writes the kit (benchmarks/kit.py), copies the project into a clean folder (a fresh git repository,
no outputs), declares the kit's classes as local sources and its soundscapes as the test set, runs
`dvc repro` with the defaults (plus any --set overrides) and prints:
- per-sound, per-minute and per-recording macro AP on the annotated test soundscapes, of the ensemble
  and, when train made more than one checkpoint (a CNN and an embedding head), of each alone;
- the wall time of every stage (summed over classes);
- with unattended curation: how many spectrograms it dropped, and how many of those held a call of
  their class (the kit knows where every call is); how well the model's out-of-fold scores and the
  stored activity each tell windows with a call from empty ones (ROC-AUC), the share of kept windows
  that hold no call, and the share of windows with a call that were lost.

    python benchmarks/quality.py [--work /tmp/hawk-quality] [--set select.unattended.by=activity ...]
                                 [--name quality-kit] [--design recorded|synthetic] [--seed 0]
                                 [--recordings 7 --soundscapes 12]

The result goes to benchmarks/results/<name>.json (docs/benchmarks.md is made from it).

It is a benchmark, run by hand (about 10-30 minutes on 2 cores), not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from kit import add_kit_arguments, kit_from  # noqa: E402
from results import commit, record  # noqa: E402

COPY = ("hawk", "stages", "conf", "dvc.yaml", ".dvcignore", ".dvc/config", "pyproject.toml", "data/field/README.txt")


def sh(cwd: Path, *cmd: str, stream: bool = False) -> tuple[str, dict[str, float]]:
    """Run a command; with ``stream``, time every DVC stage from its 'Running stage' line."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="q", GIT_AUTHOR_EMAIL="q@q", GIT_COMMITTER_NAME="q",
               GIT_COMMITTER_EMAIL="q@q")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, times = [], defaultdict(float)
    stage, since = None, time.perf_counter()
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"Running stage '([^'@]+)", line)
        if m:
            now = time.perf_counter()
            if stage:
                times[stage] += now - since
            stage, since = m[1], now
        if stream and m:
            print(f"  {line.strip()}", flush=True)
    proc.wait()
    if stage:
        times[stage] += time.perf_counter() - since
    out = "".join(lines)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out[-4000:]}")
    return out, dict(times)


def project(work: Path, kit: Path, overrides: list[str]) -> Path:
    repo = work / "project"
    if repo.exists():
        shutil.rmtree(repo)
    for name in COPY:
        src, dst = ROOT / name, repo / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    shutil.copy(kit / "classes.yaml", repo / "conf" / "classes" / "kit.yaml")
    sh(repo, sys.executable, "-m", "stages.compose", "classes=kit", "search=default", "select=default",
       "testset.kind=local", f"testset.path={kit / 'test'}", *overrides)
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "quality benchmark project")
    return repo


def coarser(per_sound: Path, out: Path) -> tuple[Path, Path]:
    """Per-minute and per-recording annotation files from the per-sound ones."""
    with open(per_sound, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    minutes = sorted({(r["recording"], int(float(r["start_time"]) // 60), r["species"]) for r in rows})
    recs = sorted({(r["recording"], r["species"]) for r in rows})
    pm, pr = out / "per_minute.csv", out / "per_recording.csv"
    with open(pm, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("recording", "minute", "species"), *minutes])
    with open(pr, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("recording", "species"), *recs])
    return pm, pr


def _calls(truth_csv: Path) -> dict[str, list[tuple[float, float]]]:
    calls = defaultdict(list)
    with open(truth_csv, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["focal"] == "1":
                calls[r["file"]].append((float(r["start"]), float(r["end"])))
    return calls


def _holds(calls: list[tuple[float, float]], o: float, segment: float = 3.0, min_overlap: float = 0.3) -> bool:
    return any(min(b, o + segment) - max(a, o) >= min(min_overlap, b - a) for a, b in calls)


def dropped_calls(repo: Path, truth_csv: Path) -> dict[str, int]:
    """Spectrograms unattended curation dropped, and how many held a call of their class."""
    calls = _calls(truth_csv)
    dropped = held = 0
    for listing in (repo / "data" / "dropped").glob("*/dropped.csv"):
        with open(listing, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                if r.get("restored") == "1":  # kept: a person overruled the drop
                    continue
                dropped += 1
                held += _holds(calls[r["file"]], float(r["offset"]))
    return {"dropped": dropped, "dropped_holding_a_call": held}


def selection_quality(repo: Path, truth_csv: Path, whole: tuple[str, ...] = ("Noise", "Other")) -> dict:
    """How well each window scorer tells the bird classes' windows that hold their call from the
    empty ones (ROC-AUC against the kit's truth, pooled over classes and the mean per class), and what
    select kept: the share of kept windows with no call, the share of windows with a call it dropped,
    and the share of calls that no kept window holds (windows overlap by half, so a call at the edge
    of a dropped window is often whole in a kept neighbour)."""
    from sklearn.metrics import roc_auc_score

    sys.path.insert(0, str(repo))
    from hawk.db import SpecDB

    calls = _calls(truth_csv)
    per_class: dict[str, dict[str, list]] = defaultdict(lambda: {"activity": [], "model": [], "holds": []})
    kept_holds = []
    lost = holding = calls_held = calls_missed = 0
    for db_path in sorted((repo / "data" / "db").glob("*.db")):
        code = db_path.stem
        if code in whole:
            continue
        with SpecDB(db_path) as db:
            activity, offsets = db.activity(), db.offsets()
        scores = {}
        score_csv = repo / "data" / "score" / f"{code}.csv"
        if score_csv.exists():
            with open(score_csv, newline="", encoding="utf-8") as f:
                scores = {(r["file"], float(r["offset"])): float(r["relative"]) for r in csv.DictReader(f)}
        with SpecDB(repo / "data" / "select" / f"{code}.db") as db:
            kept = {(f, o) for f, offs in db.offsets().items() for o in offs}
        for fname, offs in offsets.items():
            for call in calls[fname]:
                if any(_holds([call], o) for o in offs):
                    calls_held += 1
                    calls_missed += not any(_holds([call], o) for o in offs if (fname, o) in kept)
            for o in offs:
                h = _holds(calls[fname], o)
                pc = per_class[code]
                pc["holds"].append(h)
                pc["activity"].append(activity.get(fname, {}).get(o, 0.0))
                pc["model"].append(scores.get((fname, o), float("nan")))
                holding += h
                if (fname, o) in kept:
                    kept_holds.append(h)
                elif h:
                    lost += 1
    out: dict = {"kept_empty_share": round(1 - sum(kept_holds) / max(1, len(kept_holds)), 3),
                 "calls_lost_share": round(lost / max(1, holding), 3),
                 "calls_missed_share": round(calls_missed / max(1, calls_held), 3)}
    for scorer in ("activity", "model"):
        pooled_y, pooled_s, aucs = [], [], []
        for pc in per_class.values():
            s = pc[scorer]
            if any(v != v for v in s):  # not scored (curation by activity)
                break
            pooled_y += pc["holds"]
            pooled_s += s
            if 0 < sum(pc["holds"]) < len(pc["holds"]):
                aucs.append(roc_auc_score(pc["holds"], s))
        else:
            if aucs:
                out[f"{scorer}_roc_auc"] = {"pooled": round(roc_auc_score(pooled_y, pooled_s), 3),
                                            "per_class_mean": round(sum(aucs) / len(aucs), 3)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/hawk-quality"))
    p.add_argument("--set", dest="overrides", action="append", default=[], help="a Hydra override (repeatable)")
    p.add_argument("--name", default="quality-kit", help="benchmarks/results/<name>.json")
    add_kit_arguments(p)
    args = p.parse_args()
    work = args.work.resolve()
    kit = kit_from(work, args)
    at = commit()  # the code copied into the project, whatever is checked out when the run ends
    repo = project(work, kit, args.overrides)
    start = time.perf_counter()
    _, times = sh(repo, "dvc", "repro", stream=True)
    total = time.perf_counter() - start
    pm, pr = coarser(kit / "test" / "annotations.csv", work)
    ap = {"per_sound": json.loads((repo / "metrics" / "test.json").read_text())["annotated"]["macro_ap"]}
    for kind, ann in (("per_minute", pm), ("per_recording", pr)):
        sh(repo, sys.executable, "-m", "stages.test", f"test.annotations={ann}", f"paths.metrics={work / kind}",
           "test.progress=false")
        ap[kind] = json.loads((work / kind / "test.json").read_text())["annotated"]["macro_ap"]
    ckpts = sorted((repo / "models" / "ckpt").glob("*.ckpt"))
    members = {}
    for ck in ckpts if len(ckpts) > 1 else []:
        alone = work / "members" / ck.stem
        shutil.rmtree(alone, ignore_errors=True)
        (alone / "ckpt").mkdir(parents=True)
        shutil.copy(ck, alone / "ckpt" / ck.name)
        members[ck.stem] = {}
        for kind, ann in (("per_sound", kit / "test" / "annotations.csv"), ("per_minute", pm), ("per_recording", pr)):
            sh(repo, sys.executable, "-m", "stages.test", f"test.annotations={ann}", f"paths.ckpt={alone / 'ckpt'}",
               f"paths.metrics={alone / kind}", "test.progress=false")
            members[ck.stem][kind] = json.loads((alone / kind / "test.json").read_text())["annotated"]["macro_ap"]
    with open(repo / "metrics" / "test_per_class.csv", newline="", encoding="utf-8") as f:
        per_class = list(csv.DictReader(f))
    train = json.loads((repo / "metrics" / "train.json").read_text())
    result = {"overrides": args.overrides, "kit": kit.name, "kit_seed": args.seed, "macro_ap": ap, "members_macro_ap": members, "wall_seconds": round(total),
              "stage_seconds": {k: round(v) for k, v in times.items()},
              "train_spectrograms_per_s": train.get("spectrograms_per_s"),
              "per_class_ap": {r["code"]: r.get("ap") for r in per_class if r.get("annotated") in ("True", "true", "1")},
              **dropped_calls(repo, kit / "truth.csv"), "selection": selection_quality(repo, kit / "truth.csv")}
    print(json.dumps(result, indent=2))
    record(args.name, f"Quality on the benchmark kit ({' '.join(args.overrides) or 'defaults'})", result,
           command=" ".join(["python benchmarks/quality.py", f"--design {args.design} --seed {args.seed}",
                             *("--set " + o for o in args.overrides)]), at=at)


if __name__ == "__main__":
    main()
