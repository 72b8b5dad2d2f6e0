"""The SDK against the vectors it shares with the coordinator's Swift tests (testdata/): retention, checkpoint object
keys and name validation. The Swift side reads the same files (Tests/CheckpointTests/RetentionPolicyVectorTests.swift,
ObjectKeyVectorTests.swift, Tests/RuntimeCoreTests/ValidationVectorTests.swift), so both follow one rule."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

import pytest

from dtruntime import CheckpointManifest, CheckpointPart, StoreLocation, expired_checkpoints, validation
from dtruntime.checkpoint_keys import CheckpointKey, parse_checkpoint_id

TESTDATA = Path(__file__).resolve().parents[2] / "testdata"


def _vectors(name: str) -> dict[str, Any]:
    return json.loads((TESTDATA / name).read_text())


RETENTION = _vectors("retention_vectors.json")
KEYS = _vectors("object_key_vectors.json")
NAMES = _vectors("name_vectors.json")


# MARK: retention


def _manifest(checkpoint_id: str, metrics: dict[str, float | None], committed: int) -> CheckpointManifest:
    key = parse_checkpoint_id(checkpoint_id)
    assert key is not None, checkpoint_id
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=committed)
    return CheckpointManifest(
        checkpoint_id=checkpoint_id,
        task_id=key.task_id,
        step=key.step,
        epoch=0,
        world_size=1,
        parts=(CheckpointPart(0, key.part_key(0), 1, "0" * 64),),
        metrics={name: math.nan if value is None else value for name, value in metrics.items()},
        metadata={},
        created_at=moment,
        committed_at=moment,
        store=StoreLocation("file:///vectors"),
        manifest_key=key.manifest_key,
    )


@pytest.mark.parametrize("case", RETENTION["cases"], ids=[case["name"] for case in RETENTION["cases"]])
def test_retention_follows_the_shared_vectors(case):
    # The vectors list checkpoints in commit order: each one commits a second after the one before.
    manifests = [_manifest(row["id"], row["metrics"], index) for index, row in enumerate(case["committed"])]
    policy = case["policy"]
    expired = expired_checkpoints(
        reversed(manifests),  # the SDK orders by commit time itself
        keep_last=policy["keep_last"],
        keep_best=policy["keep_best"],
        metric=policy["metric"] or None,
        mode=policy["mode"],
    )
    assert [manifest.checkpoint_id for manifest in expired] == case["expired"]


def test_retention_vectors_cover_keep_last_zero_and_the_latest():
    names = [case["name"] for case in RETENTION["cases"]]
    assert any(case["policy"]["keep_last"] == 0 and not case["expired"] for case in RETENTION["cases"]), names
    for case in RETENTION["cases"]:
        if case["committed"]:
            assert case["committed"][-1]["id"] not in case["expired"], case["name"]


def test_negative_retention_is_refused():
    with pytest.raises(ValueError, match="keep_last and keep_best must be >= 0"):
        expired_checkpoints([], keep_last=-1)


# MARK: object keys


@pytest.mark.parametrize("row", KEYS["keys"], ids=[repr(row["key"])[:40] for row in KEYS["keys"]])
def test_object_keys_follow_the_shared_vectors(row):
    assert validation.is_object_key(row["key"]) is row["valid"]
    if row["valid"]:
        assert validation.object_key(row["key"]) == row["key"]
    else:
        with pytest.raises(ValueError, match="must be 1-512 bytes of /-separated"):
            validation.object_key(row["key"])


@pytest.mark.parametrize("row", KEYS["layout"], ids=[row["checkpoint_id"] for row in KEYS["layout"]])
def test_checkpoint_layout_follows_the_shared_vectors(row):
    key = CheckpointKey(row["task"], row["step"], row["attempt"])
    assert str(key) == row["checkpoint_id"]
    assert key.part_key(row["rank"]) == row["part_key"]
    assert key.manifest_key == row["manifest_key"]
    assert validation.is_object_key(key.part_key(row["rank"])) and validation.is_object_key(key.manifest_key)
    assert parse_checkpoint_id(row["checkpoint_id"]) == key


@pytest.mark.parametrize("row", KEYS["checkpoint_ids"], ids=[row["text"] for row in KEYS["checkpoint_ids"]])
def test_checkpoint_ids_parse_as_the_shared_vectors_say(row):
    parsed = parse_checkpoint_id(row["text"])
    assert (parsed is not None) is row["valid"]
    if parsed is not None:
        assert str(parsed) == row["text"]


# MARK: names


@pytest.mark.parametrize("row", NAMES["names"], ids=[repr(row["value"])[:40] for row in NAMES["names"]])
def test_names_follow_the_shared_vectors(row):
    value = row["value"]
    assert validation.is_name(value) is row["name"]
    assert validation.is_task_id(value) is row["task_id"]
    assert validation.is_metric_name(value) is row["metric_name"]


def test_the_limits_are_the_shared_ones():
    limits = NAMES["limits"]
    assert limits["max_metrics"] == validation.MAX_METRICS
    assert limits["max_metadata"] == validation.MAX_METADATA
    assert limits["max_metadata_value_bytes"] == validation.MAX_METADATA_VALUE_BYTES
    # And the checks enforce them: the limit passes, one more is refused.
    many = {f"m{i}": 1.0 for i in range(limits["max_metrics"])}
    assert len(validation.checkpoint_metrics(many)) == limits["max_metrics"]
    with pytest.raises(ValueError, match=f"at most {limits['max_metrics']} metrics"):
        validation.checkpoint_metrics({**many, "one-more": 1.0})
    entries = {f"k{i}": "v" for i in range(limits["max_metadata"])}
    assert len(validation.checkpoint_metadata(entries)) == limits["max_metadata"]
    with pytest.raises(ValueError, match=f"at most {limits['max_metadata']} metadata entries"):
        validation.checkpoint_metadata({**entries, "one-more": "v"})
    longest = "x" * limits["max_metadata_value_bytes"]
    assert validation.checkpoint_metadata({"k": longest}) == {"k": longest}
    with pytest.raises(ValueError, match=f"must be at most {limits['max_metadata_value_bytes']} bytes"):
        validation.checkpoint_metadata({"k": longest + "x"})
