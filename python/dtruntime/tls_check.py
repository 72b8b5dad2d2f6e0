"""Why a coordinator that did not answer may be a TLS problem: gRPC reports a TLS coordinator reached in plaintext (or
a CA that did not sign its certificate) as plain UNAVAILABLE, the same as no coordinator at all. When a call ends so,
the client tries one TLS handshake of its own against the address and says what it found."""

from __future__ import annotations

import socket
import ssl

PROBE_TIMEOUT = 2.0
"""Seconds the probe's connection and handshake may take."""


def diagnose(address: str, roots: bytes | None) -> str | None:
    """What is wrong with TLS between this client and ``address`` (``host:port``), or None when the probe finds no
    TLS problem (nothing listens, the address is not ``host:port``, or TLS works as configured).

    ``roots`` are the CA certificates the client verifies with (None: it connects in plaintext).
    """
    target = _split(address)
    if target is None:
        return None
    host, port = target
    try:
        connection = socket.create_connection((host, port), timeout=PROBE_TIMEOUT)
    except OSError:
        return None  # nothing listens (or it is not reachable): not a TLS problem
    with connection:
        if roots is None:
            return _plaintext_against(connection, host, address)
        return _verified_against(connection, host, address, roots)


def _plaintext_against(connection: socket.socket, host: str, address: str) -> str | None:
    """This client speaks plaintext: a problem only if the coordinator completes a TLS handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asks whether it speaks TLS at all; nothing is sent after
    context.set_alpn_protocols(["h2"])
    try:
        with context.wrap_socket(connection, server_hostname=host):
            pass
    except (OSError, ValueError):
        return None
    return (
        f"coordinator at {address} serves TLS and this client connected in plaintext, so the TLS handshake failed: "
        "pass ca_file= (the PEM file of the CA that signed the coordinator's --tls-cert) or set DTR_CA_FILE"
    )


def _verified_against(connection: socket.socket, host: str, address: str, roots: bytes) -> str | None:
    """This client speaks TLS, verifying with ``roots``: a problem if the handshake or the verification fails."""
    try:
        context = ssl.create_default_context(cadata=roots.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError) as error:
        return f"the CA file (ca_file= or DTR_CA_FILE) is not a PEM certificate ({error}): give the CA's PEM file"
    context.set_alpn_protocols(["h2"])
    try:
        with context.wrap_socket(connection, server_hostname=host):
            return None
    except ssl.SSLCertVerificationError as error:
        return (
            f"TLS handshake with the coordinator at {address} failed: its certificate does not verify against the CA "
            f"in ca_file/DTR_CA_FILE ({error.verify_message}): give the CA that signed its --tls-cert, and dial an "
            "address the certificate names"
        )
    except (OSError, ValueError) as error:
        return (
            f"TLS handshake with the coordinator at {address} failed ({error}): it does not seem to serve TLS; drop "
            "ca_file/DTR_CA_FILE, or start it with --tls-cert and --tls-key"
        )


def _split(address: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` as a socket address; None for anything else (gRPC's ``dns:``, ``unix:`` ...)."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or not host or "/" in host:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)
