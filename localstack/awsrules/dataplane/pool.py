"""A proxy's pool of DB connections to one target, as RDS Proxy keeps it.

At most `limit()` connections are open to the DB (MaxConnectionsPercent of
the DB's max_connections); a client that finds none to borrow waits up to
ConnectionBorrowTimeout and then fails. A connection a client is done
with is reset and kept idle for the next client of the same user and
database, up to `idle_limit()` of them (MaxIdleConnectionsPercent); past
that it is closed.

The emulator's proxy lends a connection for a client's whole session
(what RDS Proxy does for a pinned session), not per transaction: so each
client holds one DB connection while it is connected. Said in
localstack/README.md."""

import threading
import time
from typing import Callable


class BorrowTimeout(Exception):
    """No connection could be lent within the borrow timeout."""


class Pool:
    def __init__(self, limit: Callable[[], int], idle_limit: Callable[[], int]):
        self.limit, self.idle_limit = limit, idle_limit
        self._cond = threading.Condition()
        self._idle: list = []  # (key, connection), oldest first
        self.open = 0  # idle and lent
        self.lent = 0
        self.pinned = 0

    def borrow(self, key, deadline: float):
        """An idle connection of `key`, or None: then the caller may open a
        new one (the slot is taken; `opened` or `failed` must follow).
        Raises BorrowTimeout at `deadline`."""
        with self._cond:
            while True:
                for i, (k, conn) in enumerate(self._idle):
                    if k == key:
                        del self._idle[i]
                        self.lent += 1
                        return conn
                if self.open < self.limit():
                    self.open += 1
                    self.lent += 1
                    return None
                if self._idle:
                    # Full, but an idle connection of another user can make room.
                    _, conn = self._idle.pop(0)
                    _close(conn)
                    self.open -= 1
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BorrowTimeout()
                self._cond.wait(min(left, 0.5))

    def failed(self) -> None:
        """A slot `borrow` gave was not used (the login failed)."""
        with self._cond:
            self.open -= 1
            self.lent -= 1
            self._cond.notify_all()

    def give_back(self, key, conn, reusable: bool) -> None:
        with self._cond:
            self.lent -= 1
            if reusable and len(self._idle) < self.idle_limit():
                self._idle.append((key, conn))
            else:
                _close(conn)
                self.open -= 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            for _, conn in self._idle:
                _close(conn)
            self.open -= len(self._idle)
            self._idle.clear()


def _close(conn) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing what is already gone
        pass


def share(percent, of: int) -> int:
    """`percent` of `of` connections, at least one when percent > 0."""
    percent = float(percent or 0)
    if percent <= 0:
        return 0
    return max(1, int(of * percent / 100))
