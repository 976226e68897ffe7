"""What test_dataplane.py builds on: the one test function (its code), and a
world in the emulator where that function, in a VPC, reaches a DB's real
server through an RDS Proxy (`DataPathTest.world`)."""

import io
import json
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import boto3
from moto.awslambda_simple.models import lambda_simple_backends
from moto.backends import get_backend

from awsrules import policy

from .base import REGION, TRUST, AwsTest, trust, wait_until

ACCOUNT = "123456789012"
PASSWORD = "secret123!"
DATABASE = "appdb"

# One function serves every test. Its event: engine (mysql, postgres), host,
# port, user, database; tls ("verify": the runtime's CAs, which are the
# emulator's; "none"; "untrusted": the system's CAs only); password, or
# "token" for an IAM token made for token_host, token_port and token_user
# (by default what it connects to), signed token_age seconds ago, with the
# function's role (or token_key: [key id, secret]); connect_timeout;
# queries, `sleep` seconds apart; `hold`: seconds with the connection open
# before closing it. It answers what happened: the rows of each query and,
# if it failed, the error's type, code (MySQL's number, PostgreSQL's
# SQLSTATE) and message; with TLS, the certificate the server presented;
# with PostgreSQL, the authentication requests the server sent ("auth").
FUNCTION_CODE = r'''
import datetime
import json
import os
import ssl
import time


def _token(host, port, user, age, key):
    import boto3
    import botocore.auth

    if age:
        now = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda *a, **k: now(*a, **k) - datetime.timedelta(
            seconds=age)
    keys = {"aws_access_key_id": key[0], "aws_secret_access_key": key[1],
            "aws_session_token": None} if key else {}
    return boto3.client("rds", **keys).generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername=user, Region=os.environ["AWS_REGION"])


def _context(kind):
    if kind == "none":
        return None
    if kind == "untrusted":  # the system's CAs, not the emulator's
        return ssl.create_default_context(cafile="/etc/ssl/certs/ca-certificates.crt")
    return ssl.create_default_context()  # SSL_CERT_FILE: the emulator's CA


def _error(e):
    first = e.args[0] if e.args else None
    if isinstance(first, dict):  # pg8000: the server's fields
        return {"error": type(e).__name__, "code": first.get("C"), "message": first.get("M")}
    code = first if isinstance(first, int) else None
    message = e.args[1] if code is not None and len(e.args) > 1 else str(e)
    return {"error": type(e).__name__, "code": code, "message": str(message)}


def lambda_handler(event, context):
    host, port, user = event["host"], int(event["port"]), event.get("user", "admin")
    out = {"rows": []}
    started = time.monotonic()
    try:
        password = event.get("password", "token")
        if password == "token":
            password = _token(event.get("token_host", host), int(event.get("token_port", port)),
                              event.get("token_user", user), event.get("token_age", 0),
                              event.get("token_key"))
        tls = _context(event.get("tls", "verify"))
        timeout = float(event.get("connect_timeout", 5))
        if event.get("engine", "mysql") == "mysql":
            import pymysql

            conn = pymysql.connect(host=host, port=port, user=user, password=password,
                                   database=event.get("database"), connect_timeout=timeout,
                                   read_timeout=15,
                                   **({"ssl": tls} if tls else {"ssl_disabled": True}))
            if tls:
                out["peer"] = conn._sock.getpeercert()

            def run(sql):
                with conn.cursor() as cursor:
                    cursor.execute(sql)
                    return cursor.fetchall()
        else:
            import pg8000.core
            import pg8000.native

            # What the server asks for: 3 a clear-text password, 5 MD5, 10 SASL.
            asked = out["auth"] = []
            handle = pg8000.core.CoreConnection.handle_AUTHENTICATION_REQUEST

            def record(self, data, context):
                asked.append(int.from_bytes(data[:4], "big"))
                return handle(self, data, context)

            pg8000.core.CoreConnection.handle_AUTHENTICATION_REQUEST = record
            conn = pg8000.native.Connection(user, host=host, port=port, password=password,
                                            database=event.get("database"),
                                            ssl_context=tls or False, timeout=15)
            run = conn.run
        out["connected"] = round(time.monotonic() - started, 3)
        for i, sql in enumerate(event.get("queries", ["SELECT 1"])):
            if i and event.get("sleep"):
                time.sleep(float(event["sleep"]))
            out["rows"].append(json.loads(json.dumps(run(sql), default=str)))
        time.sleep(float(event.get("hold", 0)))
        conn.close()
    except Exception as e:  # noqa: BLE001 - what happened is the answer
        out.update(_error(e))
    out["after"] = round(time.monotonic() - started, 3)
    return out
'''

# MySQL's errors, as fronts.py sends them (AWS's wording).
ACCESS_DENIED = (1045, "Access denied for user 'admin'@'%' (using password: YES)")
NEEDS_TLS = (3159, "This RDS Proxy requires TLS connections.")
BORROW_TIMEOUT = (9501, "Timed-out waiting to acquire database connection")


def code_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("lambda_function.py", FUNCTION_CODE)
    return buf.getvalue()


class World(dict):
    """What `DataPathTest.world` made, by name (as attributes too)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


_aws: dict = {}


class DataPathTest(AwsTest):
    """Each test gets a fresh world that works (the emulator's state is
    reset by AwsTest, the logs and metrics here; the DB's real server is
    kept between tests, which is what makes a world cheap)."""

    ENGINE = "mysql"
    PROXY: dict = {}  # more CreateDBProxy parameters
    AUTH: dict = {"IAMAuth": "REQUIRED"}  # the proxy's Auth entry, beside the secret

    def setUp(self):
        super().setUp()
        for backends in (lambda_simple_backends, get_backend("logs"), get_backend("cloudwatch")):
            for account in backends.values():
                account.reset()
            backends.clear()
        # AwsTest removes roles without IAM seeing it: forget what IAM saw.
        policy.reset()
        if not _aws:
            for name in ("logs", "cloudwatch"):
                _aws[name] = boto3.client(name, region_name=REGION, endpoint_url=self.url)
        self.logs, self.cloudwatch = _aws["logs"], _aws["cloudwatch"]
        self.pace(iam_propagation=0)
        self.w = self.world(self.ENGINE)

    # --- the world -------------------------------------------------------

    def world(self, engine="mysql"):
        """A VPC; the DB (its own identifier per engine: the real server is
        kept by identifier) with DBName, its group and secret; the proxy's
        role, allowed to read the secret; the proxy (RequireTLS, the Auth
        entry of AUTH) and its group, which the DB's admits; the target;
        the function `fn` in the VPC with its group, which the proxy's
        admits, and its role, allowed rds-db:connect on the proxy's users."""
        postgres = engine == "postgres"
        port = 5432 if postgres else 3306
        rds, iam = self.c["rds"], self.c["iam"]
        vpc, subnets = self.network()
        db_sg, proxy_sg, fn_sg = (self.group(vpc, n) for n in ("db", "proxy", "fn"))
        rds.create_db_subnet_group(
            DBSubnetGroupName="dbs", DBSubnetGroupDescription="d", SubnetIds=subnets
        )
        db_id = f"db-{engine}"
        db = rds.create_db_instance(
            DBInstanceIdentifier=db_id, Engine=engine, DBInstanceClass="db.t3.micro",
            MasterUsername="admin", MasterUserPassword=PASSWORD, DBName=DATABASE,
            AllocatedStorage=20, Port=port, VpcSecurityGroupIds=[db_sg],
            DBSubnetGroupName="dbs",
        )["DBInstance"]
        secret = self.c["secretsmanager"].create_secret(
            Name="db-secret", SecretString=json.dumps({"username": "admin", "password": PASSWORD})
        )["ARN"]
        proxy_role = iam.create_role(
            RoleName="proxy-role", AssumeRolePolicyDocument=json.dumps(TRUST)
        )["Role"]["Arn"]
        r = dict(vpc=vpc, subnets=subnets, db_sg=db_sg, proxy_sg=proxy_sg, secret=secret,
                 role=proxy_role, port=port)
        self.allow_secret(r)
        self.admit_proxy(r)
        proxy = self.create_proxy(
            r,
            family="POSTGRESQL" if postgres else "MYSQL",
            Auth=[{"AuthScheme": "SECRETS", "SecretArn": secret, **self.AUTH}],
            **{"RequireTLS": True, **self.PROXY},
        )
        rds.register_db_proxy_targets(DBProxyName="p1", DBInstanceIdentifiers=[db_id])
        self.admit(proxy_sg, fn_sg, port)
        fn_role = iam.create_role(
            RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(trust("lambda.amazonaws.com"))
        )["Role"]["Arn"]
        prx = proxy["DBProxyArn"].rsplit(":", 1)[1]
        w = World(r, engine=engine, db_id=db_id, db_host=db["Endpoint"]["Address"],
                  fn_sg=fn_sg, fn_role=fn_role, prx=prx, host=proxy["Endpoint"],
                  users=f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{prx}/*")
        self.connect_policy(w["users"])
        self.function("fn", fn_role, subnets[:2], [fn_sg])
        self.wait_available()
        wait_until(lambda: self.targets()[0]["TargetHealth"]["State"] != "REGISTERING")
        return w

    def admit(self, group, source, port):
        self.c["ec2"].authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                            "UserIdGroupPairs": [{"GroupId": source}]}],
        )

    def revoke(self, group, source, port):
        self.c["ec2"].revoke_security_group_ingress(
            GroupId=group,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                            "UserIdGroupPairs": [{"GroupId": source}]}],
        )

    def connect_policy(self, resource, name="connect", effect="Allow", condition=None,
                       role="fn-role"):
        """An inline policy of `role` with one rds-db:connect statement."""
        statement = {"Effect": effect, "Action": "rds-db:connect", "Resource": resource}
        if condition:
            statement["Condition"] = condition
        self.c["iam"].put_role_policy(
            RoleName=role, PolicyName=name,
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        )

    def function(self, name, role, subnets=None, groups=None):
        vpc = {"VpcConfig": {"SubnetIds": subnets, "SecurityGroupIds": groups}} if subnets else {}
        self.c["lambda"].create_function(
            FunctionName=name, Runtime="python3.12", Role=role,
            Handler="lambda_function.lambda_handler", Code={"ZipFile": code_zip()},
            Timeout=30, **vpc,
        )

    def modify_pool(self, **config):
        self.c["rds"].modify_db_proxy_target_group(
            DBProxyName="p1", TargetGroupName="default", ConnectionPoolConfig=config
        )

    def modify_proxy(self, **changes):
        self.c["rds"].modify_db_proxy(DBProxyName="p1", **changes)
        self.wait_available()

    # --- connecting ------------------------------------------------------

    def connect(self, fn="fn", **event):
        """What the function answered for `event`: by default, to the world's
        proxy (its host, its port), its DB, over TLS, with an IAM token."""
        event = {"engine": self.w.engine, "host": self.w.host, "port": self.w.port,
                 "database": DATABASE, **event}
        out = self.c["lambda"].invoke(FunctionName=fn, Payload=json.dumps(event).encode())
        body = json.loads(out["Payload"].read())
        self.assertNotIn("FunctionError", out, body)
        return body

    def connect_all(self, *events):
        """connect() for each event, all at once."""
        with ThreadPoolExecutor(len(events)) as pool:
            return list(pool.map(lambda e: self.connect(**e), events))

    def assertRows(self, got, rows):
        self.assertNotIn("error", got, got)
        self.assertEqual(got["rows"], rows, got)

    def assertRefused(self, got, error):
        """`error`: (code, message) the client got."""
        self.assertEqual((got.get("code"), got.get("message")), tuple(error), got)

    def assertTimedOut(self, got, seconds):
        """The connect got no answer and gave up after `seconds` (MySQL)."""
        self.assertEqual(got.get("code"), 2003, got)
        self.assertIn("timed out", got["message"])
        self.assertGreaterEqual(got["after"], seconds, got)

    # --- what the proxy told the account ----------------------------------

    def log_lines(self, name="p1"):
        try:
            events = self.logs.filter_log_events(logGroupName=f"/aws/rds/proxy/{name}")["events"]
        except self.logs.exceptions.ResourceNotFoundException:
            return []
        return [e["message"] for e in events]

    def assertLogged(self, *parts, name="p1"):
        """The lines that hold all of `parts` (waits a little for them)."""
        try:
            return wait_until(
                lambda: [line for line in self.log_lines(name) if all(p in line for p in parts)],
                timeout=3,
            )
        except AssertionError:
            self.fail(f"no line with {parts!r} in the proxy's log: {self.log_lines(name)}")

    def datapoints(self, metric, name="p1", stat="Maximum"):
        """The values of `metric` (AWS/RDS, ProxyName) in the last minutes."""
        now = time.time()
        got = self.cloudwatch.get_metric_statistics(
            Namespace="AWS/RDS", MetricName=metric,
            Dimensions=[{"Name": "ProxyName", "Value": name}],
            StartTime=now - 600, EndTime=now + 60, Period=60, Statistics=[stat],
        )["Datapoints"]
        return [d[stat] for d in got]

    def peak(self, metric, name="p1"):
        """The highest value of `metric` published."""
        values = self.datapoints(metric, name)
        self.assertTrue(values, f"no {metric} datapoint")
        return max(values)

    def pinned_lines(self):
        return [line for line in self.log_lines() if "pinned" in line]

    def health(self):
        return self.targets()[0]["TargetHealth"]
