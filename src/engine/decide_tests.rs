//! Every combination of what a check finds, the record and the flags that
//! matters, decided once for `plan`, `run`, `--confirm` and the saved plan.

use super::*;
use crate::error::{EXIT_BAD_INPUT, EXIT_STEP_FAILED};

/// A step this state made and applied, its inputs unchanged.
fn ours() -> Facts {
    Facts {
        applied: true,
        origin: Some(Origin::Created),
        ..Facts::default()
    }
}

fn outputs(id: &str) -> Outputs {
    [("id".to_string(), id.to_string())].into()
}

const NO: Flags = Flags {
    allow_replace: false,
    adopt: false,
};
const ALLOW: Flags = Flags {
    allow_replace: true,
    adopt: false,
};
const ADOPT: Flags = Flags {
    allow_replace: false,
    adopt: true,
};

fn found(f: &Facts, found: Found, flags: Flags) -> Decision {
    decide(f, Checked::Found(&found), flags)
}

#[test]
fn a_tag_only_edit_is_an_update_in_place_never_a_create() {
    let edited = Facts {
        edits: Some(vec!["tags.team: a -> b".into()]),
        ..ours()
    };
    let diffs = vec!["tag team: a -> b".to_string()];
    let d = found(&edited, Found::Update(diffs.clone(), outputs("r")), NO);
    assert_eq!(
        d,
        Decision::Update {
            diffs: diffs.clone(),
            edits: vec!["tags.team: a -> b".into()]
        }
    );
    assert_eq!(d.action(), Action::Update);
    // The same difference with the runbook unchanged: changed by hand.
    let d = found(&ours(), Found::Update(diffs.clone(), outputs("r")), NO);
    assert_eq!(d, Decision::PutBack { drift: diffs });
    assert_eq!(d.action(), Action::Drift);
}

#[test]
fn what_adopt_recorded_as_found_is_brought_to_the_runbook_as_an_update() {
    // `adopt` records no checksum for what differs: an update with no edit.
    let adopted = Facts {
        origin: Some(Origin::Adopted),
        edits: Some(Vec::new()),
        ..ours()
    };
    let d = found(&adopted, Found::Update(vec!["x".into()], outputs("r")), NO);
    assert_eq!(
        d,
        Decision::Update {
            diffs: vec!["x".into()],
            edits: vec![]
        }
    );
}

#[test]
fn after_a_killed_update_the_plan_says_what_resume_does() {
    // Killed while the proxy modifies: the record is `started` with the
    // new inputs; the check finds it unfinished, with its outputs known.
    let killed = Facts {
        applied: false,
        ..ours()
    };
    let modifying = Found::Incomplete("modifying".into(), Some(outputs("p")));
    let d = found(&killed, modifying.clone(), NO);
    assert_eq!(
        d,
        Decision::Finish {
            why: "modifying".into()
        }
    );
    // The steps after it read the outputs it already gives: they are
    // planned from them, not shown waiting (an update to a placeholder).
    assert_eq!(gives(&d, &modifying), Some(&outputs("p")));
    // A step after it whose update landed before the kill: done, as
    // resume finds it; the same facts give the same answer to both.
    let done = Found::Done(outputs("q"));
    let d = found(&ours(), done.clone(), NO);
    assert_eq!(d.action(), Action::None);
    assert_eq!(gives(&d, &done), Some(&outputs("q")));
    // Killed before it was put back: the record's inputs are the runbook's.
    let d = found(&killed, Found::Update(vec!["x".into()], outputs("r")), NO);
    assert_eq!(d.action(), Action::Drift);
}

#[test]
fn a_replacement_is_refused_without_allow_replace_with_exit_code_3() {
    let renamed = Facts {
        identity: vec!["name: a -> b".into()],
        identity_as_loaded: true,
        ..ours()
    };
    assert!(!needs_check(&renamed, NO), "refused before any read");
    let d = decide(&renamed, Checked::Not, NO);
    assert_eq!(d, Decision::Blocked(Block::ReplaceRefused));
    assert_eq!(d.action(), Action::Replace);
    assert_eq!(d.blocked().map(Block::exit_code), Some(EXIT_BAD_INPUT));
    // Allowed: the new one, beside the old.
    assert!(needs_check(&renamed, ALLOW));
    let d = found(&renamed, Found::Missing, ALLOW);
    assert_eq!(d, Decision::Replace { checked: true });
    // Waiting on a replacement before it (the target of a new proxy).
    let after = Facts {
        waits_for_outputs: true,
        ..renamed.clone()
    };
    assert_eq!(
        decide(&after, Checked::Not, ALLOW),
        Decision::Replace { checked: false }
    );
    // A replacement under way (the state as loaded has no edit: the new
    // one's inputs are the record's): never refused, even without the flag.
    let under_way = Facts {
        identity_as_loaded: false,
        ..renamed
    };
    assert_eq!(
        found(&under_way, Found::Missing, NO),
        Decision::Replace { checked: true }
    );
}

#[test]
fn a_replacement_made_only_with_the_proxy_is_refused_alone_even_when_allowed() {
    let alone = Facts {
        identity: vec!["description: a -> b".into()],
        identity_as_loaded: true,
        alone: Some("the old proxy uses it"),
        ..ours()
    };
    for flags in [NO, ALLOW] {
        let d = decide(&alone, Checked::Not, flags);
        assert_eq!(d, Decision::Blocked(Block::Alone("the old proxy uses it")));
        assert_eq!(d.action(), Action::Replace);
        assert_eq!(d.blocked().unwrap().exit_code(), EXIT_BAD_INPUT);
    }
}

#[test]
fn what_only_a_new_resource_would_match_is_blocked_with_or_without_allow() {
    for flags in [NO, ALLOW] {
        let d = found(&ours(), Found::Replace(vec!["subnets".into()]), flags);
        assert_eq!(
            d,
            Decision::Blocked(Block::NeedsNewName(vec!["subnets".into()]))
        );
        assert_eq!(d.action(), Action::Replace);
        assert_eq!(d.blocked().unwrap().exit_code(), EXIT_BAD_INPUT);
    }
}

#[test]
fn what_this_state_never_made_is_blocked_or_adopted_with_adopt() {
    let elsewhere = Facts {
        origin: None,
        applied: false,
        edits: Some(vec!["(inputs): none recorded".into()]),
        ..Facts::default()
    };
    let done = Found::Done(outputs("x"));
    let d = found(&elsewhere, done.clone(), NO);
    assert_eq!(
        d,
        Decision::Blocked(Block::MadeElsewhere { unfinished: None })
    );
    assert_eq!(d.action(), Action::Blocked);
    assert_eq!(d.blocked().unwrap().exit_code(), EXIT_BAD_INPUT);
    // The later steps are checked from it rather than shown waiting.
    assert_eq!(gives(&d, &done), Some(&outputs("x")));
    assert_eq!(
        found(&elsewhere, done, ADOPT),
        Decision::Adopt {
            outputs: outputs("x")
        }
    );
    // To change once taken over: an update, the inputs never recorded.
    let d = found(
        &elsewhere,
        Found::Update(vec!["x".into()], outputs("x")),
        ADOPT,
    );
    assert_eq!(d.action(), Action::Update);
    let d = found(
        &elsewhere,
        Found::Update(vec!["x".into()], outputs("x")),
        NO,
    );
    assert_eq!(
        d,
        Decision::Blocked(Block::MadeElsewhere { unfinished: None })
    );
    // Unfinished elsewhere: only the state that started it finishes it.
    let creating = Found::Incomplete("creating".into(), None);
    for flags in [NO, ADOPT] {
        assert_eq!(
            found(&elsewhere, creating.clone(), flags),
            Decision::Blocked(Block::MadeElsewhere {
                unfinished: Some("creating".into())
            })
        );
    }
    // Nothing there: made here.
    assert_eq!(
        found(&elsewhere, Found::Missing, NO),
        Decision::Create { again: false }
    );
    // Ours or adopted by this state: never someone else's.
    for origin in [Origin::Created, Origin::Adopted] {
        let f = Facts {
            origin: Some(origin),
            ..ours()
        };
        assert_eq!(
            found(&f, Found::Done(outputs("x")), NO).action(),
            Action::None
        );
    }
}

#[test]
fn what_was_deleted_by_hand_is_made_again_and_said() {
    assert_eq!(
        found(&ours(), Found::Missing, NO),
        Decision::Create { again: true }
    );
}

#[test]
fn a_step_that_reads_outputs_not_known_yet_is_not_checked() {
    let waiting = Facts {
        waits_for_outputs: true,
        ..ours()
    };
    assert!(!needs_check(&waiting, NO));
    // What it made stays, changed by what it waits for.
    assert_eq!(decide(&waiting, Checked::Not, NO), Decision::Follow);
    assert_eq!(Decision::Follow.action(), Action::Update);
    let new = Facts {
        applied: false,
        ..waiting
    };
    assert_eq!(
        decide(&new, Checked::Not, NO),
        Decision::Create { again: false }
    );
}

#[test]
fn a_verification_only_runs_whatever_the_record_says() {
    let verify = Facts {
        verifies: true,
        origin: None,
        waits_for_outputs: true,
        ..Facts::default()
    };
    assert!(!needs_check(&verify, NO));
    let d = found(&verify, Found::Foreign("x".into()), NO);
    assert_eq!(d, Decision::Verify);
    assert_eq!(d.action(), Action::Verify);
}

#[test]
fn a_foreign_resource_or_a_failed_check_fails_the_step() {
    let d = found(&ours(), Found::Foreign("a role of that name".into()), NO);
    assert_eq!(d.action(), Action::Blocked);
    assert_eq!(d.blocked().unwrap().exit_code(), EXIT_STEP_FAILED);
    let d = decide(&ours(), Checked::Failed("denied"), NO);
    assert_eq!(d, Decision::Blocked(Block::CheckFailed("denied".into())));
    assert_eq!(d.blocked().unwrap().exit_code(), EXIT_STEP_FAILED);
}

#[test]
fn the_one_a_replacement_left_named_again_is_taken_back() {
    let back = Facts {
        back: true,
        ..ours()
    };
    assert_eq!(
        found(&back, Found::Done(outputs("old")), NO),
        Decision::Nothing {
            outputs: outputs("old"),
            back: true
        }
    );
}

#[test]
fn actions_are_spelt_as_the_json_plan_has_them() {
    let all = [
        (Action::Create, "create"),
        (Action::Finish, "finish"),
        (Action::Update, "update"),
        (Action::Drift, "drift"),
        (Action::Replace, "replace"),
        (Action::None, "none"),
        (Action::Verify, "verify"),
        (Action::Blocked, "blocked"),
    ];
    for (a, s) in all {
        assert_eq!(a.as_str(), s);
        assert_eq!(serde_json::to_value(a).unwrap(), s);
    }
}

/// A runbook of two steps, with `extra` appended (a `[tags]` table).
fn runbook(role: &str, extra: &str) -> Runbook {
    let src = format!(
        "name = \"t\"\nsteps = [\"proxy-role\", \"proxy-security-group\"]\n[network]\n\
         vpc_id = \"vpc-0123456789abcdef0\"\nsubnet_ids = [\"subnet-0123456789abcdef0\", \"subnet-0123456789abcdef1\"]\n[database]\n\
         instance_id = \"db1\"\nsecurity_group_id = \"sg-0dddddddddddddddd\"\n\
         secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:s\"\n\
         engine_family = \"MYSQL\"\n[proxy_role]\nname = \"{role}\"\n\
         [proxy_security_group]\nname = \"sg\"\n[proxy]\nname = \"p1\"\n[connect_policy]\nname = \"pol\"\n{extra}"
    );
    let none = |_: &str| None;
    Runbook::parse(
        std::path::Path::new("runbooks/t.toml"),
        &src,
        &none,
        &crate::steps::Catalogue,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The state after `rb`'s proxy-role was created and applied.
fn applied(rb: &Runbook) -> State {
    let step = crate::steps::get("proxy-role").unwrap();
    let mut state = State::new(&rb.name);
    let (inputs, _) = super::super::resolve(step, rb, &state);
    let rec = state.steps.entry("proxy-role".into()).or_default();
    rec.status = Status::Applied;
    rec.origin = Some(Origin::Created);
    rec.checksum = Some(state::checksum(&inputs));
    rec.inputs = Some(inputs);
    state
}

fn facts_of(rb: &Runbook, state: &State) -> Facts {
    let step = crate::steps::get("proxy-role").unwrap();
    let (inputs, missing) = super::super::resolve(step, rb, state);
    Facts::of(step, rb, state, state, &inputs, &missing)
}

#[test]
fn facts_tell_a_tag_edit_from_a_rename_and_from_no_edit() {
    let rb = runbook("role", "");
    let state = applied(&rb);
    let same = facts_of(&rb, &state);
    assert_eq!(same.edits, None);
    assert!(!same.replacing());
    assert!(same.applied);
    assert_eq!(same.origin, Some(Origin::Created));
    // A tag added: an edit of the inputs, not of the role's name.
    let tagged = facts_of(&runbook("role", "[tags]\nteam = \"a\"\n"), &state);
    assert!(!tagged.replacing(), "{tagged:?}");
    let edits = tagged.edits.clone().expect("edited");
    assert!(
        edits.iter().any(|e| e.starts_with("tags.team")),
        "{edits:?}"
    );
    let diffs = vec!["tag team: (none) -> a".to_string()];
    assert_eq!(
        decide(
            &tagged,
            Checked::Found(&Found::Update(diffs, outputs("r"))),
            NO
        )
        .action(),
        Action::Update
    );
    // Renamed: a replacement, which a role gets only with a new proxy,
    // refused alone with or without --allow-replace.
    let renamed = facts_of(&runbook("role2", ""), &state);
    assert_eq!(renamed.identity, ["role_name: role -> role2"]);
    assert!(renamed.identity_as_loaded);
    assert!(renamed.alone.is_some());
    for flags in [NO, ALLOW] {
        let d = decide(&renamed, Checked::Not, flags);
        assert!(matches!(d, Decision::Blocked(Block::Alone(_))), "{d:?}");
    }
    // Never applied: made elsewhere if the account has it.
    let fresh = facts_of(&rb, &State::new("t"));
    assert_eq!(fresh.origin, None);
    assert!(!fresh.applied);
}
