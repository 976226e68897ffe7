"""RDS Proxy's data path: a listener per proxy endpoint that carries real
client connections to the DB's real server, and refuses them as RDS Proxy
does.

Each available proxy (its default endpoint) and each proxy endpoint listens
on a port of its own on 127.0.0.1, found by its endpoint's name through
network.py (`finder`). A client connection, in order:

1. network: the caller (a function's invocation, by its source address)
   is in the endpoint's VPC and one of its security groups admits the
   caller's on the port; otherwise the packets are dropped (the client's
   connect times out; nothing is logged, as on AWS);
2. TLS: required when RequireTLS is on, and for IAM authentication; the
   certificate names the endpoint and is signed by the emulator's CA;
3. the client's login: with IAM authentication (the user's `IAMAuth`
   REQUIRED, or end-to-end IAM), the password is an IAM token that
   verifies (tokens.py) and the signer's identity policies, as IAM saw
   them `iam_propagation` seconds ago, allow `rds-db:connect` on
   `arn:aws:rds-db:REGION:ACCOUNT:dbuser:PRX-ID/USER`; else the password of
   the user's secret;
4. the proxy's own login to the DB: the rules of the target's health
   (rds.py `target_problem`: the DB's groups admit the proxy's, its role
   may read the secret, ...), then a real login with the secret's user and
   password (or, end-to-end IAM, the role's rds-db:connect and an
   IAM-enabled DB user), through the pool (pool.py): at most
   MaxConnectionsPercent of the DB's max_connections, a wait of at most
   ConnectionBorrowTimeout;
5. the session, relayed (wire/): queries counted, a statement that sets
   session state pins the session, IdleClientTimeout closes an idle client.

Each refusal is the error RDS Proxy gives (fronts.py) and a line in the
proxy's log group; the metrics go to CloudWatch (telemetry.py)."""

import itertools
import socket
import threading
import time
import traceback

from moto.ec2.models import ec2_backends
from moto.rds.models import rds_backends

from .. import policy, rds, settings
from ..ec2 import group_admits
from . import databases, dbservers, network, pinning, telemetry, tls, tokens
from .fronts import FRONTS, PORTS
from .pool import BorrowTimeout, Pool, share

_lock = threading.Lock()
_listeners: dict = {}  # (account, region, owner, endpoint name) -> Listener
_pools: dict = {}  # (account, region, proxy owner, server key) -> Pool
_figures: dict = {}  # (account, region, proxy owner) -> Stats
_connection_ids = itertools.count(1000)

class Stats:
    """A proxy's figures, published as its CloudWatch metrics: at each
    change, and, as RDS Proxy publishes them each minute, every minute
    (settings.py's `alarm_minute` long) while a client is connected, so a
    session pinned for fifteen minutes shows in each of them."""

    def __init__(self, account_id, region, proxy_name):
        self.where = (account_id, region, proxy_name)
        self.clients = self.pinned = self.queries = 0
        self.lock = threading.Lock()
        self.ticking = False

    def _gauges(self) -> dict:
        return {
            "ClientConnections": self.clients,
            "DatabaseConnectionsCurrentlySessionPinned": self.pinned,
        }

    def change(self, pool=None, **deltas) -> None:
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)
            values = self._gauges()
            if "queries" in deltas:
                values["QueryRequests"] = deltas["queries"]
            if pool is not None:
                values["DatabaseConnections"] = pool.open
                values["MaxDatabaseConnectionsAllowed"] = pool.limit()
            start = self.clients > 0 and not self.ticking
            self.ticking = self.ticking or start
        telemetry.metrics(*self.where, values)
        if start:
            threading.Thread(target=self._tick, daemon=True, name="proxy metrics").start()

    def _tick(self) -> None:
        """Each minute while a client is connected: the gauges again."""
        while True:
            time.sleep(settings.scale("alarm_minute"))
            with self.lock:
                if self.clients <= 0:
                    self.ticking = False
                    return
                values = self._gauges()
            telemetry.metrics(*self.where, values)


def _stats(account_id, region, proxy) -> Stats:
    key = (account_id, region, rds.eni_owner(proxy))
    with _lock:
        if key not in _figures:
            _figures[key] = Stats(account_id, region, proxy.db_proxy_name)
        _figures[key].where = (account_id, region, proxy.db_proxy_name)
        return _figures[key]


class Listener:
    """One proxy endpoint: its socket and the thread that accepts."""

    def __init__(self, backend, proxy, endpoint_name: str, host: str, port: int):
        self.backend, self.proxy = backend, proxy
        self.endpoint_name, self.host, self.port = endpoint_name, host, port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.local_port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"proxy {host}").start()

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, addr), daemon=True).start()

    # --- the rules of one endpoint ------------------------------------------

    def serving(self) -> bool:
        return (
            self.proxy in self.backend.db_proxies.values()
            and self.proxy.status in ("available", "modifying")
            and (self.endpoint_name == "default" or self._endpoint() is not None)
        )

    def _endpoint(self):
        for ep in rds.endpoints(self.backend).values():
            if ep.db_proxy_endpoint_name == self.endpoint_name and ep.status in (
                "available",
                "modifying",
            ):
                return ep
        return None

    def admits(self, caller) -> str | None:
        """The network rule: None when `caller` may reach this endpoint."""
        holder = self.proxy if self.endpoint_name == "default" else self._endpoint()
        if holder is None or not self.serving():
            return f"{self.host} is not available"
        if caller is None or caller.vpc_id is None:
            return "the caller is not in a VPC (a proxy is reachable only from inside its VPC)"
        if caller.vpc_id != holder.vpc_id:
            return f"the caller is in {caller.vpc_id}, the proxy endpoint in {holder.vpc_id}"
        ec2 = ec2_backends[self.backend.account_id][self.backend.region_name]
        if not group_admits(ec2, holder.vpc_security_group_ids, caller.security_group_ids,
                            self.port):
            return (
                f"the proxy's security groups {', '.join(holder.vpc_security_group_ids)} do not "
                f"admit the caller's {', '.join(caller.security_group_ids) or '(none)'} on "
                f"port {self.port}"
            )
        return None

    # --- one client ---------------------------------------------------------

    def _serve(self, sock, addr) -> None:
        try:
            caller = network.caller_by_ip(addr[0])
            if self.admits(caller):
                _drop(sock)
                return
            Session(self, caller, sock, addr).run()
        except Exception:  # noqa: BLE001 - a bug here must not hang the client
            traceback.print_exc()
            sock.close()


def _drop(sock) -> None:
    """What a dropped SYN looks like from here: nothing, until the client
    gives up."""
    sock.settimeout(60)
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass
    sock.close()


class Refused(Exception):
    """The client is refused: `send` sends the error, `line` is logged."""

    def __init__(self, line: str, send):
        super().__init__(line)
        self.line, self.send = line, send


class Session:
    def __init__(self, listener: Listener, caller, sock, addr):
        self.l, self.caller, self.addr = listener, caller, addr
        self.backend, self.proxy = listener.backend, listener.proxy
        self.id = next(_connection_ids)
        self.region, self.account = self.backend.region_name, self.backend.account_id
        self.family = self.proxy.engine_family
        target = _target(self.backend, self.proxy)
        version = "8.0.36"
        if target is not None and databases.has_server(target):
            running = dbservers.get(databases.key_of(self.backend, target))
            version = running.version if running else version
        self.front = FRONTS[self.family](sock, tls.server_context(listener.host), version, self.id)
        self.stats = _stats(self.account, self.region, self.proxy)

    def log(self, level: str, message: str) -> None:
        telemetry.log(self.account, self.region, self.proxy.db_proxy_name, level,
                      self.l.endpoint_name, self.id, message)

    def run(self) -> None:
        self.stats.change(clients=1)
        try:
            self._run()
        except Refused as refused:
            self.log("WARN", refused.line)
            try:
                refused.send()
            except OSError:
                pass
        except (OSError, ConnectionError, ValueError) as error:
            self.log("INFO", f"The client connection closed. Reason: {error}")
        finally:
            self.front.close()
            self.stats.change(clients=-1)

    def _run(self) -> None:
        hello = self.front.hello()
        if hello is None:
            return
        self.log("INFO", f"A new client connected from {self.addr[0]}:{self.addr[1]}.")
        user = hello.user
        iam = self._iam_required(user)
        if (self.proxy.require_tls or iam) and not hello.tls:
            why = (
                "This RDS Proxy requires TLS connections."
                if self.proxy.require_tls
                else "IAM authentication is allowed only with SSL connections."
            )
            raise Refused(why, lambda: self.front.refuse_tls(why))
        end_to_end = getattr(self.proxy, "default_auth_scheme", "NONE") == "IAM_AUTH"
        secret = None
        if not end_to_end:
            # The proxy logs in with the user's secret, however the client does.
            entry, secret, why = _credentials(self.backend, self.proxy, user)
            if secret is None:
                raise Refused(why, lambda: self.front.refuse_login(user, why))
        if iam:
            self._check_token(user)
        else:
            auth_type = entry.get("ClientPasswordAuthType", "")
            if not self.front.check_password(secret["password"], auth_type):
                why = f"The password that was provided for the role {user} is wrong."
                raise Refused(why, lambda: self.front.refuse_login(user, why))
        self._session(user, hello.database, secret)

    def _iam_required(self, user: str) -> bool:
        if getattr(self.proxy, "default_auth_scheme", "NONE") == "IAM_AUTH":
            return True
        entry, _, _ = _credentials(self.backend, self.proxy, user, read=False)
        return entry is not None and entry.get("IAMAuth") == "REQUIRED"

    def _check_token(self, user: str) -> None:
        refused = f"IAM authentication failed for user {user}. Check the IAM token for this user and try again."

        def refuse(detail):
            return Refused(f"{refused} ({detail})", lambda: self.front.refuse_login(user, refused))

        token = self.front.clear_password()
        try:
            signer = tokens.verify(token, self.l.host, self.l.port, user, self.region)
        except tokens.TokenRefused as e:
            raise refuse(str(e)) from None
        resource = (
            f"arn:aws:rds-db:{self.region}:{self.account}:dbuser:{self.proxy.unique_id}/{user}"
        )
        documents = policy.documents_as_of(signer.account_id, signer.principal_arn)
        context = {"aws:PrincipalArn": signer.principal_arn,
                   "aws:PrincipalAccount": signer.account_id}
        if not policy.allows(documents, "rds-db:connect", resource, context):
            raise refuse(
                f"{signer.principal_arn} is not allowed rds-db:connect on {resource}"
            )

    def _session(self, user: str, database, secret) -> None:
        db = _target(self.backend, self.proxy)
        group = self.proxy.proxy_target_groups["default"]
        deadline = time.monotonic() + float(group.borrow_timeout or 120)
        pool = None
        conn, key, said = None, None, set()
        started = time.monotonic()
        while conn is None:
            problem = _login_problem(self.backend, self.proxy, db)
            if problem is None:
                pool = _pool(self.backend, self.proxy, db)
                key = (user, database)
                try:
                    conn = pool.borrow(key, deadline)
                    if conn is not None and not self.front.serves(conn):
                        pool.give_back(key, conn, reusable=False)
                        conn = pool.borrow(key, deadline)
                except BorrowTimeout:
                    break
                if conn is None:
                    try:
                        conn = self._open(db, user, database, secret)
                    except Exception as e:
                        pool.failed()
                        if isinstance(e, self.front.LoginError) and not _auth_error(e):
                            raise Refused(f"Request returned an error: {e.message}",
                                          lambda e=e: self.front.refuse_backend(e)) from None
                        problem = f"The proxy could not log in to the database: {e}"
                        conn = None
            if problem is not None:
                if problem not in said:
                    self.log("WARN", problem)
                    said.add(problem)
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        if conn is None:
            raise Refused("Timed-out waiting to acquire database connection",
                          self.front.refuse_borrow)
        telemetry.metrics(self.account, self.region, self.proxy.db_proxy_name,
                          {"DatabaseConnectionsBorrowLatency":
                           int((time.monotonic() - started) * 1e6)},
                          {"DatabaseConnectionsBorrowLatency": "Microseconds"})
        self.front.accept(conn)
        self._relay(pool, key, conn, group)

    def _open(self, db, user, database, secret):
        server = databases.server(self.backend, db)
        if getattr(self.proxy, "default_auth_scheme", "NONE") == "IAM_AUTH":
            password = databases.iam_password(self.backend, db, user)
            conn = self.front.backend_login(server, user, password, database)
        else:
            conn = self.front.backend_login(server, secret["username"], secret["password"],
                                            database)
        try:
            self._init(conn)
        except Exception:
            conn.close()
            raise
        return conn

    def _init(self, conn) -> None:
        """The proxy's InitQuery, on a new DB connection and again after
        each reset (which undoes what it set)."""
        init = getattr(self.proxy.proxy_target_groups["default"], "init_query", None)
        if init:
            self.front.execute(conn, init)

    def _reset(self, conn) -> bool:
        """A DB connection made clean for its next client: True if it is."""
        if not self.front.reset(conn):
            return False
        try:
            self._init(conn)
        except Exception:  # noqa: BLE001 - then it is not reused
            return False
        return True

    def _relay(self, pool, key, conn, group) -> None:
        self.stats.change(pool=pool)
        pinned = False
        filters = set(group.session_pinning_filters or [])

        def on_query(text: str, prepared: bool) -> None:
            nonlocal pinned
            self.stats.change(queries=1)
            if pinned:
                return
            reason = pinning.pins(self.family, text, prepared, filters)
            if reason:
                pinned = True
                self.stats.change(pinned=1)
                digest = " ".join(text.split())[:80]
                self.log(
                    "WARN",
                    "The client session was pinned to the database connection for the "
                    "remainder of the session. The proxy can't reuse this connection until "
                    f'the session ends. Reason: {reason}. Digest: "{digest}".',
                )

        idle = float(self.proxy.idle_client_timeout or 1800)
        how = "backend_closed"
        try:
            how = self.front.relay(conn, on_query, idle)
        finally:
            if pinned:
                self.stats.change(pinned=-1)
            reusable = how in ("quit", "client_closed", "idle") and self._reset(conn)
            pool.give_back(key, conn, reusable)
            self.stats.change(pool=pool)
        if how == "idle":
            self.log(
                "INFO",
                f"The client connection closed. Reason: the client was idle longer than "
                f"IdleClientTimeout ({int(idle)} seconds).",
            )


# --- what the proxy logs in to ------------------------------------------------


def _target(backend, proxy):
    """The DB (instance, or the cluster) registered in the default target
    group, or None."""
    group = proxy.proxy_target_groups.get("default")
    for reg in getattr(group, "targets", []) or []:
        db = rds._db_of(backend, reg)
        if db is not None:
            return db
    return None


def _login_problem(backend, proxy, db) -> str | None:
    """Why the proxy cannot log in to `db` now (as its target's health
    says), or None."""
    if db is None:
        return "The proxy has no registered target (register-db-proxy-targets)."
    if not databases.has_server(db):
        return f"The emulator has no {db.engine} server: the connection cannot be carried."
    problem = rds.target_problem(backend, proxy, db)
    return None if problem is None else problem[1]


def _pool(backend, proxy, db) -> Pool:
    key = (backend.account_id, backend.region_name, rds.eni_owner(proxy),
           databases.key_of(backend, db))
    group = proxy.proxy_target_groups["default"]

    def most():
        return databases.max_connections(backend, db)

    with _lock:
        if key not in _pools:
            _pools[key] = Pool(
                lambda: share(group.max_connections, most()),
                lambda: share(group.max_idle_connections, most()),
            )
        return _pools[key]


def _credentials(backend, proxy, user, read=True):
    """(auth entry, secret {username, password} or None, why not) for the
    DB user `user`: the entry naming it, else the secret whose username it
    is (read with the proxy's role, as the proxy reads it)."""
    for entry in proxy.auth:
        if entry.get("UserName") == user:
            if not read:
                return entry, None, ""
            secret, why = rds.read_secret(backend, proxy, entry.get("SecretArn"))
            return entry, secret, why
    for entry in proxy.auth:
        if entry.get("UserName") or not entry.get("SecretArn"):
            continue
        secret, _ = rds.read_secret(backend, proxy, entry["SecretArn"], check_role=False)
        if secret and secret.get("username") == user:
            if not read:
                return entry, None, ""
            secret, why = rds.read_secret(backend, proxy, entry["SecretArn"])
            return entry, secret, why
    why = (
        f"This RDS proxy has no credentials for the role {user}. Check the credentials for "
        "this role and try again."
    )
    return None, None, why


def _auth_error(error) -> bool:
    return getattr(error, "code", None) == 1045 or getattr(error, "sqlstate", "") == "28P01"


# --- finding endpoints by name ----------------------------------------------


def _listener(backend, proxy, endpoint_name: str, host: str, port: int) -> Listener:
    key = (backend.account_id, backend.region_name, rds.eni_owner(proxy), endpoint_name)
    with _lock:
        found = _listeners.get(key)
        if found is None or found.host != host:
            if found is not None:
                found.close()
            found = _listeners[key] = Listener(backend, proxy, endpoint_name, host, port)
        return found


def sweep(backend) -> None:
    """Closes the listeners of proxies and endpoints that are gone."""
    owners = {rds.eni_owner(p) for p in backend.db_proxies.values()}
    with _lock:
        for key, found in list(_listeners.items()):
            if key[:2] == (backend.account_id, backend.region_name) and key[2] not in owners:
                found.close()
                del _listeners[key]
                for pool_key in [k for k in _pools if k[:3] == key[:3]]:
                    _pools.pop(pool_key).close()


def finder(caller, host: str, port: int):
    """network.py's finder for proxy endpoints in the caller's account and
    region."""
    if caller is None:
        return None
    backend = rds_backends[caller.account_id][caller.region]
    rds.sweep(backend)
    sweep(backend)
    databases.sweep(backend)
    for proxy in list(backend.db_proxies.values()):
        if proxy.status not in ("available", "modifying"):
            continue
        wanted = PORTS.get(proxy.engine_family)
        names = [("default", proxy.endpoint)] + [
            (ep.db_proxy_endpoint_name, ep.endpoint)
            for ep in rds.endpoints(backend).values()
            if ep.db_proxy_name == proxy.db_proxy_name and ep.status in ("available", "modifying")
        ]
        for name, address in names:
            if address.lower() != host.lower():
                continue
            if wanted is None:
                return network.Endpoint(host, port, lambda: 0,
                                        lambda c: f"the emulator carries no {proxy.engine_family} "
                                                  "connections", "proxy")
            if port != wanted:
                return network.Endpoint(host, port, lambda: 0,
                                        lambda c: f"nothing listens on port {port}", "proxy")
            found = _listener(backend, proxy, name, address, port)
            return network.Endpoint(host, port, lambda: found.local_port, found.admits, "proxy")
    return None


def reset() -> None:
    with _lock:
        for found in _listeners.values():
            found.close()
        for pool in _pools.values():
            pool.close()
        _listeners.clear()
        _pools.clear()
        _figures.clear()


def install() -> None:
    network.add_finder(finder)
