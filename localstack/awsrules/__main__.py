"""Runs moto's server with the extension: `python -m awsrules [-H HOST] [-p PORT]`."""

import argparse
import faulthandler
import os
import signal
import sys

from werkzeug.serving import BaseWSGIServer, run_simple

# werkzeug listens with a queue of 128 connections. A fleet's first round
# opens more at once (a connection per call behind the tests' fault layer);
# the kernel then drops the rest of them, and each client waits 1 s, 3 s,
# 7 s to send its SYN again: seconds of delay that AWS never shows.
BaseWSGIServer.request_queue_size = 4096


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m awsrules")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 4566)))
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # `kill -USR1 PID` prints every thread's stack to the log: a hung
    # connection of the data path shows where it waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    from moto.moto_server.werkzeug_app import MotoRequestHandler  # noqa: E402

    from . import app

    run_simple(args.host, args.port, app(), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
