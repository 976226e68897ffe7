"""What a proxy tells the account about itself: its log (CloudWatch Logs,
group `/aws/rds/proxy/NAME`) and its metrics (CloudWatch, namespace AWS/RDS,
dimension ProxyName), written into moto's own backends so that the tool's
FilterLogEvents and GetMetricStatistics read them as they read AWS's.

A log line is shaped as RDS Proxy's are: each entry prefixed with the
proxy endpoint's name (`default` for the proxy's own) and the client
connection's id; the messages use the wording of AWS's "Troubleshooting
for RDS Proxy" page where it gives one."""

import datetime
import threading
import time

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.utils import utcnow
from moto.logs.exceptions import ResourceAlreadyExistsException
from moto.logs.models import logs_backends

_lock = threading.Lock()
STREAM = "proxy"


def log_group(proxy_name: str) -> str:
    return f"/aws/rds/proxy/{proxy_name}"


def log(account_id, region, proxy_name, level, endpoint, connection, message) -> None:
    """Appends one line to the proxy's log group (made on first use)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    where = f"[proxyEndpoint={endpoint}]"
    if connection is not None:
        where += f" [clientConnection={connection}]"
    line = f"{stamp} [{level}] {where} {message}"
    backend = logs_backends[account_id][region]
    group = log_group(proxy_name)
    with _lock:
        if group not in backend.groups:
            try:
                backend.create_log_group(group, tags={})
            except ResourceAlreadyExistsException:
                pass
        if STREAM not in backend.groups[group].streams:
            backend.create_log_stream(group, STREAM)
        backend.put_log_events(group, STREAM, [{"timestamp": int(time.time() * 1000),
                                                "message": line}])


def metrics(account_id, region, proxy_name, values: dict, unit_of=None) -> None:
    """One datapoint now for each metric of `values` (name -> number)."""
    unit_of = unit_of or {}
    now = utcnow()  # naive UTC, as moto's CloudWatch compares its times
    data = [
        {
            "MetricName": name,
            "Value": float(value),
            "Unit": unit_of.get(name, "Count"),
            "Timestamp": now,
            "Dimensions": [{"Name": "ProxyName", "Value": proxy_name}],
        }
        for name, value in values.items()
    ]
    with _lock:
        cloudwatch_backends[account_id][region].put_metric_data("AWS/RDS", data)
