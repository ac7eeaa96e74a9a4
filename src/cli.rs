//! The command line (SPEC §4): every command, argument and flag `rooster` accepts, with its
//! help, and the shell completions and man page generated from that one definition, so they
//! cannot drift from what the binary parses. Parsing only: `main.rs` dispatches and
//! [`crate::commands`] runs; nothing here reads a config, opens the state or talks to a service.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "rooster",
    version,
    about = "Keeps TRiNG call queues in line with Outlook calendars",
    long_about = "Keeps TRiNG call queues in line with Outlook calendars. rooster reads \
        calendars through Microsoft Graph, works out who must be in each queue right now and \
        adds and removes queue members through the TRiNG API until they match. It runs as the \
        systemd service rooster.service (or rooster@INSTANCE.service, one per tenant); the \
        other commands look at or test what the daemon does.",
    after_long_help = "The config is read from --config, else $ROOSTER_CONFIG, else \
        /etc/rooster/rooster.toml. RUST_LOG sets the log level (default info); HTTPS_PROXY and \
        NO_PROXY are honoured; TLS trusts the system's certificate store as well as the \
        built-in Mozilla roots. Exit status: 0 all good, 1 the command ran but something \
        failed, 2 a usage, config, secret or state error. Setup: \
        /usr/share/doc/rooster/INSTALL.md."
)]
pub struct Cli {
    /// Config file, for the commands that read one [default: $ROOSTER_CONFIG, else
    /// /etc/rooster/rooster.toml]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// `--config` after a command that reads a config; `global` so `queue` and `agent` pass it
/// on to their own subcommands (`rooster queue list 600 --config PATH`).
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file [default: $ROOSTER_CONFIG, else /etc/rooster/rooster.toml]
    #[arg(long = "config", value_name = "PATH", global = true)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon until SIGTERM/SIGINT
    Run {
        /// Decide and log every cycle, but write nothing to TRiNG or the state
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run one full cycle and exit (0 all good, 1 something failed or was refused)
    Once {
        /// Decide and log the cycle, but write nothing to TRiNG or the state
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show what a cycle would do now (or desired membership at TIME); writes nothing
    Plan {
        /// Desired membership at TIME instead of now (RFC 3339, or "YYYY-MM-DD HH:MM" in the configured time zone)
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Read-only first contact with Graph and TRiNG: a checklist, each failure with its fix
    /// (exit 0 nothing failed, 1 something failed, 2 invalid config)
    Doctor {
        /// Print the checklist as one JSON object
        #[arg(long)]
        json: bool,
        /// Save every answer into DIR, secrets removed and calendar text replaced
        #[arg(long, value_name = "DIR")]
        save_replies: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Every write and refusal from the state's journal, with reason and outcome
    History {
        /// Only this queue (its number)
        #[arg(long)]
        queue: Option<String>,
        /// Only this member: ext:NNN, cu:NUMBER, or a bare extension or number
        #[arg(long)]
        member: Option<String>,
        /// Only this person (part of the name, any case)
        #[arg(long)]
        person: Option<String>,
        /// From TIME: RFC 3339 or "YYYY-MM-DD HH:MM" in the configured zone [default: 24 h before --until]
        #[arg(long)]
        since: Option<String>,
        /// Up to TIME: RFC 3339 or "YYYY-MM-DD HH:MM" in the configured zone [default: now]
        #[arg(long)]
        until: Option<String>,
        /// One JSON object per entry, one per line
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Per queue, who is desired over the next days and the gaps where nobody is (exit 1 on a gap)
    Coverage {
        /// How many days, today included
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Only this queue (its number)
        #[arg(long)]
        queue: Option<String>,
        /// One JSON object instead of the drawing
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Per queue: live, owned, desired now, next change; last cycle and calendar reads
    Status {
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Why each member of QUEUE is (or is not) there
    Explain {
        /// The queue number, as in the config (for example 600)
        #[arg(value_name = "QUEUE")]
        queue: String,
        /// Explain membership at TIME instead of now (RFC 3339, or "YYYY-MM-DD HH:MM" in the configured time zone)
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the config and the presence of its secrets
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run the daemon against built-in simulators (no config, no network)
    Demo,
    /// TRiNG queue calls by hand (never marks anything as owned)
    Queue {
        #[command(subcommand)]
        action: QueueAction,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// TRiNG agent calls
    Agent {
        #[command(subcommand)]
        action: AgentAction,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show what rooster reads from one calendar, normalised, or why it cannot
    Calendar {
        /// The mailbox whose calendar to read (for example jan@acme.nl)
        #[arg(value_name = "MAILBOX")]
        mailbox: String,
        /// A named calendar in the mailbox [default: its main calendar]
        #[arg(long = "calendar", value_name = "NAME")]
        name: Option<String>,
        /// Start of the span to read (RFC 3339, or "YYYY-MM-DD HH:MM" in the configured time zone) [default: as the daemon, a day before now]
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// End of the span to read (RFC 3339, or "YYYY-MM-DD HH:MM" in the configured time zone) [default: as the daemon, now + window]
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run the Graph and TRiNG simulators standalone
    Sim {
        /// Address the TRiNG simulator listens on
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8601")]
        tring: SocketAddr,
        /// Address the Graph simulator listens on
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8602")]
        graph: SocketAddr,
        /// Write a config pointing at the simulators (and its secret files beside it)
        #[arg(long, value_name = "PATH")]
        write_config: Option<PathBuf>,
    },
    /// Print shell completions, generated from this command line, to stdout
    Completions {
        /// The shell to complete for
        #[arg(value_enum, value_name = "SHELL")]
        shell: Shell,
    },
    /// Print the man page (roff), generated from this command line, to stdout
    Man,
}

#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// The members of a queue
    List {
        /// The queue number (for example 600)
        #[arg(value_name = "QUEUE")]
        queue: String,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Add ext:NNN or cu:NUMBER
    Add {
        /// The queue number (for example 600)
        #[arg(value_name = "QUEUE")]
        queue: String,
        /// ext:NNN (an extension) or cu:NUMBER (a configured person's mobile)
        #[arg(value_name = "MEMBER")]
        member: String,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Remove ext:NNN or cu:NUMBER
    Del {
        /// The queue number (for example 600)
        #[arg(value_name = "QUEUE")]
        queue: String,
        /// ext:NNN (an extension) or cu:NUMBER (a custom destination)
        #[arg(value_name = "MEMBER")]
        member: String,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Remove every member (needs --yes)
    Clean {
        /// The queue number (for example 600)
        #[arg(value_name = "QUEUE")]
        queue: String,
        /// Really remove every member; without it nothing is sent and rooster exits 2
        #[arg(long)]
        yes: bool,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentAction {
    /// The queues an extension is in
    Queues {
        /// The extension (1–10 digits, for example 201)
        #[arg(value_name = "EXT")]
        ext: String,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

/// The shells SPEC §4 promises completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Cli {
    /// The `--config` flag as given, before or after the command. An error (a usage error,
    /// exit 2) when it is given to a command that reads no config, so it is never silently
    /// ignored, or given twice.
    pub fn config_flag(&self) -> Result<Option<PathBuf>, String> {
        let after = match &self.command {
            Command::Run { config, .. }
            | Command::Once { config, .. }
            | Command::Plan { config, .. }
            | Command::Status { config, .. }
            | Command::Explain { config, .. }
            | Command::CheckConfig { config }
            | Command::Queue { config, .. }
            | Command::Agent { config, .. }
            | Command::Calendar { config, .. }
            | Command::Doctor { config, .. }
            | Command::History { config, .. }
            | Command::Coverage { config, .. } => config.path.clone(),
            Command::Demo | Command::Sim { .. } | Command::Completions { .. } | Command::Man => {
                return match &self.config {
                    Some(_) => Err(format!(
                        "--config: `{}` reads no config",
                        self.command.name()
                    )),
                    None => Ok(None),
                };
            }
        };
        match (&self.config, after) {
            (Some(_), Some(_)) => Err("--config given twice".into()),
            (before, after) => Ok(after.or_else(|| before.clone())),
        }
    }
}

impl Command {
    /// The name the command is typed as, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run { .. } => "run",
            Command::Once { .. } => "once",
            Command::Plan { .. } => "plan",
            Command::Status { .. } => "status",
            Command::Doctor { .. } => "doctor",
            Command::History { .. } => "history",
            Command::Coverage { .. } => "coverage",
            Command::Explain { .. } => "explain",
            Command::CheckConfig { .. } => "check-config",
            Command::Demo => "demo",
            Command::Queue { .. } => "queue",
            Command::Agent { .. } => "agent",
            Command::Calendar { .. } => "calendar",
            Command::Sim { .. } => "sim",
            Command::Completions { .. } => "completions",
            Command::Man => "man",
        }
    }
}

/// `rooster completions SHELL`: the completion script for `shell`, for the standard places
/// (`/usr/share/bash-completion/completions/rooster`, `/usr/share/zsh/vendor-completions/_rooster`,
/// `/usr/share/fish/vendor_completions.d/rooster.fish`).
pub fn completions(shell: Shell, out: &mut dyn Write) {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "rooster", out);
}

/// `rooster man`: rooster(1) in roff. One page for the whole program: the top-level synopsis
/// and options from clap_mangen, then a COMMANDS section with every command's usage, what it
/// does and each of its arguments (so `man rooster` answers what `rooster CMD --help` does,
/// and no rooster-CMD(1) pages are referred to that do not exist), then the environment, exit
/// status and files.
pub fn man(out: &mut dyn Write) -> io::Result<()> {
    use clap_mangen::roff::{Roff, bold, roman};

    let mut cmd = Cli::command();
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;

    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    for (path, sub) in leaf_commands(&cmd, "rooster") {
        roff.control("SS", [path.as_str()]);
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            roff.text([roman(about.to_string())]);
        }
        for arg in sub.get_arguments() {
            if arg.is_hide_set() || arg.is_global_set() && arg.get_id() == "log_format" {
                continue;
            }
            if matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            roff.control("TP", []);
            roff.text([bold(arg_usage(arg))]);
            if let Some(help) = arg.get_long_help().or(arg.get_help()) {
                roff.text([roman(help.to_string())]);
            }
        }
    }
    let sections: [(&str, &[(&str, &str)]); 3] = [
        (
            "ENVIRONMENT",
            &[
                (
                    "ROOSTER_CONFIG",
                    "The config file when --config is not given.",
                ),
                (
                    "RUST_LOG",
                    "Log filter, for example rooster=debug (default info).",
                ),
                (
                    "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY",
                    "Proxy for Microsoft Graph, Entra and TRiNG, and the hosts to reach directly.",
                ),
                (
                    "SSL_CERT_FILE, SSL_CERT_DIR",
                    "Replace the system trust store (the built-in Mozilla roots stay trusted).",
                ),
                (
                    "CREDENTIALS_DIRECTORY, STATE_DIRECTORY",
                    "Set by systemd: where bare secret names and the default state are found.",
                ),
            ],
        ),
        (
            "EXIT STATUS",
            &[
                ("0", "All good."),
                (
                    "1",
                    "The command ran but something failed: a calendar, a queue, a refused removal.",
                ),
                (
                    "2",
                    "A usage, config, secret or state error; nothing was done.",
                ),
            ],
        ),
        (
            "FILES",
            &[
                (
                    "/etc/rooster/rooster.toml",
                    "The config (no secrets in it).",
                ),
                (
                    "/etc/rooster/tring-key, /etc/rooster/graph-secret",
                    "The secrets, handed to the service with LoadCredential=.",
                ),
                ("/var/lib/rooster/rooster.db", "The state."),
                (
                    "/usr/share/doc/rooster/INSTALL.md",
                    "Installing, the Microsoft 365 side, several tenants on one host.",
                ),
            ],
        ),
    ];
    for (title, entries) in sections {
        roff.control("SH", [title]);
        for (term, text) in entries {
            roff.control("TP", []);
            roff.text([bold(*term)]);
            roff.text([roman(*text)]);
        }
    }
    roff.to_writer(out)?;
    page.render_version_section(out)?;
    Ok(())
}

/// Every command that is run as such (`queue list`, not `queue`), depth first, with the
/// words that invoke it.
fn leaf_commands<'a>(cmd: &'a clap::Command, path: &str) -> Vec<(String, &'a clap::Command)> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let path = format!("{path} {}", sub.get_name());
        if sub.has_subcommands() {
            out.extend(leaf_commands(sub, &path));
        } else {
            out.push((path, sub));
        }
    }
    out
}

/// `--at TIME`, `QUEUE`, `--json`: how an argument is written.
fn arg_usage(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    match arg.get_long() {
        Some(long) if arg.get_action().takes_values() => format!("--{long} {value}"),
        Some(long) => format!("--{long}"),
        None => value,
    }
}
