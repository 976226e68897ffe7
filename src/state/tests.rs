use super::lock::Lock;
use super::*;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rpr-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn transitions() {
    use Status::*;
    assert_eq!(transition(Pending, Event::Start), Ok(Started));
    assert_eq!(transition(Started, Event::Applied), Ok(Applied));
    assert_eq!(transition(Started, Event::Fail), Ok(Failed));
    assert_eq!(transition(Failed, Event::Start), Ok(Started));
    assert_eq!(transition(Applied, Event::RolledBack), Ok(RolledBack));
    assert_eq!(transition(RolledBack, Event::Start), Ok(Started));
    assert_eq!(transition(Pending, Event::Applied), Ok(Applied));
    assert!(transition(Pending, Event::RolledBack).is_err());
    assert!(transition(RolledBack, Event::RolledBack).is_err());
    assert_eq!(transition(Pending, Event::Fail), Ok(Failed));
}

#[test]
fn a_step_is_ours_from_its_start_until_it_is_rolled_back() {
    let mut st = State::new("rb");
    // Found done without a start: not ours (another state made it).
    assert_eq!(st.advance("a", Event::Applied).unwrap().origin, None);
    assert_eq!(st.advance("b", Event::Fail).unwrap().origin, None);
    assert_eq!(
        st.advance("a", Event::Start).unwrap().origin,
        Some(Origin::Created)
    );
    assert_eq!(
        st.advance("a", Event::Fail).unwrap().origin,
        Some(Origin::Created),
        "a create that failed may have left something of ours"
    );
    assert_eq!(
        st.advance("a", Event::Applied).unwrap().origin,
        Some(Origin::Created)
    );
    assert_eq!(st.advance("a", Event::RolledBack).unwrap().origin, None);
}

#[test]
fn a_version_1_state_counts_the_steps_that_acted_as_ours() {
    let text = r#"{"schema_version": 1, "runbook": "rb", "steps": {
        "a": {"status": "applied", "inputs": {}},
        "b": {"status": "failed"},
        "c": {"status": "rolled_back", "inputs": {}}}}"#;
    let st = State::parse(Path::new("s"), text, "rb").unwrap();
    assert_eq!(st.steps["a"].origin, Some(Origin::Created));
    assert_eq!(st.steps["b"].origin, None, "failed before it started");
    assert_eq!(st.steps["c"].origin, None);
    assert_eq!(st.schema_version, SCHEMA_VERSION);
}

#[test]
fn only_steps_that_may_have_acted_roll_back() {
    assert!(Status::Applied.may_have_changed_account());
    assert!(Status::Started.may_have_changed_account());
    assert!(Status::Failed.may_have_changed_account());
    assert!(!Status::Pending.may_have_changed_account());
    assert!(!Status::RolledBack.may_have_changed_account());
}

#[test]
fn save_is_atomic_private_and_round_trips() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmpdir("save");
    let path = dir.join("sub/x.state.json");
    let mut st = State::new("rb");
    let rec = st.advance("proxy-role", Event::Start).unwrap();
    rec.outputs
        .insert("arn".into(), "arn:aws:iam::1:role/r".into());
    st.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let back = State::load(&path, "rb").unwrap();
    assert_eq!(back, st);
    // Its copy: the same text, as private.
    let backup = recovery::backup_path(&path);
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        std::fs::read(&path).unwrap()
    );
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn missing_file_is_a_fresh_state() {
    let dir = tmpdir("missing");
    let st = State::load(&dir.join("none.json"), "rb").unwrap();
    assert!(st.steps.is_empty());
}

#[test]
fn corrupt_newer_and_foreign_states_are_refused() {
    let p = Path::new("s.json");
    assert!(matches!(
        State::parse(p, "{\"schema_version\": 1, \"runb", "rb"),
        Err(StateError::Corrupt { .. })
    ));
    assert!(matches!(
        State::parse(p, "{\"schema_version\": 99, \"runbook\": \"rb\"}", "rb"),
        Err(StateError::Newer { found: 99, .. })
    ));
    let err = State::parse(p, "{\"schema_version\": 1, \"runbook\": \"other\"}", "rb").unwrap_err();
    assert!(err.to_string().contains("belongs to runbook `other`"));
    assert!(matches!(
        State::parse(p, "[]", "rb"),
        Err(StateError::Corrupt { .. })
    ));
}

#[test]
fn checksum_ignores_key_order_and_sees_changes() {
    let a: Value = serde_json::from_str(r#"{"a":1,"b":[1,2]}"#).unwrap();
    let b: Value = serde_json::from_str(r#"{"b":[1,2],"a":1}"#).unwrap();
    let c: Value = serde_json::from_str(r#"{"b":[2,1],"a":1}"#).unwrap();
    assert_eq!(checksum(&a), checksum(&b));
    assert_ne!(checksum(&a), checksum(&c));
    assert_eq!(checksum(&a).len(), 64);
    let nested_a: Value = serde_json::from_str(r#"{"x":{"p":1,"q":2}}"#).unwrap();
    let nested_b: Value = serde_json::from_str(r#"{"x":{"q":2,"p":1}}"#).unwrap();
    assert_eq!(checksum(&nested_a), checksum(&nested_b));
    let waits: Value = serde_json::from_str(r#"{"a":1,"b":[1,2],"_wait":9}"#).unwrap();
    assert_eq!(checksum(&a), checksum(&waits), "settings are not inputs");
}

#[test]
fn second_lock_names_the_holder() {
    let dir = tmpdir("lock");
    let path = dir.join("x.state.json");
    let held = Lock::acquire(&path).unwrap();
    match Lock::acquire(&path) {
        Err(StateError::Locked { pid, host, .. }) => {
            assert_eq!(pid, std::process::id().to_string());
            assert!(!host.is_empty());
        }
        other => panic!("expected Locked, got {:?}", other.err()),
    }
    drop(held);
    Lock::acquire(&path).unwrap();
}
