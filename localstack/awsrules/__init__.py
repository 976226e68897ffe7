"""awsrules: moto's server with the AWS behaviour rds-proxy-runbook relies on
and moto 5.2.5 lacks (see localstack/README.md for the table).

    localstack/.venv/bin/python -m awsrules -H 127.0.0.1 -p 4566

`install()` patches moto's models and responses in this process; `app()`
is the WSGI application: moto's, plus `/awsrules/config` and
`/awsrules/calls` (see control.py).
"""

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from . import calls, cloudwatch, dataplane, ec2, iam, lambda_, rds, s3

    calls.install()
    rds.install()
    ec2.install()
    iam.install()
    lambda_.install()
    s3.install()
    cloudwatch.install()
    dataplane.install()
    _installed = True


def app():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from .control import Control

    install()
    return Control(DomainDispatcherApplication(create_backend_app))
