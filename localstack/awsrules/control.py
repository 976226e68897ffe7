"""The extension's own HTTP API, beside moto's `/moto-api/`:

    GET    /awsrules/config   the pace and choices now (JSON)
    POST   /awsrules/config   change some: {"proxy_creating": 3, ...}
    GET    /awsrules/calls    calls so far by action: {"DescribeDBProxies": 12, ...}
    DELETE /awsrules/calls    start counting again
    GET    /awsrules/resolve  ?invocation=ID&host=H&port=P: where a running
                              function reaches H:P (dataplane/network.py)
    GET    /awsrules/local    ?host=H&port=P: where the real server of the DB
                              at H:P listens on this machine (started on first
                              need): the operator's own way in, for seed.py and
                              tests, past the VPC's rules

`POST /moto-api/reset` also puts the settings back to the environment's,
clears the counts, and stops the data path's servers and listeners.
"""

import json
import urllib.parse

from . import calls, cloudwatch, lambda_, settings
from . import dataplane
from .dataplane import databases, network


class Control:
    def __init__(self, inner):
        self.inner = inner

    def __call__(self, environ, start_response):
        if network.control_url is None:
            network.control_url = f"http://{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/moto-api/reset" and method == "POST":
            settings.reset()
            calls.clear()
            cloudwatch.reset()
            dataplane.reset()
        if not path.startswith("/awsrules/"):
            extra = lambda_.answer(environ)
            if extra is not None:
                status, headers, data = extra
                start_response(status, [*headers, ("Content-Length", str(len(data)))])
                return [data]
            return self.inner(environ, start_response)
        status, body = self.answer(path, method, environ)
        data = json.dumps(body, sort_keys=True).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    def answer(self, path, method, environ):
        if path == "/awsrules/config" and method == "GET":
            return "200 OK", settings.snapshot()
        if path == "/awsrules/config" and method == "POST":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                changes = json.loads(environ["wsgi.input"].read(size) or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object")
                return "200 OK", settings.update(changes)
            except ValueError as e:
                return "400 Bad Request", {"error": str(e)}
        if path == "/awsrules/calls" and method == "GET":
            return "200 OK", calls.counts()
        if path == "/awsrules/calls" and method == "DELETE":
            calls.clear()
            return "200 OK", {}
        if path == "/awsrules/resolve" and method == "GET":
            return resolve(environ)
        if path == "/awsrules/local" and method == "GET":
            return local(environ)
        return "404 Not Found", {"error": f"no {method} {path}; see localstack/awsrules/control.py"}


def resolve(environ):
    """A function's name lookup (runtime/sitecustomize.py asks): {"kind":
    "local", "port": N}, {"kind": "blocked", "why": ...} or {"kind": "unknown"}."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    invocation = (query.get("invocation") or [""])[0]
    host = (query.get("host") or [""])[0]
    try:
        port = int((query.get("port") or ["0"])[0])
    except ValueError:
        return "400 Bad Request", {"error": "port: a number"}
    caller = network.caller_by_invocation(invocation)
    if caller is None:
        return "404 Not Found", {"error": f"no running invocation {invocation!r}"}
    answer = network.resolve(caller, host, port)
    if answer.kind == "local":
        return "200 OK", {"kind": "local", "port": answer.port}
    if answer.kind == "blocked":
        return "200 OK", {"kind": "blocked", "why": answer.why}
    return "200 OK", {"kind": "unknown"}


def local(environ):
    """{"port": N}: the DB at host:port's real server on this machine."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    host = (query.get("host") or [""])[0]
    try:
        port = int((query.get("port") or ["0"])[0])
    except ValueError:
        return "400 Bad Request", {"error": "port: a number"}
    found = databases.find_anywhere(host, port)
    if found is None:
        return "404 Not Found", {"error": f"no emulated DB with a server at {host}:{port}"}
    backend, db = found
    return "200 OK", {"port": databases.server(backend, db).port}
