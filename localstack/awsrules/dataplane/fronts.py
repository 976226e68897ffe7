"""The two faces of a client session, one per engine family: what the proxy
says to its client (greeting, TLS, asking for a password, refusing with the
error RDS Proxy gives), and how it logs in to the real server and relays.
The listener (listener.py) decides; these only speak.

Refusals use the wording of AWS's "Troubleshooting for RDS Proxy" page:
MySQL clients get `ERROR 3159 (HY000): This RDS Proxy requires TLS
connections.`, `ERROR 1045 (28000): Access denied for user ...`, `ERROR
9501 (HY000): Timed-out waiting to acquire database connection`;
PostgreSQL clients the page's texts for the same cases."""

from dataclasses import dataclass
from typing import Optional

from .wire import mysql, pg


@dataclass
class Hello:
    """Who the client says it is."""

    user: str
    database: Optional[str]
    tls: bool


class MysqlFront:
    family = "MYSQL"

    def __init__(self, sock, tls_context, server_version: str, connection_id: int):
        self.conn = mysql.ClientConnection(sock, server_version, connection_id, tls_context)

    def hello(self) -> Optional[Hello]:
        login = self.conn.greet()
        return Hello(login.user, login.database, login.tls)

    def clear_password(self) -> str:
        return self.conn.ask_clear_password()

    def check_password(self, password: str, auth_type: str) -> bool:
        # MYSQL_CACHING_SHA2_PASSWORD clients are checked as native ones.
        return self.conn.check_native_password(password)

    def refuse_tls(self, why: str) -> None:
        # MySQL clients get the one error code, whatever the reason.
        self.conn.send_error(3159, "HY000", "This RDS Proxy requires TLS connections.")

    def refuse_login(self, user: str, why: str) -> None:
        self.conn.send_error(
            1045, "28000", f"Access denied for user '{user}'@'%' (using password: YES)"
        )

    def refuse_borrow(self) -> None:
        self.conn.send_error(9501, "HY000", "Timed-out waiting to acquire database connection")

    def refuse_backend(self, error) -> None:
        """The DB's own answer to the proxy's login (an unknown database)."""
        self.conn.send_error(error.code, error.sqlstate, error.message)

    def backend_login(self, server, user: str, password: str, database: Optional[str]):
        login = self.conn.login
        return mysql.login(server.host, server.port, user, password, database,
                           client_flags=login.client_flags, charset=login.charset)

    def serves(self, backend) -> bool:
        return backend.serves(self.conn.login)

    def accept(self, backend) -> None:
        self.conn.send_ok()

    def relay(self, backend, on_query, idle_timeout) -> str:
        """`on_query(text, prepared)` sees each statement."""

        def on_command(payload):
            text = mysql.query_text(payload)
            if text is not None:
                on_query(text, payload[0] == mysql.COM_STMT_PREPARE)

        return mysql.relay(self.conn, backend, on_command, idle_timeout)

    reset = staticmethod(mysql.reset)
    execute = staticmethod(mysql.execute)
    LoginError = mysql.LoginError

    def close(self) -> None:
        self.conn.close()


class PgFront:
    family = "POSTGRESQL"

    def __init__(self, sock, tls_context, server_version: str, connection_id: int):
        self.conn = pg.ClientConnection(sock, tls_context)
        self.startup = None

    def hello(self) -> Optional[Hello]:
        startup = self.conn.read_startup()
        if isinstance(startup, pg.CancelRequest):
            return None
        if not startup.user:
            self.conn.send_error(
                "28000",
                "A user name is missing from the connection startup packet. Provide a user "
                "name for this connection.",
            )
            return None
        self.startup = startup
        return Hello(startup.user, startup.database, startup.tls)

    def clear_password(self) -> str:
        return self.conn.ask_cleartext_password()

    def check_password(self, password: str, auth_type: str) -> bool:
        if auth_type == "POSTGRES_MD5":
            return self.conn.check_md5(password)
        return self.conn.check_scram_sha_256(password)

    def refuse_tls(self, why: str) -> None:
        self.conn.send_error("28000", why)

    def refuse_login(self, user: str, why: str) -> None:
        self.conn.send_error("28P01", why)

    def refuse_borrow(self) -> None:
        self.conn.send_error("08006", "Timed-out waiting to acquire database connection.")

    def refuse_backend(self, error) -> None:
        self.conn.send_error(error.sqlstate, f"Request returned an error: {error.message}")

    def backend_login(self, server, user: str, password: str, database: Optional[str]):
        return pg.login(server.host, server.port, user, password, database,
                        self.startup.parameters)

    def serves(self, backend) -> bool:
        return backend.serves(self.startup)

    def accept(self, backend) -> None:
        self.conn.send_auth_ok()
        self.conn.send(backend.after_auth)

    def relay(self, backend, on_query, idle_timeout) -> str:
        """`on_query(text, prepared)` sees each statement (a Parse with a
        statement name is a prepared statement; an unnamed one is not)."""

        def on_message(kind, body):
            text = pg.query_text(kind, body)
            if text is not None:
                on_query(text, kind == "P" and not body.startswith(b"\0"))

        return pg.relay(self.conn, backend, on_message, idle_timeout)

    reset = staticmethod(pg.reset)
    execute = staticmethod(pg.execute)
    LoginError = pg.LoginError

    def close(self) -> None:
        self.conn.close()


FRONTS = {"MYSQL": MysqlFront, "POSTGRESQL": PgFront}
PORTS = {"MYSQL": 3306, "POSTGRESQL": 5432}
