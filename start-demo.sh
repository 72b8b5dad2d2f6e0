#!/usr/bin/env bash
# The reference's "terminal 1": builds dtr if needed and runs a coordinator on its defaults (gRPC 127.0.0.1:50051,
# HTTP and the dashboard on http://127.0.0.1:51051/, state in ./dtr-data), in the foreground until Ctrl-C.
# Then, in a second terminal, train with it (see the lines this prints).
set -euo pipefail
cd "$(dirname "$0")"
make --no-print-directory setup build >&2
cat >&2 <<'TEXT'

  dashboard:  http://127.0.0.1:51051/
  then, in another terminal:
    .venv/bin/dtrun --nproc 4 examples/real_training_simple.py     # four workers (the launcher restarts failed ones)
    .venv/bin/python examples/real_training_simple.py              # or one worker

TEXT
exec .build/debug/dtr serve "$@"
