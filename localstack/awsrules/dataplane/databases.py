"""The emulated DBs and their real servers.

Each RDS instance (or Aurora cluster: its instances share the cluster's
server, as they share its storage) of a MySQL, MariaDB or PostgreSQL
engine is backed by a real server (dbservers.py), started the first time
something connects: a function by the DB's endpoint, a proxy logging in,
or the operator's own `GET /awsrules/local` (seed.py, tests). The master
user and password are the DB's (CreateDBInstance, ModifyDBInstance, or the
secret RDS manages for it); the DB's `DBName` is made. SQL Server and
Oracle stay records without a server: their endpoints do not resolve.

Who may reach a DB's endpoint: a caller in the DB's VPC whose security
groups the DB's groups admit on the DB's port (`admits`), the rule the
proxy's own connection to the DB follows too (rds.py's target health)."""

import hashlib
import hmac
import json
import os
import threading
import time

from moto.ec2.models import ec2_backends
from moto.rds.models import RDSBackend, rds_backends
from moto.secretsmanager.models import secretsmanager_backends

from . import dbservers, network

_lock = threading.Lock()
_passwords: dict = {}  # server key -> the master password last given to it
_logins: dict = {}  # (server key, user, password digest) -> (when, why not or None)
# A login's answer holds this long: target health is asked several times a
# second while a tool waits on it.
LOGIN_MEMORY = 2.0
# What keys the passwords the emulator gives IAM-enabled DB users for the
# proxy's end-to-end IAM logins (never seen outside this process).
_IAM_KEY = os.urandom(32)

# max_connections of the classes seed 000 lists: (MySQL, PostgreSQL), as
# the tool's connection budget (src/budget.rs) estimates them.
_KNOWN = {
    "db.t3.micro": (60, 66),
    "db.t3.small": (150, 200),
    "db.t3.medium": (320, 400),
    "db.t3.large": (600, 800),
    "db.r5.large": (1270, 1600),
    "db.r5.xlarge": (2540, 3300),
}


def key_of(backend, db) -> str:
    """The server of a DB: its cluster's for a cluster member."""
    cluster = getattr(db, "db_cluster_identifier", None)
    if cluster and cluster in backend.clusters:
        return f"{backend.account_id}/{backend.region_name}/cluster/{cluster}"
    if hasattr(db, "db_instance_identifier"):
        return f"{backend.account_id}/{backend.region_name}/db/{db.db_instance_identifier}"
    return f"{backend.account_id}/{backend.region_name}/cluster/{db.db_cluster_identifier}"


def owner(backend, db):
    """What holds the DB's groups, master user and engine: the cluster of a
    cluster member, else the instance itself."""
    cluster = getattr(db, "db_cluster_identifier", None)
    if cluster and hasattr(db, "db_instance_identifier") and cluster in backend.clusters:
        return backend.clusters[cluster]
    return db


def _master_password(backend, db) -> str | None:
    managed = getattr(db, "master_user_secret", None)
    if getattr(db, "manage_master_user_password", False) and managed is not None:
        secrets = secretsmanager_backends[backend.account_id][backend.region_name]
        value = secrets.get_secret_value(managed.secret_arn, None, None)
        return json.loads(value["SecretString"]).get("password")
    # moto keeps it, but its property refuses to give it back.
    return getattr(db, "_master_user_password", None)


def has_server(db) -> bool:
    return dbservers.kind_of(db.engine) is not None


def server(backend, db) -> dbservers.Server:
    """The DB's real server, started on first need, its master password
    kept as the DB's record says."""
    db = owner(backend, db)
    key = key_of(backend, db)
    user = db.master_username
    password = _master_password(backend, db) or ""
    database = getattr(db, "db_name", None) or getattr(db, "database_name", None)
    found = dbservers.ensure(key, db.engine, user, password, database)
    with _lock:
        if _passwords.get(key, password) != password:
            dbservers.set_password(key, user, password)
        _passwords[key] = password
    return found


def max_connections(backend, db) -> int:
    """The DB's max_connections as RDS sets it by default for its class
    (an Aurora cluster: its writer's), what the pool's percentages are of."""
    holder = owner(backend, db)
    postgres = dbservers.kind_of(holder.engine) == "postgres"
    classes = [getattr(holder, "db_instance_class", None)]
    for member in getattr(holder, "members", None) or []:
        if getattr(member, "is_cluster_writer", False):
            classes.insert(0, member.db_instance_class)
    for cls in classes:
        if cls in _KNOWN:
            return _KNOWN[cls][1 if postgres else 0]
    return 1000


def check_login(backend, db, user: str, password: str) -> str | None:
    """Why `user` cannot log in to the DB's real server with `password`
    (the server's own words), or None; None too for a DB without a server."""
    if not has_server(db):
        return None
    found = server(backend, db)
    digest = hashlib.sha256(password.encode()).hexdigest()
    memo = (found.key, user, digest)
    with _lock:
        seen = _logins.get(memo)
    if seen and time.monotonic() - seen[0] < LOGIN_MEMORY:
        return seen[1]
    from .wire import mysql, pg

    wire = pg if found.kind == "postgres" else mysql
    database = "postgres" if found.kind == "postgres" else None
    try:
        wire.login(found.host, found.port, user, password, database).close()
        why = None
    except wire.LoginError as e:
        why = f"The proxy could not log in to the database as {user}: {e.message}"
    except OSError as e:
        why = f"Database host couldn't be reached: {e}"
    with _lock:
        _logins[memo] = (time.monotonic(), why)
    return why


def iam_password(backend, db, user: str) -> str:
    """The password the proxy's end-to-end IAM login uses for `user`, set
    on the real server for a user IAM database authentication may log in
    as: PostgreSQL, a member of rds_iam; MariaDB (which has no
    AWSAuthenticationPlugin), a user without a password of its own.
    Raises LookupError, saying why, for another user."""
    found = server(backend, db)
    password = hmac.new(_IAM_KEY, f"{found.key}/{user}".encode(), "sha256").hexdigest()
    if found.kind == "postgres":
        rows = dbservers.admin_sql(
            found.key,
            "SELECT pg_has_role(rolname, 'rds_iam', 'member') FROM pg_roles "
            f"WHERE rolname = {_pg_literal(user)}",
        )
        if not rows or not rows[0][0]:
            raise LookupError(f"DB user {user} is not IAM-enabled (GRANT rds_iam TO {user})")
    else:
        native = "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()
        rows = dbservers.admin_sql(
            found.key,
            f"SELECT authentication_string FROM mysql.user WHERE user = {_my_literal(user)}",
        )
        if not rows or rows[0][0] not in ("", native):
            raise LookupError(
                f"DB user {user} is not IAM-enabled (MySQL: IDENTIFIED WITH "
                "AWSAuthenticationPlugin AS 'RDS'; the emulator: a user without a password)"
            )
    dbservers.set_password(found.key, user, password)
    return password


def _pg_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _my_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def admits(backend, db, port: int):
    """The rule of the DB's endpoint: None when the caller may connect."""

    def rule(caller) -> str | None:
        holder = owner(backend, db)
        vpc = _vpc_of(backend, holder)
        if caller is None or caller.vpc_id is None:
            return "the caller is not in a VPC, and the DB is not publicly accessible"
        if vpc and caller.vpc_id != vpc:
            return f"the caller is in {caller.vpc_id}, the DB in {vpc}"
        ec2 = ec2_backends[backend.account_id][backend.region_name]
        from ..ec2 import group_admits

        if not group_admits(ec2, holder.vpc_security_group_ids or [], caller.security_group_ids, port):
            return (
                f"the DB's security groups {', '.join(holder.vpc_security_group_ids or [])} do not "
                f"admit the caller's {', '.join(caller.security_group_ids) or '(none)'} on port {port}"
            )
        return None

    return rule


def _vpc_of(backend, holder) -> str | None:
    group = getattr(holder, "db_subnet_group", None)
    if group is not None and getattr(group, "vpc_id", None):
        return group.vpc_id
    name = getattr(holder, "db_subnet_group_name", None)
    subnets = getattr(backend, "subnet_groups", {})
    if name and name in subnets:
        return subnets[name].vpc_id
    return None


def every_db(backend):
    """(address, port, db) for each endpoint of each DB with a server."""
    for db in list(backend.databases.values()):
        if has_server(db) and db.address:
            yield db.address, int(db.port), db
    for cluster in list(backend.clusters.values()):
        if not has_server(cluster):
            continue
        for address in (cluster.endpoint, getattr(cluster, "reader_endpoint", None)):
            if address:
                yield address, int(cluster.port), cluster


def find(account_id: str, region: str, host: str, port: int):
    """(backend, db) whose endpoint is host:port, or None."""
    backend = rds_backends[account_id][region]
    for address, db_port, db in every_db(backend):
        if address.lower() == host.lower() and db_port == port:
            return backend, db
    return None


def find_anywhere(host: str, port: int):
    """(backend, db) whose endpoint is host:port, in any account and region."""
    for account_id, regions in list(rds_backends.items()):
        for region in list(regions.keys()):
            found = find(account_id, region, host, port)
            if found is not None:
                return found
    return None


def finder(caller, host: str, port: int):
    """network.py's finder for DB endpoints, in the caller's account and
    region."""
    if caller is None:
        return None
    found = find(caller.account_id, caller.region, host, port)
    if found is None:
        return None
    backend, db = found
    return network.Endpoint(
        host=host,
        port=port,
        local_port=lambda: server(backend, db).port,
        admits=admits(backend, db, port),
        kind="db",
    )


def sweep(backend) -> None:
    """Stops the servers of DBs deleted since."""
    alive = {key_of(backend, db) for _, _, db in every_db(backend)}
    prefix = f"{backend.account_id}/{backend.region_name}/"
    for key in dbservers.keys():
        if key.startswith(prefix) and key not in alive:
            _forget(key)


def _forget(key: str) -> None:
    dbservers.stop(key)
    with _lock:
        _passwords.pop(key, None)


def install() -> None:
    """Finds DB endpoints for network.py; a deleted DB takes its server
    along (a DB made again under its name starts afresh, as on RDS)."""
    network.add_finder(finder)

    delete_instance = RDSBackend.delete_db_instance

    def delete_db_instance(self, db_instance_identifier, *args, **kwargs):
        db = self.databases.get(db_instance_identifier)
        key = key_of(self, db) if db is not None and not getattr(
            db, "db_cluster_identifier", None) else None
        answer = delete_instance(self, db_instance_identifier, *args, **kwargs)
        if key:
            _forget(key)
        return answer

    delete_cluster = RDSBackend.delete_db_cluster

    def delete_db_cluster(self, cluster_identifier, *args, **kwargs):
        cluster = self.clusters.get(cluster_identifier)
        key = key_of(self, cluster) if cluster is not None else None
        answer = delete_cluster(self, cluster_identifier, *args, **kwargs)
        if key:
            _forget(key)
        return answer

    RDSBackend.delete_db_instance = delete_db_instance
    RDSBackend.delete_db_cluster = delete_db_cluster
