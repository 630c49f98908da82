#!/usr/bin/env bash
# What the storage and node suites' local NFS lab needs (as root, on Debian):
# nfs-ganesha (a userspace NFS server, run in a network namespace), its VFS backend, libnfs (the
# userspace NFS client; the Python binding builds against libnfs-dev with swig), fio (the read
# benchmark's reference), ethtool (veth offloads off), iproute2 (ip netns, ss) and util-linux (nsenter).
# Idempotent; does nothing that is already there. Not root: says so and exits 0 (the lab tests skip).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
if [ "$(id -u)" != 0 ]; then
  echo "install-nfs-lab: not root; the local NFS lab needs root (its tests will skip and say so)"
  exit 0
fi
need=()
command -v ganesha.nfsd >/dev/null 2>&1 || need+=(nfs-ganesha nfs-ganesha-vfs)
[ -e /usr/include/nfsc/libnfs.h ] || need+=(libnfs-dev swig build-essential)
command -v nfs-cat >/dev/null 2>&1 || need+=(libnfs-utils)
command -v fio >/dev/null 2>&1 || need+=(fio)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c "import libnfs" 2>/dev/null || python3 -m pip install -q libnfs 2>&1 | grep -v "Running pip as the 'root' user" || true
python3 -c "import libnfs"
