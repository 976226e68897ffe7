//! What the `alarms` step records as its inputs: the proxy, the DB whose
//! max_connections sets a threshold, the functions, each alarm's settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::desired::Notify;
use crate::runbook::AlarmSettings;

/// The DB whose max_connections sets a threshold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DbRef {
    pub(super) kind: String,
    pub(super) id: String,
    pub(super) engine_family: crate::runbook::EngineFamily,
}

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    pub(super) proxy: String,
    pub(super) db: Option<DbRef>,
    /// The functions whose worst case sets a surge's static threshold.
    pub(super) functions: Vec<String>,
    pub(super) alarms: Vec<AlarmSettings>,
    pub(super) notify: Notify,
    pub(super) tags: BTreeMap<String, String>,
}
