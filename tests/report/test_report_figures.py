"""report/figures.py: figure data carried by claims, drawn by the report side; matplotlib optional."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_inference.claims import Claim, Requirement, judge
from pytest_inference.report import figures
from pytest_inference.report.figures import (
    CHARTS_NOTE,
    FigureError,
    charts_note,
    check,
    drawings,
    lines,
    redraw_summary,
    render,
    timeline,
    with_figures,
)

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[2]
ROWS = [("pull", 0, 12.5), ("└ load weights", 12.5, 40.2), ("launch → first token", 0.0, 40.6)]


def _lines():
    return lines({"gpu": ([0, 10], [2.0, 2.0]), "serverless": ([0, 5, 10], [0, 1.5, 3.0])}, "cost", "req/s", "USD/h",
                 marks=[("6.67 req/s", 6.67, 2.0), ("today", 3)], name="cost chart")


def test_builders_give_json_data_that_draw():
    tl = timeline(ROWS, "cold start", name="cold start 1 timeline chart")
    assert tl == {"kind": "timeline", "title": "cold start", "name": "cold start 1 timeline chart",
                  "rows": [["pull", 0.0, 12.5], ["└ load weights", 12.5, 40.2], ["launch → first token", 0.0, 40.6]]}
    ln = _lines()
    assert ln["series"][1] == {"label": "serverless", "x": [0.0, 5.0, 10.0], "y": [0.0, 1.5, 3.0]}
    assert ln["marks"] == [["6.67 req/s", 6.67, 2.0], ["today", 3.0]]
    for fig in (tl, ln):
        again = json.loads(json.dumps(fig, allow_nan=False))  # what summary.json / an xdist worker carries
        assert again == fig and check(again) == fig
        png = render(again)
        assert png.startswith(PNG) and png == render(fig)  # the same data draw the same bytes
    assert render(timeline([], "nothing")) is None


@pytest.mark.parametrize("fig, message", [
    ("a string", "a figure is a mapping"),
    ({"kind": "pie"}, "kind 'pie' is not one of timeline, lines"),
    ({"kind": "timeline", "rows": "x"}, "rows: a list"),
    ({"kind": "timeline", "rows": [["a", 1]]}, r"rows\[0\]: \['a', 1\] is not \[label, start_s, end_s\]"),
    ({"kind": "timeline", "rows": [["a", 0, float("nan")]]}, "not a finite number"),
    ({"kind": "timeline", "rows": [["a", 0, True]]}, "True is not a number"),
    ({"kind": "timeline", "rows": [["back", 5, 1]]}, "'back' ends .1. before it starts .5."),
    ({"kind": "lines", "series": [{"label": "s", "x": [1, 2], "y": [1]}]}, "2 x values but 1 y values"),
    ({"kind": "lines", "series": [{"label": "s", "x": [1], "y": ["1"]}]}, r"series\[0\]\.y: '1' is not a number"),
    ({"kind": "lines", "series": [], "marks": [["only a label"]]}, r"marks\[0\]"),
    ({"kind": "lines", "series": {"s": [1]}}, "series: a list"),
])
def test_bad_figure_data_is_one_line(fig, message):
    with pytest.raises(FigureError, match=message) as err:
        check(fig)
    assert "\n" not in str(err.value)


def test_with_figures_appends_and_copies():
    details = {"runs": 3}
    first = with_figures(details, timeline(ROWS, "a"))
    both = with_figures(first, _lines())
    assert details == {"runs": 3} and len(first["figures"]) == 1
    assert [f["kind"] for f in both["figures"]] == ["timeline", "lines"] and both["runs"] == 3
    with pytest.raises(FigureError):
        with_figures({}, {"kind": "timeline", "rows": [["a", 2, 1]]})


def test_drawings_of_a_claim():
    one = judge("coldstart.total_s", [41.0], unit="s", details=with_figures({}, timeline(ROWS, "t", name="tl"), _lines()))
    assert [name for name, _ in drawings(one)] == ["tl", "cost chart"]  # one sample: no samples chart
    many = judge("warm.ttft_ms", [1.0, 2.0, 3.0], stat="median", unit="ms",
                 details=with_figures({}, timeline(ROWS, "unnamed")))
    assert [name for name, _ in drawings(many)] == ["warm.ttft_ms chart", "warm.ttft_ms timeline chart 1"]
    assert all(draw().startswith(PNG) for _, draw in drawings(many))
    assert drawings(judge("x", [1.0])) == []
    # figures that came back broken (a hand-edited summary.json): drawing says which and why
    broken = Claim.from_dict({**one.to_dict(), "details": {"figures": {"kind": "timeline"}}})
    [(name, draw)] = drawings(broken)
    with pytest.raises(FigureError, match=r"coldstart.total_s details.figures\[0\].rows"):
        draw()


def test_a_claims_figures_survive_the_summary_and_redraw(tmp_path):
    """summary.json carries the figure data: a later report draws the same charts from it."""
    c = judge("economics.breakeven_rps.short", [18.0], unit="req/s", details=with_figures({"x": 1}, _lines()),
              requirement=Requirement("economics.breakeven_rps.short", ">", 10, unit="req/s"))
    spread = judge("warm.ttft_spread_ms", [40.0, 47.5, 42.0], stat="spread", unit="ms")
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"schema": 1, "claims": [c.to_dict(), spread.to_dict(), judge("y", [1.0]).to_dict()]},
                                  allow_nan=False))
    written = redraw_summary(summary, tmp_path / "charts")
    assert [p.name for p in written] == ["cost-chart.png", "warm.ttft_spread_ms-chart.png"]
    assert written[0].read_bytes() == render(_lines())
    assert all(p.read_bytes().startswith(PNG) for p in written)


def test_redraw_summary_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FigureError, match="not a readable summary.json"):
        redraw_summary(bad, tmp_path / "out")
    bad.write_text('{"claims": 3}')
    with pytest.raises(FigureError, match="no 'claims' list"):
        redraw_summary(bad, tmp_path / "out")
    with pytest.raises(FigureError, match="not a readable"):
        redraw_summary(tmp_path / "missing.json", tmp_path / "out")


def test_charts_note_with_matplotlib():
    claims = [judge("warm.ttft_ms", [1.0, 2.0], stat="median")]
    assert figures.available() is True
    assert charts_note(claims) is None  # matplotlib is here: nothing to say


# --------------------------------------------------------------------------- without matplotlib

#: a plugin (``-p hide_matplotlib``) that makes ``import matplotlib`` fail, as on a box without it
HIDE = textwrap.dedent('''
    import sys

    class _Hide:
        def find_spec(self, name, path=None, target=None):
            if name == "matplotlib" or name.startswith("matplotlib."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _Hide())
    for _name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        del sys.modules[_name]
''')


def test_charts_note_without_matplotlib(tmp_path):
    (tmp_path / "hide_matplotlib.py").write_text(HIDE)
    code = ("import hide_matplotlib\n"
            "from pytest_inference.claims import judge\n"
            "from pytest_inference.report import figures\n"
            "many, one = judge('m', [1.0, 2.0], stat='median'), judge('n', [1.0])\n"
            "assert figures.available() is False\n"
            "assert figures.charts_note([one, many]) == figures.CHARTS_NOTE\n"
            "assert figures.charts_note([one]) is None  # nothing to draw: nothing lost\n"
            "assert figures.charts_note([many], drawing=False) is None\n"
            "try:\n    figures.redraw_summary('summary.json', 'out')\nexcept figures.FigureError as e:\n    print(e)\n")
    (tmp_path / "summary.json").write_text(json.dumps({"claims": [judge("m", [1.0, 2.0], stat="median").to_dict()]}))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == CHARTS_NOTE  # redrawing a run says what to install, in one line
    assert not (tmp_path / "out").exists()


def _economics_run(pytester, *args):
    report = pytester.path / f"report{len(args)}"
    res = pytester.runpytest_subprocess(
        str(ROOT / "suites" / "economics"), "-p", "no:cacheprovider", "--rootdir", str(ROOT),
        "--inference-report", str(report), "--target", "mi300x", *args, timeout=300)
    claims = json.loads((report / "summary.json").read_text())["claims"]
    results = [json.loads(p.read_text()) for p in (report / "allure-results").glob("*-result.json")]
    attached = [a for r in results for a in r.get("attachments", []) + [a for st in r.get("steps", [])
                                                                       for a in st.get("attachments", [])]]
    return res, claims, attached


def test_without_matplotlib_no_chart_same_verdicts_said_once(pytester, monkeypatch):
    """The economics suite (figures on every claim) with and without matplotlib: same claims and
    verdicts; without it no PNG, no chart error, and one line saying what to install."""
    pytester.makepyfile(hide_matplotlib=HIDE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), os.environ.get("PYTHONPATH", "")]))
    with_mpl, claims, attached = _economics_run(pytester)
    assert with_mpl.ret == 0, with_mpl.stdout.str()
    assert sum(a["type"] == "image/png" for a in attached) == 4  # three lengths and the table's chart
    hidden, claims_hidden, attached_hidden = _economics_run(pytester, "-p", "hide_matplotlib")
    out = hidden.stdout.str()
    assert hidden.ret == 0, out

    def verdicts(cs):
        return [(c["metric"], c["verdict"], c["measured"]) for c in cs]

    assert verdicts(claims_hidden) == verdicts(claims) and len(claims) == 7, verdicts(claims)
    # the figure data still reach summary.json with the claim: a later report can draw them (the
    # break-even claims and the swing carry the charts; the "GPUs cheaper above" ones draw none)
    figures = {c["metric"]: len(c["details"].get("figures", [])) for c in claims_hidden}
    assert sorted(figures.values()) == [0, 0, 0, 1, 1, 1, 1], figures
    assert all(n == 1 for m, n in figures.items() if m.startswith("economics.breakeven")), figures
    assert not [a for a in attached_hidden if a["type"] == "image/png" or "error" in a["name"]]
    assert {a["name"] for a in attached_hidden} >= {"economics.breakeven_swing claim", "crossover table"}
    assert out.count(CHARTS_NOTE) == 1, out
    assert CHARTS_NOTE not in with_mpl.stdout.str()


def test_probes_never_draw():
    """Probes return observations: no probe module imports matplotlib or the drawing side of the
    report (charts, figures, the Allure sink), at the top or inside a function."""
    import ast

    drawing = {"matplotlib", "charts", "figures", "allure_sink", "allure"}
    modules = sorted([*(ROOT / "pytest_inference" / "probes").glob("*.py"),
                      *(ROOT / "pytest_inference" / "storage").glob("*.py")])
    assert any(p.name == "coldstart.py" for p in modules) and any(p.name == "read.py" for p in modules)
    offenders = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module or ''}.{a.name}" for a in node.names]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if drawing & set(n.split("."))]
    assert not offenders, offenders
