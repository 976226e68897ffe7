//! The runbook's DB as the account describes it: an RDS instance or an
//! Aurora cluster, read one way for preflight and for `init`.

use anyhow::Result;

use crate::aws::errors::{is_db_cluster_not_found, is_db_instance_not_found};
use crate::aws::{Aws, describe_error, error_code};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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

#[derive(Debug, Clone)]
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
    let Some(d) = d else {
        return Ok(None);
    };
    let group = d.db_subnet_group();
    Ok(Some(Db {
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
    }))
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
