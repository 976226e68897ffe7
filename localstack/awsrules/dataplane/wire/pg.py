"""The PostgreSQL frontend/backend protocol (3.0), as far as RDS Proxy needs it.

The proxy faces its client as a server (``ClientConnection``): it answers the
SSLRequest, reads the StartupMessage and authenticates the client itself
(clear text for IAM tokens, md5 or SCRAM-SHA-256 against the secret's
password). It logs in to the real server as a client (``login``), keeping
what the server sent after AuthenticationOk (ParameterStatus..., BackendKeyData,
ReadyForQuery) so that it can replay it to its client after its own
AuthenticationOk. Then it relays the session (``relay``): client messages one
by one, so the caller can look at Query and Parse text; server bytes as they
come.

Server side:
    c = ClientConnection(sock, tls_context=None, timeout=30)
    c.read_startup() -> Startup | CancelRequest   (SSLRequest -> 'S' + TLS, or 'N';
                                     GSSENCRequest -> 'N')
    c.ask_cleartext_password() -> str
    c.check_md5(password) -> bool     (salted with the startup user, as PostgreSQL)
    c.check_scram_sha_256(password) -> bool
    c.send_auth_ok(), c.send_error(sqlstate, message, severity="FATAL"), c.send(raw)
    c.read_message() -> Message | None
Client side:
    login(host, port, user, password, database=None, params=None, timeout=10)
        -> BackendConnection (sock, after_auth, parameters, process_id, secret_key)
        trust, clear text, md5 and SCRAM-SHA-256; raises LoginError(sqlstate,
        message) with the server's error (28P01: wrong password)
    reset(backend) -> bool            DISCARD ALL, answer read up to ReadyForQuery
    send_cancel(host, port, process_id, secret_key)
Relay (the caller has sent AuthenticationOk and backend.after_auth):
    relay(client, backend, on_message=None, idle_timeout=None) -> str
        wire.QUIT (Terminate, not passed on: the backend stays open for the
        pool), IDLE, CLIENT_CLOSED or BACKEND_CLOSED; on_message(kind, body) sees
        each client message, ``query_text(kind, body)`` reads Query/Parse SQL.
    BackendConnection.serves(startup): same database and startup parameters.

SCRAM uses the ``scramp`` package (pg8000's own dependency), imported when
first needed. Not handled: SCRAM channel binding (-PLUS is not offered), GSS
encryption, PostgreSQL 17's direct TLS negotiation, protocol 3.2 (refused).
"""

import hashlib
import hmac
import os
import socket
import ssl
import struct
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import BufferedSocket, close_quietly, pipe

PROTOCOL_3_0 = 3 << 16
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
AUTH_OK, AUTH_CLEARTEXT, AUTH_MD5 = 0, 3, 5
AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL = 10, 11, 12
SCRAM = "SCRAM-SHA-256"
INVALID_PASSWORD = "28P01"
_MAX_STARTUP = 10_000  # PostgreSQL's own limit on a startup packet


class LoginError(Exception):
    """An ErrorResponse from the server (or one we mean to send)."""

    def __init__(self, sqlstate: str, message: str, severity: str = "FATAL"):
        super().__init__(f"{severity} {sqlstate}: {message}")
        self.sqlstate, self.message, self.severity = sqlstate, message, severity


class ProtocolError(ConnectionError):
    """The peer said something this module does not understand."""


@dataclass
class Startup:
    user: str
    database: str
    parameters: dict  # every other startup parameter, to be passed on
    tls: bool = False


@dataclass
class CancelRequest:
    process_id: int
    secret_key: int


@dataclass
class Message:
    kind: str  # the type byte, as a one-letter string
    body: bytes
    raw: bytes  # type byte + length + body: forward this


@dataclass
class BackendConnection:
    sock: socket.socket
    after_auth: bytes  # raw ParameterStatus..., BackendKeyData, ReadyForQuery
    parameters: dict = field(default_factory=dict)  # from the ParameterStatus messages
    process_id: int = 0
    secret_key: int = 0
    user: str = ""
    database: str = ""
    startup_parameters: dict = field(default_factory=dict)  # what login() sent

    def serves(self, startup: Startup) -> bool:
        """Whether a client with this startup can be relayed to this session."""
        return (startup.database == self.database
                and startup.parameters == self.startup_parameters)

    def close(self):
        close_quietly(self.sock)


def query_text(kind: str, body: bytes) -> Optional[str]:
    """The SQL of a Query ('Q') or Parse ('P') message, else None."""
    if kind == "Q":
        return body.rstrip(b"\0").decode("utf-8", "replace")
    if kind == "P":
        name_end = body.find(b"\0")
        return body[name_end + 1:body.find(b"\0", name_end + 1)].decode("utf-8", "replace")
    return None


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    inner = hashlib.md5(password.encode() + user.encode()).hexdigest().encode()
    return b"md5" + hashlib.md5(inner + salt).hexdigest().encode()


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def _auth(code: int, data: bytes = b"") -> bytes:
    return _message(b"R", struct.pack("!I", code) + data)


def _cstrings(data: bytes) -> list:
    return [part.decode("utf-8", "replace") for part in data.split(b"\0")]


def _error_message(sqlstate: str, message: str, severity: str) -> bytes:
    fields = [(b"S", severity), (b"V", severity), (b"C", sqlstate), (b"M", message)]
    return _message(b"E", b"".join(k + v.encode() + b"\0" for k, v in fields) + b"\0")


def _parse_error(body: bytes) -> LoginError:
    fields = {part[:1]: part[1:].decode("utf-8", "replace")
              for part in body.split(b"\0") if part}
    return LoginError(fields.get(b"C", "XX000"), fields.get(b"M", ""),
                      fields.get(b"V", fields.get(b"S", "FATAL")))


class _Stream(BufferedSocket):
    """Typed messages over one socket."""

    def read_message(self) -> Message:
        header = self.exactly(5)
        length = struct.unpack("!I", header[1:])[0]
        if length < 4:
            raise ProtocolError(f"bad message length {length}")
        body = self.exactly(length - 4)
        return Message(chr(header[0]), body, header + body)


class ClientConnection:
    """The proxy's side of a client's connection: startup, auth, messages."""

    def __init__(self, sock, tls_context: Optional[ssl.SSLContext] = None,
                 timeout: Optional[float] = 30.0):
        sock.settimeout(timeout)
        self.sock, self.tls_context = sock, tls_context
        self._stream = _Stream(sock, exact=True)  # TLS may follow: read no byte too many
        self.startup: Optional[Startup] = None

    def read_startup(self):
        tls = False
        for _ in range(3):  # GSSENCRequest, then SSLRequest, then the startup
            length = struct.unpack("!I", self._stream.exactly(4))[0]
            if not 8 <= length <= _MAX_STARTUP:
                raise ProtocolError(f"bad startup packet length {length}")
            packet = self._stream.exactly(length - 4)
            code = struct.unpack("!I", packet[:4])[0]
            if code == CANCEL_REQUEST:
                return CancelRequest(*struct.unpack("!Ii", packet[4:12]))
            if code == GSSENC_REQUEST or (code == SSL_REQUEST and (tls or not self.tls_context)):
                self.sock.sendall(b"N")
            elif code == SSL_REQUEST:
                self.sock.sendall(b"S")
                self.sock = self.tls_context.wrap_socket(self.sock, server_side=True)
                self._stream, tls = _Stream(self.sock), True
            elif code >> 16 == 3:
                if code != PROTOCOL_3_0:
                    raise ProtocolError(f"protocol 3.{code & 0xFFFF} is not supported")
                values = _cstrings(packet[4:])
                params = dict(zip(values[0::2], values[1::2]))
                params.pop("", None)
                user = params.pop("user", "")
                database = params.pop("database", "") or user
                self.startup = Startup(user, database, params, tls)
                self._stream.exact = False
                return self.startup
            else:
                raise ProtocolError(f"unsupported startup request code {code}")
        raise ProtocolError("too many startup requests")

    def _password_message(self) -> bytes:
        message = self._stream.read_message()
        if message.kind != "p":
            raise ProtocolError(f"expected a password message, got {message.kind!r}")
        return message.body

    def ask_cleartext_password(self) -> str:
        self.sock.sendall(_auth(AUTH_CLEARTEXT))
        return self._password_message().split(b"\0", 1)[0].decode("utf-8", "replace")

    def check_md5(self, password: str) -> bool:
        salt = os.urandom(4)
        self.sock.sendall(_auth(AUTH_MD5, salt))
        answer = self._password_message().rstrip(b"\0")
        return hmac.compare_digest(answer, md5_password(self.startup.user, password, salt))

    def check_scram_sha_256(self, password: str) -> bool:
        import scramp

        mechanism = scramp.ScramMechanism(SCRAM)
        auth_info = mechanism.make_auth_info(password, iteration_count=4096)
        server = mechanism.make_server(lambda _username: auth_info)
        self.sock.sendall(_auth(AUTH_SASL, SCRAM.encode() + b"\0\0"))
        initial = self._password_message()
        name_end = initial.find(b"\0")
        if initial[:name_end].decode() != SCRAM:
            return False
        try:
            server.set_client_first(initial[name_end + 5:].decode())
            self.sock.sendall(_auth(AUTH_SASL_CONTINUE, server.get_server_first().encode()))
            server.set_client_final(self._password_message().decode())
        except scramp.ScramException:
            return False
        self.sock.sendall(_auth(AUTH_SASL_FINAL, server.get_server_final().encode()))
        return True

    def send_auth_ok(self):
        self.sock.sendall(_auth(AUTH_OK))

    def send_error(self, sqlstate: str, message: str, severity: str = "FATAL"):
        self.sock.sendall(_error_message(sqlstate, message, severity))

    def send(self, raw: bytes):
        self.sock.sendall(raw)

    def read_message(self) -> Optional[Message]:
        """The next message, or None when the client has gone."""
        try:
            return self._stream.read_message()
        except ConnectionError:
            return None

    def close(self):
        close_quietly(self.sock)


def login(host: str, port: int, user: str, password: str, database: Optional[str] = None,
          params: Optional[dict] = None, timeout: float = 10.0) -> BackendConnection:
    """Logs in; pass Startup.parameters as `params` so the server's session
    (client_encoding, DateStyle, application_name...) is the one the client asked for."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        conn = _login(_Stream(sock), user, password, database or user, dict(params or {}))
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return conn


def _login(stream: _Stream, user, password, database, params) -> BackendConnection:
    pairs = {"user": user, "database": database, **params}
    body = struct.pack("!I", PROTOCOL_3_0) + b"".join(
        k.encode() + b"\0" + str(v).encode() + b"\0" for k, v in pairs.items()) + b"\0"
    stream.sock.sendall(struct.pack("!I", len(body) + 4) + body)
    scram = None
    while True:
        message = stream.read_message()
        if message.kind == "E":
            raise _parse_error(message.body)
        if message.kind != "R":
            continue  # a NoticeResponse, say
        code, data = struct.unpack("!I", message.body[:4])[0], message.body[4:]
        if code == AUTH_OK:
            break
        if code == AUTH_CLEARTEXT:
            reply = password.encode() + b"\0"
        elif code == AUTH_MD5:
            reply = md5_password(user, password, data[:4]) + b"\0"
        elif code == AUTH_SASL and SCRAM in _cstrings(data):
            import scramp

            scram = scramp.ScramClient([SCRAM], user, password)
            first = scram.get_client_first().encode()
            reply = SCRAM.encode() + b"\0" + struct.pack("!I", len(first)) + first
        elif code == AUTH_SASL_CONTINUE and scram:
            scram.set_server_first(data.decode())
            reply = scram.get_client_final().encode()
        elif code == AUTH_SASL_FINAL and scram:
            try:  # the server proves that it knew the password too
                scram.set_server_final(data.decode())
            except Exception as error:  # scramp.ScramException
                raise LoginError("28000", f"the server's SCRAM signature is wrong: {error}")
            continue
        else:
            raise LoginError("28000", f"authentication method {code} is not supported")
        stream.sock.sendall(_message(b"p", reply))

    conn = BackendConnection(stream.sock, b"", user=user, database=database,
                             startup_parameters=params)
    after_auth = bytearray()
    while True:
        message = stream.read_message()
        if message.kind == "E":  # e.g. 3D000: the database does not exist
            raise _parse_error(message.body)
        after_auth += message.raw
        if message.kind == "S":
            name, value = _cstrings(message.body)[:2]
            conn.parameters[name] = value
        elif message.kind == "K":
            conn.process_id, conn.secret_key = struct.unpack("!Ii", message.body[:8])
        elif message.kind == "Z":
            conn.after_auth = bytes(after_auth)
            return conn


def reset(backend: BackendConnection, timeout: float = 5.0) -> bool:
    """DISCARD ALL: True when it worked and the session is idle (not in a
    transaction, where DISCARD ALL fails)."""
    stream = _Stream(backend.sock)
    ok = True
    try:
        backend.sock.settimeout(timeout)
        backend.sock.sendall(_message(b"Q", b"DISCARD ALL\0"))
        while True:
            message = stream.read_message()
            ok = ok and message.kind != "E"
            if message.kind == "Z":
                backend.sock.settimeout(None)
                return ok and message.body == b"I" and not stream.buffer
    except OSError:
        return False


def execute(backend: BackendConnection, sql: str, timeout: float = 10.0) -> None:
    """Runs `sql` (a proxy's InitQuery) as a simple query on a new DB
    connection; raises LoginError with the server's error."""
    stream = _Stream(backend.sock)
    backend.sock.settimeout(timeout)
    backend.sock.sendall(_message(b"Q", sql.encode() + b"\0"))
    error = None
    while True:
        message = stream.read_message()
        if message.kind == "E" and error is None:
            error = _parse_error(message.body)
        if message.kind == "Z":
            backend.sock.settimeout(None)
            if error is not None:
                raise error
            return


def send_cancel(host: str, port: int, process_id: int, secret_key: int):
    """Passes a client's CancelRequest on to the server that runs its query."""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(struct.pack("!IIIi", 16, CANCEL_REQUEST, process_id, secret_key))


def _message_length(buffer: bytearray) -> Optional[int]:
    if len(buffer) < 5:
        return None
    length = 1 + int.from_bytes(buffer[1:5], "big")
    return length if len(buffer) >= length else None


def relay(client: ClientConnection, backend: BackendConnection,
          on_message: Optional[Callable[[str, bytes], None]] = None,
          idle_timeout: Optional[float] = None) -> str:
    """Pipes the session until it ends; see the module docstring."""

    def handle(raw: bytes):
        if raw[:1] == b"X":  # Terminate
            return None
        if on_message:
            on_message(chr(raw[0]), raw[5:])
        return raw, b""

    return pipe(client._stream, backend.sock, _message_length, handle, idle_timeout)
