//! One file per command; each opens what it needs and drives the engine.

pub mod adopt;
pub mod doctor;
pub mod fleet;
pub mod init;
pub mod permissions;
pub mod plan;
pub mod preflight;
pub mod probe;
pub mod rollback;
pub mod run;
pub mod status;
pub mod transfer;
pub mod unlock;
