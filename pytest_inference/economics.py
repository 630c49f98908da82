"""Cost crossover between a self-hosted GPU and a serverless endpoint (seed article A's cost model).

A GPU costs a flat ``gpu_usd_per_hour`` however many requests it serves; a serverless endpoint
bills every request by its tokens::

    cost per request      = input_tokens × usd_per_m_input / 1e6 + output_tokens × usd_per_m_output / 1e6
    break-even requests/h = gpu_usd_per_hour ÷ cost per request

Below the break-even rate serverless is cheaper, above it the GPU.  With the seed's figures
(MI300X $1.88/h; $0.10 / $0.70 per million input / output tokens; ~80 input tokens) the
break-even is ~18 req/s for ~30 output tokens, ~3.2 for ~220 and ~0.62 for ~1,200.

Pure: no pytest, no printing.  The one reader of files is :func:`load_pricing_file`.  Every
bad input raises :class:`EconomicsError` with one line that names the field (and where it
came from: an option, a pricing file, a target profile).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

SECONDS_PER_HOUR = 3600.0
TOKENS_PER_PRICE_UNIT = 1_000_000.0

PRICING_FIELDS = ("gpu_usd_per_hour", "usd_per_m_input", "usd_per_m_output")
#: what each field is, for messages
FIELD_TEXT = {
    "gpu_usd_per_hour": "GPU price in USD per hour",
    "usd_per_m_input": "serverless price in USD per 1M input tokens",
    "usd_per_m_output": "serverless price in USD per 1M output tokens",
    "input_tokens": "input tokens per request",
    "output_lengths": "output tokens per response length",
    "capacity_rps": "requests/s one GPU serves within the SLO",
}
#: the option that sets each field (pytest and ``pytest-inference crossover`` alike)
FIELD_OPTION = {
    "gpu_usd_per_hour": "--gpu-hourly",
    "usd_per_m_input": "--price-in",
    "usd_per_m_output": "--price-out",
    "input_tokens": "--input-tokens",
    "output_lengths": "--output-lengths",
    "capacity_rps": "--capacity-rps",
}
#: keys an ``[economics]`` table (target profile) or a pricing file may hold
SETTINGS_KEYS = (*PRICING_FIELDS, "input_tokens", "output_lengths", "capacity_rps")
_IGNORED_KEYS = {"description", "notes", "currency_note"}

DEFAULT_OUTPUT_LENGTHS: dict[str, int] = {"short": 30, "medium": 220, "long": 1200}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")


class EconomicsError(ValueError):
    """Bad economics input; the message is one line meant for the user."""


# --- validation ------------------------------------------------------------------------------
def _positive(name: str, value: Any, where: str = "") -> float:
    """A finite number > 0, else one line naming the field."""
    label = f"{where}{name}"
    if value is None:
        raise EconomicsError(f"{label} is missing ({FIELD_TEXT.get(name, name)})")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EconomicsError(f"{label} must be a number ({FIELD_TEXT.get(name, name)}); got {value!r}")
    x = float(value)
    if math.isnan(x) or math.isinf(x):
        raise EconomicsError(f"{label} must be a finite number ({FIELD_TEXT.get(name, name)}); got {value!r}")
    if x <= 0:
        raise EconomicsError(f"{label} must be greater than 0 ({FIELD_TEXT.get(name, name)}); got {value!r}")
    return x


def _finite_result(x: float, what: str) -> float:
    if not math.isfinite(x) or x <= 0:
        raise EconomicsError(f"{what} is out of range ({x!r}); the prices or token counts are too extreme")
    return x


@dataclass(frozen=True)
class Pricing:
    """A GPU's flat hourly price and a serverless endpoint's per-token prices (USD)."""

    gpu_usd_per_hour: float | None = None
    usd_per_m_input: float | None = None
    usd_per_m_output: float | None = None

    def __post_init__(self) -> None:
        for name in PRICING_FIELDS:
            object.__setattr__(self, name, _positive(name, getattr(self, name)))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "") -> "Pricing":
        """From a table with the three fields; ``where`` prefixes messages (e.g. a file name)."""
        values = {}
        for name in PRICING_FIELDS:
            values[name] = _positive(name, data.get(name), where)
        return cls(**values)

    def to_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in PRICING_FIELDS}


def _tokens(name: str, value: Any, where: str = "") -> float:
    return _positive(name, value, where)


def validate_output_lengths(lengths: Mapping[str, Any], where: str = "") -> dict[str, float]:
    """``{"short": 30, ...}`` with names usable in a metric and positive token counts."""
    if not isinstance(lengths, Mapping):
        raise EconomicsError(f"{where}output_lengths must be a table of name = tokens, e.g. short = 30; got {lengths!r}")
    if not lengths:
        raise EconomicsError(f"{where}output_lengths is empty; give at least one length, e.g. short = 30")
    out: dict[str, float] = {}
    for name, tokens in lengths.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise EconomicsError(
                f"{where}output_lengths: {name!r} is not a usable name (a letter, then letters, digits, - or _)"
            )
        out[name] = _tokens(f"output_lengths.{name}", tokens, where)
    return out


# --- the cost model --------------------------------------------------------------------------
def cost_per_request(pricing: Pricing, input_tokens: float, output_tokens: float) -> float:
    """Serverless USD for one request of ``input_tokens`` in and ``output_tokens`` out."""
    i = _tokens("input_tokens", input_tokens)
    o = _tokens("output_tokens", output_tokens)
    cost = (i * pricing.usd_per_m_input + o * pricing.usd_per_m_output) / TOKENS_PER_PRICE_UNIT
    return _finite_result(cost, "the cost per request")


def breakeven_requests_per_hour(pricing: Pricing, input_tokens: float, output_tokens: float) -> float:
    """Requests per hour at which serverless costs as much as the GPU: GPU $/h ÷ serverless $/request."""
    rate = pricing.gpu_usd_per_hour / cost_per_request(pricing, input_tokens, output_tokens)
    return _finite_result(rate, "the break-even rate")


def breakeven_requests_per_second(pricing: Pricing, input_tokens: float, output_tokens: float) -> float:
    return breakeven_requests_per_hour(pricing, input_tokens, output_tokens) / SECONDS_PER_HOUR


def serverless_usd_per_hour(pricing: Pricing, input_tokens: float, output_tokens: float, requests_per_second: float) -> float:
    """What serverless costs per hour at a steady request rate."""
    if isinstance(requests_per_second, bool) or not isinstance(requests_per_second, (int, float)) \
            or not math.isfinite(requests_per_second) or requests_per_second < 0:
        raise EconomicsError(f"requests_per_second must be a finite number >= 0; got {requests_per_second!r}")
    return requests_per_second * SECONDS_PER_HOUR * cost_per_request(pricing, input_tokens, output_tokens)


@dataclass(frozen=True)
class CrossoverRow:
    name: str
    input_tokens: float
    output_tokens: float
    usd_per_request: float
    breakeven_requests_per_hour: float
    breakeven_requests_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "usd_per_request": self.usd_per_request,
            "breakeven_requests_per_hour": self.breakeven_requests_per_hour,
            "breakeven_requests_per_second": self.breakeven_requests_per_second,
        }


def crossover_row(pricing: Pricing, name: str, input_tokens: float, output_tokens: float) -> CrossoverRow:
    per_hour = breakeven_requests_per_hour(pricing, input_tokens, output_tokens)
    return CrossoverRow(
        name=name,
        input_tokens=float(input_tokens),
        output_tokens=float(output_tokens),
        usd_per_request=cost_per_request(pricing, input_tokens, output_tokens),
        breakeven_requests_per_hour=per_hour,
        breakeven_requests_per_second=per_hour / SECONDS_PER_HOUR,
    )


def crossover_table(
    pricing: Pricing,
    input_tokens: float,
    output_lengths: Mapping[str, float] | None = None,
) -> list[CrossoverRow]:
    """One row per response length (default: the seed's short 30 / medium 220 / long 1200)."""
    lengths = validate_output_lengths(DEFAULT_OUTPUT_LENGTHS if output_lengths is None else output_lengths)
    _tokens("input_tokens", input_tokens)
    return [crossover_row(pricing, name, input_tokens, out) for name, out in lengths.items()]


def swing(rows: Iterable[CrossoverRow]) -> float | None:
    """Highest ÷ lowest break-even of a table (the seed's "~25× swing from response length alone")."""
    rates = [r.breakeven_requests_per_second for r in rows]
    if len(rates) < 2:
        return None
    return max(rates) / min(rates)


@dataclass(frozen=True)
class CostCurves:
    """Cost per hour of both options against the request rate, for a chart."""

    requests_per_second: list[float]
    gpu_usd_per_hour: list[float]
    serverless_usd_per_hour: list[float]
    breakeven_requests_per_second: float
    crossover_usd_per_hour: float  # both curves' value at the break-even (= the GPU's price)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests_per_second": self.requests_per_second,
            "gpu_usd_per_hour": self.gpu_usd_per_hour,
            "serverless_usd_per_hour": self.serverless_usd_per_hour,
            "breakeven_requests_per_second": self.breakeven_requests_per_second,
            "crossover_usd_per_hour": self.crossover_usd_per_hour,
        }


def cost_per_hour_curves(
    pricing: Pricing,
    input_tokens: float,
    output_tokens: float,
    rps_max: float | None = None,
    points: int = 41,
) -> CostCurves:
    """GPU (flat) and serverless (linear) USD per hour at request rates 0 … ``rps_max``.

    ``rps_max`` defaults to twice the break-even.  The break-even rate is one of the points
    (when it lies in range), so the two curves meet exactly on the grid.
    """
    be = breakeven_requests_per_second(pricing, input_tokens, output_tokens)
    top = 2.0 * be if rps_max is None else _positive("rps_max", rps_max)
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise EconomicsError(f"points must be an integer >= 2; got {points!r}")
    xs = [top * i / (points - 1) for i in range(points)]
    if be <= top and be not in xs:
        xs = sorted([*xs, be])
    per_request = cost_per_request(pricing, input_tokens, output_tokens)
    serverless = [x * SECONDS_PER_HOUR * per_request for x in xs]
    gpu = [pricing.gpu_usd_per_hour] * len(xs)
    if be in xs:  # exactly equal at the crossover, not merely within rounding
        serverless[xs.index(be)] = pricing.gpu_usd_per_hour
    return CostCurves(xs, gpu, serverless, be, pricing.gpu_usd_per_hour)


# --- text --------------------------------------------------------------------------------------
def _num(x: float, digits: int) -> str:
    return f"{x:,.{digits}f}"


def fmt_tokens(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def _usd(x: float) -> str:
    return f"{x:.2f}" if round(x, 2) == x else f"{x:g}"


def _pricing_lines(pricing: Pricing | None) -> list[str]:
    """The prices a table was computed from, as its first line (none without prices)."""
    if pricing is None:
        return []
    return [f"GPU ${_usd(pricing.gpu_usd_per_hour)}/h vs serverless ${_usd(pricing.usd_per_m_input)} / "
            f"${_usd(pricing.usd_per_m_output)} per 1M input / output tokens"]


def _aligned(head: list[str], body: list[list[str]]) -> list[str]:
    """A text table: the first column left-aligned, the others right-aligned, a rule under the head."""
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    out = []
    for i, row in enumerate([head, *body]):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        out.append("  ".join(cells).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def format_table(rows: list[CrossoverRow], pricing: Pricing | None = None) -> str:
    """The crossover table as aligned text (``pytest-inference crossover``)."""
    head = ["length", "input tok", "output tok", "$/request", "break-even req/h", "break-even req/s"]
    body = [
        [
            r.name,
            fmt_tokens(r.input_tokens),
            fmt_tokens(r.output_tokens),
            f"{r.usd_per_request:.6f}",
            _num(r.breakeven_requests_per_hour, 0),
            _num(r.breakeven_requests_per_second, 2),
        ]
        for r in rows
    ]
    lines = _pricing_lines(pricing) + _aligned(head, body)
    s = swing(rows)
    if s is not None:
        hi = max(rows, key=lambda r: r.breakeven_requests_per_second)
        lo = min(rows, key=lambda r: r.breakeven_requests_per_second)
        lines.append(f"swing {hi.name} / {lo.name}: {s:.1f}x")
    lines.append("below the break-even rate serverless is cheaper; above it the GPU")
    return "\n".join(lines) + "\n"


# --- parsing option values ---------------------------------------------------------------------
def _number(text: str, what: str) -> float:
    """Positive finite number from text; the message (without the option's name) says why not."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise EconomicsError(f"must be a number ({what}); got {text!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise EconomicsError(f"must be a finite number ({what}); got {text!r}")
    if value <= 0:
        raise EconomicsError(f"must be greater than 0 ({what}); got {text!r}")
    return value


def _output_lengths(text: str) -> dict[str, float]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise EconomicsError("is empty; give output token counts like 30,220,1200")
    named = ["=" in p for p in parts]
    if any(named) and not all(named):
        raise EconomicsError(f"name every length or none, e.g. 30,220,1200 or short=30,long=1200; got {text!r}")
    out: dict[str, float] = {}
    for i, part in enumerate(parts):
        name, _, value = (s.strip() for s in part.partition("=")) if "=" in part else ("", "", part)
        tokens = _number(value, "output tokens per response")
        if not name:
            name = list(DEFAULT_OUTPUT_LENGTHS)[i] if len(parts) == len(DEFAULT_OUTPUT_LENGTHS) else f"out{fmt_tokens(tokens)}"
        if name in out:
            raise EconomicsError(f"the length {name!r} is given twice")
        out[name] = tokens
    return validate_output_lengths(out)


def parse_positive(name: str, text: str) -> float:
    """An option's text as a positive number; the message names the option."""
    try:
        return _number(text, FIELD_TEXT.get(name, name))
    except EconomicsError as exc:
        raise EconomicsError(f"{FIELD_OPTION.get(name, name)} {exc}") from None


def parse_output_lengths(text: str) -> dict[str, float]:
    """``30,220,1200`` (named short, medium, long) or ``short=30,long=1200`` (any names)."""
    try:
        return _output_lengths(text)
    except EconomicsError as exc:
        raise EconomicsError(f"{FIELD_OPTION['output_lengths']}: {exc}") from None


def argparse_type(name: str):
    """An ``argparse`` ``type=`` for a field (or ``"pricing_file"``): a bad value is one line.

    argparse prefixes the option's name (``argument --price-in: must be greater than 0 …``).
    """
    import argparse

    def convert(text: str):
        try:
            if name == "output_lengths":
                return _output_lengths(text)
            if name == "pricing_file":
                return load_pricing_file(text)
            return _number(text, FIELD_TEXT.get(name, name))
        except EconomicsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


# --- settings from a target, a pricing file, options -------------------------------------------
@dataclass(frozen=True)
class PricingFile:
    """The settings of a ``--pricing`` file (TOML or JSON), checked; any field may be absent."""

    path: str
    values: dict[str, Any]


def check_settings_table(data: Any, where: str) -> dict[str, Any]:
    """Validate an ``[economics]`` table or pricing file: known keys, each value sane (none required)."""
    if not isinstance(data, Mapping):
        raise EconomicsError(f"{where}must be a table of {', '.join(SETTINGS_KEYS)}")
    if "economics" in data and isinstance(data["economics"], Mapping) and not (set(data) & set(SETTINGS_KEYS)):
        data = data["economics"]  # a file with an [economics] table, e.g. a target profile
    unknown = sorted(set(data) - set(SETTINGS_KEYS) - _IGNORED_KEYS)
    if unknown:
        raise EconomicsError(f"{where}unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(SETTINGS_KEYS)}")
    out: dict[str, Any] = {}
    for key in SETTINGS_KEYS:
        if key not in data:
            continue
        if key == "output_lengths":
            out[key] = validate_output_lengths(data[key], where)
        else:
            out[key] = _positive(key, data[key], where)
    return out


def load_pricing_file(path: str | Path) -> PricingFile:
    """Read a pricing file: TOML (``.toml``) or JSON (``.json``; other names: tried as TOML, then JSON)."""
    p = Path(path).expanduser()
    where = f"pricing file {p}: "
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise EconomicsError(f"pricing file {p} not found") from None
    except OSError as exc:
        raise EconomicsError(f"cannot read pricing file {p}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EconomicsError(f"{where}not UTF-8 text") from None
    suffix = p.suffix.lower()
    data: Any
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EconomicsError(f"{where}malformed JSON: {exc}") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            if suffix == ".toml":
                raise EconomicsError(f"{where}malformed TOML: {exc}") from None
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                raise EconomicsError(f"{where}neither TOML nor JSON ({exc})") from None
    return PricingFile(str(p), check_settings_table(data, where))


@dataclass(frozen=True)
class EconomicsSettings:
    """Pricing, input tokens and response lengths, with where each came from."""

    pricing: Pricing
    input_tokens: float | None
    output_lengths: dict[str, float]
    sources: dict[str, str] = field(default_factory=dict)
    capacity_rps: float | None = None  # given (option, pricing file, target); None: not given

    def to_dict(self) -> dict[str, Any]:
        return {
            "pricing": self.pricing.to_dict(),
            "input_tokens": self.input_tokens,
            "output_lengths": dict(self.output_lengths),
            "capacity_rps": self.capacity_rps,
            "sources": dict(self.sources),
        }


def resolve_settings(
    options: Mapping[str, Any] | None = None,
    pricing_file: PricingFile | None = None,
    target_economics: Mapping[str, Any] | None = None,
    target_name: str | None = None,
    *,
    require_input_tokens: bool = True,
) -> EconomicsSettings:
    """Each field from the options, else the pricing file, else the target; sources recorded.

    ``options`` maps field names to values already parsed (None: not given).  Output lengths
    fall back to the seed's defaults.  A field nobody sets is one line saying how to set it.
    """
    has_target = target_economics is not None or target_name is not None
    target_label = f"target {target_name}" if target_name else "the target"
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if options:
        given: dict[str, Any] = {}
        for key, value in options.items():
            if value is None:
                continue
            if key not in SETTINGS_KEYS:
                raise EconomicsError(f"unknown economics option {key!r}; known: {', '.join(SETTINGS_KEYS)}")
            try:
                given[key] = validate_output_lengths(value) if key == "output_lengths" else _positive(key, value)
            except EconomicsError as exc:
                raise EconomicsError(f"{FIELD_OPTION[key]}: {exc}") from None
        layers.append(("option", given))
    if pricing_file is not None:
        layers.append((f"pricing file {pricing_file.path}", pricing_file.values))
    if target_economics:
        layers.append((target_label, check_settings_table(target_economics, f"{target_label} [economics]: ")))

    chosen: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in SETTINGS_KEYS:
        for label, values in layers:
            if values.get(key) is not None:
                chosen[key] = values[key]
                sources[key] = f"{label} {FIELD_OPTION[key]}" if label == "option" else label
                break

    def missing(key: str, option: str) -> EconomicsError:
        ways = [f"pass {option}", f"a --pricing file with {key}"]
        if has_target:
            ways.append(f"set {key} in {target_label}'s [economics] table")
        return EconomicsError(f"no {FIELD_TEXT[key]}: {', '.join(ways[:-1])} or {ways[-1]}")

    for key in PRICING_FIELDS:
        if key not in chosen:
            raise missing(key, f"{FIELD_OPTION[key]} {'USD' if key == 'gpu_usd_per_hour' else 'USD_PER_1M'}")
    if "input_tokens" not in chosen and require_input_tokens:
        raise missing("input_tokens", "--input-tokens N")
    if "output_lengths" not in chosen:
        chosen["output_lengths"] = dict(DEFAULT_OUTPUT_LENGTHS)
        sources["output_lengths"] = "default (seed: short 30 / medium 220 / long 1200)"
    pricing = Pricing(*(chosen[k] for k in PRICING_FIELDS))
    return EconomicsSettings(
        pricing=pricing,
        input_tokens=chosen.get("input_tokens"),
        output_lengths=validate_output_lengths(chosen["output_lengths"]),
        sources=sources,
        capacity_rps=chosen.get("capacity_rps"),
    )


# --- measured token counts -----------------------------------------------------------------------
@dataclass(frozen=True)
class TokenMeasurement:
    """Server-reported token counts of one measured run (the usage of each completed request)."""

    source: str  # e.g. "warm_run" (self-hosted) or "serverless_run"
    prompt_tokens: list[int]
    output_tokens: list[int]

    @property
    def requests(self) -> int:
        return len(self.prompt_tokens)

    @property
    def input_tokens_mean(self) -> float | None:
        return sum(self.prompt_tokens) / len(self.prompt_tokens) if self.prompt_tokens else None

    @property
    def output_tokens_mean(self) -> float | None:
        return sum(self.output_tokens) / len(self.output_tokens) if self.output_tokens else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "requests": self.requests,
            "input_tokens_mean": self.input_tokens_mean,
            "output_tokens_mean": self.output_tokens_mean,
        }


def measurement_from_results(source: str, results: Iterable[Any]) -> TokenMeasurement | None:
    """Token counts of the completed requests that reported usage; None when none did. Output counts
    the stream contradicts (``token_count_problem``) are left out."""
    prompt: list[int] = []
    output: list[int] = []
    for r in results:
        if not getattr(r, "ok", False) or getattr(r, "warmup", False):
            continue
        pt = getattr(r, "prompt_tokens", None)
        if isinstance(pt, int) and not isinstance(pt, bool) and pt > 0:
            prompt.append(pt)
            ot = getattr(r, "output_tokens", None)
            # a count the stream contradicts (usage 1000 for 32 token events) is no measurement
            if getattr(r, "token_count_problem", None):
                continue
            if isinstance(ot, int) and not isinstance(ot, bool) and ot > 0:
                output.append(ot)
    if not prompt:
        return None
    return TokenMeasurement(source, prompt, output)


#: the session measurements (``inference_session.publish``) that carry token counts, in the
#: shape of :func:`token_data`; the economics suite reads them
TOKEN_MEASUREMENTS = ("warm.tokens", "serverless.tokens")


def token_data(results: Iterable[Any]) -> dict[str, Any] | None:
    """What a suite publishes as ``<suite>.tokens``: the server-reported prompt and output tokens of each
    completed request (as :func:`measurement_from_results` keeps them) and the request count; None when
    no request reported usage."""
    m = measurement_from_results("", results)
    if m is None:
        return None
    return {"requests": m.requests, "prompt_tokens": list(m.prompt_tokens), "output_tokens": list(m.output_tokens)}


def _counts(value: Any) -> list[int] | None:
    if not isinstance(value, list):
        return None
    if not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in value):
        return None
    return list(value)


def measurement_from_data(source: str, data: Any) -> TokenMeasurement | None:
    """A published ``<suite>.tokens`` measurement (:func:`token_data`'s shape) as a TokenMeasurement;
    None when its data is not that shape (another plugin's figure of the same name is not guessed at)."""
    if not isinstance(data, Mapping):
        return None
    prompt, output = _counts(data.get("prompt_tokens")), _counts(data.get("output_tokens"))
    if not prompt or output is None:
        return None
    return TokenMeasurement(source, prompt, output)


def choose_measurement(measurements: Iterable[TokenMeasurement]) -> TokenMeasurement | None:
    """The serverless endpoint's own counts when the session has them (it bills by them), else the latest."""
    ms = [m for m in measurements if m.requests]
    if not ms:
        return None
    serverless = [m for m in ms if "serverless" in m.source]
    return (serverless or ms)[-1]


# --- chart data (drawn by report.charts.line_chart_png) -----------------------------------------
def chart_data(
    pricing: Pricing, input_tokens: float, output_lengths: Mapping[str, float], points: int = 41
) -> tuple[dict[str, tuple[list[float], list[float]]], list[tuple[str, float, float]]]:
    """Series and crossover marks for a cost-per-hour vs request-rate chart.

    One flat GPU line and one serverless line per response length, each drawn up to twice
    its break-even (so every line ends at twice the GPU's price and the crossovers stay
    readable); a mark ``(label, rps, usd_per_hour)`` at each crossover.
    """
    lengths = validate_output_lengths(output_lengths)
    curves = {name: cost_per_hour_curves(pricing, input_tokens, out, points=points) for name, out in lengths.items()}
    top = max(c.requests_per_second[-1] for c in curves.values())
    series: dict[str, tuple[list[float], list[float]]] = {
        f"GPU, flat ${_usd(pricing.gpu_usd_per_hour)}/h": ([0.0, top], [pricing.gpu_usd_per_hour] * 2)
    }
    marks: list[tuple[str, float, float]] = []
    for name, c in curves.items():
        be = c.breakeven_requests_per_second
        series[f"serverless, {name} ({fmt_tokens(lengths[name])} out + {fmt_tokens(input_tokens)} in tokens): "
               f"break-even {be:.2f} req/s"] = (c.requests_per_second, c.serverless_usd_per_hour)
        # a short label: several crossovers can lie close together on a linear axis
        marks.append((f"{be:.2f} req/s" if len(curves) == 1 else f"{be:.2f}", be, c.crossover_usd_per_hour))
    return series, marks


# --- capacity: ⌈R / C⌉ GPUs (issue 12 item 5) ----------------------------------------------------
#: the session measurement the load suite publishes: ``{"rps": 12.0, "bracket": [12, 14], "slo": {...}}``
CAPACITY_MEASUREMENT = "capacity.max_rps_at_slo"
#: crossings listed in full up to this many (the count is always reported)
MAX_LISTED_CROSSINGS = 1000


@dataclass(frozen=True)
class Capacity:
    """Requests/s one GPU holds at the SLO: ``given`` (an option) or ``measured`` (a published
    ``capacity.max_rps_at_slo``), with where it came from and, when measured, its bracket and SLO."""

    rps: float
    kind: str  # "given" | "measured"
    source: str
    bracket: tuple[float, float | None] | None = None
    slo: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rps", _positive("capacity_rps", self.rps))
        if self.kind not in ("given", "measured"):
            raise EconomicsError(f"capacity kind must be 'given' or 'measured'; got {self.kind!r}")

    def describe(self) -> str:
        text = f"{self.kind}: {self.rps:g} req/s per GPU ({self.source})"
        if self.bracket is not None:
            hi = "no rate probed failed" if self.bracket[1] is None else f"{self.bracket[1]:g}"
            text += f", bracket [{self.bracket[0]:g}, {hi}] req/s"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"rps": self.rps, "kind": self.kind, "source": self.source,
                "bracket": list(self.bracket) if self.bracket else None, "slo": self.slo, "text": self.describe()}


#: what a claim's details say when neither a measurement nor an option gave a capacity
NO_CAPACITY = ("capacity not given: one GPU is assumed to serve any rate (pass --capacity-rps or run a load "
               "suite that publishes capacity.max_rps_at_slo)")


def capacity_from_data(data: Any, source: str = CAPACITY_MEASUREMENT) -> Capacity:
    """A published ``capacity.max_rps_at_slo`` as a measured :class:`Capacity`; one line saying why not
    (no ``rps``, not a positive number, a bracket that is not ``[lo, hi]`` around it)."""
    where = f"{source}: "
    if not isinstance(data, Mapping):
        raise EconomicsError(f"{where}data must be a table with rps; got {type(data).__name__}")
    rps = data.get("rps")
    if rps is None:
        raise EconomicsError(f"{where}no rps (the search found no rate that held the SLO)")
    rps = _positive("rps", rps, where)
    bracket = data.get("bracket")
    if bracket is not None:
        def number(b: Any) -> bool:
            return isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)

        # [highest pass, lowest fail]; lowest fail None: every probed rate held the SLO (open above)
        if (not isinstance(bracket, (list, tuple)) or len(bracket) != 2 or not number(bracket[0])
                or not (bracket[1] is None or number(bracket[1]))):
            raise EconomicsError(f"{where}bracket must be [highest rate that passed, lowest that failed]; got {bracket!r}")
        lo, hi = float(bracket[0]), None if bracket[1] is None else float(bracket[1])
        if not (lo <= rps and (hi is None or rps <= hi)):
            raise EconomicsError(f"{where}rps {rps:g} lies outside its bracket [{lo:g}, {'open' if hi is None else f'{hi:g}'}]")
        bracket = (lo, hi)
    return Capacity(rps, "measured", source, bracket, data.get("slo"))


def choose_capacity(measured: Iterable[tuple[str, Any]], given: float | None,
                    given_source: str = "option --capacity-rps") -> tuple[Capacity | None, list[str]]:
    """The capacity to use and notes for the claims' details.

    ``measured``: ``(source, data)`` of each published ``capacity.max_rps_at_slo``, oldest first; the
    latest usable one wins over a given number (as measured prompt tokens do); one that cannot be used
    is a note, never a capacity.  ``given``: the option's value (None: not given)."""
    notes: list[str] = []
    chosen: Capacity | None = None
    for source, data in measured:
        try:
            chosen = capacity_from_data(data, source)
        except EconomicsError as exc:
            notes.append(f"not used: {exc}")
    if chosen is not None:
        if given is not None:
            notes.append(f"given {given:g} req/s ({given_source}) not used: a measured capacity wins")
        return chosen, notes
    if given is not None:
        return Capacity(given, "given", given_source), notes
    return None, notes


def gpus_needed(requests_per_second: float, capacity_rps: float | None) -> int:
    """⌈R / C⌉ GPUs for a rate R at a capacity C per GPU, at least 1 (a self-hosted deployment keeps
    one GPU however idle); 1 at any rate when the capacity is unknown (None)."""
    r = requests_per_second
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r < 0:
        raise EconomicsError(f"requests_per_second must be a finite number >= 0; got {r!r}")
    if capacity_rps is None:
        return 1
    c = _positive("capacity_rps", capacity_rps)
    n = max(1, math.ceil(r / c))
    # the float quotient may land one step off: n is the least count with n × C >= R
    while n > 1 and (n - 1) * c >= r:
        n -= 1
    while n * c < r:
        n += 1
    return n


def self_hosted_usd_per_hour(pricing: Pricing, requests_per_second: float, capacity_rps: float | None) -> float:
    """⌈R / C⌉ GPUs × the GPU's $/h (one GPU when the capacity is unknown)."""
    return gpus_needed(requests_per_second, capacity_rps) * pricing.gpu_usd_per_hour


def self_hosted_usd_per_m_output(pricing: Pricing, capacity_rps: float, output_tokens: float) -> float:
    """USD per 1M output tokens of one GPU serving its capacity (every request inside the SLO)."""
    c = _positive("capacity_rps", capacity_rps)
    o = _tokens("output_tokens", output_tokens)
    return _finite_result(pricing.gpu_usd_per_hour / (c * SECONDS_PER_HOUR * o) * TOKENS_PER_PRICE_UNIT,
                          "the self-hosted cost per 1M output tokens")


def serverless_usd_per_m_output(pricing: Pricing, input_tokens: float, output_tokens: float) -> float:
    """Serverless USD per 1M output tokens, the input tokens' bill included (to compare with the GPU's)."""
    return cost_per_request(pricing, input_tokens, output_tokens) / float(output_tokens) * TOKENS_PER_PRICE_UNIT


@dataclass(frozen=True)
class Crossing:
    """A rate where the cheaper option changes: above ``rps`` the ``cheaper`` one ("gpu" or "serverless")."""

    rps: float
    cheaper: str
    gpus: int  # GPUs needed just above the crossing

    def to_dict(self) -> dict[str, Any]:
        return {"rps": self.rps, "cheaper_above": self.cheaper, "gpus": self.gpus}


@dataclass(frozen=True)
class StepBreakeven:
    """The crossover with ⌈R / C⌉ GPUs against serverless' line.

    ``first_rps``: below it serverless is cheaper (None: serverless is cheaper, or as cheap, at every
    rate); ``gpu_cheaper_above_rps``: above it the GPU(s) are cheaper at every rate (the last crossing);
    ``crossings``: every change of the cheaper option, in rate order (the first
    :data:`MAX_LISTED_CROSSINGS`; ``crossings_total`` counts them all).
    """

    capacity_rps: float | None
    breakeven_rps: float  # one GPU at any rate: GPU $/h ÷ serverless $/h per req/s
    first_rps: float | None
    gpu_cheaper_above_rps: float | None
    crossings: list[Crossing]
    crossings_total: int

    @property
    def gpus_at_gpu_cheaper(self) -> int | None:
        """GPUs running just above the rate where the GPU becomes cheaper for good."""
        if self.gpu_cheaper_above_rps is None:
            return None
        return gpus_needed(self.gpu_cheaper_above_rps, self.capacity_rps)

    def to_dict(self) -> dict[str, Any]:
        return {"capacity_rps": self.capacity_rps, "breakeven_rps_one_gpu": self.breakeven_rps,
                "first_breakeven_rps": self.first_rps, "gpu_cheaper_above_rps": self.gpu_cheaper_above_rps,
                "gpus_at_gpu_cheaper": self.gpus_at_gpu_cheaper,
                "crossings": [c.to_dict() for c in self.crossings], "crossings_total": self.crossings_total,
                "crossings_listed": len(self.crossings)}


def step_breakeven(pricing: Pricing, input_tokens: float, output_tokens: float,
                   capacity_rps: float | None) -> StepBreakeven:
    """Every rate where serverless' line crosses the step curve ⌈R / C⌉ × GPU $/h.

    With P the GPU's $/h and s serverless' $/h per req/s, step k (rates in ((k−1)C, kC]) costs kP.
    The line crosses it upwards at kP / s when that rate lies in the step; and at the end of step k
    serverless is cheaper again, just above kC, when s·kC < (k+1)P.  That happens for
    k < P / (sC − P) only, so past the last such step the GPUs stay cheaper.  When s·C <= P (one GPU
    at capacity costs at least what serverless charges for C req/s) serverless is never dearer.
    Without a capacity: today's single crossing at P / s.
    """
    P = pricing.gpu_usd_per_hour
    s = SECONDS_PER_HOUR * cost_per_request(pricing, input_tokens, output_tokens)
    be = _finite_result(P / s, "the break-even rate")
    if capacity_rps is None:
        return StepBreakeven(None, be, be, be, [Crossing(be, "gpu", 1)], 1)
    C = _positive("capacity_rps", capacity_rps)
    if s * C - P <= 1e-12 * P:  # serverless at C req/s costs no more than a GPU (within rounding): never dearer
        return StepBreakeven(C, be, None, None, [], 0)
    # steps k = 1 .. K where serverless is cheaper again just above kC: s·kC < (k+1)P  <=>  k(sC − P) < P
    k_max = math.ceil(P / (s * C - P)) - 1
    while k_max >= 1 and not s * k_max * C < (k_max + 1) * P:
        k_max -= 1
    while s * (k_max + 1) * C < (k_max + 2) * P:
        k_max += 1
    total = 1 + 2 * k_max
    crossings = [Crossing(be, "gpu", 1)]
    for k in range(1, k_max + 1):
        if len(crossings) >= MAX_LISTED_CROSSINGS:
            break
        crossings.append(Crossing(k * C, "serverless", k + 1))
        if len(crossings) >= MAX_LISTED_CROSSINGS:
            break
        crossings.append(Crossing((k + 1) * P / s, "gpu", k + 1))
    last = (k_max + 1) * P / s
    return StepBreakeven(C, be, be, last, crossings, total)


def cheaper_at(pricing: Pricing, input_tokens: float, output_tokens: float, requests_per_second: float,
               capacity_rps: float | None) -> str:
    """"gpu", "serverless" or "same" at one rate (the brute-force check of :func:`step_breakeven`)."""
    g = self_hosted_usd_per_hour(pricing, requests_per_second, capacity_rps)
    s = serverless_usd_per_hour(pricing, input_tokens, output_tokens, requests_per_second)
    return "gpu" if g < s else "serverless" if s < g else "same"


@dataclass(frozen=True)
class CapacityRow:
    """A crossover row with the capacity taken into account."""

    base: CrossoverRow
    capacity_rps: float | None
    steps: StepBreakeven
    self_hosted_usd_per_m_output: float | None
    serverless_usd_per_m_output: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.base.to_dict(), "capacity_rps": self.capacity_rps, **self.steps.to_dict(),
                "gpus_needed": self.steps.gpus_at_gpu_cheaper,
                "self_hosted_usd_per_m_output_at_slo": self.self_hosted_usd_per_m_output,
                "serverless_usd_per_m_output": self.serverless_usd_per_m_output}


def capacity_row(pricing: Pricing, name: str, input_tokens: float, output_tokens: float,
                 capacity_rps: float | None) -> CapacityRow:
    base = crossover_row(pricing, name, input_tokens, output_tokens)
    return CapacityRow(
        base=base,
        capacity_rps=capacity_rps,
        steps=step_breakeven(pricing, input_tokens, output_tokens, capacity_rps),
        self_hosted_usd_per_m_output=(None if capacity_rps is None
                                      else self_hosted_usd_per_m_output(pricing, capacity_rps, output_tokens)),
        serverless_usd_per_m_output=serverless_usd_per_m_output(pricing, input_tokens, output_tokens),
    )


def capacity_table(pricing: Pricing, input_tokens: float, output_lengths: Mapping[str, float] | None,
                   capacity_rps: float | None) -> list[CapacityRow]:
    lengths = validate_output_lengths(DEFAULT_OUTPUT_LENGTHS if output_lengths is None else output_lengths)
    _tokens("input_tokens", input_tokens)
    return [capacity_row(pricing, name, input_tokens, out, capacity_rps) for name, out in lengths.items()]


def _rate(x: float | None) -> str:
    return "never" if x is None else _num(x, 2)


def format_capacity_table(rows: list[CapacityRow], pricing: Pricing | None = None,
                          capacity: Capacity | None = None) -> str:
    """The crossover table with "GPUs needed" and the cost per 1M output tokens at the SLO."""
    if capacity is None:
        return format_table([r.base for r in rows], pricing).rstrip("\n") + f"\n{NO_CAPACITY}\n"
    head = ["length", "input tok", "output tok", "$/request", "break-even req/s", "GPU cheaper above req/s",
            "GPUs needed", "crossings", "self-hosted $/1M out at SLO", "serverless $/1M out"]
    body = [
        [r.base.name, fmt_tokens(r.base.input_tokens), fmt_tokens(r.base.output_tokens), f"{r.base.usd_per_request:.6f}",
         _rate(r.steps.first_rps), _rate(r.steps.gpu_cheaper_above_rps),
         "-" if r.steps.gpus_at_gpu_cheaper is None else str(r.steps.gpus_at_gpu_cheaper),
         str(r.steps.crossings_total), f"{r.self_hosted_usd_per_m_output:.4f}", f"{r.serverless_usd_per_m_output:.4f}"]
        for r in rows
    ]
    lines = _pricing_lines(pricing)
    lines.append(f"capacity {capacity.describe()}; self-hosted cost at R req/s = ceil(R / capacity) GPUs x GPU $/h")
    lines += _aligned(head, body)
    lines.append("below the break-even serverless is cheaper; above 'GPU cheaper above' the GPUs are at every rate; "
                 "between them serverless is cheaper again just past each step of capacity")
    lines.append("GPUs needed: at the rate above which the GPUs stay cheaper")
    for r in rows:
        many = [c for c in r.steps.crossings]
        if len(many) > 1:
            shown = ", ".join(f"{c.rps:.2f} {c.cheaper}" for c in many[:8])
            more = f", ... ({r.steps.crossings_total} in all)" if r.steps.crossings_total > 8 else ""
            lines.append(f"{r.base.name} crossings (rate, cheaper above): {shown}{more}")
    return "\n".join(lines) + "\n"


def step_chart_data(pricing: Pricing, input_tokens: float, output_lengths: Mapping[str, float], capacity_rps: float,
                    max_steps: int = 60
                    ) -> tuple[dict[str, tuple[list[float], list[float]]], list[tuple[str, float, float]]]:
    """Series — the GPUs' step curve ⌈R / C⌉ × $/h and serverless' line per response length — and a
    mark at each crossing, for a "lines" figure.  Drawn to twice the last crossing (three capacities
    when the GPUs never win), at most ``max_steps`` steps; a steep line ends at 1.25 × the curve's top;
    at most 20 marks per length."""
    C = _positive("capacity_rps", capacity_rps)
    lengths = validate_output_lengths(output_lengths)
    steps = {name: step_breakeven(pricing, input_tokens, out, C) for name, out in lengths.items()}
    ends = [2 * st.gpu_cheaper_above_rps if st.gpu_cheaper_above_rps is not None else 3 * C for st in steps.values()]
    end = min(max(*ends, 2 * C), max_steps * C)
    P = pricing.gpu_usd_per_hour
    xs: list[float] = [0.0]
    ys: list[float] = [P]
    for k in range(1, gpus_needed(end, C) + 1):
        right = min(k * C, end)
        xs.append(right)
        ys.append(k * P)
        if right < end:  # the jump to the next GPU
            xs.append(right)
            ys.append((k + 1) * P)
    series: dict[str, tuple[list[float], list[float]]] = {
        f"self-hosted: ceil(R / {C:g} req/s) GPUs x ${_usd(P)}/h": (xs, ys)}
    marks: list[tuple[str, float, float]] = []
    for name, out in lengths.items():
        per_request = cost_per_request(pricing, input_tokens, out)
        st = steps[name]
        above = "never cheaper" if st.gpu_cheaper_above_rps is None else f"GPUs cheaper above {st.gpu_cheaper_above_rps:.2f} req/s"
        # a steep line stops a little above the step curve's top, so the steps stay readable
        x_end = min(end, 1.25 * ys[-1] / (SECONDS_PER_HOUR * per_request))
        series[f"serverless, {name} ({fmt_tokens(out)} out + {fmt_tokens(input_tokens)} in tokens): {above}"] = (
            [0.0, x_end], [0.0, x_end * SECONDS_PER_HOUR * per_request])
        shown = [c for c in st.crossings if c.rps <= end][:20]
        for c in shown:
            label = f"{c.rps:.2f}" if len(lengths) > 1 or len(shown) > 1 else f"{c.rps:.2f} req/s"
            marks.append((label, c.rps, c.rps * SECONDS_PER_HOUR * per_request))
    return series, marks
