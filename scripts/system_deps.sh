#!/usr/bin/env bash
# Installs the system libraries headless MuJoCo rendering needs (EGL + Mesa, OSMesa as fallback)
# when they are missing. Runs as part of `make venv`; a no-op when everything is present.
set -euo pipefail
missing=()
ldconfig -p | grep -q 'libEGL.so.1' || missing+=(libegl1 libegl-mesa0 libgl1-mesa-dri)
ldconfig -p | grep -q 'libOSMesa' || missing+=(libosmesa6)
ldconfig -p | grep -q 'libGL.so.1' || missing+=(libgl1)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "system_deps: missing ${missing[*]}; install them with apt-get (needs root)" >&2
  exit 0
fi
echo "system_deps: installing ${missing[*]}"
apt-get update -qq >/dev/null || true
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || \
  echo "system_deps: could not install ${missing[*]}; rendering tests will report why" >&2
