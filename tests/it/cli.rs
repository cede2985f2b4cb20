use crate::context::{TestContext, run_in_repo};

#[test]
fn help_and_version_exit_zero() {
    let help = run_in_repo(&["--help"]);
    assert_eq!(help.status, 0);
    for command in ["init", "validate", "schema"] {
        assert!(help.stdout.contains(command), "{}", help.stdout);
    }
    assert!(help.stdout.contains("Exit status"));
    let version = run_in_repo(&["--version"]);
    assert_eq!(version.status, 0);
    assert!(version.stdout.starts_with("outrig "));
}

#[test]
fn bad_flags_exit_one_with_a_message() {
    let run = run_in_repo(&["validate", "--no-such-flag"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("--no-such-flag"), "{}", run.stderr);
    let run = run_in_repo(&["validate", "--format", "yaml"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("human"), "{}", run.stderr);
}

#[test]
fn no_config_found_names_init() {
    let context = TestContext::new();
    let run = context.run(&["validate"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("no `outrig.toml`"), "{}", run.stderr);
    assert!(run.stderr.contains("outrig init"), "{}", run.stderr);
}

#[test]
fn config_is_found_by_walking_up() {
    let context = TestContext::new();
    context.write("outrig.toml", "[images.base]\nfrom = \"localhost/x:y\"\n");
    let nested = context.path().join("a/b/c");
    std::fs::create_dir_all(&nested).unwrap();
    let run = context.run_in(&nested, &["validate"]);
    assert_eq!(run.status, 0, "{}", run.all());
}

#[test]
fn colour_only_when_asked_and_never_with_no_color() {
    let context = TestContext::new();
    context.write("outrig.toml", "[images.base]\nfrm = 1\n");
    // NO_COLOR is set by the test context: no escapes, even with a bad config.
    let run = context.run(&["validate"]);
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    let run = context.run(&["validate", "--color", "always"]);
    assert!(run.stderr.contains('\u{1b}'), "{}", run.stderr);
}

/// `logs`, `discard` and `show` take `latest`, a whole id or a unique prefix; an ambiguous
/// prefix lists the candidates and changes nothing.
#[test]
fn session_arguments_accept_latest_and_unique_prefixes() {
    let context = TestContext::new();
    let root = context.path().join("sessions");
    for (id, log) in [
        ("20261130T080000-cccc", "old"),
        ("20261130T090000-aaaa", "middle"),
        ("20261201T100000-bbbb", "newest"),
    ] {
        let dir = root.join(id);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let record = serde_json::json!({
            "format_version": 2, "id": id, "project": "p", "project_id": "p-1",
            "status": "finished", "command": "apply",
        });
        std::fs::write(dir.join("session.json"), record.to_string()).unwrap();
        std::fs::write(dir.join("logs/tools.time.stderr"), format!("{log}\n")).unwrap();
    }
    let root_flag = root.to_str().unwrap();
    let logs = |session: &str| context.run(&["logs", session, "--session-root", root_flag]);

    let run = logs("latest");
    assert_eq!(
        (run.status, run.stdout.as_str()),
        (0, "newest\n"),
        "{}",
        run.stderr
    );
    let run = logs("20261130T09");
    assert_eq!(
        (run.status, run.stdout.as_str()),
        (0, "middle\n"),
        "{}",
        run.stderr
    );
    let run = logs("20261130T080000-cccc");
    assert_eq!(
        (run.status, run.stdout.as_str()),
        (0, "old\n"),
        "{}",
        run.stderr
    );

    let run = logs("20261130");
    assert_eq!(run.status, 1);
    assert!(
        run.stderr
            .contains("`20261130` is the start of 2 session ids")
            && run
                .stderr
                .contains("it matches 20261130T090000-aaaa, 20261130T080000-cccc"),
        "{}",
        run.stderr
    );
    let run = context.run(&["discard", "20261130", "--session-root", root_flag]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        3,
        "nothing removed"
    );

    let run = logs("nope");
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains("no session `nope`")
            && run.stderr.contains("the newest is 20261201T100000-bbbb"),
        "{}",
        run.stderr
    );

    // A session recorded before plans were kept in it has none to show.
    let run = context.run(&["show", "latest", "--session-root", root_flag]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr
            .contains("session 20261201T100000-bbbb has no plan on record"),
        "{}",
        run.stderr
    );

    let run = context.run(&["discard", "latest", "--session-root", root_flag]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert!(
        run.stderr
            .contains("discarded session 20261201T100000-bbbb")
    );
    let run = logs("latest");
    assert_eq!(run.stdout, "middle\n", "{}", run.stderr);
}

/// Each shell's completion script is produced from the command-line types; bash's is
/// loaded into a real bash and completes subcommands and flags.
#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _outrig"),
        ("zsh", "#compdef outrig"),
        ("fish", "complete -c outrig"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let run = run_in_repo(&["completions", shell]);
        assert_eq!(run.status, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains(marker), "{shell}: {}", run.stdout);
        for word in ["plan", "mcp", "detailed-exitcode", "session-root"] {
            assert!(run.stdout.contains(word), "{shell} lacks {word}");
        }
    }
    let script = run_in_repo(&["completions", "bash"]).stdout;
    let complete = |line: &str| -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "{script}\nCOMP_WORDS=({}); COMP_CWORD={}; _outrig outrig \"{}\" \"{}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let output = std::process::Command::new("bash")
            .args(["--norc", "-c", &program])
            .output()
            .expect("bash runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let words = complete("outrig pl");
    assert_eq!(words.trim(), "plan", "{words}");
    let words = complete("outrig plan --det");
    assert_eq!(words.trim(), "--detailed-exitcode", "{words}");
    let words = complete("outrig completions p");
    assert_eq!(words.trim(), "powershell", "{words}");
}

/// The manual page is valid roff (groff reports no warning) and names every command; `--dir`
/// writes a page per command.
#[test]
fn man_page_renders() {
    let run = run_in_repo(&["man"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(".ie \\n(.g .ds Aq"),
        "{}",
        &run.stdout[..80]
    );
    for command in ["plan", "apply", "mcp", "completions"] {
        let page = format!("outrig\\-{command}(1)");
        assert!(run.stdout.contains(&page), "{page} missing");
    }
    let mut groff = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("groff runs (Debian's groff-base, there with man-db)");
    use std::io::Write;
    groff
        .stdin
        .take()
        .unwrap()
        .write_all(run.stdout.as_bytes())
        .unwrap();
    let rendered = groff.wait_with_output().unwrap();
    assert!(rendered.status.success());
    assert_eq!(String::from_utf8_lossy(&rendered.stderr), "", "groff warns");
    let text = String::from_utf8_lossy(&rendered.stdout);
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("SYNOPSIS") && words.contains("Exit status: 0 success"),
        "{text}"
    );

    let context = TestContext::new();
    let run = context.run(&["man", "--dir", "man1"]);
    assert_eq!(run.status, 0, "{}", run.all());
    for page in ["outrig.1", "outrig-plan.1", "outrig-logs.1", "outrig-man.1"] {
        let text = std::fs::read_to_string(context.path().join("man1").join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    assert!(!context.path().join("man1/outrig-help.1").exists());
}

/// `--help` names doc/README.md and doc/from-zero.md; both exist, and the index links every
/// page in doc/ (and only pages that exist).
#[test]
fn help_names_documentation_that_exists() {
    let help = run_in_repo(&["--help"]).stdout;
    let root = crate::context::repo_root();
    for page in ["doc/README.md", "doc/from-zero.md"] {
        assert!(help.contains(page), "--help does not name {page}");
        assert!(root.join(page).is_file(), "{page} is missing");
    }
    let index = std::fs::read_to_string(root.join("doc/README.md")).unwrap();
    for entry in std::fs::read_dir(root.join("doc")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && name != "README.md" {
            assert!(
                index.contains(&format!("]({name})")),
                "doc/README.md does not link {name}"
            );
        }
    }
    for link in index.split("](").skip(1) {
        let target = &link[..link.find(')').unwrap()];
        assert!(
            root.join("doc").join(target).is_file(),
            "doc/README.md links {target}"
        );
    }
}
