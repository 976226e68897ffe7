"""CloudWatch alarms evaluated from the metrics the account holds."""

import datetime
import unittest

import boto3
import botocore.exceptions

from awsrules import settings

from .base import PLAIN, REGION, AwsTest

NAMESPACE, METRIC = "AWS/RDS", "DatabaseConnectionsCurrentlySessionPinned"


class Alarms(AwsTest):
    def setUp(self):
        super().setUp()
        self.cw = boto3.client("cloudwatch", region_name=REGION, endpoint_url=self.url)
        # Each test its own proxy: the metric data of earlier tests stays.
        self.proxy = self.id().rsplit(".", 1)[-1][:40]

    def alarm(self, name="pinned", **extra):
        params = dict(
            AlarmName=name, Namespace=NAMESPACE, MetricName=METRIC,
            Dimensions=[{"Name": "ProxyName", "Value": self.proxy}], Statistic="Maximum",
            Period=60, EvaluationPeriods=1, Threshold=0.0,
            ComparisonOperator="GreaterThanThreshold", TreatMissingData="missing",
        )
        params.update(extra)
        self.cw.put_metric_alarm(**params)

    def state(self, name="pinned"):
        a = self.cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        return a["StateValue"], a["StateReason"]

    def publish(self, value, proxy=None, ago=0):
        self.cw.put_metric_data(Namespace=NAMESPACE, MetricData=[{
            "MetricName": METRIC, "Value": value,
            "Dimensions": [{"Name": "ProxyName", "Value": proxy or self.proxy}],
            "Timestamp": datetime.datetime.now(datetime.timezone.utc)
            - datetime.timedelta(seconds=ago),
        }])

    def tearDown(self):
        names = [a["AlarmName"] for a in self.cw.describe_alarms()["MetricAlarms"]]
        if names:
            self.cw.delete_alarms(AlarmNames=names)

    @unittest.skipIf(PLAIN, "plain moto never evaluates an alarm")
    def test_an_alarm_starts_without_data_and_follows_its_metric(self):
        self.alarm()
        self.assertEqual(self.state()[0], "INSUFFICIENT_DATA")
        # Another proxy's figures do not count.
        self.publish(3, proxy="other")
        self.assertEqual(self.state()[0], "INSUFFICIENT_DATA")
        self.publish(0)
        state, reason = self.state()
        self.assertEqual(state, "OK")
        self.assertIn("Threshold Not Crossed", reason)
        self.publish(2)
        state, reason = self.state()
        self.assertEqual(state, "ALARM")
        self.assertIn("Threshold Crossed: 1 out of the last 1 datapoints [2.0", reason)
        self.assertIn("greater than the threshold (0.0)", reason)
        self.assertEqual(
            [a["AlarmName"] for a in
             self.cw.describe_alarms(StateValue="ALARM")["MetricAlarms"]], ["pinned"])

    @unittest.skipIf(PLAIN, "plain moto never evaluates an alarm")
    def test_datapoints_to_alarm_over_several_periods_and_missing_data(self):
        self.alarm(EvaluationPeriods=3, DatapointsToAlarm=2, Period=10)
        self.publish(1, ago=25)
        self.assertEqual(self.state()[0], "OK")  # one breaching period of the two needed
        self.publish(1, ago=5)
        self.assertEqual(self.state()[0], "ALARM")
        self.alarm(name="quiet", TreatMissingData="notBreaching", MetricName="QueryRequests")
        self.assertEqual(self.state("quiet")[0], "OK")
        self.alarm(name="loud", TreatMissingData="breaching", MetricName="QueryRequests")
        self.assertEqual(self.state("loud")[0], "ALARM")

    def tags(self, name="pinned"):
        arn = self.cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"]
        return {t["Key"]: t["Value"] for t in
                self.cw.list_tags_for_resource(ResourceARN=arn)["Tags"]}

    @unittest.skipIf(PLAIN, "plain moto keeps a deleted alarm's tags")
    def test_tags_come_on_creation_only_and_go_with_the_alarm(self):
        self.alarm(Tags=[{"Key": "owner", "Value": "tool"}])
        # An update's tags are ignored, as AWS does.
        self.alarm(Threshold=1.0, Tags=[{"Key": "other", "Value": "x"}])
        self.assertEqual(self.tags(), {"owner": "tool"})
        # Deleted and made again by hand without tags: it carries none.
        self.cw.delete_alarms(AlarmNames=["pinned"])
        self.alarm()
        self.assertEqual(self.tags(), {})

    @unittest.skipIf(PLAIN, "plain moto never evaluates an alarm")
    def test_a_period_lasts_as_long_as_the_alarm_minute_says(self):
        # "Pinned in 3 periods of 5 minutes": at 60 s a minute (AWS's pace),
        # three datapoints seconds apart fall in one period: one breach of
        # three.
        self.alarm(Period=300, EvaluationPeriods=3, DatapointsToAlarm=3)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cw.put_metric_data(Namespace=NAMESPACE, MetricData=[{
            "MetricName": METRIC, "Value": 1,
            "Dimensions": [{"Name": "ProxyName", "Value": self.proxy}],
            "Timestamp": now - datetime.timedelta(seconds=ago),
        } for ago in (15, 45, 75)])
        state, reason = self.state()
        self.assertEqual(state, "OK", reason)
        self.assertIn("1 out of the last 3 datapoints", reason)
        # At 6 s a minute a period lasts 30 s: each falls in the middle of
        # its own (15 s of slack for a slow machine).
        settings.update({"alarm_minute": 6})
        self.addCleanup(settings.reset)
        state, reason = self.state()
        self.assertEqual(state, "ALARM", reason)
        self.assertIn("3 out of the last 3 datapoints", reason)
        with self.assertRaises(ValueError):
            settings.update({"alarm_minute": 0})


class AnomalyDetectors(AwsTest):
    def setUp(self):
        super().setUp()
        self.cw = boto3.client("cloudwatch", region_name=REGION, endpoint_url=self.url)

    def single(self, metric="ClientConnections", proxy="p1", stat="Maximum"):
        return {"Namespace": NAMESPACE, "MetricName": metric, "Stat": stat,
                "Dimensions": [{"Name": "ProxyName", "Value": proxy}]}

    def models(self, **filters):
        return [(d["SingleMetricAnomalyDetector"]["MetricName"],
                 d["SingleMetricAnomalyDetector"]["Dimensions"][0]["Value"],
                 d["SingleMetricAnomalyDetector"]["Stat"])
                for d in self.cw.describe_anomaly_detectors(**filters)["AnomalyDetectors"]]

    def tearDown(self):
        for d in self.cw.describe_anomaly_detectors()["AnomalyDetectors"]:
            self.cw.delete_anomaly_detector(
                SingleMetricAnomalyDetector=d["SingleMetricAnomalyDetector"])
        for a in self.cw.describe_alarms()["MetricAlarms"]:
            self.cw.delete_alarms(AlarmNames=[a["AlarmName"]])

    @unittest.skipIf(PLAIN, "plain moto has no anomaly detection (HTTP 500)")
    def test_models_are_put_described_by_filter_and_deleted(self):
        self.assertEqual(self.models(), [])
        self.cw.put_anomaly_detector(SingleMetricAnomalyDetector=self.single())
        self.cw.put_anomaly_detector(SingleMetricAnomalyDetector=self.single())  # idempotent
        self.cw.put_anomaly_detector(SingleMetricAnomalyDetector=self.single(proxy="p2"))
        self.cw.put_anomaly_detector(
            SingleMetricAnomalyDetector=self.single("QueryRequests", stat="Sum"))
        self.assertEqual(len(self.models()), 3)
        self.assertEqual(
            self.models(Namespace=NAMESPACE, MetricName="ClientConnections",
                        Dimensions=[{"Name": "ProxyName", "Value": "p1"}]),
            [("ClientConnections", "p1", "Maximum")])
        self.assertEqual(
            sorted(self.models(Dimensions=[{"Name": "ProxyName", "Value": "p1"}])),
            [("ClientConnections", "p1", "Maximum"), ("QueryRequests", "p1", "Sum")])
        state = self.cw.describe_anomaly_detectors(MaxResults=1)
        self.assertEqual(len(state["AnomalyDetectors"]), 1)
        self.assertIn("NextToken", state)
        self.assertEqual(state["AnomalyDetectors"][0]["StateValue"], "PENDING_TRAINING")
        self.cw.delete_anomaly_detector(SingleMetricAnomalyDetector=self.single(proxy="p2"))
        self.assertNotIn(("ClientConnections", "p2", "Maximum"), self.models())
        with self.assertRaises(self.cw.exceptions.ResourceNotFoundException):
            self.cw.delete_anomaly_detector(SingleMetricAnomalyDetector=self.single(proxy="p2"))

    @unittest.skipIf(PLAIN, "plain moto has no anomaly detection (HTTP 500)")
    def test_an_alarm_on_a_band_makes_its_model_as_cloudwatch_does(self):
        self.cw.put_metric_alarm(
            AlarmName="surge", EvaluationPeriods=5, DatapointsToAlarm=3,
            ComparisonOperator="GreaterThanUpperThreshold", ThresholdMetricId="band",
            Metrics=[
                {"Id": "m1", "ReturnData": True, "MetricStat": {
                    "Metric": {k: v for k, v in self.single("QueryRequests", "p3").items()
                               if k != "Stat"},
                    "Period": 60, "Stat": "Sum"}},
                {"Id": "band", "ReturnData": True, "Expression": "ANOMALY_DETECTION_BAND(m1, 2)"},
            ])
        self.assertEqual(self.models(), [("QueryRequests", "p3", "Sum")])

    @unittest.skipIf(PLAIN, "plain moto has no anomaly detection")
    def test_a_region_without_anomaly_detection_says_so(self):
        settings.update({"anomaly_detection": False})
        try:
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                self.cw.describe_anomaly_detectors(MaxResults=1)
        finally:
            settings.reset()
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidAction")
