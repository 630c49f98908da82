"""Graceful drain: "a rolling update drops no in-flight request" — the seed's preStop hook.

A server this run starts gets 32 streams; once all are streaming, it is stopped the way the
preStop hook does it (poll /metrics until running + waiting is 0, then SIGTERM). Every stream
must finish: drain.dropped_requests == 0.
"""

import pytest

from pytest_inference.local import note_server

pytestmark = pytest.mark.drain

STREAMS = 32


@pytest.fixture
def drain_result(request, inference_local, inference_session):
    from pytest_inference.local import LocalServerUnavailable
    from pytest_inference.server import ServerStartError
    from pytest_inference.probes.drain import measure_drop
    from pytest_inference.server.prestop import MetricsMissing, drain_then_stop

    try:
        handle = inference_local.cold()
        note_server(inference_session, inference_local)
    except LocalServerUnavailable as exc:
        pytest.skip(f"no local server to start: {exc}")
    try:
        try:
            handle.wait_ready(first_token=True)
        except ServerStartError as exc:
            pytest.fail(f"the server did not start: {exc}", pytrace=False)
        max_tokens = inference_session.settings.drain_max_tokens
        try:
            return measure_drop(handle.base_url, inference_local.local.model,
                                lambda: drain_then_stop(handle.root_url, handle.pgid, poll_s=0.2, timeout_s=120),
                                n_streams=STREAMS, max_tokens=max_tokens, read_timeout_s=15,
                                api_key=(inference_local.local.env_extra or {}).get("VLLM_API_KEY"))
        except MetricsMissing as exc:
            pytest.skip(f"the server exposes no queue gauges to drain on: {exc}")
    finally:
        handle.stop()


def test_drain_then_stop_drops_no_stream(drain_result, claim):
    if not drain_result.all_streaming:
        claim.inconclusive("drain.dropped_requests",
                           f"the stop did not land while all {STREAMS} streams were in flight "
                           f"({drain_result.streaming_at_stop} were)")
        return
    claim("drain.dropped_requests", [drain_result.dropped], details=drain_result.to_dict(),
          parameters={"streams": STREAMS, "max_tokens": drain_result.max_tokens})
