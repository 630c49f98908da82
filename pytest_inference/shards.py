"""Load from many pods: shards of one arrival schedule, their clocks, and ``pytest-inference merge``.

A shard (``--load-shard INDEX/COUNT --load-start-at WHEN``, :mod:`pytest_inference.load`) builds
the same schedule as the unsharded run, keeps the arrivals whose index % COUNT == INDEX and sends
them at their original offsets from the common start, so COUNT shards offer the one schedule
together. Each shard's ``summary.json`` says what it was in ``run["shard"]``: ``index``, ``count``,
``schedule_sha256`` (:func:`..engine.arrivals.schedule_sha256`: what defines the schedule), ``start_at``,
``first_send_lag_s`` (its first send vs its scheduled moment, by its own clock) and its clock's
offset against a common reference (:func:`measure_clock_offset`).

The clock reference is an HTTP server's ``Date`` header (the endpoint's, or ``--load-clock-url``):
whole seconds, so the shard polls until the second flips and takes the flip's moment between the
last answer that said second S (sent at ``t0``) and the first that said S+1 (received at ``t1``):
``offset = S+1 - (t0 + t1) / 2``, uncertain by ``(t1 - t0) / 2``. Every shard aims at the same flip
(a second a few seconds before the common start): a server that updates its Date once a tick
(uvicorn, under vLLM: about once a second) flips late by the same unknown amount for every shard
that watches the same flip, so the offsets compare between shards (what merge needs), but are not
offsets from UTC.

``pytest-inference merge SHARD... --out DIR`` (:func:`merge`) checks the shards are shards of ONE
schedule (same ``schedule_sha256``, count, ``start_at`` and target; each index once; else one line,
exit 2), pools each claim's samples across the shards (never percentiles of percentiles) and
judges the pooled claim with :func:`pytest_inference.claims.judge`; rates (``req/s``, ``tok/s``: one
figure per shard) are summed over the common window (``sum of rate_k x span_k / longest span``);
counts (length mismatches) are summed; the server's own figures (what it announces, its
preemptions) are the shards' common value or their largest; the steadiness is recomputed from the
pooled records. Anything else is inconclusive with the reason. When the shards' clock offsets or
effective starts disagree by more than ``--max-skew-ms`` (50 ms), every timing claim (latency,
attainment, rates, drift) is inconclusive with the figures.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["offset_from_polls", "measure_clock_offset", "read_shard", "check_shards",
           "timing_check", "merge_claims", "merge", "register", "MAX_SKEW_MS", "TIMING_UNITS"]

#: the default bound on the shards' clock-offset and start disagreement
MAX_SKEW_MS = 50.0
#: units of the claims a clock or start disagreement invalidates (besides SLO attainment)
TIMING_UNITS = frozenset({"ms", "s", "req/s", "tok/s"})
#: figures of a whole run per shard (one value each) that add up over the common window
RATE_UNITS = frozenset({"req/s", "tok/s"})
#: per-shard counts that add up
ADDITIVE = frozenset({"load.output_length_mismatches", "load.prompt_length_mismatches"})
#: what the server says of itself: every shard must have read the same value
ANNOUNCED = frozenset({"load.kv_cache_tokens", "load.max_concurrency", "load.reserved_memory_GB"})
#: server counters each shard read over (nearly) the same window: the largest covers them all
SERVER_COUNTERS = frozenset({"load.preemptions"})
DRIFT_METRIC = "load.ttft_drift_ms"


# ------------------------------------------------------------------------------ the clock


def offset_from_polls(polls: Sequence[tuple[float, float, int | None]]) -> dict[str, Any] | None:
    """The clock offset (reference - local, s) from polls ``(t0 sent, t1 received, Date second)``
    made one after another by the local clock: at the first flip of the Date second (S -> S' > S)
    the reference read S' between ``t0`` of the answer before and ``t1`` of the answer after, so
    ``offset = S' - midpoint`` within half that interval. None when no flip was seen. Pure."""
    for (a0, _a1, da), (_b0, b1, db) in zip(polls, polls[1:]):
        if da is not None and db is not None and db > da:
            mid = (a0 + b1) / 2
            return {"offset_s": db - mid, "uncertainty_s": (b1 - a0) / 2, "flip_to": db, "polls": len(polls)}
    return None


def _date_second(value: str | None) -> int | None:
    if not value:
        return None
    from email.utils import parsedate_to_datetime

    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


#: polling for a Date-second flip starts this long before the aimed-at second (by the shard's clock)
FLIP_LEAD_S = 0.6


def measure_clock_offset(read_date: Callable[[], int | None], *, clock: Callable[[], float],
                         target_second: int | None = None, poll_s: float = 0.005, max_s: float = 3.0,
                         sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll ``read_date`` (the reference's Date as epoch seconds, None when it sent none) until its
    second flips and return :func:`offset_from_polls`'s figures, or ``{"offset_s": None, "problem":
    why}``. ``target_second``: aim at the flip into that reference second (every shard the same
    one): sleep until :data:`FLIP_LEAD_S` before it by ``clock``, then poll every ``poll_s``; at most
    ``max_s`` of polling."""
    if target_second is not None:
        ahead = target_second - FLIP_LEAD_S - clock()
        if ahead > 0:
            sleep(ahead)
    polls: list[tuple[float, float, int | None]] = []
    end = clock() + max_s
    while clock() < end:
        t0 = clock()
        second = read_date()
        t1 = clock()
        if second is None:
            return {"offset_s": None, "problem": "the reference sent no Date header"}
        polls.append((t0, t1, second))
        if len(polls) >= 2 and second > polls[-2][2]:  # type: ignore[operator]
            if target_second is None or second >= target_second or len(polls) > 2:
                break
        sleep(poll_s)
    got = offset_from_polls(polls)
    if got is None:
        return {"offset_s": None, "problem": f"the reference's Date second did not flip in {max_s:g} s of polling"}
    return got


def clock_offset(url: str, *, api_key: str | None = None, verify: bool | str = True,
                 target_second: int | None = None, clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """The local (shard) clock's offset against ``url``'s HTTP Date header: ``{offset_s,
    uncertainty_s, reference, method}`` (``offset_s`` None and ``problem`` when it cannot be told)."""
    from .engine.http import get
    from .load import wall_clock

    clock = clock or wall_clock

    def read() -> int | None:
        _status, headers, _body = get(url, api_key=api_key, timeout_s=5.0, verify=verify)
        return _date_second(headers.get("date"))

    method = ("HTTP Date header polled every 5 ms until its second flipped; offset = flip second - midpoint "
              "of the two answers around it, +- half their span (a server that updates its Date once a tick "
              "flips late by the same amount for every shard watching the same flip)")
    try:
        got = measure_clock_offset(read, clock=clock, target_second=target_second)
    except Exception as exc:  # noqa: BLE001 - an unreachable reference is a note, not a crash
        got = {"offset_s": None, "problem": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    from .report.redact import redact_userinfo

    return {**got, "reference": f"HTTP Date of GET {redact_userinfo(url)}", "method": method}


# ------------------------------------------------------------------------------ reading shards


class MergeError(Exception):
    """Bad input to merge: one line."""


def read_shard(arg: str) -> tuple[Path, dict[str, Any]]:
    """A shard's ``summary.json`` (``arg``: the file or its folder) and its ``run.shard`` block
    checked; a MergeError line otherwise."""
    path = Path(arg)
    if path.is_dir():
        path = path / "summary.json"
    from .report.summary import SummaryError, read_summary

    if not path.exists():
        raise MergeError(f"{arg}: no summary.json there")
    try:
        data = read_summary(path)
    except SummaryError as exc:
        raise MergeError(f"malformed shard: {exc}") from None
    shard = (data.get("run") or {}).get("shard") if isinstance(data.get("run"), dict) else None
    if not isinstance(shard, dict):
        raise MergeError(f"{path}: not a shard's summary (no run.shard: run the load suite with --load-shard)")
    for key, kinds in (("index", int), ("count", int), ("schedule_sha256", str), ("start_at", (int, float))):
        if isinstance(shard.get(key), bool) or not isinstance(shard.get(key), kinds):
            raise MergeError(f"{path}: malformed summary.json (run.shard.{key} is {shard.get(key)!r})")
    for i, c in enumerate(data["claims"]):
        if not isinstance(c, dict) or not isinstance(c.get("metric"), str) or not isinstance(
                c.get("sample_values", []), list):
            raise MergeError(f"{path}: malformed summary.json (claims[{i}] is not a claim)")
    return path, data


def check_shards(shards: Sequence[tuple[Path, dict[str, Any]]]) -> None:
    """One MergeError line unless the shards are every shard of ONE schedule, judged against one target."""
    if not shards:
        raise MergeError("no shards given")
    first_path, first = shards[0]
    s0 = first["run"]["shard"]
    for path, data in shards[1:]:
        s = data["run"]["shard"]
        for key in ("schedule_sha256", "count", "start_at"):
            if s[key] != s0[key]:
                a, b = (str(s0[key])[:12], str(s[key])[:12])
                raise MergeError(f"shards of different schedules: {key} {a} ({first_path}) vs {b} ({path})")
        if (data.get("target") or {}).get("name") != (first.get("target") or {}).get("name"):
            raise MergeError(f"shards judged against different targets: {(first.get('target') or {}).get('name')} "
                             f"({first_path}) vs {(data.get('target') or {}).get('name')} ({path})")
    count = s0["count"]
    seen: dict[int, Path] = {}
    for path, data in shards:
        i = data["run"]["shard"]["index"]
        if not 0 <= i < count:
            raise MergeError(f"{path}: shard index {i} is outside 0 .. {count - 1}")
        if i in seen:
            raise MergeError(f"shard {i}/{count} given twice: {seen[i]} and {path}")
        seen[i] = path
    missing = [i for i in range(count) if i not in seen]
    if missing:
        raise MergeError(f"missing shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of "
                         f"{count}: merging needs every shard of the schedule")


def timing_check(shard_blocks: Sequence[dict[str, Any]], max_skew_ms: float) -> dict[str, Any]:
    """Do the shards' clocks and starts agree within ``max_skew_ms``? Clock spread: the largest minus
    the smallest offset, plus both their uncertainties (the worst case); start spread: the same over
    ``offset + first_send_lag`` (each shard's first send on the reference clock, less its scheduled
    moment). ``problem`` is one line when either exceeds the bound or a figure is missing. Pure."""
    out: dict[str, Any] = {"max_skew_ms": max_skew_ms, "clock_spread_ms": None, "start_spread_ms": None,
                           "problem": None}
    missing = [f"shard {b.get('index')}: {b.get('clock_problem') or 'no clock offset measured'}"
               for b in shard_blocks if not isinstance(b.get("clock_offset_s"), (int, float))]
    lagless = [f"shard {b.get('index')}" for b in shard_blocks if not isinstance(b.get("first_send_lag_s"), (int, float))]
    if missing or lagless:
        why = "; ".join(missing + ([f"{', '.join(lagless)}: no first send recorded"] if lagless else []))
        out["problem"] = f"the shards' clocks cannot be compared ({why})"
        return out

    def spread(values: list[tuple[float, float]]) -> float:
        ordered = sorted(values, key=lambda v: v[0])
        lo, hi = ordered[0], ordered[-1]
        return (hi[0] - lo[0] + (hi[1] + lo[1] if len(ordered) > 1 else 0.0)) * 1e3

    unc = [float(b.get("clock_uncertainty_s") or 0.0) for b in shard_blocks]
    clocks = [(float(b["clock_offset_s"]), u) for b, u in zip(shard_blocks, unc)]
    starts = [(float(b["clock_offset_s"]) + float(b["first_send_lag_s"]), u) for b, u in zip(shard_blocks, unc)]
    out["clock_spread_ms"], out["start_spread_ms"] = spread(clocks), spread(starts)
    bad = []
    if out["clock_spread_ms"] > max_skew_ms:
        bad.append(f"clock offsets differ by up to {out['clock_spread_ms']:.1f} ms")
    if out["start_spread_ms"] > max_skew_ms:
        bad.append(f"first sends on the common clock differ by up to {out['start_spread_ms']:.1f} ms")
    if bad:
        out["problem"] = (f"the shards did not offer one schedule: {' and '.join(bad)} (> {max_skew_ms:g} ms "
                          "allowed); their latencies are not of one load")
    return out


def _is_timing(c: dict[str, Any]) -> bool:
    return c.get("unit") in TIMING_UNITS or c.get("stat") == "attainment" or c.get("metric") == DRIFT_METRIC


# ------------------------------------------------------------------------------ pooling claims


def _requirement(target: Any, claims: Sequence[dict[str, Any]]):
    """The target's requirement for the metric, else the one the shards were judged by (a default such
    as ``== 0``), else None."""
    from .claims import Requirement

    metric = claims[0]["metric"]
    req = target.requirement(metric)
    if req is not None:
        return req
    c = claims[0]
    if c.get("op") is not None and c.get("threshold") is not None:
        return Requirement(metric, c["op"], float(c["threshold"]), unit=c.get("unit"), stat=c.get("stat"),
                           min_samples=int(c.get("min_samples") or 1))
    return None


def _steadiness(records: list[dict[str, Any]] | None):
    from .probes.load import steadiness

    if records is None:
        return None
    offs = [r.get("scheduled_s") for r in records]
    ttft = [r.get("ttft_ms") if r.get("ok") else None for r in records]
    return steadiness(offs, ttft)


def merge_claims(groups: list[list[dict[str, Any]]], target: Any, *, timing_problem: str | None,
                 records: list[dict[str, Any]] | None = None) -> list[Any]:
    """One judged :class:`~pytest_inference.claims.Claim` per group of the shards' claims of one
    (test, metric), in shard order (see the module docstring for each rule). ``records``: the pooled
    per-request records of the load run (for the steadiness), or None. Pure."""
    from .claims import INCONCLUSIVE, PASS, Claim, Requirement, judge
    from .probes.load import DRIFT_REASON
    from .stats import BINOMIAL_STATS, QUANTILE_STATS

    drift = _steadiness(records)
    out = []
    for group in groups:
        first = group[0]
        metric, stat, unit = first["metric"], first.get("stat") or "value", first.get("unit")
        req = _requirement(target, group)
        per_shard = [len(c.get("sample_values") or []) for c in group]
        info: dict[str, Any] = {"shards": len(group), "samples_per_shard": per_shard}
        details: dict[str, Any] = {"merge": info}

        def inconclusive(why: str) -> Claim:
            return Claim(metric=metric, measured=None, unit=unit, stat=stat, samples=[], verdict=INCONCLUSIVE,
                         reason=why, op=req.op if req else None, threshold=float(req.threshold) if req else None,
                         target=target.name, test=first.get("test"), confidence=target.confidence, details=details)

        why = None
        for c in group:  # a shard that measured nothing of it, or measured its client: the pool is not whole
            d = c.get("details") or {}
            if metric == DRIFT_METRIC and not d.get("problem"):
                continue  # too short a share to tell is what pooling mends: recomputed from the records below
            if d.get("verdict_if_judged") or (
                    c.get("verdict") == INCONCLUSIVE and not c.get("sample_values") and c.get("measured") is None):
                why = f"shard {c['_shard']}: {c.get('reason') or 'inconclusive'}"
                break
        if why is None and metric != DRIFT_METRIC and (len({c.get("stat") for c in group}) > 1
                                                       or len({c.get("unit") for c in group}) > 1):
            why = f"the shards measured {metric} differently (stats {sorted({str(c.get('stat')) for c in group})})"
        if why:
            out.append(inconclusive(why))
            continue
        measured = None
        samples: list[float] = [float(x) for c in group for x in (c.get("sample_values") or [])]
        if stat in QUANTILE_STATS or stat in BINOMIAL_STATS or stat not in ("value",):
            info["rule"] = "the shards' samples pooled"
        elif metric == DRIFT_METRIC:
            if drift is None:
                out.append(inconclusive("no pooled per-request records to recompute the steadiness from"))
                continue
            info["rule"] = "recomputed from the pooled records"
            details["drift"] = drift.to_dict()
            if drift.drifting is None:
                out.append(inconclusive(drift.reason or "steadiness cannot be told"))
                continue
            samples = [drift.growth_ms]
            req = req if target.requirement(metric) else Requirement(metric, "<=", round(drift.bound_ms, 6), unit="ms")
        elif unit in RATE_UNITS:
            spans = [(c.get("details") or {}).get("wall_s") for c in group]
            values = [(c.get("sample_values") or [None])[0] for c in group]
            if any(not isinstance(s, (int, float)) or s <= 0 for s in spans) or any(v is None for v in values):
                out.append(inconclusive(f"a shard's {metric} has no span (wall_s) to sum it over the common window"))
                continue
            window = max(spans)
            measured = math.fsum(v * s for v, s in zip(values, spans)) / window
            samples = [measured]
            info.update(rule="sum over the common window: sum(rate_k x span_k) / longest span", window_s=window,
                        per_shard=values)
        elif metric in ADDITIVE:
            samples = [math.fsum(samples)]
            info["rule"] = "the shards' counts summed"
        elif metric in SERVER_COUNTERS:
            info.update(rule="the largest of the shards' readings (each watched the same server over the common "
                        "window)", per_shard=samples)
            samples = [max(samples)] if samples else []
        elif metric in ANNOUNCED:
            if len(set(samples)) > 1:
                out.append(inconclusive(f"the shards read different {metric} from the server: {sorted(set(samples))}"))
                continue
            samples = samples[:1]
            info["rule"] = "what the server announced (every shard read the same)"
        else:
            out.append(inconclusive(f"{metric} is one figure per shard (stat value) and has no rule to combine it"))
            continue
        if not samples:
            out.append(inconclusive("no shard has samples of it"))
            continue
        not_judged = timing_problem if _is_timing(first) else None
        c = judge(metric, samples, stat=stat, unit=unit, requirement=req, measured=measured, target=target.name,
                  confidence=target.confidence, min_samples=max(int(x.get("min_samples") or 1) for x in group),
                  details=details, not_judged=not_judged)
        if (c.verdict == PASS and _is_timing(first) and metric != DRIFT_METRIC and drift is not None
                and drift.drifting):
            c.details["verdict_if_judged"] = c.verdict
            c.verdict, c.reason = INCONCLUSIVE, f"{DRIFT_REASON} ({drift.reason})"
        c.test = first.get("test")
        out.append(c)
    return out


def _group(shards: Sequence[tuple[Path, dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    order: list[tuple[Any, str]] = []
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for _path, data in sorted(shards, key=lambda s: s[1]["run"]["shard"]["index"]):
        k = data["run"]["shard"]["index"]
        for c in data["claims"]:
            key = (c.get("test"), c["metric"])
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append({**c, "_shard": k})
    return [groups[k] for k in order]


def _pool_records(shards: Sequence[tuple[Path, dict[str, Any]]],
                  out_dir: Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Every shard's ``records/*.jsonl`` pooled by file name (each record gets its ``shard``; sorted by
    the schedule's index) into ``out_dir/records``; returns ``{name: pooled records}`` and notes."""
    from .report.records import RECORDS_DIR, read_records, write_records

    pooled: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    for path, data in shards:
        k = data["run"]["shard"]["index"]
        folder = path.parent / RECORDS_DIR
        files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
        if not files:
            notes.append(f"shard {k} ({path.parent}) has no per-request records")
        for f in files:
            try:
                rows = read_records(f)
            except ValueError as exc:
                raise MergeError(str(exc)) from None
            pooled.setdefault(f.stem, []).extend({**r, "shard": k} for r in rows)
    for name, rows in pooled.items():
        rows.sort(key=lambda r: (r.get("index") if isinstance(r.get("index"), int) else -1, r["shard"]))
        write_records(out_dir, name, rows)
    return pooled, notes


def merge(args: Sequence[str], out_dir: str | Path, *, target: str | None = None,
          max_skew_ms: float = MAX_SKEW_MS) -> tuple[dict[str, Any], list[Any]]:
    """Merge shard summaries into ``out_dir/summary.json`` (and pooled records); returns the summary
    and the merged claims. Bad input: MergeError (one line)."""
    from . import __version__
    from .report.summary import write_summary_json
    from .targets import TargetError, load_target

    shards = [read_shard(a) for a in args]
    check_shards(shards)
    shards.sort(key=lambda s: s[1]["run"]["shard"]["index"])
    t0 = shards[0][1].get("target") or {}
    try:
        profile = load_target(target) if target else _shards_target(t0, load_target)
    except TargetError as exc:
        raise MergeError(str(exc)) from None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MergeError(f"--out {out}: exists and is not a folder")
    blocks = [dict(d["run"]["shard"]) for _, d in shards]
    timing = timing_check(blocks, max_skew_ms)
    pooled, notes = _pool_records(shards, out)
    counts = {name: len(rows) for name, rows in pooled.items()}
    load_files = [n for n in counts if n.startswith("load-")]
    records = pooled[load_files[0]] if len(load_files) == 1 else None  # the load run's, as just written
    if len(load_files) > 1:
        notes.append(f"more than one load run's records ({', '.join(load_files)}): the steadiness is not recomputed")
    claims = merge_claims(_group(shards), profile, timing_problem=timing["problem"], records=records)
    totals: dict[str, int] = {}
    for c in claims:
        totals[c.verdict] = totals.get(c.verdict, 0) + 1
    runs = [d.get("run") or {} for _, d in shards]
    hardware = [(d.get("environment") or {}).get("hardware") for _, d in shards]
    if len(set(hardware)) > 1:
        notes.append(f"the shards' pods ran on different hardware ({', '.join(sorted(map(str, set(hardware))))}): "
                     "the merged summary names no environment")
    summary = {
        "schema": 1,
        "target": {"name": profile.name, "description": profile.description, "source": profile.source},
        "run": {"plugin_version": __version__, "merged": True, "start": min(str(r.get("start")) for r in runs),
                "end": max(str(r.get("end")) for r in runs), "endpoint": runs[0].get("endpoint"),
                "model": runs[0].get("model"), "settings": runs[0].get("settings"),
                "load_plan": runs[0].get("load_plan"), "load_workload": runs[0].get("load_workload")},
        "totals": totals,
        "regressions": 0,
        "claims": [c.to_dict() for c in claims],
        "merge": {
            "count": blocks[0]["count"], "schedule_sha256": blocks[0]["schedule_sha256"],
            "start_at": blocks[0]["start_at"], **timing,
            "shards": [{**b, "summary": str(p), "host": (d.get("run") or {}).get("host"), "hardware": h}
                       for b, (p, d), h in zip(blocks, shards, hardware)],
            "records": counts,
            "notes": notes + ([f"every timing claim is inconclusive: {timing['problem']}"] if timing["problem"] else []),
        },
    }
    if len(set(hardware)) == 1 and shards[0][1].get("environment"):
        summary["environment"] = shards[0][1]["environment"]  # every shard's pod had the same fingerprint
    write_summary_json(out / "summary.json", summary)
    return summary, claims


def _shards_target(t0: dict[str, Any], load_target):
    """The shards' target: its profile file when it is still there, else by name."""
    source = t0.get("source")
    if source and Path(str(source)).is_file():
        return load_target(str(source))
    if not t0.get("name"):
        raise MergeError("the shards' summary names no target: give --target")
    return load_target(t0["name"])


# ------------------------------------------------------------------------------ the verb


def _handler(args) -> int:
    from .cli import fail
    from .report.terminal import format_table

    try:
        summary, claims = merge(args.shards, args.out, target=args.target, max_skew_ms=args.max_skew_ms)
    except MergeError as exc:
        return fail("merge", str(exc))
    m = summary["merge"]
    spread = lambda v: "n/a" if v is None else f"{v:.1f} ms"  # noqa: E731
    print(f"merged {m['count']} shards of schedule {m['schedule_sha256'][:12]} (start {m['start_at']}): "
          f"clock offsets spread {spread(m['clock_spread_ms'])}, first sends spread {spread(m['start_spread_ms'])}, "
          f"bound {m['max_skew_ms']:g} ms")
    if m["problem"]:
        print(f"timing: {m['problem']}")
    for line, _verdict in format_table(claims):
        print(line)
    for c in claims:
        if c.verdict == "inconclusive":
            print(f"  {c.metric}: inconclusive: {c.reason}")
    print(f"written {Path(args.out) / 'summary.json'}")
    bad = [c for c in claims if c.verdict in ("fail", "inconclusive")]
    return 1 if bad else 0


def register(sub) -> None:
    from .cli import verb_parser
    from .settings import positive_number

    p = verb_parser(sub, "merge", help="merge load shards' summaries into one, judged on the pooled samples",
                    description="Merge the summary.json of every shard of one load schedule (--load-shard i/N): "
                    "pools each claim's samples (not percentiles), re-judges them against the target, pools the "
                    "per-request records, and makes every timing claim inconclusive when the shards' clocks or "
                    "starts disagree beyond --max-skew-ms. Exit 0: every claim passed or was measured; 1: a claim "
                    "failed or was inconclusive; 2: bad input.")
    p.add_argument("shards", nargs="+", metavar="SHARD", help="a shard's report folder or its summary.json")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the merged summary.json and records")
    p.add_argument("--target", default=None, metavar="NAME_OR_PATH",
                   help="judge against this target profile (default: the shards' own)")
    p.add_argument("--max-skew-ms", type=positive_number("milliseconds"), default=MAX_SKEW_MS, metavar="N",
                   help=f"largest disagreement of the shards' clocks or starts (default {MAX_SKEW_MS:g} ms)")
    p.set_defaults(func=_handler)


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["merge", *sys.argv[1:]]))
