"""EC2, IAM and Lambda rules (ec2.py, iam.py, lambda_.py) and the control
API (control.py), against boto3."""

import json
import urllib.request

import boto3
from botocore.exceptions import ClientError

from .base import AwsTest, trust, post, wait_until


class SecurityGroups(AwsTest):
    PACE = {"proxy_deleting": 0.2, "proxy_eni_linger": 0.4}

    def test_a_group_a_proxy_uses_cannot_be_deleted_until_its_enis_are_gone(self):
        r = self.recipe()
        self.create_proxy(r)
        ec2 = self.c["ec2"]
        err = self.assertError(
            "DependencyViolation", ec2.delete_security_group, GroupId=r["proxy_sg"]
        )
        self.assertIn("has a dependent object", err["Error"]["Message"])
        self.c["rds"].delete_db_proxy(DBProxyName="p1")
        wait_until(lambda: not self.c["rds"].describe_db_proxies()["DBProxies"])
        # The proxy is gone; its network interfaces are not yet.
        self.assertError("DependencyViolation", ec2.delete_security_group, GroupId=r["proxy_sg"])
        wait_until(lambda: self._deleted(r["proxy_sg"]))

    def test_a_proxys_network_interfaces_show_while_it_lives_and_linger(self):
        r = self.recipe()
        self.create_proxy(r)
        ec2 = self.c["ec2"]

        def enis():
            return ec2.describe_network_interfaces(
                Filters=[{"Name": "group-id", "Values": [r["proxy_sg"]]}]
            )["NetworkInterfaces"]

        live = enis()
        subnets = self.c["rds"].describe_db_proxies(DBProxyName="p1")["DBProxies"][0][
            "VpcSubnetIds"
        ]
        self.assertEqual(sorted(e["SubnetId"] for e in live), sorted(subnets))
        for e in live:
            self.assertEqual(e["Status"], "in-use")
            self.assertTrue(e["RequesterManaged"])
            self.assertEqual(e["Description"], "RDSNetworkInterface")
        # The same interfaces each time, and not the account's to delete.
        ids = {e["NetworkInterfaceId"] for e in live}
        self.assertEqual({e["NetworkInterfaceId"] for e in enis()}, ids)
        err = self.assertError(
            "InvalidParameterValue",
            ec2.delete_network_interface,
            NetworkInterfaceId=live[0]["NetworkInterfaceId"],
        )
        self.assertIn("in use", err["Error"]["Message"])
        self.c["rds"].delete_db_proxy(DBProxyName="p1")
        wait_until(lambda: not self.c["rds"].describe_db_proxies()["DBProxies"])
        # The proxy is gone; its interfaces still show, until they go too.
        self.assertEqual(len(enis()), len(live))
        wait_until(lambda: not enis())
        self.assertTrue(self._deleted(r["proxy_sg"]))

    def test_an_interface_of_a_deleted_proxy_is_gone_once_released_without_a_listing(self):
        # The book's cleanup deletes each interface until it is not found,
        # and lists them only once, before: DeleteNetworkInterface alone
        # must see the interfaces go.
        r = self.recipe()
        self.create_proxy(r)
        ec2 = self.c["ec2"]
        eni = ec2.describe_network_interfaces(
            Filters=[{"Name": "group-id", "Values": [r["proxy_sg"]]}]
        )["NetworkInterfaces"][0]["NetworkInterfaceId"]
        self.c["rds"].delete_db_proxy(DBProxyName="p1")
        wait_until(lambda: not self.c["rds"].describe_db_proxies()["DBProxies"])

        def not_found():
            try:
                ec2.delete_network_interface(NetworkInterfaceId=eni)
            except ClientError as e:
                code = e.response["Error"]["Code"]
                if code == "InvalidParameterValue":
                    return False
                return code == "InvalidNetworkInterfaceID.NotFound"
            return True

        wait_until(not_found)

    def _deleted(self, group_id):
        try:
            self.c["ec2"].delete_security_group(GroupId=group_id)
            return True
        except Exception:
            return False

    def test_a_group_another_groups_rule_references_cannot_be_deleted(self):
        r = self.recipe()
        self.admit_proxy(r)
        self.assertError(
            "DependencyViolation", self.c["ec2"].delete_security_group, GroupId=r["proxy_sg"]
        )

    def test_a_rule_twice_is_duplicate_and_revoking_a_missing_one_not_found(self):
        r = self.recipe()
        self.admit_proxy(r)
        self.assertError("InvalidPermission.Duplicate", self.admit_proxy, r)
        perm = [
            {
                "IpProtocol": "tcp",
                "FromPort": 1,
                "ToPort": 1,
                "UserIdGroupPairs": [{"GroupId": r["proxy_sg"]}],
            }
        ]
        self.assertError(
            "InvalidPermission.NotFound",
            self.c["ec2"].revoke_security_group_ingress,
            GroupId=r["db_sg"],
            IpPermissions=perm,
        )


class Iam(AwsTest):
    DOC = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": "*"}],
        }
    )

    def test_an_attached_policy_cannot_be_deleted(self):
        self.recipe()
        iam = self.c["iam"]
        arn = iam.create_policy(PolicyName="connect", PolicyDocument=self.DOC)["Policy"]["Arn"]
        iam.attach_role_policy(RoleName="proxy-role", PolicyArn=arn)
        self.assertError("DeleteConflict", iam.delete_policy, PolicyArn=arn, status=409)
        iam.detach_role_policy(RoleName="proxy-role", PolicyArn=arn)
        iam.delete_policy(PolicyArn=arn)

    def test_a_policy_with_other_versions_cannot_be_deleted(self):
        iam = self.c["iam"]
        arn = iam.create_policy(PolicyName="connect", PolicyDocument=self.DOC)["Policy"]["Arn"]
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=self.DOC, SetAsDefault=True)
        self.assertError("DeleteConflict", iam.delete_policy, PolicyArn=arn)
        iam.delete_policy_version(PolicyArn=arn, VersionId="v1")
        iam.delete_policy(PolicyArn=arn)

    def test_a_role_with_policies_cannot_be_deleted(self):
        self.recipe()
        self.c["iam"].put_role_policy(
            RoleName="proxy-role", PolicyName="x", PolicyDocument=self.DOC
        )
        self.assertError("DeleteConflict", self.c["iam"].delete_role, RoleName="proxy-role")


class Lambda(AwsTest):
    PACE = {"lambda_updating": 0.4}

    def function(self, name="fn"):
        role = self.c["iam"].create_role(
            RoleName=f"{name}-role",
            AssumeRolePolicyDocument=json.dumps(trust("lambda.amazonaws.com")),
        )["Role"]["Arn"]
        import io
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("index.py", "def handler(e, c):\n    return 1\n")
        self.c["lambda"].create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="index.handler",
            Code={"ZipFile": buf.getvalue()},
            Environment={"Variables": {"DB_HOST": "db"}},
        )

    def test_an_update_is_in_progress_for_a_while_and_a_second_one_conflicts(self):
        self.function()
        lam = self.c["lambda"]
        out = lam.update_function_configuration(
            FunctionName="fn", Environment={"Variables": {"DB_HOST": "proxy"}}
        )
        self.assertEqual(out["LastUpdateStatus"], "InProgress")
        self.assertEqual(
            lam.get_function_configuration(FunctionName="fn")["LastUpdateStatus"], "InProgress"
        )
        self.assertError(
            "ResourceConflictException",
            lam.update_function_configuration,
            FunctionName="fn",
            Environment={"Variables": {}},
            status=409,
        )
        wait_until(
            lambda: lam.get_function_configuration(FunctionName="fn")["LastUpdateStatus"]
            == "Successful"
        )
        lam.update_function_configuration(
            FunctionName="fn", Environment={"Variables": {"DB_HOST": "db"}}
        )

    def test_a_functions_vpc_is_the_vpc_of_its_subnets(self):
        vpc, subnets = self.network()
        group = self.group(vpc, "in-vpc-sg")
        self.function("in-vpc")
        lam = self.c["lambda"]
        lam.update_function_configuration(
            FunctionName="in-vpc", VpcConfig={"SubnetIds": subnets, "SecurityGroupIds": [group]}
        )
        config = lam.get_function_configuration(FunctionName="in-vpc")["VpcConfig"]
        self.assertEqual(config["VpcId"], vpc)
        self.assertEqual(sorted(config["SubnetIds"]), sorted(subnets))

    def test_the_accounts_concurrency_and_provisioned_configs_are_answered(self):
        self.function("counted")
        lam = self.c["lambda"]
        limit = lam.get_account_settings()["AccountLimit"]
        self.assertEqual(
            (limit["ConcurrentExecutions"], limit["UnreservedConcurrentExecutions"]), (1000, 1000)
        )
        lam.put_function_concurrency(FunctionName="counted", ReservedConcurrentExecutions=150)
        limit = lam.get_account_settings()["AccountLimit"]
        self.assertEqual(limit["UnreservedConcurrentExecutions"], 850)
        configs = lam.list_provisioned_concurrency_configs(FunctionName="counted")
        self.assertEqual(configs["ProvisionedConcurrencyConfigs"], [])
        self.assertError(
            "ResourceNotFoundException",
            lam.list_provisioned_concurrency_configs,
            FunctionName="nope",
            status=404,
        )


class Buckets(AwsTest):
    def test_versioning_is_answered_as_a_versioning_configuration(self):
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=self.url)
        s3.create_bucket(Bucket="plain")
        with urllib.request.urlopen(self.url + "/plain?versioning", timeout=10) as r:
            body = r.read().decode()
        self.assertIn("<VersioningConfiguration", body)
        self.assertNotIn("<Status>", body)
        s3.put_bucket_versioning(
            Bucket="plain", VersioningConfiguration={"Status": "Enabled"}
        )
        self.assertEqual(s3.get_bucket_versioning(Bucket="plain")["Status"], "Enabled")
        # The root the Rust SDK parses, for a versioned bucket too.
        with urllib.request.urlopen(self.url + "/plain?versioning", timeout=10) as r:
            body = r.read().decode()
        self.assertIn("<VersioningConfiguration", body)
        self.assertIn("<Status>Enabled</Status>", body)
        with self.assertRaises(ClientError) as e:
            s3.get_bucket_versioning(Bucket="no-such-bucket")
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchBucket")

    def test_conditional_writes_answer_412(self):
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=self.url)
        s3.create_bucket(Bucket="cond")
        first = s3.put_object(Bucket="cond", Key="k", Body=b"1", IfNoneMatch="*")
        for kwargs in ({"IfNoneMatch": "*"}, {"IfMatch": '"not-it"'}):
            with self.assertRaises(ClientError) as e:
                s3.put_object(Bucket="cond", Key="k", Body=b"2", **kwargs)
            self.assertEqual(e.exception.response["Error"]["Code"], "PreconditionFailed")
            self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 412)
        s3.put_object(Bucket="cond", Key="k", Body=b"3", IfMatch=first["ETag"])


class Control(AwsTest):
    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def test_calls_are_counted_by_action_and_can_be_cleared(self):
        req = urllib.request.Request(self.url + "/awsrules/calls", method="DELETE")
        urllib.request.urlopen(req, timeout=10).read()
        self.c["rds"].describe_db_proxies()
        self.c["rds"].describe_db_proxies()
        self.c["lambda"].list_functions()
        calls = self.get("/awsrules/calls")
        self.assertEqual((calls["DescribeDBProxies"], calls["ListFunctions"]), (2, 1))

    def test_the_pace_is_set_over_http_and_a_bad_setting_is_named(self):
        self.assertEqual(
            post(self.url + "/awsrules/config", {"proxy_creating": 2})["proxy_creating"], 2
        )
        self.assertEqual(self.get("/awsrules/config")["proxy_creating"], 2)
        with self.assertRaises(urllib.error.HTTPError) as e:
            post(self.url + "/awsrules/config", {"proxy_creatin": 2})
        self.assertIn("proxy_creatin", e.exception.read().decode())
