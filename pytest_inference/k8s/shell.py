"""Pure readings of the shell that pod specs run: which strings are scripts, failures a script
masks (``|| true``), whether it stops on errors, and what a preStop drain hook does.

These are heuristics over text, kept deliberately small and documented by their tests: a
script is what follows ``-c`` of ``sh``/``bash``/``ash``/``dash``/``zsh`` (flags may be
combined, ``-ec``), in a container's ``command`` + ``args``, a lifecycle hook or an exec probe.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, Sequence

SHELLS = {"sh", "bash", "ash", "dash", "zsh", "ksh"}

#: a fallback that turns a failure into success: ``cmd || true``, ``|| :``, ``|| exit 0``, ``|| echo …``
_MASK = re.compile(r"\|\|\s*(true|:|/bin/true|/usr/bin/true|exit\s+0|return\s+0|echo\b[^|&;\n]*)\s*(?=$|[;&|)#\n])",
                   re.MULTILINE)
_SET_PLUS_E = re.compile(r"(^|[;\n&|]\s*)set\s+\+[a-zA-Z]*e", re.MULTILINE)
_ERREXIT = re.compile(r"(^|[;\n&|(]\s*)set\s+(-[a-zA-Z]*e[a-zA-Z]*\b|-o\s+errexit\b)", re.MULTILINE)
_LOOP = re.compile(r"\b(while|until|for)\b")
_SLEEP = re.compile(r"\bsleep\s+(\d+(?:\.\d+)?)\b")
#: a shell default that turns "no answer" into 0: ${R:-0}, ${R:=0}, $${R:-0} (template-escaped), || echo 0
_ZERO_DEFAULT = re.compile(r"\$\$?\{\w+:[-=]0\}|\|\|\s*echo\s+0\b")
_CURL_FAIL_FLAG = r"\bcurl\b[^\n;|]*\s(?:-[A-Za-z]*f[A-Za-z]*|--fail[\w-]*)(?=\s|$)"
_CHECKED_FETCH = (
    re.compile(r"\b(?:if|while|until)\s+(?:!\s*)?[^\n;]*" + _CURL_FAIL_FLAG),
    re.compile(_CURL_FAIL_FLAG + r"[^\n;|]*(?:\|\||&&)"),
)


def script_index(argv: Sequence[Any]) -> int | None:
    """Index of the script in a shell invocation (``sh -c SCRIPT``), else None."""
    if not argv or not isinstance(argv[0], str):
        return None
    if argv[0].rsplit("/", 1)[-1] not in SHELLS:
        return None
    for i, a in enumerate(argv[1:], start=1):
        if not isinstance(a, str) or not a.startswith("-"):
            return None
        if a.startswith("-") and not a.startswith("--") and "c" in a[1:]:
            return i + 1 if i + 1 < len(argv) else None
    return None


def shell_flags(argv: Sequence[Any]) -> str:
    """The single-letter flags given to the shell itself (``sh -ec`` -> ``ec``)."""
    out = ""
    for a in argv[1:]:
        if not isinstance(a, str) or not a.startswith("-") or a.startswith("--"):
            break
        out += a[1:]
    return out


def exec_points(container: dict[str, Any]) -> Iterator[tuple[str, list[Any], list[tuple[str, ...]]]]:
    """Every argv a container runs: (where, argv, path of each argv element within the container).

    ``where`` is ``command``, ``lifecycle.preStop``, ``livenessProbe`` …
    """
    cmd, args = list(container.get("command") or []), list(container.get("args") or [])
    if cmd or args:
        paths = [("command", str(i)) for i in range(len(cmd))] + [("args", str(i)) for i in range(len(args))]
        yield "command", cmd + args, paths
    for hook in ("postStart", "preStop"):
        ex = (((container.get("lifecycle") or {}).get(hook) or {}).get("exec") or {}).get("command")
        if ex:
            yield f"lifecycle.{hook}", list(ex), [("lifecycle", hook, "exec", "command", str(i)) for i in range(len(ex))]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        ex = (((container.get(probe) or {}).get("exec")) or {}).get("command")
        if ex:
            yield probe, list(ex), [(probe, "exec", "command", str(i)) for i in range(len(ex))]


def scripts(container: dict[str, Any]) -> Iterator[tuple[str, str, list[Any], tuple[str, ...]]]:
    """(where, script, argv, path of the script) for every shell script a container runs."""
    for where, argv, paths in exec_points(container):
        i = script_index(argv)
        if i is not None and isinstance(argv[i], str):
            yield where, argv[i], argv, paths[i]


def masked_failures(script: str) -> list[tuple[int, str]]:
    """(line number, line) of each failure a script turns into success."""
    out: list[tuple[int, str]] = []
    lines = script.splitlines() or [script]
    for n, line in enumerate(lines, start=1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        if _MASK.search(code) or _SET_PLUS_E.search(code):
            out.append((n, line.strip()))
    return out


def statements(script: str) -> list[str]:
    """Top-ish level commands of a script: lines and ``;``/``&&`` pieces, comments and blanks dropped."""
    out: list[str] = []
    for line in script.splitlines():
        line = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        for piece in re.split(r";|&&", line):
            p = piece.strip()
            if p and p not in ("then", "do", "done", "fi", "else", "{", "}", "esac"):
                out.append(p)
    return out


def stops_on_error(script: str, argv: Sequence[Any] = ()) -> bool:
    """``set -e`` (or ``-o errexit``) in the script, or ``sh -e…`` on its command line."""
    return bool(_ERREXIT.search(script)) or "e" in shell_flags(argv)


def unguarded_commands(script: str, argv: Sequence[Any] = ()) -> bool:
    """True when a script runs several commands without stopping at the first failure: every
    failure but the last command's is then ignored (and the container reports success)."""
    body = [s for s in statements(script) if not s.startswith("set ")]
    return len(body) > 1 and not stops_on_error(script, argv)


def pre_loop_sleep(script: str) -> float:
    """Seconds a drain hook sleeps before its polling loop (``sleep 5`` then ``while …``)."""
    m = _LOOP.search(script)
    head = script[: m.start()] if m else script
    return sum(float(x) for x in _SLEEP.findall(head))


def drain_hook_findings(script: str) -> list[str]:
    """What keeps a preStop script from being a trustworthy drain (empty list: none)."""
    found: list[str] = []
    if "/metrics" not in script:
        found.append("does not read vLLM's /metrics")
    both = re.search(r"num_requests_\((?:running\|waiting|waiting\|running)\)", script)
    if not (both or "num_requests_running" in script):
        found.append("does not read vllm:num_requests_running")
    if not (both or "num_requests_waiting" in script):
        found.append("does not read vllm:num_requests_waiting")
    if not _LOOP.search(script):
        found.append("does not poll (no loop): one look is not a drain")
    if _ZERO_DEFAULT.search(script) and not any(p.search(script) for p in _CHECKED_FETCH):
        found.append("defaults the queue depth to 0 when /metrics does not answer (e.g. ${RUNNING:-0}) without "
                     "checking the fetch: an unreachable /metrics calls the pod drained")
    return found
