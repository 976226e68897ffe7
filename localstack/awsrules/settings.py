"""The emulator's pace and choices: how long AWS takes for each change, how
long a minute of a CloudWatch alarm's period lasts, and which Availability
Zones RDS Proxy does not support.

Each value is read from the environment at start (``AWSRULES_PROXY_CREATING=3``
and so on, seconds; ``AWSRULES_UNSUPPORTED_AZS=us-east-1e,us-east-1f``) and can
be changed while the server runs with ``POST /awsrules/config`` and a JSON
object of the same names in lower case (``{"proxy_creating": 3}``).
"""

import os
import threading
import time

# Seconds. Zero means "at once", as plain moto does.
PACE_NAMES = (
    "proxy_creating",  # CreateDBProxy -> available
    "proxy_modifying",  # ModifyDBProxy -> available
    "proxy_deleting",  # DeleteDBProxy -> gone
    "proxy_eni_linger",  # proxy gone -> its network interfaces gone
    "target_registering",  # RegisterDBProxyTargets -> health from the wiring
    "endpoint_creating",  # CreateDBProxyEndpoint -> available
    "endpoint_modifying",  # ModifyDBProxyEndpoint -> available
    "endpoint_deleting",  # DeleteDBProxyEndpoint -> gone
    "lambda_updating",  # UpdateFunctionConfiguration: LastUpdateStatus InProgress
    "iam_propagation",  # an IAM policy change -> honoured by callers' rds-db:connect
)

# Seconds that one minute of a CloudWatch alarm's period lasts when the
# alarm is evaluated (60: AWS's pace): at 0.1, a 5-minute period passes in
# half a second, so a test drives "pinned for 15 minutes" in 1.5 s. Above 0.
SCALE_NAMES = {"alarm_minute": 60.0}

_lock = threading.Lock()
_values: dict = {}


def _from_env() -> dict:
    values = {}
    for name in PACE_NAMES:
        raw = os.environ.get(f"AWSRULES_{name.upper()}", "0")
        values[name] = float(raw)
    for name, default in SCALE_NAMES.items():
        values[name] = float(os.environ.get(f"AWSRULES_{name.upper()}", default))
        if values[name] <= 0:
            raise ValueError(f"AWSRULES_{name.upper()}: seconds, a number > 0")
    # Whether CloudWatch offers anomaly detection here (a region without
    # it answers DescribeAnomalyDetectors with an error).
    values["anomaly_detection"] = os.environ.get("AWSRULES_ANOMALY_DETECTION", "1") != "0"
    azs = os.environ.get("AWSRULES_UNSUPPORTED_AZS", "")
    values["unsupported_azs"] = [az.strip() for az in azs.split(",") if az.strip()]
    return values


def reset() -> None:
    """Back to what the environment said at start."""
    with _lock:
        _values.clear()
        _values.update(_from_env())


def update(changes: dict) -> dict:
    """Applies `changes` (only known names, right types); returns all values.
    Raises ValueError naming the first bad entry."""
    with _lock:
        new = dict(_values)
        for name, value in changes.items():
            if name in PACE_NAMES:
                if not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{name}: seconds, a number >= 0 (got {value!r})")
                new[name] = float(value)
            elif name in SCALE_NAMES:
                if not isinstance(value, (int, float)) or value <= 0:
                    raise ValueError(f"{name}: seconds, a number > 0 (got {value!r})")
                new[name] = float(value)
            elif name == "anomaly_detection":
                if not isinstance(value, bool):
                    raise ValueError("anomaly_detection: true or false")
                new[name] = value
            elif name == "unsupported_azs":
                if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                    raise ValueError("unsupported_azs: a list of zone names")
                new[name] = list(value)
            else:
                known = ", ".join(
                    PACE_NAMES + tuple(SCALE_NAMES) + ("anomaly_detection", "unsupported_azs")
                )
                raise ValueError(f"unknown setting {name!r}; known: {known}")
        _values.clear()
        _values.update(new)
        return dict(_values)


def snapshot() -> dict:
    with _lock:
        return dict(_values)


def pace(name: str) -> float:
    with _lock:
        return _values[name]


def scale(name: str) -> float:
    with _lock:
        return _values[name]


def anomaly_detection() -> bool:
    with _lock:
        return _values["anomaly_detection"]


def unsupported_azs() -> list:
    with _lock:
        return list(_values["unsupported_azs"])


def now() -> float:
    return time.monotonic()


def until(name: str) -> float:
    """When a change that takes `name` and starts now is over."""
    return now() + pace(name)


reset()
