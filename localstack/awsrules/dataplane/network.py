"""Who may reach what, inside the emulated VPCs.

Every name a function can connect to (a DB's endpoint, a proxy's, a proxy
endpoint's) is registered here with where it listens on this machine and
the rule that decides who may reach it. A running invocation is a
`Caller`, with a source address of its own in 127.0.0.0/8: its child
process asks `resolve` for each name it looks up, and binds its sockets to
that address, so that a listener can tell which function is calling
(`caller_by_ip`) and apply the same rule again when the connection comes.
"""

import itertools
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

_lock = threading.Lock()
# The emulator's own address (control.py notes it from the first request):
# where a function's runtime asks for names.
control_url: Optional[str] = None


@dataclass
class Caller:
    """One running invocation of a function, as the network sees it."""

    invocation_id: str
    source_ip: str
    function_name: str
    function_arn: str
    account_id: str
    region: str
    role_arn: str
    vpc_id: Optional[str] = None
    subnet_ids: list = field(default_factory=list)
    security_group_ids: list = field(default_factory=list)


@dataclass
class Endpoint:
    """A name that listens. `local_port` may start what listens (a DB's
    server on first need), so it is a function. `admits(caller)` answers
    None when the caller may connect, else why not (in words)."""

    host: str
    port: int
    local_port: Callable[[], int]
    admits: Callable[[Caller], Optional[str]]
    kind: str = "endpoint"


@dataclass
class Answer:
    """What `resolve` found: `local` (connect to 127.0.0.1:port),
    `blocked` (the name exists but the network drops the caller's packets:
    a connect times out), or `unknown` (no such name: DNS fails)."""

    kind: str
    port: int = 0
    why: str = ""


_endpoints: dict = {}  # (host lower case, port) -> Endpoint
# Functions (caller, host, port) -> Endpoint | None that find names not
# registered: the emulated DBs and proxies, looked up in moto's models when
# asked, so that nothing has to be kept in step with creates and deletes.
_finders: list = []
_callers: dict = {}  # source ip -> Caller
_by_invocation: dict = {}  # invocation id -> Caller
_next_ip = itertools.count(1)


def register(endpoint: Endpoint) -> None:
    with _lock:
        _endpoints[(endpoint.host.lower(), int(endpoint.port))] = endpoint


def unregister(host: str, port: int) -> None:
    with _lock:
        _endpoints.pop((host.lower(), int(port)), None)


def add_finder(finder: Callable) -> None:
    with _lock:
        if finder not in _finders:
            _finders.append(finder)


def endpoint(host: str, port: int, caller: Optional[Caller] = None) -> Optional[Endpoint]:
    with _lock:
        found = _endpoints.get((host.lower(), int(port)))
        finders = list(_finders)
    for finder in finders:
        if found is not None:
            break
        found = finder(caller, host, int(port))
    return found


def names() -> list:
    """Every registered (host, port)."""
    with _lock:
        return sorted(_endpoints)


def _source_ip() -> str:
    # 127.1.0.1 upwards: the whole of 127.0.0.0/8 is this machine's loopback.
    n = next(_next_ip)
    high, rest = divmod(n, 256 * 254)
    middle, low = divmod(rest, 254)
    return f"127.{1 + high % 254}.{middle}.{1 + low}"


def new_caller(**fields) -> Caller:
    """Registers a running invocation; `fields` as `Caller`'s, without the
    source address, which is chosen here."""
    with _lock:
        while True:
            ip = _source_ip()
            if ip not in _callers:
                break
        caller = Caller(source_ip=ip, **fields)
        _callers[ip] = caller
        _by_invocation[caller.invocation_id] = caller
        return caller


def forget(caller: Caller) -> None:
    with _lock:
        _callers.pop(caller.source_ip, None)
        _by_invocation.pop(caller.invocation_id, None)


def caller_by_ip(ip: str) -> Optional[Caller]:
    with _lock:
        return _callers.get(ip)


def caller_by_invocation(invocation_id: str) -> Optional[Caller]:
    with _lock:
        return _by_invocation.get(invocation_id)


def resolve(caller: Caller, host: str, port: int) -> Answer:
    """Where `caller` reaches `host:port`, by the endpoint's own rule."""
    ep = endpoint(host, port, caller)
    if ep is None:
        return Answer("unknown", why=f"{host}:{port} is not an emulated endpoint")
    why = ep.admits(caller)
    if why:
        return Answer("blocked", why=why)
    return Answer("local", port=ep.local_port())
