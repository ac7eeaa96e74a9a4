//! The command line as users and their shells meet it (SPEC §4): every command and every
//! argument has help text; `--config` is offered exactly where a config is read; the bash
//! completions, sourced in bash, complete the commands; the man page renders.
//!
//! Walks `rooster::cli::Cli::command()`, the definition the binary parses with, and runs the
//! built binary for the generated text. bash and man run only where they are installed; where
//! they are not, those tests say so and pass. No network, no config, no state.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use clap::{CommandFactory, Parser};
use rooster::cli::Cli;

/// Every command as it is typed (`queue list`), with its definition; the built-in `help`
/// subcommand is clap's.
fn all_commands(cmd: &clap::Command, path: &str) -> Vec<(String, clap::Command)> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let path = format!("{path} {}", sub.get_name()).trim().to_owned();
        out.push((path.clone(), sub.clone()));
        out.extend(all_commands(sub, &path));
    }
    out
}

fn built() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

#[test]
fn the_command_line_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_command_and_argument_has_help() {
    let root = built();
    let mut missing = Vec::new();
    let mut commands = vec![("rooster".to_owned(), root.clone())];
    commands.extend(
        all_commands(&root, "")
            .into_iter()
            .map(|(p, c)| (format!("rooster {p}"), c)),
    );
    for (path, cmd) in &commands {
        if cmd
            .get_about()
            .is_none_or(|a| a.to_string().trim().is_empty())
        {
            missing.push(format!("{path}: no description"));
        }
        for arg in cmd.get_arguments() {
            let help = arg
                .get_help()
                .or(arg.get_long_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            if help.trim().is_empty() {
                missing.push(format!("{path}: {} has no help", arg.get_id()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "without help text:\n{}",
        missing.join("\n")
    );
    // The arguments an admin found without help, named here so that a rename cannot make
    // this test pass by looking at nothing.
    for (path, arg) in [
        ("once", "dry_run"),
        ("plan", "json"),
        ("status", "json"),
        ("explain", "queue"),
        ("explain", "at"),
        ("queue clean", "yes"),
        ("calendar", "from"),
        ("calendar", "to"),
        ("sim", "tring"),
        ("sim", "graph"),
    ] {
        let (_, cmd) = all_commands(&root, "")
            .into_iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("no command {path}"));
        assert!(
            cmd.get_arguments()
                .any(|a| a.get_id() == arg && a.get_help().is_some()),
            "{path} {arg}"
        );
    }
}

#[test]
fn config_is_offered_only_where_a_config_is_read() {
    let root = built();
    let no_config = ["demo", "sim", "completions", "man"];
    for (path, cmd) in all_commands(&root, "") {
        let offers = cmd.get_arguments().any(|a| a.get_long() == Some("config"));
        let reads = !no_config.contains(&path.as_str());
        assert_eq!(
            offers, reads,
            "rooster {path}: --config offered: {offers}, config read: {reads}"
        );
    }
    // After the command: not even accepted.
    assert!(Cli::try_parse_from(["rooster", "demo", "--config", "x.toml"]).is_err());
    // Before it (SPEC §4 `rooster [--config PATH] COMMAND`): parsed, then refused by name.
    let cli = Cli::try_parse_from(["rooster", "--config", "x.toml", "sim"]).expect("parses");
    assert_eq!(
        cli.config_flag().expect_err("sim reads no config"),
        "--config: `sim` reads no config"
    );
    // Both places work for a command that reads one, and nested commands inherit it.
    for args in [
        &["rooster", "--config", "a.toml", "status"][..],
        &["rooster", "status", "--config", "a.toml"],
        &["rooster", "queue", "list", "600", "--config", "a.toml"],
        &["rooster", "queue", "--config", "a.toml", "list", "600"],
    ] {
        let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(cli.config_flag(), Ok(Some("a.toml".into())), "{args:?}");
    }
    let twice = Cli::try_parse_from(["rooster", "--config", "a.toml", "plan", "--config", "b"])
        .expect("parses");
    assert!(twice.config_flag().is_err());
}

fn rooster(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_rooster"))
        .args(args)
        .output()
        .expect("rooster runs");
    assert!(
        out.status.success(),
        "rooster {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A tool on PATH, or `None` after saying why the test that wanted it does not run.
fn tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "skipped: {name} is not installed here; the checks that need no {name} still ran"
        );
    }
    found
}

#[test]
fn completions_exist_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let text = String::from_utf8(rooster(&["completions", shell]).stdout).expect("UTF-8");
        for word in ["check-config", "calendar", "completions"] {
            assert!(text.contains(word), "{shell} completions lack {word}");
        }
        // Syntax-check with the shell itself where it is installed.
        if shell != "bash"
            && let Some(sh) = tool(shell)
        {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = dir.path().join(format!("rooster.{shell}"));
            std::fs::write(&file, &text).expect("completions written");
            let ok = Command::new(sh)
                .arg("-n")
                .arg(&file)
                .status()
                .expect("shell runs");
            assert!(ok.success(), "{shell} -n rejects the completions");
        }
    }
}

/// What bash's completion of `line` offers, with `rooster completions bash` sourced.
fn bash_completes(bash: &std::path::Path, script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        r#"source '{}'
COMP_WORDS=({})
COMP_CWORD={}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
_rooster rooster "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let out = Command::new(bash)
        .arg("--norc")
        .arg("-c")
        .arg(program)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_completes_subcommands() {
    let Some(bash) = tool("bash") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("rooster.bash");
    std::fs::write(&script, rooster(&["completions", "bash"]).stdout).expect("script written");

    let top = bash_completes(&bash, &script, &["rooster", ""]);
    for cmd in built().get_subcommands().map(|s| s.get_name().to_owned()) {
        assert!(top.contains(&cmd), "`rooster <TAB>` lacks {cmd}: {top:?}");
    }
    let queue = bash_completes(&bash, &script, &["rooster", "queue", ""]);
    for cmd in ["list", "add", "del", "clean"] {
        assert!(
            queue.iter().any(|w| w == cmd),
            "`rooster queue <TAB>` lacks {cmd}: {queue:?}"
        );
    }
    let shells = bash_completes(&bash, &script, &["rooster", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|w| w == shell), "{shells:?}");
    }
    let partial = bash_completes(&bash, &script, &["rooster", "che"]);
    assert_eq!(partial, ["check-config"]);
}

#[test]
fn man_page_names_every_command_and_renders() {
    let page = String::from_utf8(rooster(&["man"]).stdout).expect("UTF-8");
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "not roff"
    );
    for (path, _) in all_commands(&built(), "") {
        // Groups (`queue`, `agent`) are described through their commands.
        if !matches!(path.as_str(), "queue" | "agent") {
            assert!(
                page.contains(&format!("rooster {path}")),
                "man page lacks {path}"
            );
        }
    }
    let Some(man) = tool("man") else {
        return;
    };
    let mut child = Command::new(man)
        .args(["-l", "-"])
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("man runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("page written to man");
    let out = child.wait_with_output().expect("man ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "man -l - failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for heading in ["NAME", "SYNOPSIS", "COMMANDS", "ENVIRONMENT", "EXIT STATUS"] {
        assert!(
            text.contains(heading),
            "rendered page lacks {heading}:\n{text}"
        );
    }
}
