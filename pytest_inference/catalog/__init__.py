"""The catalogs, as data: what every metric is (``metrics.toml``, read here) and what every
Kubernetes check is (``checks.toml``, read by :mod:`.checks`).

A target profile says what it *requires* of a metric (``op``, ``threshold``); the catalog says what
the metric *is*: its unit, the statistic the suite reports, which direction is better, one line of
description.  Targets take unit and statistic from here, baselines and comparison tables their
direction, the README its metrics table (``python -m pytest_inference.catalog readme README.md``).

Pure: ``tomllib`` and the standard library only; the file is read once, on first use.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import stats

HERE = Path(__file__).resolve().parent
METRICS_FILE = HERE / "metrics.toml"

LOWER, HIGHER, ZERO = "lower", "higher", "zero"
#: what ``better`` may say; "none" (stored as None) = neither direction is better
BETTER = (LOWER, HIGHER, ZERO, "none")

_FIELDS = {"name", "unit", "stat", "better", "description", "values"}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_NAME = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_{}]+)+$")
_UNIT = re.compile(r"^[A-Za-z$%/]+$")


class CatalogError(Exception):
    """The catalog file itself is malformed (a programming error; one line)."""


class UnknownMetric(KeyError):
    """A metric the catalog does not have; ``str()`` is one line with a "did you mean"."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Metric:
    """One metric: what it is. ``family`` is the catalog pattern a member of a family came from."""

    name: str
    unit: str | None
    stat: str
    better: str | None       # "lower" | "higher" | "zero" | None
    description: str
    family: str | None = None
    values: tuple[str, ...] = ()

    @property
    def direction(self) -> str | None:
        """'lower' or 'higher' for a baseline comparison: a count that must be 0 is better lower."""
        return LOWER if self.better == ZERO else self.better


def entry_head(file: str, kind: str, i: int, raw: Any, key: str, pattern: Any, like: str, fields: set[str],
               error: type[Exception]) -> tuple[str, str]:
    """``(key's value, where)`` of a catalog file's ``i``-th ``[[kind]]`` entry once it is a table whose
    ``key`` matches ``pattern`` and which has no field outside ``fields``; else ``error`` in one line."""
    where = f"{file}: {kind}[{i}]"
    if not isinstance(raw, dict):
        raise error(f"{where} is not a table")
    value = raw.get(key)
    if not isinstance(value, str) or not pattern.match(value):
        raise error(f"{where} {key} {value!r} is not like {like!r}")
    where = f"{file}: {value}"
    unknown = set(raw) - fields
    if unknown:
        raise error(f"{where} has unknown field(s) {', '.join(sorted(unknown))}")
    return value, where


def _entry(i: int, raw: Any) -> Metric:
    name, where = entry_head(METRICS_FILE.name, "metric", i, raw, "name", _NAME, "suite.metric_unit", _FIELDS,
                             CatalogError)
    missing = {"unit", "stat", "better", "description"} - set(raw)
    if missing:
        raise CatalogError(f"{where} lacks {', '.join(sorted(missing))}")
    unit, stat, better, desc = raw["unit"], raw["stat"], raw["better"], raw["description"]
    if not isinstance(unit, str) or (unit and not _UNIT.match(unit)):
        raise CatalogError(f"{where} unit {unit!r} is not a unit like 'ms' or 'tok/s' ('' for none)")
    if stat not in stats.STATS:
        raise CatalogError(f"{where} stat {stat!r} is not one of {', '.join(stats.STATS)}")
    if better not in BETTER:
        raise CatalogError(f"{where} better {better!r} is not one of {', '.join(BETTER)}")
    if not isinstance(desc, str) or not desc.strip() or "\n" in desc:
        raise CatalogError(f"{where} description must be one non-empty line")
    values = raw.get("values", [])
    holes = _PLACEHOLDER.findall(name)
    if values and len(holes) != 1:
        raise CatalogError(f"{where} has values but not one {{placeholder}}")
    if not isinstance(values, list) or not all(isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_]+", v) for v in values):
        raise CatalogError(f"{where} values must be a list of words")
    return Metric(name=name, unit=unit or None, stat=stat, better=None if better == "none" else better,
                  description=desc.strip(), family=name if holes else None, values=tuple(values))


@lru_cache(maxsize=1)
def _load() -> tuple[tuple[Metric, ...], dict[str, Metric], tuple[tuple[re.Pattern[str], Metric], ...]]:
    try:
        with METRICS_FILE.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"cannot read {METRICS_FILE}: {exc}") from None
    entries = tuple(_entry(i, raw) for i, raw in enumerate(data.get("metric", [])))
    exact: dict[str, Metric] = {}
    families: list[tuple[re.Pattern[str], Metric]] = []
    for m in entries:
        if m.name in exact or any(f.name == m.name for _, f in families):
            raise CatalogError(f"{METRICS_FILE.name}: {m.name} is listed twice")
        if m.family:
            word = "|".join(map(re.escape, m.values)) if m.values else r"[A-Za-z0-9_]+"
            parts = _PLACEHOLDER.split(m.name)  # text, hole, text, …
            pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?:{word})" for i, p in enumerate(parts))
            families.append((re.compile(pattern + r"\Z"), m))
        else:
            exact[m.name] = m
    return entries, exact, tuple(families)


def metrics() -> tuple[Metric, ...]:
    """Every catalog entry, in the file's order (a family once, under its pattern)."""
    return _load()[0]


def find(name: str) -> Metric | None:
    """The metric ``name`` (a family member named as itself), or None when the catalog lacks it."""
    _, exact, families = _load()
    if name in exact:
        return exact[name]
    for pattern, fam in families:
        if pattern.match(name):
            return replace(fam, name=name)
    return None


def suggest(name: str) -> str | None:
    """The closest catalog name to a misspelt one (a family as its pattern), or None."""
    names = [m.name for m in metrics()]
    for m in metrics():  # a family with listed members: each member by name
        names += [_PLACEHOLDER.sub(v, m.name) for v in m.values]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return close[0] if close else None


def metric(name: str) -> Metric:
    """The metric ``name``; :class:`UnknownMetric` (one line with a "did you mean") when it is not listed."""
    m = find(name)
    if m is None:
        close = suggest(name)
        hint = f" (did you mean {close!r}?)" if close else ""
        raise UnknownMetric(f"unknown metric {name!r}{hint}; the metrics are listed in {METRICS_FILE}")
    return m


def direction(name: str | None) -> str | None:
    """'lower' / 'higher' is better for the metric ``name`` (None: neither, or not in the catalog)."""
    m = find(name) if name else None
    return m.direction if m else None
