"""``DatasetRegistry``: registering datasets with the coordinator (the reference's API)."""

from __future__ import annotations

from types import TracebackType

from dtruntime import validation
from dtruntime.client import CoordinatorClient, DatasetInfo
from dtruntime.errors import InvalidArgument


class DatasetRegistry:
    """Registers datasets with the coordinator.

    >>> registry = DatasetRegistry()   # $DTR_COORDINATOR, then localhost:50051
    >>> registry.register("imagenet", total_samples=1_281_167, shard_size=10_000, shuffle=True).num_shards
    129

    Shards are contiguous ranges of ``shard_size`` sample indices (the last one shorter). Each epoch visits them in
    its own deterministic order, and the samples of each shard too, when ``shuffle`` is set.

    Args:
        address: the coordinator's gRPC address; defaults to ``$DTR_COORDINATOR``, then ``localhost:50051``.
        token: the coordinator's ``--worker-token``, sent with every call; defaults to ``$DTR_WORKER_TOKEN``.
        ca_file: for a coordinator that serves TLS (``--tls-cert``): the PEM file of the CA that signed its
            certificate; defaults to ``$DTR_CA_FILE``. Without one the connection is plaintext.
        timeout: seconds each call to the coordinator may take (default 10; barriers have their own timeout).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 10.0,
        token: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self._client = CoordinatorClient(address, timeout=timeout, token=token, ca_file=ca_file)

    def register(
        self, name: str, total_samples: int, shard_size: int, shuffle: bool = False, seed: int = 0
    ) -> DatasetInfo:
        """Registers a dataset; the same spec again is a no-op, another spec under the same name is refused.

        ``name`` must be 1-128 characters of ``[A-Za-z0-9._-]`` (not ``.`` or ``..``): it is checked here, before
        anything is sent, and refused with the ``InvalidArgument`` the coordinator would raise (its ``code`` is None:
        no call was made)."""
        try:
            validation.name(name)
        except ValueError as error:
            raise InvalidArgument(str(error)) from None
        return self._client.register_dataset(name, total_samples, shard_size, shuffle=shuffle, seed=seed)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> DatasetRegistry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
