"""Write src/limits/model.rs: AWS's constraints on the values a runbook feeds
its calls, read from AWS's published API models (botocore's service JSON).

    localstack/.venv/bin/python localstack/tools/constraints.py --write
    localstack/.venv/bin/python localstack/tools/constraints.py --check

--write regenerates the file; --check (run by the tests,
`bad_input::the_limits_table_is_what_awss_models_say`) exits 1 with a diff
when the checked-in file is not what the models give. Without either, the
table goes to stdout.

It runs in the emulator's venv (made by localstack/install.sh) because that
is where botocore is, pinned by localstack/requirements.txt: a new botocore is
a deliberate bump, then --write, then a review of what changed.

Each entry is one field of one request: the model's own min, max and
pattern of the member's shape where the model has them; where it states the
limits only in the member's documentation ("Constraints: Must be between 0
and 300"), those words, which src/limits/mod.rs turns into numbers by hand
(and its unit tests hold the numbers to the words).
"""

import argparse
import difflib
import gzip
import html
import json
import os
import re
import sys

import botocore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "src", "limits", "model.rs")

# (Rust name, service, API version, "Shape.Member" or "Shape.Member.key",
#  whether the limits are in the documentation's words: True for its
#  "Constraints", or the words that start the sentences that give them)
ENTRIES = [
    # RDS: the proxy, its endpoints, its pool, its secrets, its tags.
    ("DB_PROXY_NAME", "rds", "2014-10-31", "CreateDBProxyRequest.DBProxyName", False),
    ("DB_PROXY_ENDPOINT_NAME", "rds", "2014-10-31",
     "CreateDBProxyEndpointRequest.DBProxyEndpointName", False),
    # CreateDBProxy's member says nothing of its range; DBProxy's does.
    ("IDLE_CLIENT_TIMEOUT", "rds", "2014-10-31", "DBProxy.IdleClientTimeout", True),
    ("MAX_CONNECTIONS_PERCENT", "rds", "2014-10-31",
     "ConnectionPoolConfiguration.MaxConnectionsPercent", True),
    ("MAX_IDLE_CONNECTIONS_PERCENT", "rds", "2014-10-31",
     "ConnectionPoolConfiguration.MaxIdleConnectionsPercent", True),
    ("CONNECTION_BORROW_TIMEOUT", "rds", "2014-10-31",
     "ConnectionPoolConfiguration.ConnectionBorrowTimeout", True),
    ("AUTH_DESCRIPTION", "rds", "2014-10-31", "UserAuthConfig.Description", False),
    ("AUTH_USER_NAME", "rds", "2014-10-31", "UserAuthConfig.UserName", False),
    ("RDS_TAG_KEY", "rds", "2014-10-31", "Tag.Key", True),
    ("RDS_TAG_VALUE", "rds", "2014-10-31", "Tag.Value", True),
    # IAM: the proxy's role, the functions' connect policy, their tags.
    ("IAM_ROLE_NAME", "iam", "2010-05-08", "CreateRoleRequest.RoleName", False),
    ("IAM_POLICY_NAME", "iam", "2010-05-08", "CreatePolicyRequest.PolicyName", False),
    ("IAM_TAG_KEY", "iam", "2010-05-08", "Tag.Key", False),
    ("IAM_TAG_VALUE", "iam", "2010-05-08", "Tag.Value", False),
    ("IAM_TAGS", "iam", "2010-05-08", "CreateRoleRequest.Tags", False),
    # EC2: the proxy's security group and its tags.
    ("EC2_GROUP_NAME", "ec2", "2016-11-15", "CreateSecurityGroupRequest.GroupName", True),
    ("EC2_GROUP_DESCRIPTION", "ec2", "2016-11-15",
     "CreateSecurityGroupRequest.Description", True),
    ("EC2_TAG_KEY", "ec2", "2016-11-15", "Tag.Key", True),
    ("EC2_TAG_VALUE", "ec2", "2016-11-15", "Tag.Value", True),
    # Lambda: the names of the variables the runbook sets.
    ("LAMBDA_VARIABLE_NAME", "lambda", "2015-03-31", "Environment.Variables.key", False),
    # CloudWatch: the proxy's alarms (PutMetricAlarm), their actions and tags.
    ("CLOUDWATCH_ALARM_NAME", "cloudwatch", "2010-08-01", "PutMetricAlarmInput.AlarmName",
     ("The name must contain",)),
    ("CLOUDWATCH_ALARM_DESCRIPTION", "cloudwatch", "2010-08-01",
     "PutMetricAlarmInput.AlarmDescription", False),
    ("CLOUDWATCH_PERIOD", "cloudwatch", "2010-08-01", "PutMetricAlarmInput.Period",
     ("Valid values are", "An alarm's total current evaluation period", "For alarms with a period")),
    ("CLOUDWATCH_EVALUATION_PERIODS", "cloudwatch", "2010-08-01",
     "PutMetricAlarmInput.EvaluationPeriods", False),
    ("CLOUDWATCH_DATAPOINTS_TO_ALARM", "cloudwatch", "2010-08-01",
     "PutMetricAlarmInput.DatapointsToAlarm", False),
    ("CLOUDWATCH_ALARM_ACTIONS", "cloudwatch", "2010-08-01", "PutMetricAlarmInput.AlarmActions",
     False),
    ("CLOUDWATCH_TAGS", "cloudwatch", "2010-08-01", "PutMetricAlarmInput.Tags",
     ("You can associate as many as",)),
    ("CLOUDWATCH_TAG_KEY", "cloudwatch", "2010-08-01", "Tag.Key", False),
    ("CLOUDWATCH_TAG_VALUE", "cloudwatch", "2010-08-01", "Tag.Value", False),
]


def model(service, version):
    base = os.path.join(os.path.dirname(botocore.__file__), "data", service, version)
    path = os.path.join(base, "service-2.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    with gzip.open(path + ".gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def words(doc, starts=None):
    """The documentation as plain text, from its "Constraints" on if it has
    some; with `starts`, only its sentences (up to a full stop, or the next
    of them) that begin with one of those words."""
    # Paragraphs and list items part words; inline tags (code, i) do not.
    text = re.sub(r"</?(p|li|ul|ol|br)\b[^>]*>", " ", doc or "")
    text = re.sub(r"<[^>]+>", "", text)
    text = " ".join(html.unescape(text).split())
    if starts:
        kept = []
        for start in starts:
            at = text.find(start)
            if at < 0:
                raise SystemExit(f"the model's words no longer say {start!r}")
            end = text.find(". ", at)
            kept.append(text[at:] if end < 0 else text[at:end + 1])
        return " ".join(kept)
    at = text.find("Constraints")
    return text[at:] if at >= 0 else text


def entry(models, name, service, version, path, in_words):
    shapes = models[(service, version)]["shapes"]
    structure, member, *rest = path.split(".")
    ref = shapes[structure]["members"][member]
    target = shapes[ref["shape"]]
    if rest == ["key"]:
        target = shapes[target["key"]["shape"]]
    return {
        "name": name,
        "model": f"{service} {version} {path}",
        "min": target.get("min"),
        "max": target.get("max"),
        "pattern": target.get("pattern"),
        "words": (words(ref.get("documentation"), None if in_words is True else in_words)
                  if in_words else ""),
    }


def rust_str(s):
    """A Rust raw string literal holding s as is."""
    hashes = 0
    while '"' + "#" * hashes in s:
        hashes += 1
    return "r" + "#" * hashes + '"' + s + '"' + "#" * hashes


def opt(v, f=str):
    return "None" if v is None else f"Some({f(v)})"


def render():
    models = {}
    for _, service, version, _, _ in ENTRIES:
        if (service, version) not in models:
            models[(service, version)] = model(service, version)
    out = [
        "//! AWS's constraints on the values a runbook feeds its calls, as AWS's API",
        f"//! models state them (botocore {botocore.__version__}'s service JSON).",
        "//!",
        "//! GENERATED by localstack/tools/constraints.py: do not edit. To regenerate",
        "//! (after `localstack/install.sh`, and after a botocore bump in",
        "//! localstack/requirements.txt):",
        "//! `localstack/.venv/bin/python localstack/tools/constraints.py --write`.",
        "//! The tests run it with `--check`, which fails when this file differs.",
        "",
        "use super::Shape;",
    ]
    for e in ENTRIES:
        s = entry(models, *e)
        out += [
            "",
            f"pub const {s['name']}: Shape = Shape {{",
            f"    model: {rust_str(s['model'])},",
            f"    min: {opt(s['min'])},",
            f"    max: {opt(s['max'])},",
            f"    pattern: {opt(s['pattern'], rust_str)},",
            f"    words: {rust_str(s['words'])},",
            "};",
        ]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help=f"write {os.path.relpath(OUT, ROOT)}")
    g.add_argument("--check", action="store_true", help="fail if the file differs")
    args = p.parse_args()
    text = render()
    if args.write:
        with open(OUT, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(OUT, ROOT)}", file=sys.stderr)
    elif args.check:
        try:
            with open(OUT, encoding="utf-8") as f:
                have = f.read()
        except FileNotFoundError:
            have = ""
        if have != text:
            sys.stderr.writelines(
                difflib.unified_diff(
                    have.splitlines(True), text.splitlines(True),
                    "src/limits/model.rs (checked in)", "from the models",
                )
            )
            print(
                "\nsrc/limits/model.rs is not what AWS's models give: regenerate it with "
                "`localstack/.venv/bin/python localstack/tools/constraints.py --write` "
                "and review the limits in src/limits/mod.rs",
                file=sys.stderr,
            )
            sys.exit(1)
        print("src/limits/model.rs matches the models", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
