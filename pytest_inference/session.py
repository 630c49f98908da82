"""The run's state: the target, the claims made so far, and the hooks that route claims to sinks.

One :class:`InferenceSession` per pytest process, registered as a plugin by
:mod:`.plugin`.  A claim made in a test travels with the test's report (as a
``user_properties`` entry), so under pytest-xdist the controller sees every worker's
claims; the controller alone writes ``summary.json`` and the terminal table.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from .claims import FAIL, INCONCLUSIVE, Claim
from .targets import DEFAULT_TARGET, Target, TargetError, load_target

SESSION_KEY: pytest.StashKey["InferenceSession"] = pytest.StashKey()
ITEM_CLAIMS: pytest.StashKey[list[Claim]] = pytest.StashKey()

#: user_properties names that carry data from workers to the controller (removed before JUnit)
CLAIM_CARRIER = "pytest_inference.claim"
META_CARRIER = "pytest_inference.meta"
SCHEMA = 1
REDACTED = "***"


class UsageError(Exception):
    """Bad options or input files; one line for the user."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class InferenceSession:
    def __init__(
        self,
        config: pytest.Config,
        target: Target,
        *,
        endpoint: str | None,
        model: str | None,
        api_key_env: str | None,
        api_key: str | None,
        report_dir: Path,
        inconclusive: str,
        baseline: Any = None,
    ) -> None:
        self.config = config
        self.target = target
        self.endpoint = endpoint
        self.model = model
        self.api_key_env = api_key_env
        self._api_key = api_key
        self.report_dir = report_dir
        self.inconclusive = inconclusive
        self.baseline = baseline
        self.is_worker = hasattr(config, "workerinput")
        self.claims: dict[str, Claim] = {}
        self.metadata: dict[str, Any] = {}
        self.started = _now()
        self._t0 = time.monotonic()
        self.loadavg_start = _loadavg()
        self.summary_path: Path | None = None
        self._allure_chosen_by_us = False
        self.serverless_endpoint: str | None = None
        self.serverless_model: str | None = None
        self.serverless_api_key_env: str | None = None
        self._serverless_key: str | None = None

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: pytest.Config) -> "InferenceSession":
        def opt(name: str, ini: str | None = None):
            value = config.getoption(name)
            if value is None and ini:
                value = config.getini(ini) or None
            return value

        try:
            target = load_target(opt("inference_target", "inference_target") or DEFAULT_TARGET)
        except TargetError as exc:
            raise UsageError(str(exc)) from None

        api_key_env = opt("inference_api_key_env", "inference_api_key_env")
        api_key = None
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise UsageError(
                    f"--api-key-env {api_key_env}: the environment variable {api_key_env} is not set or empty"
                )

        endpoint = opt("inference_endpoint", "inference_endpoint")
        if endpoint:
            endpoint = normalize_endpoint(endpoint)
        serverless = opt("inference_serverless_endpoint", "inference_serverless_endpoint")
        if serverless:
            serverless = normalize_endpoint(serverless, option="--serverless-endpoint")
        serverless_key_env = config.getoption("inference_serverless_api_key_env")
        serverless_key = None
        if serverless_key_env:
            serverless_key = os.environ.get(serverless_key_env)
            if not serverless_key:
                raise UsageError(f"--serverless-api-key-env {serverless_key_env}: the environment variable "
                                 f"{serverless_key_env} is not set or empty")
        idle = config.getoption("inference_serverless_idle_s")
        if idle is not None and idle < 0:
            raise UsageError(f"--serverless-idle-s must be 0 or more; got {idle:g}")

        report_dir = Path(opt("inference_report", "inference_report_dir") or "reports")
        if not report_dir.is_absolute():
            report_dir = Path(config.invocation_params.dir) / report_dir

        inconclusive = opt("inference_inconclusive", "inference_inconclusive") or "fail"
        if inconclusive not in ("fail", "xfail"):
            raise UsageError(f"inference_inconclusive must be 'fail' or 'xfail'; got {inconclusive!r}")

        baseline = None
        if config.getoption("inference_baseline"):
            from .baseline import Baseline, BaselineError

            try:
                baseline = Baseline.load(
                    config.getoption("inference_baseline"), config.getoption("inference_baseline_tolerance")
                )
            except BaselineError as exc:
                raise UsageError(str(exc)) from None
        elif config.getoption("inference_baseline_tolerance"):
            raise UsageError("--inference-baseline-tolerance needs --inference-baseline FILE")

        for name in ("inference_warm_requests", "inference_max_tokens"):
            value = config.getoption(name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.removeprefix('inference_').replace('_', '-')} must be at least 1; got {value}")
        warmup = config.getoption("inference_warm_warmup")
        if warmup is not None and warmup < 0:
            raise UsageError(f"--warm-warmup must be 0 or more; got {warmup}")

        state = cls(
            config,
            target,
            endpoint=endpoint,
            model=config.getoption("inference_model"),
            api_key_env=api_key_env,
            api_key=api_key,
            report_dir=report_dir,
            inconclusive=inconclusive,
            baseline=baseline,
        )
        state.serverless_endpoint = serverless
        state.serverless_model = config.getoption("inference_serverless_model")
        state.serverless_api_key_env = serverless_key_env
        state._serverless_key = serverless_key
        return state

    @property
    def api_key(self) -> str | None:
        return self._api_key

    @property
    def serverless_api_key(self) -> str | None:
        return self._serverless_key

    def secrets(self) -> list[str]:
        return [k for k in (self._api_key, self._serverless_key) if k]

    def __repr__(self) -> str:  # never show the key
        return f"<InferenceSession target={self.target.name} endpoint={self.endpoint!r}>"

    def configure_allure(self) -> None:
        """Send allure-pytest's results to REPORT/allure-results unless the user chose --alluredir."""
        opt = self.config.option
        if not self.config.pluginmanager.hasplugin("allure_pytest") or not hasattr(opt, "allure_report_dir"):
            return
        if opt.allure_report_dir:
            return
        opt.allure_report_dir = str(self.report_dir / "allure-results")
        self._allure_chosen_by_us = True
        # Stale results from an earlier run would mix into this run's report. The controller
        # (or a plain run) cleans; xdist workers inherit the option and must not.
        if not self.is_worker:
            shutil.rmtree(opt.allure_report_dir, ignore_errors=True)

    def header_lines(self) -> list[str]:
        line = f"inference: target {self.target.name} ({self.target.source})"
        if self.endpoint:
            line += f", endpoint {self.endpoint}"
        if self.api_key_env:
            line += f", API key from ${self.api_key_env}"
        return [line, f"inference: report folder {self.report_dir}"]

    # --- recording (in the process that runs the test) ----------------------------------
    def record(self, item: pytest.Item, claim: Claim) -> Claim:
        claim.test = item.nodeid
        if claim.target is None:
            claim.target = self.target.name
        if self.baseline is not None:
            claim.baseline = self.baseline.compare(claim)
        item.stash.setdefault(ITEM_CLAIMS, []).append(claim)
        props = item.user_properties
        props.append((f"{claim.metric}.measured", claim.measured))
        if claim.unit:
            props.append((f"{claim.metric}.unit", claim.unit))
        if claim.op is not None:
            props.append((f"{claim.metric}.requirement", claim.requirement_text()))
        props.append((f"{claim.metric}.samples", claim.count))
        props.append((f"{claim.metric}.verdict", claim.verdict))
        props.append((CLAIM_CARRIER, json.dumps(claim.to_dict())))
        if self.metadata:  # travels with the claim, so the controller learns it under xdist too
            props.append((META_CARRIER, json.dumps(self.metadata, default=str)))
        return claim

    def add_metadata(self, **values: Any) -> None:
        """Run metadata (server, model, …) a fixture learned; reaches summary.json from any worker."""
        self.metadata.update({k: v for k, v in values.items() if v is not None})

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        result = yield
        claims = item.stash.get(ITEM_CLAIMS, [])
        failed = [c for c in claims if c.verdict == FAIL]
        regressed = [c for c in claims if c.regressed]
        unsure = [c for c in claims if c.verdict == INCONCLUSIVE]
        lines = [c.message() for c in failed]
        lines += [self.baseline.describe(c) for c in regressed if c not in failed]
        if lines:
            pytest.fail("\n".join(lines), pytrace=False)
        if unsure:
            text = "\n".join(c.message() for c in unsure)
            if self.inconclusive == "xfail":
                pytest.xfail(text)
            pytest.fail(text, pytrace=False)
        return result

    # --- collecting (controller, or the only process) ------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # An xdist worker forwards its reports as they are; the controller collects.
        if self.is_worker or not report.user_properties:
            return
        kept = []
        for name, value in report.user_properties:
            if name == CLAIM_CARRIER:
                data = json.loads(value)
                if data["id"] not in self.claims:
                    self.claims[data["id"]] = Claim.from_dict(data)
            elif name == META_CARRIER:
                self.metadata.update(json.loads(value))
            else:
                kept.append((name, value))
        # rebind, never mutate: the list may be the item's own (no xdist)
        report.user_properties = kept

    def ordered_claims(self) -> list[Claim]:
        return list(self.claims.values())

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.is_worker or not self.claims:
            return
        from .report.terminal import write_summary

        write_summary(terminalreporter, self.ordered_claims(), self.target, self.summary_path_hint())
        from .report.comparison import format_rows, side_by_side

        rows = side_by_side(self.ordered_claims())
        if rows:
            terminalreporter.write_sep("-", "self-hosted vs serverless")
            for line in format_rows(rows):
                terminalreporter.write_line(line)

    def summary_path_hint(self) -> Path:
        return self.report_dir / "summary.json"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if self.is_worker:
            return
        if not self.claims and not self.metadata:
            return
        from .report.summary import write_summary_json

        self.summary_path = write_summary_json(self.summary_path_hint(), self.summary())
        if self.secrets():
            self.redact_outputs()

    def redact_outputs(self) -> None:
        """Scrub the keys from every file this run wrote: report folder, Allure results, JUnit XML."""
        from .report.redact import redact_tree

        opt = self.config.option
        for place in (self.report_dir, getattr(opt, "allure_report_dir", None), getattr(opt, "xmlpath", None)):
            for secret in self.secrets():
                if place:
                    redact_tree(Path(place), secret, REDACTED)

    def summary(self) -> dict[str, Any]:
        claims = [c.to_dict() for c in self.ordered_claims()]
        totals: dict[str, int] = {}
        for c in claims:
            totals[c["verdict"]] = totals.get(c["verdict"], 0) + 1
        regressions = sum(1 for c in self.ordered_claims() if c.regressed)
        run = {
            "plugin_version": __version__,
            "pytest_version": pytest.__version__,
            "python": platform.python_version(),
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "loadavg_start": self.loadavg_start,
            "loadavg_end": _loadavg(),
            "start": self.started,
            "end": _now(),
            "duration_s": round(time.monotonic() - self._t0, 3),
            "endpoint": self.endpoint,
            "model": self.model,
            "api_key_env": self.api_key_env,
        }
        run.update(self.metadata)
        from .report.comparison import side_by_side

        out = {
            "schema": SCHEMA,
            "target": {"name": self.target.name, "description": self.target.description, "source": self.target.source},
            "run": run,
            "totals": totals,
            "regressions": regressions,
            "claims": claims,
        }
        comparison = side_by_side(self.ordered_claims())
        if comparison:
            out["comparison"] = comparison
        return out


def normalize_endpoint(url: str, option: str = "--endpoint") -> str:
    """``http://host:8000`` → ``http://host:8000/v1``; a given path is kept as is."""
    from urllib.parse import urlsplit

    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{option} {url!r} is not an http(s) URL like http://127.0.0.1:8000/v1")
    try:
        parts.port
    except ValueError:
        raise UsageError(f"{option} {url!r} has an invalid port") from None
    if parts.username or parts.password:
        raise UsageError(f"{option} must not contain credentials; use an --…-api-key-env VAR option")
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"
