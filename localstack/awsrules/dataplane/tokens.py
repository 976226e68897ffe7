"""IAM database authentication tokens, checked as RDS Proxy checks them.

A token is what `generate_db_auth_token(host, port, user, region)` makes:
a SigV4 presigned request, without its scheme, for `Action=connect&DBUser=
USER` on `HOST:PORT`, service `rds-db`, valid 15 minutes:

    HOST:PORT/?Action=connect&DBUser=USER&X-Amz-Algorithm=AWS4-HMAC-SHA256
      &X-Amz-Credential=AKID/DATE/REGION/rds-db/aws4_request&X-Amz-Date=...
      &X-Amz-Expires=900&X-Amz-SignedHeaders=host[&X-Amz-Security-Token=...]
      &X-Amz-Signature=...

`verify` recomputes the signature for the host and port the client
connected to (so a token made for the DB's host, or another port, does not
verify: the mistake users make most), with the secret key of the access
key it names, looked up among moto's STS sessions (a function's execution
role: the emulator assumes it for every invocation) and IAM users' keys.
It answers who signed: the principal whose policies must then allow
`rds-db:connect`.
"""

import datetime
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MAX_EXPIRES = 900


class TokenRefused(Exception):
    """Why a token does not let its bearer in, in words for the proxy's log."""


@dataclass
class Signer:
    """Who signed a token: `principal_arn` is what policies name
    (aws:PrincipalArn: a role's ARN for its sessions)."""

    principal_arn: str
    account_id: str
    role_arn: str | None
    session_arn: str


def looks_like_token(password: str) -> bool:
    return "X-Amz-Signature=" in password and "Action=connect" in password


def _signer(access_key_id: str, session_token: str | None):
    """(secret key, Signer) of an access key, or None."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account_id, by_partition in list(sts_backends.items()):
        backend = by_partition.get("aws") if hasattr(by_partition, "get") else None
        if backend is None:
            continue
        found = backend.get_assumed_role_from_access_key(access_key_id)
        if found is None:
            continue
        if session_token != found.session_token:
            raise TokenRefused("the token's security token does not match its access key")
        return found.secret_access_key, Signer(
            found.role_arn, found.account_id, found.role_arn, found.arn
        )
    for account_id, by_partition in list(iam_backends.items()):
        backend = by_partition.get("aws") if hasattr(by_partition, "get") else None
        if backend is None:
            continue
        for user in list(backend.users.values()):
            for key in user.access_keys:
                if key.access_key_id == access_key_id and key.status == "Active":
                    return key.secret_access_key, Signer(user.arn, account_id, None, user.arn)
    return None


def verify(token: str, host: str, port: int, user: str, region: str, now=None) -> Signer:
    """Who signed `token` for logging in as `user` at `host:port` in
    `region`; raises TokenRefused saying why not."""
    where, _, query = token.partition("/?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    if params.get("Action") != "connect" or "X-Amz-Signature" not in params:
        raise TokenRefused("the password is not an IAM authentication token")
    if where.lower() != f"{host}:{port}".lower():
        raise TokenRefused(
            f"the token was generated for {where}, not for this proxy endpoint {host}:{port}"
        )
    if params.get("DBUser") != user:
        raise TokenRefused(
            f"the token was generated for user {params.get('DBUser')!r}, not {user!r}"
        )
    try:
        akid, day, scope_region, service, terminal = params["X-Amz-Credential"].split("/")
        signed_at = datetime.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
        expires = int(params["X-Amz-Expires"])
    except (KeyError, ValueError):
        raise TokenRefused("the token is malformed") from None
    if service != "rds-db" or terminal != "aws4_request":
        raise TokenRefused(f"the token is signed for service {service}, not rds-db")
    if scope_region != region:
        raise TokenRefused(f"the token is signed for region {scope_region}, not {region}")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if expires > MAX_EXPIRES or now > signed_at + datetime.timedelta(seconds=expires):
        raise TokenRefused("the token has expired (tokens last 15 minutes)")
    if now < signed_at - datetime.timedelta(minutes=5):
        raise TokenRefused("the token is signed in the future")
    session_token = params.get("X-Amz-Security-Token")
    found = _signer(akid, session_token)
    if found is None:
        raise TokenRefused(
            "The security token included in the request is invalid (unknown access key)"
        )
    secret, signer = found
    if not hmac.compare_digest(
        _signature(params, secret, akid, session_token, host, port, region),
        params["X-Amz-Signature"],
    ):
        raise TokenRefused("the token's signature does not match")
    return signer


def _signature(params, secret, akid, session_token, host, port, region) -> str:
    """The signature botocore would compute for these parameters."""
    auth = SigV4QueryAuth(Credentials(akid, secret, session_token), "rds-db", region, 900)
    unsigned = [(k, v) for k, v in params.items() if k != "X-Amz-Signature"]
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in unsigned)
    request = AWSRequest(method="GET", url=f"https://{host}:{port}/?{query}")
    request.context["timestamp"] = params["X-Amz-Date"]
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)
