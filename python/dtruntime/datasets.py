"""``DatasetRegistry``: registering datasets with the coordinator (the reference's API)."""

from __future__ import annotations

from types import TracebackType

from dtruntime.client import CoordinatorClient, DatasetInfo


class DatasetRegistry:
    """Registers datasets with the coordinator.

    >>> registry = DatasetRegistry()   # $DTR_COORDINATOR, then localhost:50051
    >>> registry.register("imagenet", total_samples=1_281_167, shard_size=10_000, shuffle=True).num_shards
    129

    Shards are contiguous ranges of ``shard_size`` sample indices (the last one shorter). Each epoch visits them in
    its own deterministic order, and the samples of each shard too, when ``shuffle`` is set.
    """

    def __init__(self, address: str | None = None, *, timeout: float = 10.0) -> None:
        self._client = CoordinatorClient(address, timeout=timeout)

    def register(
        self, name: str, total_samples: int, shard_size: int, shuffle: bool = False, seed: int = 0
    ) -> DatasetInfo:
        """Registers a dataset; the same spec again is a no-op, another spec under the same name is refused."""
        return self._client.register_dataset(name, total_samples, shard_size, shuffle=shuffle, seed=seed)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> DatasetRegistry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
