"""How fast the review page answers the keyboard on a class of many matches (run by hand).

Builds a curation folder of N search-match images (copies of real plots of demo recordings, named
like search results), serves it, and in headless Chromium times: the first full page load, arrow
moves, rejects (each one a POST and a rename on disk) and undos.

    python benchmarks/review_keyboard.py [--n 200] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from hawk.download.demo import make_demo_recordings
from hawk.extract import extract_class
from hawk.plot import plot_db
from hawk.review import ImageFolder, ReviewServer
from hawk.spectrogram import SpecSettings
from results import record


def build(root: Path, n: int) -> ImageFolder:
    rec = root / "recordings/RIWH"
    rec.mkdir(parents=True)
    make_demo_recordings(rec, "whistle", 8, seed=1)
    extract_class(rec, root / "db/RIWH.db", root / "db/r.csv", "R", "RIWH", SpecSettings(), workers=1,
                  show_progress=False)
    plots = plot_db(root / "db/RIWH.db", root / "plots", SpecSettings())
    folder = root / "curation/RIWH"
    folder.mkdir(parents=True)
    for i in range(n):
        src = plots[i % len(plots)]
        stem, offset = src.stem.rsplit("-", 1)
        shutil.copy(src, folder / f"{i}~{stem}-{offset}~{i / n * 0.5:.3f}.jpeg")
    return ImageFolder("RIWH", folder, rec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = build(root, args.n)
        server = ReviewServer([folder], SpecSettings().sample_rate).start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            t = time.perf_counter()
            page.goto(server.url)
            page.wait_for_function(f"() => document.querySelectorAll('.card').length === {args.n}")
            page.wait_for_load_state("networkidle")
            load = time.perf_counter() - t
            t = time.perf_counter()
            for _ in range(100):
                page.keyboard.press("ArrowRight")
            page.evaluate("() => new Promise(requestAnimationFrame)")
            arrows = (time.perf_counter() - t) / 100
            t = time.perf_counter()
            for k in range(50):
                page.keyboard.press("x")
                page.wait_for_function(f"() => document.querySelectorAll('.card.rejected').length === {k + 1}")
            rejects = (time.perf_counter() - t) / 50
            t = time.perf_counter()
            for k in range(20):
                page.keyboard.press("u")
                page.wait_for_function(f"() => document.querySelectorAll('.card.rejected').length === {49 - k}")
            undos = (time.perf_counter() - t) / 20
            browser.close()
        server.stop()
        on_disk = len(list((folder.path / "rejected").iterdir()))
    print(f"{args.n} matches: page load {load:.2f} s; arrow {arrows * 1000:.1f} ms; reject {rejects * 1000:.1f} ms "
          f"(POST + rename + redraw); undo {undos * 1000:.1f} ms; {on_disk} rejected on disk (expected 30)")
    record("review-keyboard", f"The review page by keyboard ({args.n} matches, headless Chromium)",
           {"page_load_s": round(load, 2), "arrow_ms": round(arrows * 1000, 1), "reject_ms": round(rejects * 1000, 1),
            "undo_ms": round(undos * 1000, 1), "rejected_on_disk": on_disk}, command="python benchmarks/review_keyboard.py")


if __name__ == "__main__":
    main()
