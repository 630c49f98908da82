"""Render Allure results to one offline HTML file with Allure 3 (the npm package ``allure``).

Allure 3 is Node only (no Java).  Install it once, at the repository root::

    npm ci                      # from the committed package.json / package-lock.json
    npm install allure@3        # or, anywhere: puts node_modules/.bin/allure in the current dir

then ``render_html("reports/allure-results", "reports/html")`` writes
``reports/html/index.html``: the Awesome report as one self-contained file (scripts, styles,
results, attachments and charts inlined as base64), opened straight from disk.  The charts are
the ones the Allure sink drew for each claim: its samples chart and the figures its details carry
(:mod:`.figures`); a claim's figure data are also in ``summary.json``, so
:func:`.figures.redraw_summary` can draw them again without Allure.

The CLI is looked for, in order: ``$PYTEST_INFERENCE_ALLURE`` (a path or a command line),
``node_modules/.bin/allure`` under the current directory, then under the repository root,
then ``npx --no-install allure`` (an already installed package, never a download).
Rendering makes no network request.  Allure 3.x writes a Google Analytics tag into the
page it generates; :func:`render_html` removes it, so opening the report does not call out
either.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

ENV_VAR = "PYTEST_INFERENCE_ALLURE"
INSTALL_HINT = "npm install allure@3"
CONFIG_PATH = Path(__file__).with_name("allurerc.mjs")
REPO_ROOT = Path(__file__).resolve().parents[2]

_ANALYTICS = [
    # <script async src="https://www.googletagmanager.com/gtag/js?id=..."></script>
    re.compile(r"<script\b[^>]*\bsrc=\"https?://www\.googletagmanager\.com/[^\"]*\"[^>]*>\s*</script>\s*", re.I),
    # the inline gtag('config', ...) block that follows it
    re.compile(r"<script>(?:(?!</script>).)*?\bgtag\s*\((?:(?!</script>).)*?</script>\s*", re.I | re.S),
]
_EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>\s*", re.I)
_DATA_FILE = re.compile(r"""\bd\(\s*"([^"]+)"\s*,\s*"([A-Za-z0-9+/=]*)"\s*\)""")


class ReportError(RuntimeError):
    """The HTML report could not be rendered (no Allure CLI, no results, a failed run)."""


def _version(cmd: list[str], env: dict[str, str] | None = None) -> str | None:
    try:
        proc = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60, env=env,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (proc.stdout or "").strip().splitlines()
    return out[-1].strip() if proc.returncode == 0 and out else None


def _offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env["npm_config_offline"] = "true"  # npx/npm: never reach a registry
    env.setdefault("NO_UPDATE_NOTIFIER", "1")
    return env


def find_allure_cli(check: bool = True) -> list[str]:
    """The command that runs the Allure 3 CLI, as an argv prefix.

    Looks at ``$PYTEST_INFERENCE_ALLURE``, ``./node_modules/.bin/allure``,
    ``<repo root>/node_modules/.bin/allure`` and ``npx --no-install allure`` in that order.
    With ``check`` each candidate must answer ``--version`` with a 3.x version (this skips
    an Allure 2 ``allure`` by mistake).  Raises :class:`ReportError` when none is usable.
    """
    candidates: list[tuple[str, list[str]]] = []
    env_cmd = os.environ.get(ENV_VAR, "").strip()
    if env_cmd:
        candidates.append((f"${ENV_VAR}", shlex.split(env_cmd)))
    for base in dict.fromkeys([Path.cwd(), REPO_ROOT]):
        binary = base / "node_modules" / ".bin" / "allure"
        if binary.is_file() and os.access(binary, os.X_OK):
            candidates.append((str(binary), [str(binary)]))
    npx = shutil.which("npx")
    if npx:
        candidates.append(("npx --no-install allure", [npx, "--no-install", "allure"]))

    tried = []
    for where, cmd in candidates:
        if not check:
            return cmd
        version = _version(cmd, _offline_env())
        if version and version.split(".")[0].lstrip("v") == "3":
            return cmd
        tried.append(f"{where} ({'version ' + version if version else 'not runnable'})")
        if where == f"${ENV_VAR}":
            raise ReportError(f"${ENV_VAR}={env_cmd!r} is not an Allure 3 CLI "
                              f"({'version ' + version if version else 'not runnable'}); {INSTALL_HINT}")
    raise ReportError(
        f"the Allure 3 CLI (npm package 'allure') is not installed; run `{INSTALL_HINT}` "
        f"(or `npm ci` at the repository root), or set ${ENV_VAR}"
        + (f" [tried: {'; '.join(tried)}]" if tried else "")
    )


def strip_analytics(html: str) -> tuple[str, int]:
    """Remove the Google Analytics tag Allure writes into its page, and any other external
    ``<script src="http...">``; returns the page and how many tags were removed."""
    removed = 0
    for pattern in (*_ANALYTICS, _EXTERNAL_SCRIPT):
        html, n = pattern.subn("", html)
        removed += n
    return html, removed


def embedded_files(html_path: str | os.PathLike[str]) -> dict[str, bytes]:
    """The report data a single-file Allure report inlines (``d("path", "<base64>")``):
    ``{"data/test-results/<id>.json": b"...", "data/attachments/<id>.png": b"...", ...}``."""
    text = Path(html_path).read_text(encoding="utf-8")
    return {name: base64.b64decode(data) for name, data in _DATA_FILE.findall(text)}


def render_html(
    results_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    name: str = "index.html",
    report_name: str | None = None,
    timeout: float = 300,
) -> Path:
    """Render ``results_dir`` (allure-pytest's ``--alluredir``) to ``out_dir/<name>``.

    Allure generates into a private temporary directory (it also writes its own
    ``summary.json``, which must not clobber ours); only the single HTML file is moved to
    ``out_dir``.  Returns the path of the HTML file.
    """
    results = Path(results_dir)
    if not results.is_dir():
        raise ReportError(f"no Allure results directory at {results}")
    if not any(results.glob("*-result.json")):
        raise ReportError(f"no Allure test results (*-result.json) in {results}")
    out = Path(out_dir).resolve()  # allure runs with cwd=tmp: every path it gets must be absolute
    cli = find_allure_cli()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="allure-render-", dir=out) as tmp:
        gen = Path(tmp) / "report"
        cmd = [*cli, "generate", "--config", str(CONFIG_PATH), "--output", str(gen)]
        if report_name:
            cmd += ["--report-name", report_name]
        cmd.append(str(results.resolve()))
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout,
                                  env=_offline_env(), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ReportError(f"allure generate did not finish in {timeout:g} s") from exc
        except OSError as exc:
            raise ReportError(f"could not run {cli[0]}: {exc}; {INSTALL_HINT}") from exc
        page = gen / "index.html"
        if proc.returncode != 0 or not page.is_file():
            tail = " | ".join(line.strip() for line in (proc.stderr or proc.stdout or "").strip().splitlines()[-3:])
            raise ReportError(f"allure generate failed (exit {proc.returncode}): {tail or 'no output'}")
        html, _ = strip_analytics(page.read_text(encoding="utf-8"))
        target = out / name
        staged = Path(tmp) / name
        staged.write_text(html, encoding="utf-8")
        os.replace(staged, target)
    return target
