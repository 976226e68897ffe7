"""CloudWatch alarms as AWS evaluates them: plain moto keeps an alarm but
never looks at its metric (every alarm stays `OK`, "Unchecked"). Here an
alarm starts in INSUFFICIENT_DATA, as on AWS, and each time alarms are
described (or their state asked) it is evaluated from the metric data the
account holds (the emulator's proxies publish theirs as they carry
connections): the alarm's statistic over each of its last
`EvaluationPeriods` periods, compared with its threshold; ALARM when at
least `DatapointsToAlarm` of them breach, OK when enough have data and do
not, INSUFFICIENT_DATA otherwise, missing data treated as the alarm says
(`TreatMissingData`). The reason reads as AWS words it.

Tags as AWS keeps them: given on creation only (PutMetricAlarm on an
existing alarm ignores its Tags), and gone with the alarm (moto keeps a
deleted alarm's tags, which a new alarm of the same name made by hand would
then carry: a tool that trusts its tag would take it for its own).

A period lasts its seconds times `alarm_minute`/60 (settings.py; 60, AWS's
pace, unless the tests shorten it), so a test drives a 15-minute alarm in
seconds.

Anomaly detection models as AWS keeps them (plain moto has none:
DescribeAnomalyDetectors answers HTTP 500): PutAnomalyDetector,
DescribeAnomalyDetectors (filtered by namespace, metric and dimensions) and
DeleteAnomalyDetector of single-metric models; an alarm on an
ANOMALY_DETECTION_BAND makes its model when there is none, as CloudWatch
does. With `anomaly_detection` off (settings.py), the three answer as a
region without it. A model is not trained: it stays PENDING_TRAINING.

Not modelled: the periods are counted back from now, not aligned to the
minute; percentiles and metric math (an anomaly detection band: such an
alarm stays INSUFFICIENT_DATA, saying so); alarm actions are not sent."""

import datetime
import json
import re
import threading

from moto.cloudwatch.exceptions import (
    CloudWatchException,
    InvalidParameterValue,
    ResourceNotFoundException,
    ValidationError,
)
from moto.cloudwatch.models import CloudWatchBackend
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow

from . import settings

OPERATORS = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


def _value(points, statistic):
    """The statistic of `points` (MetricDatum / MetricAggregatedDatum), or None."""
    values, sums, counts, mins, maxes = [], 0.0, 0.0, [], []
    for p in points:
        if hasattr(p, "value"):
            values.append(float(p.value))
            sums, counts = sums + float(p.value), counts + 1
            mins.append(float(p.value))
            maxes.append(float(p.value))
        else:
            sums += float(p.sum_stat)
            counts += float(p.sample_count)
            mins.append(float(p.min_stat))
            maxes.append(float(p.max_stat))
    if not counts:
        return None
    return {
        "Average": sums / counts,
        "Sum": sums,
        "SampleCount": counts,
        "Minimum": min(mins),
        "Maximum": max(maxes),
    }.get(statistic)


def _naive(when):
    """UTC without a zone, as moto keeps its own times."""
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return when


def _points(backend, alarm):
    """(timestamp, datum) of the alarm's metric with exactly its dimensions."""
    wanted = {(d.name, d.value) for d in alarm.dimensions}
    for p in backend.metric_data:
        if p.namespace != alarm.namespace or p.name != alarm.metric_name:
            continue
        if {(d.name, d.value) for d in p.dimensions} == wanted:
            yield _naive(p.timestamp), p


def evaluate(backend, alarm, now=None) -> None:
    """Sets the alarm's state from its metric's data."""
    if alarm.metric_data_queries or not alarm.metric_name:
        reason = "The local emulator does not evaluate metric math or anomaly detection bands."
        if alarm.state_value != "INSUFFICIENT_DATA" or alarm.state_reason != reason:
            alarm.update_state(reason, "{}", "INSUFFICIENT_DATA")
        return
    now = now or utcnow()
    scale = settings.scale("alarm_minute") / 60.0
    period = datetime.timedelta(seconds=int(alarm.period or 60) * scale)
    count = int(alarm.evaluation_periods or 1)
    needed = int(alarm.datapoints_to_alarm or count)
    points = list(_points(backend, alarm))
    values = []  # newest first: (end of the period, its statistic or None)
    for k in range(count):
        end = now - k * period
        inside = [p for when, p in points if end - period < when <= end]
        values.append((end, _value(inside, alarm.statistic or "Average")))
    compare, words = OPERATORS.get(alarm.comparison_operator, OPERATORS["GreaterThanThreshold"])
    threshold = float(alarm.threshold)
    missing = alarm.treat_missing_data or "missing"
    breaching = [v for _, v in values if v is not None and compare(v, threshold)]
    present = [v for _, v in values if v is not None]
    absent = count - len(present)
    if missing == "breaching":
        breaches = len(breaching) + absent
    else:
        breaches = len(breaching)
    if breaches >= needed:
        state = "ALARM"
    elif present or missing in ("notBreaching", "breaching"):
        state = "OK"
    elif missing == "ignore":
        return
    else:
        state = "INSUFFICIENT_DATA"
    shown = ", ".join(
        f"{v} ({end.strftime('%d/%m/%y %H:%M:%S')})" for end, v in values if v is not None
    )
    if state == "INSUFFICIENT_DATA":
        reason = f"Insufficient Data: {count} datapoint(s) were unknown."
    else:
        crossed = "Threshold Crossed" if state == "ALARM" else "Threshold Not Crossed"
        reason = (
            f"{crossed}: {breaches} out of the last {count} datapoints [{shown}] "
            f"{'was' if state == 'ALARM' else 'was not'} {words} the threshold ({threshold}) "
            f"(minimum {needed} datapoint(s) for OK -> ALARM transition)."
        )
    if state != alarm.state_value or reason != alarm.state_reason:
        data = {"version": "1.0", "queryDate": now.isoformat(), "threshold": threshold,
                "recentDatapoints": present}
        alarm.update_state(reason, json.dumps(data), state)


# --- Anomaly detection models ----------------------------------------------

_models_lock = threading.Lock()
# id(backend) -> {(namespace, metric, ((name, value), ...) sorted, stat): model}
_models: dict = {}


class NotOffered(CloudWatchException):
    """What a region without anomaly detection answers."""

    code = "InvalidAction"
    message = ("The action is not valid for this web service (anomaly detection is turned off "
               "in this emulator: settings.py, anomaly_detection).")


def _key(namespace, metric, dimensions, stat):
    dims = tuple(sorted((d.get("Name"), d.get("Value")) for d in dimensions or []))
    return (namespace, metric, dims, stat)


def _models_of(backend) -> dict:
    return _models.setdefault(id(backend), {})


def _single(params) -> tuple:
    """(namespace, metric, dimensions, stat) of a request, from its
    SingleMetricAnomalyDetector or the older top-level members."""
    single = params("SingleMetricAnomalyDetector") or {}
    if params("MetricMathAnomalyDetector"):
        raise InvalidParameterValue(
            "The local emulator models single-metric anomaly detectors only."
        )
    namespace = single.get("Namespace") or params("Namespace")
    metric = single.get("MetricName") or params("MetricName")
    dimensions = single.get("Dimensions") or params("Dimensions") or []
    stat = single.get("Stat") or params("Stat")
    for name, value in (("Namespace", namespace), ("MetricName", metric), ("Stat", stat)):
        if not value:
            raise ValidationError(f"{name} is required for a single-metric anomaly detector.")
    return namespace, metric, dimensions, stat


def put_model(backend, namespace, metric, dimensions, stat, configuration=None) -> None:
    with _models_lock:
        models = _models_of(backend)
        key = _key(namespace, metric, dimensions, stat)
        model = models.get(key) or {"StateValue": "PENDING_TRAINING"}
        model.update(
            Namespace=namespace, MetricName=metric, Stat=stat,
            Dimensions=[{"Name": n, "Value": v} for n, v in key[2]],
        )
        if configuration is not None:
            model["Configuration"] = configuration
        models[key] = model


def _answer_model(model) -> dict:
    single = {k: model[k] for k in ("Namespace", "MetricName", "Dimensions", "Stat")}
    out = dict(single, SingleMetricAnomalyDetector=single, StateValue=model["StateValue"])
    if "Configuration" in model:
        out["Configuration"] = model["Configuration"]
    return out


def _r_put_anomaly_detector(self) -> ActionResult:
    if not settings.anomaly_detection():
        raise NotOffered()
    namespace, metric, dimensions, stat = _single(self._get_param)
    put_model(self.cloudwatch_backend, namespace, metric, dimensions, stat,
              self._get_param("Configuration"))
    return EmptyResult()


def _r_describe_anomaly_detectors(self) -> ActionResult:
    if not settings.anomaly_detection():
        raise NotOffered()
    namespace = self._get_param("Namespace")
    metric = self._get_param("MetricName")
    wanted = {(d.get("Name"), d.get("Value")) for d in self._get_param("Dimensions") or []}
    types = self._get_param("AnomalyDetectorTypes") or ["SINGLE_METRIC", "METRIC_MATH"]
    most = int(self._get_param("MaxResults") or 100)
    start = int(self._get_param("NextToken") or 0)
    with _models_lock:
        found = [
            _answer_model(m) for key, m in sorted(_models_of(self.cloudwatch_backend).items())
            if "SINGLE_METRIC" in types
            and (not namespace or key[0] == namespace)
            and (not metric or key[1] == metric)
            and wanted <= set(key[2])
        ]
    page = found[start:start + most]
    answer = {"AnomalyDetectors": page}
    if start + most < len(found):
        answer["NextToken"] = str(start + most)
    return ActionResult(answer)


def _r_delete_anomaly_detector(self) -> ActionResult:
    if not settings.anomaly_detection():
        raise NotOffered()
    namespace, metric, dimensions, stat = _single(self._get_param)
    with _models_lock:
        if _models_of(self.cloudwatch_backend).pop(
                _key(namespace, metric, dimensions, stat), None) is None:
            raise ResourceNotFoundException()
    return EmptyResult()


_BAND = re.compile(r"ANOMALY_DETECTION_BAND\(\s*(\w+)")


def _band_models(backend, alarm) -> None:
    """The model an alarm on an anomaly detection band needs, made if
    missing, as CloudWatch does."""
    queries = {q.id: q for q in alarm.metric_data_queries or []}
    for q in queries.values():
        m = _BAND.search(q.expression or "")
        source = queries.get(m.group(1)) if m else None
        stat = source.metric_stat if source is not None else None
        if stat is None or stat.metric is None:
            continue
        dims = [{"Name": d.name, "Value": d.value} for d in stat.metric.dimensions]
        key = _key(stat.metric.namespace, stat.metric.metric_name, dims, stat.stat)
        with _models_lock:
            known = key in _models_of(backend)
        if not known:
            put_model(backend, stat.metric.namespace, stat.metric.metric_name, dims, stat.stat)


def reset() -> None:
    with _models_lock:
        _models.clear()


def install() -> None:
    put = CloudWatchBackend.put_metric_alarm

    def put_metric_alarm(self, *args, **kwargs):
        name = kwargs.get("name") or (args[0] if args else None)
        known = name in self.alarms
        if known:
            kwargs["tags"] = None  # AWS ignores an update's tags
        alarm = put(self, *args, **kwargs)
        if not known:
            # AWS's first state; moto's is OK.
            alarm.update_state("Unchecked: Initial alarm creation", "{}", "INSUFFICIENT_DATA")
        if settings.anomaly_detection():
            _band_models(self, alarm)
        return alarm

    for name, fn in (
        ("put_anomaly_detector", _r_put_anomaly_detector),
        ("describe_anomaly_detectors", _r_describe_anomaly_detectors),
        ("delete_anomaly_detector", _r_delete_anomaly_detector),
    ):
        setattr(CloudWatchResponse, name, fn)

    CloudWatchBackend.put_metric_alarm = put_metric_alarm

    delete = CloudWatchBackend.delete_alarms

    def delete_alarms(self, alarm_names):
        for name in alarm_names:
            alarm = self.alarms.get(name)
            if alarm is not None:
                self.tagger.delete_all_tags_for_resource(alarm.alarm_arn)
        return delete(self, alarm_names)

    CloudWatchBackend.delete_alarms = delete_alarms

    for getter in (
        "describe_alarms",
        "get_alarms_by_action_prefix",
        "get_alarms_by_alarm_name_prefix",
        "get_alarms_by_alarm_names",
        "get_alarms_by_state_value",
    ):
        original = getattr(CloudWatchBackend, getter)

        def evaluated(self, *args, __original=original, __getter=getter, **kwargs):
            for alarm in list(self.alarms.values()):
                evaluate(self, alarm)
            return __original(self, *args, **kwargs)

        setattr(CloudWatchBackend, getter, evaluated)
