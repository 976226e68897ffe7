"""Watches what Lambda roles may `rds-db:connect` as, while a command runs:
each look reads every role's identity policies (attached managed policies'
default versions and inline policies) through the API and evaluates them
with the emulator's own IAM evaluation (localstack/awsrules/policy.py,
`allows` with the caller's `aws:PrincipalArn`), for every DB user given
and every proxy id given or seen since (each look lists the proxies).
Prints one JSON line per look: {role: [[proxy_id, user], ...]} (what the
role may connect as), until the file STOP exists.

    python grants_watch.py STOP --roles R1,R2 --users admin,reader,x [--proxies prx-a,prx-b]

A look is kept only if the role's attachments read the same before and
after its documents were read: otherwise it mixes two moments (a policy
detached while its document was read) and is read again.

Needs AWS_ENDPOINT_URL and the emulator's credentials in the environment.
"""

import argparse
import json
import os
import sys
import time
from urllib.parse import unquote

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "localstack"))

from awsrules.policy import allows  # noqa: E402


def document(raw):
    if isinstance(raw, dict):
        return raw
    return json.loads(raw if raw.lstrip().startswith("{") else unquote(raw))


def attachments(iam, role):
    attached = sorted(
        p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    )
    inline = sorted(iam.list_role_policies(RoleName=role)["PolicyNames"])
    return attached, inline


def documents(iam, role, attached, inline):
    docs = []
    for arn in attached:
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        got = iam.get_policy_version(PolicyArn=arn, VersionId=version)
        docs.append(document(got["PolicyVersion"]["Document"]))
    for name in inline:
        got = iam.get_role_policy(RoleName=role, PolicyName=name)
        docs.append(document(got["PolicyDocument"]))
    return docs


def look(iam, role, arn, resource, proxies, users):
    while True:
        try:
            before = attachments(iam, role)
            docs = documents(iam, role, *before)
            if attachments(iam, role) != before:
                continue
        except iam.exceptions.NoSuchEntityException:
            # A version pruned or a policy detached between two reads.
            continue
        return [
            [p, u]
            for p in proxies
            for u in users
            if allows(docs, "rds-db:connect", resource(p, u), {"aws:PrincipalArn": arn})
        ]


def main():
    args = argparse.ArgumentParser()
    args.add_argument("stop")
    args.add_argument("--roles", required=True)
    args.add_argument("--proxies", default="")
    args.add_argument("--users", required=True)
    a = args.parse_args()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    iam = boto3.client("iam", region_name=region)
    account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    roles = {r: iam.get_role(RoleName=r)["Role"]["Arn"] for r in a.roles.split(",")}
    rds = boto3.client("rds", region_name=region)
    proxies, users = [p for p in a.proxies.split(",") if p], a.users.split(",")

    def resource(proxy, user):
        return f"arn:aws:rds-db:{region}:{account}:dbuser:{proxy}/{user}"

    while True:
        # The stop is read first: the last look is taken after it.
        stopping = os.path.exists(a.stop)
        for p in rds.describe_db_proxies()["DBProxies"]:
            proxy_id = p["DBProxyArn"].rsplit(":", 1)[-1]
            if proxy_id not in proxies:
                proxies.append(proxy_id)
        seen = {r: look(iam, r, arn, resource, proxies, users) for r, arn in roles.items()}
        print(json.dumps(seen), flush=True)
        if stopping:
            return
        time.sleep(0.02)


if __name__ == "__main__":
    main()
