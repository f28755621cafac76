"""Class declarations: the species (and Noise, Other) a model learns, and where their audio comes from.

A class is declared once, keyed by its code (the short name HawkEars uses in file names and labels,
such as ``AMRO`` for American Robin). ``Noise`` and ``Other`` are ordinary classes with reserved names:
training treats Noise specially (it is mixed into other spectrograms), so the name must be exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hawk.errors import HawkError
from hawk.fsutil import atomic_open

NOISE = "Noise"
OTHER = "Other"
_CLASS_KEYS = {"name", "sources", "max_recordings", "code"}
SOURCE_KINDS = ("xeno_canto", "inat", "local", "demo")
_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# Which keys each source kind requires, and which it accepts on top.
_SOURCE_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "xeno_canto": ({"query"}, set()),
    "inat": ({"taxon"}, {"quality_grade"}),
    "local": ({"path"}, {"mode"}),
    "demo": ({"call"}, set()),
}


class ClassConfigError(HawkError, ValueError):
    """A class declaration that cannot be used; the message names the entry."""


@dataclass(frozen=True)
class Source:
    """One place recordings of a class come from (kind plus its settings)."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class ClassSpec:
    code: str
    name: str
    sources: tuple[Source, ...] = ()
    max_recordings: int | None = None


def _parse_source(code: str, i: int, raw: Any) -> Source:
    where = f"class {code!r}, source #{i + 1}"
    if not isinstance(raw, Mapping):
        raise ClassConfigError(f"{where}: expected a mapping with a 'kind', got {raw!r}")
    kind = raw.get("kind")
    if kind not in SOURCE_KINDS:
        raise ClassConfigError(
            f"{where}: unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}"
        )
    required, optional = _SOURCE_KEYS[kind]
    options = {k: v for k, v in raw.items() if k != "kind"}
    missing = required - options.keys()
    if missing:
        raise ClassConfigError(f"{where} ({kind}): missing {', '.join(sorted(missing))}")
    unknown = options.keys() - required - optional
    if unknown:
        raise ClassConfigError(f"{where} ({kind}): unknown key(s) {', '.join(sorted(unknown))}")
    for key in required:
        if options[key] in (None, ""):
            raise ClassConfigError(f"{where} ({kind}): {key} is empty")
    return Source(kind, options)


def parse_classes(raw: Mapping[str, Any]) -> list[ClassSpec]:
    """Validate the ``classes`` config (a mapping code -> {name, sources, max_recordings}).

    Fails at once, naming the entry, on an empty name, a malformed or duplicate code (codes
    differing only in case collide on case-insensitive file systems) or an unknown source kind.
    """
    specs: list[ClassSpec] = []
    seen_codes: dict[str, str] = {}
    seen_names: dict[str, str] = {}
    for code, entry in raw.items():
        code = str(code)
        if not _CODE_RE.match(code):
            raise ClassConfigError(
                f"class {code!r}: a code may hold only letters, digits, '_' and '-' (it names folders and DVC stages)"
            )
        if not isinstance(entry, Mapping):
            raise ClassConfigError(f"class {code!r}: expected a mapping with a 'name', got {entry!r}")
        unknown = sorted(set(map(str, entry)) - _CLASS_KEYS)
        if unknown:
            raise ClassConfigError(f"class {code!r}: unknown key(s) {', '.join(unknown)}; a class takes "
                                   f"{', '.join(sorted(_CLASS_KEYS))}")
        if entry.get("code") not in (None, code):
            raise ClassConfigError(f"class {code!r}: 'code' {entry.get('code')!r} differs from its key")
        name = str(entry.get("name") or "").strip()
        if not name:
            raise ClassConfigError(f"class {code!r}: empty name")
        if code.lower() in seen_codes:
            raise ClassConfigError(f"class {code!r}: duplicate code (already used by {seen_codes[code.lower()]!r})")
        if name.lower() in seen_names:
            raise ClassConfigError(f"class {code!r}: duplicate name {name!r} (already class {seen_names[name.lower()]!r})")
        seen_codes[code.lower()] = code
        seen_names[name.lower()] = code
        sources = tuple(_parse_source(code, i, s) for i, s in enumerate(entry.get("sources") or ()))
        cap = entry.get("max_recordings")
        if cap is not None and (not isinstance(cap, int) or cap < 0):
            raise ClassConfigError(f"class {code!r}: max_recordings must be a whole number >= 0, got {cap!r}")
        specs.append(ClassSpec(code=code, name=name, sources=sources, max_recordings=cap))
    return specs


def check_local_sources(specs: Iterable[ClassSpec], root: str | Path) -> None:
    """Fail, naming each class and folder, when a local source's folder does not exist (relative paths
    are taken from ``root``, the project folder the stages run in)."""
    missing = []
    for spec in specs:
        for i, src in enumerate(spec.sources):
            if src.kind == "local":
                folder = Path(str(src.get("path"))).expanduser()
                if not (Path(root) / folder).is_dir():
                    missing.append(f"class {spec.code!r}, source #{i + 1} (local): folder {folder} does not exist")
    if missing:
        raise ClassConfigError("; ".join(missing))


def get_class(raw: Mapping[str, Any], code: str) -> ClassSpec:
    """The validated spec of one class; validating all of them catches cross-class clashes."""
    for spec in parse_classes(raw):
        if spec.code == code:
            return spec
    raise ClassConfigError(f"class {code!r} is not declared (known: {', '.join(map(str, raw))})")


def read_classes_txt(path: str | Path) -> list[tuple[str, str]]:
    """Read a HawkEars ``classes.txt``: ``Name,CODE`` lines, ``#`` comments and blank lines ignored."""
    pairs: list[tuple[str, str]] = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, code = line.rpartition(",")
        if not sep or not name.strip() or not code.strip():
            raise ClassConfigError(f"{path}:{lineno}: expected 'Name,CODE', got {line!r}")
        pairs.append((name.strip(), code.strip()))
    seen: dict[str, str] = {}
    for name, code in pairs:
        if code.lower() in seen:
            raise ClassConfigError(f"{path}: duplicate code {code!r} (classes {seen[code.lower()]!r} and {name!r})")
        seen[code.lower()] = name
    parse_classes(classes_to_config(pairs))  # same checks as the config: names, codes
    return pairs


def write_classes_txt(path: str | Path, classes: Iterable[ClassSpec | tuple[str, str]]) -> None:
    """Write the HawkEars ``classes.txt`` for the given classes, in order."""
    lines = ["# Name,CODE (HawkEars classes.txt format)"]
    for c in classes:
        name, code = (c.name, c.code) if isinstance(c, ClassSpec) else c
        lines.append(f"{name},{code}")
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def classes_to_config(pairs: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Turn imported ``classes.txt`` pairs into a ``classes`` config block (sources to be filled in)."""
    return {code: {"name": name, "sources": []} for name, code in pairs}
