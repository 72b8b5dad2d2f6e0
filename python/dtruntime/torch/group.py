"""``Group``: the default ``torch.distributed`` process group of one membership epoch, and how to abort it.

Aborting matters for elastic training. When a peer dies in the middle of a gloo collective, only the ranks that talk
to it directly get an error (its sockets were closed); the others wait for data from those ranks, which will never
come, until the collective's timeout. torch 1.13 has no way to abort a gloo process group, and destroying it only
closes its connections once every reference to it is gone (DDP, its reducer, pending work, a traceback...). So a
group remembers the TCP connections its creation opened, and :meth:`Group.abort` shuts them down (``shutdown(2)``,
which ends a connection for every descriptor of it, including the copies forked data loader workers inherited): every
collective in flight on this rank fails at once, and so does every peer's that waits on this rank. One rank's error
thus reaches every rank within milliseconds.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import threading
import weakref
from collections.abc import Iterator
from types import TracebackType

import torch.distributed as dist

from dtruntime.torch.rendezvous import Meeting

log = logging.getLogger("dtruntime")

_Address = tuple[str, int]
_Link = tuple[_Address, _Address | None]


# Groups whose connections a forked child closes (see _close_in_child). Process-wide because fork is.
_LIVE: weakref.WeakSet[Group] = weakref.WeakSet()


def _close_in_child() -> None:
    """In a child just forked (a data loader's worker, a checkpoint writer): closes its copies of the process groups'
    connections. The child never uses them, and while it holds them a connection outlives its process: when this
    process dies, its peers would see no error until the child is gone too."""
    for group in list(_LIVE):
        for fd, link in group._links.items():
            with contextlib.suppress(OSError), _borrowed(fd) as sock:
                if sock is not None and _describe(sock) == link:
                    os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class Group:
    """The default process group formed at one membership epoch: ``rank``, ``world_size``, ``membership_epoch`` and
    the store it met at. Leaving ``with`` (or :meth:`destroy`) destroys the process group."""

    def __init__(self, meeting: Meeting, backend: str, links: dict[int, _Link]) -> None:
        self.rank = meeting.rank
        self.world_size = meeting.world_size
        self.membership_epoch = meeting.membership_epoch
        self.backend = backend
        self.store_address = f"{meeting.store_host}:{meeting.store_port}"
        self.store: dist.Store | None = meeting.store
        self._links = links
        self._lock = threading.Lock()
        self._aborted = False
        self._destroyed = False
        _LIVE.add(self)

    @property
    def aborted(self) -> bool:
        """True once :meth:`abort` ran: every collective of this group fails from then on."""
        with self._lock:
            return self._aborted

    @property
    def connections(self) -> int:
        """How many TCP connections the process group's creation opened (what :meth:`abort` shuts down)."""
        return len(self._links)

    def abort(self) -> None:
        """Makes every collective of this group fail, here and on the peers waiting for this rank (see the module
        docstring). Safe from any thread, and more than once."""
        with self._lock:
            if self._aborted:
                return
            self._aborted = True
        for fd, link in self._links.items():
            _shutdown(fd, link)

    def destroy(self) -> None:
        """Destroys the default process group (if it is still this one's)."""
        with self._lock:
            if self._destroyed:
                return
            self._destroyed = True
        _LIVE.discard(self)
        if dist.is_initialized():
            dist.destroy_process_group()
        self.store = None

    def __enter__(self) -> Group:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()

    def __repr__(self) -> str:
        return (
            f"Group(rank={self.rank}, world_size={self.world_size}, membership_epoch={self.membership_epoch}, "
            f"backend={self.backend!r}, store={self.store_address})"
        )


def form(meeting: Meeting, backend: str, timeout: float, coordinator: str) -> Group:
    """Initialises torch's default process group from a meeting, remembering the connections it opens."""
    if dist.is_initialized():
        raise RuntimeError(
            "torch.distributed's default process group is already initialised: dtruntime.torch forms it itself "
            "(call dist.destroy_process_group() first, or use the Group you got before)"
        )
    before = _tcp_links()
    dist.init_process_group(
        backend,
        store=dist.PrefixStore("pg", meeting.store),
        rank=meeting.rank,
        world_size=meeting.world_size,
        timeout=datetime.timedelta(seconds=timeout),
    )
    excluded = {meeting.store_port, *_ports_of(coordinator)}
    links = {
        fd: link
        for fd, link in _tcp_links().items()
        if before.get(fd) != link and link[0][1] not in excluded and (link[1] is None or link[1][1] not in excluded)
    }
    return Group(meeting, backend, links)


def _ports_of(address: str) -> set[int]:
    port = address.rpartition(":")[2]
    return {int(port)} if port.isdigit() else set()


def _tcp_links() -> dict[int, _Link]:
    """This process's TCP sockets, by descriptor: (local address, peer address or None). Empty where /proc is not."""
    links: dict[int, _Link] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            with contextlib.suppress(OSError):
                if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                    continue
                with _borrowed(fd) as sock:
                    if sock is not None and sock.type == socket.SOCK_STREAM:
                        links[fd] = _describe(sock)
    return links


def _describe(sock: socket.socket) -> _Link:
    local = sock.getsockname()[:2]
    try:
        peer: _Address | None = sock.getpeername()[:2]
    except OSError:
        peer = None
    return (local, peer)


@contextlib.contextmanager
def _borrowed(fd: int) -> Iterator[socket.socket | None]:
    """A socket object on a duplicate of ``fd`` (closing it leaves ``fd`` open); None for other address families."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        yield None
        return
    try:
        yield sock if sock.family in (socket.AF_INET, socket.AF_INET6) else None
    finally:
        sock.close()


def _shutdown(fd: int, link: _Link) -> None:
    """Shuts the connection down if ``fd`` still is that connection (the descriptor may have been closed and reused
    for another socket since: its addresses then differ, and it is left alone)."""
    with contextlib.suppress(OSError), _borrowed(fd) as sock:
        if sock is not None and _describe(sock) == link:
            sock.shutdown(socket.SHUT_RDWR)
