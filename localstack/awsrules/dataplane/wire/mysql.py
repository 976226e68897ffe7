"""The MySQL client/server protocol, as far as RDS Proxy needs it.

The proxy is a server to its client (``ClientConnection``), a client to the real
MariaDB/MySQL server (``login`` -> ``BackendConnection``), and relays the session
verbatim (``relay``); a command's packets restart their sequence ids at 0, so
they pass through unchanged. As nothing is re-encoded, the capabilities that
shape packets or change statements (``SESSION_FLAGS``) must agree on both legs:
login() asks the backend for the client's own. The proxy offers clients only
what it can pass through (``PROXY_CAPABILITIES``: no COMPRESS; all of it is in
MariaDB 10.2+ and MySQL 5.7+), or ``PROXY_CAPABILITIES & backend.capabilities``
when it knows the backend; ``BackendConnection.serves(login)`` tells whether a
pooled connection fits a new client.

Server side (the proxy facing one client):
    c = ClientConnection(sock, server_version, connection_id, tls_context=None,
                         capabilities=PROXY_CAPABILITIES, timeout=30)
    c.greet() -> Login              HandshakeV10; SSLRequest -> TLS; the response
                                    (ssl.SSLError when the client rejects our cert)
    c.ask_clear_password() -> str   AuthSwitch to mysql_clear_password (IAM tokens)
    c.check_native_password(pw) -> bool   (switches to mysql_native_password first
                                    if the client answered with another plugin)
    c.send_ok(), c.send_error(code, sqlstate, message)
    c.read_command() -> Command | None    one command, 16 MB pieces joined
Client side (the proxy logging in to the server):
    login(host, port, user, password, database=None, client_flags=PROXY_CAPABILITIES,
          charset=None, attributes=None, timeout=10) -> BackendConnection
          raises LoginError(code, sqlstate, message) with the server's own error
    reset(backend) -> bool          COM_RESET_CONNECTION (+ COM_INIT_DB), before reuse
Relay (the caller has sent OK to the client):
    relay(client, backend, on_command=None, idle_timeout=None) -> str
          wire.QUIT (COM_QUIT, not passed on: the backend stays open for the
          pool), IDLE, CLIENT_CLOSED or BACKEND_CLOSED. on_command(payload) sees each
          command (payload[0] is the command byte; ``query_text`` reads SQL) and
          may return (code, sqlstate, message) to refuse it with an ERR instead.

Not handled: compression, LOAD DATA LOCAL (LOCAL_FILES is not offered), query
attributes, COM_CHANGE_USER (refused in the relay), MariaDB's extended
capabilities, caching_sha2_password/sha256_password on the backend leg.
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

# Capability flags (the low 28 bits that MySQL and MariaDB share). LONG_PASSWORD
# is CLIENT_MYSQL to MariaDB: claiming it keeps its own extensions out of play.
LONG_PASSWORD, FOUND_ROWS, LONG_FLAG, CONNECT_WITH_DB = 1 << 0, 1 << 1, 1 << 2, 1 << 3
COMPRESS, LOCAL_FILES, IGNORE_SPACE, PROTOCOL_41 = 1 << 5, 1 << 7, 1 << 8, 1 << 9
INTERACTIVE, SSL, IGNORE_SIGPIPE, TRANSACTIONS = 1 << 10, 1 << 11, 1 << 12, 1 << 13
SECURE_CONNECTION, MULTI_STATEMENTS, MULTI_RESULTS = 1 << 15, 1 << 16, 1 << 17
PS_MULTI_RESULTS, PLUGIN_AUTH, CONNECT_ATTRS = 1 << 18, 1 << 19, 1 << 20
PLUGIN_AUTH_LENENC_CLIENT_DATA, SESSION_TRACK, DEPRECATE_EOF = 1 << 21, 1 << 23, 1 << 24

# What changes packet shapes or statement meaning: must be the same on both legs.
SESSION_FLAGS = (FOUND_ROWS | LONG_FLAG | IGNORE_SPACE | PROTOCOL_41 | INTERACTIVE
                 | TRANSACTIONS | MULTI_STATEMENTS | MULTI_RESULTS | PS_MULTI_RESULTS
                 | SESSION_TRACK | DEPRECATE_EOF)
# What only the login itself uses.
LOGIN_FLAGS = (LONG_PASSWORD | SECURE_CONNECTION | PLUGIN_AUTH
               | PLUGIN_AUTH_LENENC_CLIENT_DATA | IGNORE_SIGPIPE)
PROXY_CAPABILITIES = SESSION_FLAGS | LOGIN_FLAGS | CONNECT_WITH_DB | CONNECT_ATTRS

COM_QUIT, COM_INIT_DB, COM_QUERY = 0x01, 0x02, 0x03
COM_CHANGE_USER, COM_STMT_PREPARE, COM_RESET_CONNECTION = 0x11, 0x16, 0x1F
SERVER_MORE_RESULTS_EXISTS = 0x0008
SERVER_STATUS_AUTOCOMMIT = 0x0002
UTF8MB4_GENERAL_CI = 45
NATIVE, CLEAR = "mysql_native_password", "mysql_clear_password"
_MAX_PIECE = 0xFFFFFF  # a payload this long continues in the next packet
_SSL_REQUEST_LENGTH = 32


class LoginError(Exception):
    """An ERR packet, during a login or as the answer to a command."""

    def __init__(self, code: int, sqlstate: str, message: str):
        super().__init__(f"({code}, {sqlstate}) {message}")
        self.code, self.sqlstate, self.message = code, sqlstate, message


class ProtocolError(ConnectionError):
    """The peer said something this module does not understand."""


@dataclass
class Login:
    """What the client's HandshakeResponse41 said."""

    user: str
    database: Optional[str]
    client_flags: int
    charset: int
    auth_plugin: str
    auth_response: bytes
    attributes: dict = field(default_factory=dict)
    tls: bool = False


@dataclass
class Command:
    raw: bytes  # as received, headers included: forward this
    payload: bytes  # the pieces joined; payload[0] is the command byte


@dataclass
class BackendConnection:
    sock: socket.socket
    server_version: str
    connection_id: int
    capabilities: int  # what the server offered
    flags: int  # what this connection negotiated
    charset: int
    user: str
    database: Optional[str]

    def serves(self, login: Login) -> bool:
        """Whether a client with this login can be relayed to this connection."""
        same_flags = (login.client_flags ^ self.flags) & SESSION_FLAGS == 0
        return same_flags and (login.charset, login.database) == (self.charset, self.database)

    def close(self):
        close_quietly(self.sock)


def native_scramble(password: str, scramble: bytes) -> bytes:
    """SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))); empty for no password."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    mask = hashlib.sha1(scramble + hashlib.sha1(stage1).digest()).digest()
    return bytes(a ^ b for a, b in zip(stage1, mask))


def query_text(payload: bytes) -> Optional[str]:
    """The SQL of a COM_QUERY or COM_STMT_PREPARE payload, else None."""
    if payload[:1] in (bytes([COM_QUERY]), bytes([COM_STMT_PREPARE])):
        return payload[1:].decode("utf-8", "replace")
    return None


class _Packets(BufferedSocket):
    """Framed reads and writes over one socket."""

    def read(self):
        """-> (sequence id of the last piece, payload, raw bytes)."""
        raw, payload = bytearray(), bytearray()
        while True:
            header = self.exactly(4)
            length, seq = int.from_bytes(header[:3], "little"), header[3]
            piece = self.exactly(length)
            raw += header + piece
            payload += piece
            if length < _MAX_PIECE:
                return seq, bytes(payload), bytes(raw)

    def write(self, payload: bytes, seq: int) -> int:
        """Sends `payload` from sequence id `seq`; returns the next id."""
        out = bytearray()
        while True:
            piece, payload = payload[:_MAX_PIECE], payload[_MAX_PIECE:]
            out += _frame(piece, seq)
            seq += 1
            if len(piece) < _MAX_PIECE:
                break
        self.sock.sendall(out)
        return seq & 0xFF


def _lenenc_int(data: bytes, i: int):
    first = data[i]
    if first < 0xFB:
        return first, i + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if size is None:
        raise ProtocolError(f"bad length-encoded integer 0x{first:02x}")
    return int.from_bytes(data[i + 1:i + 1 + size], "little"), i + 1 + size


def _put_lenenc_int(n: int) -> bytes:
    if n < 0xFB:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def _nul_string(data: bytes, i: int):
    end = data.find(b"\0", i)
    end = len(data) if end < 0 else end
    return data[i:end].decode("utf-8", "replace"), end + 1


def _error_payload(code: int, sqlstate: str, message: str) -> bytes:
    return (b"\xff" + struct.pack("<H", code) + b"#" + sqlstate.encode()[:5].ljust(5, b"0")
            + message.encode())


def _parse_error(payload: bytes) -> LoginError:
    code = struct.unpack("<H", payload[1:3])[0]
    if payload[3:4] == b"#":
        return LoginError(code, payload[4:9].decode(), payload[9:].decode("utf-8", "replace"))
    return LoginError(code, "HY000", payload[3:].decode("utf-8", "replace"))


class ClientConnection:
    """The proxy's side of a client's connection: handshake, auth, commands.
    Sequence ids are tracked here, so send_ok/send_error answer the last packet
    read, during the login or after read_command()."""

    def __init__(self, sock, server_version: str, connection_id: int,
                 tls_context: Optional[ssl.SSLContext] = None,
                 capabilities: int = PROXY_CAPABILITIES, timeout: Optional[float] = 30.0):
        sock.settimeout(timeout)
        self.sock, self._packets = sock, _Packets(sock, exact=True)  # TLS may follow
        self.server_version, self.connection_id = server_version, connection_id
        self.tls_context = tls_context
        # The login below needs these whatever the backend lacks; LONG_PASSWORD
        # (CLIENT_MYSQL) keeps MariaDB clients off MariaDB-only extensions.
        required = PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | LONG_PASSWORD
        self.capabilities = (capabilities & ~(COMPRESS | SSL | LOCAL_FILES)) | required
        if tls_context is not None:
            self.capabilities |= SSL
        # Printable, so no client that reads part 2 as a C string cuts it short.
        self.scramble = bytes(0x21 + b % 94 for b in os.urandom(20))
        self.login: Optional[Login] = None
        self._seq = 0

    def _read(self) -> bytes:
        seq, payload, _ = self._packets.read()
        self._seq = (seq + 1) & 0xFF
        return payload

    def _write(self, payload: bytes):
        self._seq = self._packets.write(payload, self._seq)

    def greet(self) -> Login:
        caps = self.capabilities
        self._write(
            b"\x0a" + self.server_version.encode() + b"\0"
            + struct.pack("<I", self.connection_id) + self.scramble[:8] + b"\0"
            + struct.pack("<HBHHB", caps & 0xFFFF, UTF8MB4_GENERAL_CI,
                          SERVER_STATUS_AUTOCOMMIT, caps >> 16, len(self.scramble) + 1)
            + b"\0" * 10 + self.scramble[8:] + b"\0" + NATIVE.encode() + b"\0")
        payload = self._read()
        tls = False
        if len(payload) == _SSL_REQUEST_LENGTH and payload[1] & (SSL >> 8):
            if self.tls_context is None:
                raise ProtocolError("the client asked for TLS, which was not offered")
            self.sock = self.tls_context.wrap_socket(self.sock, server_side=True)
            self._packets = _Packets(self.sock)
            tls = True
            payload = self._read()
        try:
            self.login = self._parse_response(payload, tls)
        except (IndexError, UnicodeDecodeError) as error:
            raise ProtocolError(f"malformed handshake response: {error}") from error
        self._packets.exact = False
        return self.login

    def _parse_response(self, data: bytes, tls: bool) -> Login:
        if len(data) < 32:
            raise ProtocolError("handshake response too short")
        flags, _max_packet, charset = struct.unpack("<IIB", data[:9])
        if not flags & PROTOCOL_41:
            raise ProtocolError("clients older than protocol 4.1 are not supported")
        user, i = _nul_string(data, 32)
        if flags & PLUGIN_AUTH_LENENC_CLIENT_DATA:
            size, i = _lenenc_int(data, i)
        else:  # SECURE_CONNECTION: one length byte
            size, i = data[i], i + 1
        auth_response, i = data[i:i + size], i + size
        database = None
        if flags & CONNECT_WITH_DB and i < len(data):
            database, i = _nul_string(data, i)
        plugin = NATIVE
        if flags & PLUGIN_AUTH and i < len(data):
            plugin, i = _nul_string(data, i)
        attributes = {}
        if flags & CONNECT_ATTRS and i < len(data):
            total, i = _lenenc_int(data, i)
            end = i + total
            while i < end:
                k_len, i = _lenenc_int(data, i)
                key, i = data[i:i + k_len].decode("utf-8", "replace"), i + k_len
                v_len, i = _lenenc_int(data, i)
                attributes[key], i = data[i:i + v_len].decode("utf-8", "replace"), i + v_len
        return Login(user, database or None, flags, charset, plugin or NATIVE,
                     auth_response, attributes, tls)

    def _switch_auth(self, plugin: str) -> bytes:
        if not self.login.client_flags & PLUGIN_AUTH:
            raise ProtocolError(f"the client cannot switch to {plugin}")
        self._write(b"\xfe" + plugin.encode() + b"\0" + self.scramble + b"\0")
        return self._read()

    def ask_clear_password(self) -> str:
        """The password (an IAM token, say) in clear: only sensible over TLS."""
        if self.login.auth_plugin == CLEAR:
            answer = self.login.auth_response
        else:
            answer = self._switch_auth(CLEAR)
        return answer.split(b"\0", 1)[0].decode("utf-8", "replace")

    def check_native_password(self, password: str) -> bool:
        if self.login.auth_plugin == NATIVE:
            answer = self.login.auth_response
        else:
            answer = self._switch_auth(NATIVE)
        return hmac.compare_digest(answer, native_scramble(password, self.scramble))

    def send_ok(self, status: int = SERVER_STATUS_AUTOCOMMIT):
        self._write(b"\x00\x00\x00" + struct.pack("<HH", status, 0))

    def send_error(self, code: int, sqlstate: str, message: str):
        self._write(_error_payload(code, sqlstate, message))

    def read_command(self) -> Optional[Command]:
        """The next command, or None when the client has gone."""
        try:
            seq, payload, raw = self._packets.read()
        except ConnectionError:
            return None
        self._seq = (seq + 1) & 0xFF
        return Command(raw, payload)

    def close(self):
        close_quietly(self.sock)


def login(host: str, port: int, user: str, password: str, database: Optional[str] = None,
          client_flags: int = PROXY_CAPABILITIES, charset: Optional[int] = None,
          attributes: Optional[dict] = None, timeout: float = 10.0) -> BackendConnection:
    """Logs in with mysql_native_password (or clear text, if the server
    switches to it). The session flags are the client's, as far as the
    server has them; pass Login.client_flags and Login.charset."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        conn = _login(_Packets(sock), user, password, database, client_flags, charset,
                      attributes)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return conn


def _login(packets: _Packets, user, password, database, client_flags, charset, attributes):
    seq, hello, _ = packets.read()
    if hello[:1] == b"\xff":
        raise _parse_error(hello)
    if hello[0] != 10:
        raise ProtocolError(f"unsupported protocol version {hello[0]}")
    version, i = _nul_string(hello, 1)
    connection_id = struct.unpack("<I", hello[i:i + 4])[0]
    scramble = hello[i + 4:i + 12]
    caps_low, server_charset, _status, caps_high, data_len = struct.unpack(
        "<HBHHB", hello[i + 13:i + 21])
    caps = caps_low | caps_high << 16
    i += 31  # 4 id + 8 scramble + 1 filler + 8 read above + 10 reserved
    part2 = max(13, data_len - 8)
    scramble += hello[i:i + part2].rstrip(b"\0")
    if not caps & PROTOCOL_41 or not caps & SECURE_CONNECTION:
        raise ProtocolError(f"server {version!r} predates protocol 4.1")

    flags = (client_flags & SESSION_FLAGS & caps) | (LOGIN_FLAGS & caps) | LONG_PASSWORD | PROTOCOL_41
    if database:
        flags |= CONNECT_WITH_DB
    if attributes and caps & CONNECT_ATTRS:
        flags |= CONNECT_ATTRS
    charset = charset or server_charset
    # Native first whatever the server prefers: it switches us if it must.
    auth = native_scramble(password, scramble)
    response = struct.pack("<IIB", flags, _MAX_PIECE, charset) + b"\0" * 23 + user.encode() + b"\0"
    response += (_put_lenenc_int(len(auth)) if flags & PLUGIN_AUTH_LENENC_CLIENT_DATA
                 else bytes([len(auth)])) + auth
    if database:
        response += database.encode() + b"\0"
    if flags & PLUGIN_AUTH:
        response += NATIVE.encode() + b"\0"
    if flags & CONNECT_ATTRS:
        pairs = b"".join(_put_lenenc_int(len(x)) + x for k, v in attributes.items()
                         for x in (k.encode(), str(v).encode()))
        response += _put_lenenc_int(len(pairs)) + pairs
    seq = packets.write(response, seq + 1)

    switched = False
    while True:
        seq, answer, _ = packets.read()
        if answer[:1] == b"\x00":
            return BackendConnection(packets.sock, version, connection_id, caps, flags,
                                     charset, user, database)
        if answer[:1] == b"\xff":
            raise _parse_error(answer)
        if answer[:1] != b"\xfe" or switched:
            raise ProtocolError(f"unexpected packet 0x{answer[0]:02x} during login")
        switched = True
        plugin, i = _nul_string(answer, 1)
        if plugin == NATIVE:
            reply = native_scramble(password, answer[i:].rstrip(b"\0"))
        elif plugin == CLEAR:
            reply = password.encode() + b"\0"
        else:
            raise LoginError(2059, "HY000", f"Authentication plugin '{plugin}' cannot be loaded")
        seq = packets.write(reply, seq + 1)


def reset(backend: BackendConnection, timeout: float = 5.0) -> bool:
    """COM_RESET_CONNECTION, then COM_INIT_DB back to the login's database (a
    reset keeps whatever USE chose): True when the server answered OK to both."""
    packets = _Packets(backend.sock)
    commands = [bytes([COM_RESET_CONNECTION])]
    if backend.database:
        commands.append(bytes([COM_INIT_DB]) + backend.database.encode())
    try:
        backend.sock.settimeout(timeout)
        for command in commands:
            packets.write(command, 0)
            if packets.read()[1][:1] != b"\x00":
                return False
        backend.sock.settimeout(None)
        return not packets.buffer
    except OSError:
        return False


def execute(backend: BackendConnection, sql: str, timeout: float = 10.0) -> None:
    """Runs statements that return no rows (a proxy's InitQuery: SETs) on a
    new DB connection; raises LoginError with the server's error."""
    packets = _Packets(backend.sock)
    backend.sock.settimeout(timeout)
    packets.write(bytes([COM_QUERY]) + sql.encode(), 0)
    while True:
        answer = packets.read()[1]
        if answer[:1] == b"\xff":
            raise _parse_error(answer)
        if answer[:1] != b"\x00":
            raise LoginError(1105, "HY000", "the init query must not return rows")
        _, i = _lenenc_int(answer, 1)  # affected rows
        _, i = _lenenc_int(answer, i)  # last insert id
        if not struct.unpack("<H", answer[i:i + 2])[0] & SERVER_MORE_RESULTS_EXISTS:
            backend.sock.settimeout(None)
            return


def _command_length(buffer: bytearray) -> Optional[int]:
    """The length of the first whole command in `buffer` (all its pieces)."""
    i = 0
    while len(buffer) >= i + 4:
        length = int.from_bytes(buffer[i:i + 3], "little")
        if len(buffer) < i + 4 + length:
            return None
        i += 4 + length
        if length < _MAX_PIECE:
            return i
    return None


def _frame(payload: bytes, seq: int) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload


def relay(client: ClientConnection, backend: BackendConnection,
          on_command: Optional[Callable[[bytes], Optional[tuple]]] = None,
          idle_timeout: Optional[float] = None) -> str:
    """Pipes the session until it ends; see the module docstring."""

    def handle(raw: bytes):
        payload, i, seq = bytearray(), 0, 0
        while i < len(raw):  # join the pieces of a 16 MB+ command
            length, seq = int.from_bytes(raw[i:i + 3], "little"), raw[i + 3]
            payload += raw[i + 4:i + 4 + length]
            i += 4 + length
        if payload[:1] == bytes([COM_QUIT]):
            return None
        refusal = on_command(bytes(payload)) if on_command else None
        if refusal is None and payload[:1] == bytes([COM_CHANGE_USER]):
            refusal = (1047, "08S01", "COM_CHANGE_USER is not supported by the proxy")
        if refusal is not None:
            return b"", _frame(_error_payload(*refusal), seq + 1)
        return raw, b""

    return pipe(client._packets, backend.sock, _command_length, handle, idle_timeout)
