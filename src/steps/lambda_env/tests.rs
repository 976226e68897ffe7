//! The lambda-env step's unit tests: the old values kept and put back,
//! the update statuses, and the step against a mocked Lambda.

use aws_sdk_lambda::types::LastUpdateStatus;

use super::diff::update_decision;
use super::*;
use crate::poll::Wait;

fn entry(name: &str, variable: &str) -> Function {
    Function {
        name: name.into(),
        variable: variable.into(),
        restore: None,
        include_adopted_restore: None,
        endpoint: None,
    }
}

#[test]
fn only_host_names_are_shown_or_replaced() {
    assert!(host_like("db.abc.us-east-1.rds.amazonaws.com"));
    assert!(host_like("10.0.0.5:3306"));
    assert!(!host_like("mysql://admin:s3cret@db.example:3306/app"));
    assert!(!host_like("user=admin password=x host=db"));
    assert!(!host_like(""));
}

#[test]
fn two_variables_of_one_function_keep_their_own_old_values() {
    let fs = [
        entry("api", "DB_HOST"),
        entry("jobs", "DB_HOST"),
        entry("api", "DB_RO_HOST"),
    ];
    let groups: Vec<Vec<String>> = by_function(&fs)
        .iter()
        .map(|g| g.iter().map(|f| f.key()).collect())
        .collect();
    assert_eq!(
        groups,
        [vec!["api.DB_HOST", "api.DB_RO_HOST"], vec!["jobs.DB_HOST"]]
    );
    let before = json!({"api.DB_HOST": "db", "api.DB_RO_HOST": null});
    assert_eq!(old_value(&before, &fs[0], &fs, false), Some(Some("db")));
    assert_eq!(
        old_value(&before, &fs[2], &fs, false),
        Some(None),
        "did not exist"
    );
    assert_eq!(
        old_value(&before, &fs[1], &fs, false),
        None,
        "not recorded: unknown"
    );
    // A state written before the keys named the variable: trusted only
    // for a function listed once.
    let old = json!({"api": "old", "jobs": "old2"});
    assert_eq!(old_value(&old, &fs[1], &fs, false), Some(Some("old2")));
    assert_eq!(old_value(&old, &fs[0], &fs, false), None);
}

/// A function found on the proxy goes back only where the user said:
/// their `restore_value` for every rollback; the value `init` wrote
/// (`include_adopted_restore_value`) for `rollback --include-adopted`
/// alone, else it is left as found.
#[test]
fn a_value_init_wrote_is_put_back_only_with_include_adopted() {
    let none = json!({});
    let by_init = Function {
        include_adopted_restore: Some("db".into()),
        ..entry("api", "DB_HOST")
    };
    let all = [by_init];
    assert_eq!(old_value(&none, &all[0], &all, false), None);
    assert_eq!(old_value(&none, &all[0], &all, true), Some(Some("db")));
    assert!(left_as_found(&all[0]).contains("`rollback --include-adopted` puts back db"));
    let by_user = Function {
        restore: Some("db".into()),
        ..entry("api", "DB_HOST")
    };
    let all = [by_user];
    assert_eq!(old_value(&none, &all[0], &all, false), Some(Some("db")));
    // What the state recorded comes first.
    let before = json!({"api.DB_HOST": "recorded"});
    assert_eq!(
        old_value(&before, &all[0], &all, false),
        Some(Some("recorded"))
    );
    let i = Inputs {
        endpoint: "proxy".into(),
        functions: vec![Function {
            include_adopted_restore: Some("db".into()),
            ..entry("api", "DB_HOST")
        }],
    };
    assert!(StepImpl::restores(&LambdaEnv, &i, None, false).is_empty());
    assert_eq!(
        StepImpl::restores(&LambdaEnv, &i, None, true),
        [("api".to_string(), "DB_HOST".to_string())]
    );
}

#[test]
fn functions_no_longer_listed_are_put_back_then_forgotten() {
    let i = Inputs {
        endpoint: "proxy".into(),
        functions: vec![entry("api", "DB_HOST")],
    };
    let before = json!({"api.DB_HOST": "db", "jobs.DB_HOST": null, "old": "x"});
    assert_eq!(
        removed(&before, &i),
        vec![("jobs".to_string(), "DB_HOST".to_string(), None)],
        "a key of the old format is not followed"
    );
    let all: Vec<String> = with_removed(&i, &before).iter().map(|f| f.key()).collect();
    assert_eq!(
        all,
        ["api.DB_HOST", "jobs.DB_HOST"],
        "rollback restores both"
    );
    let settled = StepImpl::settled_before(&LambdaEnv, &i, Some(before)).unwrap();
    assert_eq!(settled, json!({"api.DB_HOST": "db", "old": "x"}));
}

#[test]
fn update_status_decisions() {
    assert!(matches!(update_decision(None, None), Ok(Wait::Ready(()))));
    assert!(matches!(
        update_decision(Some(&LastUpdateStatus::Successful), None),
        Ok(Wait::Ready(()))
    ));
    assert!(matches!(
        update_decision(Some(&LastUpdateStatus::InProgress), None),
        Ok(Wait::Pending(s)) if s == "InProgress"
    ));
    let e = update_decision(Some(&LastUpdateStatus::Failed), Some("ENI limit")).unwrap_err();
    assert!(e.to_string().contains("ENI limit"));
}

mod mocked {
    use super::*;
    use crate::steps::mock::{Mocked, block_on};
    use aws_sdk_lambda::Client;
    use aws_sdk_lambda::error::ErrorMetadata;
    use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
    use aws_sdk_lambda::operation::update_function_configuration::{
        UpdateFunctionConfigurationError, UpdateFunctionConfigurationOutput,
    };
    use aws_sdk_lambda::types::EnvironmentResponse;
    use aws_smithy_mocks::mock;

    fn config(db_host: &str, status: LastUpdateStatus) -> GetFunctionConfigurationOutput {
        GetFunctionConfigurationOutput::builder()
            .last_update_status(status)
            .environment(
                EnvironmentResponse::builder()
                    .variables("DB_HOST", db_host)
                    .variables("DB_USER", "admin")
                    .build(),
            )
            .build()
    }

    fn inputs() -> Inputs {
        Inputs {
            endpoint: "proxy.example".into(),
            functions: vec![Function {
                name: "f".into(),
                variable: "DB_HOST".into(),
                restore: None,
                include_adopted_restore: None,
                endpoint: None,
            }],
        }
    }

    #[test]
    fn conflicts_are_retried_and_other_variables_kept() {
        let get = mock!(Client::get_function_configuration)
            .then_output(|| config("db.example", LastUpdateStatus::Successful));
        // Only an update that keeps DB_USER and sets DB_HOST matches.
        let update = mock!(Client::update_function_configuration)
            .match_requests(|req| {
                let vars = req.environment().and_then(|e| e.variables());
                vars.is_some_and(|v| {
                    v.get("DB_USER").map(String::as_str) == Some("admin")
                        && v.get("DB_HOST").map(String::as_str) == Some("proxy.example")
                })
            })
            .sequence()
            .error(|| {
                UpdateFunctionConfigurationError::generic(
                    ErrorMetadata::builder()
                        .code("ResourceConflictException")
                        .build(),
                )
            })
            .times(2)
            .output(|| UpdateFunctionConfigurationOutput::builder().build())
            .build();
        let m = Mocked::new(&[], &[], &[&get, &update]);
        let out = block_on(StepImpl::apply(&LambdaEnv, &m.cx(), &inputs())).unwrap();
        assert_eq!(out["endpoint"], "proxy.example");
        assert_eq!(update.num_calls(), 3);
    }

    #[test]
    fn an_update_in_progress_is_waited_on_and_a_failed_one_reported() {
        let get = mock!(Client::get_function_configuration)
            .sequence()
            .output(|| config("db.example", LastUpdateStatus::InProgress))
            .times(2)
            .output(|| {
                GetFunctionConfigurationOutput::builder()
                    .last_update_status(LastUpdateStatus::Failed)
                    .last_update_status_reason("EniLimitExceeded")
                    .build()
            })
            .repeatedly()
            .build();
        let m = Mocked::new(&[], &[], &[&get]);
        let e = block_on(StepImpl::apply(&LambdaEnv, &m.cx(), &inputs())).unwrap_err();
        assert!(e.to_string().contains("EniLimitExceeded"), "{e}");
        // The read before the update, then the waits' looks; no update.
        assert_eq!(get.num_calls(), 3);
    }

    #[test]
    fn rollback_restores_the_old_value_only_if_ours_is_still_there() {
        let get = mock!(Client::get_function_configuration)
            .then_output(|| config("proxy.example", LastUpdateStatus::Successful));
        let update = mock!(Client::update_function_configuration)
            .match_requests(|req| {
                req.environment()
                    .and_then(|e| e.variables())
                    .and_then(|v| v.get("DB_HOST"))
                    .map(String::as_str)
                    == Some("db.example")
            })
            .then_output(|| UpdateFunctionConfigurationOutput::builder().build());
        let m = Mocked::new(&[], &[], &[&get, &update]);
        let before = json!({"f": "db.example"});
        let undone = block_on(StepImpl::rollback(
            &LambdaEnv,
            &m.cx(),
            &inputs(),
            Some(&before),
        ))
        .unwrap();
        assert_eq!(undone, Undone::Done("restored f.DB_HOST".into()));
        assert_eq!(update.num_calls(), 1);

        // Someone pointed it elsewhere since: left alone.
        let get = mock!(Client::get_function_configuration)
            .then_output(|| config("other.example", LastUpdateStatus::Successful));
        let m = Mocked::new(&[], &[], &[&get]);
        let undone = block_on(StepImpl::rollback(
            &LambdaEnv,
            &m.cx(),
            &inputs(),
            Some(&before),
        ))
        .unwrap();
        assert!(matches!(undone, Undone::AlreadyGone(_)), "{undone:?}");
    }
}
