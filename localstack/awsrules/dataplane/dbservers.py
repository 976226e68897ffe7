"""Real database servers behind the emulated RDS DBs.

Each emulated DB instance or Aurora cluster (a `key` the caller picks) gets
a server of its own from Debian's packages, started on first need on
127.0.0.1: MariaDB for the MySQL family, PostgreSQL for the PostgreSQL one.
Clients log in over TCP as the master user with the master password, as on
RDS; the emulator runs its own SQL as the server's superuser over the unix
socket (`admin_sql`), which no client reaches.

Quick: each kind's data directory is made once per machine (about a second)
into a template under localstack/.run/templates/; a server starts from a
copy of it in a temp dir of its own (data, socket, log), on tmpfs if it can.

Nothing outlives the emulator: each server runs under a watchdog (this file
run as a script: `_watch`), a child of the emulator holding the read end of
a pipe whose write end only the emulator holds. However the emulator ends,
SIGKILL too, the pipe reads EOF, and the watchdog kills the server and
deletes its dir. (PR_SET_PDEATHSIG set from the emulator would fire when
the request *thread* that forked ends; the single-threaded watchdog does
set it on the server, in case the watchdog itself is killed.) So the top
imports only the standard library: the watchdog runs with `python -I -S`.
"""

import atexit
import fcntl
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ENGINES = {"mysql": "mariadb", "mariadb": "mariadb", "aurora-mysql": "mariadb", "aurora": "mariadb",
           "postgres": "postgres", "aurora-postgresql": "postgres"}
HOST = "127.0.0.1"
MAX_CONNECTIONS = 1000  # generous: the emulated proxy enforces AWS's limits itself
RUN_DIR = Path(os.environ.get("AWSRULES_RUN_DIR") or Path(__file__).resolve().parents[2] / ".run")
START_TIMEOUT = 30.0
PG_ADMIN = "rdsadmin"  # PostgreSQL's superuser, named as on RDS: a master user may be "postgres"
# Disposable data: no syncing, small buffers (the log size must be the template's).
_MARIADB_OPTS = ["--innodb-log-file-size=4M", "--innodb-buffer-pool-size=8M",
                 "--innodb-doublewrite=0", "--innodb-flush-log-at-trx-commit=0",
                 "--innodb-flush-method=nosync"]
# English messages (a busy port is recognised in the log), UTC as on RDS.
_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin",
        "LC_ALL": "C", "TZ": "UTC"}


def kind_of(engine: str) -> Optional[str]:
    """"mariadb" | "postgres" | None (no real server for this engine)."""
    return ENGINES.get((engine or "").lower())


@dataclass
class Server:
    key: str
    kind: str
    host: str
    port: int
    version: str
    max_connections: int


@dataclass
class _Running:
    server: Server
    dir: str
    watchdog: subprocess.Popen
    pipe: int  # the write end of the watchdog's pipe: closing it stops the server

    def alive(self) -> bool:
        return self.watchdog.poll() is None


_lock = threading.Lock()  # guards the dicts below
_running: dict = {}  # key -> _Running
_pending: dict = {}  # key -> {user: password}, set while no server ran
_key_locks: dict = {}  # key -> Lock: one start at a time per key, keys in parallel
_templates: dict = {}  # kind -> Path
_template_lock = threading.Lock()


def _key_lock(key: str) -> threading.Lock:
    with _lock:
        return _key_locks.setdefault(key, threading.Lock())


def _binary(kind: str, name: str) -> str:
    # Debian keeps mariadbd in /usr/sbin (not on a user's PATH), PostgreSQL's
    # programs in /usr/lib/postgresql/N/bin (the newest N wins).
    dirs = ["/usr/sbin", "/usr/bin"] if kind == "mariadb" else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), reverse=True,
        key=lambda d: [int(n) for n in re.findall(r"\d+", d)])
    found = shutil.which(name, path=os.pathsep.join(dirs)) or shutil.which(name)
    if not found:
        package = "mariadb-server" if kind == "mariadb" else "postgresql"
        raise RuntimeError(f"{name} not found: run localstack/install.sh (package {package})")
    return found


def _user(kind: str) -> pwd.struct_passwd:
    """Who runs the server: PostgreSQL refuses root, so as root it runs as `postgres`."""
    if kind == "postgres" and os.geteuid() == 0:
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("no user 'postgres' to run PostgreSQL: install package postgresql")
    return pwd.getpwuid(os.geteuid())


def _run(cmd: list, user: pwd.struct_passwd, stdin: bytes = b"") -> None:
    other = user.pw_uid != os.geteuid()
    done = subprocess.run(cmd, input=stdin, capture_output=True, env=_ENV, cwd="/",
                          user=user.pw_uid if other else None,
                          group=user.pw_gid if other else None, extra_groups=[] if other else None)
    if done.returncode != 0:
        out = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        raise RuntimeError(f"{os.path.basename(cmd[0])} failed ({done.returncode}):\n{out}")


def _scratch() -> Optional[str]:
    """Where servers keep their data: tmpfs if it has room (files are made there several
    times faster than on this machine's ext4, and the data is disposable), else $TMPDIR."""
    try:
        st = os.statvfs("/dev/shm")
        roomy = st.f_bavail * st.f_frsize >= 1 << 30 and os.access("/dev/shm", os.W_OK)
        return "/dev/shm" if roomy else None
    except OSError:
        return None


def _template(kind: str) -> Path:
    """The kind's template data dir, built once per machine."""
    with _template_lock:
        if kind in _templates:
            return _templates[kind]
        daemon = _binary(kind, "mariadbd" if kind == "mariadb" else "postgres")
        out = subprocess.run([daemon, "--version"], capture_output=True, text=True, env=_ENV)
        found = re.search(r"Ver (\S+)|\(PostgreSQL\) (\S+)", out.stdout)
        version = (found.group(1) or found.group(2)) if found else "unknown"
        final = RUN_DIR / "templates" / f"{kind}-{version}"
        if not final.is_dir():
            final.parent.mkdir(parents=True, exist_ok=True)
            with open(final.parent / f".{kind}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another emulator may be building it now
                if not final.is_dir():
                    _build_template(kind, final)
        _templates[kind] = final
        return final


def _build_template(kind: str, final: Path) -> None:
    for stale in final.parent.glob(f".build-{kind}-*"):  # a build that died (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    user = _user(kind)
    work = tempfile.mkdtemp(prefix=f"awsrules-{kind}-template-", dir=_scratch())
    try:
        os.chown(work, user.pw_uid, user.pw_gid)
        data = os.path.join(work, "data")
        if kind == "mariadb":
            # root only over the unix socket, as the OS user running the server; no test
            # database; no anonymous users (10.4 and later make none).
            _run([_binary(kind, "mariadb-install-db"), "--no-defaults", f"--datadir={data}",
                  f"--user={user.pw_name}", "--auth-root-authentication-method=socket",
                  f"--auth-root-socket-user={user.pw_name}", "--skip-test-db",
                  "--skip-name-resolve", *_MARIADB_OPTS], user)
        else:
            _run([_binary(kind, "initdb"), "-D", data, "-U", PG_ADMIN, "-E", "UTF8", "--locale=C",
                  "--wal-segsize=1", "--no-sync"], user)
            Path(data, "pg_hba.conf").write_text(
                "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
            with open(os.path.join(data, "postgresql.conf"), "a") as conf:
                conf.write("password_encryption = 'scram-sha-256'\n")
            # RDS's roles: rds_iam (IAM database authentication), rds_superuser (the master's).
            _run([_binary(kind, "postgres"), "--single", "-D", data, "postgres"], user,
                 b"CREATE ROLE rds_iam NOLOGIN;\nCREATE ROLE rds_superuser NOLOGIN;\n"
                 b"GRANT pg_monitor, pg_signal_backend TO rds_superuser;\n")
        staging = tempfile.mkdtemp(prefix=f".build-{kind}-", dir=final.parent)
        subprocess.run(["cp", "-a", "--", data, f"{staging}/data"], check=True)
        os.rename(f"{staging}/data", final)  # atomic: a template is whole or absent
        os.rmdir(staging)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _command(kind: str, d: str, port: int) -> list:
    if kind == "mariadb":
        return [_binary(kind, "mariadbd"), "--no-defaults",
                *(["--user=root"] if os.geteuid() == 0 else []), f"--datadir={d}/data",
                f"--port={port}", f"--bind-address={HOST}", f"--socket={d}/mysqld.sock",
                f"--pid-file={d}/mysqld.pid", f"--tmpdir={d}", "--performance-schema=OFF",
                "--skip-name-resolve", "--key-buffer-size=1M", "--aria-pagecache-buffer-size=1M",
                "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
                f"--max-connections={MAX_CONNECTIONS}", *_MARIADB_OPTS]
    settings = {"listen_addresses": HOST, "unix_socket_directories": d,
                "max_connections": MAX_CONNECTIONS, "shared_buffers": "1MB", "fsync": "off",
                "synchronous_commit": "off", "full_page_writes": "off", "timezone": "UTC",
                "dynamic_shared_memory_type": "mmap"}  # in the data dir: gone with it, always
    return [_binary(kind, "postgres"), "-D", f"{d}/data", "-p", str(port),
            *[arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]]


def _ready(kind: str, d: str) -> bool:
    """Whether the server takes connections (probed without a driver: its failed
    attempts would leave sockets open)."""
    if kind == "postgres":  # the postmaster says so in its pid file (pg_ctl reads it too)
        try:
            return Path(d, "data", "postmaster.pid").read_text().split("\n")[7].strip() == "ready"
        except (OSError, IndexError):
            return False
    with socket.socket(socket.AF_UNIX) as s:  # MariaDB makes it when ready
        return s.connect_ex(f"{d}/mysqld.sock") == 0


def _connect(kind: str, d: str, port: int, database: Optional[str] = None):
    """A superuser connection over the server's unix socket."""
    if kind == "mariadb":
        import pymysql
        from pymysql.constants import CLIENT
        return pymysql.connect(unix_socket=f"{d}/mysqld.sock", database=database,
                               user=pwd.getpwuid(os.geteuid()).pw_name, autocommit=True,
                               connect_timeout=10, client_flag=CLIENT.MULTI_STATEMENTS)
    import pg8000.native
    return pg8000.native.Connection(PG_ADMIN, unix_sock=f"{d}/.s.PGSQL.{port}",
                                    database=database or "postgres", timeout=10)


def _start(key: str, kind: str):
    """Starts a server from a copy of the template: (its _Running, a superuser connection)."""
    template, user = _template(kind), _user(kind)
    d = tempfile.mkdtemp(prefix=f"awsrules-{kind}-", dir=_scratch())
    try:
        os.chown(d, user.pw_uid, user.pw_gid)  # PostgreSQL makes its socket there
        subprocess.run(["cp", "-a", "--", str(template), f"{d}/data"], check=True)
        os.chmod(f"{d}/data", 0o700)  # PostgreSQL insists
        for attempt in range(5):
            with socket.socket() as s:  # a free port, to bind again at once
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            r, w = os.pipe()
            stop_with = signal.SIGQUIT if kind == "postgres" else signal.SIGKILL  # both: at once
            spec = {"cmd": _command(kind, d, port), "uid": user.pw_uid, "gid": user.pw_gid,
                    "dir": d, "signal": int(stop_with)}
            watchdog = [sys.executable, "-I", "-S", os.path.abspath(__file__), str(r),
                        json.dumps(spec)]
            with open(f"{d}/server.log", "ab") as log:  # the watchdog's and the server's
                # In a session of its own: a Ctrl-C at the emulator's terminal is the emulator's.
                proc = subprocess.Popen(watchdog, pass_fds=(r,), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=log, env=_ENV, start_new_session=True)
            os.close(r)
            run = _Running(Server(key, kind, HOST, port, "", MAX_CONNECTIONS), d, proc, w)
            deadline, why = time.monotonic() + START_TIMEOUT, None
            while why is None and not _ready(kind, d):
                if proc.poll() is not None:
                    why = "it exited"
                elif time.monotonic() > deadline:
                    why = f"not ready after {START_TIMEOUT:.0f} s"
                time.sleep(0.01)
            if why is None:
                try:
                    return run, _connect(kind, d, port)
                except Exception as e:
                    why = f"no superuser connection: {e}"
            with open(f"{d}/server.log", "rb") as log:
                tail = b"".join(log.readlines()[-25:]).decode(errors="replace")
            if proc.poll() is None:
                _kill(run)
            else:  # its dir is left as it was: maybe for another try
                os.close(w)
            if "in use" not in tail or attempt == 4:  # else the port was taken meanwhile: again
                raise RuntimeError(f"the {kind} server for {key} did not start ({why}); "
                                   f"its log ends:\n{tail}")
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise


def _kill(run: _Running) -> None:
    try:
        os.close(run.pipe)  # the watchdog kills the server and deletes its dir
    except OSError:
        pass
    try:
        run.watchdog.wait(15)
    except subprocess.TimeoutExpired:
        run.watchdog.kill()  # the server then gets its PR_SET_PDEATHSIG
        run.watchdog.wait()
    shutil.rmtree(run.dir, ignore_errors=True)


def _query(kind: str, conn, sql: str) -> list:
    """The rows of each statement of `sql` that returned rows, in order (as pg8000 gives them)."""
    if kind == "postgres":
        return [tuple(row) for row in conn.run(sql) or []]
    rows = []
    with conn.cursor() as cur:
        cur.execute(sql)  # no args: pymysql leaves a `%` alone
        while True:
            rows += [tuple(row) for row in cur.fetchall()] if cur.description else []
            if not cur.nextset():
                return rows


def _set_password(kind: str, conn, user: str, password: str) -> None:
    """Sets a login's password, making the login if need be. Quoted by the drivers' own
    functions: a password may hold any character."""
    if kind == "mariadb":
        account, secret = f"{conn.escape(user)}@'%'", conn.escape(password)
        _query(kind, conn, f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {secret}")
        _query(kind, conn, f"ALTER USER {account} IDENTIFIED BY {secret}")  # mysql_native_password
    else:
        from pg8000.native import identifier, literal
        known = conn.run("SELECT 1 FROM pg_roles WHERE rolname = :u", u=user)
        conn.run(f"{'ALTER' if known else 'CREATE'} ROLE {identifier(user)} LOGIN "
                 f"PASSWORD {literal(password)}")  # stored as SCRAM-SHA-256


def _set_up(kind: str, conn, key: str, user: str, password: str, database: Optional[str]):
    """The master user, with the privileges RDS gives it, and the database."""
    with _lock:
        passwords = _pending.pop(key, {})
    _set_password(kind, conn, user, passwords.pop(user, password))
    if kind == "mariadb":
        account = f"{conn.escape(user)}@'%'"
        _query(kind, conn, f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION")
        if database:
            _query(kind, conn, "CREATE DATABASE IF NOT EXISTS `%s`" % database.replace("`", "``"))
    else:
        from pg8000.native import identifier
        role, name = identifier(user), identifier(database or "postgres")
        conn.run(f"ALTER ROLE {role} CREATEDB CREATEROLE")
        conn.run(f"GRANT rds_superuser TO {role} WITH ADMIN OPTION")
        if conn.run("SELECT 1 FROM pg_database WHERE datname = :d", d=database or "postgres"):
            conn.run(f"ALTER DATABASE {name} OWNER TO {role}")
        else:
            conn.run(f"CREATE DATABASE {name} OWNER {role}")
    for other, secret in passwords.items():
        _set_password(kind, conn, other, secret)


def ensure(key: str, engine: str, master_user: str, master_password: str,
           database: Optional[str] = None) -> Server:
    """The server of `key`, started with its master user and database on the first call."""
    kind = kind_of(engine)
    if kind is None:
        raise ValueError(f"no database server for engine {engine!r}")
    run = _running.get(key)
    if run is not None and run.alive():
        return run.server
    with _key_lock(key):
        run = _running.get(key)
        if run is not None and run.alive():
            return run.server
        if run is not None:  # it died: start afresh
            with _lock:
                _running.pop(key, None)
            _kill(run)
        run, conn = _start(key, kind)
        try:
            try:
                version = "SELECT VERSION()" if kind == "mariadb" else "SHOW server_version"
                run.server.version = _query(kind, conn, version)[0][0]
                _set_up(kind, conn, key, master_user, master_password, database)
            finally:
                conn.close()
        except BaseException:
            _kill(run)
            raise
        with _lock:
            _running[key] = run
        return run.server


def get(key: str) -> Optional[Server]:
    """The running server of `key`, or None (never starts one)."""
    run = _running.get(key)
    return run.server if run is not None and run.alive() else None


def keys() -> list:
    """The keys of the servers started (and not stopped) in this process."""
    with _lock:
        return list(_running)


def set_password(key: str, user: str, password: str) -> None:
    """Sets a login's password now, or, with no server running, when ensure() starts one."""
    with _key_lock(key):
        run = _running.get(key)
        if run is None or not run.alive():
            with _lock:
                _pending.setdefault(key, {})[user] = password
            return
        conn = _connect(run.server.kind, run.dir, run.server.port)
        try:
            _set_password(run.server.kind, conn, user, password)
        finally:
            conn.close()


def admin_sql(key: str, sql: str, database: Optional[str] = None) -> list:
    """Runs `sql` as the superuser: the rows of each of its statements that returned rows."""
    run = _running.get(key)
    if run is None:
        raise KeyError(f"no database server for {key}")
    conn = _connect(run.server.kind, run.dir, run.server.port, database)
    try:
        return _query(run.server.kind, conn, sql)
    finally:
        conn.close()


def stop(key: str) -> None:
    """Stops the server of `key` and deletes its data."""
    with _key_lock(key):
        with _lock:
            run = _running.pop(key, None)
            _pending.pop(key, None)
        if run is not None:
            _kill(run)


def stop_all() -> None:
    """Stops every server of this process (without the keys' locks: it runs at exit too)."""
    with _lock:
        runs = list(_running.values())
        _running.clear()
        _pending.clear()
    _close_pipes(runs)  # first: the servers stop in parallel
    for run in runs:
        _kill(run)


def _close_pipes(runs) -> None:
    for run in runs:
        try:
            os.close(run.pipe)
        except OSError:
            pass


def _forget_in_child() -> None:
    # A forked child must neither keep the servers alive (the pipes) nor stop them at its exit.
    _close_pipes(list(_running.values()))
    _running.clear()


atexit.register(stop_all)
os.register_at_fork(after_in_child=_forget_in_child)


def _watch(fd: int, spec: dict) -> int:
    """The watchdog: runs the server until the pipe `fd` reads EOF (the emulator closed it,
    or ended), then kills the server and deletes its dir."""
    import ctypes
    import select

    me, libc = os.getpid(), ctypes.CDLL(None, use_errno=True)

    def arm():  # in the server, after its setuid (which clears it)
        libc.prctl(1, spec["signal"])  # PR_SET_PDEATHSIG
        if os.getppid() != me:  # the watchdog died before that
            os._exit(1)

    other = spec["uid"] != os.geteuid()
    server = subprocess.Popen(spec["cmd"], stdin=subprocess.DEVNULL, cwd=spec["dir"],
                              preexec_fn=arm, user=spec["uid"] if other else None,
                              group=spec["gid"] if other else None,
                              extra_groups=[] if other else None)

    def finish(*_):
        if server.poll() is None:
            server.send_signal(spec["signal"])  # SIGKILL, or PostgreSQL's immediate shutdown
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(spec["dir"], ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGHUP, finish)
    parent, watched = os.getppid(), [fd]
    try:
        watched.append(os.pidfd_open(server.pid))  # readable when the server ends
    except (AttributeError, OSError):  # before Linux 5.3: poll
        pass
    while server.poll() is None:
        readable, _, _ = select.select(watched, [], [], 1.0 if len(watched) > 1 else 0.2)
        if fd in readable or os.getppid() != parent:
            finish()
    # The server ended by itself: its dir (its log) is left to the emulator, unless it is gone.
    if os.getppid() != parent:
        shutil.rmtree(spec["dir"], ignore_errors=True)
    return server.returncode


if __name__ == "__main__":
    sys.exit(_watch(int(sys.argv[1]), json.loads(sys.argv[2])))
