"""The run's state: the target, the claims made so far, and the hooks that route claims to sinks.

One :class:`InferenceSession` per pytest process, registered as a plugin by
:mod:`.plugin`.  A claim made in a test travels with the test's report (as a
``user_properties`` entry), so under pytest-xdist the controller sees every worker's
claims; a :class:`Measurement` published to the session (``inference_session.publish``)
travels the same way.  The controller alone hands the run to the sinks: the hooks of
:mod:`.hookspec` (terminal table, ``summary.json``, Allure are implementations of them).
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from .claims import FAIL, INCONCLUSIVE, Claim
from .settings import RunSettings, SettingsError
from .targets import DEFAULT_TARGET, Target, TargetError, load_target

SESSION_KEY: pytest.StashKey["InferenceSession"] = pytest.StashKey()
ITEM_CLAIMS: pytest.StashKey[list[Claim]] = pytest.StashKey()

#: user_properties names that carry data from workers to the controller (removed before JUnit)
CLAIM_CARRIER = "pytest_inference.claim"
META_CARRIER = "pytest_inference.meta"
MEASUREMENT_CARRIER = "pytest_inference.measurement"
#: xdist's workeroutput key: measurements a worker published after its last report
WORKER_MEASUREMENTS = "pytest_inference.measurements"
#: xdist's workerinput key: the run's measurement exchange folder (every process's publications)
WORKER_EXCHANGE = "pytest_inference.exchange"
SCHEMA = 1
REDACTED = "***"
#: the key variable peers (OpenAI SDK, LangChain, …) read; the default of --api-key-env for an --endpoint
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
#: fixtures that give a test a server to measure: a test using one is judged against the target only
#: when what ran matches it (see :meth:`InferenceSession.note_server`)
SERVER_FIXTURES = frozenset({
    "inference_endpoint", "inference_client", "inference_local", "serverless_endpoint", "serverless_client",
    "cold_starts",  # suites/coldstart/conftest.py
    "api_endpoint", "api_context",  # suites/api/conftest.py
})


class UsageError(Exception):
    """Bad options or input files; one line for the user."""


_MEASUREMENT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Measurement:
    """A figure a probe or suite measured and published to the session for others to read (the
    economics suite reads ``warm.tokens``), not judged itself: ``name`` (dotted, like a metric),
    ``data`` (any JSON value), ``unit``, ``source`` (the test that was running when it was published)
    and ``id`` (unique in the run: the same measurement arriving twice is kept once)."""

    name: str
    data: Any
    unit: str | None = None
    source: str | None = None
    id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _MEASUREMENT_NAME.match(self.name):
            raise ValueError(f"a measurement name is letters, digits, '_', '.', '-'; got {self.name!r}")
        if self.unit is not None and not isinstance(self.unit, str):
            raise TypeError(f"measurement {self.name}: unit must be a string; got {type(self.unit).__name__}")
        try:
            json.dumps(self.data)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"measurement {self.name}: data must be JSON (dict, list, str, number); {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "data": self.data, "unit": self.unit, "source": self.source, "id": self.id}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Measurement":
        return cls(d["name"], d.get("data"), d.get("unit"), d.get("source"), d.get("id") or "")


def check_api_key(key: str, option: str, var: str) -> None:
    """An HTTP header carries Latin-1 text without line breaks or control characters: refuse any
    other key up front, in one line that never shows the key."""
    if any(ch in "\r\n" for ch in key):
        why = "a line break (CR or LF)"
    elif any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in key):
        why = "a control character"
    else:
        try:
            key.encode("latin-1")
            return
        except UnicodeEncodeError:
            why = "a character outside Latin-1"
    raise UsageError(f"{option} {var}: the API key in ${var} contains {why}, which an HTTP header cannot "
                     "carry; fix the variable (the key is not shown)")


def check_report_dir(path: Path) -> None:
    """The report folder must be (or become) a writable directory: checked before anything is measured.
    An existing folder gets a write probe; a missing one needs its nearest existing parent to be a
    writable directory (nothing is created for a run that may measure nothing)."""
    where = f"--inference-report {path}"
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{where}: exists and is not a directory")
        try:
            import tempfile

            with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
                pass
        except OSError as exc:
            raise UsageError(f"{where}: cannot write into it ({exc.strerror or exc})") from None
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{where}: cannot be created, {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: cannot be created, {parent} is not writable")


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
        settings: RunSettings | None = None,
    ) -> None:
        self.config = config
        self.target = target
        #: the run's settings (option, else the target's [workload], else the default): the one object
        self.settings = settings if settings is not None else RunSettings(config, target)
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
        self._extra_secrets: list[str] = []
        self.ran: list[dict[str, Any]] = []
        self._mismatch: str | None = None
        self._environment: dict[str, Any] | None = None
        self.inference_items = 0      # inference tests selected (this process) / reported (controller)
        self.unmeasured: dict[str, str] = {}  # nodeid -> why (skip reason) for inference tests without a claim
        self._tests_with_claims: set[str] = set()
        self._measurements: dict[str, Measurement] = {}  # id -> measurement, in arrival order
        self._outbox: list[Measurement] = []  # published here, not yet carried on a report
        self._published = 0
        self._running: pytest.Item | None = None
        # under xdist: a private folder of the controller's where every process also drops what it
        # publishes, so a worker reads the others' measurements too (see publish / measurements)
        exchange = getattr(config, "workerinput", {}).get(WORKER_EXCHANGE)
        self._exchange: Path | None = Path(exchange) if exchange else None
        self._own_exchange = False

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

        endpoint = opt("inference_endpoint", "inference_endpoint")
        if endpoint:
            endpoint = normalize_endpoint(endpoint)
        api_key_env = opt("inference_api_key_env", "inference_api_key_env")
        api_key = None
        extra_secrets = []
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise UsageError(
                    f"--api-key-env {api_key_env}: the environment variable {api_key_env} is not set or empty"
                )
            check_api_key(api_key, "--api-key-env", api_key_env)
        elif os.environ.get(DEFAULT_KEY_ENV):
            # the peers' default variable: used for an --endpoint only (the embedded local server
            # never starts requiring it), and redacted from every report either way
            default_key = os.environ[DEFAULT_KEY_ENV]
            check_api_key(default_key, "--api-key-env (default)", DEFAULT_KEY_ENV)
            if endpoint:
                api_key_env, api_key = DEFAULT_KEY_ENV, default_key
            else:
                extra_secrets.append(default_key)
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
            check_api_key(serverless_key, "--serverless-api-key-env", serverless_key_env)

        chosen = opt("inference_report", "inference_report_dir")
        report_dir = Path(chosen or "reports")
        if not report_dir.is_absolute():
            report_dir = Path(config.invocation_params.dir) / report_dir
        # a folder the user chose is checked now; the default reports/ once inference tests are
        # collected (a plain project in a read-only checkout is not refused) — before any measuring
        if chosen and not hasattr(config, "workerinput"):
            check_report_dir(report_dir)

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

        # an option that would make a suite send nothing (or grow without bound) is one line, now
        try:
            settings = RunSettings(config, target)
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
        from .load import plan as _load_plan  # the load options together (a search range upside down)

        try:
            _load_plan(settings)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

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
            settings=settings,
        )
        state.serverless_endpoint = serverless
        state.serverless_model = config.getoption("inference_serverless_model")
        state.serverless_api_key_env = serverless_key_env
        state._serverless_key = serverless_key
        state._extra_secrets = extra_secrets
        return state

    @property
    def api_key(self) -> str | None:
        return self._api_key

    @property
    def serverless_api_key(self) -> str | None:
        return self._serverless_key

    def secrets(self) -> list[str]:
        return [k for k in (self._api_key, self._serverless_key, *self._extra_secrets) if k]

    def redact(self, text: str) -> str:
        """``text`` with every key (and its base64 forms) replaced by ``***``."""
        from .report.redact import redact_text

        return redact_text(text, self.secrets(), REDACTED)

    # --- what ran (A7) ------------------------------------------------------------------
    def note_server(self, *, accelerator: str | None, model: str | None, how: str, url: str | None = None) -> None:
        """Record the server a test measures; when it does not match the target, every later claim
        of a test using a server fixture (:data:`SERVER_FIXTURES`) in this process is inconclusive.

        ``accelerator`` is what the caller knows (``"cpu"`` for the embedded CPU server), else None.
        Then, when the server runs on this host — a local server (no ``url``), or an endpoint on
        loopback (``url``, else the URL ``how`` ends with) — the environment fingerprint's accelerator
        (model and count, :func:`pytest_inference.fingerprint.accelerator`) is what ran."""
        entry = {"accelerator": accelerator, "model": model, "how": how}
        if entry not in self.ran:
            self.ran.append(entry)
        self.add_metadata(ran=list(self.ran))
        measured = None
        if accelerator is None and _on_this_host(how, url):
            measured = self.host_accelerator()
        why = server_mismatch(self.target, accelerator=accelerator, model=model, how=how, measured=measured)
        if why:
            self._mismatch = why

    def host_accelerator(self) -> dict[str, Any]:
        """This host's accelerator (the fingerprint's section; the tools run once per process)."""
        from .fingerprint import accelerator

        return accelerator()

    def environment(self) -> dict[str, Any]:
        """summary.json's ``environment`` (contract C1): collected once per session, in the process
        that writes the summary (the controller under xdist)."""
        if self._environment is None:
            from .fingerprint import collect

            meta = self.metadata
            endpoint = self.endpoint or meta.get("endpoint")
            vllm = meta.get("vllm") if isinstance(meta.get("vllm"), dict) else None
            self._environment = collect(
                target_name=self.target.name, target_source=self.target.source,
                model=self.model or meta.get("model"),
                # where the served model came from: the server's model card, the local server's folder
                model_path=[meta.get("model_root"), meta.get("model_path"), self.settings.model_path],
                endpoint=endpoint, api_key=self.api_key if endpoint == self.endpoint else None,
                vllm=vllm, plugin_version=__version__)
        return self._environment

    def not_judged_reason(self, item: pytest.Item) -> str | None:
        """Why ``item``'s claims must not be judged against the target (what ran differs), or None."""
        if self._mismatch is None:
            return None
        if not SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            return None
        return self._mismatch

    def __repr__(self) -> str:  # never show the key
        return f"<InferenceSession target={self.target.name} endpoint={self.endpoint!r}>"

    def configure_allure(self, items: list[pytest.Item]) -> None:
        """Send allure-pytest's results to REPORT/allure-results when this session runs inference
        tests and the user chose no --alluredir; decided after collection, so a project that makes
        no claim keeps allure-pytest as it was (and its folders untouched)."""
        opt = self.config.option
        pm = self.config.pluginmanager
        if not pm.hasplugin("allure_pytest") or not hasattr(opt, "allure_report_dir"):
            return
        if opt.allure_report_dir or pm.has_plugin("allure_listener"):
            return
        if not any(is_inference_item(i) for i in items) or opt.collectonly:
            return
        folder = self.report_dir / "allure-results"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise pytest.UsageError(f"--inference-report {self.report_dir}: cannot create {folder} ({exc.strerror})") from None
        # Stale results of an earlier run would mix into this run's report: remove allure-pytest's
        # own result files (never anything else) once, in the controller or the first xdist worker,
        # before any test ran (xdist schedules tests only after every worker reported collection).
        worker = getattr(self.config, "workerinput", {}).get("workerid")
        if worker in (None, "gw0"):
            clean_allure_results(folder)
        opt.allure_report_dir = str(folder)
        self._allure_chosen_by_us = True
        # what allure-pytest's own pytest_configure does when --alluredir is given
        import allure_commons
        from allure_commons.logger import AllureFileLogger
        from allure_pytest.listener import AllureListener
        from allure_pytest.plugin import cleanup_factory

        listener = AllureListener(self.config)
        pm.register(listener, "allure_listener")
        allure_commons.plugin_manager.register(listener)
        self.config.add_cleanup(cleanup_factory(listener))
        file_logger = AllureFileLogger(str(folder.resolve()), False)
        allure_commons.plugin_manager.register(file_logger)
        self.config.add_cleanup(cleanup_factory(file_logger))

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = [i for i in session.items]
        self.inference_items = sum(1 for i in items if is_inference_item(i))
        if self.inference_items and not self.is_worker and not session.config.option.collectonly:
            try:
                check_report_dir(self.report_dir)
            except UsageError as exc:
                raise pytest.UsageError(str(exc)) from None
        self.configure_allure(items)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # C17: every inference test carries its suite as an Allure label, also when it is skipped
        if not config.pluginmanager.hasplugin("allure_pytest"):
            return
        for item in items:
            suite = suite_of(item)
            if suite:
                item.add_marker(pytest.mark.allure_label(suite, label_type="suite"))
                item.add_marker(pytest.mark.allure_label(PARENT_SUITE, label_type="parentSuite"))

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

    # --- measurements (published by probes and suites, read by later suites) -------------
    def publish(self, name: str, data: Any, *, unit: str | None = None, source: str | None = None) -> Measurement:
        """Publish a measurement: readable at once in this process (:meth:`measurements`), carried to
        the controller with the next test report (as claims are), kept in ``summary.json``'s
        ``measurements``. ``source`` defaults to the running test's node id."""
        if source is None and self._running is not None:
            source = self._running.nodeid
        self._published += 1
        worker = getattr(self.config, "workerinput", {}).get("workerid", "main")
        m = Measurement(name, data, unit, source, id=f"{worker}-{os.getpid()}-{self._published}")
        self._measurements[m.id] = m
        self._outbox.append(m)
        self._drop(m)
        self.config.hook.pytest_inference_measurement(measurement=m, config=self.config)
        return m

    def measurements(self, name: str | None = None) -> list[Measurement]:
        """The measurements named ``name`` (all without one) this process knows, oldest first: its own
        and, under xdist, every other process's published before this call (a worker's in the controller
        arrive with its reports). A publisher running at the same time on another worker may not be
        seen yet: order readers after publishers (the ``inference_reads`` marker) and say what was used."""
        if self._exchange is not None:
            self._pick_up()
        return [m for m in self._measurements.values() if name is None or m.name == name]

    def _drop(self, m: Measurement) -> None:
        """Write ``m`` into the exchange folder (atomically: a reader never sees half a file)."""
        if self._exchange is None:
            return
        import tempfile

        try:
            fd, tmp = tempfile.mkstemp(dir=self._exchange, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                json.dump(m.to_dict(), fh, default=str)
            os.replace(tmp, self._exchange / f"{m.id}.json")
        except OSError:
            pass  # the report route still carries it to the controller

    def _pick_up(self) -> None:
        try:
            entries = sorted((e.stat().st_mtime_ns, e.name, e) for e in os.scandir(self._exchange)
                             if e.name.endswith(".json") and e.is_file(follow_symlinks=False))
        except OSError:
            return
        for _, filename, entry in entries:
            if filename[:-5] in self._measurements:
                continue
            try:
                with open(entry.path) as fh:
                    m = Measurement.from_dict(json.load(fh))
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                continue  # not a measurement: ignored
            if m.id == filename[:-5]:
                self._receive(m)

    def _receive(self, m: Measurement) -> None:
        self._measurements.setdefault(m.id, m)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem):
        self._running = item
        try:
            return (yield)
        finally:
            self._running = None

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
    def pytest_collectreport(self, report) -> None:
        if self.secrets():
            self._redact_report(report)

    def _redact_report(self, report) -> None:
        """Scrub the keys from what the terminal, JUnit and xdist show of a report: the traceback
        (with ``-l`` locals), captured output and logs, user properties."""
        secrets = self.secrets()
        if report.longrepr is not None:
            text = str(report.longrepr) if not isinstance(report.longrepr, tuple) else repr(report.longrepr)
            if any(_contains(text, s) for s in secrets):
                if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:  # a skip: (file, line, reason)
                    path, line, reason = report.longrepr
                    report.longrepr = (path, line, self.redact(str(reason)))
                else:
                    _redact_in_place(report.longrepr, self.redact)
                    if any(_contains(str(report.longrepr), s) for s in secrets):  # a repr shape not walked
                        report.longrepr = self.redact(text)
        report.sections = [(self.redact(title), self.redact(body)) for title, body in report.sections]
        if getattr(report, "user_properties", None):
            report.user_properties = [
                (name, self.redact(value) if isinstance(value, str) else value) for name, value in report.user_properties
            ]
        if getattr(report, "wasxfail", None):
            report.wasxfail = self.redact(report.wasxfail)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.secrets():
            self._redact_report(report)
        if not self.is_worker:
            self._track_measured(report)
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
            elif name == MEASUREMENT_CARRIER:
                self._receive(Measurement.from_dict(json.loads(value)))
            else:
                kept.append((name, value))
        # rebind, never mutate: the list may be the item's own (no xdist)
        report.user_properties = kept

    def ordered_claims(self) -> list[Claim]:
        return list(self.claims.values())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        # the suite travels with the report (also from an xdist worker): keywords would not do,
        # they hold folder names too (tests/economics is not the economics suite)
        suite = suite_of(item)
        if suite:
            report.inference_suite = suite
        if self._outbox:  # measurements published since the last report travel with this one
            shipped = [(MEASUREMENT_CARRIER, json.dumps(m.to_dict(), default=str)) for m in self._outbox]
            self._outbox.clear()
            report.user_properties = [*report.user_properties, *shipped]
        return report

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """xdist (controller): every worker gets the run's measurement exchange folder (ours, 0700)."""
        if self._exchange is None:
            import tempfile

            self._exchange = Path(tempfile.mkdtemp(prefix="pytest-inference-measurements-"))
            self._own_exchange = True
        node.workerinput[WORKER_EXCHANGE] = str(self._exchange)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        """xdist (controller): measurements a worker published after its last report."""
        for data in json.loads(getattr(node, "workeroutput", {}).get(WORKER_MEASUREMENTS, "[]")):
            self._receive(Measurement.from_dict(data))

    def _track_measured(self, report: pytest.TestReport) -> None:
        """Remember the inference tests that made no claim, and why (C19)."""
        if not getattr(report, "inference_suite", None):
            return
        nodeid = report.nodeid
        if any(n == CLAIM_CARRIER for n, _ in report.user_properties):
            self._tests_with_claims.add(nodeid)
            self.unmeasured.pop(nodeid, None)
            return
        if nodeid in self._tests_with_claims:
            return
        if report.skipped:
            if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
                why = str(report.longrepr[2]).removeprefix("Skipped: ")
            else:
                why = "xfailed" if hasattr(report, "wasxfail") else "skipped"
            self.unmeasured[nodeid] = f"skipped: {why}"
        elif report.failed:
            self.unmeasured[nodeid] = f"{report.when} failed"
        elif report.when == "call":
            self.unmeasured.setdefault(nodeid, "passed without making a claim")

    def measured_nothing(self) -> bool:
        """True when this session ran inference tests and none of them recorded a claim."""
        return bool(self.unmeasured) and not self.claims and not self._tests_with_claims

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.is_worker:
            return
        # the sinks (report.terminal's table, a user plugin's lines) implement this hook
        self.config.hook.pytest_inference_terminal_summary(
            config=self.config, terminalreporter=terminalreporter, claims=self.ordered_claims())

    def summary_path_hint(self) -> Path:
        return self.report_dir / "summary.json"


    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # after every sink (JUnit, allure-pytest) wrote its files, whatever the run recorded
        if not self.is_worker and self.secrets():
            self.redact_outputs()
        if self._own_exchange and self._exchange is not None:
            import shutil

            shutil.rmtree(self._exchange, ignore_errors=True)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if self.is_worker:
            if self._outbox and hasattr(self.config, "workeroutput"):  # published after the last report
                self.config.workeroutput[WORKER_MEASUREMENTS] = json.dumps(
                    [m.to_dict() for m in self._outbox], default=str)
                self._outbox.clear()
            return
        # C19: a session whose inference tests measured no claim at all is not green
        if (exitstatus == 0 and self.measured_nothing()
                and not self.config.getoption("inference_allow_unmeasured")):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.claims or self.metadata or self._measurements:
            # the sinks (summary.json, a user plugin's) implement these hooks; a plugin may adjust first
            summary = self.summary()
            self.config.hook.pytest_inference_summary(config=self.config, summary=summary)
            self.config.hook.pytest_inference_report(session=session, summary=summary, claims=self.ordered_claims())
        if self.secrets():
            self.redact_outputs()

    def redact_outputs(self) -> None:
        """Scrub the keys from every file this run wrote: report folder, Allure results, JUnit XML."""
        from .report.redact import redact_tree

        opt = self.config.option
        places = [self.report_dir, getattr(opt, "allure_report_dir", None), getattr(opt, "xmlpath", None)]
        for place in places:
            if place:
                redact_tree(Path(place), self.secrets(), REDACTED)

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
            "settings": self.settings.to_dict(),  # each run setting's value and source (pytest_inference.settings)
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
        if self._measurements:
            out["measurements"] = [m.to_dict() for m in self._measurements.values()]
        out["environment"] = self.environment()
        return out


def normalize_endpoint(url: str, option: str = "--endpoint") -> str:
    """``http://host:8000`` → ``http://host:8000/v1``; a given path is kept as is.
    Messages never echo a password from the URL."""
    from urllib.parse import urlsplit

    url = url.strip()
    from .report.redact import redact_userinfo

    shown = redact_userinfo(url)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        raise UsageError(f"{option} {shown!r} is not a valid URL (check the brackets of an IPv6 address)") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise UsageError(f"{option} {shown!r} is not an http(s) URL like http://127.0.0.1:8000/v1")
    try:
        parts.port
    except ValueError:
        raise UsageError(f"{option} {shown!r} has an invalid port") from None
    if parts.username or parts.password:
        raise UsageError(f"{option} must not contain credentials; use an --…-api-key-env VAR option")
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def _contains(text: str, secret: str) -> bool:
    from .report.redact import secret_forms

    return any(form in text for form in secret_forms(secret))


def _suite_names() -> tuple[str, ...]:
    from .markers import MARKERS

    return tuple(MARKERS)


def suite_of(item: pytest.Item) -> str | None:
    """The inference suite an item belongs to, from its marker (closest first)."""
    names = _suite_names()
    for mark in item.iter_markers():
        if mark.name in names:
            return mark.name
    return None


def readers_last(items: list[pytest.Item], marker: str) -> None:
    """Move the items carrying ``marker`` (readers of other tests' measurements) after all others,
    each group in its own order; nothing moves when they are last already."""
    readers = [i for i in items if i.get_closest_marker(marker) is not None]
    if readers and items[-len(readers):] != readers:
        others = [i for i in items if i.get_closest_marker(marker) is None]
        items[:] = others + readers


def is_inference_item(item: pytest.Item) -> bool:
    """An inference test: it carries a suite marker or uses the ``claim`` fixture."""
    return suite_of(item) is not None or "claim" in getattr(item, "fixturenames", ())


PARENT_SUITE = "pytest-inference"


def _norm_model(name: str) -> str:
    return name.strip().rstrip("/").rsplit("/", 1)[-1].lower()


def _on_this_host(how: str, url: str | None) -> bool:
    """A local server (no URL: what ``LocalConfig.ran`` notes), or an endpoint on loopback."""
    from .fingerprint import is_loopback

    if url is None:
        last = how.split()[-1] if how.split() else ""
        url = last if last.startswith(("http://", "https://")) else None
    return url is None or is_loopback(url)


def server_mismatch(target: Target, *, accelerator: str | None, model: str | None, how: str,
                    measured: dict[str, Any] | None = None) -> str | None:
    """One line saying why a run of ``model`` on ``accelerator`` is not judged against ``target``,
    or None when it matches (or cannot be told: an unknown accelerator never mismatches by itself).
    Models compare by their last path part, case-insensitive (``openai/gpt-oss-120b`` = ``gpt-oss-120b``).

    ``measured``: the environment fingerprint's accelerator of the host the server runs on, used
    when ``accelerator`` is None and the tool named the part (vendor nvidia/amd and a model): its
    model matches the target's ``accelerator`` loosely (``MI300X`` = ``AMD Instinct MI300X``) and its
    count the target's ``accelerators``. A fingerprint without an accelerator (vendor cpu, unknown)
    says nothing: a GPU-less host's loopback server is not judged by what it lacks. A target about
    the CPU is never contradicted by the GPUs a host has (having them is not using them)."""
    from .fingerprint import describe_accelerator, same_accelerator

    want_acc = target.workload.get("accelerator")
    want_n = target.workload.get("accelerators")
    want_model = target.workload.get("model")
    acc_differs = bool(accelerator and want_acc and not same_accelerator(str(want_acc), accelerator)
                       and accelerator.lower() != str(want_acc).lower())
    on = "the CPU" if (accelerator or "").lower() == "cpu" else (accelerator or "an unknown accelerator")
    hint, want_on = "", want_acc
    if (accelerator is None and measured and measured.get("vendor") in ("nvidia", "amd") and measured.get("model")
            and want_acc and str(want_acc).lower() != "cpu"):
        n = measured.get("count")
        count_differs = isinstance(want_n, int) and isinstance(n, int) and n != want_n
        part_differs = not same_accelerator(str(want_acc), str(measured["model"]))
        if part_differs or count_differs:
            acc_differs = True
            on = describe_accelerator(measured)
            want_on = f"{want_n} x {want_acc}" if isinstance(want_n, int) else want_acc
            if count_differs and not part_differs:
                hint = (f" [{measured['note']}]" if measured.get("note") else f" [all {n} visible: set "
                        "CUDA_VISIBLE_DEVICES or HIP_VISIBLE_DEVICES to the ones the server uses]")
    model_differs = bool(model and want_model and _norm_model(model) != _norm_model(str(want_model)))
    if not (acc_differs or model_differs):
        return None
    ran = f"{model or 'an unknown model'} on {on} ({how}){hint}"
    wants = f"{want_model or 'any model'} on {want_on}" if want_acc else f"{want_model}"
    return f"not judged against {target.name}: this run measured {ran}; {target.name} is {wants}"


#: allure-pytest's own files in a results folder (uuid-result.json, uuid-container.json, uuid-attachment.ext)
_ALLURE_FILE = re.compile(r"^[0-9a-f-]{32,36}-(result\.json|container\.json|attachment(\.[\w.-]+)?)$")


def clean_allure_results(folder: Path) -> int:
    """Remove allure-pytest's result files of an earlier run from ``folder``; nothing else is touched."""
    removed = 0
    for path in folder.iterdir():
        if _ALLURE_FILE.match(path.name) and path.is_file() and not path.is_symlink():
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def _redact_in_place(obj: Any, redact, _depth: int = 0) -> Any:
    """Redact every string inside pytest's traceback representation (ExceptionChainRepr, ReprEntry,
    ReprLocals, …) keeping its shape, so the terminal still colours and summarises it."""
    if _depth > 12:
        return obj
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            obj[i] = _redact_in_place(v, redact, _depth + 1)
        return obj
    if isinstance(obj, tuple):
        return tuple(_redact_in_place(v, redact, _depth + 1) for v in obj)
    if isinstance(obj, dict):
        for k, v in list(obj.items()):
            obj[k] = _redact_in_place(v, redact, _depth + 1)
        return obj
    fields = getattr(obj, "__dict__", None)
    if fields is not None and type(obj).__module__.startswith("_pytest"):
        for name, value in list(fields.items()):
            try:
                object.__setattr__(obj, name, _redact_in_place(value, redact, _depth + 1))
            except (AttributeError, TypeError):
                pass
    return obj
