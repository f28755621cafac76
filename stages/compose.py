"""compose: write params.yaml from conf/ exactly as `dvc exp run` does (DVC's Hydra integration).

Run it (or `make params`) after editing conf/ by hand; tests fail when params.yaml and conf/ drift apart.
The class config is checked first (source kinds and keys, duplicate codes, local folders that do not
exist), so a typo fails here and not in the middle of `dvc repro`; params.yaml is left as it was.

    python -m stages.compose [classes=example ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dvc.utils.hydra import compose_and_dump
from omegaconf import OmegaConf

from hawk.classes import check_local_sources, parse_classes
from stages._cli import compose_config, run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. classes=example")
    args = p.parse_args()
    root = Path.cwd()
    cfg = compose_config(root / "conf", "config", list(args.overrides))
    check_local_sources(parse_classes(OmegaConf.to_container(cfg.classes, resolve=True)), root)
    compose_and_dump(root / "params.yaml", str(root / "conf"), None, "config", str(root), args.overrides)
    print("params.yaml written from conf/")


if __name__ == "__main__":
    run(main)
