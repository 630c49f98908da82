"""The check catalogs, as data — kube-bench's way: each check's id, title, metric, default
requirement and remediation. Two files, one loader:

* ``checks.toml``: the Kubernetes suite's checks (``K8S-…``, with their modes), implemented by
  :mod:`pytest_inference.k8s.checks`;
* ``api_checks.toml``: the API conformance suite's checks (``API-…``, with the fake server's defects
  each one must catch), implemented by :mod:`pytest_inference.api.checks`.

The README's two checks tables are generated from here.

Pure: ``tomllib`` and the standard library only; read once, on first use.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..claims import Requirement, fmt

CHECKS_FILE = Path(__file__).resolve().parent / "checks.toml"
API_CHECKS_FILE = Path(__file__).resolve().parent / "api_checks.toml"

STATIC, LIVE = "static", "live"
MODES = (STATIC, LIVE)
_FIELDS = {"id", "title", "metric", "concern", "modes", "mutates", "expected", "remediation", "inputs"}
_API_FIELDS = {"id", "title", "metric", "concern", "expected", "remediation", "defects"}
_ID = re.compile(r"^[A-Z0-9]+(-[A-Z0-9]+)+-\d{3}$")


class CheckCatalogError(Exception):
    """The check catalog itself is malformed (a programming error; one line)."""


@dataclass(frozen=True)
class CheckSpec:
    """One check's metadata. ``requirement``: the default the check's figure is judged by when the
    target sets none (None: only a target's requirement judges it); ``inputs``: default requirements
    of the per-subject metrics a check judges on the way (K8S-NODE-001's node.* metrics)."""

    id: str
    title: str
    metric: str
    concern: str
    modes: tuple[str, ...]
    expected: str
    remediation: str
    requirement: Requirement | None = None
    mutates: bool = False
    inputs: dict[str, Requirement] = field(default_factory=dict)
    defects: tuple[str, ...] = ()   # API checks: the fake server's defects this check must catch

    @property
    def unit(self) -> str | None:
        """The metric's unit, from the metric catalog."""
        from . import find

        m = find(self.metric)
        return m.unit if m else None

    def requirement_text(self) -> str:
        r = self.requirement
        return f"{self.metric} {r.op} {fmt(r.threshold)}" if r else self.metric


def _requirement(where: str, metric: str, raw: Any) -> Requirement | None:
    if not isinstance(raw, dict):
        raise CheckCatalogError(f"{where}: a requirement is a table {{ op, threshold }}")
    if "op" not in raw and "threshold" not in raw:
        return None
    try:
        return Requirement(metric, raw.get("op"), raw.get("threshold"))
    except (ValueError, TypeError) as exc:
        raise CheckCatalogError(f"{where}: {exc}") from None


def _entry(i: int, raw: Any, file: Path = CHECKS_FILE) -> CheckSpec:
    """One ``[[check]]`` entry of ``file``: the Kubernetes catalog's entries have modes (and may mutate
    or have inputs), the API catalog's entries name the defects they catch instead."""
    from . import entry_head

    api = file == API_CHECKS_FILE
    like, fields = ("API-AREA-001", _API_FIELDS) if api else ("K8S-AREA-001", _FIELDS)
    cid, where = entry_head(file.name, "check", i, raw, "id", _ID, like, fields, CheckCatalogError)
    if api != cid.startswith("API-"):
        raise CheckCatalogError(f"{where}: ids in {file.name} {'start' if api else 'do not start'} with API-")
    for key in ("title", "metric", "concern", "remediation"):
        if not isinstance(raw.get(key), str) or not raw[key].strip() or "\n" in raw[key]:
            raise CheckCatalogError(f"{where} {key} must be one non-empty line")
    modes = raw.get("modes", [LIVE] if api else None)
    if not isinstance(modes, list) or not modes or not set(modes) <= set(MODES):
        raise CheckCatalogError(f"{where} modes must be a non-empty list of {', '.join(MODES)}")
    exp = raw.get("expected")
    if not isinstance(exp, dict) or not isinstance(exp.get("text"), str) or not exp["text"].strip():
        raise CheckCatalogError(f"{where} expected needs a text")
    if set(exp) - {"op", "threshold", "text"}:
        raise CheckCatalogError(f"{where} expected has unknown field(s) {sorted(set(exp) - {'op', 'threshold', 'text'})}")
    metric = raw["metric"]
    req = _requirement(f"{where} expected", metric, {k: v for k, v in exp.items() if k != "text"})
    inputs = raw.get("inputs", {})
    if not isinstance(inputs, dict):
        raise CheckCatalogError(f"{where} inputs must be a table metric -> {{ op, threshold }}")
    ins = {}
    for m, r in inputs.items():
        got = _requirement(f"{where} inputs.{m}", m, r)
        if got is None:
            raise CheckCatalogError(f"{where} inputs.{m} needs op and threshold")
        ins[m] = got
    mutates = raw.get("mutates", False)
    if not isinstance(mutates, bool):
        raise CheckCatalogError(f"{where} mutates must be true or false")
    defects = raw.get("defects", [])
    if not isinstance(defects, list) or not all(isinstance(d, str) and re.fullmatch(r"[a-z0-9_]+", d) for d in defects):
        raise CheckCatalogError(f"{where} defects must be a list of defect names")
    return CheckSpec(id=cid, title=raw["title"], metric=metric, concern=raw["concern"], modes=tuple(modes),
                     expected=exp["text"].strip(), remediation=raw["remediation"].strip(), requirement=req,
                     mutates=mutates, inputs=ins, defects=tuple(defects))


@lru_cache(maxsize=2)
def _load(file: Path = CHECKS_FILE) -> dict[str, CheckSpec]:
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CheckCatalogError(f"cannot read {file}: {exc}") from None
    out: dict[str, CheckSpec] = {}
    for i, raw in enumerate(data.get("check", [])):
        spec = _entry(i, raw, file)
        if spec.id in out:
            raise CheckCatalogError(f"{file.name}: {spec.id} is listed twice")
        out[spec.id] = spec
    return out


def checks() -> dict[str, CheckSpec]:
    """Every Kubernetes check, in the file's order."""
    return dict(_load())


def api_checks() -> dict[str, CheckSpec]:
    """Every API check, in the file's order."""
    return dict(_load(API_CHECKS_FILE))


def check(cid: str) -> CheckSpec:
    """The check ``cid`` (``K8S-…`` or ``API-…``); KeyError (one line) when the catalog lacks it."""
    file = API_CHECKS_FILE if cid.startswith("API-") else CHECKS_FILE
    spec = _load(file).get(cid)
    if spec is None:
        raise KeyError(f"no check {cid!r} in {file}")
    return spec


def _cell(text: str) -> str:
    return text.replace("\n", " ")


def readme_table() -> str:
    """The README's checks table (markdown), generated from the catalog."""
    rows = ["Generated from `pytest_inference/catalog/checks.toml`. The claim is judged by the target's requirement",
            "for its metric, else by the default shown here; *mutation*: only with `--k8s-allow-mutations`.", "",
            "| id | check | claim (default requirement) | static | live |", "|---|---|---|---|---|"]
    for s in _load().values():
        claim = f"`{s.requirement_text()}`" if s.requirement else f"`{s.metric}` (the target's requirement only)"
        live = "mutation" if s.mutates else ("✓" if LIVE in s.modes else "–")
        rows.append(f"| {s.id} | {_cell(s.expected)} | {claim} | {'✓' if STATIC in s.modes else '–'} | {live} |")
    return "\n".join(rows) + "\n"



def api_readme_table() -> str:
    """The README's API checks table (markdown), generated from ``api_checks.toml``."""
    rows = ["Generated from `pytest_inference/catalog/api_checks.toml`. Each check's figure is a claim, judged by the",
            "target's requirement for its metric, else by the default shown here; *defects*: the fake server's",
            "switchable defects (`python -m pytest_inference.testing.fake_openai --defect NAME`) it must catch.", "",
            "| id | rule | claim (default requirement) | remediation | defects |", "|---|---|---|---|---|"]
    for s in _load(API_CHECKS_FILE).values():
        claim = f"`{s.requirement_text()}`" if s.requirement else f"`{s.metric}` (the target's requirement only)"
        defects = ", ".join(f"`{d}`" for d in s.defects) or "–"
        rows.append(f"| {s.id} | {_cell(s.expected)} | {claim} | {_cell(s.remediation)} | {defects} |")
    return "\n".join(rows) + "\n"
