//! The probe's findings as lines for people: per configuration, a row
//! per endpoint and user with each part's time, then each failure's
//! owning step and fix, and what the proxy's log said.

use super::run::{Findings, Verdict};

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |m| format!("{m:.0} ms"))
}

/// The findings as lines: per configuration, a row per endpoint and user,
/// then each failure's owning step and fix.
pub fn render(f: &Findings) -> Vec<String> {
    let mut out = vec![format!("Probe of DB proxy {}:", f.proxy)];
    for c in &f.configurations {
        let cfg = &c.configuration;
        out.push(format!(
            "  {} (role {}, groups {}):",
            cfg.functions.join(", "),
            cfg.role.rsplit('/').next().unwrap_or(&cfg.role),
            if cfg.security_groups.is_empty() {
                "none: not in a VPC".to_string()
            } else {
                cfg.security_groups.join(", ")
            }
        ));
        if let Some(e) = &c.error {
            out.push(format!("    ✗ the probe could not answer: {e}"));
        }
        // The columns as wide as their longest name.
        let width = |f: fn(&Verdict) -> Option<&str>, title: &str| {
            c.results
                .iter()
                .filter_map(f)
                .map(str::len)
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        };
        let ew = width(|v| v.report.name.as_deref(), "endpoint");
        let uw = width(|v| v.report.user.as_deref(), "user");
        if !c.results.is_empty() {
            out.push(format!(
                "    {:<ew$} {:<uw$} {:>9} {:>9} {:<18} {:>9} {:>17}  verdict",
                "endpoint", "user", "resolve", "connect", "tls", "auth", "queries"
            ));
        }
        for v in &c.results {
            out.push(row(v, ew, uw));
        }
        for v in c.results.iter().filter(|v| v.report.verdict != "ok") {
            let r = &v.report;
            out.push(format!(
                "    ✗ {} as {}: {} failed: {}",
                r.name.as_deref().unwrap_or("-"),
                r.user.as_deref().unwrap_or("-"),
                r.failed_at.as_deref().unwrap_or("?"),
                r.error.as_deref().unwrap_or("")
            ));
            if let (Some(step), Some(fix)) = (v.step, &v.fix) {
                out.push(format!("      owner: {step}: {fix}"));
            }
        }
        if let Some(left) = &c.left_behind {
            out.push(format!("    ! {left}"));
        }
    }
    if !f.proxy_log.is_empty() {
        out.push("  The proxy's log since the probe began:".into());
        out.extend(f.proxy_log.iter().map(|l| format!("    - {l}")));
    }
    out.push(if f.passed() {
        "The wiring works: every configuration connected and queried through every endpoint.".into()
    } else {
        "The probe failed.".into()
    });
    out
}

fn row(v: &Verdict, ew: usize, uw: usize) -> String {
    let r = &v.report;
    let tls = match &r.tls {
        Some(t) if t.version.is_some() => format!(
            "{} {}",
            t.version.as_deref().unwrap_or(""),
            if t.verified { "verified" } else { "unverified" }
        ),
        Some(_) => "off".into(),
        None => "-".into(),
    };
    let queries = match &r.query {
        Some(q) => {
            q.ms.iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(" / ")
                + " ms"
        }
        None => "-".into(),
    };
    format!(
        "    {:<ew$} {:<uw$} {:>9} {:>9} {:<18} {:>9} {:>17}  {}",
        r.name.as_deref().unwrap_or("-"),
        r.user.as_deref().unwrap_or("-"),
        ms(r.resolve.as_ref().map(|t| t.ms)),
        ms(r.connect.as_ref().map(|t| t.ms)),
        tls,
        ms(r.auth.as_ref().map(|t| t.ms)),
        queries,
        if r.verdict == "ok" { "ok" } else { "FAILED" }
    )
}
