"""The Python epoch shuffle matches the coordinator's bit for bit, on the vectors the Swift tests also check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dtruntime import shuffle

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "testdata" / "shuffle_vectors.json").read_text())


def test_mix_matches():
    for state, expected in VECTORS["mix"].items():
        assert shuffle.mix(int(state)) == int(expected)
    assert shuffle.mix(0) == 0xE220A8397B1DCDAF, "Vigna's reference splitmix64 output for seed 0"


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[case["name"] for case in VECTORS["cases"]])
def test_shard_and_sample_orders_match(case):
    shard_count = -(-case["total_samples"] // case["shard_size"])
    order = shuffle.shard_order(shard_count, case["seed"], case["epoch"], shuffle=case["shuffle"])
    assert order.tolist() == case["shard_order"]
    for shard, expected in case["samples"].items():
        start = int(shard) * case["shard_size"]
        end = min(start + case["shard_size"], case["total_samples"])
        seed = shuffle.sample_order_seed(case["seed"], case["epoch"], int(shard))
        assert shuffle.sample_order(start, end, seed, shuffle=case["shuffle"]).tolist() == expected


def test_orders_are_permutations():
    order = shuffle.sample_order(1000, 1500, 12345)
    assert sorted(order.tolist()) == list(range(1000, 1500))
    assert order.dtype == np.int64
    assert shuffle.sample_order(5, 9, 1, shuffle=False).tolist() == [5, 6, 7, 8]
