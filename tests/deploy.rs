//! Guards the deployment files (`deploy/`, `[package.metadata.deb]`): the systemd unit keeps
//! every directive the daemon and its hardening depend on (SPEC §5), its credential names
//! match what the example config asks for (SPEC §4), and the package ships files that exist.
//!
//! Reads files only; touches no source module, no network, no systemd.

use std::path::Path;

const UNIT: &str = include_str!("../deploy/rooster.service");
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
    assert_eq!(units["enable"].as_bool(), Some(false));
    assert_eq!(units["start"].as_bool(), Some(false));
}
