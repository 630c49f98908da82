"""Static mode: a folder of Kubernetes manifests (YAML, multi-document, ``kind: List``, JSON)
as an :class:`~.model.Observation`, so the same checks judge it without a cluster.

A Sonobuoy plugin definition (a document with ``sonobuoy-config`` and ``spec``: the container,
and an optional ``podSpec``) is read as an object of kind ``SonobuoyPlugin`` named by its
``plugin-name``, its pod spec at ``spec.template.spec`` (``podSpec`` with ``spec`` as the first
container), so the checks that read pod specs read it too.

Everything that cannot be read is one line in :class:`ManifestError` (the folder is missing or
empty, a file is not YAML, a document is not a Kubernetes object, a field has the wrong type,
a file is too big, nested too deep, or an alias bomb): bounded time, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .model import STATIC, Observation, key_of
from .shape import MAX_DEPTH, MAX_NODES, ShapeError, expanded_size, shape_errors

SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 16 << 20   # one manifest file
MAX_TOTAL_BYTES = 64 << 20  # the whole folder


class ManifestError(Exception):
    """The manifests cannot be read; the message is one line meant for the user."""


def manifest_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def _yaml_error(path: Path, exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    hint = ""
    text = path.read_text(errors="replace")
    if "{{" in text:
        hint = " (an unrendered Helm/Go template? render it first: helm template …)"
    return f"--manifests: {where}: not valid YAML: {problem}{hint}"


def load_manifests(folder: str | Path) -> Observation:
    """Read every manifest under ``folder`` (recursively) into a static observation."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        raise ManifestError("--manifests needs PyYAML: pip install pyyaml") from None
    root = Path(folder).expanduser()
    if not root.exists():
        raise ManifestError(f"--manifests {folder}: no such folder")
    if not root.is_dir():
        raise ManifestError(f"--manifests {folder}: not a folder (give the folder that holds the YAML files)")
    files = manifest_files(root)
    if not files:
        raise ManifestError(f"--manifests {folder}: no .yaml, .yml or .json files in it")
    obs = Observation(mode=STATIC, source=f"manifests {root}")
    total = 0
    budget = MAX_NODES
    for path in files:
        rel = path.relative_to(root)
        size = path.stat().st_size
        total += size
        if size > MAX_FILE_BYTES or total > MAX_TOTAL_BYTES:
            what = f"{path} is {size / 2**20:.1f} MiB" if size > MAX_FILE_BYTES else f"{root} holds more than"
            raise ManifestError(f"--manifests: {what} (at most {MAX_FILE_BYTES >> 20} MiB a file, "
                                f"{MAX_TOTAL_BYTES >> 20} MiB in all): not a deployment's manifests")
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            raise ManifestError(f"--manifests: {path}: not UTF-8 text") from None
        except yaml.YAMLError as exc:
            raise ManifestError(_yaml_error(path, exc)) from None
        except RecursionError:
            raise ManifestError(f"--manifests: {path}: nested too deep to read (at most {MAX_DEPTH} levels)") from None
        for i, doc in enumerate(docs, start=1):
            if doc is None:
                continue
            try:
                budget -= expanded_size(doc, budget=budget)
            except ShapeError as exc:
                raise ManifestError(f"--manifests: {path} document {i}: {exc}") from None
            for obj in _objects(doc, path, i):
                bad = shape_errors(obj)
                if bad:
                    raise ManifestError(f"--manifests: {path} document {i} ({obj['kind']} "
                                        f"{_name(obj)}): {bad}")
                obs.objects.append(obj)
                obs.origin.setdefault(key_of(obj), f"{rel}#{i}")
    if not obs.objects:
        raise ManifestError(f"--manifests {folder}: the files hold no Kubernetes objects")
    return obs


SONOBUOY_PLUGIN = "SonobuoyPlugin"


def sonobuoy_plugin(doc: dict[str, Any], path: Path, i: int) -> dict[str, Any]:
    """A Sonobuoy plugin definition as an object the checks read (see the module's docstring)."""
    cfg, container, pod = doc.get("sonobuoy-config"), doc.get("spec"), doc.get("podSpec") or {}
    where = f"--manifests: {path} document {i} (Sonobuoy plugin)"
    if not isinstance(cfg, dict) or not isinstance(cfg.get("plugin-name"), str) or not cfg["plugin-name"]:
        raise ManifestError(f"{where}: sonobuoy-config has no plugin-name")
    if not isinstance(container, dict) or not isinstance(pod, dict):
        raise ManifestError(f"{where}: spec (the container) and podSpec must be mappings")
    others = pod.get("containers") or []
    if not isinstance(others, list):
        raise ManifestError(f"{where}: podSpec.containers is not a list")
    return {"apiVersion": "sonobuoy/v1", "kind": SONOBUOY_PLUGIN, "metadata": {"name": cfg["plugin-name"]},
            "sonobuoy-config": cfg, "spec": {"template": {"spec": {**pod, "containers": [container, *others]}}}}


def _objects(doc: Any, path: Path, i: int) -> list[dict[str, Any]]:
    if not isinstance(doc, dict):
        raise ManifestError(f"--manifests: {path} document {i} is a {type(doc).__name__}, not a Kubernetes object")
    if "sonobuoy-config" in doc and "spec" in doc and not doc.get("kind"):
        return [sonobuoy_plugin(doc, path, i)]
    if not doc.get("kind") or not isinstance(doc.get("kind"), str):
        raise ManifestError(f"--manifests: {path} document {i} has no 'kind': not a Kubernetes object")
    if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
        out: list[dict[str, Any]] = []
        for item in doc["items"]:
            out += _objects(item, path, i)
        return out
    md = doc.get("metadata")
    if isinstance(md, dict) and md.get("name") is not None and not isinstance(md["name"], str):
        raise ManifestError(f"--manifests: {path} document {i} ({doc['kind']}): metadata.name is not a string")
    if not isinstance(md, dict) or not md.get("name"):
        raise ManifestError(f"--manifests: {path} document {i} ({doc['kind']}) has no metadata.name")
    return [doc]


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))[:80]
