"""Search latency: one exact brute-force query over 10k, 100k and 1M stored 1024-d embeddings.

    python benchmarks/search_latency.py [--sizes 10000 100000 1000000] [--repeat 20]

Times hawk.search.nearest (matrix-vector product + partial sort, num=200, dist=0.5) on random unit
vectors; the first query is a warm-up. Peak memory is dominated by the embeddings (4 GB at 1M).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hawk.search import nearest
from results import record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    figures = {}
    for n in args.sizes:
        v = np.empty((n, args.dim), np.float32)
        for start in range(0, n, 100_000):  # fill in chunks to keep the float64 temporaries small
            chunk = rng.standard_normal((min(100_000, n - start), args.dim), dtype=np.float32)
            v[start : start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
        queries = v[rng.integers(0, n, args.repeat + 1)]
        nearest(v, queries[0], 200, 0.5)
        times = []
        for q in queries[1:]:
            t = time.perf_counter()
            nearest(v, q, 200, 0.5)
            times.append(time.perf_counter() - t)
        print(f"{n:>9,} embeddings: median {np.median(times) * 1000:7.1f} ms, max {max(times) * 1000:7.1f} ms per query")
        figures[f"{n}_embeddings_median_ms"] = round(float(np.median(times)) * 1000, 2)
        del v
    record("search-latency", f"Exact search latency per query ({args.dim}-d)", figures,
           command="python benchmarks/search_latency.py")


if __name__ == "__main__":
    main()
