"""rds-proxy-runbook's probe: a Lambda function of the tool's own that
proves the wiring a runbook made, without the user's function.

It runs in the VPC configuration and with the execution role of a user's
function (so what it proves is what that function can do), and for each
endpoint it is given connects the way the runbook configures clients: an
IAM authentication token for the DB user when IAM auth is required (or
end-to-end IAM), else the secret's password (read only if the role may,
never returned); TLS verified against the runtime's CA bundle when TLS is
required; then one trivial query, twice, on one connection.

Self-contained: the standard library and boto3 (in Lambda's Python
runtime), with a minimal client for the MySQL and PostgreSQL wire
protocols. The event:

    {"targets": [{"name": "default", "host": "...", "port": 3306,
                  "engine": "MYSQL" | "POSTGRESQL", "user": "admin",
                  "auth": "iam" | "secret", "secret_arn": "...",
                  "tls": true, "database": null, "timeout": 5}]}

The answer: {"results": [{"endpoint", "host", "port", "user", "resolve",
"connect", "tls", "auth", "query", "verdict": "ok" | "failed", "failed_at",
"error"}]}, each step with its milliseconds and what it found.
"""

import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import time


class StepFailed(Exception):
    def __init__(self, step, error):
        super().__init__(f"{step}: {error}")
        self.step, self.error = step, str(error)


def _ms(started):
    return round((time.monotonic() - started) * 1000, 1)


# --- MySQL -------------------------------------------------------------------

_LONG_PASSWORD, _PROTOCOL_41, _SSL, _SECURE, _PLUGIN_AUTH = 1, 512, 2048, 32768, 1 << 19
_CONNECT_WITH_DB, _LENENC_AUTH = 8, 1 << 21


class _MysqlPackets:
    def __init__(self, sock):
        self.sock, self.seq = sock, 0

    def read(self):
        header = _exactly(self.sock, 4)
        length = int.from_bytes(header[:3], "little")
        self.seq = (header[3] + 1) & 0xFF
        return _exactly(self.sock, length)

    def write(self, payload):
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) & 0xFF


def _exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def _lenenc(n):
    if n < 251:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    return b"\xfd" + n.to_bytes(3, "little")


def _mysql_error(payload):
    code = struct.unpack("<H", payload[1:3])[0]
    message = payload[9:] if payload[3:4] == b"#" else payload[3:]
    return f"({code}) {message.decode('utf-8', 'replace')}"


def _native(password, scramble):
    one = hashlib.sha1(password.encode()).digest()
    two = hashlib.sha1(one).digest()
    three = hashlib.sha1(scramble + two).digest()
    return bytes(a ^ b for a, b in zip(one, three))


def mysql_session(sock, target, password, context, report):
    """Logs in and runs the query twice; fills `report`'s tls/auth/query."""
    packets = _MysqlPackets(sock)
    greeting = packets.read()
    if greeting[:1] == b"\xff":
        raise StepFailed("connect", _mysql_error(greeting))
    version_end = greeting.index(b"\0", 1)
    rest = greeting[version_end + 1:]
    scramble = rest[4:12]
    caps = struct.unpack("<H", rest[13:15])[0] | struct.unpack("<H", rest[18:20])[0] << 16
    scramble += rest[31:31 + 12]
    # An IAM token is longer than 250 bytes: its length goes length-encoded.
    flags = _LONG_PASSWORD | _PROTOCOL_41 | _SECURE | _PLUGIN_AUTH | _LENENC_AUTH
    if target.get("database"):
        flags |= _CONNECT_WITH_DB
    started = time.monotonic()
    if target.get("tls"):
        if not caps & _SSL:
            raise StepFailed("tls", "the server does not offer TLS")
        packets.write(struct.pack("<IIB", flags | _SSL, 1 << 24, 45) + b"\0" * 23)
        try:
            sock = context.wrap_socket(sock, server_hostname=target["host"])
        except (ssl.SSLError, OSError) as e:
            raise StepFailed("tls", e) from None
        packets.sock = sock
        flags |= _SSL
        report["tls"] = {"ms": _ms(started), "version": sock.version(), "verified": True}
    else:
        report["tls"] = {"ms": 0, "version": None, "verified": False}
    started = time.monotonic()
    clear = target.get("auth") == "iam"
    plugin = b"mysql_clear_password" if clear else b"mysql_native_password"
    answer = password.encode() + b"\0" if clear else _native(password, scramble)
    body = struct.pack("<IIB", flags, 1 << 24, 45) + b"\0" * 23
    body += target["user"].encode() + b"\0" + _lenenc(len(answer)) + answer
    if target.get("database"):
        body += target["database"].encode() + b"\0"
    packets.write(body + plugin + b"\0")
    while True:
        payload = packets.read()
        if payload[:1] == b"\x00":
            break
        if payload[:1] == b"\xff":
            raise StepFailed("auth", _mysql_error(payload))
        if payload[:1] == b"\xfe":  # AuthSwitchRequest
            name, _, data = payload[1:].partition(b"\0")
            if name == b"mysql_clear_password":
                packets.write(password.encode() + b"\0")
            else:
                packets.write(_native(password, data.rstrip(b"\0")[:20]))
            continue
        raise StepFailed("auth", f"unexpected packet {payload[:1]!r}")
    report["auth"] = {"ms": _ms(started), "as": target["user"]}
    latencies = []
    for _ in range(2):
        started = time.monotonic()
        packets.seq = 0
        packets.write(b"\x03SELECT 1")
        first = packets.read()
        if first[:1] == b"\xff":
            raise StepFailed("query", _mysql_error(first))
        while True:  # column definitions, then rows, each part ended by EOF/OK
            payload = packets.read()
            if payload[:1] == b"\xff":
                raise StepFailed("query", _mysql_error(payload))
            if payload[:1] == b"\xfe" and len(payload) < 9:
                payload = packets.read()
                while not (payload[:1] == b"\xfe" and len(payload) < 9):
                    payload = packets.read()
                break
        latencies.append(_ms(started))
    packets.seq = 0
    packets.write(b"\x01")  # COM_QUIT
    report["query"] = {"ms": latencies}


# --- PostgreSQL ----------------------------------------------------------------


def _pg_message(sock):
    header = _exactly(sock, 5)
    return chr(header[0]), _exactly(sock, struct.unpack("!I", header[1:])[0] - 4)


def _pg_send(sock, kind, body):
    sock.sendall(kind + struct.pack("!I", len(body) + 4) + body)


def _pg_error(body):
    fields = dict((f[:1].decode(), f[1:].decode("utf-8", "replace"))
                  for f in body.split(b"\0") if f)
    return f"{fields.get('C', '?')}: {fields.get('M', '')}"


def _scram(sock, user, password, mechanisms):
    if b"SCRAM-SHA-256" not in mechanisms:
        raise StepFailed("auth", f"no supported SASL mechanism in {mechanisms!r}")
    nonce = os.urandom(18).hex()
    first_bare = f"n=,r={nonce}"
    first = ("n,," + first_bare).encode()
    _pg_send(sock, b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
    kind, body = _pg_message(sock)
    if kind == "E":
        raise StepFailed("auth", _pg_error(body))
    server_first = body[4:].decode()
    parts = dict(p.split("=", 1) for p in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                 __import__("base64").b64decode(parts["s"]), int(parts["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    final_bare = f"c=biws,r={parts['r']}"
    message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.new(stored, message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{final_bare},p={__import__('base64').b64encode(proof).decode()}".encode()
    _pg_send(sock, b"p", final)


def pg_session(sock, target, password, context, report):
    started = time.monotonic()
    if target.get("tls"):
        sock.sendall(struct.pack("!II", 8, 80877103))
        if _exactly(sock, 1) != b"S":
            raise StepFailed("tls", "the server refused TLS")
        try:
            sock = context.wrap_socket(sock, server_hostname=target["host"])
        except (ssl.SSLError, OSError) as e:
            raise StepFailed("tls", e) from None
        report["tls"] = {"ms": _ms(started), "version": sock.version(), "verified": True}
    else:
        report["tls"] = {"ms": 0, "version": None, "verified": False}
    started = time.monotonic()
    params = b"user\0" + target["user"].encode() + b"\0"
    params += b"database\0" + (target.get("database") or "postgres").encode() + b"\0\0"
    sock.sendall(struct.pack("!II", len(params) + 8, 3 << 16) + params)
    while True:
        kind, body = _pg_message(sock)
        if kind == "E":
            raise StepFailed("auth", _pg_error(body))
        if kind != "R":
            continue
        code = struct.unpack("!I", body[:4])[0]
        if code == 0:
            break
        if code == 3:
            _pg_send(sock, b"p", password.encode() + b"\0")
        elif code == 5:
            inner = hashlib.md5((password + target["user"]).encode()).hexdigest()
            outer = hashlib.md5(inner.encode() + body[4:8]).hexdigest()
            _pg_send(sock, b"p", b"md5" + outer.encode() + b"\0")
        elif code == 10:
            _scram(sock, target["user"], password, body[4:].split(b"\0"))
        elif code in (11, 12):
            continue
        else:
            raise StepFailed("auth", f"unsupported authentication request {code}")
    while _pg_message(sock)[0] != "Z":  # parameters, key data, ready
        pass
    report["auth"] = {"ms": _ms(started), "as": target["user"]}
    latencies = []
    for _ in range(2):
        started = time.monotonic()
        _pg_send(sock, b"Q", b"SELECT 1\0")
        while True:
            kind, body = _pg_message(sock)
            if kind == "E":
                raise StepFailed("query", _pg_error(body))
            if kind == "Z":
                break
        latencies.append(_ms(started))
    _pg_send(sock, b"X", b"")
    report["query"] = {"ms": latencies}


# --- one endpoint ---------------------------------------------------------------


def _password(target):
    """The IAM token, or the secret's password (read with the role)."""
    import boto3

    if target.get("auth") == "iam":
        return boto3.client("rds").generate_db_auth_token(
            DBHostname=target["host"], Port=int(target["port"]),
            DBUsername=target["user"], Region=os.environ.get("AWS_REGION"))
    value = boto3.client("secretsmanager").get_secret_value(SecretId=target["secret_arn"])
    return json.loads(value["SecretString"])["password"]


def probe(target, context=None):
    """The report for one endpoint: each step's time and what it found."""
    report = {"endpoint": target.get("name"), "host": target["host"], "port": target["port"],
              "user": target["user"]}
    timeout = float(target.get("timeout", 5))
    sock = None
    try:
        started = time.monotonic()
        try:
            address = socket.getaddrinfo(target["host"], target["port"], 0, socket.SOCK_STREAM)
        except OSError as e:
            raise StepFailed("resolve", e) from None
        report["resolve"] = {"ms": _ms(started)}
        started = time.monotonic()
        try:
            sock = socket.create_connection((target["host"], target["port"]), timeout=timeout)
        except OSError as e:
            raise StepFailed("connect", e) from None
        report["connect"] = {"ms": _ms(started), "address": address[0][4][0]}
        try:
            password = _password(target)
        except Exception as e:  # noqa: BLE001 - any reason the credentials are out of reach
            raise StepFailed("credentials", e) from None
        context = context or ssl.create_default_context()
        session = pg_session if target.get("engine") == "POSTGRESQL" else mysql_session
        try:
            session(sock, target, password, context, report)
        except StepFailed:
            raise
        except (OSError, ValueError, IndexError) as e:
            raise StepFailed("auth" if "auth" not in report else "query", e) from None
        report["verdict"] = "ok"
    except StepFailed as e:
        report.update(verdict="failed", failed_at=e.step, error=e.error)
    finally:
        if sock is not None:
            sock.close()
    return report


def lambda_handler(event, context):
    return {"results": [probe(t) for t in event.get("targets", [])]}
