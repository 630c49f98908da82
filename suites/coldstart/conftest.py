"""The cold starts every test of this suite judges: measured once per session."""

import pytest

from pytest_inference.local import note_server
from pytest_inference.probes.cold_series import measure_cold_starts
from pytest_inference.progress import StartProgress


@pytest.fixture(scope="session")
def cold_starts(request, inference_session, inference_local):
    """--cold-runs starts (default: the target's cold_runs) with --cache-state (default fresh)."""
    from pytest_inference.local import LocalServerUnavailable
    from pytest_inference.server import ServerStartError

    opt = request.config.getoption
    runs = inference_session.settings.cold_runs
    try:
        inference_local.prepare()
        note_server(inference_session, inference_local)
        return measure_cold_starts(
            inference_local,
            runs,
            cache_state=opt("inference_cache_state") or "fresh",
            progress_factory=lambda label, phase_of: StartProgress(request.config, label, phase_of),
        )
    except LocalServerUnavailable as exc:
        pytest.skip(f"no local server to start: {exc}")
    except ServerStartError as exc:
        pytest.fail(f"cold start failed: {exc}", pytrace=False)

