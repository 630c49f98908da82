"""Recorded and composed vLLM startup logs for the cold-start tests (see data/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def _tsv(name: str) -> tuple[list[tuple[float, str]], dict[str, float]]:
    """``t_s<TAB>line`` rows; ``# milestones: k=v ...`` in the header comments."""
    rows, milestones = [], {}
    for raw in (DATA / name).read_text(encoding="utf-8").splitlines():
        if raw.startswith("#"):
            if "milestones:" in raw:
                for item in raw.split("milestones:", 1)[1].split():
                    k, _, v = item.partition("=")
                    milestones[k] = float(v)
            continue
        t, _, line = raw.partition("\t")
        rows.append((float(t), line))
    return rows, milestones


@pytest.fixture(scope="session")
def coldstart_data() -> Path:
    return DATA


@pytest.fixture(scope="session")
def mi300x_log() -> tuple[list[tuple[float, str]], dict[str, float]]:
    """(pairs, milestones) of the composed MI300X gpt-oss-120b start in vLLM 0.33 wording."""
    return _tsv("mi300x_gpt-oss-120b_0.33.tsv")


@pytest.fixture(scope="session")
def cpu_recording():
    """Load one of the real CPU recordings: ``cpu_recording("fresh_compile")``."""

    def load(kind: str) -> dict:
        return json.loads((DATA / f"cpu_0.32_{kind}.json").read_text(encoding="utf-8"))

    return load
