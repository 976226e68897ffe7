"""Create the preconditions of AWS Cookbook recipe 4.3 in a local emulator.

    localstack/.venv/bin/python localstack/seed.py [--prefix P] [--out FILE]
        [--engine mysql|postgres|sqlserver-ex|aurora-mysql|aurora-postgresql]
        [--extra-function NAME[:USER] ...] [--extra-secret USER ...]
        [--iam-db-auth] [--dual-stack] [--system seed-000]

The DB is an RDS instance by default; an `aurora-*` engine makes an Aurora
cluster with one instance and an RDS-managed master secret. On the
emulator's real server behind the DB, the seed writes the row the book's
function reads (functions/lambda_function.py, deployed as the Lambda
function), and the DB users the extra secrets and end-to-end IAM name. Each
--extra-function NAME adds a second kind of Lambda function (its own role and
security group), exported as NAME_FUNCTION_NAME, NAME_FUNCTION_ROLE_NAME and
NAME_FUNCTION_SG_ID (NAME upper-cased, '-' as '_'), connecting as DB user
USER if given.

--system seed-000 makes seed 000's own system (runbooks/seed-000-mass-emailing.toml,
default prefix mass-emailing, MySQL or --engine postgres): a db.t3.medium, the
secret PREFIX/rds-credentials of DB user app_user (exported as
APP_USER_SECRET_ARN), and its five functions, all connecting as app_user,
each capped as seed 000 caps it (SEED_000_FUNCTIONS below).

Needs AWS_ENDPOINT_URL (it refuses to run against real AWS). Idempotent: every
resource is looked up by name/tag first, so a second run creates nothing and
prints the same exports. Progress goes to stderr; the exports (one
`export NAME=value` per line) go to stdout or --out. The DB password lives
only in the DB and the secret: it is never printed or written anywhere else.
"""

import argparse
import io
import json
import os
import secrets
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile

import boto3
from botocore.exceptions import ClientError

LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
VPC_ACCESS_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
# The book's function: localstack/functions/lambda_function.py.
FUNCTION_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "functions",
                               "lambda_function.py")
# The table and row the function reads, in the database every seeded DB has.
DATABASE = "appdb"
NOTE = "hello from {db_id}"
# The DB user of end-to-end IAM (--iam-db-auth): the shipped IAM runbook's.
IAM_USER = "app_user"

# Seed 000's system (--system seed-000): its DB class, and its functions
# with what caps how many of each run at once, as (name, reserved
# concurrency, SQS maximum concurrency). The CSV import runs in a Step
# Functions Map of MaxConcurrency 5: reserved concurrency 5 stands in for
# it; the mail sender reads an SQS queue with MaximumConcurrency 4; the
# three small ones (workflow completion, completion polling, DLQ) hold one
# connection each. At worst 5 + 4 + 3 = 12 client connections.
SEED_000_CLASS = "db.t3.medium"
SEED_000_FUNCTIONS = [
    ("csv-import", 5, None),
    ("mail-send", None, 4),
    ("workflow-complete", 1, None),
    ("completion-poll", 1, None),
    ("dlq", 1, None),
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def error_code(e):
    return e.response.get("Error", {}).get("Code", "")


def wait_for(what, check, timeout=900, delay=2):
    """Poll check() until it returns a truthy value (instant on moto)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            sys.exit(f"seed: timed out waiting for {what}")
        time.sleep(delay)


def tag_filter(name):
    return [{"Name": "tag:Name", "Values": [name]}]


def name_tags(kind, name):
    return [{"ResourceType": kind, "Tags": [{"Key": "Name", "Value": name}]}]


def ensure_vpc(ec2, name, dual_stack=False):
    """The VPC's id and, with `dual_stack`, its Amazon-provided IPv6 /56."""
    vpcs = ec2.describe_vpcs(Filters=tag_filter(name))["Vpcs"]
    if vpcs:
        log(f"found VPC {name}: {vpcs[0]['VpcId']}")
        vpc = vpcs[0]
    else:
        vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16", AmazonProvidedIpv6CidrBlock=dual_stack,
                             TagSpecifications=name_tags("vpc", name))["Vpc"]
        log(f"created VPC {name}: {vpc['VpcId']}")
    blocks = [a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet", [])]
    if dual_stack and not blocks:
        sys.exit(f"seed: VPC {name} has no IPv6 CIDR block; use another --prefix for --dual-stack")
    return vpc["VpcId"], (blocks[0] if dual_stack else None)


def ensure_subnet(ec2, vpc_id, name, cidr, az, ipv6_cidr=None):
    subnets = ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}] + tag_filter(name))["Subnets"]
    if subnets:
        log(f"found subnet {name}: {subnets[0]['SubnetId']}")
        return subnets[0]["SubnetId"]
    ipv6 = {"Ipv6CidrBlock": ipv6_cidr} if ipv6_cidr else {}
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az,
                                  TagSpecifications=name_tags("subnet", name),
                                  **ipv6)["Subnet"]["SubnetId"]
    log(f"created subnet {name} in {az}: {subnet_id}")
    return subnet_id


def ensure_sg(ec2, vpc_id, name, description):
    groups = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    if groups:
        log(f"found security group {name}: {groups[0]['GroupId']}")
        return groups[0]["GroupId"]
    sg_id = ec2.create_security_group(
        GroupName=name, Description=description, VpcId=vpc_id,
        TagSpecifications=name_tags("security-group", name))["GroupId"]
    log(f"created security group {name}: {sg_id}")
    return sg_id


def ensure_db_subnet_group(rds, name, subnet_ids):
    try:
        rds.describe_db_subnet_groups(DBSubnetGroupName=name)
        log(f"found DB subnet group {name}")
    except ClientError as e:
        if error_code(e) != "DBSubnetGroupNotFoundFault":
            raise
        rds.create_db_subnet_group(DBSubnetGroupName=name, SubnetIds=subnet_ids,
                                   DBSubnetGroupDescription="isolated subnets for the recipe 4.3 DB")
        log(f"created DB subnet group {name}")


ENGINES = {
    # engine: (port, instance class)
    "mysql": (3306, "db.t3.micro"),
    "postgres": (5432, "db.t3.micro"),
    "sqlserver-ex": (1433, "db.t3.small"),
    "aurora-mysql": (3306, "db.r5.large"),
    "aurora-postgresql": (5432, "db.r5.large"),
}


def find_cluster(rds, cluster_id):
    try:
        return rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    except ClientError as e:
        if error_code(e) != "DBClusterNotFoundFault":
            raise
        return None


def ensure_cluster(rds, cluster_id, engine, subnet_group, sg_id, iam_db_auth=False,
                   network_type="IPV4"):
    """Aurora cluster with one instance and an RDS-managed master secret;
    returns (writer endpoint, secret ARN). RDS keeps the password: it is
    never seen here."""
    cluster = find_cluster(rds, cluster_id)
    if cluster is None:
        rds.create_db_cluster(
            DBClusterIdentifier=cluster_id, Engine=engine, MasterUsername="dbadmin",
            DatabaseName=DATABASE,
            ManageMasterUserPassword=True, DBSubnetGroupName=subnet_group,
            VpcSecurityGroupIds=[sg_id], Port=ENGINES[engine][0],
            EnableIAMDatabaseAuthentication=iam_db_auth, NetworkType=network_type)
        log(f"created Aurora cluster {cluster_id} ({engine})")
    else:
        log(f"found Aurora cluster {cluster_id}")
    writer = f"{cluster_id}-1"
    if find_db(rds, writer) is None:
        rds.create_db_instance(DBInstanceIdentifier=writer, DBClusterIdentifier=cluster_id,
                               Engine=engine, DBInstanceClass=ENGINES[engine][1])
        log(f"created DB instance {writer} in {cluster_id}")

    def available():
        c = find_cluster(rds, cluster_id)
        return c if c and c.get("Status") == "available" and c.get("Endpoint") else None
    cluster = wait_for(f"Aurora cluster {cluster_id} to be available", available)
    return cluster["Endpoint"], cluster["MasterUserSecret"]["SecretArn"]


def find_db(rds, db_id):
    try:
        return rds.describe_db_instances(DBInstanceIdentifier=db_id)["DBInstances"][0]
    except ClientError as e:
        if error_code(e) != "DBInstanceNotFound":
            raise
        return None


def find_secret_password(sm, name):
    """The password kept in an existing secret, or None if there is no secret."""
    try:
        value = sm.get_secret_value(SecretId=name)
    except ClientError as e:
        if error_code(e) != "ResourceNotFoundException":
            raise
        return None
    return json.loads(value["SecretString"])["password"]


def ensure_db_and_secret(rds, sm, db_id, engine, secret_name, subnet_group, sg_id,
                         iam_db_auth=False, network_type="IPV4", instance_class=None):
    """DB instance + secret holding its credentials; returns (endpoint, secret ARN).

    The password comes from the secret when one exists; otherwise a new one is
    generated (and, should the DB exist without a secret, set on the DB), so
    the DB and the secret always agree.
    """
    db = find_db(rds, db_id)
    password = find_secret_password(sm, secret_name)
    secret_exists = password is not None
    if not secret_exists:
        # RDS MySQL: 8-41 printable chars, no / @ " or space; urlsafe is fine.
        password = secrets.token_urlsafe(24)

    if db is None:
        # SQL Server takes no DBName.
        named = {} if engine.startswith("sqlserver") else {"DBName": DATABASE}
        rds.create_db_instance(
            DBInstanceIdentifier=db_id, DBInstanceClass=instance_class or ENGINES[engine][1],
            Engine=engine,
            MasterUsername="admin", MasterUserPassword=password, AllocatedStorage=20, **named,
            DBSubnetGroupName=subnet_group, VpcSecurityGroupIds=[sg_id],
            PubliclyAccessible=False, EnableIAMDatabaseAuthentication=iam_db_auth,
            NetworkType=network_type)
        log(f"created DB instance {db_id}")
    else:
        log(f"found DB instance {db_id}")
        if not secret_exists:
            rds.modify_db_instance(DBInstanceIdentifier=db_id, MasterUserPassword=password,
                                   ApplyImmediately=True)
            log(f"reset the master password of {db_id} (its secret was missing)")

    def available():
        d = find_db(rds, db_id)
        return d if d and d.get("DBInstanceStatus") == "available" and d.get("Endpoint") else None
    db = wait_for(f"DB instance {db_id} to be available", available)
    endpoint = db["Endpoint"]

    secret = json.dumps({
        "username": "admin", "password": password, "engine": engine,
        "host": endpoint["Address"], "port": endpoint.get("Port", ENGINES[engine][0]),
        "dbInstanceIdentifier": db_id,
    })
    if not secret_exists:
        arn = sm.create_secret(Name=secret_name, SecretString=secret,
                               Description=f"credentials of {db_id}")["ARN"]
        log(f"created secret {secret_name}")
    else:
        arn = sm.describe_secret(SecretId=secret_name)["ARN"]
        current = sm.get_secret_value(SecretId=secret_name)["SecretString"]
        if json.loads(current) != json.loads(secret):
            sm.put_secret_value(SecretId=secret_name, SecretString=secret)
            log(f"updated secret {secret_name} (DB endpoint changed)")
        else:
            log(f"found secret {secret_name}")
    return endpoint["Address"], arn


def local_port(endpoint_url, host, port):
    """Where the emulator's real server for the DB at host:port listens on
    this machine (started on first need), or None on an emulator without
    a data path (then the DB has no row and the function cannot read it)."""
    query = urllib.parse.urlencode({"host": host, "port": port})
    try:
        with urllib.request.urlopen(f"{endpoint_url}/awsrules/local?{query}", timeout=60) as r:
            return json.load(r)["port"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def prepare_database(endpoint_url, host, port, engine, db_id, master, password, users,
                     iam_user=None):
    """The row the book's function reads, and the DB users the secrets and
    end-to-end IAM name: made over the wire, as the master user, on the
    DB's real server. Idempotent."""
    if engine.startswith("sqlserver"):
        log(f"{db_id}: the emulator has no SQL Server, so no row to read")
        return
    local = local_port(endpoint_url, host, port)
    if local is None:
        log(f"{db_id}: this emulator has no real database server; no row written")
        return
    note = NOTE.format(db_id=db_id)
    if "postgres" in engine:
        import pg8000.native

        conn = pg8000.native.Connection(master, host="127.0.0.1", port=local,
                                        password=password, database=DATABASE)
        conn.run("CREATE TABLE IF NOT EXISTS recipe_check (id INT PRIMARY KEY, note TEXT)")
        conn.run("INSERT INTO recipe_check VALUES (1, :note) ON CONFLICT (id) DO NOTHING",
                 note=note)
        for user, secret in users.items():
            if not conn.run("SELECT 1 FROM pg_roles WHERE rolname = :u", u=user):
                conn.run(f"CREATE ROLE {conn_ident(user)} LOGIN")
            conn.run(f"ALTER ROLE {conn_ident(user)} PASSWORD {pg_literal(secret)}")
            conn.run(f"GRANT SELECT ON recipe_check TO {conn_ident(user)}")
        if iam_user:
            if not conn.run("SELECT 1 FROM pg_roles WHERE rolname = :u", u=iam_user):
                conn.run(f"CREATE ROLE {conn_ident(iam_user)} LOGIN")
            conn.run(f"GRANT rds_iam TO {conn_ident(iam_user)}")
            conn.run(f"GRANT SELECT ON recipe_check TO {conn_ident(iam_user)}")
        conn.close()
    else:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=local, user=master, password=password,
                               database=DATABASE, autocommit=True)
        with conn.cursor() as c:
            c.execute("CREATE TABLE IF NOT EXISTS recipe_check "
                      "(id INT PRIMARY KEY, note VARCHAR(200))")
            c.execute("INSERT IGNORE INTO recipe_check VALUES (1, %s)", (note,))
            for user, secret in users.items():
                c.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, secret))
                c.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, secret))
                c.execute(f"GRANT SELECT ON {DATABASE}.recipe_check TO %s@'%%'", (user,))
            if iam_user:
                # MariaDB has no AWSAuthenticationPlugin: the emulator takes
                # any existing user as IAM-enabled (localstack/README.md).
                c.execute("CREATE USER IF NOT EXISTS %s@'%%'", (iam_user,))
                c.execute(f"GRANT SELECT ON {DATABASE}.recipe_check TO %s@'%%'", (iam_user,))
        conn.close()
    log(f"{db_id}: wrote the row the function reads ({note!r}) and {len(users)} DB user(s)")


def conn_ident(name):
    """A PostgreSQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def pg_literal(text):
    """A PostgreSQL string literal (ALTER ROLE takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def ensure_lambda_role(iam, name):
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        log(f"found IAM role {name}")
    except ClientError as e:
        if error_code(e) != "NoSuchEntity":
            raise
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST),
                              Description="execution role of the recipe 4.3 Lambda")["Role"]["Arn"]
        log(f"created IAM role {name}")
    attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    if VPC_ACCESS_POLICY not in [p["PolicyArn"] for p in attached]:
        iam.attach_role_policy(RoleName=name, PolicyArn=VPC_ACCESS_POLICY)
        log(f"attached AWSLambdaVPCAccessExecutionRole to {name}")
    return arn


def lambda_zip(engine):
    """The book's function, with what it hard-codes (engine, port, database)."""
    kind = next((k for k in ("postgres", "mysql", "sqlserver") if k in engine), engine)
    config = {"engine": kind, "port": ENGINES[engine][0], "database": DATABASE}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with open(FUNCTION_SOURCE) as f:
            z.writestr("lambda_function.py", f.read())
        z.writestr("function_config.json", json.dumps(config))
    return buf.getvalue()


def ensure_function(lam, name, role_arn, subnet_ids, sg_id, db_host, engine, db_user):
    # An existing function is left as it is: a runbook may since have pointed
    # DB_HOST at the proxy, and the seed must not undo that.
    try:
        lam.get_function(FunctionName=name)
        log(f"found Lambda function {name}")
    except ClientError as e:
        if error_code(e) != "ResourceNotFoundException":
            raise
        for attempt in range(10):
            try:
                lam.create_function(
                    FunctionName=name, Runtime="python3.12", Role=role_arn,
                    Handler="lambda_function.lambda_handler", Code={"ZipFile": lambda_zip(engine)},
                    Timeout=30, MemorySize=128,
                    VpcConfig={"SubnetIds": subnet_ids, "SecurityGroupIds": [sg_id]},
                    Environment={"Variables": {"DB_HOST": db_host, "DB_USER": db_user,
                                               "LOG_LEVEL": "info"}})
                break
            except ClientError as e:
                # A new role takes seconds to become assumable (on real AWS).
                if error_code(e) != "InvalidParameterValueException" or attempt == 9:
                    raise
                time.sleep(3)
        log(f"created Lambda function {name}")

    def ready():
        c = lam.get_function_configuration(FunctionName=name)
        state, update = c.get("State", "Active"), c.get("LastUpdateStatus", "Successful")
        if state == "Failed" or update == "Failed":
            sys.exit(f"seed: Lambda function {name} failed: {c.get('StateReason')}")
        return state == "Active" and update != "InProgress"
    wait_for(f"Lambda function {name} to be Active", ready)


def ensure_caps(lam, sqs, name, reserved, sqs_max):
    """How many of the function `name` may run at once: its reserved
    concurrency, or an SQS queue of its own mapped to it with a maximum
    concurrency (what the connection budget reads)."""
    if reserved is not None:
        current = lam.get_function_concurrency(FunctionName=name).get(
            "ReservedConcurrentExecutions")
        if current != reserved:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)
            log(f"set the reserved concurrency of {name} to {reserved}")
    if sqs_max is not None:
        url = sqs.create_queue(QueueName=f"{name}-queue")["QueueUrl"]  # idempotent
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        found = lam.list_event_source_mappings(FunctionName=name, EventSourceArn=arn)
        if found["EventSourceMappings"]:
            log(f"found the SQS event source of {name}")
        else:
            lam.create_event_source_mapping(FunctionName=name, EventSourceArn=arn, BatchSize=10,
                                            ScalingConfig={"MaximumConcurrency": sqs_max})
            log(f"mapped SQS queue {name}-queue to {name} (maximum concurrency {sqs_max})")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prefix", help="prefix of every name (default: awscookbook403; "
                   "mass-emailing with --system seed-000)")
    p.add_argument("--out", help="write the exports to this file instead of stdout")
    p.add_argument("--engine", default="mysql", choices=sorted(ENGINES),
                   help="the DB engine; aurora-* makes a cluster (default: mysql)")
    p.add_argument("--extra-function", action="append", default=[], metavar="NAME[:USER]",
                   help="another Lambda function, with its own role and security group "
                        "(connecting as DB user USER, else as the first function)")
    p.add_argument("--extra-secret", action="append", default=[], metavar="USER",
                   help="another secret the proxy may log in with, for the DB user USER "
                        "(a proxy's several [[auth]] entries)")
    p.add_argument("--iam-db-auth", action="store_true",
                   help="make the DB with IAM database authentication on (end-to-end IAM)")
    p.add_argument("--dual-stack", action="store_true",
                   help="IPv6 CIDR blocks on the VPC and subnets, and a DB of network type "
                        "DUAL (for the proxy's IPv6 network types)")
    p.add_argument("--system", choices=["seed-000"],
                   help="seed 000's own system: a db.t3.medium, the secret of app_user and its "
                        "five functions with their concurrency (runbooks/seed-000-mass-emailing.toml)")
    args = p.parse_args()
    seed_000 = args.system == "seed-000"
    if seed_000 and args.engine not in ("mysql", "postgres"):
        p.error("--system seed-000 is MySQL (the default) or --engine postgres")
    prefix = args.prefix or ("mass-emailing" if seed_000 else "awscookbook403")
    if seed_000:
        args.extra_function += [f"{name}:{IAM_USER}" for name, _, _ in SEED_000_FUNCTIONS]

    endpoint_url = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint_url:
        sys.exit("seed: AWS_ENDPOINT_URL is not set (run `eval \"$(localstack/start.sh)\"` first); "
                 "refusing to touch real AWS")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:
        session = boto3.session.Session(region_name=region, aws_access_key_id="test",
                                        aws_secret_access_key="test")

    def client(name):
        return session.client(name, endpoint_url=endpoint_url)

    ec2, rds, sm, iam, lam, sts, sqs = (client(n) for n in ("ec2", "rds", "secretsmanager", "iam",
                                                            "lambda", "sts", "sqs"))
    log(f"seeding recipe 4.3 preconditions (prefix {prefix}) at {endpoint_url}, region {region}")

    account_id = sts.get_caller_identity()["Account"]
    vpc_id, ipv6_block = ensure_vpc(ec2, f"{prefix}-vpc", args.dual_stack)
    # Two /64s of the VPC's /56 (2600:1f18:aa:bb00::/56 -> ...bb01::/64).
    ipv6 = ([f"{ipv6_block.split('::')[0][:-2]}0{i}::/64" for i in (1, 2)]
            if ipv6_block else [None, None])
    zones = sorted(z["ZoneName"] for z in ec2.describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]}])["AvailabilityZones"])
    if len(zones) < 2:
        zones = [f"{region}a", f"{region}b"]
    subnet_ids = [
        ensure_subnet(ec2, vpc_id, f"{prefix}-isolated-a", "10.10.1.0/24", zones[0], ipv6[0]),
        ensure_subnet(ec2, vpc_id, f"{prefix}-isolated-b", "10.10.2.0/24", zones[1], ipv6[1]),
    ]
    db_sg = ensure_sg(ec2, vpc_id, f"{prefix}-db-sg", "recipe 4.3 database")
    lambda_sg = ensure_sg(ec2, vpc_id, f"{prefix}-lambda-sg", "recipe 4.3 Lambda function")

    db_id = f"{prefix}-db"
    network_type = "DUAL" if args.dual_stack else "IPV4"
    subnet_group = f"{prefix}-db-subnets"
    ensure_db_subnet_group(rds, subnet_group, subnet_ids)
    if args.engine.startswith("aurora-"):
        db_host, secret_arn = ensure_cluster(rds, db_id, args.engine, subnet_group, db_sg,
                                             args.iam_db_auth, network_type)
        db_export = {"RDS_CLUSTER_ID": db_id}
    else:
        db_host, secret_arn = ensure_db_and_secret(rds, sm, db_id, args.engine,
                                                   f"{prefix}-db-secret", subnet_group, db_sg,
                                                   args.iam_db_auth, network_type,
                                                   SEED_000_CLASS if seed_000 else None)
        db_export = {"RDS_ID": db_id}

    # The master user as the DB's secret holds it (RDS's own for a cluster).
    master = json.loads(sm.get_secret_value(SecretId=secret_arn)["SecretString"])
    port = ENGINES[args.engine][0]
    extra_secrets = {}
    # (user, secret name, what else the secret holds)
    wanted = [(user, f"{prefix}-{user}-secret", {}) for user in args.extra_secret]
    if seed_000:
        # Seed 000's secret (its step 1), the DB user the proxy logs in as.
        wanted.append((IAM_USER, f"{prefix}/rds-credentials",
                       {"engine": args.engine, "host": db_host, "port": port,
                        "dbname": DATABASE}))
    for user, name, more in wanted:
        try:
            arn = sm.describe_secret(SecretId=name)["ARN"]
            log(f"found secret {name}")
        except sm.exceptions.ResourceNotFoundException:
            value = json.dumps({"username": user, "password": secrets.token_urlsafe(24),
                                **more})
            arn = sm.create_secret(Name=name, SecretString=value,
                                   Description=f"credentials of DB user {user}")["ARN"]
            log(f"created secret {name}")
        extra_secrets[user] = (arn, json.loads(sm.get_secret_value(SecretId=arn)["SecretString"]))
    prepare_database(endpoint_url, db_host, port, args.engine, db_id, master["username"],
                     master["password"],
                     {user: value["password"] for user, (_, value) in extra_secrets.items()},
                     IAM_USER if args.iam_db_auth else None)
    # The function connects as the master user, as the book's does, or with
    # end-to-end IAM as the IAM-enabled user.
    db_user = IAM_USER if args.iam_db_auth else master["username"]

    role_name = f"{prefix}-lambda-role"
    role_arn = ensure_lambda_role(iam, role_name)
    function_name = f"{prefix}-db-app"
    ensure_function(lam, function_name, role_arn, subnet_ids, lambda_sg, db_host, args.engine,
                    db_user)

    extra = {}
    for given in args.extra_function:
        # NAME, or NAME:USER for a function connecting as DB user USER.
        name, _, user = given.partition(":")
        key = name.upper().replace("-", "_")
        sg = ensure_sg(ec2, vpc_id, f"{prefix}-{name}-sg", f"recipe 4.3 {name} function")
        role = f"{prefix}-{name}-role"
        ensure_function(lam, f"{prefix}-{name}", ensure_lambda_role(iam, role), subnet_ids,
                        sg, db_host, args.engine, user or db_user)
        extra.update({f"{key}_FUNCTION_NAME": f"{prefix}-{name}",
                      f"{key}_FUNCTION_ROLE_NAME": role, f"{key}_FUNCTION_SG_ID": sg})
    if seed_000:
        for name, reserved, sqs_max in SEED_000_FUNCTIONS:
            ensure_caps(lam, sqs, f"{prefix}-{name}", reserved, sqs_max)

    for user, (arn, _) in extra_secrets.items():
        extra[f"{user.upper().replace('-', '_')}_SECRET_ARN"] = arn

    exports = {
        "AWS_REGION": region,
        "AWS_ACCOUNT_ID": account_id,
        "VPC_ID": vpc_id,
        "ISOLATED_SUBNETS": " ".join(subnet_ids),
        "DB_NAME": db_id,
        **db_export,
        "RDS_SG": db_sg,
        "RDS_SECRET_ARN": secret_arn,
        "DB_APP_FUNCTION_NAME": function_name,
        "DB_APP_FUNCTION_ROLE_NAME": role_name,
        "DB_APP_FUNCTION_SG_ID": lambda_sg,
        **extra,
    }
    text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in exports.items())
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
        log(f"wrote {len(exports)} exports to {args.out}")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
