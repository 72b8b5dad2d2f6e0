"""Barrier calls of every client in this process to one coordinator, carried over one BarrierStream.

A unary BarrierSync costs each waiter a reply of its own: an HTTP/2 stream opened and closed, and grpcio's Python
machinery run once per reply, under the GIL. The hub sends each arrival as one message on a stream it keeps open, and
the coordinator answers every call a barrier generation releases with one message. Arrivals that come together leave
together too: each message carries every arrival waiting to be sent. Releasing the many workers of one process thus
costs a message or two plus a lock release per waiting thread. The semantics of each call are BarrierSync's.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator

import grpc

from dtruntime.errors import DeadlineExceeded, DtrError, from_status, rate_limit_wait, translate
from dtruntime.v1 import coordinator_pb2 as pb
from dtruntime.v1 import coordinator_pb2_grpc as pb_grpc


class _EndOfStream:
    """Put in a stream's request queue: the request iterator ends there."""


_END = _EndOfStream()
_Requests = queue.SimpleQueue[pb.BarrierStreamCall | _EndOfStream]
# The largest stream message: every coordinator accepts it (its limit is 1 MiB above its --barrier-max-payload), so a
# message never ends the stream for the calls that share it. Arrivals over half of it go as unary BarrierSync calls.
MAX_MESSAGE_BYTES = 1 << 20
MAX_CALL_BYTES = MAX_MESSAGE_BYTES // 2
# A call's tag and length in the message, at most.
_FIELD_OVERHEAD = 8


class _Call:
    """One caller waiting for its answer: ``done`` is held until the reply (or an error) is in."""

    __slots__ = ("done", "error", "reply", "request")

    def __init__(self, request: pb.BarrierStreamCall) -> None:
        self.request = request
        self.reply: pb.BarrierStreamReply | None = None
        self.error: DtrError | None = None
        self.done = threading.Lock()
        self.done.acquire()

    def finish(self, reply: pb.BarrierStreamReply | None = None, error: DtrError | None = None) -> None:
        self.reply, self.error = reply, error
        self.done.release()


class _Stream:
    """One BarrierStream call: its outgoing queue and the calls sent on it that wait for an answer."""

    def __init__(self) -> None:
        self.requests: _Requests = queue.SimpleQueue()
        self.pending: dict[int, _Call] = {}


class BarrierHub:
    """Multiplexes the barrier calls of many threads (and many ``CoordinatorClient`` objects) over one stream.

    The stream opens on the first call and reopens after it breaks; calls in flight when it breaks fail with the
    stream's error (``CoordinatorUnavailable`` when the coordinator went away), as their unary calls would have.
    """

    def __init__(self, channel: grpc.Channel, address: str) -> None:
        self.address = address
        # A forked child cannot use its parent's hub (its threads did not come along): clients check this.
        self.pid = os.getpid()
        self._channel = channel
        self._stub = pb_grpc.CoordinatorStub(channel)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stream: _Stream | None = None
        self._closed = False

    def call(self, request: pb.BarrierSyncRequest, deadline: float) -> pb.BarrierSyncResponse:
        """Sends one arrival and waits up to ``deadline`` seconds for its release; raises its typed error."""
        call = _Call(pb.BarrierStreamCall(call_id=next(self._ids), arrival=request))
        with self._lock:
            if self._closed:
                raise DtrError("the barrier hub is closed: its clients were closed")
            stream = self._stream or self._open()
            stream.pending[call.request.call_id] = call
            stream.requests.put(call.request)
        if not call.done.acquire(timeout=deadline):
            with self._lock:
                abandoned = stream.pending.pop(call.request.call_id, None)
            if abandoned is None:
                call.done.acquire()  # the answer came in meanwhile: it is being handed over
            else:
                raise DeadlineExceeded(
                    f"coordinator at {self.address} did not answer barrier {request.name!r} within {deadline:g} s: "
                    "is it overloaded or stalled?",
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                )
        if call.error is not None:
            raise call.error
        reply = call.reply
        assert reply is not None, "a call is finished with a reply or an error"
        if reply.HasField("response"):
            return reply.response
        # The reply carries what BarrierSync's trailing metadata would: dtr-reason and its details.
        raise from_status(reply.code, reply.message, self.address, dict(reply.metadata))

    def close(self) -> None:
        """Ends the stream and closes the channel (no client uses the hub any more); calls still waiting fail."""
        with self._lock:
            self._closed = True
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.requests.put(_END)
        self._channel.close()

    def _open(self) -> _Stream:
        stream = _Stream()
        self._stream = stream
        threading.Thread(target=self._read, args=(stream,), name="dtr-barrier-hub", daemon=True).start()
        return stream

    def _read(self, stream: _Stream) -> None:
        """Delivers the replies of ``stream``; when it breaks, fails its calls (or, refused by the coordinator's rate
        limit before it read anything, sends them again once the limit allows)."""
        while True:
            error: DtrError | None = None
            wait = None
            try:
                for reply in self._stub.BarrierStream(_batches(stream.requests)):
                    with self._lock:
                        answered = [stream.pending.pop(call_id, None) for call_id in reply.call_ids]
                    for call in answered:
                        if call is not None:
                            call.finish(reply)
            except grpc.RpcError as failure:
                error, wait = translate(failure, self.address), rate_limit_wait(failure)
            except Exception as failure:  # e.g. the channel was closed under it: nothing must wait for this thread
                error = DtrError(f"the barrier stream to {self.address} failed: {failure!r}")
            with self._lock:
                if wait is not None and stream.pending and not self._closed:
                    # Refused before the coordinator read a single arrival: resending them changes nothing else.
                    resend = sorted(stream.pending.items())
                    stream.requests.put(_END)  # ends the refused call's request iterator
                    stream.requests = queue.SimpleQueue()
                    for _, call in resend:
                        stream.requests.put(call.request)
                else:
                    if self._stream is stream:
                        self._stream = None
                    stream.requests.put(_END)  # lets grpcio's thread reading the requests of the broken call end
                    calls, stream.pending = list(stream.pending.values()), {}
                    break
            time.sleep(wait)
        failed = error or DtrError(f"coordinator at {self.address} ended the barrier stream")
        for call in calls:
            call.finish(error=failed)


def _batches(requests: _Requests) -> Iterator[pb.BarrierStreamRequest]:
    """The stream's messages: each carries the arrivals waiting when grpcio asks for the next one (up to
    ``MAX_MESSAGE_BYTES``), so arrivals that come together while a message is on its way leave together in the next."""
    held: pb.BarrierStreamCall | _EndOfStream | None = None
    while True:
        first = held if held is not None else requests.get()
        held = None
        if isinstance(first, _EndOfStream):
            return
        calls, size = [first], first.ByteSize() + _FIELD_OVERHEAD
        while True:
            try:
                call = requests.get_nowait()
            except queue.Empty:
                break
            if isinstance(call, _EndOfStream) or size + call.ByteSize() + _FIELD_OVERHEAD > MAX_MESSAGE_BYTES:
                held = call
                break
            calls.append(call)
            size += call.ByteSize() + _FIELD_OVERHEAD
        yield pb.BarrierStreamRequest(calls=calls)


HubKey = tuple[str, str | None, bytes | None]
"""A coordinator as the hubs know it: its address, the token and the CA certificates used to reach it."""


class HubRegistry:
    """One hub per coordinator (address and credentials) for the whole process, counted by the clients using it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hubs: dict[HubKey, tuple[BarrierHub, int]] = {}

    def acquire(self, key: HubKey, open_channel: Callable[[], grpc.Channel], address: str) -> BarrierHub:
        with self._lock:
            hub, users = self._hubs.get(key) or (BarrierHub(open_channel(), address), 0)
            self._hubs[key] = (hub, users + 1)
            return hub

    def forget_all(self) -> None:
        """Starts over without closing anything (in a forked child, where the hubs' threads do not exist)."""
        self._lock = threading.Lock()
        self._hubs = {}

    def release(self, key: HubKey) -> None:
        with self._lock:
            hub, users = self._hubs[key]
            if users > 1:
                self._hubs[key] = (hub, users - 1)
                return
            del self._hubs[key]
        hub.close()


HUBS = HubRegistry()
# A forked child starts with no hubs: its parent's have no threads in it, and their locks may be held.
os.register_at_fork(after_in_child=HUBS.forget_all)
