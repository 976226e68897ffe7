"""The AWS Cookbook's recipe 4.3 made by hand, as a colleague who followed
the book would have made it (no tag of this tool anywhere): the test support
for `adopt` and for `init` on a DB that a proxy already fronts.

    python by_hand.py PREFIX

Needs the seed's exports in the environment (VPC_ID, ISOLATED_SUBNETS,
DB_NAME, RDS_ID, RDS_SG, RDS_SECRET_ARN, AWS_ACCOUNT_ID,
DB_APP_FUNCTION_NAME, DB_APP_FUNCTION_ROLE_NAME, DB_APP_FUNCTION_SG_ID) and
AWS_ENDPOINT_URL. The names are the book's with PREFIX in front (the
runbooks the tests write use the same). The book's own deviations are kept:
the managed SecretsManagerReadWrite, the group described "Lambda Security
Group". Unlike the book's command, DB_HOST is set keeping the function's
other variables. Waits for the proxy and its target as a person would.
"""

import json
import os
import sys
import time

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
POLICIES = os.path.join(HERE, "..", "..", "runbooks", "policies")


def wait(check, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"by_hand.py: {what} not ready after {timeout}s")
        time.sleep(0.3)


def main():
    prefix = sys.argv[1]
    env = os.environ
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    iam, ec2, rds, lam = (
        boto3.client(s, region_name=region) for s in ("iam", "ec2", "rds", "lambda")
    )
    role = f"{prefix}-proxy-role"
    with open(os.path.join(POLICIES, "rds-proxy-trust-policy.json")) as f:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=f.read())
    sg = ec2.create_security_group(
        GroupName=f"{prefix}-proxy-sg", Description="Lambda Security Group", VpcId=env["VPC_ID"]
    )["GroupId"]
    proxy = rds.create_db_proxy(
        DBProxyName=env["DB_NAME"],
        EngineFamily="MYSQL",
        Auth=[{"AuthScheme": "SECRETS", "SecretArn": env["RDS_SECRET_ARN"], "IAMAuth": "REQUIRED"}],
        RoleArn=f"arn:aws:iam::{env['AWS_ACCOUNT_ID']}:role/{role}",
        VpcSubnetIds=env["ISOLATED_SUBNETS"].split(),
        VpcSecurityGroupIds=[sg],
        RequireTLS=True,
    )["DBProxy"]
    name = env["DB_NAME"]

    def proxy_now():
        return rds.describe_db_proxies(DBProxyName=name)["DBProxies"][0]

    wait(lambda: proxy_now()["Status"] == "available", "the proxy")
    proxy_id = proxy["DBProxyArn"].split(":")[6]
    with open(os.path.join(POLICIES, "rds-connect-policy-template.json")) as f:
        doc = (
            f.read()
            .replace("AWS_ACCOUNT_ID", env["AWS_ACCOUNT_ID"])
            .replace("AWS_REGION", region)
            .replace("RDSProxyID", proxy_id)
            .replace("DB_USER", "*")
        )
    policy = iam.create_policy(PolicyName=f"{prefix}-connect", PolicyDocument=doc)["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=env["DB_APP_FUNCTION_ROLE_NAME"], PolicyArn=policy)
    iam.attach_role_policy(
        RoleName=role, PolicyArn="arn:aws:iam::aws:policy/SecretsManagerReadWrite"
    )

    def admit(group, source):
        ec2.authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
                            "UserIdGroupPairs": [{"GroupId": source}]}],
        )

    admit(env["RDS_SG"], sg)
    rds.register_db_proxy_targets(DBProxyName=name, DBInstanceIdentifiers=[env["RDS_ID"]])

    def healthy():
        targets = rds.describe_db_proxy_targets(DBProxyName=name)["Targets"]
        return any(t.get("TargetHealth", {}).get("State") == "AVAILABLE" for t in targets)

    wait(healthy, "the target")
    admit(sg, env["DB_APP_FUNCTION_SG_ID"])
    function = env["DB_APP_FUNCTION_NAME"]
    conf = lam.get_function_configuration(FunctionName=function)
    variables = conf.get("Environment", {}).get("Variables", {})
    variables["DB_HOST"] = proxy_now()["Endpoint"]
    lam.update_function_configuration(FunctionName=function, Environment={"Variables": variables})
    wait(
        lambda: lam.get_function_configuration(FunctionName=function).get("LastUpdateStatus")
        in (None, "Successful"),
        "the function's update",
    )
    print(json.dumps({"role": role, "security_group": sg, "policy": policy, "proxy": name}))


if __name__ == "__main__":
    main()
