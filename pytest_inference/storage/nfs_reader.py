"""Read a model's weight files from an NFS server with a userspace client (libnfs), in parallel.

    python -m pytest_inference.storage.nfs_reader nfs://SERVER/EXPORT/PATH [--readers N] [--block BYTES]
    python -m pytest_inference.storage.nfs_reader nfs://SERVER/EXPORT --hold       # connect, wait for stdin EOF

Runs as its own process so the caller can put it in another network namespace
(``nsenter --net=…``) and kill it on a timeout.  Each reader is a separate process with its
own NFS context, hence its own TCP connection to the server: the userspace equivalent of
``nconnect=N`` (libnfs has no nconnect, and its Python binding crawls when threads share it).
The readers mount, open every file, then wait at a barrier; the clock runs from the barrier
to the last reader's last byte.  Blocks of ``--block`` bytes are handed out in file order
from a shared counter, as a parallel weight loader reads.  A userspace client has no page
cache, so nothing is served from this machine's memory; the server's own cache is the
server's business (the lab drops it before each read).

Prints one JSON object on stdout.  Errors print ``{"error": "one line"}`` and exit 2.
``libnfs`` is imported only here, lazily.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import multiprocessing as mp
import os
import socket
import struct
import sys
import time
from urllib.parse import parse_qs, urlsplit

from ..report.redact import redact_userinfo

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
MB = 1_000_000
#: one libnfs read call of 2 MiB or more returns a short, corrupted buffer and breaks the session
#: (seen with the Debian/PyPI libnfs here): larger blocks are read in calls of at most 1 MiB
MAX_CALL = 1 << 20


class ReaderError(Exception):
    pass


#: the versions the userspace client (libnfs) speaks, as ``?version=`` values
CLIENT_VERSIONS = {"3": "3", "4": "4.0"}


def split_url(url: str) -> tuple[str, int, str, str]:
    """(server, port, path, query) of ``nfs://server[:port]/path[?version=3|4]``, validated:
    every error is one line and never repeats a password the URL carried."""
    shown = redact_userinfo(url)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", a non-numeric port
        raise ReaderError(f"{shown}: not a valid nfs:// URL ({exc})") from None
    if parts.scheme != "nfs" or not host or not parts.path.strip("/"):
        raise ReaderError(f"{shown}: expected nfs://SERVER/EXPORT[/PATH]")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ReaderError(f"{shown}: an nfs:// URL carries no user or password (the client authenticates "
                          "with AUTH_SYS): remove the part before '@'")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            raise ReaderError(f"{shown}: [{host}] is not an IPv6 address") from None
    if port is not None and not 1 <= port <= 65535:
        raise ReaderError(f"{shown}: port {port} is not 1-65535")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ReaderError(f"{shown}: cannot parse the query {parts.query!r}") from None
    unknown = sorted(set(query) - {"version"})
    if unknown:
        raise ReaderError(f"{shown}: unknown query parameter {unknown[0]!r} (only version=3 or version=4)")
    versions = query.get("version", ["4"])
    if len(versions) != 1 or versions[0] not in CLIENT_VERSIONS:
        raise ReaderError(f"{shown}: version={versions[-1]!r}: the userspace client speaks version=3 or "
                          "version=4 (NFSv4.0); the server's own NFS version is measured, never taken from the URL")
    return host, port or 2049, parts.path or "/", f"version={versions[0]}"


#: the Debian packages the binding builds against (it is an sdist: swig + a C compiler)
BINDING_BUILD_DEPS = "libnfs-dev swig build-essential"


def binding_missing(python: str | None = None) -> str:
    """The one line that says how to install the NFS client binding into this Python."""
    py = python or sys.executable
    return (f"the NFS client binding (libnfs) is not installed in {py}: pip install 'pytest-inference[nfs]' "
            f"(it builds from source: apt-get install {BINDING_BUILD_DEPS} first), or as root "
            f"PYTHON={py} bash scripts/install-nfs-lab.sh, which does both")


def _lib():
    try:
        import libnfs.libnfs as L  # noqa: N812
    except ImportError:
        raise ReaderError(binding_missing()) from None
    return L


def _url(server: str, port: int, path: str, query: str) -> str:
    q = parse_qs(query)
    q.setdefault("version", ["4"])
    qs = "&".join(f"{k}={v[0]}" for k, v in q.items())
    server = f"[{server}]" if ":" in server else server
    host = f"{server}:{port}" if port != 2049 else server
    return f"nfs://{host}{path}?{qs}"


def _mount(L, url: str):
    ctx = L.nfs_init_context()
    if ctx is None:
        raise ReaderError("libnfs: cannot create a context")
    L.nfs_set_tcp_syncnt(ctx, 2)
    u = L.nfs_parse_url_dir(ctx, url)
    if u is None:
        raise ReaderError(f"{url}: libnfs cannot parse it: {L.nfs_get_error(ctx)}")
    rc = L.nfs_mount(ctx, u.server, u.path)
    if rc != 0:
        raise ReaderError(f"mount {u.server}:{u.path} failed: {L.nfs_get_error(ctx) or os.strerror(-rc)}")
    return ctx, u


def _stat(L, ctx, path: str):
    st = L.nfs_stat_64()
    rc = L.nfs_stat64(ctx, path, st)
    if rc != 0:
        return None
    return st


def _listdir(L, ctx, path: str) -> list[str]:
    handle = L.new_NFSDirHandle()
    rc = L.nfs_opendir(ctx, path, handle)
    if rc != 0:  # the binding's listdir() loops forever here; check the status ourselves
        raise ReaderError(f"cannot list {path}: {L.nfs_get_error(ctx) or os.strerror(-rc)}")
    d = L.NFSDirHandle_value(handle)
    names = []
    while True:
        ent = L.nfs_readdir(ctx, d)
        if ent is None:
            break
        names.append(ent.name)
    L.nfs_closedir(ctx, d)
    return names


def _is_dir(st) -> bool:
    return (st.nfs_mode & 0o170000) == 0o040000


def resolve(L, server: str, port: int, path: str, query: str) -> tuple[str, list[tuple[str, int]]]:
    """Mount the URL's folder (or the folder of the file it names) and list weight files:
    returns (mount URL, [(path inside the mount, size)])."""
    head, _, tail = path.rstrip("/").rpartition("/")
    try:
        ctx, _ = _mount(L, _url(server, port, path, query))
        st = _stat(L, ctx, "/")
        if st is None:
            raise ReaderError(f"{path}: no such file or folder on {server}")
        mounted, rel = path, "/"
    except ReaderError as first:
        if not tail:
            raise
        try:
            ctx, _ = _mount(L, _url(server, port, head or "/", query))
        except ReaderError:
            raise first from None
        mounted, rel, st = head or "/", "/" + tail, None
    if st is not None and not _is_dir(st) and tail:
        # a file: NFSv4 "mounts" it without complaint; mount its folder instead
        ctx, _ = _mount(L, _url(server, port, head or "/", query))
        mounted, rel = head or "/", "/" + tail
    mount_url = _url(server, port, mounted, query)
    st = _stat(L, ctx, rel)
    if st is None:
        raise ReaderError(f"{path}: no such file or folder on {server}")
    if not _is_dir(st):
        return mount_url, [(rel, int(st.nfs_size))]
    files: list[tuple[str, int]] = []

    def walk(folder: str, depth: int) -> None:
        for name in sorted(_listdir(L, ctx, folder)):
            if name in (".", ".."):
                continue
            p = folder.rstrip("/") + "/" + name
            s = _stat(L, ctx, p)
            if s is None:
                continue
            if _is_dir(s):
                if depth < 3:
                    walk(p, depth + 1)
            elif name.endswith(WEIGHT_SUFFIXES):
                files.append((p, int(s.nfs_size)))

    walk(rel, 0)
    if not files:
        raise ReaderError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) under {path} on {server}")
    return mount_url, files


def _die_with_parent() -> None:
    """A reader outlives nothing: if the reader process is killed (timeout, Ctrl-C, SIGKILL),
    the kernel kills its readers too (PR_SET_PDEATHSIG; the parent forks from its only thread)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except Exception:  # noqa: BLE001 - not Linux: the readers end when their reads do
        pass


def _reader(k, mount_url, files, block, counter, barrier, results, hold_s, verify):  # runs in a child process
    _die_with_parent()
    try:
        L = _lib()
        ctx, _ = _mount(L, mount_url)
        handles = []
        for path, _size in files:
            h = L.new_NFSFileHandle()
            rc = L.nfs_open(ctx, path, os.O_RDONLY, h)
            if rc != 0:
                raise ReaderError(f"open {path}: {L.nfs_get_error(ctx) or os.strerror(-rc)}")
            handles.append(L.NFSFileHandle_value(h))
        pieces = [(i, off) for i, (_p, size) in enumerate(files) for off in range(0, size, block)]
        buf = bytearray(min(block, MAX_CALL))
        got = 0
        digests = []
        barrier.wait()
        t0 = time.perf_counter()
        while True:
            with counter.get_lock():
                j = counter.value
                counter.value += 1
            if j >= len(pieces):
                break
            i, off = pieces[j]
            piece_off = off
            want = min(block, files[i][1] - off)
            h = hashlib.sha256() if verify else None
            while want > 0:
                n = L.nfs_pread(ctx, handles[i], off, min(want, MAX_CALL), buf)
                if n < 0:
                    raise ReaderError(f"read {files[i][0]}@{off}: {L.nfs_get_error(ctx) or os.strerror(-n)}")
                if n == 0:
                    break
                if h is not None:
                    h.update(memoryview(buf)[:n])
                got += n
                off += n
                want -= n
            if h is not None:
                digests.append((i, piece_off, h.hexdigest()))
        t1 = time.perf_counter()
        results.put({"reader": k, "bytes": got, "seconds": t1 - t0, "digests": digests})
        if hold_s:
            time.sleep(hold_s)
        for h in handles:
            L.nfs_close(ctx, h)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        try:
            barrier.abort()
        except Exception:  # noqa: BLE001
            pass
        results.put({"reader": k, "error": str(exc) or type(exc).__name__})


def _check_reachable(server: str, port: int, timeout: float) -> None:
    try:
        with socket.create_connection((server, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ReaderError(f"cannot reach the NFS server {server}:{port}: {exc.strerror or exc}") from None


# --- what the server speaks: ONC RPC over TCP, no NFS client library -------------------------------
NFS_PROGRAM = 100003
NFS4ERR_MINOR_VERS_MISMATCH = 10021
_ACCEPT = {1: "PROG_UNAVAIL", 2: "PROG_MISMATCH", 3: "PROC_UNAVAIL", 4: "GARBAGE_ARGS", 5: "SYSTEM_ERR"}


def _xdr_opaque(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data + b"\0" * (-len(data) % 4)


def _rpc_call(sock: socket.socket, xid: int, vers: int, proc: int, args: bytes) -> tuple[int, bytes]:
    """One call to the NFS program; returns (accept_stat, results). AUTH_SYS uid 0 (what the
    userspace client sends), no verifier."""
    cred = _xdr_opaque(struct.pack(">I", 0) + _xdr_opaque(b"pytest-inference") + struct.pack(">III", 0, 0, 0))
    msg = (struct.pack(">IIIIII", xid, 0, 2, NFS_PROGRAM, vers, proc) + struct.pack(">I", 1) + cred
           + struct.pack(">II", 0, 0) + args)
    sock.sendall(struct.pack(">I", 0x80000000 | len(msg)) + msg)
    reply = b""
    while True:  # record marking: fragments until the last-fragment bit
        head = _recv_exact(sock, 4)
        (mark,) = struct.unpack(">I", head)
        length = mark & 0x7FFFFFFF
        if length > 1 << 20:
            raise ReaderError(f"the server sent an RPC record of {length} bytes")
        reply += _recv_exact(sock, length)
        if mark & 0x80000000:
            break
    if len(reply) < 12:
        raise ReaderError("the server sent a short RPC reply")
    rxid, mtype, stat = struct.unpack(">III", reply[:12])
    if rxid != xid or mtype != 1:
        raise ReaderError("the server's answer is not an RPC reply to our call")
    if stat != 0:
        raise ReaderError("the server denied the RPC call (auth or RPC version)")
    (_flavor, vlen) = struct.unpack(">II", reply[12:20])
    off = 20 + vlen + (-vlen % 4)
    (accept,) = struct.unpack(">I", reply[off:off + 4])
    return accept, reply[off + 4:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ReaderError("the server closed the connection mid-reply")
        buf += chunk
    return buf


def server_version(server: str, port: int = 2049, timeout: float = 5.0) -> dict:
    """The highest NFS version the server at ``server:port`` answers, asked on the wire:
    NULL calls to NFS program versions 4 and 3, then an empty COMPOUND per NFSv4 minor version
    (a server that lacks a minor version answers NFS4ERR_MINOR_VERS_MISMATCH). Returns
    ``{"version": "4.2"|"4.1"|"4.0"|"3", "nfs4_minor_versions": [...], "rpc": [...]}``;
    the version is None when the server answered but none of this could be established."""
    try:
        sock = socket.create_connection((server, port), timeout=timeout)
    except OSError as exc:
        raise ReaderError(f"cannot reach the NFS server {server}:{port}: {exc.strerror or exc}") from None
    xid = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
    out: dict = {"server": server, "port": port, "rpc": [], "nfs4_minor_versions": [], "version": None}
    try:
        with sock:
            sock.settimeout(timeout)
            accept, res = _rpc_call(sock, xid, 4, 0, b"")
            out["rpc"].append({"call": "NULL v4", "accept": _ACCEPT.get(accept, "SUCCESS" if accept == 0 else accept)})
            if accept == 0:
                for minor in (0, 1, 2):
                    xid += 1
                    args = _xdr_opaque(b"") + struct.pack(">II", minor, 0)  # tag, minorversion, no operations
                    accept, res = _rpc_call(sock, xid, 4, 1, args)
                    status = struct.unpack(">I", res[:4])[0] if accept == 0 and len(res) >= 4 else None
                    out["rpc"].append({"call": f"COMPOUND minorversion {minor}", "accept": accept, "status": status})
                    if accept == 0 and status is not None and status != NFS4ERR_MINOR_VERS_MISMATCH:
                        out["nfs4_minor_versions"].append(minor)
                if out["nfs4_minor_versions"]:
                    out["version"] = f"4.{max(out['nfs4_minor_versions'])}"
                return out
            xid += 1
            accept3, _ = _rpc_call(sock, xid, 3, 0, b"")
            out["rpc"].append({"call": "NULL v3", "accept": _ACCEPT.get(accept3, "SUCCESS" if accept3 == 0 else accept3)})
            if accept3 == 0:
                out["version"] = "3"
            return out
    except (OSError, struct.error) as exc:
        raise ReaderError(f"the NFS server {server}:{port} did not answer an RPC call: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None


def read_url(url: str, readers: int = 4, block: int = 1 << 20, hold_s: float = 0.0,
             connect_timeout: float = 5.0, verify: bool = False) -> dict:
    """Read every weight file under ``url`` once; ``verify`` adds the sha256 of every block
    (computed after the clock stops for nothing: it slows the read, so only tests use it)."""
    server, port, path, query = split_url(url)
    L = _lib()
    _check_reachable(server, port, connect_timeout)
    mount_url, files = resolve(L, server, port, path, query)
    ctx = mp.get_context("fork")
    counter = ctx.Value("q", 0)
    barrier = ctx.Barrier(readers + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=_reader, args=(k, mount_url, files, block, counter, barrier, results, hold_s, verify),
                         daemon=True) for k in range(readers)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=60)
    except Exception:  # noqa: BLE001 - a reader failed before the start; its error follows
        pass
    t0 = time.perf_counter()
    per = []
    for _ in procs:
        per.append(results.get(timeout=3600))
        if "error" not in per[-1]:
            per[-1]["end"] = time.perf_counter()
    errors = [r["error"] for r in per if "error" in r]
    for p in procs:
        p.join(timeout=hold_s + 30)
        if p.is_alive():
            p.kill()
    if errors:
        raise ReaderError(errors[0])
    seconds = max(r["end"] for r in per) - t0
    total = sum(r["bytes"] for r in per)
    expected = sum(size for _p, size in files)
    if total != expected:
        raise ReaderError(f"read {total} bytes of {expected}")
    out = {
        "url": url, "server": server, "mount": mount_url, "files": [{"path": p, "bytes": s} for p, s in files],
        "bytes": total, "seconds": seconds, "MBps": total / seconds / MB if seconds > 0 else None,
        "readers": readers, "block": block, "connections": readers,
        "client_version": CLIENT_VERSIONS[query.split("=", 1)[1]],
        "per_reader": [{"bytes": r["bytes"], "seconds": r["seconds"]} for r in sorted(per, key=lambda r: r["reader"])],
        "method": "userspace NFS client (libnfs), one TCP connection per reader; no client page cache",
    }
    if verify:
        out["digests"] = sorted([files[i][0], off, d] for r in per for i, off, d in r["digests"])
    return out


def hold(url: str) -> None:
    """Mount and keep the connection open until stdin closes (for MSS-race tests)."""
    server, port, path, query = split_url(url)
    L = _lib()
    _check_reachable(server, port, 5.0)
    ctx, _ = _mount(L, _url(server, port, path, query))
    _stat(L, ctx, "/")
    print(json.dumps({"held": url}), flush=True)
    sys.stdin.read()
    _stat(L, ctx, "/")  # one more request on the old connection before it closes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pytest_inference.storage.nfs_reader", description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--block", type=int, default=1 << 20)
    ap.add_argument("--hold", action="store_true", help="connect, then wait for stdin to close")
    ap.add_argument("--hold-s", type=float, default=0.0, help="keep the readers' connections open after reading")
    ap.add_argument("--server-version", action="store_true",
                    help="only ask the server which NFS versions it answers (RPC; no client library needed)")
    ap.add_argument("--verify", action="store_true", help="report the sha256 of every block read (slower)")
    args = ap.parse_args(argv)
    try:
        if args.server_version:
            server, port, _path, _query = split_url(args.url)
            print(json.dumps(server_version(server, port)))
            return 0
        if args.hold:
            hold(args.url)
            return 0
        print(json.dumps(read_url(args.url, readers=max(1, args.readers), block=max(4096, args.block),
                                  hold_s=args.hold_s, verify=args.verify)))
        return 0
    except ReaderError as exc:
        print(json.dumps({"error": redact_userinfo(str(exc))}))
        return 2


if __name__ == "__main__":
    sys.exit(main())
