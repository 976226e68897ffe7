//! Every AWS error code the tool tells apart, each in one named predicate.

/// IAM's answer for a role, policy or attachment that is not there.
pub fn is_no_such_entity(code: Option<&str>) -> bool {
    code == Some("NoSuchEntity")
}

/// EC2: the ingress rule is there already.
pub fn is_duplicate_rule(code: Option<&str>) -> bool {
    code == Some("InvalidPermission.Duplicate")
}

/// EC2: the rule (or its group) is not there.
pub fn is_rule_gone(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "InvalidPermission.NotFound"
                | "InvalidSecurityGroupRuleId.NotFound"
                | "InvalidGroup.NotFound"
                | "InvalidGroupId.NotFound"
        )
    )
}

/// EC2: a group of that name exists in the VPC.
pub fn is_duplicate_group(code: Option<&str>) -> bool {
    code == Some("InvalidGroup.Duplicate")
}

/// EC2: the security group is not there.
pub fn is_group_not_found(code: Option<&str>) -> bool {
    code == Some("InvalidGroup.NotFound") || code == Some("InvalidGroupId.NotFound")
}

/// EC2: the group is still used (an ENI) or referenced by a rule.
pub fn is_dependency_violation(code: Option<&str>) -> bool {
    code == Some("DependencyViolation")
}

/// IAM: a role or policy of that name exists.
pub fn is_already_exists(code: Option<&str>) -> bool {
    code == Some("EntityAlreadyExists")
}

/// IAM: the role still has policies, or the policy is attached.
pub fn is_delete_conflict(code: Option<&str>) -> bool {
    code == Some("DeleteConflict")
}

/// RDS: the proxy, its target or its target group is not there.
pub fn is_proxy_part_gone(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "DBProxyNotFoundFault"
                | "DBProxyTargetNotFoundFault"
                | "DBProxyTargetGroupNotFoundFault"
        )
    )
}

/// RDS: no proxy endpoint of that name (DescribeDBProxyEndpoints; a
/// missing proxy is [`is_proxy_not_found`]).
pub fn is_endpoint_not_found(code: Option<&str>) -> bool {
    code == Some("DBProxyEndpointNotFoundFault")
}

pub fn is_proxy_not_found(code: Option<&str>) -> bool {
    code == Some("DBProxyNotFoundFault")
}

/// RDS: a proxy of that name exists.
pub fn is_proxy_exists(code: Option<&str>) -> bool {
    code == Some("DBProxyAlreadyExistsFault")
}

/// Lambda: no function of that name.
pub fn is_function_not_found(code: Option<&str>) -> bool {
    code == Some("ResourceNotFoundException")
}

/// Secrets Manager: no secret of that id (the same code as Lambda's).
pub fn is_secret_not_found(code: Option<&str>) -> bool {
    code == Some("ResourceNotFoundException")
}

/// Lambda: another update of the function is in progress.
pub fn is_update_in_progress(code: Option<&str>) -> bool {
    code == Some("ResourceConflictException")
}

/// EC2: no subnet of that id.
pub fn is_subnet_not_found(code: Option<&str>) -> bool {
    code == Some("InvalidSubnetID.NotFound")
}

/// RDS: no DB instance of that id.
pub fn is_db_instance_not_found(code: Option<&str>) -> bool {
    code == Some("DBInstanceNotFound")
}

/// RDS: no Aurora cluster of that id.
pub fn is_db_cluster_not_found(code: Option<&str>) -> bool {
    code == Some("DBClusterNotFoundFault")
}

/// An action the region does not offer (CloudWatch's anomaly detection
/// where it is not available): the Query protocol's `InvalidAction`, or
/// the JSON protocols' unknown operation. Anything else (a throttle, a
/// timeout, a denial) is no answer to whether it is offered.
pub fn is_not_offered(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("InvalidAction" | "UnknownOperationException" | "UnsupportedOperation")
    )
}
