//! A saved plan (`plan -o FILE`, then `run --plan FILE`): for each step, the
//! checksum of the inputs it was planned with and of what its check found,
//! so that `run` does what was reviewed (in a pull request, say) or refuses,
//! changing nothing, when the runbook or the account moved since.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::Action;
use crate::error::Failure;
use crate::steps::Found;

const FORMAT: &str = "rds-proxy-runbook plan";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    pub version: u32,
    pub runbook: String,
    pub account: String,
    pub region: String,
    pub created_at: String,
    /// Made with `plan --allow-replace`: the replacements it shows are what
    /// was reviewed, and `run --plan` makes them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_replace: bool,
    pub steps: Vec<SavedStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedStep {
    pub name: String,
    /// What the plan said: create, update, none, ... (for the reader).
    pub action: String,
    /// sha256 of the inputs the step was planned with (`state::checksum`).
    pub inputs: String,
    /// sha256 of what its check found; none when it was not checked (it
    /// reads outputs of steps not applied yet, or only verifies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// What it would change, as the plan showed it (never a secret).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// A step as `run` finds it, to compare with the plan: the checksum of its
/// inputs, the digest of what its first round found (none when it was not
/// checked) and what it decides from that.
#[derive(Debug, Clone, PartialEq)]
pub struct Now {
    pub name: String,
    pub inputs: String,
    pub found: Option<String>,
    pub action: Option<Action>,
}

/// What a check found, as a checksum: any difference in the account that
/// the step sees (a value, a status, an output) changes it.
pub fn found_digest(found: &Found) -> String {
    let digest = Sha256::digest(format!("{found:?}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl SavedPlan {
    pub fn new(runbook: &str, account: &str, region: &str, steps: Vec<SavedStep>) -> SavedPlan {
        SavedPlan {
            format: FORMAT.into(),
            version: VERSION,
            runbook: runbook.into(),
            account: account.into(),
            region: region.into(),
            created_at: crate::state::now(),
            allow_replace: false,
            steps,
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| {
            Failure::usage(format!("cannot write the plan to {}: {e}", path.display()))
        })
    }

    pub fn load(path: &Path) -> Result<SavedPlan> {
        let bad = |why: String| {
            Failure::bad_input(format!(
                "{} is not a plan written by `rds-proxy-runbook plan -o` ({why}); make one with \
                 `rds-proxy-runbook plan RUNBOOK -o {}`",
                path.display(),
                path.display()
            ))
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Failure::bad_input(format!(
                    "there is no plan at {}: the file does not exist; write one with \
                     `rds-proxy-runbook plan RUNBOOK -o {}` (and review it), or give the path \
                     of the one you reviewed",
                    path.display(),
                    path.display()
                ))
            } else {
                Failure::bad_input(format!(
                    "cannot read the plan {}: {e}; check the path and its permissions",
                    path.display()
                ))
            }
        })?;
        let plan: SavedPlan = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if plan.format != FORMAT {
            return Err(bad(format!("its format is {:?}", plan.format)));
        }
        if plan.version > VERSION {
            return Err(bad(format!(
                "version {}, newer than this tool's {VERSION}: upgrade rds-proxy-runbook",
                plan.version
            )));
        }
        Ok(plan)
    }

    /// Whether `run` may do what the plan says: the error that names what
    /// moved otherwise, with the commands (`plan_hint`, `run_hint`) that
    /// make and run a new plan.
    pub fn holds(
        &self,
        runbook: &str,
        account: &str,
        region: &str,
        now: &[Now],
        plan_hint: &str,
        run_hint: &str,
    ) -> Result<()> {
        let moved = self.moved(runbook, account, region, now);
        if !moved.is_empty() {
            return Err(Failure::bad_input(format!(
                "the saved plan (made {}) no longer holds:\n  {}\nNothing was changed. Make a \
                 new plan, review it, and run that: `{plan_hint} -o PLAN` then `{run_hint} --plan \
                 PLAN`",
                self.created_at,
                moved.join("\n  "),
            )));
        }
        crate::say!(
            "The saved plan (made {}) still holds: the runbook and the account are as it found them.",
            self.created_at
        );
        Ok(())
    }

    /// How the runbook, the account and the state moved since the plan,
    /// step by step (empty: `run` may do what it says). `now` is each step
    /// of the runbook as `run` finds it.
    pub fn moved(&self, runbook: &str, account: &str, region: &str, now: &[Now]) -> Vec<String> {
        let mut out = Vec::new();
        if self.runbook != runbook {
            out.push(format!(
                "the plan is for runbook `{}`, not `{runbook}`",
                self.runbook
            ));
        }
        if (self.account.as_str(), self.region.as_str()) != (account, region) {
            out.push(format!(
                "the plan was made in account {} {}, this is {account} {region}",
                self.account, self.region
            ));
        }
        let planned: Vec<&str> = self.steps.iter().map(|s| s.name.as_str()).collect();
        let listed: Vec<&str> = now.iter().map(|n| n.name.as_str()).collect();
        if planned != listed {
            out.push(format!(
                "the runbook's steps changed: the plan has {}, the runbook {}",
                planned.join(", "),
                listed.join(", ")
            ));
            return out;
        }
        for (
            saved,
            Now {
                name,
                inputs,
                found,
                action,
            },
        ) in self.steps.iter().zip(now)
        {
            if saved.inputs != *inputs {
                out.push(format!("{name}: the runbook changed what it makes"));
            } else if let Some(planned) = &saved.found
                && found.as_ref() != Some(planned)
            {
                out.push(format!(
                    "{name}: the account changed since the plan (it was {})",
                    saved.action
                ));
            } else if let (Some(_), Some(action)) = (&saved.found, action)
                && action.as_str() != saved.action
            {
                // The same inputs and the same account, but the state
                // moved (another run recorded the step, say).
                out.push(format!(
                    "{name}: the plan said {}, `run` now decides {action} (the state changed \
                     since the plan)",
                    saved.action
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, inputs: &str, found: Option<&str>) -> SavedStep {
        SavedStep {
            name: name.into(),
            action: "update".into(),
            inputs: inputs.into(),
            found: found.map(String::from),
            details: Vec::new(),
        }
    }

    fn now(list: &[(&str, &str, Option<&str>)]) -> Vec<Now> {
        list.iter()
            .map(|(n, i, f)| Now {
                name: n.to_string(),
                inputs: i.to_string(),
                found: f.map(String::from),
                action: f.map(|_| Action::Update),
            })
            .collect()
    }

    #[test]
    fn a_plan_holds_while_nothing_moved_and_names_what_did() {
        let plan = SavedPlan::new(
            "rb",
            "1",
            "r",
            vec![step("a", "i1", Some("f1")), step("b", "i2", None)],
        );
        let same = now(&[("a", "i1", Some("f1")), ("b", "i2", Some("anything"))]);
        assert!(plan.moved("rb", "1", "r", &same).is_empty());
        let edited = now(&[("a", "i9", Some("f1")), ("b", "i2", None)]);
        assert_eq!(
            plan.moved("rb", "1", "r", &edited),
            ["a: the runbook changed what it makes"]
        );
        let drifted = now(&[("a", "i1", Some("f2")), ("b", "i2", None)]);
        assert_eq!(
            plan.moved("rb", "1", "r", &drifted),
            ["a: the account changed since the plan (it was update)"]
        );
        let unchecked = now(&[("a", "i1", None), ("b", "i2", None)]);
        assert_eq!(
            plan.moved("rb", "1", "r", &unchecked).len(),
            1,
            "a check failed"
        );
        let fewer = now(&[("a", "i1", Some("f1"))]);
        assert!(plan.moved("rb", "1", "r", &fewer)[0].contains("steps changed"));
        assert_eq!(plan.moved("other", "2", "r", &same).len(), 2);
        // The same inputs and answer, another decision: the state moved.
        let mut decided = now(&[("a", "i1", Some("f1")), ("b", "i2", None)]);
        decided[0].action = Some(Action::Drift);
        assert_eq!(
            plan.moved("rb", "1", "r", &decided),
            ["a: the plan said update, `run` now decides drift (the state changed since the plan)"]
        );
    }

    #[test]
    fn a_missing_plan_is_named_missing_and_a_file_that_is_no_plan_is_not_a_plan() {
        let dir = std::env::temp_dir().join(format!("rpr-saved-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.json");
        let e = SavedPlan::load(&missing).unwrap_err().to_string();
        assert!(e.contains("the file does not exist"), "{e}");
        assert!(!e.contains("is not a plan"), "{e}");
        let other = dir.join("other.json");
        std::fs::write(&other, "{}").unwrap();
        let e = SavedPlan::load(&other).unwrap_err().to_string();
        assert!(e.contains("is not a plan written by"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn found_digests_see_any_difference() {
        let a = found_digest(&Found::Update(vec!["x: 1 -> 2".into()], Default::default()));
        assert_eq!(
            a,
            found_digest(&Found::Update(vec!["x: 1 -> 2".into()], Default::default()))
        );
        assert_ne!(
            a,
            found_digest(&Found::Update(vec!["x: 3 -> 2".into()], Default::default()))
        );
        assert_ne!(found_digest(&Found::Missing), a);
    }
}
