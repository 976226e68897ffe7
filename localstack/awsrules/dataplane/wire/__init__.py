"""The MySQL (mysql.py) and PostgreSQL (pg.py) wire protocols, as RDS Proxy
speaks them: the proxy is a server to its client and a client to the real
database, and relays the session between the two without re-encoding it.
Both modules have the same shape: ClientConnection (the server side), login()
-> BackendConnection (the client side), reset() before a pooled connection
serves another client, and relay().

What the two share lives here: a socket with a read buffer of our own, and the
relay loop, which passes the server's bytes through as they come and the
client's one whole message at a time, so that the caller can look at each.
"""

import select
import socket
import ssl
import time
from typing import Callable, Optional

# How relay() ends.
QUIT = "quit"  # the client said goodbye: the backend session is clean, back to the pool
IDLE = "idle"  # nothing moved for idle_timeout seconds: close the client
CLIENT_CLOSED = "client_closed"  # the client went away without a goodbye
BACKEND_CLOSED = "backend_closed"  # the server went away: close the client


class BufferedSocket:
    """Blocking reads of exactly n bytes (logins), non-blocking `fill()` (relay).

    `exact` reads no byte past the ones asked for: a client may send its TLS
    ClientHello right behind its plain-text request for TLS (MySQL's do), and
    those bytes must stay in the kernel for the TLS layer to read."""

    def __init__(self, sock, exact: bool = False):
        self.sock, self.buffer, self.exact = sock, bytearray(), exact

    def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            missing = n - len(self.buffer)
            chunk = self.sock.recv(missing if self.exact else max(65536, missing))
            if not chunk:
                raise ConnectionResetError("the peer closed the connection")
            self.buffer += chunk
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def fill(self) -> bool:
        """Non-blocking: takes in what has come. False at the end of the stream."""
        while True:
            chunk = _receive(self.sock)
            if chunk is None:
                return True
            if not chunk:
                return False
            self.buffer += chunk
            if not self.tls_pending():  # TLS may hold more than one recv() gave
                return True

    def tls_pending(self) -> bool:
        """Bytes that TLS decrypted and select() cannot see."""
        return isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0


def close_quietly(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def pipe(client: BufferedSocket, backend_sock, message_length: Callable[[bytearray], Optional[int]],
         on_message: Callable[[bytes], Optional[tuple]], idle_timeout: Optional[float]) -> str:
    """Relays until one side ends. `message_length(buffer)` is the length of
    the first whole client message in `buffer`, or None while it is not all
    there; `on_message(raw)` returns (bytes for the backend, bytes for the
    client), or None when the client ended the session.

    One thread, non-blocking sockets and bounded buffers: a blocking send to
    one side must never keep us from reading the other, or a client that
    pipelines (psycopg's executemany) could deadlock with the server; and a TLS
    socket must not be read and written by two threads at once. Idle means
    that no byte moved either way, so a query that runs silently for longer
    counts as idle too."""
    csock = client.sock
    to_backend, to_client = bytearray(), bytearray()
    last_moved = time.monotonic()
    csock.setblocking(False)
    backend_sock.setblocking(False)
    try:
        while True:
            while len(to_backend) < _HIGH_WATER:
                length = message_length(client.buffer)
                if length is None:
                    break
                raw = bytes(client.buffer[:length])
                del client.buffer[:length]
                answer = on_message(raw)
                if answer is None:
                    return QUIT if _flush(backend_sock, to_backend) else BACKEND_CLOSED
                to_backend += answer[0]
                to_client += answer[1]
            readers = [csock] if len(to_backend) < _HIGH_WATER else []
            if len(to_client) < _HIGH_WATER:
                readers.append(backend_sock)
            writers = [sock for sock, out in ((backend_sock, to_backend), (csock, to_client)) if out]
            tls_pending = bool(readers) and readers[0] is csock and client.tls_pending()
            wait = None if idle_timeout is None else max(0.0, last_moved + idle_timeout - time.monotonic())
            ready, writable, _ = select.select(readers, writers, [], 0 if tls_pending else wait)
            if not (ready or writable or tls_pending):
                if wait is not None and time.monotonic() >= last_moved + idle_timeout:
                    return IDLE
                continue
            last_moved = time.monotonic()
            if backend_sock in ready:
                data = _receive(backend_sock)
                if data == b"":
                    _flush(csock, to_client)  # the server's last words, a FATAL error say
                    return BACKEND_CLOSED
                to_client += data or b""
            if (csock in ready or tls_pending) and not client.fill():
                return CLIENT_CLOSED
            if backend_sock in writable and not _send_some(backend_sock, to_backend):
                return BACKEND_CLOSED
            if csock in writable and not _send_some(csock, to_client):
                return CLIENT_CLOSED
    finally:
        for sock in (csock, backend_sock):
            try:
                sock.setblocking(True)
            except OSError:
                pass


_HIGH_WATER = 1 << 20  # bytes queued for one side before we stop reading the other
_NOT_YET = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _receive(sock) -> Optional[bytes]:
    """b"" at the end of the stream (or an error), None when nothing came yet."""
    try:
        return sock.recv(65536)
    except _NOT_YET:
        return None
    except OSError:
        return b""


def _send_some(sock, out: bytearray) -> bool:
    """Sends what the socket takes now; False when the peer is gone. A retry
    after SSLWantWrite passes the same bytes again, or more: as TLS requires."""
    try:
        del out[:sock.send(out[:_HIGH_WATER])]
    except _NOT_YET:
        pass
    except OSError:
        return False
    return True


def _flush(sock, out: bytearray, timeout: float = 5.0) -> bool:
    try:
        sock.settimeout(timeout)
        sock.sendall(out)
        return True
    except OSError:
        return False
