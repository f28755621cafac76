"""Settings dataclasses built from config mappings, refusing unknown keys so typos never pass silently."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from hawk.errors import HawkError

T = TypeVar("T")


class SettingsError(HawkError, ValueError):
    """Settings that name keys no dataclass field has."""


def from_mapping(cls: type[T], cfg: Any, what: str) -> T:
    """``cls(**cfg)``, or a ValueError naming the unknown keys (``what`` says which settings)."""
    data = dict(cfg)
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise SettingsError(f"unknown {what} setting(s): {', '.join(sorted(unknown))}")
    return cls(**data)
