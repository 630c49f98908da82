#!/usr/bin/env bash
# What the storage and node suites' local NFS lab needs, on Debian:
# - as root: nfs-ganesha (a userspace NFS server, run in a network namespace), its VFS backend,
#   libnfs-dev + swig + build-essential (the Python binding builds from source against them),
#   libnfs-utils, fio (the read benchmark's reference), ethtool (veth offloads off), iproute2
#   (ip netns, ss) and util-linux (nsenter);
# - then the NFS client binding into the Python that runs pytest — any environment, a virtualenv
#   included: PYTHON=/path/to/venv/bin/python bash scripts/install-nfs-lab.sh (default: python3).
#   It is the plugin's optional extra "nfs": pip install 'pytest-inference[nfs]' does the same once the
#   build packages are there.
# Idempotent; does nothing that is already there. Not root: installs nothing from Debian, says what
# is missing, still installs the binding when its build packages are present, and exits 0 (the lab
# tests skip and say why).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON="${PYTHON:-python3}"
LIBNFS_REQ='libnfs>=1.0.post4'
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "install-nfs-lab: PYTHON=$PYTHON not found" >&2
  exit 2
fi
need=()
command -v ganesha.nfsd >/dev/null 2>&1 || need+=(nfs-ganesha nfs-ganesha-vfs)
[ -e /usr/include/nfsc/libnfs.h ] || need+=(libnfs-dev)
command -v swig >/dev/null 2>&1 || need+=(swig)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v nfs-cat >/dev/null 2>&1 || need+=(libnfs-utils)
command -v fio >/dev/null 2>&1 || need+=(fio)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "install-nfs-lab: not root; the local NFS lab needs root and these Debian packages: ${need[*]}" \
         "(its tests will skip and say so)"
  fi
fi
if "$PYTHON" -c "import libnfs.libnfs" 2>/dev/null; then
  exit 0
fi
if [ ! -e /usr/include/nfsc/libnfs.h ] || ! command -v swig >/dev/null 2>&1; then
  echo "install-nfs-lab: cannot build the NFS client binding for $PYTHON without libnfs-dev swig build-essential"
  exit 0
fi
"$PYTHON" -m pip install -q "$LIBNFS_REQ" 2>&1 | grep -v "Running pip as the 'root' user" || true
"$PYTHON" -c "import libnfs.libnfs"
echo "install-nfs-lab: the NFS client binding is installed in $("$PYTHON" -c 'import sys; print(sys.executable)')"
