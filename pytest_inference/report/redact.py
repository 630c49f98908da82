"""Defence in depth for secrets: no report file may contain the API key, whatever wrote it.

The key is never handed to a sink on purpose; this pass catches what a server echoed back,
captured logs, a traceback's locals (``-l``) or a user's own test printed, before the report
leaves the machine. Besides the key itself (which covers ``Bearer KEY``), its base64 forms are
removed: the key encoded on its own and inside any longer base64 text (``user:KEY`` of a Basic
header), at each of the three byte alignments.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Iterable

#: shorter base64 fragments would match unrelated text
_MIN_B64 = 8


#: a URL's ``user:password@`` — up to the *last* ``@`` before the host, so a password that contains
#: ``@`` is masked whole; no white space, so it is safe on free text that contains URLs
_USERINFO = re.compile(r"(?<=//)[^/?#\s]*@")


def redact_userinfo(text: str) -> str:
    """``text`` with the user/password part of every URL in it replaced by ``***@`` (also in URLs
    that do not parse, e.g. with a broken IPv6 literal)."""
    return _USERINFO.sub("***@", str(text))


def secret_forms(secret: str) -> list[str]:
    """The texts that give ``secret`` away: itself, and its base64 at every alignment."""
    if not secret:
        return []
    forms = [secret]
    raw = secret.encode("utf-8", "surrogatepass")
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + raw).decode()
        start = -(-pad * 8 // 6)                 # first character made of the secret's bits only
        end = (pad + len(raw)) * 8 // 6          # last one, exclusive
        frag = enc[start:end]
        if len(frag) >= _MIN_B64:
            forms.append(frag)
        for alt in (base64.urlsafe_b64encode(b"\0" * pad + raw).decode()[start:end],):
            if len(alt) >= _MIN_B64 and alt not in forms:
                forms.append(alt)
    # longest first: the full key before a fragment of it
    return sorted(dict.fromkeys(forms), key=len, reverse=True)


def _as_list(secrets: str | Iterable[str]) -> list[str]:
    return [secrets] if isinstance(secrets, str) else [s for s in secrets if s]


def redact_text(text: str, secrets: str | Iterable[str], replacement: str = "***") -> str:
    for secret in _as_list(secrets):
        for form in secret_forms(secret):
            if form in text:
                text = text.replace(form, replacement)
    return text


def redact_bytes(data: bytes, secrets: str | Iterable[str], replacement: str = "***") -> bytes:
    for secret in _as_list(secrets):
        for form in secret_forms(secret):
            needle = form.encode("utf-8", "surrogatepass")
            if needle in data:
                data = data.replace(needle, replacement.encode())
            latin = form.encode("latin-1", "ignore") if not form.isascii() else b""
            if latin and len(latin) == len(form) and latin in data:
                data = data.replace(latin, replacement.encode())
    return data


def redact_tree(root: Path, secret: str | Iterable[str], replacement: str = "***") -> list[Path]:
    """Replace the secret(s) in every file under ``root`` (or ``root`` itself); return the files changed."""
    secrets = _as_list(secret)
    if not secrets or not root.exists():
        return []
    changed = []
    for path in ([root] if root.is_file() else root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        new = redact_bytes(data, secrets, replacement)
        if new != data:
            path.write_bytes(new)
            changed.append(path)
    return changed
