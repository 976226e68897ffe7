"""CloudWatch alarms evaluated from the metrics the account holds."""

import datetime
import unittest

import boto3

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
