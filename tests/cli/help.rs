//! The command tree: help, completions, the man page.

use super::*;

#[test]
fn completions_and_the_man_page_come_from_the_command_tree() {
    let out = |args: &[&str]| {
        let o = std::process::Command::new(BIN).args(args).bounded_output();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let bash = out(&["completions", "bash"]);
    for word in [
        "plan",
        "run",
        "resume",
        "rollback",
        "status",
        "doctor",
        "--endpoint-url",
    ] {
        assert!(bash.contains(word), "bash completions lack {word}");
    }
    // bash loads it and registers the completion.
    let script = temp_dir("completions").join("c.bash");
    std::fs::write(&script, &bash).unwrap();
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p rds-proxy-runbook",
            script.display()
        ))
        .bounded_output();
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains("rds-proxy-runbook"),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert!(out(&["completions", "zsh"]).starts_with("#compdef rds-proxy-runbook"));
    assert!(out(&["completions", "fish"]).contains("-a \"rollback\""));
    let man = out(&["man"]);
    assert!(man.contains(".TH rds-proxy-runbook 1"), "{man}");
    assert!(
        man.contains("rollback") && man.contains("Exit codes"),
        "{man}"
    );
    let tcsh = std::process::Command::new(BIN)
        .args(["completions", "tcsh"])
        .bounded_output();
    assert_eq!(tcsh.status.code(), Some(2));
}

#[test]
fn help_lists_exit_codes_and_commands() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .bounded_output();
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "plan",
        "run",
        "resume",
        "status",
        "rollback",
        "--endpoint-url",
        "--state",
        "Exit codes",
        "130",
    ] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}
