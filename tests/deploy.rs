//! Guards the deployment files (`deploy/`, `[package.metadata.deb]`): the systemd units keep
//! every directive the daemon and its hardening depend on (SPEC §5), the template unit differs
//! from the plain one only where it names the instance, the credential names match what the
//! example config asks for (SPEC §4), the sysusers line is one `systemd-sysusers` accepts, and
//! the package ships files that exist.
//!
//! Touches no source module and no network. Where systemd's own tools are installed
//! (`systemd-sysusers`, `systemd-analyze`) the shipped files are run through them, offline and
//! into a temporary root; where they are not, those tests say so and pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const UNIT: &str = include_str!("../deploy/rooster.service");
const TEMPLATE: &str = include_str!("../deploy/rooster@.service");
const SYSUSERS: &str = include_str!("../deploy/rooster.sysusers");
const EXAMPLE_CONFIG: &str = include_str!("../config/rooster.example.toml");
const CARGO_TOML: &str = include_str!("../Cargo.toml");

/// `Key=Value` lines that must stand in the unit exactly so (value compared after trimming).
const REQUIRED: &[(&str, &str)] = &[
    // SPEC §5: readiness after the first cycle, watchdog pings, restart on failure.
    ("Type", "notify"),
    (
        "ExecStart",
        "/usr/bin/rooster --config /etc/rooster/rooster.toml run",
    ),
    ("Restart", "on-failure"),
    ("User", "rooster"),
    // Default state is $STATE_DIRECTORY/rooster.db.
    ("StateDirectory", "rooster"),
    // Bare credential names in the config are looked up in $CREDENTIALS_DIRECTORY.
    ("LoadCredential", "tring-key:/etc/rooster/tring-key"),
    ("LoadCredential", "graph-secret:/etc/rooster/graph-secret"),
    // Hardening.
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallArchitectures", "native"),
    ("CapabilityBoundingSet", ""),
    ("AmbientCapabilities", ""),
    ("UMask", "0077"),
];

/// Keys that must be present with a non-empty value (the value is the admin's to tune).
const REQUIRED_KEYS: &[&str] = &["WatchdogSec", "RestartSec"];

/// The unit's directives as (key, value), comments and section headers dropped.
fn directives(unit: &str) -> Vec<(&str, &str)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// What the unit lacks, written as the line that should be there.
fn missing(unit: &str) -> Vec<String> {
    let have = directives(unit);
    let mut out: Vec<String> = REQUIRED
        .iter()
        .filter(|req| !have.contains(req))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    out.extend(
        REQUIRED_KEYS
            .iter()
            .filter(|k| !have.iter().any(|(hk, hv)| hk == *k && !hv.is_empty()))
            .map(|k| format!("{k}=…")),
    );
    out
}

#[test]
fn unit_has_every_required_directive() {
    let gaps = missing(UNIT);
    assert!(
        gaps.is_empty(),
        "deploy/rooster.service lacks: {}",
        gaps.join(", ")
    );
}

#[test]
fn a_dropped_or_commented_out_directive_is_caught() {
    for dropped in [
        "ProtectSystem=strict",
        "LoadCredential=graph-secret:/etc/rooster/graph-secret",
        "CapabilityBoundingSet=",
    ] {
        let without: String = UNIT
            .lines()
            .map(|l| if l.trim() == dropped { "" } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(missing(&without), [dropped], "dropping {dropped}");
        let commented = UNIT.replace(&format!("\n{dropped}\n"), &format!("\n# {dropped}\n"));
        assert_eq!(missing(&commented), [dropped], "commenting out {dropped}");
    }
    let no_watchdog = UNIT.replace("\nWatchdogSec=", "\n#WatchdogSec=");
    assert_eq!(missing(&no_watchdog), ["WatchdogSec=…"]);
}

#[test]
fn watchdog_leaves_room_for_a_default_cycle() {
    // A cycle may take up to poll_interval (default 2m) without a ping in between.
    let (_, value) = directives(UNIT)
        .into_iter()
        .find(|(k, _)| *k == "WatchdogSec")
        .expect("WatchdogSec is present");
    let watchdog = humantime::parse_duration(value).expect("WatchdogSec is a duration");
    assert!(
        watchdog >= rooster::config::DEFAULT_POLL_INTERVAL * 2,
        "WatchdogSec={value} is too close to the default poll interval"
    );
}

#[test]
fn unit_user_is_created_by_sysusers() {
    let user_line = SYSUSERS
        .lines()
        .find(|l| l.starts_with("u "))
        .expect("deploy/rooster.sysusers declares a user");
    assert_eq!(user_line.split_whitespace().nth(1), Some("rooster"));
}

#[test]
fn example_config_names_the_units_credentials() {
    let config: toml::Table = toml::from_str(EXAMPLE_CONFIG).expect("example config is TOML");
    assert_eq!(config["tring"]["key_file"].as_str(), Some("tring-key"));
    assert_eq!(
        config["graph"]["client_secret_file"].as_str(),
        Some("graph-secret")
    );
}

#[test]
fn deb_package_ships_the_binary_docs_unit_and_user() {
    let cargo: toml::Table = toml::from_str(CARGO_TOML).expect("Cargo.toml is TOML");
    let deb = &cargo["package"]["metadata"]["deb"];
    let assets = deb["assets"]
        .as_array()
        .expect("[package.metadata.deb] assets is a list");
    let mut sources = Vec::new();
    for asset in assets {
        let fields = asset.as_array().expect("an asset is [source, dest, mode]");
        let source = fields[0].as_str().expect("asset source is a string");
        // The binary is built by `cargo deb` itself.
        if !source.starts_with("target/") {
            assert!(
                Path::new(env!("CARGO_MANIFEST_DIR")).join(source).is_file(),
                "deb asset {source} does not exist"
            );
        }
        sources.push(source);
    }
    for needed in [
        "target/release/rooster",
        "config/rooster.example.toml",
        "deploy/INSTALL.md",
    ] {
        assert!(sources.contains(&needed), "deb assets lack {needed}");
    }
    // Generated by deploy/build-deb.sh from the release binary, into the standard paths.
    let generated = [
        ("rooster.1.gz", "man page", "usr/share/man/man1/"),
        (
            "rooster.bash",
            "bash completions",
            "usr/share/bash-completion/completions/rooster",
        ),
        (
            "_rooster",
            "zsh completions",
            "usr/share/zsh/vendor-completions/",
        ),
        (
            "rooster.fish",
            "fish completions",
            "usr/share/fish/vendor_completions.d/",
        ),
    ];
    let script = include_str!("../deploy/build-deb.sh");
    for (file, what, dest) in generated {
        let source = format!("target/release/assets/{file}");
        let asset = assets
            .iter()
            .filter_map(|a| a.as_array())
            .find(|a| a[0].as_str() == Some(source.as_str()))
            .unwrap_or_else(|| panic!("deb assets lack the {what} ({source})"));
        assert_eq!(asset[1].as_str(), Some(dest), "{what} goes to {dest}");
        assert!(
            script.contains(&format!("\"$assets/{file}\"")),
            "deploy/build-deb.sh does not generate {file}"
        );
    }
    assert!(
        script.contains("MIN_CARGO_DEB=3.8.0")
            && script.contains("cargo install cargo-deb --locked"),
        "deploy/build-deb.sh must insist on cargo-deb 3.8+ and install it --locked"
    );
    // The copyright file is made from the licence.
    let license = deb["license-file"]
        .as_array()
        .expect("license-file = [path, skip]");
    assert_eq!(license[0].as_str(), Some("LICENSE"));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("LICENSE")
            .is_file()
    );
    assert_eq!(cargo["package"]["license"].as_str(), Some("MIT"));
    assert!(include_str!("../LICENSE").starts_with("MIT License"));
    // cargo-deb finds `<package>.service` and `<package>.sysusers` in unit-scripts, installs
    // them and writes the postinst; the daemon must not start before it is configured.
    let units = &deb["systemd-units"];
    let dir = units["unit-scripts"]
        .as_str()
        .expect("systemd-units.unit-scripts");
    assert_eq!(Path::new(dir), Path::new("deploy"));
    assert!(
        deb["maintainer-scripts"].is_str(),
        "systemd-units needs maintainer-scripts"
    );
    // rooster@.service is found there too, by its `@` suffix.
    for unit in ["rooster.service", "rooster@.service", "rooster.sysusers"] {
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(dir)
                .join(unit)
                .is_file(),
            "{unit}"
        );
    }
    assert_eq!(units["enable"].as_bool(), Some(false));
    assert_eq!(units["start"].as_bool(), Some(false));
}

// ---- the template unit ---------------------------------------------------------------------

/// The directives `rooster@.service` must set differently from `rooster.service`, because they
/// name the instance: its config, state directory, credentials and log identifier.
const PER_INSTANCE: &[(&str, &str)] = &[
    (
        "ExecStart",
        "/usr/bin/rooster --config /etc/rooster/%i.toml run",
    ),
    ("StateDirectory", "rooster/%i"),
    ("LoadCredential", "%i.tring-key:/etc/rooster/%i.tring-key"),
    (
        "LoadCredential",
        "%i.graph-secret:/etc/rooster/%i.graph-secret",
    ),
    ("SyslogIdentifier", "rooster@%i"),
];
const PER_INSTANCE_KEYS: &[&str] = &[
    "Description",
    "ExecStart",
    "StateDirectory",
    "LoadCredential",
    "SyslogIdentifier",
];

#[test]
fn template_unit_names_the_instance_in_config_state_and_credentials() {
    let have = directives(TEMPLATE);
    for want in PER_INSTANCE {
        assert!(
            have.contains(want),
            "deploy/rooster@.service lacks {}={}",
            want.0,
            want.1
        );
    }
    let description = have.iter().find(|(k, _)| *k == "Description");
    assert!(
        description.is_some_and(|(_, v)| v.contains("%i")),
        "the template's Description should name the instance"
    );
}

#[test]
fn template_unit_is_the_unit_but_for_the_instance() {
    // Everything else, hardening and timing included, is the same line for line; so a
    // directive added to one unit and forgotten in the other fails here.
    let shared = |unit| {
        let mut d: Vec<_> = directives(unit)
            .into_iter()
            .filter(|(k, _)| !PER_INSTANCE_KEYS.contains(k))
            .collect();
        d.sort();
        d
    };
    assert_eq!(shared(UNIT), shared(TEMPLATE));
    assert!(missing(TEMPLATE).iter().all(|gap| {
        PER_INSTANCE_KEYS
            .iter()
            .any(|k| gap.starts_with(&format!("{k}=")))
    }));
}

// ---- sysusers ------------------------------------------------------------------------------

/// The fields of a sysusers.d(5) line: white-space separated, a field in double quotes may
/// hold spaces. `None` for a line that is blank or a comment.
fn sysusers_fields(line: &str) -> Option<Vec<String>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut field = String::new();
        if c == '"' {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                field.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field);
    }
    Some(fields)
}

/// What `systemd-sysusers` would reject in a `u` line, by the rules of sysusers.d(5) and
/// passwd(5): a user name of letters, digits, `_` and `-` not starting with a digit or `-`
/// (at most 31 characters); a description (GECOS) without a colon, which separates the fields
/// of /etc/passwd, and without control characters; an absolute home and shell.
fn sysusers_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let Some(f) = sysusers_fields(line) else {
            continue;
        };
        let at = |what: String| format!("line {}: {what}", no + 1);
        if f[0] != "u" {
            continue;
        }
        let name = f.get(1).map(String::as_str).unwrap_or("");
        let name_ok = !name.is_empty()
            && name.len() <= 31
            && !name.starts_with(|c: char| c.is_ascii_digit() || c == '-')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            problems.push(at(format!("{name:?} is not a valid user name")));
        }
        if let Some(gecos) = f.get(3).filter(|g| g.as_str() != "-") {
            if gecos.contains(':') {
                problems.push(at(format!("GECOS {gecos:?} holds a colon")));
            }
            if gecos.chars().any(char::is_control) {
                problems.push(at(format!("GECOS {gecos:?} holds a control character")));
            }
        }
        for (i, what) in [(4, "home"), (5, "shell")] {
            if let Some(path) = f.get(i).filter(|p| p.as_str() != "-")
                && !path.starts_with('/')
            {
                problems.push(at(format!("{what} {path:?} is not an absolute path")));
            }
        }
    }
    problems
}

#[test]
fn sysusers_line_follows_the_rules_systemd_sysusers_checks() {
    assert_eq!(sysusers_problems(SYSUSERS), Vec::<String>::new());
    let user = SYSUSERS
        .lines()
        .filter_map(sysusers_fields)
        .find(|f| f[0] == "u")
        .expect("a u line");
    assert_eq!(user[1], "rooster");
    assert_eq!(user[4], "/var/lib/rooster", "home is the StateDirectory");
    assert_eq!(user[5], "/usr/sbin/nologin");
}

#[test]
fn a_colon_in_the_description_is_caught() {
    // The line that kept the user from ever being created.
    let old = r#"u rooster - "rooster: TRiNG queues from Outlook calendars" /var/lib/rooster /usr/sbin/nologin"#;
    assert_eq!(
        sysusers_problems(old),
        [r#"line 1: GECOS "rooster: TRiNG queues from Outlook calendars" holds a colon"#]
    );
    assert_eq!(sysusers_problems("u 1rooster - - / /bin/sh").len(), 1);
    assert_eq!(sysusers_problems("u rooster - - home /bin/sh").len(), 1);
}

/// A systemd tool, or `None` after saying why the test that wanted it does not run.
fn systemd_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "skipped: {name} is not installed here (apt-get install systemd); the checks that need no tool still ran"
        );
    }
    found
}

#[test]
fn systemd_sysusers_accepts_the_file() {
    let Some(tool) = systemd_tool("systemd-sysusers") else {
        return;
    };
    let root = tempfile::tempdir().expect("temp root");
    // On stdin (`-`): given as a path, systemd-sysusers reads it under --root, and it skips a
    // bad line with exit 0 when it finds the file itself; from stdin a bad line fails.
    let mut child = Command::new(tool)
        .arg("--dry-run")
        .arg(format!("--root={}", root.path().display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-sysusers runs");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(SYSUSERS.as_bytes())
        .expect("sysusers file written to systemd-sysusers");
    let out = child.wait_with_output().expect("systemd-sysusers ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-sysusers refused deploy/rooster.sysusers:\n{said}"
    );
    assert!(!said.contains("not a valid"), "{said}");
    assert!(said.contains("Creating user 'rooster'"), "{said}");
}

// ---- systemd-analyze -----------------------------------------------------------------------

/// The units as systemd would load them, in a temporary directory, with ExecStart pointing at
/// the binary this test run built (verify checks that the command exists). The template is
/// verified as the instance `rooster@acme.service`.
fn units_for_analysis() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("temp dir for units");
    let bin = env!("CARGO_BIN_EXE_rooster");
    let mut paths = Vec::new();
    for (name, text) in [
        ("rooster.service", UNIT),
        ("rooster@acme.service", TEMPLATE),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace("/usr/bin/rooster", bin)).expect("unit written");
        paths.push(path);
    }
    (dir, paths)
}

#[test]
fn systemd_analyze_verify_passes() {
    let Some(tool) = systemd_tool("systemd-analyze") else {
        return;
    };
    let (_dir, units) = units_for_analysis();
    let out = Command::new(tool)
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    assert!(
        !said.contains("rooster"),
        "systemd-analyze verify complained about the units:\n{said}"
    );
}

#[test]
fn hardening_exposure_stays_at_most_1_2() {
    let Some(tool) = systemd_tool("systemd-analyze") else {
        return;
    };
    let (_dir, units) = units_for_analysis();
    for unit in units {
        let out = Command::new(&tool)
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&unit)
            .output()
            .expect("systemd-analyze runs");
        let text = String::from_utf8_lossy(&out.stdout);
        // "→ Overall exposure level for rooster.service: 1.1 OK 🙂"
        let level: f64 = text
            .lines()
            .find_map(|l| {
                l.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")
            })
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no exposure level in:\n{text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        assert!(
            level <= 1.2,
            "{}: exposure {level} > 1.2 (systemd-analyze security --offline=yes)",
            unit.display()
        );
    }
}
