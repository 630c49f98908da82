"""``pytest-inference crossover``: the table without a server; bad input is one line on stderr, exit 2."""

import json
import subprocess
import sys

import pytest

from pytest_inference.cli import main

SEED_ARGS = ["crossover", "--gpu-hourly", "1.88", "--price-in", "0.10", "--price-out", "0.70", "--input-tokens", "80"]


def run(capsys, *argv):
    try:
        rc = main(list(argv))
    except SystemExit as exc:  # argparse-level errors exit from inside main
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_seed_table(capsys):
    rc, out, err = run(capsys, *SEED_ARGS)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "GPU $1.88/h vs serverless $0.10 / $0.70 per 1M input / output tokens"
    assert lines[3].split() == ["short", "80", "30", "0.000029", "64,828", "18.01"]
    assert lines[4].split() == ["medium", "80", "220", "0.000162", "11,605", "3.22"]
    assert lines[5].split() == ["long", "80", "1200", "0.000848", "2,217", "0.62"]
    assert "swing short / long: 29.2x" in out


def test_json_and_custom_lengths(capsys):
    rc, out, err = run(capsys, *SEED_ARGS, "--output-lengths", "tiny=1,short=30", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert [r["name"] for r in data["rows"]] == ["tiny", "short"]
    assert data["rows"][1]["breakeven_requests_per_second"] == pytest.approx(18.0077, abs=1e-4)
    assert data["sources"]["gpu_usd_per_hour"] == "option --gpu-hourly"
    assert data["pricing"] == {"gpu_usd_per_hour": 1.88, "usd_per_m_input": 0.1, "usd_per_m_output": 0.7}


def test_pricing_file_with_options_winning(capsys, tmp_path):
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"gpu_usd_per_hour": 3.76, "usd_per_m_input": 0.1, "usd_per_m_output": 0.7, "input_tokens": 80}))
    rc, out, err = run(capsys, "crossover", "--pricing", str(f), "--json")
    assert rc == 0, err
    assert json.loads(out)["rows"][0]["breakeven_requests_per_second"] == pytest.approx(2 * 18.0077, abs=1e-3)
    rc, out, err = run(capsys, "crossover", "--pricing", str(f), "--gpu-hourly", "1.88", "--json")
    data = json.loads(out)
    assert data["rows"][0]["breakeven_requests_per_second"] == pytest.approx(18.0077, abs=1e-4)
    assert data["sources"]["gpu_usd_per_hour"] == "option --gpu-hourly"
    assert data["sources"]["usd_per_m_output"] == f"pricing file {f}"


@pytest.mark.parametrize("change, needles", [
    (("--price-in", "-1"), ["argument --price-in", "greater than 0", "'-1'"]),
    (("--price-out", "0"), ["argument --price-out", "greater than 0"]),
    (("--gpu-hourly", "nan"), ["argument --gpu-hourly", "finite"]),
    (("--gpu-hourly", "cheap"), ["argument --gpu-hourly", "must be a number"]),
    (("--input-tokens", "0"), ["argument --input-tokens", "greater than 0"]),
    (("--output-lengths", "30,0"), ["argument --output-lengths", "greater than 0"]),
    (("--pricing", "/nonexistent/prices.toml"), ["argument --pricing", "not found"]),
    (("--bogus",), ["unrecognized arguments: --bogus"]),
    (("--gpu-hourly",), ["argument --gpu-hourly: expected one argument"]),
])
def test_bad_input_is_one_line_exit_2(capsys, change, needles):
    argv = list(SEED_ARGS)
    if change[0] in argv:
        i = argv.index(change[0])
        del argv[i:i + 2]
    rc, out, err = run(capsys, *argv, *change)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("pytest-inference crossover: "), err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("drop, needle", [
    ("--gpu-hourly", "no GPU price in USD per hour: pass --gpu-hourly USD or a --pricing file with gpu_usd_per_hour"),
    ("--price-out", "no serverless price in USD per 1M output tokens: pass --price-out USD_PER_1M"),
    ("--input-tokens", "no input tokens per request: pass --input-tokens N"),
])
def test_missing_field_is_one_line_exit_2(capsys, drop, needle):
    argv = list(SEED_ARGS)
    i = argv.index(drop)
    del argv[i:i + 2]
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == "" and err.count("\n") == 1 and needle in err, err


def test_console_command_in_a_child_process():
    ok = subprocess.run([sys.executable, "-m", "pytest_inference.cli", *SEED_ARGS], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "18.01" in ok.stdout and ok.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "pytest_inference.cli", *SEED_ARGS, "--price-in", "-0.1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == ["pytest-inference crossover: argument --price-in: must be greater than 0 "
                                       "(serverless price in USD per 1M input tokens); got '-0.1'"]


def test_existing_subcommands_still_there(capsys):
    rc, out, _ = run(capsys, "targets", "mi300x")
    assert rc == 0 and "economics.breakeven_rps.long" in out
