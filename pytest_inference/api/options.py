"""The API suite's command-line options and the parsers behind them (no heavy imports: this module
loads with ``pytest --help``). Defaults and ranges are the settings table's
(:data:`pytest_inference.settings.SETTINGS`, keys ``api_*``; a target sets them in ``[api]``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

REFERENCES = Path(__file__).resolve().parent / "references"


def reference_path(value: str) -> Path:
    """A shipped reference by name (``tiny-llama-cpu``), else a path."""
    shipped = REFERENCES / f"{value}.json"
    if "/" not in value and not value.endswith(".json") and shipped.is_file():
        return shipped
    return Path(value).expanduser()


def parse_reference(value: str):
    """The reference ``value`` names, loaded (ValueError in one line when it does not parse)."""
    from .reference import ReferenceError, load

    try:
        return load(reference_path(value))
    except ReferenceError as exc:
        raise ValueError(str(exc)) from None


def shipped_references() -> list[str]:
    return sorted(p.stem for p in REFERENCES.glob("*.json"))


def _budget(option: str):
    def parse(text: str):
        from .fuzz import parse_budget

        try:
            return parse_budget(text, option)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{option}: ")) from None
    parse.__name__ = "number"
    return parse


#: the API options: (flag, settings key, type, metavar, help)
OPTIONS = (
    ("--reference", "api_reference", str, "FILE", "compare the endpoint's greedy answers to a fixed prompt set with "
     "these, recorded on a trusted backend (API-REF-001 greedy token match, API-REF-002 logprob difference); a "
     "shipped reference by name: " + ", ".join(shipped_references())),
    ("--api-timeout-s", "api_timeout_s", _budget("--api-timeout-s"), "S", "seconds an API check's answer may take "
     "before it counts as a hang"),
    ("--api-fuzz-examples", "api_fuzz_examples", _budget("--api-fuzz-examples"), "N", "request bodies the fuzzer "
     "(hypothesis) generates for API-ROB-001"),
    ("--api-fuzz-max-s", "api_fuzz_max_s", _budget("--api-fuzz-max-s"), "S", "seconds after which the fuzzer sends "
     "no more bodies"),
    ("--api-fuzz-seed", "api_fuzz_seed", int, "N", "seed of the generated bodies: the same seed sends the same bodies"),
    ("--api-max-tokens", "api_max_tokens", int, "N", "max_tokens of the API checks' requests"),
)


def add_options(group: Any) -> None:
    """The API options into the plugin's option group (help states each default from the settings)."""
    from ..settings import add_options as add_setting_options

    add_setting_options(group, OPTIONS)
    group.addoption("--record-reference", dest="api_record_reference", metavar="FILE", default=None,
                    help="record the endpoint's greedy answers (token ids and top logprobs) to the API suite's "
                    "prompt set into FILE, to be used later with --reference FILE on other hardware.")
