//! The one integration test binary: the real `rds-proxy-runbook` against a
//! local AWS emulator (moto with localstack/awsrules, started per test),
//! comparing what the emulator holds before and after. One module per area.

#[path = "../support/mod.rs"]
mod support;

mod adopt;
mod alarms;
mod auth;
mod bad_input;
mod confirm;
#[cfg(feature = "failpoints")]
mod crash;
mod data_path;
mod doctor;
mod emulator;
mod endpoints;
mod fault_layer;
mod fleet;
mod fleet_reads;
mod help;
mod init;
mod least_privilege;
mod network;
mod ownership;
mod permissions;
mod plan;
#[cfg(feature = "failpoints")]
mod plan_after_kill;
mod preflight;
mod probe;
mod replace;
mod run;
mod safety;
mod seed000;
mod state;
mod team;
mod test_index;
mod update;
mod version;

use support::*;

fn setup(test: &str) -> (Emulator, Workspace) {
    let emu = Emulator::start();
    let ws = emu.workspace(test);
    (emu, ws)
}

/// `s` with `from` replaced by `to`; panics if `from` is not there, so a
/// test cannot silently run an unedited runbook.
#[track_caller]
fn edit(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "the runbook has no {from:?}");
    s.replace(from, to)
}

const ALL_STEPS: usize = 11;
