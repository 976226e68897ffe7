"""RDS Proxy as AWS runs it, on top of moto's RDS models.

What plain moto 5.2.5 does differently, and this module changes:
- a proxy is `available` on its create call; here it is `creating`, then
  `modifying` after ModifyDBProxy and `deleting` after DeleteDBProxy, for
  the times in settings, and then gone (its network interfaces linger for
  `proxy_eni_linger` more, see ec2.py);
- calls on an unknown proxy are an HTTP 500; here DBProxyNotFoundFault (404),
  and the other faults AWS gives (target and target group not found, a proxy
  that is not available, a DB that does not exist, a target registered twice);
- a target is AVAILABLE whatever the wiring; here it is REGISTERING for
  `target_registering` and then healthy only if the DB's security groups admit
  the proxy's on the DB's port and the proxy's role can log in (read every
  secret of its `Auth`, or, with `DefaultAuthScheme` IAM_AUTH, connect with
  rds-db:connect to an IAM-enabled DB); an Aurora cluster is listed as AWS
  lists it (the cluster without health, then each instance with its role);
- ModifyDBProxy and the four DB proxy endpoint calls do not exist; nor do
  `DefaultAuthScheme`, `ClientPasswordAuthType`, the network types, or AWS's
  leaving out subnets in Availability Zones RDS Proxy does not support.
"""

import json
import random
import string
from types import SimpleNamespace

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.rds.exceptions import DBProxyNotFoundFault, RDSClientError
from moto.rds.models import DBInstance, DBProxy, DBProxyTargetGroup, MasterUserSecret, RDSBackend
from moto.rds.responses import RDSResponse
from moto.secretsmanager.models import secretsmanager_backends

from . import policy, settings
from .ec2 import group_admits

PASSWORD_AUTH_TYPES = {
    "MYSQL": ("MYSQL_NATIVE_PASSWORD", "MYSQL_CACHING_SHA2_PASSWORD"),
    "POSTGRESQL": ("POSTGRES_SCRAM_SHA_256", "POSTGRES_MD5"),
    "SQLSERVER": ("SQL_SERVER_AUTHENTICATION",),
}
ENGINE_FAMILIES = {
    "mysql": "MYSQL",
    "mariadb": "MYSQL",
    "aurora-mysql": "MYSQL",
    "postgres": "POSTGRESQL",
    "aurora-postgresql": "POSTGRESQL",
}
ENDPOINTS_PER_PROXY = 20


def fault(code: str, message: str) -> RDSClientError:
    return RDSClientError(code, message)


# --- lifecycle -------------------------------------------------------------


def _phase_status(obj) -> str:
    phase = getattr(obj, "_awsr_phase", None)
    if phase is None:
        return "available"
    name, end = phase
    if name == "deleting" or settings.now() < end:
        return name
    obj._awsr_phase = None
    return "available"


def _start(obj, status: str, pace: str) -> None:
    obj._awsr_phase = (status, settings.until(pace))


def _gone(obj) -> bool:
    phase = getattr(obj, "_awsr_phase", None)
    return phase is not None and phase[0] == "deleting" and settings.now() >= phase[1]


# moto sets `status` in DBProxy.__init__; the property ignores that and
# answers from the phase.
DBProxy.status = property(_phase_status, lambda self, value: None)


def endpoints(backend: RDSBackend) -> dict:
    if not hasattr(backend, "_awsr_endpoints"):
        backend._awsr_endpoints = {}
    return backend._awsr_endpoints


def lingering_enis(backend: RDSBackend) -> list:
    """(security group ids, until, owner, subnet ids) of network interfaces
    that outlive what used them (the owner: see `eni_owner`)."""
    if not hasattr(backend, "_awsr_enis"):
        backend._awsr_enis = []
    return backend._awsr_enis


def eni_owner(obj) -> str:
    """A name for what a proxy's (or an endpoint's) network interfaces
    belong to, unique for its life and after (a new proxy of the same name
    has interfaces of its own)."""
    if not hasattr(obj, "_awsr_eni_owner"):
        obj._awsr_eni_owner = "".join(random.choices(string.ascii_lowercase, k=12))
    return obj._awsr_eni_owner


def _linger(backend: RDSBackend, obj) -> None:
    until = settings.until("proxy_eni_linger")
    if until > settings.now():
        lingering_enis(backend).append(
            (set(obj.vpc_security_group_ids), until, eni_owner(obj), list(obj.vpc_subnet_ids))
        )


def eni_owners(backend: RDSBackend) -> dict:
    """What has network interfaces now: owner -> (subnet ids, group ids),
    for every proxy and endpoint, and those gone whose interfaces linger."""
    sweep(backend)
    owners = {}
    for obj in list(backend.db_proxies.values()) + list(endpoints(backend).values()):
        owners[eni_owner(obj)] = (list(obj.vpc_subnet_ids), list(obj.vpc_security_group_ids))
    for groups, _, owner, subnets in lingering_enis(backend):
        owners.setdefault(owner, (subnets, sorted(groups)))
    return owners


def sweep(backend: RDSBackend) -> None:
    """Removes what has finished deleting, and network interfaces whose time
    is over."""
    for name, ep in list(endpoints(backend).items()):
        if _gone(ep):
            del endpoints(backend)[name]
            _linger(backend, ep)
    for name, proxy in list(backend.db_proxies.items()):
        if _gone(proxy):
            del backend.db_proxies[name]
            _linger(backend, proxy)
    now = settings.now()
    lingering_enis(backend)[:] = [e for e in lingering_enis(backend) if e[1] > now]


def _proxy(backend: RDSBackend, name: str) -> DBProxy:
    sweep(backend)
    proxy = backend.db_proxies.get(name)
    if proxy is None:
        raise DBProxyNotFoundFault(name)
    return proxy


def _available(proxy: DBProxy) -> DBProxy:
    if proxy.status != "available":
        raise fault(
            "InvalidDBProxyStateFault",
            f"DB proxy {proxy.db_proxy_name} is in state {proxy.status}; "
            "it must be available for this operation.",
        )
    return proxy


def _target_group(proxy: DBProxy, name: str | None) -> DBProxyTargetGroup:
    group = proxy.proxy_target_groups.get(name or "default")
    if group is None:
        raise fault(
            "DBProxyTargetGroupNotFoundFault",
            f"The specified target group {name} doesn't exist for proxy {proxy.db_proxy_name}.",
        )
    return group


# --- auth entries, network types, subnets ----------------------------------


def _auth_entries(engine_family: str, auth, default_scheme: str) -> list:
    if default_scheme not in ("NONE", "IAM_AUTH"):
        raise fault(
            "InvalidParameterValue",
            f"DefaultAuthScheme {default_scheme} is not valid; use NONE or IAM_AUTH.",
        )
    if not auth and default_scheme != "IAM_AUTH":
        raise fault(
            "InvalidParameterValue",
            "Auth must name at least one secret unless DefaultAuthScheme is IAM_AUTH.",
        )
    allowed = PASSWORD_AUTH_TYPES.get(engine_family, ())
    entries = []
    for given in auth or []:
        entry = {"AuthScheme": "SECRETS", "IAMAuth": "DISABLED", **dict(given)}
        entry.setdefault("ClientPasswordAuthType", allowed[0] if allowed else None)
        if entry["IAMAuth"] not in ("DISABLED", "REQUIRED", "ENABLED"):
            raise fault("InvalidParameterValue", f"IAMAuth {entry['IAMAuth']} is not valid.")
        if entry["IAMAuth"] == "ENABLED" and engine_family != "SQLSERVER":
            raise fault(
                "InvalidParameterValue",
                "IAMAuth ENABLED is supported only for the SQLSERVER engine family.",
            )
        if entry["ClientPasswordAuthType"] not in allowed:
            raise fault(
                "InvalidParameterValue",
                f"ClientPasswordAuthType {entry['ClientPasswordAuthType']} is not valid "
                f"for engine family {engine_family}; use one of {', '.join(allowed)}.",
            )
        entries.append({k: v for k, v in entry.items() if v is not None})
    return entries


def _network_type(value, allowed, field: str) -> str:
    value = value or "IPV4"
    if value not in allowed:
        raise fault(
            "InvalidParameterValue", f"{field} {value} is not valid; use {', '.join(allowed)}."
        )
    return value


def _supported_subnets(backend: RDSBackend, subnet_ids) -> list:
    """AWS leaves out, without a word, subnets in an Availability Zone that
    RDS Proxy does not support."""
    unsupported = set(settings.unsupported_azs())
    if not unsupported:
        return list(subnet_ids)
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    kept = [
        s.id
        for s in ec2.describe_subnets(subnet_ids=subnet_ids)
        if s.availability_zone not in unsupported
    ]
    if not kept:
        raise fault(
            "InvalidSubnet",
            "None of the subnets is in an Availability Zone that RDS Proxy supports.",
        )
    return [s for s in subnet_ids if s in kept]


def _check_dual_stack(backend: RDSBackend, subnet_ids, network_type: str) -> None:
    """An IPv6 or dual-stack endpoint needs subnets with an IPv6 CIDR block."""
    if network_type == "IPV4":
        return
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    ipv4_only = [
        s.id for s in ec2.describe_subnets(subnet_ids=subnet_ids) if not s.ipv6_cidr_block_associations
    ]
    if ipv4_only:
        raise fault(
            "InvalidSubnet",
            f"EndpointNetworkType {network_type} needs dual-stack subnets (with an IPv6 CIDR "
            f"block); these have none: {', '.join(ipv4_only)}.",
        )


# --- targets and their health ------------------------------------------------


def _db_of(backend: RDSBackend, reg):
    return (backend.clusters if reg.kind == "cluster" else backend.databases).get(reg.rds_id)


def read_secret(backend: RDSBackend, proxy: DBProxy, arn, check_role=True):
    """(the secret's {username, password, ...}, None) as the proxy reads it
    with its role, or (None, why not) in the words of the proxy's log."""
    if not arn:
        return None, "Proxy does not have any registered credentials."
    if check_role:
        role = policy.role_by_arn(backend.account_id, proxy.role_arn)
        if role is None:
            return None, f"The proxy's IAM role {proxy.role_arn} does not exist."
        if not policy.trusts_service(role, "rds.amazonaws.com"):
            return None, f"The proxy's IAM role {role.name} does not trust rds.amazonaws.com."
        context = {"aws:PrincipalArn": role.arn, "aws:PrincipalAccount": backend.account_id}
        if not policy.allows(
            policy.role_documents(role), "secretsmanager:GetSecretValue", arn, context
        ):
            return None, (
                f"Credentials couldn't be retrieved: the proxy's IAM role {role.name} is not "
                f"authorized to read the AWS Secrets Manager secret {arn} "
                "(secretsmanager:GetSecretValue)."
            )
    secrets = secretsmanager_backends[backend.account_id][backend.region_name]
    try:
        value = secrets.get_secret_value(secret_id=arn, version_id=None, version_stage=None)
    except Exception:
        return None, f"Credentials couldn't be retrieved: secret {arn} does not exist."
    if check_role:
        why = _may_decrypt(backend, role, secrets, arn)
        if why:
            return None, why
    try:
        fields = json.loads(value.get("SecretString") or "{}")
    except ValueError:
        fields = {}
    if not (isinstance(fields, dict) and fields.get("username") and fields.get("password")):
        return None, f"Secret {arn} must be JSON with username and password."
    return fields, None


def _may_decrypt(backend: RDSBackend, role, secrets, arn) -> str | None:
    """Why the role cannot decrypt the secret's customer-managed KMS key
    (through Secrets Manager, as the proxy reads it), or None."""
    from moto.kms.models import kms_backends

    key_id = getattr(secrets.secrets.get(arn), "kms_key_id", None)
    if not key_id or key_id == secrets.DEFAULT_KMS_KEY_ALIAS:
        return None
    try:
        key = kms_backends[backend.account_id][backend.region_name].describe_key(key_id)
    except Exception:
        return f"Credentials couldn't be retrieved: the KMS key {key_id} of secret {arn} does not exist."
    if getattr(key, "key_manager", "CUSTOMER") == "AWS":
        return None
    context = {
        "aws:PrincipalArn": role.arn,
        "aws:PrincipalAccount": backend.account_id,
        "kms:ViaService": f"secretsmanager.{backend.region_name}.amazonaws.com",
    }
    if policy.allows(policy.role_documents(role), "kms:Decrypt", key.arn, context):
        return None
    return (
        f"Credentials couldn't be retrieved: the proxy's IAM role {role.name} may not decrypt "
        f"the secret's customer-managed KMS key {key.arn} (kms:Decrypt)."
    )


def _can_log_in(backend: RDSBackend, proxy: DBProxy, db) -> str | None:
    """Why the proxy's role cannot log in to `db`, or None: the rules of
    AWS's target health, and a real login to the DB's real server with
    each secret (dataplane/databases.py)."""
    role = policy.role_by_arn(backend.account_id, proxy.role_arn)
    if role is None:
        return f"The proxy's IAM role {proxy.role_arn} does not exist."
    if not policy.trusts_service(role, "rds.amazonaws.com"):
        return f"The proxy's IAM role {role.name} does not trust rds.amazonaws.com."
    documents = policy.role_documents(role)
    if getattr(proxy, "default_auth_scheme", "NONE") == "IAM_AUTH":
        if not db.iam_database_authentication_enabled:
            return "IAM database authentication is off for the DB, so the proxy cannot connect with IAM."
        resource_id = getattr(db, "db_cluster_resource_id", None) or db.dbi_resource_id
        prefix = f"arn:aws:rds-db:{backend.region_name}:{backend.account_id}:dbuser:{resource_id}/"
        context = {"aws:PrincipalArn": role.arn, "aws:PrincipalAccount": backend.account_id}
        # The proxy logs in as the user each client logs in as: the users
        # its `Auth` names must each be allowed; with none named, which the
        # clients use is not known here, so some user must be.
        users = [a["UserName"] for a in proxy.auth if a.get("UserName")]
        for user in users:
            if not policy.allows(documents, "rds-db:connect", prefix + user, context):
                return f"The proxy's IAM role {role.name} lacks rds-db:connect on {prefix}{user}."
        if not users and not policy.allows_some(documents, "rds-db:connect", prefix):
            return f"The proxy's IAM role {role.name} lacks rds-db:connect on {prefix}USER."
        return None
    with_secret = [a for a in proxy.auth if a.get("SecretArn")]
    if not with_secret:
        return "Proxy does not have any registered credentials."
    for entry in with_secret:
        fields, why = read_secret(backend, proxy, entry["SecretArn"])
        if why:
            return why
        from .dataplane import databases

        why = databases.check_login(backend, db, fields["username"], fields["password"])
        if why:
            return why
    return None


def target_problem(backend: RDSBackend, proxy: DBProxy, db) -> tuple | None:
    """(Reason, Description) of what keeps the proxy from its target `db`
    (registered: an instance, or a cluster), or None. The same rules decide
    the target's health and the proxy's every login (dataplane/listener.py)."""
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    if not group_admits(
        ec2, db.vpc_security_group_ids, proxy.vpc_security_group_ids, int(db.port)
    ):
        return (
            "CONNECTION_FAILED",
            f"Database host couldn't be reached: its security groups do not admit the proxy's "
            f"on port {db.port}.",
        )
    if getattr(proxy, "target_connection_network_type", "IPV4") == "IPV6" and (
        getattr(db, "network_type", None) or "IPV4"
    ) != "DUAL":
        return (
            "CONNECTION_FAILED",
            "TargetConnectionNetworkType IPV6 needs a dual-stack DB (NetworkType DUAL); this "
            "one is IPv4 only.",
        )
    why = _can_log_in(backend, proxy, db)
    return ("AUTH_FAILURE", why) if why else None


def _health(backend: RDSBackend, proxy: DBProxy, reg, db) -> dict:
    if settings.now() < reg.until:
        return {"State": "REGISTERING"}
    if db is None:
        return {
            "State": "UNAVAILABLE",
            "Reason": "UNREACHABLE",
            "Description": "The DB no longer exists.",
        }
    # What was registered (the cluster, for a cluster's instance) holds the
    # security groups and the IAM setting.
    problem = target_problem(backend, proxy, _db_of(backend, reg) or db)
    if problem:
        return {"State": "UNAVAILABLE", "Reason": problem[0], "Description": problem[1]}
    return {"State": "AVAILABLE"}


def _instance_view(backend, proxy, reg, instance, cluster=None) -> dict:
    view = {
        "TargetArn": instance.arn,
        "Endpoint": instance.address,
        "RdsResourceId": instance.db_instance_identifier.lower(),
        "Port": int(instance.port),
        "Type": "RDS_INSTANCE",
        "TargetHealth": _health(backend, proxy, reg, instance),
    }
    if cluster is not None:
        view["TrackedClusterId"] = cluster.db_cluster_identifier.lower()
        view["Role"] = "READ_WRITE" if instance.is_cluster_writer else "READ_ONLY"
    return view


def target_views(backend: RDSBackend, proxy: DBProxy, group: DBProxyTargetGroup) -> list:
    views = []
    for reg in group.targets:
        db = _db_of(backend, reg)
        if reg.kind == "instance":
            if db is None:
                views.append(
                    {
                        "RdsResourceId": reg.rds_id,
                        "Type": "RDS_INSTANCE",
                        "TargetHealth": _health(backend, proxy, reg, None),
                    }
                )
            else:
                views.append(_instance_view(backend, proxy, reg, db))
            continue
        # AWS keeps identifiers in lower case (moto keeps a cluster's as given).
        views.append(
            {
                "TargetArn": db.arn if db else None,
                "Endpoint": db.endpoint if db else None,
                "TrackedClusterId": reg.rds_id.lower(),
                "RdsResourceId": reg.rds_id.lower(),
                "Port": int(db.port) if db else None,
                "Type": "TRACKED_CLUSTER",
            }
        )
        for member in db.members if db else []:
            views.append(_instance_view(backend, proxy, reg, member, cluster=db))
    return [{k: v for k, v in view.items() if v is not None} for view in views]


# --- the backend's calls ---------------------------------------------------

_original = SimpleNamespace(
    create_db_proxy=RDSBackend.create_db_proxy,
    describe_db_proxies=RDSBackend.describe_db_proxies,
    modify_db_proxy_target_group=RDSBackend.modify_db_proxy_target_group,
)


def create_db_proxy(self, **kwargs) -> DBProxy:
    extra = kwargs.pop("extra", {})
    engine_family = kwargs["engine_family"]
    default_scheme = extra.get("DefaultAuthScheme") or "NONE"
    kwargs["auth"] = _auth_entries(engine_family, kwargs.get("auth"), default_scheme)
    kwargs["vpc_subnet_ids"] = _supported_subnets(self, kwargs["vpc_subnet_ids"])
    endpoint_network = _network_type(
        extra.get("EndpointNetworkType"), ("IPV4", "IPV6", "DUAL"), "EndpointNetworkType"
    )
    target_network = _network_type(
        extra.get("TargetConnectionNetworkType"), ("IPV4", "IPV6"), "TargetConnectionNetworkType"
    )
    _check_dual_stack(self, kwargs["vpc_subnet_ids"], endpoint_network)
    sweep(self)
    proxy = _original.create_db_proxy(self, **kwargs)
    proxy.default_auth_scheme = default_scheme
    proxy.endpoint_network_type = endpoint_network
    proxy.target_connection_network_type = target_network
    for group in proxy.proxy_target_groups.values():
        group.targets = []
    _start(proxy, "creating", "proxy_creating")
    return proxy


def describe_db_proxies(self, db_proxy_name=None, filters=None):
    sweep(self)
    return _original.describe_db_proxies(self, db_proxy_name, filters)


def modify_db_proxy(self, name: str, params: dict) -> DBProxy:
    proxy = _available(_proxy(self, name))
    new_name = params.get("NewDBProxyName")
    if new_name and new_name != name:
        if new_name in self.db_proxies:
            raise fault(
                "DBProxyAlreadyExistsFault",
                f"Cannot create the DBProxy because a DBProxy with the identifier {new_name} already exists.",
            )
        self._validate_db_identifier(new_name)
    scheme = params.get("DefaultAuthScheme", getattr(proxy, "default_auth_scheme", "NONE"))
    auth = params.get("Auth")
    if auth is not None or "DefaultAuthScheme" in params:
        proxy.auth = _auth_entries(
            proxy.engine_family, auth if auth is not None else proxy.auth, scheme
        )
        proxy.default_auth_scheme = scheme
    if "RequireTLS" in params:
        proxy.require_tls = params["RequireTLS"]
    if "IdleClientTimeout" in params:
        proxy.idle_client_timeout = min(max(int(params["IdleClientTimeout"]), 1), 28800)
    if "DebugLogging" in params:
        proxy.debug_logging = params["DebugLogging"]
    if "RoleArn" in params:
        proxy.role_arn = params["RoleArn"]
    if "SecurityGroups" in params:
        proxy.vpc_security_group_ids = list(params["SecurityGroups"])
    if new_name and new_name != name:
        self.db_proxies[new_name] = self.db_proxies.pop(name)
        proxy.db_proxy_name = new_name
        for group in proxy.proxy_target_groups.values():
            group.db_proxy_name = new_name
        for ep in endpoints(self).values():
            if ep.db_proxy_name == name:
                ep.db_proxy_name = new_name
    proxy.updated_date = utcnow()
    _start(proxy, "modifying", "proxy_modifying")
    return proxy


def delete_db_proxy(self, proxy_name: str) -> DBProxy:
    proxy = _proxy(self, proxy_name)
    if proxy.status == "deleting":
        raise fault("InvalidDBProxyStateFault", f"DB proxy {proxy_name} is already being deleted.")
    for ep in endpoints(self).values():
        if ep.db_proxy_name == proxy_name and ep.status != "deleting":
            _start(ep, "deleting", "proxy_deleting")
    _start(proxy, "deleting", "proxy_deleting")
    sweep(self)
    return proxy


def register_db_proxy_targets(
    self, db_proxy_name, target_group_name, db_cluster_identifiers, db_instance_identifiers
):
    proxy = _available(_proxy(self, db_proxy_name))
    group = _target_group(proxy, target_group_name)
    wanted = [("cluster", c) for c in db_cluster_identifiers or []]
    wanted += [("instance", i) for i in db_instance_identifiers or []]
    for kind, rds_id in wanted:
        if kind == "instance" and rds_id not in self.databases:
            raise fault("DBInstanceNotFound", f"DBInstance {rds_id} not found.")
        if kind == "cluster" and rds_id not in self.clusters:
            raise fault("DBClusterNotFoundFault", f"DBCluster {rds_id} not found.")
        if any(t.rds_id.lower() == rds_id.lower() for t in group.targets):
            raise fault(
                "DBProxyTargetAlreadyRegisteredFault",
                f"The target {rds_id} is already registered with proxy {db_proxy_name}.",
            )
        if group.targets or len(wanted) > 1:
            raise fault(
                "InvalidParameterCombination",
                "A target group can have only one DB instance or cluster.",
            )
        db = self.databases[rds_id] if kind == "instance" else self.clusters[rds_id]
        engine = db.engine
        expected = "SQLSERVER" if engine.startswith("sqlserver") else ENGINE_FAMILIES.get(engine)
        if expected != proxy.engine_family:
            raise fault(
                "InvalidParameterCombination",
                f"The engine {engine} of {rds_id} does not match the proxy's engine family {proxy.engine_family}.",
            )
        if kind == "instance" and getattr(db, "db_cluster_identifier", None):
            raise fault(
                "InvalidParameterCombination",
                f"DB instance {rds_id} belongs to cluster {db.db_cluster_identifier}; register the cluster.",
            )
    new = [
        SimpleNamespace(kind=k, rds_id=i, until=settings.until("target_registering"))
        for k, i in wanted
    ]
    group.targets.extend(new)
    views = target_views(self, proxy, SimpleNamespace(targets=new))
    return views


def deregister_db_proxy_targets(
    self, db_proxy_name, target_group_name, db_cluster_identifiers, db_instance_identifiers
):
    proxy = _proxy(self, db_proxy_name)
    group = _target_group(proxy, target_group_name)
    gone = {i.lower() for i in (db_cluster_identifiers or []) + (db_instance_identifiers or [])}
    for rds_id in gone:
        if not any(t.rds_id.lower() == rds_id for t in group.targets):
            raise fault(
                "DBProxyTargetNotFoundFault",
                f"The target {rds_id} is not registered with proxy {db_proxy_name}.",
            )
    group.targets = [t for t in group.targets if t.rds_id.lower() not in gone]


def describe_db_proxy_targets(self, proxy_name, target_group_name=None):
    proxy = _proxy(self, proxy_name)
    return target_views(self, proxy, _target_group(proxy, target_group_name))


def describe_db_proxy_target_groups(self, proxy_name, target_group_name=None):
    proxy = _proxy(self, proxy_name)
    if target_group_name:
        return [_target_group(proxy, target_group_name)]
    return list(proxy.proxy_target_groups.values())


def modify_db_proxy_target_group(self, proxy_name, config, target_group_name=None):
    proxy = _available(_proxy(self, proxy_name))
    group = _target_group(proxy, target_group_name)
    # moto resets MaxIdleConnectionsPercent to half the maximum when a call
    # does not name it, and takes 0 for "not named"; AWS changes only what
    # a call names.
    idle = group.max_idle_connections
    _original.modify_db_proxy_target_group(self, proxy_name, config)
    group.max_idle_connections = int(config.get("MaxIdleConnectionsPercent", idle))
    if "InitQuery" in config:
        group.init_query = config["InitQuery"]
    group.updated_date = utcnow()
    return group


def _pool_config(self) -> dict:
    config = {
        "MaxConnectionsPercent": self.max_connections,
        "MaxIdleConnectionsPercent": self.max_idle_connections,
        "ConnectionBorrowTimeout": self.borrow_timeout,
        "SessionPinningFilters": list(self.session_pinning_filters),
    }
    if getattr(self, "init_query", None):
        config["InitQuery"] = self.init_query
    return config


DBProxyTargetGroup.connection_pool_config = property(_pool_config)


# --- endpoints ---------------------------------------------------------------


class ProxyEndpoint:
    """What DescribeDBProxyEndpoints shows; attribute names are the shape's."""

    def __init__(
        self, backend, proxy, name, subnet_ids, group_ids, target_role, network_type, tags
    ):
        ec2 = ec2_backends[backend.account_id][backend.region_name]
        subnets = ec2.describe_subnets(subnet_ids=subnet_ids)
        vpcs = {s.vpc_id for s in subnets}
        if len(vpcs) != 1:
            raise fault("InvalidSubnet", "The endpoint's subnets must all be in one VPC.")
        self.vpc_id = vpcs.pop()
        self.db_proxy_endpoint_name = name
        self.db_proxy_name = proxy.db_proxy_name
        self.db_proxy_endpoint_arn = (
            f"arn:aws:rds:{backend.region_name}:{backend.account_id}:db-proxy-endpoint:"
            f"prx-endpoint-{''.join(random.choices(string.ascii_lowercase + string.digits, k=17))}"
        )
        self.vpc_subnet_ids = list(subnet_ids)
        self.vpc_security_group_ids = list(group_ids) or [
            ec2.get_default_security_group(self.vpc_id).id
        ]
        self.endpoint = (
            f"{name}.endpoint.proxy-{proxy.url_identifier}.{backend.region_name}.rds.amazonaws.com"
        )
        self.created_date = utcnow()
        self.target_role = target_role
        self.is_default = False
        self.endpoint_network_type = network_type
        self.tags = tags or []

    status = property(_phase_status)

    # Tags, as moto's models keep them (ListTagsForResource and friends).
    def get_tags(self):
        return self.tags

    def add_tags(self, tags):
        keys = {t["Key"] for t in tags}
        self.tags = [t for t in self.tags if t["Key"] not in keys] + list(tags)
        return self.tags

    def remove_tags(self, keys):
        self.tags = [t for t in self.tags if t["Key"] not in keys]


def _default_endpoint(proxy: DBProxy) -> dict:
    return {
        "DBProxyEndpointName": "default",
        "DBProxyName": proxy.db_proxy_name,
        "Status": proxy.status,
        "VpcId": proxy.vpc_id,
        "VpcSecurityGroupIds": proxy.vpc_security_group_ids,
        "VpcSubnetIds": proxy.vpc_subnet_ids,
        "Endpoint": proxy.endpoint,
        "CreatedDate": proxy.created_date,
        "TargetRole": "READ_WRITE",
        "IsDefault": True,
        "EndpointNetworkType": getattr(proxy, "endpoint_network_type", "IPV4"),
    }


def _endpoint(backend, name: str) -> ProxyEndpoint:
    sweep(backend)
    ep = endpoints(backend).get(name)
    if ep is None:
        raise fault("DBProxyEndpointNotFoundFault", f"The DB proxy endpoint {name} doesn't exist.")
    return ep


def _endpoint_available(ep: ProxyEndpoint) -> ProxyEndpoint:
    if ep.status != "available":
        raise fault(
            "InvalidDBProxyEndpointStateFault",
            f"DB proxy endpoint {ep.db_proxy_endpoint_name} is in state {ep.status}; it must be available.",
        )
    return ep


def create_db_proxy_endpoint(self, params: dict) -> ProxyEndpoint:
    proxy = _available(_proxy(self, params["DBProxyName"]))
    name = params["DBProxyEndpointName"]
    self._validate_db_identifier(name)
    if name in endpoints(self) or name == "default":
        raise fault(
            "DBProxyEndpointAlreadyExistsFault", f"The DB proxy endpoint {name} already exists."
        )
    if (
        sum(1 for e in endpoints(self).values() if e.db_proxy_name == proxy.db_proxy_name)
        >= ENDPOINTS_PER_PROXY
    ):
        raise fault(
            "DBProxyEndpointQuotaExceededFault",
            f"A proxy can have at most {ENDPOINTS_PER_PROXY} endpoints.",
        )
    role = params.get("TargetRole") or "READ_WRITE"
    if role not in ("READ_WRITE", "READ_ONLY"):
        raise fault(
            "InvalidParameterValue", f"TargetRole {role} is not valid; use READ_WRITE or READ_ONLY."
        )
    if role == "READ_ONLY":
        clusters = [
            t for g in proxy.proxy_target_groups.values() for t in g.targets if t.kind == "cluster"
        ]
        if not clusters:
            raise fault(
                "InvalidParameterCombination",
                "READ_ONLY endpoints are supported only for proxies whose target is an Aurora DB cluster.",
            )
    network = _network_type(
        params.get("EndpointNetworkType"), ("IPV4", "IPV6", "DUAL"), "EndpointNetworkType"
    )
    ep = ProxyEndpoint(
        self,
        proxy,
        name,
        params["VpcSubnetIds"],
        params.get("VpcSecurityGroupIds") or [],
        role,
        network,
        params.get("Tags"),
    )
    _start(ep, "creating", "endpoint_creating")
    endpoints(self)[name] = ep
    return ep


def describe_db_proxy_endpoints(self, proxy_name=None, endpoint_name=None) -> list:
    sweep(self)
    if proxy_name:
        proxy = _proxy(self, proxy_name)
        found = [_default_endpoint(proxy)] + [
            e for e in endpoints(self).values() if e.db_proxy_name == proxy_name
        ]
    else:
        found = [_default_endpoint(p) for p in self.db_proxies.values()] + list(
            endpoints(self).values()
        )
    if endpoint_name:
        found = [
            e
            for e in found
            if (e["DBProxyEndpointName"] if isinstance(e, dict) else e.db_proxy_endpoint_name)
            == endpoint_name
        ]
        if not found:
            raise fault(
                "DBProxyEndpointNotFoundFault",
                f"The DB proxy endpoint {endpoint_name} doesn't exist.",
            )
    return found


def modify_db_proxy_endpoint(self, params: dict) -> ProxyEndpoint:
    name = params["DBProxyEndpointName"]
    if name == "default":
        raise fault(
            "InvalidDBProxyEndpointStateFault", "The default endpoint of a proxy can't be modified."
        )
    ep = _endpoint_available(_endpoint(self, name))
    new_name = params.get("NewDBProxyEndpointName")
    if new_name and new_name != name:
        if new_name in endpoints(self):
            raise fault(
                "DBProxyEndpointAlreadyExistsFault",
                f"The DB proxy endpoint {new_name} already exists.",
            )
        endpoints(self)[new_name] = endpoints(self).pop(name)
        ep.db_proxy_endpoint_name = new_name
    if "VpcSecurityGroupIds" in params:
        ep.vpc_security_group_ids = list(params["VpcSecurityGroupIds"])
    _start(ep, "modifying", "endpoint_modifying")
    return ep


def delete_db_proxy_endpoint(self, name: str) -> ProxyEndpoint:
    if name == "default":
        raise fault(
            "InvalidDBProxyEndpointStateFault", "The default endpoint of a proxy can't be deleted."
        )
    ep = _endpoint(self, name)
    if ep.status == "deleting":
        raise fault(
            "InvalidDBProxyEndpointStateFault",
            f"DB proxy endpoint {name} is already being deleted.",
        )
    _start(ep, "deleting", "endpoint_deleting")
    sweep(self)
    return ep


# --- the responses -----------------------------------------------------------


def _plain(value):
    """moto's parsed parameters (keys looked up in snake case) as plain
    dicts and lists with AWS's own keys."""
    if hasattr(value, "original_dict"):
        value = value.original_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _r_create_db_proxy(self) -> ActionResult:
    p = _plain(self.params)
    proxy = self.backend.create_db_proxy(
        db_proxy_name=p["DBProxyName"],
        engine_family=p["EngineFamily"],
        auth=p.get("Auth"),
        role_arn=p["RoleArn"],
        vpc_subnet_ids=p["VpcSubnetIds"],
        vpc_security_group_ids=p.get("VpcSecurityGroupIds"),
        require_tls=p.get("RequireTLS"),
        idle_client_timeout=p.get("IdleClientTimeout"),
        debug_logging=p.get("DebugLogging"),
        tags=p.get("Tags", []),
        extra={
            k: p.get(k)
            for k in ("DefaultAuthScheme", "EndpointNetworkType", "TargetConnectionNetworkType")
        },
    )
    return ActionResult({"DBProxy": proxy})


def _r_modify_db_proxy(self) -> ActionResult:
    proxy = self.backend.modify_db_proxy(self.params["DBProxyName"], _plain(self.params))
    return ActionResult({"DBProxy": proxy})


def _r_register_db_proxy_targets(self) -> ActionResult:
    p = _plain(self.params)
    targets = self.backend.register_db_proxy_targets(
        p["DBProxyName"],
        p.get("TargetGroupName"),
        p.get("DBClusterIdentifiers", []),
        p.get("DBInstanceIdentifiers", []),
    )
    return ActionResult({"DBProxyTargets": targets})


def _r_deregister_db_proxy_targets(self) -> ActionResult:
    p = _plain(self.params)
    self.backend.deregister_db_proxy_targets(
        p["DBProxyName"],
        p.get("TargetGroupName"),
        p.get("DBClusterIdentifiers", []),
        p.get("DBInstanceIdentifiers", []),
    )
    return EmptyResult()


def _names(self) -> dict:
    p = _plain(self.params)
    return {"proxy_name": p["DBProxyName"], "target_group_name": p.get("TargetGroupName")}


def _r_describe_db_proxy_targets(self) -> ActionResult:
    targets = self.backend.describe_db_proxy_targets(**_names(self))
    return ActionResult({"Targets": targets})


def _r_describe_db_proxy_target_groups(self) -> ActionResult:
    groups = self.backend.describe_db_proxy_target_groups(**_names(self))
    return ActionResult({"TargetGroups": groups})


def _r_modify_db_proxy_target_group(self) -> ActionResult:
    p = _plain(self.params)
    group = self.backend.modify_db_proxy_target_group(
        p["DBProxyName"], p.get("ConnectionPoolConfig", {}), p.get("TargetGroupName")
    )
    return ActionResult({"DBProxyTargetGroup": group})


def _r_create_db_proxy_endpoint(self) -> ActionResult:
    return ActionResult(
        {"DBProxyEndpoint": self.backend.create_db_proxy_endpoint(_plain(self.params))}
    )


def _r_describe_db_proxy_endpoints(self) -> ActionResult:
    found = self.backend.describe_db_proxy_endpoints(
        self.params.get("DBProxyName"), self.params.get("DBProxyEndpointName")
    )
    return ActionResult({"DBProxyEndpoints": found})


def _r_modify_db_proxy_endpoint(self) -> ActionResult:
    return ActionResult(
        {"DBProxyEndpoint": self.backend.modify_db_proxy_endpoint(_plain(self.params))}
    )


def _r_delete_db_proxy_endpoint(self) -> ActionResult:
    return ActionResult(
        {
            "DBProxyEndpoint": self.backend.delete_db_proxy_endpoint(
                self.params["DBProxyEndpointName"]
            )
        }
    )


_resource_for_tagging = RDSBackend._get_resource_for_tagging


def _get_resource_for_tagging(self, arn: str):
    """A proxy endpoint's ARN, which moto does not know, finds the endpoint."""
    if ":db-proxy-endpoint:" in arn:
        for ep in endpoints(self).values():
            if ep.db_proxy_endpoint_arn == arn:
                return ep
        raise fault("DBProxyEndpointNotFoundFault", f"The DB proxy endpoint {arn} doesn't exist.")
    return _resource_for_tagging(self, arn)


_instance_init = DBInstance.__init__


def _instance_with_network_type(self, *args, **kwargs):
    """moto's DB instance forgets CreateDBInstance's NetworkType (its
    cluster keeps it): kept, and listed, as AWS does."""
    _instance_init(self, *args, **kwargs)
    self.network_type = kwargs.get("network_type") or "IPV4"


def _managed_secret_string(self) -> str:
    """The secret RDS manages for a master user holds that user and a
    password of its own (moto's: always `admin` and one fixed password)."""
    password = "".join(random.choices(string.ascii_letters + string.digits, k=28))
    return json.dumps({"username": self.resource.master_username, "password": password})


def install() -> None:
    MasterUserSecret._generate_secret_string = _managed_secret_string
    if DBInstance.__init__ is _instance_init:
        DBInstance.__init__ = _instance_with_network_type
    for name, fn in {
        "create_db_proxy": create_db_proxy,
        "describe_db_proxies": describe_db_proxies,
        "modify_db_proxy": modify_db_proxy,
        "delete_db_proxy": delete_db_proxy,
        "register_db_proxy_targets": register_db_proxy_targets,
        "deregister_db_proxy_targets": deregister_db_proxy_targets,
        "describe_db_proxy_targets": describe_db_proxy_targets,
        "describe_db_proxy_target_groups": describe_db_proxy_target_groups,
        "modify_db_proxy_target_group": modify_db_proxy_target_group,
        "create_db_proxy_endpoint": create_db_proxy_endpoint,
        "describe_db_proxy_endpoints": describe_db_proxy_endpoints,
        "modify_db_proxy_endpoint": modify_db_proxy_endpoint,
        "delete_db_proxy_endpoint": delete_db_proxy_endpoint,
        "_get_resource_for_tagging": _get_resource_for_tagging,
    }.items():
        setattr(RDSBackend, name, fn)
    for name, fn in {
        "create_db_proxy": _r_create_db_proxy,
        "modify_db_proxy": _r_modify_db_proxy,
        "register_db_proxy_targets": _r_register_db_proxy_targets,
        "deregister_db_proxy_targets": _r_deregister_db_proxy_targets,
        "describe_db_proxy_targets": _r_describe_db_proxy_targets,
        "describe_db_proxy_target_groups": _r_describe_db_proxy_target_groups,
        "modify_db_proxy_target_group": _r_modify_db_proxy_target_group,
        "create_db_proxy_endpoint": _r_create_db_proxy_endpoint,
        "describe_db_proxy_endpoints": _r_describe_db_proxy_endpoints,
        "modify_db_proxy_endpoint": _r_modify_db_proxy_endpoint,
        "delete_db_proxy_endpoint": _r_delete_db_proxy_endpoint,
    }.items():
        setattr(RDSResponse, name, fn)
