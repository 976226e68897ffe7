"""The extension's own HTTP API, beside moto's `/moto-api/`:

    GET    /awsrules/config   the pace and choices now (JSON)
    POST   /awsrules/config   change some: {"proxy_creating": 3, ...}
    GET    /awsrules/calls    calls so far by action: {"DescribeDBProxies": 12, ...}
    DELETE /awsrules/calls    start counting again

`POST /moto-api/reset` also puts the settings back to the environment's and
clears the counts.
"""

import json

from . import calls, lambda_, settings


class Control:
    def __init__(self, inner):
        self.inner = inner

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/moto-api/reset" and method == "POST":
            settings.reset()
            calls.clear()
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
        return "404 Not Found", {"error": f"no {method} {path}; see localstack/awsrules/control.py"}
