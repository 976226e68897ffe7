"""The emulator's Python Lambda runtime: one invocation in this process.

functions.py starts `python bootstrap.py` with Lambda's environment (only
it) and the code's directory as cwd, writes the request on stdin
({"event": "<JSON text>", "request_id", "invoked_function_arn",
"deadline_ms"}) and reads the outcome from the file `_AWSRULES_RESULT`
names. stdout and stderr are the function's log. The errors are AWS's own
(`Runtime.ImportModuleError`, `Runtime.HandlerNotFound`, the handler's
exception as errorType/errorMessage/stackTrace), worded as AWS's Python
runtime (awslambdaric) words them.

Standard library only: this runs with whatever the function's code brings.
What is needed only on an error is imported then: each invocation is a new
process, and its start-up is the cold start.
"""

import importlib
import json
import os
import sys
import time


class Fault(Exception):
    """A runtime error of AWS's (the handler could not be loaded)."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


class Context:
    """The `context` the handler gets, with the attributes AWS's has."""

    def __init__(self, request):
        env = os.environ
        self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = env["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = request["invoked_function_arn"]
        # A string, as AWS's Python runtime gives it.
        self.memory_limit_in_mb = env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.aws_request_id = request["request_id"]
        self.log_group_name = env["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = env["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = request["deadline_ms"]

    def get_remaining_time_in_millis(self):
        return max(int(self._deadline_ms - time.time() * 1000), 0)


def load_handler(handler):
    """The handler function named "module.function", or a Fault."""
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {e}") from None
    if modname.split(".")[0] in sys.builtin_module_names:
        raise Fault(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {modname} as a handler module",
        )
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}"
        ) from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise Fault(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {e}", trace
        ) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise Fault(
            "Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'"
        ) from None


def stack_trace(tb):
    import traceback  # only on an error: start-up stays short

    # AWS leaves its runtime's own frames out: only the function's show.
    frames = [f for f in traceback.extract_tb(tb) if f.filename != __file__]
    return traceback.format_list(frames)


def log_error(error):
    # One log event, as AWS writes it: the lines joined by \r.
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    lines.append("Traceback (most recent call last):")
    lines += [part for frame in error["stackTrace"] for part in frame.rstrip("\n").split("\n")]
    sys.stdout.write("\r".join(lines) + "\n")


def to_json(value):
    def decimals(o):
        import decimal  # only for what json cannot write itself

        if isinstance(o, decimal.Decimal):
            return float(o)
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    return json.dumps(value, default=decimals)


def install_logging(request_id):
    """The root logger's handler AWS's runtime installs (level unchanged)."""
    import logging

    class RequestId(logging.Filter):
        def filter(self, record):
            record.aws_request_id = request_id
            return True

    handler = logging.StreamHandler(sys.stdout)
    form = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    form.converter = time.gmtime
    handler.setFormatter(form)
    handler.addFilter(RequestId())
    logging.getLogger().addHandler(handler)


def peak_memory_kb():
    # VmHWM, not ru_maxrss: the latter keeps the emulator's own size from
    # before exec (the fork shared its memory).
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    request = json.loads(sys.stdin.buffer.read())
    # Nothing more comes on stdin; the function reads nothing there.
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    # Both go to one pipe: line buffering keeps prints and errors in order.
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    # The code's directory first, as AWS's /var/task.
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    request_id = request["request_id"]
    result_path = os.environ["_AWSRULES_RESULT"]  # read before the function can change it
    install_logging(request_id)
    outcome = {}
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except Fault as f:
        # Init errors carry no request id (AWS's answer is the same).
        outcome["error"] = {
            "errorMessage": f.message,
            "errorType": f.error_type,
            "requestId": "",
            "stackTrace": f.trace,
        }
    except Exception as e:  # the module raised while it was imported
        outcome["error"] = {
            "errorMessage": str(e),
            "errorType": type(e).__name__,
            "requestId": "",
            "stackTrace": stack_trace(e.__traceback__),
        }
    outcome["ready"] = time.time()
    if "error" not in outcome:
        context = Context(request)
        try:
            value = handler(json.loads(request["event"]), context)
            try:
                outcome["payload"] = to_json(value)
            except (TypeError, ValueError) as e:
                outcome["error"] = {
                    "errorMessage": f"Unable to marshal response: {e}",
                    "errorType": "Runtime.MarshalError",
                    "requestId": request_id,
                    "stackTrace": [],
                }
        except Exception as e:
            outcome["error"] = {
                "errorMessage": str(e),
                "errorType": type(e).__name__,
                "requestId": request_id,
                "stackTrace": stack_trace(e.__traceback__),
            }
    outcome["done"] = time.time()
    if "error" in outcome:
        log_error(outcome["error"])
    outcome["maxrss_kb"] = peak_memory_kb()
    with open(result_path + ".part", "w") as f:
        json.dump(outcome, f)
    os.rename(result_path + ".part", result_path)
    sys.stdout.flush()
    sys.stderr.flush()
    # AWS freezes the environment once the handler returns: threads the
    # function left running do not keep the invocation going.
    os._exit(0)


if __name__ == "__main__":
    main()
