"""Settings of the economics suite, and the token counts this session measured.

Prices and response lengths come from the options (``--gpu-hourly``, ``--price-in``,
``--price-out``, ``--input-tokens``, ``--output-lengths``), else a ``--pricing`` file, else the
target's ``[economics]`` table.  Input tokens per request are the prompt tokens the servers
reported (``usage.prompt_tokens``) for this session's warm or serverless runs when there are
any — the serverless endpoint's own count first, since it bills by it — else the given ones.

Those runs publish their counts to the session (``warm.tokens``, ``serverless.tokens``); this
suite reads them with ``inference_session.measurements(name)``.  Its tests carry the
``inference_reads`` marker, so they run after every other test of the session.  Under
pytest-xdist a worker reads every worker's counts published before its read (a warm run still
going on another worker is not waited for); the claims say which input tokens they used.

Capacity per GPU (requests/s one GPU serves inside the SLO) comes the same way: a
``capacity.max_rps_at_slo`` a load run published to the session ("measured"), else
``--capacity-rps`` / ``capacity_rps`` of a ``--pricing`` file or the target's ``[economics]`` ("given"),
else none — one GPU at any rate, as before — and the claims say which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_inference import economics as econ
from pytest_inference.session import SESSION_KEY


def _options(config: pytest.Config) -> dict[str, Any]:
    opt = config.getoption
    return {
        "gpu_usd_per_hour": opt("inference_gpu_hourly"),
        "usd_per_m_input": opt("inference_price_in"),
        "usd_per_m_output": opt("inference_price_out"),
        "input_tokens": opt("inference_input_tokens"),
        "output_lengths": opt("inference_output_lengths"),
        "capacity_rps": opt("inference_capacity_rps"),
    }


def _resolve(config: pytest.Config, *, require_input_tokens: bool) -> econ.EconomicsSettings:
    target = config.stash[SESSION_KEY].target
    return econ.resolve_settings(_options(config), config.getoption("inference_pricing"), target.economics,
                                 target.name, require_input_tokens=require_input_tokens)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per response length (short / medium / long unless configured otherwise)."""
    if "length" not in metafunc.fixturenames:
        return
    try:
        names = list(_resolve(metafunc.config, require_input_tokens=False).output_lengths)
    except econ.EconomicsError:
        names = list(econ.DEFAULT_OUTPUT_LENGTHS)  # the tests then report the error as their claims' reason
    metafunc.parametrize("length", names)


@dataclass
class EconomicsInputs:
    settings: econ.EconomicsSettings | None = None
    error: str | None = None
    input_tokens: float | None = None
    input_source: str = ""
    measurement: econ.TokenMeasurement | None = None
    measurements: list[econ.TokenMeasurement] = field(default_factory=list)
    capacity: econ.Capacity | None = None
    capacity_notes: list[str] = field(default_factory=list)

    @property
    def capacity_rps(self) -> float | None:
        return None if self.capacity is None else self.capacity.rps

    def details(self) -> dict[str, Any]:
        s = self.settings
        return {
            "capacity": self.capacity.to_dict() if self.capacity else None,
            "capacity_source": self.capacity.describe() if self.capacity else econ.NO_CAPACITY,
            "capacity_notes": list(self.capacity_notes),
            "input_tokens": self.input_tokens,
            "input_tokens_source": self.input_source,
            "input_tokens_given": s.input_tokens if s else None,
            "pricing": s.pricing.to_dict() if s else None,
            "sources": s.sources if s else None,
            "measurements": [m.to_dict() for m in self.measurements],
        }


@pytest.fixture(scope="session")
def economics_inputs(request: pytest.FixtureRequest, inference_session) -> EconomicsInputs:
    """Pricing, lengths and input tokens (measured in this session when present), or the one-line error."""
    measurements = [t for name in econ.TOKEN_MEASUREMENTS for m in inference_session.measurements(name)
                    if (t := econ.measurement_from_data(name, m.data)) is not None]
    measured = econ.choose_measurement(measurements)
    published = [(f"{econ.CAPACITY_MEASUREMENT} from {m.source or 'this session'}", m.data)
                 for m in inference_session.measurements(econ.CAPACITY_MEASUREMENT)]
    try:
        settings = _resolve(request.config, require_input_tokens=measured is None)
    except econ.EconomicsError as exc:
        capacity, notes = econ.choose_capacity(published, request.config.getoption("inference_capacity_rps"))
        return EconomicsInputs(error=str(exc), measurements=measurements, capacity=capacity, capacity_notes=notes)
    capacity, notes = econ.choose_capacity(published, settings.capacity_rps, settings.sources.get("capacity_rps", ""))
    if measured is not None:
        tokens = measured.input_tokens_mean
        source = (f"measured: mean server-reported prompt tokens of {measured.requests} requests ({measured.source})"
                  + (f"; given {econ.fmt_tokens(settings.input_tokens)} ({settings.sources['input_tokens']}) not used"
                     if settings.input_tokens is not None else ""))
    else:
        tokens = settings.input_tokens
        source = f"given: {settings.sources['input_tokens']} (this session measured no prompt tokens)"
    return EconomicsInputs(settings=settings, input_tokens=tokens, input_source=source,
                           measurement=measured, measurements=measurements, capacity=capacity, capacity_notes=notes)
