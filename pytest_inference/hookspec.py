"""pytest-inference's hook specifications: how a plugin listens to claims or adds a sink.

Registered by :mod:`.plugin` (``pytest_addhooks``), as pytest-benchmark does with its own
``hookspec.py``.  The shipped sinks are implementations of these hooks, registered as plugins
of their own and removable by name with ``-p no:NAME``:

* ``inference-terminal`` (:mod:`.report.terminal`): the claims table at the end of the run;
* ``inference-summary-json`` (:mod:`.report.summary`): ``summary.json``;
* ``inference-allure`` (:mod:`.report.allure_sink`): each claim and attachment in allure-pytest's result;
* ``inference-conformance`` (:mod:`.report.conformance`): one row per check id (``K8S-…``, ``API-…``) in
  the terminal, ``summary.json``'s ``conformance`` and ``conformance-report.yaml``; a check's test that
  skips carries its id in ``user_properties`` (``("inference_check", ID)``, ``("inference_check_title", TITLE)``).

A ``conftest.py`` or plugin adds a sink by implementing any of them::

    def pytest_inference_claim(claim, item, parameters):
        print(item.nodeid, claim.metric, claim.verdict)

    def pytest_inference_summary(config, summary):
        summary["run"]["build"] = os.environ.get("BUILD_ID")

    def pytest_inference_report(session, summary, claims):
        Path("claims.csv").write_text("".join(f"{c.metric},{c.measured},{c.verdict}\\n" for c in claims))

Without the plugin (``-p no:inference``) these hooks do not exist: a plugin that should still
load then marks its implementations ``@pytest.hookimpl(optionalhook=True)``.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_inference_claim(claim, item, parameters):
    """A claim was judged and recorded in ``item`` (a running test), in the process that runs it
    (an xdist worker too). ``parameters``: the run settings the test gave with the claim (a dict,
    may hold credentials-looking keys a sink must drop). Sinks that attach to the running test
    (Allure) listen here; the return value is ignored."""


@hookspec
def pytest_inference_attachment(item, name, body, kind):
    """A test attached data to its report (``claim.attach(name, body, kind)``): ``body`` is bytes or
    text, ``kind`` ``json``, ``png``, ``txt``, … In the process that runs the test."""


@hookspec
def pytest_inference_measurement(measurement, config):
    """A measurement was published (``inference_session.publish``), in the process that published it.
    The controller's ``summary.json`` gets every process's measurements either way."""


@hookspec
def pytest_inference_summary(config, summary):
    """Adjust the run's summary (the dict ``summary.json`` is written from) in place, before any sink
    gets it. Controller only (the only process without xdist), once, at the end of the session."""


@hookspec
def pytest_inference_report(session, summary, claims):
    """Write a report of the finished run: ``summary`` (after every ``pytest_inference_summary``), the
    judged ``claims`` (:class:`pytest_inference.claims.Claim`, every worker's). Controller only, once,
    when the run recorded claims, metadata or measurements; the ``summary.json`` sink is one. A sink that
    fails sets ``session.exitstatus``; it should not raise."""


@hookspec
def pytest_inference_terminal_summary(config, terminalreporter, claims):
    """Write lines at the end of the terminal output (``terminalreporter.write_line``), after
    ``summary.json`` was written. Controller only; ``claims`` may be empty."""
