"""The book's function (AWS Cookbook 4.3), which the seed deploys: it
connects to `DB_HOST` as `DB_USER` with an IAM authentication token over
TLS, reads the row the seed wrote, and says so.

As in the book, the token is made with the SDK for the host and port the
function connects to, and the server is verified against the runtime's
CA bundle (on AWS, the Amazon root CAs; in the local emulator, its own CA,
given to the function as SSL_CERT_FILE). What the book's function
hard-codes (the engine, the port, the database) comes from
`function_config.json`, which the seed writes beside this file.

A function for an engine the emulator has no server for (SQL Server) does
not pretend: it answers {"exercised": false, "reason": ...}, which the
tool's invoke check reports as not exercised rather than passed.

The event may ask for what users meet (the tests do): {"tls": false}
connects without TLS; {"set_session": true} sets a session variable first
(which pins the session to its DB connection, seeds 003 and 004);
{"idle_seconds": N} waits N seconds between two queries on one connection,
as a client pool does (seed 002: past the proxy's IdleClientTimeout the
second query fails with "Lost connection to MySQL server during query").
"""

import json
import os
import ssl
import time

import boto3

with open(os.path.join(os.path.dirname(__file__), "function_config.json")) as f:
    CONFIG = json.load(f)

QUERY = "SELECT note FROM recipe_check WHERE id = 1"
# Session state the proxy does not track (seed 004's ActiveRecord sets the
# client encoding on every connect).
SET_SESSION = {"mysql": "SET @book_function = 'pinned'",
               "postgres": "SET client_encoding TO 'UTF8'"}


def _token(host: str, port: int, user: str) -> str:
    rds = boto3.client("rds")
    return rds.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user,
                                      Region=os.environ["AWS_REGION"])


def _read_mysql(host, port, user, password, context, event):
    import pymysql

    # Without a context, TLS off (PyMySQL would otherwise try it unverified).
    tls = {"ssl": context} if context else {"ssl_disabled": True}
    conn = pymysql.connect(host=host, port=port, user=user, password=password,
                           database=CONFIG["database"], connect_timeout=5, read_timeout=10,
                           **tls)
    try:
        with conn.cursor() as cursor:
            if event.get("set_session"):
                cursor.execute(SET_SESSION["mysql"])
            cursor.execute(QUERY)
            (note,) = cursor.fetchone()
            _idle(event)
            cursor.execute("SELECT VERSION()")
            (version,) = cursor.fetchone()
        return note, version
    finally:
        conn.close()


def _read_postgres(host, port, user, password, context, event):
    import pg8000.native

    conn = pg8000.native.Connection(user, host=host, port=port, password=password,
                                    database=CONFIG["database"], ssl_context=context,
                                    timeout=10)
    try:
        if event.get("set_session"):
            conn.run(SET_SESSION["postgres"])
        ((note,),) = conn.run(QUERY)
        _idle(event)
        ((version,),) = conn.run("SHOW server_version")
        return note, f"PostgreSQL {version}"
    finally:
        conn.close()


def _idle(event):
    if event.get("idle_seconds"):
        print(f"idle for {event['idle_seconds']} s on an open connection")
        time.sleep(float(event["idle_seconds"]))


def lambda_handler(event, context):
    engine = CONFIG["engine"]
    if engine not in ("mysql", "postgres"):
        return {"exercised": False,
                "reason": f"the local emulator has no {engine} server to connect to"}
    event = event if isinstance(event, dict) else {}
    host = os.environ["DB_HOST"]
    port = int(CONFIG["port"])
    user = os.environ.get("DB_USER", "admin")
    tls = ssl.create_default_context() if event.get("tls", True) else None
    print(f"connecting to {host}:{port} as {user} with an IAM token "
          f"{'over TLS' if tls else 'WITHOUT TLS'}")
    password = _token(host, port, user)
    read = _read_mysql if engine == "mysql" else _read_postgres
    note, version = read(host, port, user, password, tls, event)
    print(f"read {note!r} ({version})")
    return (f"Successfully connected to RDS via RDS Proxy! "
            f"Read {note!r} from the database ({version}).")
