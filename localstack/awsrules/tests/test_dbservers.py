"""The real database servers behind the emulated DBs (dataplane/dbservers.py):
a MariaDB and a PostgreSQL server shared by the class, a few more where a
test needs its own.

    cd localstack && .venv/bin/python -m unittest awsrules.tests.test_dbservers
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path

import pg8000.native
import pymysql

from awsrules.dataplane import dbservers

# Every printable ASCII character, quotes and backslash among them.
PASSWORD = "p'a\"s`s\\w%o;r$d -- " + "".join(map(chr, range(33, 127)))
LOCALSTACK = Path(__file__).resolve().parents[2]


def mysql_select_1(server, user, password, database=None):
    conn = pymysql.connect(host=server.host, port=server.port, user=user, password=password,
                           database=database, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchall()[0][0]
    finally:
        conn.close()


def pg_login(server, user, password, database="postgres"):
    return pg8000.native.Connection(user, host=server.host, port=server.port,
                                    password=password, database=database, timeout=5)


def pg_select_1(server, user, password, database="postgres"):
    conn = pg_login(server, user, password, database)
    try:
        return conn.run("SELECT 1")[0][0]
    finally:
        conn.close()


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def watchdogs_of(port: int) -> list:
    """The watchdogs of the server on `port` (its command is on theirs)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        ports = (f'"--port={port}"'.encode(), f'"-p", "{port}"'.encode())  # MariaDB's, PostgreSQL's
        if b"dbservers.py" in cmdline and any(p in cmdline for p in ports):
            found.append(pid)
    return found


class DBServers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        t = time.monotonic()
        cls.my = dbservers.ensure("test/mysql", "mysql", "admin", PASSWORD, "appdb")
        cls.my_seconds = time.monotonic() - t
        t = time.monotonic()
        # "postgres", as RDS's master user often is: not the server's own superuser here.
        cls.pg = dbservers.ensure("test/pg", "aurora-postgresql", "postgres", PASSWORD, "appdb")
        cls.pg_seconds = time.monotonic() - t

    @classmethod
    def tearDownClass(cls):
        dbservers.stop_all()

    def test_kinds(self):
        self.assertEqual(dbservers.kind_of("aurora-mysql"), "mariadb")
        self.assertEqual(dbservers.kind_of("mariadb"), "mariadb")
        self.assertEqual(dbservers.kind_of("postgres"), "postgres")
        self.assertIsNone(dbservers.kind_of("sqlserver-ex"))
        with self.assertRaises(ValueError):
            dbservers.ensure("test/sqlserver", "sqlserver-ex", "admin", "pw")
        self.assertIsNone(dbservers.get("test/sqlserver"))

    def test_the_master_user_logs_in_over_tcp(self):
        print(f"\n  ensure: mariadb {self.my_seconds:.2f} s, postgres {self.pg_seconds:.2f} s",
              file=sys.stderr)
        self.assertEqual((self.my.kind, self.my.host), ("mariadb", "127.0.0.1"))
        self.assertIn("MariaDB", self.my.version)
        self.assertEqual(self.my.max_connections, 1000)
        self.assertEqual(mysql_select_1(self.my, "admin", PASSWORD, "appdb"), 1)
        self.assertEqual(self.pg.kind, "postgres")
        self.assertTrue(self.pg.version[:2].isdigit(), self.pg.version)
        self.assertEqual(pg_select_1(self.pg, "postgres", PASSWORD, "appdb"), 1)
        self.assertEqual(pg_select_1(self.pg, "postgres", PASSWORD, "postgres"), 1)

    def test_a_wrong_password_is_refused(self):
        with self.assertRaises(pymysql.err.OperationalError) as e:
            mysql_select_1(self.my, "admin", PASSWORD + "x")
        self.assertEqual(e.exception.args[0], 1045)  # access denied
        with self.assertRaises(pg8000.exceptions.DatabaseError) as e:
            pg_select_1(self.pg, "postgres", PASSWORD + "x")
        self.assertEqual(e.exception.args[0]["C"], "28P01")  # invalid_password
        with self.assertRaises(pymysql.err.OperationalError):  # root: on the unix socket only
            mysql_select_1(self.my, "root", "")
        with self.assertRaises(pg8000.exceptions.DatabaseError):
            pg_select_1(self.pg, dbservers.PG_ADMIN, "")

    def test_the_master_has_rds_privileges(self):
        grants = dbservers.admin_sql("test/mysql", "SHOW GRANTS FOR 'admin'@'%'")[0][0]
        self.assertIn("GRANT ALL PRIVILEGES ON *.* TO `admin`@`%`", grants)
        self.assertIn("WITH GRANT OPTION", grants)
        anonymous = dbservers.admin_sql("test/mysql", "SELECT user FROM mysql.user WHERE user = ''")
        self.assertEqual(anonymous, [])
        self.assertEqual(dbservers.admin_sql("test/mysql", "SHOW DATABASES LIKE 'test'"), [])
        rows = dbservers.admin_sql("test/mysql", "SELECT @@max_connections; SELECT 2")
        self.assertEqual(rows, [(1000,), (2,)])
        role = dbservers.admin_sql(
            "test/pg", "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles "
            "WHERE rolname = 'postgres'")
        self.assertEqual(role, [(False, True, True, True)])
        owner = dbservers.admin_sql(
            "test/pg", "SELECT datdba::regrole::text FROM pg_database WHERE datname = 'appdb'")
        self.assertEqual(owner, [("postgres",)])
        iam = dbservers.admin_sql("test/pg", "SELECT rolcanlogin FROM pg_roles "
                                  "WHERE rolname = 'rds_iam'")
        self.assertEqual(iam, [(False,)])
        stored = dbservers.admin_sql("test/pg", "SELECT left(rolpassword, 13) FROM pg_authid "
                                     "WHERE rolname = 'postgres'")
        self.assertEqual(stored, [("SCRAM-SHA-256",)])
        self.assertEqual(dbservers.admin_sql("test/pg", "SHOW max_connections"), [("1000",)])
        # The master may grant rds_iam, as for IAM database authentication on RDS.
        conn = pg_login(self.pg, "postgres", PASSWORD)
        try:
            conn.run("CREATE ROLE iamuser LOGIN")
            conn.run("GRANT rds_iam TO iamuser")
        finally:
            conn.close()
        with self.assertRaises(KeyError):
            dbservers.admin_sql("test/never-started", "SELECT 1")

    def test_ensure_again_gives_the_same_server(self):
        again = dbservers.ensure("test/mysql", "mysql", "admin", "another password", "appdb")
        self.assertIs(again, self.my)
        self.assertIs(dbservers.get("test/pg"), self.pg)
        self.assertIsNone(dbservers.get("test/never-started"))
        self.assertNotEqual(self.my.port, self.pg.port)
        self.assertIn("test/mysql", dbservers.keys())

    def test_concurrent_first_calls_start_one_server(self):
        key, found = "test/concurrent", []
        threads = [threading.Thread(
            target=lambda: found.append(dbservers.ensure(key, "mysql", "a", "pw")))
            for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(found), 6)
        self.assertEqual({s.port for s in found}, {found[0].port})
        self.assertEqual(len(watchdogs_of(found[0].port)), 1, "one watchdog, one server")
        dbservers.stop(key)

    def test_two_keys_two_servers_and_stop_frees(self):
        a = dbservers.ensure("test/a", "postgres", "master", "pw-a")
        b = dbservers.ensure("test/b", "postgres", "master", "pw-b")
        self.assertNotEqual(a.port, b.port)
        self.assertEqual(pg_select_1(a, "master", "pw-a"), 1)
        with self.assertRaises(pg8000.exceptions.DatabaseError):
            pg_select_1(b, "master", "pw-a")
        directory = dbservers._running["test/a"].dir
        dbservers.stop("test/a")
        self.assertIsNone(dbservers.get("test/a"))
        self.assertNotIn("test/a", dbservers.keys())
        self.assertFalse(listening(a.port))
        self.assertFalse(os.path.exists(directory))
        self.assertEqual(watchdogs_of(a.port), [])
        self.assertEqual(pg_select_1(b, "master", "pw-b"), 1)
        dbservers.stop("test/b")
        dbservers.stop("test/b")  # again: nothing to do

    def test_set_password(self):
        dbservers.set_password("test/mysql", "admin", "new " + PASSWORD)
        dbservers.set_password("test/pg", "postgres", "new " + PASSWORD)
        try:
            self.assertEqual(mysql_select_1(self.my, "admin", "new " + PASSWORD), 1)
            self.assertEqual(pg_select_1(self.pg, "postgres", "new " + PASSWORD), 1)
            with self.assertRaises(pymysql.err.OperationalError):
                mysql_select_1(self.my, "admin", PASSWORD)
            with self.assertRaises(pg8000.exceptions.DatabaseError):
                pg_select_1(self.pg, "postgres", PASSWORD)
        finally:
            dbservers.set_password("test/mysql", "admin", PASSWORD)
            dbservers.set_password("test/pg", "postgres", PASSWORD)
        # Set before the server starts: ensure() uses it.
        dbservers.set_password("test/later", "admin", "changed")
        later = dbservers.ensure("test/later", "mariadb", "admin", "created with")
        self.assertEqual(mysql_select_1(later, "admin", "changed"), 1)
        dbservers.stop("test/later")

    def test_a_killed_parent_leaves_no_server(self):
        # A child process starts a server of each kind, each from a thread that then
        # ends (as the emulator's request threads do), and is killed with SIGKILL.
        script = (
            "import json, threading, time\n"
            "from awsrules.dataplane import dbservers\n"
            "out = {}\n"
            "def start(kind):\n"
            "    s = dbservers.ensure('orphan/' + kind, kind, 'admin', 'pw')\n"
            "    out[kind] = [s.port, dbservers._running['orphan/' + kind].dir]\n"
            "threads = [threading.Thread(target=start, args=(k,)) for k in ('mysql', 'postgres')]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
            "print(json.dumps(out), flush=True)\n"
            "time.sleep(60)\n")
        child = subprocess.Popen([sys.executable, "-c", script], cwd=LOCALSTACK,
                                 stdout=subprocess.PIPE, text=True)
        try:
            started = json.loads(child.stdout.readline() or "{}")
            self.assertEqual(len(started), 2)
            for port, _ in started.values():
                self.assertEqual(len(watchdogs_of(port)), 1)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        deadline, left = time.monotonic() + 5, list(started.values())
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [(port, d) for port, d in left
                    if listening(port) or os.path.exists(d) or watchdogs_of(port)]
        self.assertEqual(left, [], "(port, dir) still there 5 s after their parent was killed")


if __name__ == "__main__":
    unittest.main()
