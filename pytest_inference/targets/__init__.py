"""Hardware target profiles: TOML files that say what a machine must achieve.

A profile names its claims' requirements (``[claims]``: ``op``, ``threshold``, optionally ``stat``,
``min_samples``, ``description``; a metric's unit and default statistic come from the metric
catalog, :mod:`pytest_inference.catalog`) and the workload the suites run (``[workload]``).
Shipped profiles live beside this module; any other path is a
vendor's own profile, which may ``extends = "mi300x"`` a shipped one.

``[workload]`` also says what hardware the target is about: ``accelerator`` (a run settings key,
:mod:`pytest_inference.settings`) and ``accelerators``, how many of them one server uses (an integer
>= 1, checked here: no suite reads it as a setting). A run whose server is on this host and whose
environment fingerprint shows another accelerator or count is not judged against the target
(``session.server_mismatch``).

Everything here raises :class:`TargetError` with one readable line; the plugin turns it
into a pytest usage error.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import catalog
from ..claims import Requirement, fmt
from ..settings import SETTINGS, SettingsError, check_workload

HERE = Path(__file__).resolve().parent
DEFAULT_TARGET = "cpu-local"

_TOP_KEYS = {"name", "description", "extends", "confidence", "claims", "workload", "load", "api", "economics", "notes"}
_CLAIM_KEYS = {"op", "threshold", "unit", "stat", "min_samples", "description"}
#: [workload] keys that describe the target's hardware and are no run setting: checked here
class TargetError(Exception):
    """A target cannot be loaded; the message is one line meant for the user."""


@dataclass
class Target:
    name: str
    description: str
    source: str
    confidence: float = 0.99
    requirements: dict[str, Requirement] = field(default_factory=dict)
    workload: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)  # the load suite's [load] table (settings keys load_*)
    api: dict[str, Any] = field(default_factory=dict)   # the API suite's [api] table (settings keys api_*)
    economics: dict[str, Any] = field(default_factory=dict)

    def requirement(self, metric: str) -> Requirement | None:
        return self.requirements.get(metric)

    def setting(self, key: str) -> Any:
        """The profile's own ``[workload]`` value (validated when the profile loaded), without options
        or defaults: suites read :class:`~pytest_inference.settings.RunSettings` instead. ``key`` must be
        one of :data:`~pytest_inference.settings.SETTINGS`: an unknown key is a programming error."""
        if key not in SETTINGS:
            raise KeyError(f"unknown workload setting {key!r}: add it to pytest_inference.settings.SETTINGS")
        from ..settings import profile_key

        return getattr(self, SETTINGS[key].table).get(profile_key(key))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "confidence": self.confidence,
            "claims": {
                m: {"op": r.op, "threshold": r.threshold, "unit": r.unit, "stat": r.stat, "min_samples": r.min_samples}
                for m, r in sorted(self.requirements.items())
            },
            "workload": dict(self.workload),
            "load": dict(self.load),
            "api": dict(self.api),
        }


def available_targets() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.toml"))


def _resolve(name_or_path: str, base_dir: Path | None = None) -> Path:
    """A shipped name or a path. ``base_dir`` (the folder of the profile that ``extends``) makes a
    relative path relative to that profile, never to the current directory; there a bare name is
    a shipped target unless it ends in .toml or holds a '/'."""
    p = Path(name_or_path).expanduser()
    if base_dir is not None:
        if p.suffix == ".toml" or "/" in name_or_path:
            p = p if p.is_absolute() else base_dir / p
            if not p.is_file():
                raise TargetError(f"target profile {name_or_path!r} (extended from {base_dir}) not found (no such file)")
            return p
    elif p.suffix == ".toml" or p.exists() or "/" in name_or_path:
        if not p.is_file():
            raise TargetError(f"target profile {name_or_path!r} not found (no such file)")
        return p
    shipped = HERE / f"{name_or_path}.toml"
    if not shipped.is_file():
        raise TargetError(
            f"unknown target {name_or_path!r}; available targets: {', '.join(available_targets())} "
            "(or a path to a .toml profile)"
        )
    return shipped


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"malformed target profile {path}: {exc}") from None
    except OSError as exc:
        raise TargetError(f"cannot read target profile {path}: {exc.strerror}") from None


def _requirement(path: Path, metric: str, spec: Any) -> Requirement:
    where = f"malformed target profile {path}: claims.{metric!r}"
    if not isinstance(spec, dict):
        raise TargetError(f"{where} must be a table like {{ op = \"<\", threshold = 5 }}")
    unknown = set(spec) - _CLAIM_KEYS
    if unknown:
        raise TargetError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_CLAIM_KEYS))}")
    missing = {"op", "threshold"} - set(spec)
    if missing:
        raise TargetError(f"{where} lacks {' and '.join(sorted(missing))}")
    # what the metric is comes from the catalog; the profile says only what it requires
    try:
        known = catalog.find(metric)
    except catalog.CatalogError as exc:  # a broken install: still one line, not a traceback
        raise TargetError(str(exc)) from None
    if known is None:
        close = catalog.suggest(metric)
        hint = f" (did you mean {close!r}?)" if close else ""
        raise TargetError(f"{where} is not a metric any suite reports{hint}; the metrics are listed in "
                          f"{catalog.METRICS_FILE} and the README")
    spec = dict(spec)
    unit = spec.pop("unit", None)
    if unit is not None and unit != (known.unit or ""):
        said = f"'{known.unit}'" if known.unit else "no unit (a plain number or count)"
        raise TargetError(f"{where} has unit {unit!r}, but the catalog's {metric} is in {said}; "
                          "leave unit out (the catalog's is used)")
    spec.setdefault("stat", known.stat)
    try:
        return Requirement(metric=metric, unit=known.unit, **spec)
    except (TypeError, ValueError) as exc:
        raise TargetError(f"{where}: {exc}") from None


def load_target(name_or_path: str, _seen: tuple[str, ...] = (), _base_dir: Path | None = None) -> Target:
    path = _resolve(name_or_path, _base_dir)
    key = str(path.resolve())
    if key in _seen:
        raise TargetError(f"malformed target profile {path}: 'extends' loops back to itself")
    data = _read(path)
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise TargetError(
            f"malformed target profile {path}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(_TOP_KEYS))}"
        )
    for table in ("claims", "workload", "load", "api", "economics"):
        if table in data and not isinstance(data[table], dict):
            raise TargetError(f"malformed target profile {path}: '{table}' must be a table")

    base: Target | None = None
    if "extends" in data:
        if not isinstance(data["extends"], str):
            raise TargetError(f"malformed target profile {path}: 'extends' must be a target name or path")
        base = load_target(data["extends"], _seen + (key,), path.resolve().parent)

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise TargetError(f"malformed target profile {path}: 'name' must be a non-empty string")
    confidence = data.get("confidence", base.confidence if base else 0.99)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1 or math.isnan(confidence):
        raise TargetError(f"malformed target profile {path}: 'confidence' must be a number between 0 and 1")

    reqs = dict(base.requirements) if base else {}
    for metric, spec in data.get("claims", {}).items():
        reqs[metric] = _requirement(path, metric, spec)
    workload = dict(base.workload) if base else {}
    table = dict(data.get("workload", {}))
    try:
        workload.update(check_workload(path, table))
    except SettingsError as exc:
        raise TargetError(str(exc)) from None
    load = dict(base.load) if base else {}
    try:
        load.update(check_workload(path, data.get("load", {}), "load"))
    except SettingsError as exc:
        raise TargetError(str(exc)) from None
    api = dict(base.api) if base else {}
    try:
        api.update(check_workload(path, data.get("api", {}), "api"))
    except SettingsError as exc:
        raise TargetError(str(exc)) from None
    economics = dict(base.economics) if base else {}
    if data.get("economics"):
        from ..economics import EconomicsError, check_settings_table

        try:
            check_settings_table(data["economics"], f"malformed target profile {path}: [economics] ")
        except EconomicsError as exc:
            raise TargetError(str(exc)) from None
    economics.update(data.get("economics", {}))
    return Target(
        name=name,
        description=str(data.get("description", base.description if base else "")),
        source=str(path),
        confidence=float(confidence),
        requirements=reqs,
        workload=workload,
        load=load,
        api=api,
        economics=economics,
    )


def describe_targets(names: list[str] | None = None) -> str:
    """The text ``pytest --inference-targets`` prints: each target and its claims."""
    lines: list[str] = []
    for name in names or available_targets():
        t = load_target(name)
        lines.append(f"{t.name}: {t.description}")
        lines.append(f"  source: {t.source}   confidence: {t.confidence:g}")
        for metric, r in sorted(t.requirements.items()):
            unit = f" {r.unit}" if r.unit else ""
            extra = []
            if r.stat and r.stat != "value":
                extra.append(r.stat)
            if r.min_samples > 1:
                extra.append(f"over >= {r.min_samples} samples")
            more = f"  ({', '.join(extra)})" if extra else ""
            lines.append(f"  {metric:<34} {r.op:>2} {fmt(r.threshold)}{unit}{more}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
