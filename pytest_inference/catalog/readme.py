"""Generated regions of the README: tables written from the catalogs, checked in CI to be current.

A region is the text between ``<!-- catalog:NAME:begin -->`` and ``<!-- catalog:NAME:end -->``;
``python -m pytest_inference.catalog readme README.md`` rewrites every registered region and
``... readme --check README.md`` exits 1 with one line when one is stale.

Regions: ``metrics`` (this module, from ``metrics.toml``), ``api-checks`` (``api_checks.toml``) and, when ``catalog/checks.py`` exists and
defines ``readme_table() -> str``, ``checks`` from it (imported only then, lazily). Another catalog
registers the same way: a module of this package with ``readme_table()``, named in :data:`OPTIONAL`.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Callable

from . import metrics

#: region name -> module of this package whose ``readme_table()`` writes it, when that module exists
OPTIONAL = {"checks": "checks"}


class ReadmeError(Exception):
    """The README cannot be generated (a region's markers missing or broken); one line."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def metrics_table() -> str:
    """The README's metrics table: metric | unit | better | what it is."""
    lines = [
        "Every metric a suite reports, generated from `pytest_inference/catalog/metrics.toml` (a target's",
        "`[claims]` sets only what it requires; unit and statistic come from here). *better*: the direction",
        "a baseline compares in; *zero*: a count of defects that must be 0.",
        "",
        "| metric | unit | better | what it is |",
        "|---|---|---|---|",
    ]
    for m in metrics():
        name = f"`{m.name}`" + (f" ({', '.join(m.values)})" if m.values and len(m.values) <= 3 else "")
        lines.append(f"| {name} | {_cell(m.unit or '')} | {m.better or '–'} | {_cell(m.description)} |")
    return "\n".join(lines)


def api_checks_table() -> str:
    """The README's API checks table, from ``api_checks.toml``."""
    from .checks import api_readme_table

    return api_readme_table()


def settings_table() -> str:
    """The README's run-settings table, from :data:`pytest_inference.settings.SETTINGS`."""
    from .. import settings

    return settings.readme_table()


#: region name -> what writes it (always present)
REGIONS: dict[str, Callable[[], str]] = {"metrics": metrics_table, "settings": settings_table,
                                         "api-checks": api_checks_table}


def regions() -> dict[str, Callable[[], str]]:
    """Every region to write: :data:`REGIONS` and each :data:`OPTIONAL` module that exists."""
    out = dict(REGIONS)
    for region, module in OPTIONAL.items():
        name = f"{__package__}.{module}"
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        table = getattr(mod, "readme_table", None)
        if callable(table):
            out.setdefault(region, table)
    return out


def markers(region: str) -> tuple[str, str]:
    return f"<!-- catalog:{region}:begin -->", f"<!-- catalog:{region}:end -->"


def render(text: str, tables: dict[str, Callable[[], str]] | None = None, where: str = "README") -> str:
    """``text`` with every region's content replaced by its table."""
    for region, table in (regions() if tables is None else tables).items():
        begin, end = markers(region)
        if text.count(begin) != 1 or text.count(end) != 1:
            raise ReadmeError(f"{where} needs exactly one {begin} and one {end} (found {text.count(begin)} "
                              f"and {text.count(end)})")
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise ReadmeError(f"{where}: {end} comes before {begin}")
        body = table().strip("\n")
        text = pattern.sub(lambda _m: f"{begin}\n{body}\n{end}", text, count=1)
    return text


def stale(text: str, tables: dict[str, Callable[[], str]] | None = None, where: str = "README") -> list[str]:
    """Names of the regions whose content differs from what the catalogs would write."""
    tables = regions() if tables is None else tables
    out = []
    for region, table in tables.items():
        if render(text, {region: table}, where) != text:
            out.append(region)
    return out


def main(path: str, check: bool = False) -> tuple[int, str]:
    """(exit status, one line) for ``readme [--check] PATH``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return 2, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
    try:
        if check:
            old = stale(text, where=path)
            if old:
                return 1, (f"{path}: generated region(s) {', '.join(old)} out of date with the catalog; "
                           f"run: python -m pytest_inference.catalog readme {path}")
            return 0, f"{path}: generated regions current ({', '.join(regions())})"
        new = render(text, where=path)
    except ReadmeError as exc:
        return 2, str(exc)
    if new != text:
        p.write_text(new, encoding="utf-8")
        return 0, f"{path}: rewrote {', '.join(stale(text, where=path))}"
    return 0, f"{path}: generated regions current ({', '.join(regions())})"
