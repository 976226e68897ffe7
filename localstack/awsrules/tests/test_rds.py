"""RDS Proxy rules (rds.py), each against boto3."""

import json
import time

from .base import PLAIN, AwsTest, trust, wait_until


class Lifecycle(AwsTest):
    PACE = {"proxy_creating": 0.4, "proxy_modifying": 0.4, "proxy_deleting": 0.4}

    def test_a_proxy_is_creating_then_available(self):
        r = self.recipe()
        self.assertEqual(self.create_proxy(r)["Status"], "creating")
        self.assertEqual(self.proxy_status(), "creating")
        self.wait_available()

    def test_acting_on_a_proxy_that_is_not_available_is_refused(self):
        r = self.recipe()
        self.create_proxy(r)
        rds = self.c["rds"]
        self.assertError(
            "InvalidDBProxyStateFault",
            rds.register_db_proxy_targets,
            DBProxyName="p1",
            DBInstanceIdentifiers=["db"],
            status=400,
        )
        self.assertError(
            "InvalidDBProxyStateFault", rds.modify_db_proxy, DBProxyName="p1", DebugLogging=True
        )
        self.assertError(
            "InvalidDBProxyStateFault",
            rds.modify_db_proxy_target_group,
            DBProxyName="p1",
            TargetGroupName="default",
            ConnectionPoolConfig={"MaxConnectionsPercent": 50},
        )

    def test_modify_makes_it_modifying_and_keeps_every_field(self):
        r = self.recipe()
        self.create_proxy(r)
        self.wait_available()
        other_sg = self.group(r["vpc"], "other")
        p = self.c["rds"].modify_db_proxy(
            DBProxyName="p1",
            IdleClientTimeout=300,
            RequireTLS=True,
            DebugLogging=True,
            SecurityGroups=[other_sg],
        )["DBProxy"]
        self.assertEqual(p["Status"], "modifying")
        self.wait_available()
        p = self.c["rds"].describe_db_proxies(DBProxyName="p1")["DBProxies"][0]
        self.assertEqual(
            (p["IdleClientTimeout"], p["RequireTLS"], p["DebugLogging"]), (300, True, True)
        )
        self.assertEqual(p["VpcSecurityGroupIds"], [other_sg])

    def test_modify_renames_and_changes_the_default_auth_scheme(self):
        r = self.recipe()
        self.create_proxy(r)
        self.wait_available()
        self.c["rds"].modify_db_proxy(
            DBProxyName="p1", NewDBProxyName="p2", DefaultAuthScheme="IAM_AUTH", Auth=[]
        )
        self.assertError(
            "DBProxyNotFoundFault", self.c["rds"].describe_db_proxies, DBProxyName="p1"
        )
        p = self.c["rds"].describe_db_proxies(DBProxyName="p2")["DBProxies"][0]
        self.assertEqual(p["DefaultAuthScheme"], "IAM_AUTH")

    def test_delete_makes_it_deleting_then_gone(self):
        r = self.recipe()
        self.create_proxy(r)
        self.wait_available()
        self.assertEqual(
            self.c["rds"].delete_db_proxy(DBProxyName="p1")["DBProxy"]["Status"], "deleting"
        )
        self.assertEqual(self.proxy_status(), "deleting")
        self.assertError(
            "InvalidDBProxyStateFault", self.c["rds"].delete_db_proxy, DBProxyName="p1"
        )
        wait_until(lambda: not self.c["rds"].describe_db_proxies()["DBProxies"])


class Errors(AwsTest):
    def test_an_unknown_proxy_is_a_404_not_found_on_every_call(self):
        rds = self.c["rds"]
        for call, kwargs in [
            (rds.describe_db_proxies, {}),
            (rds.describe_db_proxy_targets, {}),
            (rds.describe_db_proxy_target_groups, {}),
            (rds.register_db_proxy_targets, {"DBInstanceIdentifiers": ["db"]}),
            (rds.deregister_db_proxy_targets, {"DBInstanceIdentifiers": ["db"]}),
            (
                rds.modify_db_proxy_target_group,
                {"TargetGroupName": "default", "ConnectionPoolConfig": {}},
            ),
            (rds.delete_db_proxy, {}),
        ]:
            with self.subTest(call.__name__):
                self.assertError(
                    "DBProxyNotFoundFault", call, DBProxyName="nope", status=404, **kwargs
                )

    def test_registering_a_missing_db_or_twice_is_refused(self):
        r = self.recipe()
        self.create_proxy(r)
        rds = self.c["rds"]
        self.assertError(
            "DBInstanceNotFound",
            rds.register_db_proxy_targets,
            DBProxyName="p1",
            DBInstanceIdentifiers=["missing"],
            status=404,
        )
        rds.register_db_proxy_targets(DBProxyName="p1", DBInstanceIdentifiers=["db"])
        self.assertError(
            "DBProxyTargetAlreadyRegisteredFault",
            rds.register_db_proxy_targets,
            DBProxyName="p1",
            DBInstanceIdentifiers=["db"],
        )

    def test_deregistering_what_is_not_registered_is_not_found(self):
        r = self.recipe()
        self.create_proxy(r)
        self.assertError(
            "DBProxyTargetNotFoundFault",
            self.c["rds"].deregister_db_proxy_targets,
            DBProxyName="p1",
            DBInstanceIdentifiers=["db"],
            status=404,
        )

    def test_an_unknown_target_group_is_not_found(self):
        r = self.recipe()
        self.create_proxy(r)
        self.assertError(
            "DBProxyTargetGroupNotFoundFault",
            self.c["rds"].describe_db_proxy_targets,
            DBProxyName="p1",
            TargetGroupName="other",
        )


class Health(AwsTest):
    PACE = {"target_registering": 0.3}

    def register(self, r, **kwargs):
        self.create_proxy(r, **kwargs)
        self.c["rds"].register_db_proxy_targets(DBProxyName="p1", DBInstanceIdentifiers=["db"])

    def settled(self):
        wait_until(lambda: self.targets()[0]["TargetHealth"]["State"] != "REGISTERING")
        return self.targets()[0]

    def test_registering_first_then_connection_failed_without_db_ingress(self):
        r = self.recipe()
        self.allow_secret(r)
        self.register(r)
        self.assertEqual(self.targets()[0]["TargetHealth"]["State"], "REGISTERING")
        t = self.settled()
        self.assertEqual(
            (t["TargetHealth"]["State"], t["TargetHealth"]["Reason"]),
            ("UNAVAILABLE", "CONNECTION_FAILED"),
        )

    def test_auth_failure_when_the_role_cannot_read_the_secret(self):
        r = self.recipe()
        self.admit_proxy(r)
        self.register(r)
        h = self.settled()["TargetHealth"]
        self.assertEqual((h["State"], h["Reason"]), ("UNAVAILABLE", "AUTH_FAILURE"))
        self.assertIn(r["secret"], h["Description"])

    def test_a_customer_managed_key_needs_kms_decrypt_through_secrets_manager(self):
        r = self.recipe()
        self.admit_proxy(r)
        self.allow_secret(r)
        if PLAIN:
            self.skipTest("plain moto computes no health from the wiring")
        key = self.c["kms"].create_key(Description="the secret's key")["KeyMetadata"]["Arn"]
        self.c["secretsmanager"].update_secret(SecretId=r["secret"], KmsKeyId=key)
        self.register(r)
        h = self.settled()["TargetHealth"]
        self.assertEqual((h["State"], h["Reason"]), ("UNAVAILABLE", "AUTH_FAILURE"))
        self.assertIn("kms:Decrypt", h["Description"])
        # Decrypt only through Secrets Manager, as the tool grants it.
        decrypt = {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key,
            "Condition": {
                "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
            },
        }
        self.c["iam"].put_role_policy(
            RoleName="proxy-role",
            PolicyName="decrypt",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [decrypt]}),
        )
        wait_until(lambda: self.targets()[0]["TargetHealth"]["State"] == "AVAILABLE")
        # Through another service, the grant does not count.
        decrypt["Condition"]["StringEquals"]["kms:ViaService"] = "s3.us-east-1.amazonaws.com"
        self.c["iam"].put_role_policy(
            RoleName="proxy-role",
            PolicyName="decrypt",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [decrypt]}),
        )
        wait_until(lambda: self.targets()[0]["TargetHealth"]["State"] == "UNAVAILABLE")

    def test_available_when_wired_and_the_port_is_the_dbs(self):
        r = self.recipe()
        self.admit_proxy(r)
        self.allow_secret(r)
        self.register(r)
        t = self.settled()
        self.assertEqual(t["TargetHealth"], {"State": "AVAILABLE"})
        self.assertEqual((t["Port"], t["Type"], t["RdsResourceId"]), (3306, "RDS_INSTANCE", "db"))

    def test_health_follows_the_wiring_when_it_changes(self):
        r = self.recipe()
        self.admit_proxy(r)
        self.allow_secret(r)
        self.register(r)
        self.assertEqual(self.settled()["TargetHealth"]["State"], "AVAILABLE")
        self.c["iam"].delete_role_policy(RoleName="proxy-role", PolicyName="secret")
        self.assertEqual(self.targets()[0]["TargetHealth"]["Reason"], "AUTH_FAILURE")

    def test_a_managed_policy_with_a_wildcard_counts(self):
        r = self.recipe()
        self.admit_proxy(r)
        self.c["iam"].attach_role_policy(
            RoleName="proxy-role", PolicyArn="arn:aws:iam::aws:policy/SecretsManagerReadWrite"
        )
        self.register(r)
        self.assertEqual(self.settled()["TargetHealth"]["State"], "AVAILABLE")

    def test_ingress_on_another_port_does_not_count(self):
        r = self.recipe()
        self.allow_secret(r)
        self.admit_proxy(dict(r, port=5432))
        self.register(r)
        self.assertEqual(self.settled()["TargetHealth"]["Reason"], "CONNECTION_FAILED")

    def test_a_role_rds_cannot_assume_is_an_auth_failure(self):
        r = self.recipe()
        self.admit_proxy(r)
        self.allow_secret(r)
        self.c["iam"].update_assume_role_policy(
            RoleName="proxy-role",
            PolicyDocument=json.dumps(trust("ec2.amazonaws.com")),
        )
        self.register(r)
        self.assertIn("rds.amazonaws.com", self.settled()["TargetHealth"]["Description"])

    def iam_proxy(self, r):
        self.admit_proxy(r)
        self.register(r, DefaultAuthScheme="IAM_AUTH", Auth=[])

    def test_ipv6_targets_need_a_dual_stack_db(self):
        for dual_stack, want in ((False, "UNAVAILABLE"), (True, "AVAILABLE")):
            self.setUp()
            r = self.recipe(dual_stack=dual_stack)
            self.admit_proxy(r)
            self.allow_secret(r)
            self.register(r, TargetConnectionNetworkType="IPV6")
            h = self.settled()["TargetHealth"]
            self.assertEqual(h["State"], want, h)
            if not dual_stack:
                self.assertIn("dual-stack DB", h["Description"])

    def test_end_to_end_iam_needs_iam_auth_on_the_db(self):
        r = self.recipe(iam_db_auth=False)
        self.iam_proxy(r)
        h = self.settled()["TargetHealth"]
        self.assertEqual(h["Reason"], "AUTH_FAILURE")
        self.assertIn("IAM database authentication is off", h["Description"])

    def test_end_to_end_iam_needs_rds_db_connect_on_the_dbs_resource_id(self):
        r = self.recipe(iam_db_auth=True)
        self.iam_proxy(r)
        self.assertIn("rds-db:connect", self.settled()["TargetHealth"]["Description"])
        rid = self.c["rds"].describe_db_instances(DBInstanceIdentifier="db")["DBInstances"][0][
            "DbiResourceId"
        ]
        doc = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "rds-db:connect",
                    "Resource": f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{rid}/*",
                }
            ],
        }
        self.c["iam"].put_role_policy(
            RoleName="proxy-role", PolicyName="connect", PolicyDocument=json.dumps(doc)
        )
        self.assertEqual(self.targets()[0]["TargetHealth"], {"State": "AVAILABLE"})
        # One user named: enough, as no Auth entry names the users.
        doc["Statement"][0]["Resource"] = doc["Statement"][0]["Resource"][:-1] + "app_user"
        self.c["iam"].put_role_policy(
            RoleName="proxy-role", PolicyName="connect", PolicyDocument=json.dumps(doc)
        )
        self.assertEqual(self.targets()[0]["TargetHealth"], {"State": "AVAILABLE"})
        # The proxy's own prx- id (what the functions' policy names) is not
        # the DB's: the common mistake.
        doc["Statement"][0]["Resource"] = (
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0123456789abcdef/app_user"
        )
        self.c["iam"].put_role_policy(
            RoleName="proxy-role", PolicyName="connect", PolicyDocument=json.dumps(doc)
        )
        h = self.targets()[0]["TargetHealth"]
        self.assertEqual(h["Reason"], "AUTH_FAILURE")
        self.assertIn(f"dbuser:{rid}/USER", h["Description"])

    def test_an_aurora_cluster_is_listed_as_aws_lists_it(self):
        r = self.recipe(engine="aurora-postgresql", port=5432, cluster=True)
        self.admit_proxy(r)
        self.allow_secret(r)
        self.create_proxy(r, family="POSTGRESQL")
        self.c["rds"].register_db_proxy_targets(DBProxyName="p1", DBClusterIdentifiers=["db"])
        wait_until(
            lambda: all(
                t.get("TargetHealth", {}).get("State") == "AVAILABLE" for t in self.targets()[1:]
            )
        )
        cluster, *instances = self.targets()
        self.assertEqual(cluster["Type"], "TRACKED_CLUSTER")
        self.assertNotIn("TargetHealth", cluster)
        self.assertEqual(sorted(t["Role"] for t in instances), ["READ_ONLY", "READ_WRITE"])
        self.assertTrue(all(t["TrackedClusterId"] == "db" and t["Port"] == 5432 for t in instances))


class NewApis(AwsTest):
    PACE = {"endpoint_creating": 0.3, "endpoint_deleting": 0.3, "proxy_eni_linger": 0.3}

    def test_auth_entries_get_aws_defaults_and_are_checked_against_the_family(self):
        r = self.recipe()
        p = self.create_proxy(
            r,
            Auth=[
                {"SecretArn": r["secret"]},
                {"SecretArn": r["secret"], "ClientPasswordAuthType": "MYSQL_CACHING_SHA2_PASSWORD"},
            ],
        )
        self.assertEqual(
            [a["ClientPasswordAuthType"] for a in p["Auth"]],
            ["MYSQL_NATIVE_PASSWORD", "MYSQL_CACHING_SHA2_PASSWORD"],
        )
        self.assertEqual(p["Auth"][0]["AuthScheme"], "SECRETS")
        self.assertError(
            "InvalidParameterValue",
            self.create_proxy,
            r,
            name="p2",
            Auth=[{"SecretArn": r["secret"], "ClientPasswordAuthType": "POSTGRES_MD5"}],
        )
        self.assertError(
            "InvalidParameterValue",
            self.create_proxy,
            r,
            name="p3",
            Auth=[{"SecretArn": r["secret"], "IAMAuth": "ENABLED"}],
        )

    def test_default_auth_scheme_and_network_types_are_kept(self):
        r = self.recipe(dual_stack=True)
        p = self.create_proxy(
            r,
            DefaultAuthScheme="IAM_AUTH",
            Auth=[],
            EndpointNetworkType="DUAL",
            TargetConnectionNetworkType="IPV6",
        )
        self.assertEqual(
            (p["DefaultAuthScheme"], p["EndpointNetworkType"], p["TargetConnectionNetworkType"]),
            ("IAM_AUTH", "DUAL", "IPV6"),
        )
        p = self.create_proxy(r, name="p2")
        self.assertEqual((p.get("DefaultAuthScheme"), p["EndpointNetworkType"]), ("NONE", "IPV4"))

    def test_ipv6_endpoints_need_dual_stack_subnets(self):
        r = self.recipe()
        for network in ("IPV6", "DUAL"):
            self.assertError(
                "InvalidSubnet", self.create_proxy, r, EndpointNetworkType=network
            )
        self.assertEqual(self.c["rds"].describe_db_proxies()["DBProxies"], [])

    def test_a_db_keeps_its_network_type(self):
        r = self.recipe(dual_stack=True)
        db = self.c["rds"].describe_db_instances(DBInstanceIdentifier="db")["DBInstances"][0]
        self.assertEqual(db["NetworkType"], "DUAL")

    def test_subnets_in_an_unsupported_zone_are_dropped(self):
        r = self.recipe()
        self.pace(unsupported_azs=["us-east-1c"])
        p = self.create_proxy(r)
        self.assertEqual(p["VpcSubnetIds"], r["subnets"][:2])

    def test_an_endpoints_tags_are_listed_and_changed_by_its_arn(self):
        r = self.recipe(engine="aurora-postgresql", port=5432, cluster=True)
        self.create_proxy(r, family="POSTGRESQL")
        self.wait_available()
        rds = self.c["rds"]
        ep = rds.create_db_proxy_endpoint(
            DBProxyName="p1",
            DBProxyEndpointName="p1-rw",
            VpcSubnetIds=r["subnets"],
            Tags=[{"Key": "owner", "Value": "me"}],
        )["DBProxyEndpoint"]
        arn = ep["DBProxyEndpointArn"]
        self.assertEqual(rds.list_tags_for_resource(ResourceName=arn)["TagList"], [{"Key": "owner", "Value": "me"}])
        rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "team", "Value": "a"}])
        rds.remove_tags_from_resource(ResourceName=arn, TagKeys=["owner"])
        self.assertEqual(rds.list_tags_for_resource(ResourceName=arn)["TagList"], [{"Key": "team", "Value": "a"}])

    def test_endpoints_have_a_lifecycle_their_own_groups_and_the_default_is_listed(self):
        r = self.recipe(engine="aurora-mysql", cluster=True)
        self.create_proxy(r)
        rds = self.c["rds"]
        rds.register_db_proxy_targets(DBProxyName="p1", DBClusterIdentifiers=["db"])
        reader_sg = self.group(r["vpc"], "reader")
        ep = rds.create_db_proxy_endpoint(
            DBProxyName="p1",
            DBProxyEndpointName="reader",
            VpcSubnetIds=r["subnets"][:2],
            VpcSecurityGroupIds=[reader_sg],
            TargetRole="READ_ONLY",
        )["DBProxyEndpoint"]
        self.assertEqual(
            (ep["Status"], ep["TargetRole"], ep["VpcSecurityGroupIds"]),
            ("creating", "READ_ONLY", [reader_sg]),
        )
        self.assertError(
            "InvalidDBProxyEndpointStateFault",
            rds.modify_db_proxy_endpoint,
            DBProxyEndpointName="reader",
            VpcSecurityGroupIds=[],
        )
        wait_until(
            lambda: rds.describe_db_proxy_endpoints(DBProxyEndpointName="reader")[
                "DBProxyEndpoints"
            ][0]["Status"]
            == "available"
        )
        listed = rds.describe_db_proxy_endpoints(DBProxyName="p1")["DBProxyEndpoints"]
        self.assertEqual(
            [(e["DBProxyEndpointName"], e["IsDefault"]) for e in listed],
            [("default", True), ("reader", False)],
        )
        self.assertError(
            "DBProxyEndpointAlreadyExistsFault",
            rds.create_db_proxy_endpoint,
            DBProxyName="p1",
            DBProxyEndpointName="reader",
            VpcSubnetIds=r["subnets"],
        )
        rds.modify_db_proxy_endpoint(DBProxyEndpointName="reader", NewDBProxyEndpointName="reader2")
        wait_until(
            lambda: rds.describe_db_proxy_endpoints(DBProxyEndpointName="reader2")[
                "DBProxyEndpoints"
            ][0]["Status"]
            == "available"
        )
        self.assertEqual(
            rds.delete_db_proxy_endpoint(DBProxyEndpointName="reader2")["DBProxyEndpoint"][
                "Status"
            ],
            "deleting",
        )
        self.assertError(
            "InvalidDBProxyEndpointStateFault",
            rds.delete_db_proxy_endpoint,
            DBProxyEndpointName="default",
        )
        wait_until(
            lambda: len(rds.describe_db_proxy_endpoints(DBProxyName="p1")["DBProxyEndpoints"]) == 1
        )
        self.assertError(
            "DBProxyEndpointNotFoundFault",
            rds.describe_db_proxy_endpoints,
            DBProxyEndpointName="reader2",
            status=404,
        )

    def test_a_read_only_endpoint_needs_a_cluster_target(self):
        r = self.recipe()
        self.create_proxy(r)
        self.c["rds"].register_db_proxy_targets(DBProxyName="p1", DBInstanceIdentifiers=["db"])
        self.assertError(
            "InvalidParameterCombination",
            self.c["rds"].create_db_proxy_endpoint,
            DBProxyName="p1",
            DBProxyEndpointName="ro",
            VpcSubnetIds=r["subnets"],
            TargetRole="READ_ONLY",
        )

    def test_the_pool_keeps_its_init_query(self):
        r = self.recipe()
        self.create_proxy(r)
        self.c["rds"].modify_db_proxy_target_group(
            DBProxyName="p1",
            TargetGroupName="default",
            ConnectionPoolConfig={"InitQuery": "SET x=1"},
        )
        tg = self.c["rds"].describe_db_proxy_target_groups(DBProxyName="p1")["TargetGroups"][0]
        self.assertEqual(tg["ConnectionPoolConfig"]["InitQuery"], "SET x=1")


del time
