"""Run settings as data: every knob a suite reads, its type and range, its default, the option that
overrides it, and one object that resolves them.

A value comes from, first to last: the command-line option (or its ini key), the target's
``[workload]`` table, the default in :data:`SETTINGS`. :class:`RunSettings` resolves every key once
(``InferenceSession.settings``); call sites read ``settings.get("max_tokens")`` or
``settings.max_tokens`` and never carry a default of their own. The same :class:`Setting` checks a
profile's value (:func:`check_workload`, one line naming the file and the key) and an option's
(one line naming the option).

Standard library only: the plugin imports it at start-up.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

#: The largest request count a workload or option may ask for. Every measured request keeps its
#: per-token timestamps (max_tokens floats) and its result object in memory until the claims are
#: judged; 100,000 requests x 256 tokens is already ~200 MB of samples, hours of measuring, and 200x
#: the 459 requests MLPerf's early-stopping rule needs for a p99. Beyond it is a typo, not a workload.
MAX_REQUESTS = 100_000

DEFAULT = "default"


class SettingsError(Exception):
    """A setting's value is unknown or out of range; the message is one line for the user."""


def _num(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    return repr(value[:40]) if isinstance(value, str) else type(value).__name__


@dataclass(frozen=True)
class Setting:
    """One run setting: its type and range, default, overriding option and what it is."""

    kind: str                 # "int", "number", "str"
    minimum: float | None = None
    exclusive: bool = False   # minimum itself not allowed (seconds > 0)
    maximum: float | None = None
    doc: str = ""
    default: Any = None
    option: str | None = None  # the option's dest, e.g. inference_max_tokens
    flag: str | None = None    # the option as typed, e.g. --max-tokens
    ini: str | None = None     # an ini key read when the option is not given
    why_max: str = ""          # said after an option's "must be at most" line
    shown: bool = True         # False: reports say it is set, never its value (server flags may hold a key)
    table: str = "workload"    # the target profile's table that holds it ([workload] or [load])
    parse: str | None = None   # "module:function" that parses a str value (ValueError: what is wrong)

    def check(self, value: Any) -> str | None:
        """None when ``value`` fits, else what is wrong (for one line)."""
        if self.kind == "str":
            if not isinstance(value, str) or (self.minimum and not value.strip()):
                return "must be a non-empty string" if self.minimum else "must be a string"
            if self.parse:
                import importlib

                module, _, func = self.parse.partition(":")
                try:
                    getattr(importlib.import_module(module), func)(value)
                except ValueError as exc:
                    said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    return f"does not parse: {said}"
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be {'an integer' if self.kind == 'int' else 'a number'}"
        if self.kind == "int" and not isinstance(value, int):
            return "must be an integer"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if self.minimum is not None:
            if self.exclusive and not value > self.minimum:
                return f"must be more than {_num(self.minimum)}"
            if not self.exclusive and value < self.minimum:
                return f"must be at least {_num(self.minimum)}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {_num(self.maximum)}"
        return None

    def typed(self, value: Any) -> Any:
        """``value`` as this setting's Python type (a profile's ``2`` for a number is ``2.0``)."""
        if value is None:
            return None
        if self.kind == "number":
            return float(value)
        if self.kind == "int":
            return int(value)
        return value


def positive_number(what: str):
    """An option type (argparse / pytest) taking a finite number > 0 of ``what`` (``seconds``,
    ``milliseconds``); anything else is one line: ``expected seconds (a number > 0), got 'x'``."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or v <= 0:
            import argparse

            raise argparse.ArgumentTypeError(f"expected {what} (a number > 0), got {text!r}")
        return v

    parse.__name__ = f"positive {what}"
    return parse


_COUNT = dict(kind="int", minimum=1)
_LOAD = dict(table="load")
_API = dict(table="api")
_SECONDS = dict(kind="number", minimum=0, exclusive=True)
_IN_MEMORY = "every request's timings stay in memory"

#: Every run setting, and so every key a ``[workload]`` table may hold. Code reads them only through
#: :class:`RunSettings` (tests/core/test_settings.py checks the source for keys missing here).
SETTINGS: dict[str, Setting] = {
    "model": Setting("str", minimum=1, option="inference_model", flag="--model",
                     doc="model the target is about: asked for when the endpoint serves several, served name of a "
                     "--model-path server (the embedded tiny model is tiny-llama unless --model)"),
    "accelerator": Setting("str", minimum=1, doc="accelerator the target is about: MI300X, H100, H200, cpu"),
    "accelerators": Setting(**_COUNT, maximum=100_000, doc="accelerators one server of the target uses (1: one "
                            "MI300X); a server on this host with another count is not judged"),
    "warm_requests": Setting(**_COUNT, maximum=MAX_REQUESTS, default=20, option="inference_warm_requests",
                             flag="--warm-requests", why_max=_IN_MEMORY, doc="measured warm requests"),
    "warm_warmup": Setting("int", minimum=0, maximum=MAX_REQUESTS, default=2, option="inference_warm_warmup",
                           flag="--warm-warmup", why_max=_IN_MEMORY, doc="uncounted warm-up requests"),
    "max_tokens": Setting(**_COUNT, default=64, option="inference_max_tokens", flag="--max-tokens",
                          doc="output tokens per request"),
    "cold_runs": Setting(**_COUNT, maximum=1000, default=3, option="inference_cold_runs", flag="--cold-runs",
                         doc="cold starts measured"),
    "device": Setting("str", minimum=1, default="cpu", option="inference_device", flag="--device",
                      doc="lock key of the local server's accelerator (the embedded tiny model: cpu unless --device)"),
    "server_args": Setting("str", default="", option="inference_server_args", flag="--server-args", shown=False,
                           doc="extra flags of the local server"),
    "model_path": Setting("str", minimum=1, option="inference_model_path", flag="--model-path",
                          ini="inference_model_path", doc="model folder of the local server (none: the tiny model)"),
    "server_start_timeout_s": Setting(**_SECONDS, default=600.0, option="inference_server_start_timeout",
                                      flag="--server-start-timeout", doc="seconds a start may take"),
    "serverless_idle_s": Setting("number", minimum=0, default=60.0, option="inference_serverless_idle_s",
                                 flag="--serverless-idle-s", doc="idle seconds before the serverless cold probe"),
    "model_load_s": Setting(**_SECONDS, option="k8s_model_load_s", flag="--model-load-s",
                            doc="model load budget (k8s startup probe; none: the live pods' longest start)"),
    "model_load_margin": Setting("number", minimum=1, default=1.25, option="k8s_model_load_margin",
                                 flag="--model-load-margin", doc="factor over model_load_s"),
    "max_drain_s": Setting(**_SECONDS, default=60.0, option="k8s_max_drain_s", flag="--k8s-max-drain-s",
                           doc="longest preStop drain"),
    "drain_max_tokens": Setting(**_COUNT, default=384, doc="output tokens of the drain test's streams"),
    "lab_weights_mib": Setting(**_COUNT, default=256, doc="weights the local NFS lab serves"),
    "read_readers": Setting(**_COUNT, maximum=1024, default=4, option="inference_read_readers",
                            flag="--read-readers", doc="parallel readers of the storage read"),
    "read_rounds": Setting(**_COUNT, maximum=1000, default=3, option="inference_read_rounds",
                           flag="--read-rounds", doc="timed rounds of the storage read"),
    # --- load suite (suites/load): the target's [load] table, keys without the load_ prefix ----------
    "load_rate_rps": Setting("str", minimum=1, default="2", option="load_rate", flag="--load-rate",
                             parse="pytest_inference.load:parse_rates", **_LOAD,
                             doc="offered request rate(s) of the open-loop load runs, req/s: 4 or 2,4,8"),
    "load_concurrency": Setting("str", option="load_concurrency", flag="--load-concurrency",
                                parse="pytest_inference.load:parse_concurrencies", **_LOAD,
                                doc="closed-loop load runs at these concurrencies (8 or 4,16), besides the rates"),
    "load_requests": Setting(**_COUNT, maximum=MAX_REQUESTS, default=60, option="load_requests",
                             flag="--load-requests", why_max=_IN_MEMORY, **_LOAD,
                             doc="requests per load run (unless --load-duration)"),
    "load_duration_s": Setting(**_SECONDS, maximum=86400, option="load_duration", flag="--load-duration", **_LOAD,
                               doc="seconds of arrivals per load run instead of a request count"),
    "load_warmup": Setting("int", minimum=0, maximum=1000, default=2, option="load_warmup", flag="--load-warmup",
                           **_LOAD, doc="uncounted warm-up requests before each load run"),
    "load_arrival": Setting("str", minimum=1, default="poisson", option="load_arrival", flag="--arrival",
                            parse="pytest_inference.load:parse_arrival", **_LOAD,
                            doc="arrival shape: poisson, constant or gamma:CV (CV > 1 burstier)"),
    "load_seed": Setting("int", minimum=0, default=0, option="load_seed", flag="--load-seed", **_LOAD,
                         doc="seed of the arrival schedule and the synthetic workload"),
    "load_slo": Setting("str", minimum=1, option="load_slo", flag="--slo", parse="pytest_inference.slo:parse",
                        **_LOAD, doc="SLO every request must meet: ttft_ms:400,tpot_ms:80,e2e_ms:5000 (any subset)"),
    "load_workload": Setting("str", minimum=1, default="synthetic:input=128,output=64", option="load_workload",
                             flag="--workload", parse="pytest_inference.load:parse_workload_spec", **_LOAD,
                             doc="synthetic:input=lognormal(512,0.5),output=220 | prefix:prefix=256,input=64,output=64"
                             " | file:requests.jsonl (a path relative to the current folder)"),
    "load_workers": Setting("str", minimum=1, default="auto", option="load_workers", flag="--load-workers",
                            parse="pytest_inference.load:parse_workers", **_LOAD,
                            doc="client processes sharing an open-loop schedule (one engine each, common start): "
                            "a number, or auto (one per 400 req/s offered, at most the CPUs this process may use)"),
    "load_max_lag_ms": Setting(**_SECONDS, maximum=60000, default=1.0, option="load_max_lag_ms",
                               flag="--load-max-lag-ms", **_LOAD,
                               doc="p99 dispatch lag above which a run measured the client, not the server"),
    "load_search_start_rps": Setting(**_SECONDS, default=1.0, option="load_search_start", flag="--search-start-rps",
                                     **_LOAD, doc="capacity search: the first rate probed"),
    "load_search_min_rps": Setting(**_SECONDS, option="load_search_min", flag="--search-min-rps", **_LOAD,
                                   doc="capacity search: the lowest rate probed (none: start / 16)"),
    "load_search_max_rps": Setting(**_SECONDS, default=64.0, option="load_search_max", flag="--search-max-rps",
                                   **_LOAD, doc="capacity search: the highest rate probed"),
    "load_search_requests": Setting(**_COUNT, maximum=MAX_REQUESTS, default=60, option="load_search_requests",
                                    flag="--search-requests", **_LOAD, doc="capacity search: requests per probe"),
    "load_search_min_s": Setting("number", minimum=0, maximum=3600, default=5.0, option="load_search_min_s",
                                 flag="--search-min-s", **_LOAD,
                                 doc="capacity search: seconds of arrivals a probe lasts at least (more requests at "
                                 "high rates: a queue needs time to grow)"),
    "load_search_max_s": Setting(**_SECONDS, default=300.0, option="load_search_max_s", flag="--search-max-s",
                                 **_LOAD, doc="capacity search: seconds after which no new probe starts"),
    "load_search_max_probes": Setting(**_COUNT, maximum=100, default=12, option="load_search_max_probes",
                                      flag="--search-max-probes", **_LOAD, doc="capacity search: most probes"),
    "load_search_attainment": Setting("number", minimum=0, exclusive=True, maximum=1, default=0.9,
                                      option="load_search_attainment", flag="--search-attainment", **_LOAD,
                                      doc="capacity search: the SLO attainment a probe must support (its binomial "
                                      "lower bound at the target's confidence) to pass"),
    "load_search_tight": Setting(**_SECONDS, maximum=10, default=0.1, option="load_search_tight",
                                 flag="--search-tight", **_LOAD,
                                 doc="capacity search: stop when (lowest fail - highest pass) / highest pass <= this"),
    # --- API conformance suite (suites/api): the target's [api] table, keys without the api_ prefix -----
    "api_reference": Setting("str", minimum=1, option="api_reference", flag="--reference",
                             parse="pytest_inference.api.options:parse_reference", **_API,
                             doc="answers to compare with: a reference file recorded with --record-reference, or a "
                             "shipped one by name (tiny-llama-cpu)"),
    "api_timeout_s": Setting(**_SECONDS, maximum=3600, default=30.0, option="api_timeout_s", flag="--api-timeout-s",
                             **_API, doc="seconds an answer may take before the API suite calls it a hang"),
    "api_fuzz_examples": Setting(**_COUNT, maximum=100000, default=100, option="api_fuzz_examples",
                                 flag="--api-fuzz-examples", **_API, doc="request bodies hypothesis generates"),
    "api_fuzz_max_s": Setting(**_SECONDS, maximum=86400, default=60.0, option="api_fuzz_max_s", flag="--api-fuzz-max-s",
                              **_API, doc="seconds after which the fuzzer sends no more bodies"),
    "api_fuzz_seed": Setting("int", minimum=0, default=0, option="api_fuzz_seed", flag="--api-fuzz-seed", **_API,
                             doc="seed of the generated bodies (the same seed sends the same bodies)"),
    "api_max_tokens": Setting(**_COUNT, maximum=4096, default=8, option="api_max_tokens", flag="--api-max-tokens",
                              **_API, doc="max_tokens of the API checks' requests (small: the checks are about "
                              "behaviour, not speed)"),
}


def profile_key(key: str) -> str:
    """The key as a target profile writes it: ``[load]`` keys drop the ``load_`` prefix."""
    spec = SETTINGS[key]
    return key[len(spec.table) + 1:] if spec.table != "workload" and key.startswith(spec.table + "_") else key


def table_keys(table: str) -> dict[str, str]:
    """``{profile key: settings key}`` of one profile table (``workload`` or ``load``)."""
    return {profile_key(k): k for k, s in SETTINGS.items() if s.table == table}


def check_workload(path: Any, table: dict[str, Any], name: str = "workload") -> dict[str, Any]:
    """Raise :class:`SettingsError` (one line naming the file and the key) unless every key of a
    profile's ``[workload]`` (or ``name``: ``[load]``) table is known and its value has the right
    type and range."""
    known = table_keys(name)
    for key, value in table.items():
        spec = SETTINGS.get(known.get(key, ""))
        if spec is None:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(f"malformed target profile {path}: unknown [{name}] key {key!r}{hint}; "
                                f"known: {', '.join(sorted(known))}")
        problem = spec.check(value)
        if problem:
            raise SettingsError(f"malformed target profile {path}: [{name}] {key} {problem}; got {_num(value)}")
    return table


def check_option(key: str, value: Any) -> None:
    """Raise :class:`SettingsError` (one line naming the option) unless ``value`` fits ``key``."""
    spec = SETTINGS[key]
    problem = spec.check(value)
    if problem:
        why = f" ({spec.why_max})" if spec.why_max and problem.startswith("must be at most") else ""
        raise SettingsError(f"{spec.flag} {problem}; got {_num(value)}{why}")


def default_text(key: str) -> str:
    """What an option's help says of its default: ``ini inference_model_path, else the target's
    model_path, else none`` — from the table, so help and behaviour cannot drift apart."""
    spec = SETTINGS[key]
    parts = [f"ini {spec.ini}"] if spec.ini else []
    parts.append(f"the target's {key}" if spec.table == "workload" else f"the target's [{spec.table}] {profile_key(key)}")
    parts.append("none" if spec.default is None else repr(spec.default) if spec.kind == "str" else _num(spec.default))
    return ", else ".join(parts)


def add_options(group: Any, options: Any) -> None:
    """Options of run settings into a pytest option group: ``options`` is ``(flag, settings key, type,
    metavar, help)`` rows; each option's help ends with its default, from this table."""
    for flag, key, kind, metavar, text in options:
        spec = SETTINGS[key]
        assert spec.flag == flag, (flag, spec.flag)
        group.addoption(flag, dest=spec.option, type=kind, metavar=metavar, default=None,
                        help=f"{text} (default: {default_text(key)}).".replace("%", "%%"))  # argparse formats help with %


class RunSettings:
    """The run's settings, resolved once: the option (or its ini key), else the target's validated
    ``[workload]`` value, else the default. Read-only; ``get(key)`` or ``settings.key``.

    ``config`` needs ``getoption(dest, default)`` and ``getini(name)`` (a pytest config); ``target``
    a loaded :class:`~pytest_inference.targets.Target`. An option out of range raises
    :class:`SettingsError` naming the option.
    """

    __slots__ = ("target", "_values", "_sources")

    def __init__(self, config: Any, target: Any) -> None:
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key, spec in SETTINGS.items():
            profile = getattr(target, spec.table, {}) or {}
            pkey = profile_key(key)
            value, source = None, None
            if spec.option:
                value = config.getoption(spec.option, None)
                if value is not None:
                    check_option(key, value)
                    source = spec.flag
            if value is None and spec.ini:
                try:
                    value = config.getini(spec.ini) or None
                except ValueError:  # not registered (the plugin is not loaded)
                    value = None
                if value is not None:
                    problem = spec.check(value)
                    if problem:
                        raise SettingsError(f"ini {spec.ini} {problem}; got {_num(value)}")
                    source = f"ini {spec.ini}"
            if value is None and profile.get(pkey) is not None:
                value, source = profile[pkey], f"target {target.name} [{spec.table}] {pkey}"
            if value is None:
                value, source = spec.default, DEFAULT
            values[key], sources[key] = spec.typed(value), source
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_sources", sources)

    def get(self, key: str) -> Any:
        """The value in effect; an unknown key is a programming error (add it to :data:`SETTINGS`)."""
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"unknown run setting {key!r}: add it to pytest_inference.settings.SETTINGS") from None

    def source(self, key: str) -> str:
        """Where the value came from: ``--max-tokens``, ``ini inference_model_path``,
        ``target mi300x [workload] max_tokens`` or ``default``."""
        self.get(key)
        return self._sources[key]

    def given(self, key: str) -> bool:
        """True when the user chose the value for this run (an option or ini key), not the target."""
        src = self.source(key)
        return src == SETTINGS[key].flag or src.startswith("ini ")

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self.get(key)
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("RunSettings is read-only")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every setting with its source, for summary.json (a setting that is not ``shown`` —
        the server's flags, which may hold a key — says only whether it is set)."""
        out: dict[str, dict[str, Any]] = {}
        for key, spec in SETTINGS.items():
            value = self._values[key]
            if not spec.shown:
                value = "(set, not shown)" if value else value
            out[key] = {"value": value, "source": self._sources[key]}
        return out

    def __repr__(self) -> str:
        return f"<RunSettings target={getattr(self.target, 'name', None)}>"


def _range(spec: Setting) -> str:
    if spec.kind == "str":
        return "text" if not spec.minimum else "non-empty text"
    low = "" if spec.minimum is None else f"{'>' if spec.exclusive else '≥'} {_num(spec.minimum)}"
    high = "" if spec.maximum is None else f"≤ {_num(spec.maximum)}"
    kind = "integer" if spec.kind == "int" else "number"
    return ", ".join(p for p in (kind, low, high) if p)


def readme_table() -> str:
    """The README's run-settings table (a generated region, like the catalogs' tables)."""
    lines = [
        "Every run setting, generated from `pytest_inference/settings.py`: the option wins, then its ini key,",
        "then the target's `[workload]` (load suite: `[load]`), then the default; `summary.json` records each value and its source",
        "(`run.settings`).",
        "",
        "| target key | option | type | default | what it is |",
        "|---|---|---|---|---|",
    ]
    for key, spec in SETTINGS.items():
        option = f"`{spec.flag}`" if spec.flag else "–"
        if spec.ini:
            option += f" (ini `{spec.ini}`)"
        default = "–" if spec.default is None else f"`{spec.default!r}`" if spec.kind == "str" else _num(spec.default)
        lines.append(f"| `[{spec.table}] {profile_key(key)}` | {option} | {_range(spec)} | {default} | {spec.doc.replace('|', chr(92) + '|')} |")
    return "\n".join(lines)
