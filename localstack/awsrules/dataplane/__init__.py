"""The emulator's data path: what carries real connections.

    function code (a child process: functions.py, runtime/)
       |  resolved and admitted by network.py; TLS; IAM token or password
       v
    proxy listener (listener.py, one per proxy and proxy endpoint)
       |  the proxy's own login, with the secret its role may read
       v
    a real MariaDB / PostgreSQL server per emulated DB (dbservers.py)

wire/ speaks the MySQL and PostgreSQL protocols, tls.py holds the
emulator's certificate authority (standing for the Amazon root CA).
"""


def install() -> None:
    from .. import policy
    from . import databases, functions, listener

    policy.install()
    functions.install()
    databases.install()
    listener.install()


def reset() -> None:
    """What `POST /moto-api/reset` clears: every server, listener, history."""
    from .. import policy
    from . import dbservers, listener

    policy.reset()
    listener.reset()
    dbservers.stop_all()
