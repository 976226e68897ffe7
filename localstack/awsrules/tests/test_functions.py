"""Lambda Invoke runs the function's code (dataplane/functions.py and
runtime/), against boto3: the payload, the environment and the role's
credentials, AWS's errors, timeouts and logs, moto's queued replies, and
the emulated network a function's connections go through (network.py,
`GET /awsrules/resolve`)."""

import base64
import io
import json
import socketserver
import threading
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor

import boto3
from moto.awslambda_simple.models import lambda_simple_backends
from moto.backends import get_backend

from awsrules.dataplane import network

from .base import REGION, AwsTest, post, trust, wait_until

# Connects to event["host"]:event["port"] (by create_connection; with
# event["raw"] by socket.connect with the name; with event["asyncio"] by a
# non-blocking socket), sends "ping", returns what comes back, or the error
# and how long it took.
NET_CODE = """
import asyncio, os, socket, time

async def through_asyncio(address, timeout):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout)
    writer.write(b"ping")
    data = await reader.readexactly(4)
    writer.close()
    return {"echo": data.decode(), "source": os.environ["_AWSRULES_SOURCE_IP"]}

def handler(event, context):
    started = time.monotonic()
    address = (event["host"], event["port"])
    try:
        if event.get("asyncio"):
            return asyncio.run(through_asyncio(address, event["timeout"]))
        if event.get("raw"):
            s = socket.socket()
            s.settimeout(event.get("timeout"))
            s.connect(address)
        else:
            s = socket.create_connection(address, timeout=event.get("timeout"))
        s.sendall(b"ping")
        data = s.recv(4)
        s.close()
        return {"echo": data.decode(), "source": os.environ["_AWSRULES_SOURCE_IP"]}
    except Exception as e:
        return {"error": type(e).__name__, "message": str(e), "after": time.monotonic() - started}
"""


def code_zip(source: str, module="app") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{module}.py", source)
    return buf.getvalue()


class Echo(socketserver.ThreadingTCPServer):
    """A plain TCP echo server that remembers who connected."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.peers = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                outer.peers.append(self.client_address[0])
                while data := self.request.recv(1024):
                    self.request.sendall(data)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]


class Functions(AwsTest):
    def setUp(self):
        super().setUp()
        # The Docker-less backend, where functions live, and the logs.
        for backends in (lambda_simple_backends, get_backend("logs")):
            for account in backends.values():
                account.reset()
            backends.clear()
        self.logs = boto3.client("logs", region_name=REGION, endpoint_url=self.url)
        self.role = self.c["iam"].create_role(
            RoleName="fn-role",
            AssumeRolePolicyDocument=json.dumps(trust("lambda.amazonaws.com")),
        )["Role"]["Arn"]

    def function(self, name, source, handler="app.handler", **extra):
        extra.setdefault("Runtime", "python3.12")
        self.c["lambda"].create_function(
            FunctionName=name,
            Role=self.role,
            Handler=handler,
            Code={"ZipFile": code_zip(source)},
            **extra,
        )

    def invoke(self, name, event=None, **extra):
        """(payload as JSON, the whole response)."""
        out = self.c["lambda"].invoke(
            FunctionName=name, Payload=json.dumps(event or {}).encode(), **extra
        )
        return json.loads(out["Payload"].read()), out

    # --- the payload, the environment, the role -------------------------

    def test_the_return_value_comes_back_json_encoded_and_the_event_reaches_the_handler(self):
        self.function("echo", "def handler(event, context):\n    return event['say']\n")
        out = self.c["lambda"].invoke(FunctionName="echo", Payload=b'{"say": "hello"}')
        self.assertEqual(out["StatusCode"], 200)
        self.assertEqual(out["Payload"].read(), b'"hello"')  # a str is a JSON string
        self.assertEqual(out["ExecutedVersion"], "$LATEST")
        self.assertNotIn("FunctionError", out)
        self.function("nested", "def handler(event, context):\n    return {'got': event}\n")
        self.assertEqual(self.invoke("nested", {"a": [1, 2]})[0], {"got": {"a": [1, 2]}})
        self.function("none", "def handler(event, context):\n    return None\n")
        out = self.c["lambda"].invoke(FunctionName="none")  # no payload: the event is {}
        self.assertEqual(out["Payload"].read(), b"null")

    def test_the_handler_gets_a_context(self):
        self.function(
            "ctx",
            "def handler(event, context):\n"
            "    return {k: getattr(context, k) for k in ('function_name', 'function_version',"
            " 'memory_limit_in_mb', 'aws_request_id', 'invoked_function_arn', 'log_group_name',"
            " 'log_stream_name')} | {'left': context.get_remaining_time_in_millis()}\n",
            MemorySize=256,
            Timeout=5,
        )
        ctx, _ = self.invoke("ctx")
        self.assertEqual(ctx["function_name"], "ctx")
        self.assertEqual(ctx["function_version"], "$LATEST")
        self.assertEqual(ctx["memory_limit_in_mb"], "256")
        self.assertEqual(
            ctx["invoked_function_arn"], f"arn:aws:lambda:{REGION}:123456789012:function:ctx"
        )
        self.assertEqual(ctx["log_group_name"], "/aws/lambda/ctx")
        self.assertIn("[$LATEST]", ctx["log_stream_name"])
        self.assertEqual(len(ctx["aws_request_id"]), 36)
        self.assertTrue(0 < ctx["left"] <= 5000, ctx["left"])

    def test_the_environment_is_lambdas_with_the_roles_credentials(self):
        self.function(
            "env",
            "import os\nimport boto3\n"
            "def handler(event, context):\n"
            "    who = boto3.client('sts').get_caller_identity()['Arn']\n"
            "    return {'env': dict(os.environ), 'who': who}\n",
            Environment={"Variables": {"DB_HOST": "db.example", "LOG_LEVEL": "info"}},
            Timeout=10,
        )
        got, _ = self.invoke("env")
        env = got["env"]
        # Signed with the execution role's session, named after the function.
        self.assertEqual(got["who"], "arn:aws:sts::123456789012:assumed-role/fn-role/env")
        self.assertTrue(env["AWS_ACCESS_KEY_ID"].startswith("ASIA"), env["AWS_ACCESS_KEY_ID"])
        self.assertTrue(env["AWS_SESSION_TOKEN"])
        self.assertEqual(env["AWS_ENDPOINT_URL"], self.url)
        expected = {
            "DB_HOST": "db.example",
            "LOG_LEVEL": "info",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": "env",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/env",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "_HANDLER": "app.handler",
            "TZ": ":UTC",
        }
        self.assertEqual({k: env.get(k) for k in expected}, expected)
        for name in ("LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "AWS_LAMBDA_LOG_STREAM_NAME"):
            self.assertIn(name, env)
        # Nothing of the emulator's own environment (this test process's).
        allowed = set(expected) | {
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE",
            "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "LANG", "PATH", "PYTHONPATH",
            "SSL_CERT_FILE", "_AWSRULES_INVOCATION", "_AWSRULES_SOURCE_IP",
            "_AWSRULES_CONTROL", "_AWSRULES_RESULT",
            "LC_CTYPE",  # Python's own, where the en_US.UTF-8 locale is missing
        }  # fmt: skip
        self.assertEqual(set(env) - allowed, set())

    # --- errors ---------------------------------------------------------

    def assertFunctionError(self, name, error_type, message_part, event=None):
        body, out = self.invoke(name, event)
        self.assertEqual(out["StatusCode"], 200)
        self.assertEqual(out.get("FunctionError"), "Unhandled", body)
        self.assertEqual(body["errorType"], error_type, body)
        self.assertIn(message_part, body["errorMessage"])
        return body

    def test_an_exception_in_the_handler_is_an_unhandled_function_error(self):
        self.function(
            "boom", "def handler(event, context):\n    raise ValueError('no such row')\n"
        )
        body = self.assertFunctionError("boom", "ValueError", "no such row")
        self.assertEqual(body["errorMessage"], "no such row")
        self.assertEqual(len(body["requestId"]), 36)
        # The function's frames only, not the runtime's.
        self.assertEqual(len(body["stackTrace"]), 1, body["stackTrace"])
        self.assertIn('app.py", line 2, in handler', body["stackTrace"][0])

    def test_a_handler_that_cannot_load_fails_as_aws_says(self):
        self.function("noimport", "import pymysqlx\ndef handler(e, c):\n    return 1\n")
        self.assertFunctionError(
            "noimport",
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'pymysqlx'",
        )
        self.function("nohandler", "def other(e, c):\n    return 1\n")
        self.assertFunctionError(
            "nohandler", "Runtime.HandlerNotFound", "Handler 'handler' missing on module 'app'"
        )
        self.function("syntax", "def handler(e, c)\n    return 1\n")
        self.assertFunctionError(
            "syntax", "Runtime.UserCodeSyntaxError", "Syntax error in module 'app'"
        )
        self.function("exits", "import os\ndef handler(e, c):\n    os._exit(3)\n")
        self.assertFunctionError(
            "exits", "Runtime.ExitError", "Runtime exited with error: exit status 3"
        )
        self.function("marshal", "def handler(e, c):\n    return {1, 2}\n")
        self.assertFunctionError("marshal", "Runtime.MarshalError", "Unable to marshal response")

    def test_only_python_functions_run(self):
        self.function(
            "node", "exports.handler = async () => 1;", "index.handler", Runtime="nodejs20.x"
        )
        self.assertFunctionError("node", "Runtime.InvalidEntrypoint", "runs only Python functions")

    def test_a_function_that_runs_too_long_is_killed_at_its_timeout(self):
        self.function(
            "slow",
            "import time\ndef handler(e, c):\n    print('working')\n    time.sleep(20)\n",
            Timeout=1,
        )
        started = time.monotonic()
        body, out = self.invoke("slow", LogType="Tail")
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(out.get("FunctionError"), "Unhandled")
        self.assertEqual(body["errorType"], "Sandbox.Timedout")
        self.assertRegex(
            body["errorMessage"], r"^RequestId: \S+ Error: Task timed out after 1\.00 seconds$"
        )
        log = base64.b64decode(out["LogResult"]).decode()
        self.assertIn("working\n", log)
        self.assertRegex(log, r"\d{4}-\d\d-\d\dT[\d:.]+Z \S+ Task timed out after 1\.00 seconds\n")
        self.assertIn("Status: timeout", log)

    def test_an_unknown_function_is_not_found(self):
        err = self.assertError(
            "ResourceNotFoundException", self.c["lambda"].invoke, FunctionName="nope", status=404
        )
        self.assertIn("Function not found", err["Error"]["Message"])

    def test_a_payload_that_is_not_json_is_refused(self):
        self.function("strict", "def handler(e, c):\n    return 1\n")
        self.assertError(
            "InvalidRequestContentException",
            self.c["lambda"].invoke,
            FunctionName="strict",
            Payload=b"{not json",
            status=400,
        )

    def test_replies_queued_in_moto_still_come_first(self):
        self.function("queued", "def handler(e, c):\n    return 'ran'\n")
        post(
            f"{self.url}/moto-api/static/lambda-simple/response",
            {"results": ["canned"], "region": REGION},
        )
        out = self.c["lambda"].invoke(FunctionName="queued")
        self.assertEqual(out["Payload"].read(), b"canned")
        self.assertEqual(self.invoke("queued")[0], "ran")  # the queue is empty again

    # --- logs, asynchronous and concurrent invocations --------------------

    def test_the_log_goes_to_cloudwatch_and_its_tail_to_the_caller(self):
        self.function(
            "talk",
            "import sys\ndef handler(e, c):\n"
            "    print('first line')\n    print('to stderr', file=sys.stderr)\n    return 1\n",
        )
        _, out = self.invoke("talk", LogType="Tail")
        lines = base64.b64decode(out["LogResult"]).decode().splitlines()
        self.assertRegex(lines[0], r"^START RequestId: \S+ Version: \$LATEST$")
        self.assertEqual(lines[1:3], ["first line", "to stderr"])
        self.assertRegex(lines[3], r"^END RequestId: \S+$")
        self.assertRegex(
            lines[4],
            r"^REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
            r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\tInit Duration: [\d.]+ ms\t$",
        )
        events = self.logs.filter_log_events(logGroupName="/aws/lambda/talk")["events"]
        self.assertEqual([e["message"] for e in events], lines)
        # Without LogType Tail, no log in the answer.
        self.assertNotIn("LogResult", self.invoke("talk")[1])

    def test_an_asynchronous_invocation_runs_later(self):
        self.function("later", "def handler(e, c):\n    print('ran with', e['n'])\n")
        out = self.c["lambda"].invoke(
            FunctionName="later", InvocationType="Event", Payload=b'{"n": 7}'
        )
        self.assertEqual(out["StatusCode"], 202)

        def logged():
            try:
                events = self.logs.filter_log_events(logGroupName="/aws/lambda/later")["events"]
            except self.logs.exceptions.ResourceNotFoundException:
                return False
            return any(e["message"] == "ran with 7" for e in events)

        wait_until(logged)

    def test_invocations_run_at_once_each_in_its_own_process(self):
        self.function(
            "wait",
            "import os, time\ndef handler(e, c):\n    time.sleep(0.6)\n"
            "    return [os.getpid(), c.aws_request_id]\n",
        )
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: self.invoke("wait")[0], range(4)))
        self.assertLess(time.monotonic() - started, 4 * 0.6)
        self.assertEqual(len({pid for pid, _ in answers}), 4)
        self.assertEqual(len({rid for _, rid in answers}), 4)

    # --- the network ----------------------------------------------------

    def endpoint(self, host, port, local_port, admits):
        network.register(network.Endpoint(host, port, lambda: local_port, admits))
        self.addCleanup(network.unregister, host, port)

    def in_vpc(self):
        vpc, subnets = self.network()
        group = self.group(vpc, "fn-sg")
        self.function(
            "net",
            NET_CODE,
            Timeout=10,
            VpcConfig={"SubnetIds": subnets[:2], "SecurityGroupIds": [group]},
        )
        return vpc, subnets[:2], group

    def test_a_function_reaches_an_emulated_name_from_its_own_source_address(self):
        vpc, subnets, group = self.in_vpc()
        echo = Echo()
        self.addCleanup(echo.server_close)
        self.addCleanup(echo.shutdown)
        callers = []
        host = "mydb.abc123.us-east-1.rds.amazonaws.com"
        self.endpoint(host, 3306, echo.port, lambda caller: callers.append(caller))
        got, _ = self.invoke("net", {"host": host, "port": 3306, "timeout": 5})
        self.assertEqual(got["echo"], "ping", got)
        # The listener sees the invocation's own address.
        self.assertEqual(echo.peers, [got["source"]])
        self.assertTrue(got["source"].startswith("127.") and got["source"] != "127.0.0.1")
        caller = callers[0]
        self.assertEqual(
            (caller.function_name, caller.role_arn, caller.vpc_id, caller.security_group_ids),
            ("net", self.role, vpc, [group]),
        )
        self.assertEqual(sorted(caller.subnet_ids), sorted(subnets))
        # The invocation is over: the network forgot it.
        self.assertIsNone(network.caller_by_invocation(caller.invocation_id))
        # connect() given the name itself resolves the same way.
        got, _ = self.invoke("net", {"host": host, "port": 3306, "timeout": 5, "raw": True})
        self.assertEqual(got["echo"], "ping", got)
        self.assertEqual(echo.peers[-1], got["source"])
        # And so does asyncio's (non-blocking sockets).
        got, _ = self.invoke("net", {"host": host, "port": 3306, "timeout": 5, "asyncio": True})
        self.assertEqual(got["echo"], "ping", got)
        self.assertEqual(echo.peers[-1], got["source"])

    def test_a_name_the_network_does_not_admit_times_out(self):
        self.in_vpc()
        echo = Echo()
        self.addCleanup(echo.server_close)
        self.addCleanup(echo.shutdown)
        host = "myproxy.proxy-xyz.us-east-1.rds.amazonaws.com"
        self.endpoint(host, 5432, echo.port, lambda caller: "sg-db does not admit sg-fn")
        got, _ = self.invoke("net", {"host": host, "port": 5432, "timeout": 0.5})
        self.assertEqual(got.get("error"), "TimeoutError", got)
        self.assertEqual(got["message"], "timed out")
        self.assertGreaterEqual(got["after"], 0.5)
        # A non-blocking connect stays in flight: asyncio's own timeout ends it.
        got, _ = self.invoke("net", {"host": host, "port": 5432, "timeout": 0.5, "asyncio": True})
        self.assertEqual(got.get("error"), "TimeoutError", got)
        self.assertGreaterEqual(got["after"], 0.5)
        self.assertEqual(echo.peers, [])

    def test_a_name_nobody_registered_does_not_resolve(self):
        self.in_vpc()
        host = "gone.abc123.us-east-1.rds.amazonaws.com"
        got, _ = self.invoke("net", {"host": host, "port": 3306})
        self.assertEqual(got.get("error"), "gaierror", got)
        self.assertIn("Name or service not known", got["message"])

    def test_resolve_answers_only_for_a_running_invocation(self):
        url = f"{self.url}/awsrules/resolve?invocation=none&host=db.rds.amazonaws.com&port=3306"
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url, timeout=5)
        self.assertEqual(caught.exception.code, 404)
