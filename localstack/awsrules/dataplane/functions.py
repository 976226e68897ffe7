"""Lambda Invoke runs the function's code, as AWS Lambda does, without Docker.

moto's Docker-less backend (moto.awslambda_simple) answers every Invoke
with the request's payload, even for a function that does not exist. Here
Invoke looks the function up (unknown: ResourceNotFoundException, 404) and
runs its code in a fresh child process (each invocation is a cold start):

    <this venv's python> -s runtime/bootstrap.py    cwd: the code, unzipped

Its environment is only what Lambda gives a function: its variables,
Lambda's own (AWS_REGION, _HANDLER, ...), its execution role's credentials
(moto's STS AssumeRole, session name = the function's: what it signs is
signed as that role) and AWS_ENDPOINT_URL = this emulator. The request
goes in on stdin, the result comes back in a file; stdout and stderr are
the function's log, written to CloudWatch Logs (/aws/lambda/NAME) between
START and END/REPORT, its last 4 KB returned with LogType Tail. While the
child runs, the invocation is a `network.Caller` with a source address of
its own; runtime/sitecustomize.py resolves names and binds sockets in it.

Only Python runtimes run (this venv's interpreter, whatever python3.x the
function names); others fail as a runtime that cannot start. Replies queued
with POST /moto-api/static/lambda-simple/response still come first.
"""

import atexit
import base64
import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.utils import utcnow
from moto.logs.models import logs_backends
from moto.sts.models import sts_backends
from moto.utilities.utils import get_partition

from . import network

RUNTIME_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runtime")
BOOTSTRAP = os.path.join(RUNTIME_DIR, "bootstrap.py")
# AWS returns the log's last 4 KB with LogType Tail.
TAIL_BYTES = 4096
# The execution role's credentials: how long they last, and how much of
# that must be left to hand them to another invocation.
ROLE_SECONDS = 3600
ROLE_MARGIN = 300
# Lambda's own defaults of the variables a function may override.
DEFAULTS = {"LANG": "en_US.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin", "TZ": ":UTC"}

_lock = threading.RLock()  # the work directory, the code cache, the credentials
_logs_lock = threading.Lock()  # moto's logs backend is not thread-safe
_work: list = []  # the process's temporary directory, once made
_roles: dict = {}  # (account, role ARN, function name) -> moto's AssumedRole


class InvalidRequestContent(LambdaClientError):
    code = 400

    def __init__(self, why: str):
        super().__init__(
            "InvalidRequestContentException",
            f"Could not parse request body into json: Could not parse payload into json: {why}",
        )


@dataclass
class Outcome:
    """One invocation's answer: the payload, whether the function failed
    (X-Amz-Function-Error: Unhandled) and its log, START to REPORT."""

    payload: bytes
    failed: bool
    log: str


def install() -> None:
    simple = LambdaSimpleBackend.invoke

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        if self.lambda_simple_results_queue:
            return simple(self, function_name, qualifier, body, headers, response_headers)
        fn = self.get_function(function_name, qualifier)  # unknown: 404, as AWS
        event = _event(body)
        kind = headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        if kind == "DryRun":
            return b""
        endpoint = _endpoint_url(headers)
        arn = _invoked_arn(fn, function_name, qualifier)
        if kind == "Event":
            # AWS answers 202 at once and runs the function later.
            threading.Thread(target=run, args=(fn, event, endpoint, arn), daemon=True).start()
            return b""
        outcome = run(fn, event, endpoint, arn)
        response_headers["x-amz-executed-version"] = str(fn.version)
        if outcome.failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        if headers.get("X-Amz-Log-Type") == "Tail":
            tail = outcome.log.encode()[-TAIL_BYTES:]
            response_headers["x-amz-log-result"] = base64.b64encode(tail).decode()
        return outcome.payload

    LambdaSimpleBackend.invoke = invoke


def _event(body) -> str:
    """The event's JSON text; no payload is `{}`, as AWS gives it."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else (body or "")
    if not text.strip():
        return "{}"
    try:
        json.loads(text)
    except ValueError as e:
        raise InvalidRequestContent(str(e)) from None
    return text


def _endpoint_url(headers) -> str:
    """This emulator's URL as the caller reached it (the function reaches
    it the same way)."""
    scheme = getattr(headers, "environ", {}).get("wsgi.url_scheme", "http")
    return f"{scheme}://{headers.get('Host') or '127.0.0.1'}"


def _invoked_arn(fn, function_name: str, qualifier: Optional[str]) -> str:
    """The ARN the caller named (context.invoked_function_arn): with its
    qualifier when it gave one."""
    base = (
        f"arn:{get_partition(fn.region)}:lambda:{fn.region}:{fn.account_id}"
        f":function:{fn.function_name}"
    )
    named = function_name.split(":function:")[-1]
    given = named.split(":", 1)[1] if ":" in named else qualifier
    return f"{base}:{given}" if given else base


def run(fn, event: str, endpoint: str, invoked_arn: str) -> Outcome:
    """Runs one invocation of `fn` and logs it."""
    request_id = str(uuid.uuid4())
    version = str(fn.version)
    stream = f"{utcnow():%Y/%m/%d}/[{version}]{uuid.uuid4().hex}"
    started = time.time()
    lines = [f"START RequestId: {request_id} Version: {version}"]
    report = ""
    if not (fn.run_time or "").startswith("python3"):
        error = {
            "errorType": "Runtime.InvalidEntrypoint",
            "errorMessage": f"RequestId: {request_id} Error: the emulator runs only Python "
            f"functions (python3.x); runtime {fn.run_time or fn.package_type} cannot start here",
        }
        lines += [error["errorMessage"], error["errorType"]]
        payload, ended, memory = None, time.time(), 0
    else:
        child = _run_child(fn, event, endpoint, invoked_arn, request_id, stream, started)
        output = child.output.split("\n") if child.output else []
        lines += output[:-1] if output and not output[-1] else output
        result = child.result or {}
        payload, error = result.get("payload"), result.get("error")
        ended, memory = child.ended, child.maxrss_kb
        if child.timed_out:
            took = f"Task timed out after {float(fn.timeout):.2f} seconds"
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: {took}",
            }
            lines.append(f"{_iso(ended)} {request_id} {took}")
        elif child.result is None:
            error = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: {_exit_reason(child.returncode)}",
            }
            lines += [error["errorMessage"], error["errorType"]]
        if "ready" in result:
            started, init = result["ready"], (result["ready"] - child.spawned) * 1000
            ended = result["done"]
            report = f"Init Duration: {init:.2f} ms\t"
        if child.timed_out:
            report += "Status: timeout"
    duration = max(ended - started, 0) * 1000
    lines.append(f"END RequestId: {request_id}")
    lines.append(
        f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
        f"Billed Duration: {math.ceil(duration)} ms\tMemory Size: {fn.memory_size} MB\t"
        f"Max Memory Used: {math.ceil(memory / 1024)} MB\t{report}"
    )
    _write_log(fn, stream, lines)
    body = (json.dumps(error) if error is not None else payload or "null").encode()
    return Outcome(payload=body, failed=error is not None, log="\n".join(lines) + "\n")


@dataclass
class _Child:
    output: str
    result: Optional[dict]
    timed_out: bool
    returncode: int
    spawned: float
    ended: float
    maxrss_kb: int


def _run_child(fn, event, endpoint, invoked_arn, request_id, stream, started) -> _Child:
    code_dir = _code_dir(fn)
    role = _credentials(fn)
    caller = network.new_caller(
        invocation_id=request_id,
        function_name=fn.function_name,
        function_arn=fn.function_arn,
        account_id=fn.account_id,
        region=fn.region,
        role_arn=fn.role,
        **_vpc(fn),
    )
    result_path = os.path.join(_workdir(), "results", f"{request_id}.json")
    timeout = float(fn.timeout)
    request = {
        "event": event,
        "request_id": request_id,
        "invoked_function_arn": invoked_arn,
        "deadline_ms": int((started + timeout) * 1000),
    }
    env = _environment(fn, stream, code_dir, role, endpoint, caller, result_path)
    timed_out, peak = False, 0
    try:
        spawned = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-s", BOOTSTRAP],
            cwd=code_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group: a timeout kills what it started too.
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(json.dumps(request).encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            # Exited already: what it left running holds the log open.
            timed_out = proc.poll() is None
            peak = _peak_kb(proc.pid) if timed_out else 0
            with contextlib.suppress(ProcessLookupError):  # the group it leads: pgid = pid
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                out, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # something left its group, holds the log
                proc.stdout.close()
                proc.wait()
                out = b""
        ended = time.time()
    finally:
        network.forget(caller)
    result = None
    if os.path.exists(result_path):
        with open(result_path) as f:
            result = json.load(f)
        os.unlink(result_path)
    if timed_out:
        result = None
    return _Child(
        output=out.decode(errors="replace"),
        result=result,
        timed_out=timed_out,
        returncode=proc.returncode if proc.returncode is not None else -signal.SIGKILL,
        spawned=spawned,
        ended=ended,
        maxrss_kb=(result or {}).get("maxrss_kb", peak),
    )


def _environment(fn, stream, code_dir, role, endpoint, caller, result_path) -> dict:
    """What Lambda gives a function, and no more (none of the emulator's)."""
    env = dict(DEFAULTS)
    env.update({str(k): str(v) for k, v in (fn.environment_vars or {}).items()})
    # The function may add to PYTHONPATH; the runtime's and the code's come first.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (RUNTIME_DIR, code_dir, env.get("PYTHONPATH")) if p
    )
    env.update(
        {
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": str(fn.version),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": fn.logs_group_name,
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
            "LAMBDA_TASK_ROOT": code_dir,
            "LAMBDA_RUNTIME_DIR": RUNTIME_DIR,
            "_HANDLER": fn.handler or "",
            "AWS_ACCESS_KEY_ID": role.access_key_id,
            "AWS_SECRET_ACCESS_KEY": role.secret_access_key,
            "AWS_SESSION_TOKEN": role.session_token,
            "AWS_ENDPOINT_URL": endpoint,
            # The runtime's own (bootstrap.py, sitecustomize.py).
            "_AWSRULES_INVOCATION": caller.invocation_id,
            "_AWSRULES_SOURCE_IP": caller.source_ip,
            # The emulator itself, not whatever the Invoke came through (a
            # test's fault layer): name lookups must not meet its faults.
            "_AWSRULES_CONTROL": network.control_url or endpoint,
            "_AWSRULES_RESULT": result_path,
        }
    )
    ca = _ca_bundle()
    if ca:
        env["SSL_CERT_FILE"] = ca  # the emulator's CA stands for Amazon's root
        if endpoint.startswith("https:"):
            env["AWS_CA_BUNDLE"] = ca  # botocore reads its own variable, not SSL's
    return env


def _ca_bundle() -> Optional[str]:
    try:
        from . import tls  # written by another module; absent: no TLS yet
    except ImportError:
        return None
    path = getattr(tls, "ca_bundle_path", None)
    return str(path()) if path else None


def _credentials(fn):
    """The execution role's session for `fn`, as Lambda keeps one per
    function: reused while it lasts and moto still knows it (a reset
    forgets every assumed role)."""
    key = (fn.account_id, fn.role, fn.function_name)
    with _lock:
        role = _roles.get(key)
        if role is not None:
            known = sts_backends[role.account_id][role.partition].assumed_roles
            fresh = (role.expiration - utcnow()).total_seconds() > ROLE_MARGIN
            if fresh and any(r is role for r in known):
                return role
        sts = sts_backends[fn.account_id][get_partition(fn.region)]
        role = sts.assume_role(
            region_name=fn.region,
            role_session_name=fn.function_name,
            role_arn=fn.role,
            policy=None,
            duration=ROLE_SECONDS,
            external_id=None,
        )
        _roles[key] = role
        return role


def _vpc(fn) -> dict:
    """The function's place in a VPC, as network.Caller takes it."""
    try:
        config = fn.vpc_config or {}  # lambda_.py makes VpcId its subnets' VPC
    except (KeyError, TypeError):  # moto's property wants SecurityGroupIds
        config = {}
    subnets = list(config.get("SubnetIds") or [])
    if not subnets:  # no subnets: not in a VPC, whatever else is set
        return {"vpc_id": None, "subnet_ids": [], "security_group_ids": []}
    return {
        "vpc_id": config.get("VpcId"),
        "subnet_ids": subnets,
        "security_group_ids": list(config.get("SecurityGroupIds") or []),
    }


def _workdir() -> str:
    """This process's temporary directory: code/ (by sha256), results/."""
    with _lock:
        if not _work:
            _work.append(tempfile.mkdtemp(prefix="awsrules-lambda-"))
            for sub in ("code", "results"):
                os.makedirs(os.path.join(_work[0], sub))
            atexit.register(shutil.rmtree, _work[0], True)
        return _work[0]


def _code_dir(fn) -> str:
    """The function's code, unzipped once per content."""
    data = getattr(fn, "code_bytes", b"") or b""
    path = os.path.join(_workdir(), "code", hashlib.sha256(data).hexdigest())
    with _lock:
        if not os.path.isdir(path):
            part = path + ".part"
            shutil.rmtree(part, ignore_errors=True)
            os.makedirs(part)
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    z.extractall(part)
            except zipfile.BadZipFile:
                pass  # no code: the handler's import fails, as it would on AWS
            os.rename(part, path)
    return path


def _peak_kb(pid: int) -> int:
    """The child's peak memory (VmHWM), read before it is killed."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _exit_reason(code: int) -> str:
    """AWS's words for a runtime that ended without an answer."""
    if code == 0:
        return "Runtime exited without providing a reason"
    if code < 0:  # "signal: killed", "signal: segmentation fault"
        return f"Runtime exited with error: signal: {signal.strsignal(-code).lower()}"
    return f"Runtime exited with error: exit status {code}"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _write_log(fn, stream: str, lines: list) -> None:
    """The invocation's log, one event a line, in a stream of its own (each
    invocation is a new execution environment)."""
    now = int(time.time() * 1000)
    events = [{"timestamp": now, "message": line} for line in lines]
    backend = logs_backends[fn.account_id][fn.region]
    with _logs_lock:
        backend.ensure_log_group(fn.logs_group_name)
        backend.create_log_stream(fn.logs_group_name, stream)
        backend.put_log_events(fn.logs_group_name, stream, events)
