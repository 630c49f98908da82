"""The Dockerfile and .dockerignore, checked statically (no container engine here): the base image
pinned by digest, no vLLM, a non-root user that matches the manifests' runAsUser, the entrypoint
is the ``in-pod`` verb, every COPY source exists and is in the build context, and the context
leaves virtual environments, caches, reports and .git out."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from pytest_inference.cli import main
from pytest_inference.incluster import manifests as m

REPO = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            current = ""
    return out


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    parts = path.strip("/").split("/")
    excluded = False
    for pat in patterns:
        negate = pat.startswith("!")
        body = pat.lstrip("!").strip("/")
        rx = re.compile("^" + re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
                        .replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "$")
        if any(rx.match("/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def test_the_base_image_is_pinned_by_digest():
    ins = instructions()
    args = dict(rest.split("=", 1) for word, rest in ins if word == "ARG" and "=" in rest)
    (base,) = [rest for word, rest in ins if word == "FROM"]
    base = re.sub(r"\$\{(\w+)\}", lambda mo: args[mo.group(1)], base)
    assert re.fullmatch(r"python:3\.(\d+)-slim@sha256:[0-9a-f]{64}", base), base
    # the Python it ships satisfies the package's requires-python
    minor = int(re.match(r"python:3\.(\d+)", base).group(1))
    requires = re.search(r'requires-python\s*=\s*">=3\.(\d+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert minor >= int(requires)


def test_it_installs_the_plugin_with_the_k8s_extra_and_no_vllm():
    ins = instructions()
    runs = " ".join(rest for word, rest in ins if word in ("RUN", "COPY", "ADD", "ENV", "ARG", "FROM"))
    assert "vllm" not in runs.lower()
    assert any(word == "RUN" and 'pip install ".[k8s]"' in rest for word, rest in ins)
    # the node probes run `ip` and `ss` (pytest_inference/node/probes.py): iproute2 provides both
    assert any(word == "RUN" and re.search(r"apt-get install .*\biproute2\b", rest) for word, rest in ins)


def test_it_runs_as_the_non_root_user_the_manifests_name():
    ins = instructions()
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    pod = m.generate(m.Options(image="r/p:1", target="cpu-local"))[m.FILES["serving"]][0]["spec"]["template"]["spec"]
    assert users[-1] == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
    assert [w for w, _ in ins].index("USER") > max(i for i, (w, _) in enumerate(ins) if w == "RUN")  # nothing runs as root after


def test_the_entrypoint_is_the_in_pod_verb(capsys):
    (entry,) = [rest for word, rest in instructions() if word == "ENTRYPOINT"]
    argv = json.loads(entry)  # exec form: no shell
    assert argv == ["pytest-inference", "in-pod"]
    assert 'pytest-inference = "pytest_inference.cli:main"' in (REPO / "pyproject.toml").read_text()
    with pytest.raises(SystemExit) as exc:
        main([*argv[1:], "--help"])
    assert exc.value.code == 0 and "-- PYTEST_ARGS" in capsys.readouterr().out


def test_every_copy_source_exists_and_is_in_the_build_context():
    copies = [shlex.split(rest) for word, rest in instructions() if word == "COPY"]
    assert copies
    for *sources, _dest in copies:
        for src in sources:
            assert (REPO / src).exists(), src
            assert not dockerignore_excludes(src), f"{src} is left out by .dockerignore"
    for needed in ("pytest_inference/incluster/entrypoint.py", "pytest_inference/targets/cpu-local.toml",
                   "suites/warm/test_warm.py", "suites/node/test_node.py"):
        assert (REPO / needed).exists() and not dockerignore_excludes(needed), needed


@pytest.mark.parametrize("path", [".venv/bin/python", ".venv-vllm/lib/python3.11/site-packages/vllm/__init__.py",
                                  ".cache/tiny-llama/model.safetensors", "reports/summary.json", "node_modules/x/y.js",
                                  ".git/config", "tests/conftest.py", "fixtures/tiny_model/generate.py",
                                  "pytest_inference/__pycache__/cli.cpython-311.pyc", ".hypothesis/examples/x", ".env"])
def test_dockerignore_keeps_local_state_out(path):
    assert dockerignore_excludes(path)
