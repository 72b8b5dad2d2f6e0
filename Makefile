# dtruntime: the two commands are `make demo` (the main job) and `make test` (every test and lint).
# Each sets up what it needs first (scripts/setup.sh: Debian packages, the .venv). Tests build debug.

SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
# Debian's python3 with its python3-torch (scripts/setup.sh makes it): dtruntime.torch's tests run there.
TORCH_PYTHON := .venv-torch/bin/python
DTR := .build/debug/dtr
# Our Swift code (the generated Sources/RuntimeProto is left as protoc made it).
SWIFT_SOURCES := Package.swift Sources/RuntimeCore Sources/DataShard Sources/Checkpoint Sources/Storage \
	Sources/Coordinator Sources/Swarm Sources/dtr Tests
PYTHON_SOURCES := python examples bench scripts

.PHONY: demo test setup build lint format swift-test python-test torch-test protos bench training-plot clean dashboard \
	dashboard-test

## demo: build dtr, start a coordinator on 50051/51051 (dashboard: http://127.0.0.1:51051/) and train the example with
## four workers through dtrun, killing one mid-epoch (dtrun restarts it, it rejoins); ends with the exactly-once proof.
demo: setup build
	DTR_BIN=$(DTR) $(PYTHON) examples/demo.py

## test: lint, then the dashboard's unit tests, the Swift tests, then the Python tests against the real dtr binary
## (PyTorch's in .venv-torch).
test: setup lint dashboard-test swift-test python-test torch-test

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: scripts/setup.sh python/pyproject.toml
	scripts/setup.sh
	touch $@

build:
	@echo "building dtr (debug; the first build compiles the dependencies and takes about 11-13 minutes on 2 cores)"
	swift build --product dtr

lint: setup
	swift format lint --strict --recursive $(SWIFT_SOURCES)
	scripts/generate-protos.sh --check
	$(VENV)/bin/ruff check $(PYTHON_SOURCES)
	$(VENV)/bin/ruff format --check $(PYTHON_SOURCES)
	$(VENV)/bin/mypy --config-file python/pyproject.toml python/dtruntime
	scripts/build-dashboard.sh --check

format: setup
	swift format format --in-place --recursive $(SWIFT_SOURCES)
	$(VENV)/bin/ruff format $(PYTHON_SOURCES)
	$(VENV)/bin/ruff check --fix $(PYTHON_SOURCES)

swift-test:
	swift build --build-tests
	swift test --skip-build

python-test: setup
	swift build --product dtr
	DTR_BIN=$(DTR) $(PYTHON) -m pytest python/tests

## torch-test: dtruntime.torch, examples/torch_ddp.py and bench/barrier_processes.py (small) with real PyTorch
## (Debian's, in .venv-torch).
torch-test: setup
	swift build --product dtr
	DTR_BIN=$(DTR) $(TORCH_PYTHON) -m pytest python/tests/test_torch.py python/tests/test_barrier_processes.py

## dashboard: rebuild the committed bundle dashboard/dist from dashboard/src (esbuild and React from Debian's packages).
dashboard: setup
	scripts/build-dashboard.sh
	scripts/embed-dashboard.py

dashboard-test: setup
	scripts/build-dashboard.sh --test

## protos: regenerate the committed Swift and Python code from proto/ (needs protoc: apt-get install protobuf-compiler).
protos: setup
	scripts/generate-protos.sh

## training-plot: train the example with 1, 2 and 4 workers and draw docs/training-curves.png (the README's figure).
training-plot: setup build
	DTR_BIN=$(DTR) $(PYTHON) scripts/plot_training.py

## bench: the benchmarks of bench/RESULTS.md, on a release build.
bench: setup
	swift build -c release --product dtr
	.build/release/dtr bench placement --shards 1000000 --workers 1000
	.build/release/dtr bench barrier --workers 1024
	$(PYTHON) bench/barrier_vs_tcpstore.py --threads 64 256 --rounds 40
	$(PYTHON) bench/checkpoint_bench.py --rounds 9 --s3-rounds 5
	.build/release/dtr bench ledger --log2-shards 20,22,24 --workers 1000
	.build/release/dtr bench swarm heartbeat --workers 10000
	.build/release/dtr bench swarm heartbeat --workers 200 --duration 10s --callgrind .build/callgrind
	.build/release/dtr bench swarm rendezvous --workers 4000
	.build/release/dtr bench swarm rendezvous --workers 10000 --dataset-shards 100000
	.build/release/dtr bench swarm departure --workers 10000
	.build/release/dtr bench swarm departure --workers 10000 --dataset-shards 100000
	.build/release/dtr bench swarm memory --workers 100000
	.build/release/dtr bench swarm recovery --workers 10000
	.build/release/dtr bench swarm failure-detection
	.build/release/dtr bench swarm big-dataset --workers 1000
	$(PYTHON) bench/barrier_processes.py --processes 8 32 --rounds 200

clean:
	rm -rf .build $(VENV) .venv-torch dtr-data
