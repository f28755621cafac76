"""compose: write params.yaml from conf/ exactly as `dvc exp run` does (DVC's Hydra integration).

Run it (or `make params`) after editing conf/ by hand; tests fail when params.yaml and conf/ drift apart.

    python -m stages.compose [classes=example ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dvc.utils.hydra import compose_and_dump


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. classes=example")
    args = p.parse_args()
    root = Path.cwd()
    compose_and_dump(root / "params.yaml", str(root / "conf"), None, "config", str(root), args.overrides)
    print("params.yaml written from conf/")


if __name__ == "__main__":
    main()
