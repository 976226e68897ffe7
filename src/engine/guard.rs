//! The rule that keeps functions working through a rollback and through
//! the end of a replacement: nothing a proxy needs to serve is undone while
//! a function's variable points at it, whatever the state says.

use anyhow::Result;
use futures_util::future::try_join_all;

use crate::aws::Aws;
use crate::runbook::Runbook;
use crate::state::{Origin, State};
use crate::steps::{self, Step};

pub(crate) struct Guard {
    /// The proxies guarded, by name.
    pub(crate) proxies: Vec<String>,
    /// Their endpoints, as the account has them.
    pub(crate) endpoints: Vec<String>,
    /// The runbook's functions, as the state recorded them.
    pub(crate) functions: Vec<String>,
}

impl Guard {
    /// Whether undoing `step` could leave a function on a proxy that
    /// cannot serve it: every step that changed the account, but the ones
    /// that point the functions (undone first).
    pub(crate) fn covers(step: &dyn Step) -> bool {
        step.changes_account() && !step.sets_function_variables() && step.serves_functions()
    }

    /// The guard for undoing `undo` (what this state adopted too, with
    /// `include_adopted`), if any of them is covered and one of the
    /// runbook's proxies (the current one, or one a replacement left) exists
    /// in the account.
    pub(crate) async fn read(
        rb: &Runbook,
        state: &State,
        undo: &[&str],
        include_adopted: bool,
        aws: &Aws,
    ) -> Result<Option<Guard>> {
        let covered = undo.iter().any(|n| {
            let rec = state.record(n);
            let undone = |r: &crate::state::StepRecord| {
                r.inputs.is_some() && (include_adopted || r.origin != Some(Origin::Adopted))
            };
            steps::get(n).is_some_and(Guard::covers)
                && rec.is_some_and(|r| undone(r) || !r.retired.is_empty())
        });
        if !covered {
            return Ok(None);
        }
        let recorded = |step: &str| state.record(step).and_then(|r| r.inputs.clone());
        let mut names: Vec<String> = steps::proxy_name(rb, &recorded).into_iter().collect();
        names.extend(retired_proxies(state));
        Ok(Guard::of(names, aws).await?.map(|g| Guard {
            functions: recorded_functions(state),
            ..g
        }))
    }

    /// The guard of the proxies `names` that exist in the account (for the
    /// end of a replacement: the [`retired_proxies`], which no function may
    /// still point at when they are deleted).
    pub(crate) async fn of(mut names: Vec<String>, aws: &Aws) -> Result<Option<Guard>> {
        names.sort();
        names.dedup();
        let (mut proxies, mut endpoints) = (Vec::new(), Vec::new());
        for name in names {
            if let Some(found) = crate::aws::rds::find(aws, &name).await? {
                endpoints.extend(found.endpoint().map(String::from));
                proxies.push(name);
            }
        }
        Ok((!proxies.is_empty()).then_some(Guard {
            proxies,
            endpoints,
            functions: Vec::new(),
        }))
    }

    pub(crate) async fn pointing(&self, aws: &Aws) -> Result<Vec<(String, String)>> {
        aws.variables_naming(&self.endpoints).await
    }

    /// Of the variables pointing at the guarded proxies, those that undoing
    /// `undo` could cut off: all of them when one of the steps serves the
    /// proxy as a whole (its target, its rules, its role, the proxy itself);
    /// when they all act on the runbook's functions only (their roles'
    /// policy, their groups' rules), those of the runbook's functions and of
    /// any function sharing a role or a security group with one of them.
    pub(crate) async fn cut_off(
        &self,
        aws: &Aws,
        undo: &[&dyn Step],
    ) -> Result<Vec<(String, String)>> {
        let pointing = self.pointing(aws).await?;
        let whole = undo
            .iter()
            .any(|s| Guard::covers(*s) && !s.acts_on_lambdas());
        if pointing.is_empty() || whole {
            return Ok(pointing);
        }
        let ours = try_join_all(self.functions.iter().map(|f| aws.function_if_any(f))).await?;
        let (mut roles, mut groups) = (Vec::new(), Vec::new());
        for conf in ours.iter().flatten() {
            roles.extend(conf.role().map(String::from));
            groups.extend(
                conf.vpc_config()
                    .map(|v| v.security_group_ids().to_vec())
                    .unwrap_or_default(),
            );
        }
        let mut out = Vec::new();
        for (function, variable) in pointing {
            let shares = match self.functions.contains(&function) {
                true => true,
                false => aws.function_if_any(&function).await?.is_some_and(|c| {
                    c.role().is_some_and(|r| roles.iter().any(|o| o == r))
                        || c.vpc_config().is_some_and(|v| {
                            v.security_group_ids().iter().any(|g| groups.contains(g))
                        })
                }),
            };
            if shares {
                out.push((function, variable));
            }
        }
        Ok(out)
    }

    /// What the user reads when functions still point at the proxy:
    /// `what` stopped, `why` they are not put back.
    pub(crate) fn stranded(
        &self,
        what: &str,
        why: &str,
        pointing: &[(String, String)],
        hint: &str,
    ) -> String {
        let names: Vec<String> = pointing
            .iter()
            .map(|(f, v)| format!("{v} of Lambda function {f}"))
            .collect();
        format!(
            "{what}: {} still point(s) at proxy `{}` ({}), which this would leave unable to \
             serve them ({why}). Set each variable back to the database's endpoint (in the \
             Lambda console, which keeps the function's other variables), or to the runbook's \
             proxy, then run `{hint}` again.",
            names.join(", "),
            self.proxies.join("`, `"),
            self.endpoints.join(", "),
        )
    }
}

/// The functions the state's steps acted on (their variables, their roles'
/// policy, their groups' rules, the invoke), each once.
fn recorded_functions(state: &State) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let acting = steps::names()
        .into_iter()
        .filter(|n| steps::named(n).acts_on_lambdas());
    for step in acting {
        let Some(list) = state
            .record(step)
            .and_then(|r| r.inputs.as_ref()?.get("functions")?.as_array().cloned())
        else {
            continue;
        };
        for f in list {
            let name = f.as_str().or_else(|| f.get("name")?.as_str());
            if let Some(name) = name.filter(|n| !out.iter().any(|o| o == n)) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The names of the proxies that replacements retired and that this state
/// made (an adopted one is left to its owner).
pub(crate) fn retired_proxies(state: &State) -> Vec<String> {
    state
        .record(steps::PROXY)
        .into_iter()
        .flat_map(|r| &r.retired)
        .filter(|r| r.origin == Origin::Created)
        .filter_map(|r| r.inputs.get("name")?.as_str().map(String::from))
        .collect()
}
