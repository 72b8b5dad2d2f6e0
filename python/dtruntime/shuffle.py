"""Deterministic per-epoch orders, bit-identical to the coordinator's (docs/SHARDING.md).

- ``mix(x)``: one SplitMix64 step from state ``x``.
- Shard order of epoch ``e``: a keyed Feistel permutation of ``0..shards-1`` with cycle walking, seeded with
  ``s = mix(mix(seed ^ SHARD) ^ e)``: ``bits`` is the smallest even number >= 2 with ``2**bits >= shards``, ``half =
  bits // 2``, round keys ``k_r = mix(s ^ r)`` for r in 0..3; a pass splits ``x`` into ``L = x >> half`` and ``R = x &
  (2**half - 1)`` and four times sets ``(L, R) = (R, L ^ (mix(R ^ k_r) & (2**half - 1)))``; the shard at position
  ``p`` is the first of ``pass(p), pass(pass(p)), ...`` below ``shards``.
- Sample order of shard ``k`` in epoch ``e``: Fisher-Yates over the shard's indices driven by
  ``SplitMix64(mix(mix(mix(seed ^ SAMPLE) ^ e) ^ k))`` (the coordinator sends it as the shard's ``sample_seed``).
- Fisher-Yates: for ``i`` from ``n-1`` down to ``1``, ``j = next() % (i+1)``, swap elements ``i`` and ``j``.
"""

from __future__ import annotations

import numpy as np

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
SHARD_DOMAIN = 0x6474722E73687264  # "dtr.shrd"
SAMPLE_DOMAIN = 0x6474722E736D706C  # "dtr.smpl"


def mix(x: int) -> int:
    """One SplitMix64 step from state ``x`` (the first output of a generator seeded with ``x``)."""
    z = (x + GAMMA) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def shard_order_seed(seed: int, epoch: int) -> int:
    return mix(mix(seed ^ SHARD_DOMAIN) ^ (epoch & MASK))


def sample_order_seed(seed: int, epoch: int, shard: int) -> int:
    return mix(mix(mix(seed ^ SAMPLE_DOMAIN) ^ (epoch & MASK)) ^ (shard & MASK))


def _mix_array(x: np.ndarray) -> np.ndarray:
    """``mix`` of every element of a uint64 array."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mixed: np.ndarray = z ^ (z >> np.uint64(31))
        return mixed


def _feistel(x: np.ndarray, keys: list[int], half: int) -> np.ndarray:
    """One pass of the shard-order Feistel network over every element of ``x``."""
    mask = np.uint64((1 << half) - 1)
    left, right = x >> np.uint64(half), x & mask
    for key in keys:
        left, right = right, left ^ (_mix_array(right ^ np.uint64(key)) & mask)
    passed: np.ndarray = (left << np.uint64(half)) | right
    return passed


def _outputs(seed: int, count: int) -> np.ndarray:
    """The first ``count`` outputs of ``SplitMix64(seed)``, computed at once (output k mixes seed + (k+1)·gamma)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(1, count + 1, dtype=np.uint64) * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        outputs: np.ndarray = z ^ (z >> np.uint64(31))
        return outputs


def permute(values: np.ndarray, seed: int) -> np.ndarray:
    """A Fisher-Yates shuffle of ``values`` (a new array) with the specified generator."""
    items = values.tolist()
    n = len(items)
    if n > 1:
        # For i = n-1 .. 1, the k-th draw (k = n-1-i) picks j = draw % (i + 1).
        picks = (_outputs(seed, n - 1) % np.arange(n, 1, -1, dtype=np.uint64)).tolist()
        for i, j in zip(range(n - 1, 0, -1), picks, strict=True):
            items[i], items[j] = items[j], items[i]
    return np.asarray(items, dtype=np.int64)


def shard_order(shard_count: int, seed: int, epoch: int, *, shuffle: bool = True) -> np.ndarray:
    """The shards of a dataset in the order epoch ``epoch`` visits them."""
    if not shuffle or shard_count <= 1:
        return np.arange(shard_count, dtype=np.int64)
    bits = 2
    while (1 << bits) < shard_count:
        bits += 2
    order_seed = shard_order_seed(seed, epoch)
    keys = [mix(order_seed ^ r) for r in range(4)]
    x = _feistel(np.arange(shard_count, dtype=np.uint64), keys, bits // 2)
    while (outside := x >= np.uint64(shard_count)).any():
        x[outside] = _feistel(x[outside], keys, bits // 2)
    return x.astype(np.int64)


def sample_order(start: int, end: int, sample_seed: int, *, shuffle: bool = True) -> np.ndarray:
    """The sample indices ``start..end-1`` of one shard in the order its epoch visits them."""
    order = np.arange(start, end, dtype=np.int64)
    return permute(order, sample_seed) if shuffle else order
