"""Security groups as AWS guards them.

Plain moto deletes a group that a proxy, a proxy's lingering network
interfaces, a DB or another group's rule still uses; AWS answers
DependencyViolation. Also the rule the target health needs: does a DB's
group admit the proxy's groups on the DB port."""

from moto.ec2.exceptions import DependencyViolationError
from moto.ec2.models import ec2_backends
from moto.ec2.models.security_groups import SecurityGroupBackend


def _covers(rule, port: int) -> bool:
    if rule.ip_protocol in ("-1", "all"):
        return True
    if rule.ip_protocol not in ("tcp", "6"):
        return False
    return rule.from_port is not None and rule.from_port <= port <= rule.to_port


def group_admits(ec2, db_group_ids, proxy_group_ids, port: int) -> bool:
    """Whether some rule of the DB's groups admits one of the proxy's groups
    (by group, or by an all-addresses range) on `port`."""
    proxy_groups = set(proxy_group_ids)
    for group_id in db_group_ids:
        group = ec2.get_security_group_from_id(group_id)
        for rule in group.ingress_rules if group else []:
            if not _covers(rule, port):
                continue
            if rule.source_group.get("GroupId") in proxy_groups:
                return True
            if rule.ip_range.get("CidrIp") == "0.0.0.0/0":
                return True
    return False


def users_of(account_id: str, region: str, group_id: str) -> list:
    """What keeps `group_id` from being deleted, in words."""
    from moto.rds.models import rds_backends

    from . import rds

    users = []
    backend = rds_backends[account_id][region]
    rds.sweep(backend)
    for proxy in backend.db_proxies.values():
        if group_id in proxy.vpc_security_group_ids:
            users.append(f"DB proxy {proxy.db_proxy_name}")
    for ep in rds.endpoints(backend).values():
        if group_id in ep.vpc_security_group_ids:
            users.append(f"DB proxy endpoint {ep.db_proxy_endpoint_name}")
    if any(group_id in groups for groups, _ in rds.lingering_enis(backend)):
        users.append("network interfaces of a deleted DB proxy")
    for db in list(backend.databases.values()) + list(backend.clusters.values()):
        if group_id in (db.vpc_security_group_ids or []):
            name = getattr(db, "db_instance_identifier", None) or db.db_cluster_identifier
            users.append(f"DB {name}")
    ec2 = ec2_backends[account_id][region]
    for groups in ec2.groups.values():
        for other in groups.values():
            if other.id == group_id:
                continue
            for rule in other.ingress_rules + other.egress_rules:
                if rule.source_group.get("GroupId") == group_id:
                    users.append(f"a rule of security group {other.id}")
                    break
    return users


def install() -> None:
    original = SecurityGroupBackend.delete_security_group

    def delete_security_group(self, name=None, group_id=None):
        group = self.get_security_group_by_name_or_id(group_id or name)
        if group is not None and users_of(self.account_id, self.region_name, group.id):
            raise DependencyViolationError(f"resource {group.id} has a dependent object")
        return original(self, name=name, group_id=group_id)

    SecurityGroupBackend.delete_security_group = delete_security_group
