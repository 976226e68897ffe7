//! Crash points for the tests. Built only with the `failpoints` feature
//! (never in a release build): `RDS_PROXY_RUNBOOK_FAILPOINT=STEP:POINT`
//! aborts the process, dead, when the engine passes that point of that
//! step; `STEP:POINT:sleepMS` pauses there instead (to send a signal, or to
//! kill from outside). Several specs may be given, separated by commas.
//!
//! Points: `before-apply` (state saved as started, before the create
//! call), `after-apply` (the call succeeded, the state not yet saved),
//! `wait` (inside a wait for AWS), `before-rollback`, `after-rollback`.

#[cfg(feature = "failpoints")]
pub fn hit(step: &str, point: &str) {
    let Ok(spec) = std::env::var("RDS_PROXY_RUNBOOK_FAILPOINT") else {
        return;
    };
    for one in spec.split(',') {
        let mut parts = one.splitn(3, ':');
        if parts.next() != Some(step) || parts.next() != Some(point) {
            continue;
        }
        match parts.next().and_then(|a| a.strip_prefix("sleep")) {
            Some(ms) => {
                std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(1000)))
            }
            None => {
                eprintln!("failpoint {step}:{point}: aborting");
                std::process::abort();
            }
        }
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_step: &str, _point: &str) {}
