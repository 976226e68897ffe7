"""Counted calls: every API call that reaches a service, by action name
(``DescribeDBProxies``, ``UpdateFunctionConfiguration``), read with
``GET /awsrules/calls`` and cleared with ``DELETE /awsrules/calls``."""

import threading
from collections import Counter

from moto.core.responses import BaseResponse

_lock = threading.Lock()
_counts: Counter = Counter()


def counts() -> dict:
    with _lock:
        return dict(_counts)


def clear() -> None:
    with _lock:
        _counts.clear()


def install() -> None:
    original = BaseResponse.call_action

    def call_action(self):  # type: ignore[no-untyped-def]
        try:
            action = self._get_action()
        except Exception:  # an action moto cannot name still gets its answer
            action = None
        with _lock:
            _counts[action or f"{self.method} {self.path}"] += 1
        return original(self)

    BaseResponse.call_action = call_action
