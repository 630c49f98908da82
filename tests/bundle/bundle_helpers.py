"""Test inputs for the bundle tests: small report folders written by the real writers
(claims.judge -> Claim.to_dict -> report.summary.write_summary_json; report.records.write_records)."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path
from typing import Any, Sequence

from pytest_inference.claims import Requirement, judge
from pytest_inference.report.records import write_records
from pytest_inference.report.summary import write_summary_json

DATA = Path(__file__).with_name("data")
H200 = "nvidia NVIDIA H200 x1"


def claim(metric: str, samples: Sequence[float], *, stat: str = "median", op: str | None = None,
          threshold: float | None = None, unit: str | None = None, test: str = "suites/warm/test_warm.py::test_warm",
          measured: float | None = None) -> dict[str, Any]:
    req = Requirement(metric, op, threshold, unit=unit, stat=stat) if op else None
    c = judge(metric, samples, stat=stat, unit=unit, requirement=req, target="h200", measured=measured)
    c.test = test
    return c.to_dict()


def environment(hardware: str = H200) -> dict[str, Any]:
    """An environment fingerprint in contract C1's shape."""
    return {
        "schema": 1,
        "accelerator": {"vendor": "nvidia", "model": "NVIDIA H200", "count": 1, "driver": "550.90.07",
                        "runtime": "CUDA 12.4", "tool": "nvidia-smi", "unknown": None},
        "cpu": {"model": "Intel Xeon", "count": 16}, "kernel": "6.8.0", "os": "Ubuntu 24.04",
        "vllm": {"version": "0.32.0", "source": "GET http://127.0.0.1:8000/version"},
        "model": {"name": "tiny-llama", "revision": None}, "plugin_version": "0.1.0",
        "target": {"name": "h200", "sha256": "ab" * 32}, "hardware": hardware,
    }


def write_report(root: Path, claims: list[dict[str, Any]], *, hardware: str | None = H200,
                 records: dict[str, list[dict[str, Any]]] | None = None, target: str = "h200") -> Path:
    summary: dict[str, Any] = {"schema": 1, "target": {"name": target, "description": "one H200", "source": "shipped"},
                               "run": {"plugin_version": "0.1.0", "start": "2026-12-02T12:00:00Z",
                                       "end": "2026-12-02T12:05:00Z", "host": "gpu-1"},
                               "claims": claims}
    if hardware is not None:
        summary["environment"] = environment(hardware)
    write_summary_json(root / "summary.json", summary)
    for name, recs in (records or {}).items():
        write_records(root, name, recs)
    return root


def lognormal(n: int, median: float, sigma: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [median * rng.lognormvariate(0.0, sigma) for _ in range(n)]


def load_records(ttft: Sequence[float]) -> list[dict[str, Any]]:
    return [{"index": i, "ttft_ms": t, "tpot_ms": t / 20, "e2e_ms": t * 4, "ok": True} for i, t in enumerate(ttft)]


def rewrite_bundle(src: Path, dest: Path, change) -> None:
    """Copy the bundle ``src`` to ``dest`` with ``change(members: dict[name, bytes])`` applied to
    its members (name -> bytes; the names keep the top folder)."""
    members: dict[str, bytes] = {}
    with tarfile.open(src, "r:gz") as tar:
        for m in tar:
            members[m.name] = tar.extractfile(m).read()
    change(members)
    with tarfile.open(dest, "w:gz") as tar:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
