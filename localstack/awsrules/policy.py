"""Just enough IAM policy evaluation to say whether a role may do one action
on one resource: Allow and Deny statements, Action / NotAction and Resource /
NotResource with `*` and `?` wildcards, and the condition operators a
runbook writes (String*, Arn*, Bool, Null, with `IfExists`) over the keys
of a request context the caller gives (`aws:PrincipalArn`, ...).

An explicit Deny wins; without an Allow the answer is no. A condition on a
key the context does not hold is false, or true for the negated operators
(StringNotEquals, ArnNotLike, ...), as IAM evaluates it; an operator this
module does not know makes its statement not apply (an Allow then grants
nothing, a Deny denies nothing): said in localstack/README.md.

IAM is eventually consistent: `documents_as_of` answers with a role's
policies as they were `iam_propagation` seconds ago (settings.py), from
snapshots taken after every IAM write (`install`), for roles and users."""

import json
import re
import threading
from urllib.parse import unquote

from moto.iam.models import IAMBackend, iam_backends

from . import settings


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


def _arn_like(pattern: str, value: str) -> bool:
    # ARNs compare field by field; a wildcard stays within its field.
    p, v = pattern.split(":", 5), value.split(":", 5)
    return len(p) == len(v) and all(_pattern(a, case=True).match(b) for a, b in zip(p, v))


# operator (without IfExists) -> (test of one policy value against the
# request's value, negated?)
_OPERATORS = {
    "StringEquals": (lambda want, got: want == got, False),
    "StringNotEquals": (lambda want, got: want == got, True),
    "StringEqualsIgnoreCase": (lambda want, got: want.lower() == got.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda want, got: want.lower() == got.lower(), True),
    "StringLike": (lambda want, got: bool(_pattern(want, case=True).match(got)), False),
    "StringNotLike": (lambda want, got: bool(_pattern(want, case=True).match(got)), True),
    "ArnEquals": (_arn_like, False),
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
    "Bool": (lambda want, got: str(want).lower() == str(got).lower(), False),
}


def _condition_holds(operator: str, block: dict, context: dict) -> bool:
    if_exists = operator.endswith("IfExists")
    name = operator[: -len("IfExists")] if if_exists else operator
    for key, wanted in block.items():
        got = next((v for k, v in context.items() if k.lower() == key.lower()), None)
        if name == "Null":
            # {"Null": {"key": "true"}}: the key is absent.
            if (got is None) != (str(wanted).lower() == "true"):
                return False
            continue
        if name not in _OPERATORS:
            raise KeyError(operator)
        test, negated = _OPERATORS[name]
        if got is None:
            if if_exists or negated:
                continue
            return False
        hit = any(test(str(w), str(g)) for w in _as_list(wanted) for g in _as_list(got))
        if hit == negated:
            return False
    return True


def _conditions_hold(st: dict, context: dict) -> bool:
    try:
        return all(
            _condition_holds(op, block, context) for op, block in (st.get("Condition") or {}).items()
        )
    except KeyError:
        return False


def _statement_covers(st: dict, action: str, resource: str, context: dict) -> bool:
    if "Action" in st and not _matches(st["Action"], action, case=False):
        return False
    if "NotAction" in st and _matches(st["NotAction"], action, case=False):
        return False
    if "Resource" in st and not _matches(st["Resource"], resource, case=True):
        return False
    if "NotResource" in st and _matches(st["NotResource"], resource, case=True):
        return False
    return _conditions_hold(st, context)


def allows(documents, action: str, resource: str, context: dict | None = None) -> bool:
    """Whether `documents` (a principal's identity policies) allow `action`
    on `resource` in a request with the condition keys of `context`."""
    context = context or {}
    allowed = False
    for doc in documents:
        for st in _as_list(doc.get("Statement")):
            if not _statement_covers(st, action, resource, context):
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


def _managed_documents(policies) -> list:
    return [
        _document(version.document)
        for managed in policies
        for version in managed.versions
        if version.is_default
    ]


def user_documents(backend, user) -> list:
    """An IAM user's identity policies: its own and its groups'."""
    docs = [_document(d) for d in user.policies.values()]
    docs += _managed_documents(user.managed_policies.values())
    for group in backend.groups.values():
        if user in group.users:
            docs += [_document(d) for d in group.policies.values()]
            docs += _managed_documents(group.managed_policies.values())
    return docs


def principal_documents(account_id: str, arn: str) -> list:
    """The identity policies of the role or user `arn` (none if unknown)."""
    backend = iam_backends[account_id]["aws"]
    for role in list(backend.roles.values()):
        if role.arn == arn:
            return role_documents(role)
    for user in list(backend.users.values()):
        if user.arn == arn:
            return user_documents(backend, user)
    return []


# --- propagation -------------------------------------------------------------

_history_lock = threading.Lock()
# account id -> [(when, {role arn: documents})], oldest first; the first
# entry (when None) is the account before the first write seen.
_history: dict = {}


def _snapshot(account_id: str) -> dict:
    backend = iam_backends[account_id]["aws"]
    state = {role.arn: role_documents(role) for role in list(backend.roles.values())}
    for user in list(backend.users.values()):
        state[user.arn] = user_documents(backend, user)
    return state


def documents_as_of(account_id: str, arn: str) -> list:
    """The identity policies of the role or user `arn` as callers see them
    now: as they were `iam_propagation` seconds ago. A principal made
    since has none yet."""
    delay = settings.pace("iam_propagation")
    if delay <= 0:
        return principal_documents(account_id, arn)
    cutoff = settings.now() - delay
    with _history_lock:
        history = _history.get(account_id)
        if not history:
            return principal_documents(account_id, arn)
        seen = [state for when, state in history if when is None or when <= cutoff]
        # The delay raised since the oldest state kept: the oldest is the
        # nearest to what was in force then.
        state = seen[-1] if seen else history[0][1]
        return list(state.get(arn, []))


def _record(account_id: str, before: dict | None) -> None:
    now = settings.now()
    cutoff = now - settings.pace("iam_propagation")
    with _history_lock:
        history = _history.setdefault(account_id, [])
        if not history and before is not None:
            history.append((None, before))
        history.append((now, _snapshot(account_id)))
        # Keep the last state older than any reader can ask for, and after.
        old = [i for i, (when, _) in enumerate(history) if when is None or when <= cutoff]
        if len(old) > 1:
            del history[: old[-1]]


# The IAM writes that change what a role's identity policies allow.
_WRITES = (
    "create_role",
    "delete_role",
    "put_role_policy",
    "delete_role_policy",
    "attach_role_policy",
    "detach_role_policy",
    "create_policy_version",
    "delete_policy_version",
    "set_default_policy_version",
    "delete_policy",
    "create_user",
    "delete_user",
    "put_user_policy",
    "delete_user_policy",
    "attach_user_policy",
    "detach_user_policy",
    "add_user_to_group",
    "remove_user_from_group",
    "put_group_policy",
    "delete_group_policy",
    "attach_group_policy",
    "detach_group_policy",
)


def reset() -> None:
    with _history_lock:
        _history.clear()


def install() -> None:
    for name in _WRITES:
        original = getattr(IAMBackend, name)

        def write(self, *args, __original=original, **kwargs):
            before = None
            with _history_lock:
                if self.account_id not in _history:
                    before = _snapshot(self.account_id)
            answer = __original(self, *args, **kwargs)
            _record(self.account_id, before)
            return answer

        setattr(IAMBackend, name, write)
