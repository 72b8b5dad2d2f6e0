#!/usr/bin/env bash
# Sets up what `make demo` and `make test` need on a fresh machine of this kind (Debian 12, Swift 6.3, Python 3.11):
# the Debian packages the build links against, and a venv (.venv) with the Python SDK and its development tools.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: SQLite headers for GRDB; CPU PyTorch for Debian's python3 (the checkpoint tests round-trip torch
# state_dicts with it, and the barrier benchmark compares with torch's TCPStore); Prometheus for promtool, which checks
# the /metrics exposition in the tests; openssl makes the TLS tests' certificates; protoc checks that the committed
# generated gRPC code is current; python3-venv makes .venv-torch (below) from Debian's python3. The dashboard
# (dashboard/) is built with esbuild and type-checked with TypeScript against Debian's React 18 and Chart.js (no npm
# registry needed); its browser tests drive Debian's chromium through chromium-driver. valgrind (with binutils' objcopy
# and a C compiler) runs the coordinator under callgrind for `dtr bench swarm heartbeat --callgrind`.
packages=(libsqlite3-dev python3-torch python3-venv prometheus openssl protobuf-compiler
  esbuild node-react node-react-dom node-chart.js node-typescript chromium chromium-driver valgrind binutils gcc)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Python: a venv with the SDK (editable) and the test and lint tools.
python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e 'python[dev,examples]'

# PyTorch (dtruntime.torch, examples/torch_ddp.py, `make torch-test`): a second venv from Debian's python3, which has
# python3-torch (1.13, CPU, gloo), seeing the system packages. numpy < 2: that torch was built against numpy 1.
if [[ ! -x .venv-torch/bin/python ]]; then
  echo "setup: creating .venv-torch with $(/usr/bin/python3 --version) and Debian's torch"
  /usr/bin/python3 -m venv --system-site-packages .venv-torch
fi
.venv-torch/bin/python -m pip install -q --disable-pip-version-check -e python 'numpy<2' 'scikit-learn>=1.3' 'pytest>=8'
echo "setup: ready (.venv: $(.venv/bin/python --version), dtruntime $(.venv/bin/python -c 'import dtruntime; print(dtruntime.__version__)'); .venv-torch: torch $(.venv-torch/bin/python -c 'import torch; print(torch.__version__)'))"
