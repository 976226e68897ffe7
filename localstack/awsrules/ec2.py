"""Security groups as AWS guards them.

Plain moto deletes a group that a proxy, a proxy's lingering network
interfaces, a DB or another group's rule still uses; AWS answers
DependencyViolation. Also the rule the target health needs: does a DB's
group admit the proxy's groups on the DB port.

A proxy's (and an endpoint's) network interfaces, one per subnet, show in
DescribeNetworkInterfaces as AWS shows them (`in-use`, requester-managed,
"RDSNetworkInterface") while it lives and for `proxy_eni_linger` after it
is gone: a rollback can wait for them instead of retrying the delete of
their group. They cannot be deleted by the account."""

from moto.ec2.exceptions import DependencyViolationError, InvalidParameterValue
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend
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
    if any(group_id in groups for groups, *_ in rds.lingering_enis(backend)):
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


def _proxy_interfaces(ec2) -> None:
    """Makes the account's network interfaces those of its proxies now:
    new ones for a new proxy, none for one whose interfaces are gone."""
    from moto.rds.models import rds_backends

    from . import rds

    owners = rds.eni_owners(rds_backends[ec2.account_id][ec2.region_name])
    for eni in list(ec2.enis.values()):
        owner = getattr(eni, "_awsr_owner", None)
        if owner is not None and owner not in owners:
            del ec2.enis[eni.id]
    have = {getattr(e, "_awsr_owner", None) for e in ec2.enis.values()}
    for owner, (subnets, groups) in owners.items():
        if owner in have:
            continue
        for subnet in subnets:
            eni = ec2.create_network_interface(
                subnet, None, group_ids=groups, description="RDSNetworkInterface"
            )
            eni._awsr_owner = owner
            eni.requester_managed = True
            eni.requester_id = "amazon-rds"
            eni.status = "in-use"


def install() -> None:
    original_list = NetworkInterfaceBackend.get_all_network_interfaces

    def get_all_network_interfaces(self, eni_ids=None, filters=None):
        _proxy_interfaces(self)
        return original_list(self, eni_ids=eni_ids, filters=filters)

    NetworkInterfaceBackend.get_all_network_interfaces = get_all_network_interfaces

    original_delete_eni = NetworkInterfaceBackend.delete_network_interface

    def delete_network_interface(self, eni_id):
        # As AWS: an interface its proxy released is gone, whether or not
        # anyone listed the interfaces since (then: NotFound).
        _proxy_interfaces(self)
        eni = self.enis.get(eni_id)
        if eni is not None and getattr(eni, "_awsr_owner", None) is not None:
            raise InvalidParameterValue(
                f"Network interface '{eni_id}' is currently in use."
            )
        return original_delete_eni(self, eni_id)

    NetworkInterfaceBackend.delete_network_interface = delete_network_interface

    original = SecurityGroupBackend.delete_security_group

    def delete_security_group(self, name=None, group_id=None):
        group = self.get_security_group_by_name_or_id(group_id or name)
        if group is not None and users_of(self.account_id, self.region_name, group.id):
            raise DependencyViolationError(f"resource {group.id} has a dependent object")
        return original(self, name=name, group_id=group_id)

    SecurityGroupBackend.delete_security_group = delete_security_group
