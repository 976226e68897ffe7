"""The emulated VPC's network, as a function's code sees it.

Python imports this module by itself at start-up (the runtime directory is
on PYTHONPATH), before the function's code. Outside an emulated invocation
(no `_AWSRULES_INVOCATION`) it does nothing.

Names: the endpoints a function connects to (`db.abc.us-east-1.rds.amazonaws.com`,
a proxy's) are in no DNS. `socket.getaddrinfo` asks the emulator instead
(`GET /awsrules/resolve`), which answers by the network's rules:
  local    127.0.0.1 and the port where the endpoint listens here; the
           driver keeps the name it asked for (TLS SNI and verification);
  blocked  the network drops the packets, as a security group does: a
           connect to BLOCKED (an address only this module knows) waits
           the socket's timeout (30 s without one) and raises
           socket.timeout; a non-blocking one (asyncio) stays in flight;
  unknown  no such name: gaierror, as DNS fails.

Source address: each invocation has its own address in 127.0.0.0/8, so a
listener can tell which function calls. Every TCP connection to this
machine is bound to it first (the function's SDK calls to the emulator
too, which is harmless).

Standard library only; urllib is imported on the first lookup, not at
start-up.
"""

import errno
import os
import socket
import time

INVOCATION = os.environ.get("_AWSRULES_INVOCATION")
# TEST-NET-1 (RFC 5737): routed nowhere, so even a connect that escapes
# the patch below sees no answer.
BLOCKED = "192.0.2.1"
# How long a connect without a timeout waits for a SYN nobody answers.
NO_TIMEOUT_WAIT = 30.0

_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_answers = {}  # (host, port) -> the emulator's answer, for this invocation
_hole = []  # the listener that never answers, made on first need
_control = os.environ.get("_AWSRULES_CONTROL", "")
_source_ip = os.environ.get("_AWSRULES_SOURCE_IP")


def _own_host():
    rest = _control.split("://", 1)[-1].split("/", 1)[0]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0].lower()
    return rest.rsplit(":", 1)[0].lower() if ":" in rest else rest.lower()


OWN_HOST = _own_host()


def _emulated(host):
    name = host.lower().rstrip(".")
    return name.endswith(".amazonaws.com") and name != OWN_HOST


def _ask(host, port):
    """The emulator's answer for host:port, asked once per invocation."""
    key = (host.lower().rstrip("."), port)
    if key not in _answers:
        import json
        import urllib.parse
        import urllib.request

        query = urllib.parse.urlencode({"invocation": INVOCATION, "host": key[0], "port": port})
        # No proxy: the function's own variables may name one.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{_control}/awsrules/resolve?{query}", timeout=10) as r:
                _answers[key] = json.loads(r.read())
        except OSError as e:
            raise socket.gaierror(
                socket.EAI_AGAIN, f"Temporary failure in name resolution ({e})"
            ) from None
    return _answers[key]


def _port_number(port, type):
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, str) and not port.isdigit():
        return socket.getservbyname(port, "udp" if type == socket.SOCK_DGRAM else "tcp")
    return int(port)


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    name = host.decode() if isinstance(host, bytes) else host
    if not isinstance(name, str) or not _emulated(name):
        return _getaddrinfo(host, port, family, type, proto, flags)
    number = _port_number(port, type)
    answer = _ask(name, number)
    kind = answer.get("kind")
    if kind == "local":
        address = ("127.0.0.1", int(answer["port"]))
    elif kind == "blocked":
        address = (BLOCKED, number)
    else:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    if family not in (0, socket.AF_INET):
        # The emulated names have IPv4 addresses only.
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    kinds = [type] if type else [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW]
    protos = {socket.SOCK_STREAM: socket.IPPROTO_TCP, socket.SOCK_DGRAM: socket.IPPROTO_UDP}
    canon = name if flags & socket.AI_CANONNAME else ""
    return [
        (socket.AF_INET, socket.SocketKind(k), proto or protos.get(k, 0), canon, address)
        for k in kinds
    ]


def _is_ipv4(host):
    try:
        socket.inet_pton(socket.AF_INET, host)
        return True
    except (OSError, TypeError):
        return False


def _prepare(sock, address):
    """Where `sock` really connects; binds it to the source address first
    when that is this machine."""
    if sock.family != socket.AF_INET or not isinstance(address, tuple) or len(address) != 2:
        return address
    host, port = address
    if isinstance(host, str) and not _is_ipv4(host):
        if not _emulated(host):
            return address
        # connect() with a name resolves it in C, past getaddrinfo above.
        host, port = getaddrinfo(host, port, socket.AF_INET, sock.type)[0][4]
    if (
        _source_ip
        and host.startswith("127.")
        and sock.type == socket.SOCK_STREAM
        and sock.getsockname() == ("0.0.0.0", 0)
    ):
        try:
            sock.bind((_source_ip, 0))
        except OSError:
            # A loopback without all of 127.0.0.0/8 (macOS): connect from
            # 127.0.0.1; the listener then cannot tell who calls.
            pass
    return (host, port)


def _blackhole():
    """A listener whose one-slot queue is full: the kernel drops every
    later SYN to it, so a connect there stays in flight, as to a host
    behind a security group that does not admit it."""
    if not _hole:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler = socket.socket()
        _connect(filler, listener.getsockname())
        _hole.extend([listener, filler])
    return _hole[0].getsockname()


def _dropped(sock):
    """A connect whose SYN nobody answers. Returns the errno a non-blocking
    connect gives; a blocking one waits its timeout and raises."""
    timeout = sock.gettimeout()
    if timeout == 0.0:
        # Non-blocking (asyncio): a real SYN in flight, never answered, so
        # the socket never becomes writable.
        return _connect_ex(sock, _blackhole())
    time.sleep(NO_TIMEOUT_WAIT if timeout is None else timeout)
    raise socket.timeout("timed out")


def connect(self, address):
    address = _prepare(self, address)
    if isinstance(address, tuple) and address[0] == BLOCKED:
        code = _dropped(self)
        raise BlockingIOError(code, os.strerror(code))
    return _connect(self, address)


def connect_ex(self, address):
    try:
        address = _prepare(self, address)
        if isinstance(address, tuple) and address[0] == BLOCKED:
            return _dropped(self)
    except socket.timeout:
        # What connect_ex answers for a timeout (CPython: EWOULDBLOCK).
        return errno.EWOULDBLOCK
    return _connect_ex(self, address)


if INVOCATION:
    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
