"""The lab registry: one state file per live lab (``<lock dir>/netlab/<token>.json``), believed only
when it is ours, and the reaping of labs whose owner and guardian are both gone."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from ..supervise import read_json, same_process
from .common import LabError, lock_dir
from .teardown import teardown

__all__ = ["registry_dir", "safe_registry", "read_record", "records", "reap_orphans"]


def registry_dir() -> Path:
    return lock_dir() / "netlab"


def safe_registry(create: bool) -> Path | None:
    """The lab registry, checked before anything in it is believed: root tears down what a record
    names (namespaces, a temp folder, host sysctls), so a record planted by another user in the
    shared lock folder must never be read. The folder is private (0700), a real directory, owned by
    us or root (the same checks as the device lock's folder); None when it does not exist."""
    from pytest_inference.server.lock import DeviceLockUnsafe, ensure_dir

    reg = registry_dir()
    if not create and not os.path.lexists(reg):
        return None
    try:
        ensure_dir(reg, shared=False)
        st = os.lstat(reg)
    except (DeviceLockUnsafe, OSError) as e:
        raise LabError(f"netlab: unsafe lab registry: {e}") from None
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise LabError(f"netlab: unsafe lab registry: {reg} is writable by others "
                       f"(mode {stat.S_IMODE(st.st_mode):o}); remove it")
    return reg


def read_record(path: Path) -> dict[str, Any] | None:
    """A lab record, only if it is a regular file of ours (or root's), read without following a link."""
    data = read_json(path, trusted_only=True)
    return data if isinstance(data, dict) else None


def records() -> list[tuple[Path, dict[str, Any]]]:
    """Every record of the registry that is ours, sorted by file name; none when it does not exist."""
    reg = safe_registry(create=False)
    out = []
    for p in sorted(reg.glob("*.json")) if reg is not None else []:
        rec = read_record(p)
        if rec is not None:
            out.append((p, rec))
    return out


def reap_orphans() -> list[str]:
    """Tear down labs whose owner *and* guardian are gone (a guardian SIGKILLed too, the OOM
    killer) and put back the host values they left changed. Call only while holding the host
    lock: every lab start does, before it records the host's "original" values, so a leaked
    16 MiB is never mistaken for the machine's own setting. Newest first, so that with several
    orphans the oldest one's originals are what stays. Returns one line per lab torn down."""
    orphans: list[tuple[float, Path, dict[str, Any]]] = []
    for p, state in records():
        if same_process(state.get("owner_pid"), state.get("owner_start")):
            continue
        if same_process(state.get("guardian_pid"), state.get("guardian_start")):
            continue  # its guardian is on it (and holds the lock: we could not be here, unless done)
        orphans.append((float(state.get("started_at") or 0), p, state))
    out = []
    for _, p, state in sorted(orphans, key=lambda x: x[0], reverse=True):
        problems = teardown(state, restore_host=True)
        try:
            p.unlink()
        except OSError:
            pass
        restored = ", ".join(f"{k}={v}" for k, v in (state.get("host_restore") or {}).items())
        out.append(f"lab {state.get('token')}: torn down (owner {state.get('owner_pid')} and its guardian gone"
                   + (f"; host restored to {restored}" if restored else "")
                   + (f"; {'; '.join(problems)}" if problems else "") + ")")
    return out
