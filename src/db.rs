//! The runbook's DB as the account describes it: an RDS instance or an
//! Aurora cluster, read one way for preflight and for `init`.

use anyhow::Result;

use crate::aws::errors::{is_db_cluster_not_found, is_db_instance_not_found};
use crate::aws::{Aws, describe_error, error_code};

/// The IAM actions of these reads (`permissions`): preflight, the plan's
/// budget, end-to-end IAM's resource id and `doctor` make them.
pub const ACTIONS: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("rds:DescribeDBInstances", On::Any),
        ("rds:DescribeDBClusters", On::Any),
        ("rds:DescribeDBSubnetGroups", On::Any),
        ("rds:DescribeDBParameters", On::Any),
        ("rds:DescribeDBClusterParameters", On::Any),
    ]
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Instance,
    Cluster,
}

impl Kind {
    /// How messages name it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Instance => "DB instance",
            Kind::Cluster => "Aurora cluster",
        }
    }

    /// Its key in a runbook's `[database]` table.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Instance => "instance_id",
            Kind::Cluster => "cluster_id",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Db {
    pub kind: Kind,
    /// As RDS spells it (lowercase): targets are matched exactly.
    pub id: String,
    pub engine: String,
    pub engine_version: String,
    pub status: String,
    /// An instance's class (for the connection budget).
    pub instance_class: Option<String>,
    /// The cluster an instance belongs to.
    pub cluster: Option<String>,
    /// A cluster's instances.
    pub members: usize,
    pub port: Option<i32>,
    /// The writer endpoint's address (not the reader's: the proxy's default
    /// endpoint writes).
    pub address: Option<String>,
    pub vpc_id: Option<String>,
    /// (subnet, AZ)
    pub subnets: Vec<(String, String)>,
    pub security_groups: Vec<String>,
    pub managed_secret: Option<String>,
    /// `db-...` for an instance, `cluster-...` for a cluster: what an IAM
    /// policy names to connect to it (`rds-db:connect` on `dbuser:ID/USER`).
    pub resource_id: Option<String>,
    /// Whether IAM database authentication is on (end-to-end IAM needs it).
    pub iam_auth: bool,
    /// `IPV4` or `DUAL` (a proxy reaches it over IPv6 only when DUAL).
    pub network_type: String,
    /// An instance's DB parameter group; a cluster's cluster parameter group.
    pub parameter_group: Option<String>,
    /// A cluster's instances: (identifier, whether it is the writer).
    pub instances: Vec<(String, bool)>,
}

/// What a DB can hold: the class that sets `max_connections` (a cluster's
/// writer's: the proxy's default endpoint writes), the value when a
/// parameter group sets it, and a cluster's instances in words.
#[derive(Debug, Clone, Default)]
pub struct Capacity {
    pub class: String,
    /// (value, the parameter group that sets it).
    pub max_connections_set: Option<(i64, String)>,
    /// For a cluster: each instance with its role and class.
    pub instances: Vec<String>,
    /// A parameter group that could not be read (the estimate is used).
    pub notes: Vec<String>,
}

/// The DB's capacity, or None when the class cannot be read (a cluster
/// without a writer yet). Reads parameter groups only when not a default
/// one (a default group leaves max_connections to the formula).
pub async fn capacity(aws: &Aws, db: &Db) -> Result<Option<Capacity>> {
    let mut described = Vec::new();
    let (class, instance_group) = match db.kind {
        Kind::Instance => (db.instance_class.clone(), db.parameter_group.clone()),
        Kind::Cluster => {
            let mut writer = (None, None);
            for (id, is_writer) in &db.instances {
                let Some(i) = read_instance(aws, id).await? else {
                    continue;
                };
                let class = i.instance_class.clone().unwrap_or_else(|| "?".into());
                described.push(format!(
                    "{} {id} {class}",
                    if *is_writer { "writer" } else { "reader" }
                ));
                if *is_writer {
                    writer = (i.instance_class, i.parameter_group);
                }
            }
            writer
        }
    };
    let Some(class) = class else {
        return Ok(None);
    };
    let cluster_group = match db.kind {
        Kind::Cluster => db.parameter_group.clone(),
        Kind::Instance => None,
    };
    let (mut set, mut notes) = (None, Vec::new());
    let unread = |what: String, e: String| {
        format!(
            "cannot read {what} ({e}): max_connections is estimated from the class; allow \
             rds:DescribeDBParameters / rds:DescribeDBClusterParameters for the value it sets"
        )
    };
    if let Some(g) = instance_group.filter(|g| !g.starts_with("default.")) {
        let call = aws.rds.describe_db_parameters().db_parameter_group_name(&g);
        match call.source("user").send().await {
            Ok(o) => {
                set = set_value(o.parameters()).map(|v| (v, format!("DB parameter group {g}")))
            }
            Err(e) => notes.push(unread(
                format!("DB parameter group {g}"),
                describe_error(&e),
            )),
        }
    }
    if set.is_none()
        && let Some(g) = cluster_group.filter(|g| !g.starts_with("default."))
    {
        let call = aws
            .rds
            .describe_db_cluster_parameters()
            .db_cluster_parameter_group_name(&g);
        match call.source("user").send().await {
            Ok(o) => {
                set = set_value(o.parameters())
                    .map(|v| (v, format!("DB cluster parameter group {g}")))
            }
            Err(e) => notes.push(unread(
                format!("DB cluster parameter group {g}"),
                describe_error(&e),
            )),
        }
    }
    Ok(Some(Capacity {
        class,
        max_connections_set: set,
        instances: described,
        notes,
    }))
}

/// `max_connections` when a parameter sets it to a number (not a formula
/// such as `{DBInstanceClassMemory/12582880}`, which the estimate follows).
pub fn set_value(params: &[aws_sdk_rds::types::Parameter]) -> Option<i64> {
    params
        .iter()
        .find(|p| p.parameter_name() == Some("max_connections"))
        .and_then(|p| p.parameter_value())
        .and_then(|v| v.trim().parse().ok())
}

impl Db {
    /// "DB instance orders-db", for messages.
    pub fn what(&self) -> String {
        format!("{} {}", self.kind.label(), self.id)
    }
}

/// The DB; None when there is none of that identifier.
pub async fn read(aws: &Aws, kind: Kind, id: &str) -> Result<Option<Db>> {
    match kind {
        Kind::Instance => read_instance(aws, id).await,
        Kind::Cluster => read_cluster(aws, id).await,
    }
}

async fn read_instance(aws: &Aws, id: &str) -> Result<Option<Db>> {
    let d = match aws
        .rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(o) => o.db_instances.unwrap_or_default().into_iter().next(),
        Err(e) if is_db_instance_not_found(error_code(&e)) => None,
        Err(e) => anyhow::bail!("cannot read DB instance {id}: {}", describe_error(&e)),
    };
    Ok(d.map(|d| instance(&d, id)))
}

/// The runbook's DB as the place's shared listing of DB instances has it
/// (a check's read: one call answers every runbook of a fleet); a cluster
/// is read on its own.
pub async fn listed(aws: &Aws, kind: Kind, id: &str) -> Result<Option<Db>> {
    match kind {
        Kind::Instance => {
            let all = crate::aws::listings::db_instances(aws).await?;
            // RDS keeps identifiers in lowercase and finds them in any case.
            Ok(all.get(&id.to_ascii_lowercase()).map(|d| instance(d, id)))
        }
        Kind::Cluster => read_cluster(aws, id).await,
    }
}

fn instance(d: &aws_sdk_rds::types::DbInstance, id: &str) -> Db {
    let group = d.db_subnet_group();
    Db {
        kind: Kind::Instance,
        id: d.db_instance_identifier().unwrap_or(id).to_string(),
        engine: d.engine().unwrap_or_default().to_string(),
        engine_version: d.engine_version().unwrap_or("?").to_string(),
        status: d.db_instance_status().unwrap_or("unknown").to_string(),
        instance_class: d.db_instance_class().map(String::from),
        cluster: d.db_cluster_identifier().map(String::from),
        members: 0,
        port: d.endpoint().and_then(|e| e.port()).or(d.db_instance_port()),
        address: d.endpoint().and_then(|e| e.address()).map(String::from),
        vpc_id: group.and_then(|g| g.vpc_id()).map(String::from),
        subnets: subnets_of(group),
        security_groups: d
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(String::from))
            .collect(),
        managed_secret: d
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(String::from),
        resource_id: d.dbi_resource_id().map(String::from),
        iam_auth: d.iam_database_authentication_enabled().unwrap_or(false),
        network_type: d.network_type().unwrap_or("IPV4").to_string(),
        parameter_group: d
            .db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_name())
            .map(String::from),
        instances: Vec::new(),
    }
}

async fn read_cluster(aws: &Aws, id: &str) -> Result<Option<Db>> {
    let c = match aws
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
    {
        Ok(o) => o.db_clusters.unwrap_or_default().into_iter().next(),
        Err(e) if is_db_cluster_not_found(error_code(&e)) => None,
        Err(e) => anyhow::bail!("cannot read DB cluster {id}: {}", describe_error(&e)),
    };
    let Some(c) = c else {
        return Ok(None);
    };
    // The cluster names its subnet group; the group holds VPC and subnets.
    let group = match c.db_subnet_group() {
        Some(g) => aws
            .rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(g)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot read DB subnet group {g} of {id}: {}",
                    describe_error(&e)
                )
            })?
            .db_subnet_groups
            .unwrap_or_default()
            .into_iter()
            .next(),
        None => None,
    };
    Ok(Some(Db {
        kind: Kind::Cluster,
        id: c.db_cluster_identifier().unwrap_or(id).to_string(),
        engine: c.engine().unwrap_or_default().to_string(),
        engine_version: c.engine_version().unwrap_or("?").to_string(),
        status: c.status().unwrap_or("unknown").to_string(),
        instance_class: None,
        cluster: None,
        members: c.db_cluster_members().len(),
        port: c.port(),
        address: c.endpoint().map(String::from),
        vpc_id: group.as_ref().and_then(|g| g.vpc_id()).map(String::from),
        subnets: subnets_of(group.as_ref()),
        security_groups: c
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(String::from))
            .collect(),
        managed_secret: c
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(String::from),
        resource_id: c.db_cluster_resource_id().map(String::from),
        iam_auth: c.iam_database_authentication_enabled().unwrap_or(false),
        network_type: c.network_type().unwrap_or("IPV4").to_string(),
        parameter_group: c.db_cluster_parameter_group().map(String::from),
        instances: c
            .db_cluster_members()
            .iter()
            .filter_map(|m| {
                Some((
                    m.db_instance_identifier()?.to_string(),
                    m.is_cluster_writer().unwrap_or(false),
                ))
            })
            .collect(),
    }))
}

fn subnets_of(group: Option<&aws_sdk_rds::types::DbSubnetGroup>) -> Vec<(String, String)> {
    group
        .map(|g| g.subnets())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            Some((
                s.subnet_identifier()?.to_string(),
                s.subnet_availability_zone()
                    .and_then(|z| z.name())
                    .unwrap_or("?")
                    .to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::types::Parameter;

    fn param(name: &str, value: &str) -> Parameter {
        Parameter::builder()
            .parameter_name(name)
            .parameter_value(value)
            .build()
    }

    #[test]
    fn only_a_number_set_for_max_connections_counts() {
        assert_eq!(set_value(&[param("max_connections", "250")]), Some(250));
        assert_eq!(
            set_value(&[param("max_connections", "{DBInstanceClassMemory/12582880}")]),
            None,
            "a formula: the estimate applies"
        );
        assert_eq!(set_value(&[param("max_user_connections", "9")]), None);
        assert_eq!(set_value(&[]), None);
    }
}
