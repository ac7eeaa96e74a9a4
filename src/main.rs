//! The `rooster` binary: command-line parsing, log set-up and dispatch only (SPEC §7).
//! Every command lives in the library (`rooster::commands`, `rooster::tring::cli`,
//! `rooster::demo`); errors come back as values and become one sentence and an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rooster::commands::{self, CommandError, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use rooster::logging::{self, LogFormat};
use rooster::model::{Extension, Member, QueueNo};

#[derive(Parser)]
#[command(
    name = "rooster",
    version,
    about = "Keeps TRiNG call queues in line with Outlook calendars"
)]
struct Cli {
    /// Config file [default: $ROOSTER_CONFIG, else /etc/rooster/rooster.toml]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM/SIGINT
    Run {
        /// Decide and log, but write nothing to TRiNG or the state
        #[arg(long)]
        dry_run: bool,
    },
    /// Run one full cycle and exit (0 all good, 1 something failed or was refused)
    Once {
        #[arg(long)]
        dry_run: bool,
    },
    /// Show what a cycle would do now (or desired membership at TIME); writes nothing
    Plan {
        /// RFC 3339, or "YYYY-MM-DD HH:MM" in the configured time zone
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Per queue: live, owned, desired now, next change; last cycle and calendar reads
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Why each member of QUEUE is (or is not) there
    Explain {
        queue: String,
        #[arg(long)]
        at: Option<String>,
    },
    /// Validate the config and the presence of its secrets
    CheckConfig,
    /// Run the daemon against built-in simulators (no config, no network)
    Demo,
    /// TRiNG queue calls by hand (never marks anything as owned)
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// TRiNG agent calls
    Agent {
        #[command(subcommand)]
        action: AgentAction,
    },
    /// Show what rooster reads from one calendar, normalised, or why it cannot
    Calendar {
        mailbox: String,
        /// A named calendar in the mailbox (default: its main calendar)
        #[arg(long = "calendar")]
        name: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run the Graph and TRiNG simulators standalone
    Sim {
        #[arg(long, default_value = "127.0.0.1:8601")]
        tring: std::net::SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8602")]
        graph: std::net::SocketAddr,
        /// Write a config pointing at the simulators (and its secret files beside it)
        #[arg(long)]
        write_config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// The members of a queue
    List {
        queue: String,
        #[arg(long)]
        json: bool,
    },
    /// Add ext:NNN or cu:NUMBER
    Add {
        queue: String,
        member: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove ext:NNN or cu:NUMBER
    Del {
        queue: String,
        member: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove every member (needs --yes)
    Clean {
        queue: String,
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AgentAction {
    /// The queues an extension is in
    Queues {
        ext: String,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, matches!(cli.command, Command::Demo));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            logging::fatal(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            logging::fatal(&e.to_string());
            e.exit_code()
        }
    };
    // Do not wait for lingering tasks (signal listeners, servers) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

fn usage(e: impl std::fmt::Display) -> CommandError {
    CommandError::Usage(e.to_string())
}

async fn dispatch(cli: Cli) -> Result<u8, CommandError> {
    let mut stdout = std::io::stdout().lock();
    let out: &mut dyn Write = &mut stdout;
    if let Command::Demo = cli.command {
        let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
        return commands::demo(color).await;
    }
    if let Command::Sim {
        tring,
        graph,
        write_config,
    } = &cli.command
    {
        return commands::sim(*tring, *graph, write_config.as_deref()).await;
    }
    let path = commands::config_path(cli.config);
    if let Command::CheckConfig = cli.command {
        return commands::check_config(&path, out);
    }
    let (cfg, secrets) = commands::load(&path)?;
    match cli.command {
        Command::Run { dry_run } => commands::run(cfg, &secrets, dry_run).await,
        Command::Once { dry_run } => commands::once(cfg, &secrets, dry_run).await,
        Command::Plan { at, json } => commands::plan(cfg, &secrets, at.as_deref(), json, out).await,
        Command::Status { json } => commands::status(cfg, &secrets, json, out).await,
        Command::Explain { queue, at } => {
            commands::explain(cfg, &secrets, &queue, at.as_deref(), out).await
        }
        Command::Calendar {
            mailbox,
            name,
            from,
            to,
            json,
        } => {
            let args = commands::CalendarArgs {
                mailbox: &mailbox,
                name: name.as_deref(),
                from: from.as_deref(),
                to: to.as_deref(),
                json,
            };
            commands::calendar(cfg, &secrets, args, out).await
        }
        Command::Queue { action } => {
            let client = rooster::tring::TringClient::new(&cfg.tring, secrets.tring_key.clone())
                .map_err(|e| CommandError::Failed(e.to_string()))?
                .with_known_members(rooster::tring::KnownMembers::from_config(&cfg));
            let failed = |e: rooster::tring::TringError| CommandError::Failed(e.to_string());
            use rooster::tring::cli as t;
            match action {
                QueueAction::List { queue, json } => {
                    let q = QueueNo::parse(&queue).map_err(usage)?;
                    t::queue_list(&client, &q, json, &mut stdout)
                        .await
                        .map_err(failed)?;
                }
                QueueAction::Add {
                    queue,
                    member,
                    json,
                } => {
                    let q = QueueNo::parse(&queue).map_err(usage)?;
                    let m: Member = member.parse().map_err(usage)?;
                    check_mobile(&cfg, &m)?;
                    t::queue_add(&client, &q, &m, json, &mut stdout)
                        .await
                        .map_err(failed)?;
                }
                QueueAction::Del {
                    queue,
                    member,
                    json,
                } => {
                    let q = QueueNo::parse(&queue).map_err(usage)?;
                    let m: Member = member.parse().map_err(usage)?;
                    t::queue_del(&client, &q, &m, json, &mut stdout)
                        .await
                        .map_err(failed)?;
                }
                QueueAction::Clean { queue, yes, json } => {
                    let q = QueueNo::parse(&queue).map_err(usage)?;
                    match t::queue_clean(&client, &q, yes, json, &mut stdout)
                        .await
                        .map_err(failed)?
                    {
                        t::CleanOutcome::NotConfirmed { .. } => return Ok(EXIT_USAGE),
                        t::CleanOutcome::Cleaned { .. } => {}
                    }
                }
            }
            Ok(EXIT_OK)
        }
        Command::Agent {
            action: AgentAction::Queues { ext, json },
        } => {
            let client = rooster::tring::TringClient::new(&cfg.tring, secrets.tring_key.clone())
                .map_err(|e| CommandError::Failed(e.to_string()))?
                .with_known_members(rooster::tring::KnownMembers::from_config(&cfg));
            let ext = Extension::parse(&ext).map_err(usage)?;
            match rooster::tring::cli::agent_queues(&client, &ext, json, &mut stdout).await {
                Ok(()) => Ok(EXIT_OK),
                Err(e) => {
                    eprintln!("rooster: {e}");
                    Ok(EXIT_FAILED)
                }
            }
        }
        Command::CheckConfig | Command::Demo | Command::Sim { .. } => unreachable!("handled above"),
    }
}

/// Members named by hand are validated like config members: a custom destination must be a
/// configured person's mobile (SPEC §2: a mobile can only be added if it is configured).
fn check_mobile(cfg: &rooster::config::Config, m: &Member) -> Result<(), CommandError> {
    if let Member::Custom(mobile) = m
        && !cfg
            .persons
            .iter()
            .any(|p| p.mobile.as_ref() == Some(mobile))
    {
        return Err(CommandError::Usage(format!(
            "{m} is no configured person's mobile; rooster only adds configured mobiles"
        )));
    }
    Ok(())
}
