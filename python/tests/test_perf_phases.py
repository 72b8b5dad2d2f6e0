"""bench/perf_phases.py: reading `perf script`'s samples and putting them under a recovery run's phases."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def load() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "perf_phases.py"
    spec = importlib.util.spec_from_file_location("perf_phases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["perf_phases"] = module
    spec.loader.exec_module(module)
    return module


perf_phases = load()

# What `perf script -F pid,time,ip,sym,dso --no-demangle` prints: the idle task's pid padded with spaces.
SCRIPT = """\
  200 100.050000: \n\
\t  95091 unlink_chunk.constprop.0 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t 1000a8c $s5Swarm15SimulatedWorkerC10runSessionyyF (/tmp/dtr)

    0 100.060000: \n\
\tffffffff82240ddb pv_native_safe_halt ([kernel.kallsyms])
\tffffffff822428f5 default_idle ([kernel.kallsyms])

  300 100.700000: \n\
\t  47e90d swift_retain (/opt/swift/usr/lib/swift/linux/libswiftCore.so)
\t 10a9a41 $s7NIOCore32NIOThrowingAsyncSequenceProducerV4nextyF (/tmp/dtr)
\t 109c964 $s11Coordinator0A7ServiceV13workerSessionyyF (/tmp/dtr)

  300 100.800000: \n\
\t  961f9 sqlite3BtreeNext (/tmp/dtr)
\t 10a9a41 $s7Storage16SQLiteStateStoreC8loadDatayyF (/tmp/dtr)

  300 100.900000: \n\
\tffffffff8224fde1 _raw_spin_unlock_irq ([kernel.kallsyms])
\t   72b15 swift_job_run (/opt/swift/usr/lib/swift/linux/libswift_Concurrency.so)

  300 101.000000: \n\
\t   72b15 swift_job_run (/opt/swift/usr/lib/swift/linux/libswift_Concurrency.so)
\t       0 [unknown] ([unknown])

  400 101.500000: \n\
\t 1000a8c $s3dtr14RecoveryProbeV3runyyF (/tmp/dtr)
"""

RUN = {
    "kill_monotonic_seconds": 100.0,
    "listening_after_kill_seconds": 0.6,
    "listening_seconds": 0.5,
    "first_connection_up_after_listening_seconds": 0.1,
    "first_session_back_after_listening_seconds": 0.4,
    "all_heartbeating_seconds": 1.5,
    "bench_pid": 200,
    "coordinator_pid": 300,
    "probe_pid": 400,
}


def test_parse_reads_headers_and_frames() -> None:
    samples = list(perf_phases.parse(SCRIPT.splitlines()))
    assert [(sample.pid, sample.time) for sample in samples] == [
        (200, 100.05),
        (0, 100.06),
        (300, 100.7),
        (300, 100.8),
        (300, 100.9),
        (300, 101.0),
        (400, 101.5),
    ]
    assert samples[1].frames == ["[k]pv_native_safe_halt", "[k]default_idle"]
    assert samples[2].frames[1] == "$s7NIOCore32NIOThrowingAsyncSequenceProducerV4nextyF"


def test_category_is_the_first_known_frame_from_the_sampled_function_out() -> None:
    samples = list(perf_phases.parse(SCRIPT.splitlines()))
    own, stack, runtime, kernel = perf_phases.CATEGORIES
    # Retained inside NIO's sequence, which the coordinator's session handler called: the stack's.
    assert perf_phases.category(samples[2].frames) == stack
    # SQLite is the coordinator's own work (its durable state).
    assert perf_phases.category(samples[3].frames) == own
    assert perf_phases.category(samples[4].frames) == kernel
    assert perf_phases.category(samples[5].frames) == runtime


def test_module_is_read_from_the_mangled_name() -> None:
    assert perf_phases.module("$s11RuntimeCore10MembershipV11onHeartbeatyyF") == "RuntimeCore"
    assert perf_phases.module("$s12GRPCProtobuf18ProtobufSerializerV9serializeyyF") == "GRPCProtobuf"
    assert perf_phases.module("swift_retain") is None
    own, stack, _, _ = perf_phases.CATEGORIES
    assert perf_phases.category(["$s4GRDB8DatabaseC7executeyyF"]) == own
    assert perf_phases.category(["$s8NIOHPACK13HPACKDecoderV6decodeyyF"]) == stack
    assert perf_phases.category(["$s26GRPCNIOTransportHTTP2Posix6ClientV3runyyF"]) == stack
    # A name merely containing a module's (NIO's `Storage` type) is not that module.
    assert perf_phases.category(["$s7NIOCore32NIOThrowingAsyncSequenceProducerV7StorageV4nextyF"]) == stack


def test_a_connection_up_before_listening_gives_an_empty_phase() -> None:
    spans = perf_phases.phases({**RUN, "first_connection_up_after_listening_seconds": -0.05})
    assert spans[2].start == spans[2].end == pytest.approx(100.6)
    assert spans[3].start == pytest.approx(100.6) and spans[3].end == pytest.approx(101.0)


def test_phases_start_at_the_kill() -> None:
    spans = perf_phases.phases(RUN)
    bounds = [(span.start, span.end) for span in spans]
    expected = [(100.0, 100.1), (100.1, 100.6), (100.6, 100.7), (100.7, 101.0), (101.0, 101.5), (101.5, 102.5)]
    assert bounds == [pytest.approx(pair) for pair in expected]


def test_table_gives_each_process_cores_per_phase() -> None:
    samples = perf_phases.parse(SCRIPT.splitlines())
    # At 10 samples a second a core: one sample in a 0.1 s phase is one core.
    rows = {line.split(" | ")[0].lstrip("| "): line for line in perf_phases.table(samples, RUN, 10, 2).splitlines()}
    gone = rows["kill → restart"].split(" | ")
    assert gone[1] == "0.100"
    # swarm, coordinator, probe, other, idle
    assert gone[2:7] == ["1.00", "0.00", "0.00", "0.00", "1.00"]
    back = rows["→ first session back"].split(" | ")
    # Three coordinator samples in 0.3 s: one core, a third each own code (SQLite), stack, kernel.
    assert back[3] == "1.00"
    assert back[7].rstrip(" |") == "33 % / 33 % / 0 % / 33 %"
    # The probe's sample is in the second after every worker was back.
    assert rows["the second after"].split(" | ")[4] == "0.10"
