"""A server for each test class (moto's, with or without the extension, in
a thread of this process) and the recipe's preconditions in it.

With AWSRULES_TEST_PLAIN=1 the same tests run against plain moto: that is
how the table in localstack/README.md says which rules plain moto has."""

import json
import logging
import os
import socket
import threading
import time
import unittest
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")

from moto.backends import get_backend  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

import awsrules  # noqa: E402
from awsrules import settings  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.ERROR)
PLAIN = os.environ.get("AWSRULES_TEST_PLAIN") == "1"
REGION = "us-east-1"


def trust(service: str) -> dict:
    """A trust policy that lets `service` assume the role."""
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return {"Version": "2012-10-17", "Statement": [statement]}


TRUST = trust("rds.amazonaws.com")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_server = None


def server_url() -> str:
    """One server per test process."""
    global _server
    if _server is None:
        if PLAIN:
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                create_backend_app,
            )

            app = DomainDispatcherApplication(create_backend_app)
        else:
            app = awsrules.app()
        port = _free_port()
        srv = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        _server = f"http://127.0.0.1:{port}"
        post(f"{_server}/moto-api/config", {"lambda": {"use_docker": False}})
    return _server


_clients: dict = {}


def clients(url: str) -> dict:
    """boto3 clients, made once (making one takes a while)."""
    if not _clients:
        cfg = Config(retries={"max_attempts": 1})
        for name in ("rds", "ec2", "iam", "secretsmanager", "lambda", "kms"):
            _clients[name] = boto3.client(name, region_name=REGION, endpoint_url=url, config=cfg)
    return _clients


def post(url: str, body) -> dict:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
        return json.loads(text) if text.startswith(b"{") else {}


def wait_until(check, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")


class AwsTest(unittest.TestCase):
    """Fresh state for each test; clients; the recipe's preconditions on
    request (`self.recipe()`)."""

    PACE: dict = {}

    def setUp(self):
        self.url = server_url()
        # Every backend but EC2's, whose fresh start (default VPCs) takes a
        # second: each test makes its own VPC instead.
        # (BackendDict.reset is a classmethod that resets them all.)
        # IAM's fresh start loads AWS's managed policies (a second): only
        # what tests made is removed.
        for iam in get_backend("iam").values():
            for backend in iam.values():
                backend.roles.clear()
                for arn in [
                    a for a in backend.managed_policies if not a.startswith("arn:aws:iam::aws:")
                ]:
                    del backend.managed_policies[arn]
                for policy in backend.managed_policies.values():
                    policy.attachment_count = 0
        for service in ("rds", "lambda", "secretsmanager"):
            backends = get_backend(service)
            for account in backends.values():
                account.reset()
            backends.clear()
        settings.reset()
        settings.update(self.PACE)
        self.c = clients(self.url)

    def pace(self, **values):
        settings.update(values)

    def assertError(self, code: str, call, *args, status=None, **kwargs):
        with self.assertRaises(ClientError) as caught:
            call(*args, **kwargs)
        err = caught.exception.response
        self.assertEqual(err["Error"]["Code"], code, err)
        if status is not None:
            self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], status, err)
        return err

    # --- preconditions -------------------------------------------------

    def network(self, dual_stack=False):
        """A VPC and three subnets in three AZs; with `dual_stack`, each
        with an IPv6 /64 of the VPC's Amazon-provided /56."""
        ec2 = self.c["ec2"]
        vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16", AmazonProvidedIpv6CidrBlock=dual_stack)[
            "Vpc"
        ]
        ipv6 = {}
        if dual_stack:
            block = vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
            base = block.split("::")[0][:-2]
            ipv6 = {i: f"{base}0{i}::/64" for i in range(3)}
        subnets = [
            ec2.create_subnet(
                VpcId=vpc["VpcId"],
                CidrBlock=f"10.10.{i}.0/24",
                AvailabilityZone=f"{REGION}{az}",
                **({"Ipv6CidrBlock": ipv6[i]} if dual_stack else {}),
            )["Subnet"]["SubnetId"]
            for i, az in enumerate("abc")
        ]
        return vpc["VpcId"], subnets

    def group(self, vpc, name):
        return self.c["ec2"].create_security_group(GroupName=name, Description=name, VpcId=vpc)[
            "GroupId"
        ]

    def recipe(
        self, engine="mysql", port=3306, iam_db_auth=False, cluster=False, dual_stack=False
    ):
        """A VPC, the DB (an instance, or an Aurora cluster with a writer and
        a reader) with its group and secret, the proxy's role (trusted by
        RDS, no permissions yet) and group; `dual_stack`: IPv6 subnets and a
        DB of NetworkType DUAL."""
        vpc, subnets = self.network(dual_stack)
        db_sg = self.group(vpc, "db")
        proxy_sg = self.group(vpc, "proxy")
        rds = self.c["rds"]
        rds.create_db_subnet_group(
            DBSubnetGroupName="dbs", DBSubnetGroupDescription="d", SubnetIds=subnets
        )
        common = dict(
            VpcSecurityGroupIds=[db_sg],
            DBSubnetGroupName="dbs",
            EnableIAMDatabaseAuthentication=iam_db_auth,
            NetworkType="DUAL" if dual_stack else "IPV4",
        )
        if cluster:
            rds.create_db_cluster(
                DBClusterIdentifier="db",
                Engine=engine,
                MasterUsername="admin",
                MasterUserPassword="secret123!",
                Port=port,
                **common,
            )
            for name in ("db-1", "db-2"):
                rds.create_db_instance(
                    DBInstanceIdentifier=name,
                    DBClusterIdentifier="db",
                    Engine=engine,
                    DBInstanceClass="db.r5.large",
                )
        else:
            rds.create_db_instance(
                DBInstanceIdentifier="db",
                Engine=engine,
                DBInstanceClass="db.t3.micro",
                MasterUsername="admin",
                MasterUserPassword="secret123!",
                AllocatedStorage=20,
                Port=port,
                **common,
            )
        secret = self.c["secretsmanager"].create_secret(
            Name="db-secret",
            SecretString=json.dumps({"username": "admin", "password": "secret123!"}),
        )["ARN"]
        role = self.c["iam"].create_role(
            RoleName="proxy-role", AssumeRolePolicyDocument=json.dumps(TRUST)
        )["Role"]["Arn"]
        return dict(
            vpc=vpc,
            subnets=subnets,
            db_sg=db_sg,
            proxy_sg=proxy_sg,
            secret=secret,
            role=role,
            port=port,
        )

    def create_proxy(self, r, name="p1", family="MYSQL", **extra):
        auth = extra.pop(
            "Auth", [{"AuthScheme": "SECRETS", "SecretArn": r["secret"], "IAMAuth": "DISABLED"}]
        )
        return self.c["rds"].create_db_proxy(
            DBProxyName=name,
            EngineFamily=family,
            Auth=auth,
            RoleArn=r["role"],
            VpcSubnetIds=r["subnets"],
            VpcSecurityGroupIds=[r["proxy_sg"]],
            **extra,
        )["DBProxy"]

    def proxy_status(self, name="p1"):
        return self.c["rds"].describe_db_proxies(DBProxyName=name)["DBProxies"][0]["Status"]

    def wait_available(self, name="p1"):
        wait_until(lambda: self.proxy_status(name) == "available")

    def allow_secret(self, r):
        doc = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": r["secret"],
                }
            ],
        }
        self.c["iam"].put_role_policy(
            RoleName="proxy-role", PolicyName="secret", PolicyDocument=json.dumps(doc)
        )

    def admit_proxy(self, r):
        self.c["ec2"].authorize_security_group_ingress(
            GroupId=r["db_sg"],
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": r["port"],
                    "ToPort": r["port"],
                    "UserIdGroupPairs": [{"GroupId": r["proxy_sg"]}],
                }
            ],
        )

    def targets(self, name="p1"):
        return self.c["rds"].describe_db_proxy_targets(DBProxyName=name)["Targets"]
