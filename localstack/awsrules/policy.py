"""Just enough IAM policy evaluation to say whether a role may do one action
on one resource: Allow and Deny statements, Action / NotAction and Resource /
NotResource with `*` and `?` wildcards; conditions are not evaluated (a
statement with a condition counts as if it held)."""

import json
import re
from urllib.parse import unquote

from moto.iam.models import iam_backends


def _as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _pattern(glob: str, case: bool) -> re.Pattern:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", 0 if case else re.IGNORECASE)


def _matches(globs, value: str, case: bool) -> bool:
    return any(_pattern(g, case).match(value) for g in _as_list(globs))


def _document(raw):
    if isinstance(raw, dict):
        return raw
    text = raw if raw.lstrip().startswith("{") else unquote(raw)
    return json.loads(text)


def _statement_covers(st: dict, action: str, resource: str) -> bool:
    if "Action" in st and not _matches(st["Action"], action, case=False):
        return False
    if "NotAction" in st and _matches(st["NotAction"], action, case=False):
        return False
    if "Resource" in st and not _matches(st["Resource"], resource, case=True):
        return False
    if "NotResource" in st and _matches(st["NotResource"], resource, case=True):
        return False
    return True


def allows(documents, action: str, resource: str) -> bool:
    allowed = False
    for doc in documents:
        for st in _as_list(doc.get("Statement")):
            if not _statement_covers(st, action, resource):
                continue
            if st.get("Effect") == "Deny":
                return False
            if st.get("Effect") == "Allow":
                allowed = True
    return allowed


def allows_some(documents, action: str, prefix: str) -> bool:
    """Whether `action` is allowed on some resource whose ARN starts with
    `prefix` (a DB's `dbuser:RESOURCE_ID/` for any user): a statement whose
    resource is under the prefix, or a pattern that reaches into it."""
    for doc in documents:
        for st in _as_list(doc.get("Statement")):
            if st.get("Effect") != "Allow" or "Resource" not in st:
                continue
            if "Action" in st and not _matches(st["Action"], action, case=False):
                continue
            for r in _as_list(st["Resource"]):
                under = r.startswith(prefix) and len(r) > len(prefix)
                if under or _pattern(r, case=True).match(prefix + "any-user"):
                    return True
    return False


def role_by_arn(account_id: str, role_arn: str):
    backend = iam_backends[account_id]["aws"]
    for role in backend.roles.values():
        if role.arn == role_arn:
            return role
    return None


def role_documents(role) -> list:
    docs = [_document(d) for d in role.policies.values()]
    for managed in role.managed_policies.values():
        for version in managed.versions:
            if version.is_default:
                docs.append(_document(version.document))
    return docs


def trusts_service(role, service: str) -> bool:
    doc = _document(role.assume_role_policy_document)
    for st in _as_list(doc.get("Statement")):
        if st.get("Effect") != "Allow":
            continue
        if not _matches(st.get("Action", []), "sts:AssumeRole", case=False):
            continue
        principal = st.get("Principal", {})
        if principal == "*" or service in _as_list(principal.get("Service")):
            return True
    return False
