#!/usr/bin/env bash
# Regenerates the committed gRPC/protobuf code from proto/ (Swift for the coordinator, Python for the SDK).
#
# Needs: protoc (Debian's protobuf-compiler), the Swift toolchain (the two protoc plugins are built from the package's
# own dependency checkouts) and a Python with grpcio-tools (the project venv: `make setup`).
# Usage: scripts/generate-protos.sh [--check]   (--check: fail if the committed code is out of date)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
python=${PYTHON:-.venv/bin/python}
"$python" -c 'import grpc_tools' 2>/dev/null \
  || { echo "grpcio-tools not found for $python: run 'make setup' or set PYTHON" >&2; exit 1; }

swift build --product protoc-gen-swift >/dev/null
swift build --product protoc-gen-grpc-swift-2 >/dev/null
bin=$(swift build --show-bin-path)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/swift" "$out/python"

protos=$(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)

# Swift: public visibility, because RuntimeProto is a separate module; file names without directories.
(cd proto && protoc \
  --plugin="$bin/protoc-gen-swift" --plugin="$bin/protoc-gen-grpc-swift-2" \
  --swift_out="$out/swift" --swift_opt=Visibility=Public,FileNaming=DropPath \
  --grpc-swift-2_out="$out/swift" --grpc-swift-2_opt=Visibility=Public,FileNaming=DropPath \
  $protos)

# Python: generated into python/ so that `dtruntime/v1/*_pb2.py` lands inside the dtruntime package and the generated
# imports (`from dtruntime.v1 import ...`) resolve to it.
"$python" -m grpc_tools.protoc -I proto \
  --python_out="$out/python" --grpc_python_out="$out/python" --pyi_out="$out/python" $protos

if [[ "${1:-}" == "--check" ]]; then
  status=0
  diff -r "$out/swift" Sources/RuntimeProto --exclude='*.md' -x 'Exports.swift' || status=1
  for f in $(cd "$out/python" && find . -type f | sed 's|^\./||'); do
    diff -q "$out/python/$f" "python/$f" >/dev/null || { echo "out of date: python/$f"; status=1; }
  done
  [[ $status == 0 ]] && echo "generated code is up to date" \
    || echo "generated code is out of date: run scripts/generate-protos.sh" >&2
  exit $status
fi

find Sources/RuntimeProto -name '*.pb.swift' -o -name '*.grpc.swift' | xargs -r rm -f
cp "$out"/swift/*.swift Sources/RuntimeProto/
cp -r "$out"/python/. python/
echo "regenerated: $(ls "$out"/swift | tr '\n' ' ')and python/dtruntime/v1/"
