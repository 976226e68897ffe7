"""The wire protocols (dataplane/wire) and the emulator's CA (dataplane/tls),
against real MariaDB and PostgreSQL servers (dataplane/dbservers) and the
real drivers that function code uses (pymysql, pg8000).

Each test runs a minimal proxy: a thread accepting on 127.0.0.1 that
authenticates its client with the server side of wire/, logs in to the real
server with the client side, and relays. A backend whose client said goodbye
is reset and pooled, so a later client can be seen reusing it."""

import os
import queue
import socket
import ssl
import stat
import struct
import threading
import time
import unittest

import pg8000.native
import pymysql
from cryptography import x509
from pymysql.constants import CLIENT

from awsrules.dataplane import dbservers, tls, wire
from awsrules.dataplane.wire import mysql, pg

MASTER_USER, MASTER_PASSWORD, DATABASE = "admin", "master-Secret1", "app"
IAM_TOKEN = "proxy.example:3306/?Action=connect&DBUser=admin&X-Amz-Signature=" + "ab" * 400
HOSTNAME = "localhost"  # the certificate's name: clients connect by it and verify it
_KEY = f"test_wire/{os.getpid()}"
servers: dict = {}


def setUpModule():
    servers["mysql"] = dbservers.ensure(f"{_KEY}/mysql", "mysql", MASTER_USER, MASTER_PASSWORD, DATABASE)
    servers["postgres"] = dbservers.ensure(f"{_KEY}/pg", "postgres", MASTER_USER, MASTER_PASSWORD, DATABASE)


def tearDownModule():
    dbservers.stop(f"{_KEY}/mysql")
    dbservers.stop(f"{_KEY}/pg")


def trusting_context() -> ssl.SSLContext:
    """What function code does: trust the bundle, verify the hostname."""
    return ssl.create_default_context(cafile=tls.ca_bundle_path())


class Proxy:
    """Accepts on 127.0.0.1:port; each connection runs `session(proxy, sock)`
    in a thread of its own, whose result (or exception) lands in `outcomes`."""

    def __init__(self, session, **options):
        self.session, self.options = session, options
        self.outcomes: queue.Queue = queue.Queue()
        self.seen: list = []  # what on_command / on_message saw
        self.passwords: list = []  # what clients sent in clear
        self.pool: list = []  # backend connections back from a clean goodbye
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:  # closed by close()
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        try:
            self.outcomes.put(self.session(self, sock, **self.options))
        except Exception as error:  # the test looks at it
            self.outcomes.put(error)
            sock.close()

    def outcome(self):
        return self.outcomes.get(timeout=5)

    def backend(self, fits, login):
        """A pooled connection that fits, else a new one."""
        for conn in list(self.pool):
            if fits(conn):
                self.pool.remove(conn)
                return conn
        return login()

    def close(self):
        self.stopping = True
        self.listener.close()
        for conn in self.pool:
            conn.close()


def mysql_session(proxy, sock, auth="native", use_tls=True, idle_timeout=None):
    server = servers["mysql"]
    context = tls.server_context(HOSTNAME) if use_tls else None
    client = mysql.ClientConnection(sock, server.version, 42, context)
    login = client.greet()
    if auth == "clear":
        password = client.ask_clear_password()
        proxy.passwords.append((password, login.tls))
        ok = password == IAM_TOKEN
    else:
        ok = client.check_native_password(MASTER_PASSWORD)
    if not ok:
        client.send_error(1045, "28000", f"Access denied for user '{login.user}' (proxy)")
        client.close()
        return "refused"
    backend = proxy.backend(lambda conn: conn.serves(login), lambda: mysql.login(
        server.host, server.port, MASTER_USER, MASTER_PASSWORD, login.database,
        login.client_flags, login.charset))
    client.send_ok()
    outcome = mysql.relay(client, backend, proxy.seen.append, idle_timeout)
    client.close()
    if outcome == wire.QUIT and mysql.reset(backend):
        proxy.pool.append(backend)
    else:
        backend.close()
    return outcome


def pg_session(proxy, sock, auth="scram", use_tls=True, idle_timeout=None):
    server = servers["postgres"]
    client = pg.ClientConnection(sock, tls.server_context(HOSTNAME) if use_tls else None)
    startup = client.read_startup()
    if isinstance(startup, pg.CancelRequest):
        client.close()
        return startup
    if auth == "clear":
        password = client.ask_cleartext_password()
        proxy.passwords.append((password, startup.tls))
        ok = password == IAM_TOKEN
    elif auth == "md5":
        ok = client.check_md5(MASTER_PASSWORD)
    else:
        ok = client.check_scram_sha_256(MASTER_PASSWORD)
    if not ok:
        client.send_error(pg.INVALID_PASSWORD, f'password authentication failed for user "{startup.user}"')
        client.close()
        return "refused"
    backend = proxy.backend(lambda conn: conn.serves(startup), lambda: pg.login(
        server.host, server.port, MASTER_USER, MASTER_PASSWORD, startup.database, startup.parameters))
    client.send_auth_ok()
    client.send(backend.after_auth)
    outcome = pg.relay(client, backend, lambda kind, body: proxy.seen.append(pg.query_text(kind, body)),
                       idle_timeout)
    client.close()
    if outcome == wire.QUIT and pg.reset(backend):
        proxy.pool.append(backend)
    else:
        backend.close()
    return outcome


class ProxyTest(unittest.TestCase):
    def proxy(self, session, **options) -> Proxy:
        proxy = Proxy(session, **options)
        self.addCleanup(proxy.close)
        return proxy

    def mysql_client(self, proxy, password=IAM_TOKEN, **options):
        options.setdefault("ssl", trusting_context())
        return pymysql.connect(host=HOSTNAME, port=proxy.port, user=MASTER_USER, password=password,
                               database=DATABASE, connect_timeout=5, **options)

    def pg_client(self, proxy, password=MASTER_PASSWORD, **options):
        options.setdefault("ssl_context", trusting_context())
        return pg8000.native.Connection(MASTER_USER, host=HOSTNAME, port=proxy.port, password=password,
                                        database=DATABASE, timeout=5, **options)


class MySQL(ProxyTest):
    def test_an_iam_token_in_clear_over_tls_then_queries_relay_and_the_backend_is_pooled(self):
        proxy = self.proxy(mysql_session, auth="clear")
        conn = self.mysql_client(proxy)
        self.assertTrue(conn.server_capabilities & CLIENT.SSL)
        self.assertFalse(conn.server_capabilities & CLIENT.COMPRESS)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS pets (name VARCHAR(20))")
            cur.execute("DELETE FROM pets")
            cur.execute("INSERT INTO pets VALUES ('rex'), ('tom')")
            conn.commit()
            cur.execute("SELECT name FROM pets ORDER BY name")
            self.assertEqual(cur.fetchall(), (("rex",), ("tom",)))
            cur.execute("SET @x = 1")
            cur.execute("SELECT @x, CONNECTION_ID(), DATABASE()")
            x, first_id, database = cur.fetchone()
        self.assertEqual((x, database), (1, DATABASE))
        self.assertEqual(proxy.passwords, [(IAM_TOKEN, True)])
        self.assertIn("SET @x = 1", [mysql.query_text(p) for p in proxy.seen])
        conn.select_db("mysql")  # COM_INIT_DB, which a reset would keep
        conn.close()  # COM_QUIT: not relayed, the backend goes back to the pool
        self.assertEqual(proxy.outcome(), wire.QUIT)

        conn = self.mysql_client(proxy)
        with conn.cursor() as cur:
            cur.execute("SELECT @x, CONNECTION_ID(), DATABASE()")
            self.assertEqual(cur.fetchone(), (None, first_id, DATABASE))  # same session, reset
        conn.close()
        self.assertEqual(proxy.outcome(), wire.QUIT)

    def test_a_native_password_is_checked_and_a_wrong_one_gets_our_error(self):
        proxy = self.proxy(mysql_session, use_tls=False)
        conn = self.mysql_client(proxy, MASTER_PASSWORD, ssl=None)
        self.assertFalse(conn.server_capabilities & CLIENT.SSL)
        with conn.cursor() as cur:
            cur.execute("SELECT USER()")
            self.assertTrue(cur.fetchone()[0].startswith(MASTER_USER + "@"))
        conn.close()
        self.assertEqual(proxy.outcome(), wire.QUIT)
        with self.assertRaises(pymysql.err.OperationalError) as caught:
            self.mysql_client(proxy, "not-it", ssl=None)
        self.assertEqual(caught.exception.args[0], 1045)
        self.assertIn("(proxy)", caught.exception.args[1])
        self.assertEqual(proxy.outcome(), "refused")

    def test_wires_own_client_side_follows_a_switch_to_clear_text(self):
        proxy = self.proxy(mysql_session, auth="clear", use_tls=False)
        mysql.login("127.0.0.1", proxy.port, MASTER_USER, IAM_TOKEN, DATABASE).close()
        self.assertEqual(proxy.passwords, [(IAM_TOKEN, False)])
        self.assertEqual(proxy.outcome(), wire.CLIENT_CLOSED)
        with self.assertRaises(mysql.LoginError) as caught:
            mysql.login("127.0.0.1", proxy.port, MASTER_USER, "not-it", DATABASE)
        self.assertEqual(caught.exception.code, 1045)
        self.assertEqual(proxy.outcome(), "refused")

    def test_the_clients_flags_reach_the_backend_and_big_packets_pass_in_pieces(self):
        dbservers.admin_sql(f"{_KEY}/mysql", "SET GLOBAL max_allowed_packet = 67108864")
        proxy = self.proxy(mysql_session)  # TLS: its records and partial writes in the relay too
        conn = self.mysql_client(proxy, MASTER_PASSWORD, client_flag=CLIENT.MULTI_STATEMENTS,
                                 max_allowed_packet=64 << 20)
        big = "x" * (17 << 20)  # over one packet's 16 MB both ways
        with conn.cursor() as cur:
            cur.execute("SELECT 1; SELECT 2")  # a syntax error unless MULTI_STATEMENTS got through
            self.assertEqual(cur.fetchall(), ((1,),))
            self.assertTrue(cur.nextset())
            self.assertEqual(cur.fetchall(), ((2,),))
            cur.execute("SELECT LENGTH(%s), REPEAT('y', 17 << 20)", (big,))
            length, echoed = cur.fetchone()
        self.assertEqual((length, len(echoed)), (len(big), 17 << 20))
        self.assertTrue(any(len(p) > len(big) for p in proxy.seen))
        conn.close()
        self.assertEqual(proxy.outcome(), wire.QUIT)

    def test_pipelined_commands_all_get_answers_and_change_user_is_refused(self):
        proxy = self.proxy(mysql_session, use_tls=False)
        # wire's own client side, as a client that pipelines (pymysql does not)
        conn = mysql.login("127.0.0.1", proxy.port, MASTER_USER, MASTER_PASSWORD, DATABASE)
        self.addCleanup(conn.close)
        count, text = 2000, "x" * 3000
        query = mysql._frame(bytes([mysql.COM_QUERY]) + f"SELECT '{text}'".encode(), 0)
        threading.Thread(target=conn.sock.sendall, args=(query * count,), daemon=True).start()
        conn.sock.settimeout(5)
        packets = mysql._Packets(conn.sock)
        rows = 0
        for _ in range(count * 4):  # column count, column, row, OK (DEPRECATE_EOF)
            _, payload, _ = packets.read()
            rows += payload.endswith(text.encode())
        self.assertEqual(rows, count)
        packets.write(bytes([mysql.COM_CHANGE_USER]) + b"someone\0", 0)
        seq, payload, _ = packets.read()
        self.assertEqual((seq, payload[:3]), (1, b"\xff\x17\x04"))  # ERR 1047, answering seq 0
        self.assertEqual(len(proxy.seen), count + 1)
        packets.write(bytes([mysql.COM_QUIT]), 0)
        self.assertEqual(proxy.outcome(), wire.QUIT)

    def test_an_idle_client_is_cut_and_sees_error_2013(self):
        proxy = self.proxy(mysql_session, auth="clear", idle_timeout=0.3)
        conn = self.mysql_client(proxy)
        # From before the last query: the proxy's clock starts after it.
        started = time.monotonic()
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        self.assertEqual(proxy.outcome(), wire.IDLE)  # the proxy has closed the client
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        with self.assertRaises(pymysql.err.OperationalError) as caught:
            conn.cursor().execute("SELECT 1")
        self.assertEqual(caught.exception.args[0], 2013)
        self.assertIn("Lost connection", caught.exception.args[1])

    def test_a_client_that_does_not_trust_the_ca_or_names_another_host_fails(self):
        proxy = self.proxy(mysql_session, auth="clear")
        untrusting = ssl.create_default_context()  # the system's CAs only
        with self.assertRaises(pymysql.err.OperationalError):
            self.mysql_client(proxy, ssl=untrusting)
        self.assertIsInstance(proxy.outcome(), ssl.SSLError)
        with self.assertRaises(pymysql.err.OperationalError):  # the cert names localhost only
            pymysql.connect(host="127.0.0.1", port=proxy.port, user=MASTER_USER, password=IAM_TOKEN,
                            ssl=trusting_context(), connect_timeout=5)
        self.assertIsInstance(proxy.outcome(), ssl.SSLError)
        self.assertEqual(proxy.passwords, [])

    def test_the_backends_own_error_and_what_a_pooled_connection_serves(self):
        server = servers["mysql"]
        with self.assertRaises(mysql.LoginError) as caught:
            mysql.login(server.host, server.port, MASTER_USER, "wrong")
        self.assertEqual((caught.exception.code, caught.exception.sqlstate), (1045, "28000"))
        with self.assertRaises(mysql.LoginError) as caught:
            mysql.login(server.host, server.port, MASTER_USER, MASTER_PASSWORD, "no_such_db")
        self.assertEqual(caught.exception.code, 1049)
        client_flags = mysql.PROXY_CAPABILITIES | mysql.SSL | mysql.COMPRESS
        backend = mysql.login(server.host, server.port, MASTER_USER, MASTER_PASSWORD, DATABASE, client_flags)
        self.addCleanup(backend.close)
        self.assertFalse(backend.flags & (mysql.SSL | mysql.COMPRESS))
        login = mysql.Login(MASTER_USER, DATABASE, client_flags, backend.charset, mysql.NATIVE, b"")
        self.assertTrue(backend.serves(login))
        login.client_flags &= ~mysql.DEPRECATE_EOF  # EOF packets would differ
        self.assertFalse(backend.serves(login))
        self.assertTrue(mysql.reset(backend))


class PostgreSQL(ProxyTest):
    def test_an_iam_token_in_clear_over_tls_then_queries_relay_and_the_backend_is_pooled(self):
        proxy = self.proxy(pg_session, auth="clear")
        conn = self.pg_client(proxy, IAM_TOKEN)
        conn.run("CREATE TABLE IF NOT EXISTS pets (name text)")
        conn.run("DELETE FROM pets")
        conn.run("INSERT INTO pets VALUES ('rex'), ('tom')")
        self.assertEqual(conn.run("SELECT name FROM pets ORDER BY name"), [["rex"], ["tom"]])
        conn.run("SET work_mem = '7MB'")
        pid = conn.run("SELECT pg_backend_pid()")[0][0]
        self.assertEqual(conn.run("SHOW work_mem"), [["7MB"]])
        self.assertEqual(proxy.passwords, [(IAM_TOKEN, True)])
        self.assertIn("SET work_mem = '7MB'", proxy.seen)  # pg8000's Parse message
        conn.close()
        self.assertEqual(proxy.outcome(), wire.QUIT)

        conn = self.pg_client(proxy, IAM_TOKEN)
        self.assertEqual(conn.run("SELECT pg_backend_pid(), current_setting('work_mem')"),
                         [[pid, "4MB"]])  # the same session, DISCARD ALL'd
        conn.close()
        self.assertEqual(proxy.outcome(), wire.QUIT)

    def test_scram_md5_and_clear_text_and_a_wrong_password_gets_our_error(self):
        for auth, use_tls, password in (("scram", True, MASTER_PASSWORD), ("scram", False, MASTER_PASSWORD),
                                        ("md5", False, MASTER_PASSWORD), ("clear", False, IAM_TOKEN)):
            with self.subTest(auth=auth, tls=use_tls):
                proxy = self.proxy(pg_session, auth=auth, use_tls=use_tls)
                context = trusting_context() if use_tls else False
                conn = self.pg_client(proxy, password, ssl_context=context)
                self.assertEqual(conn.run("SELECT current_user, 6 * 7"), [[MASTER_USER, 42]])
                conn.close()
                self.assertEqual(proxy.outcome(), wire.QUIT)
                with self.assertRaises(pg8000.exceptions.DatabaseError) as caught:
                    self.pg_client(proxy, "not-it", ssl_context=context)
                self.assertEqual(caught.exception.args[0]["C"], "28P01")
                self.assertEqual(proxy.outcome(), "refused")
                # wire's own client side answers the same request, and sees the same refusal
                pg.login("127.0.0.1", proxy.port, MASTER_USER, password, DATABASE).close()
                self.assertEqual(proxy.outcome(), wire.CLIENT_CLOSED)
                with self.assertRaises(pg.LoginError) as caught:
                    pg.login("127.0.0.1", proxy.port, MASTER_USER, "not-it", DATABASE)
                self.assertEqual(caught.exception.sqlstate, "28P01")
                self.assertEqual(proxy.outcome(), "refused")

    def test_an_idle_client_is_cut(self):
        proxy = self.proxy(pg_session, idle_timeout=0.3)
        conn = self.pg_client(proxy)
        started = time.monotonic()  # before the last query, as above
        conn.run("SELECT 1")
        self.assertEqual(proxy.outcome(), wire.IDLE)  # the proxy has closed the client
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        with self.assertRaises(pg8000.exceptions.InterfaceError):
            conn.run("SELECT 1")
        self.addCleanup(conn._usock.close)

    def test_a_client_that_does_not_trust_the_ca_fails(self):
        proxy = self.proxy(pg_session)
        with self.assertRaises(ssl.SSLError):
            self.pg_client(proxy, ssl_context=ssl.create_default_context())
        self.assertIsInstance(proxy.outcome(), ssl.SSLError)

    def test_gssenc_is_declined_and_a_cancel_request_is_handed_back(self):
        proxy = self.proxy(pg_session)
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            sock.sendall(struct.pack("!II", 8, pg.GSSENC_REQUEST))
            self.assertEqual(sock.recv(1), b"N")
            sock.sendall(struct.pack("!IIIi", 16, pg.CANCEL_REQUEST, 1234, -5))
            self.assertEqual(proxy.outcome(), pg.CancelRequest(1234, -5))

    def test_the_backends_own_errors(self):
        server = servers["postgres"]
        with self.assertRaises(pg.LoginError) as caught:
            pg.login(server.host, server.port, MASTER_USER, "wrong", DATABASE)
        self.assertEqual(caught.exception.sqlstate, "28P01")
        with self.assertRaises(pg.LoginError) as caught:
            pg.login(server.host, server.port, MASTER_USER, MASTER_PASSWORD, "no_such_db")
        self.assertEqual(caught.exception.sqlstate, "3D000")
        backend = pg.login(server.host, server.port, MASTER_USER, MASTER_PASSWORD, DATABASE,
                           {"application_name": "wire-test"})
        self.addCleanup(backend.close)
        self.assertEqual(backend.parameters["application_name"], "wire-test")
        self.assertTrue(backend.after_auth.endswith(b"Z\0\0\0\x05I"))
        self.assertTrue(pg.reset(backend))


class CertificateAuthority(unittest.TestCase):
    def test_one_ca_on_disk_with_a_private_key_and_certs_that_name_the_host(self):
        with open(tls.ca_bundle_path(), "rb") as f:
            self.assertEqual(f.read(), tls.ca_pem())
        key_mode = stat.S_IMODE(os.stat(tls.ca_dir() / "ca.key").st_mode)
        self.assertEqual(key_mode, 0o600)
        ca = x509.load_pem_x509_certificate(tls.ca_pem())
        self.assertTrue(ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        self.assertIs(tls.server_context(HOSTNAME), tls.server_context(HOSTNAME))
        self.assertEqual(tls.server_context(HOSTNAME).minimum_version, ssl.TLSVersion.TLSv1_2)

    def test_a_strict_tls12_client_accepts_the_proxy_certificate(self):
        name = "p1.proxy-abc123.us-east-1.rds.amazonaws.com"
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)

        def serve():
            sock, _ = listener.accept()
            with tls.server_context(name).wrap_socket(sock, server_side=True) as conn:
                conn.sendall(b"ok")

        threading.Thread(target=serve, daemon=True).start()
        context = trusting_context()
        context.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        raw = socket.create_connection(listener.getsockname())
        with context.wrap_socket(raw, server_hostname=name) as conn:
            self.assertEqual((conn.recv(2), conn.version()), (b"ok", "TLSv1.2"))


if __name__ == "__main__":
    unittest.main()
