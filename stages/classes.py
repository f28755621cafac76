"""classes: the class list as a HawkEars classes.txt, and import of one into hawk's config.

    python -m stages.classes export              # writes paths.classes_txt (a DVC stage)
    python -m stages.classes import classes.txt  # prints a conf/classes/<name>.yaml to fill in sources
"""

from __future__ import annotations

import sys

import yaml
from omegaconf import OmegaConf

from hawk.classes import classes_to_config, parse_classes, read_classes_txt, write_classes_txt
from stages._cli import load_config, parser, run


def main() -> None:
    p = parser(__doc__)
    p.add_argument("action", choices=["export", "import"])
    p.add_argument("--file", help="classes.txt to import")
    argv = sys.argv[1:]
    if argv[:1] == ["import"] and len(argv) == 2:  # positional file for convenience
        argv = ["import", "--file", argv[1]]
    args = p.parse_args(argv)
    if args.action == "import":
        if not args.file:
            p.error("import needs a classes.txt path")
        print(yaml.safe_dump(classes_to_config(read_classes_txt(args.file)), sort_keys=False), end="")
        return
    cfg = load_config(args)
    specs = parse_classes(OmegaConf.to_container(cfg.classes, resolve=True))
    write_classes_txt(cfg.paths.classes_txt, specs)
    print(f"{len(specs)} classes -> {cfg.paths.classes_txt}")


if __name__ == "__main__":
    run(main)
