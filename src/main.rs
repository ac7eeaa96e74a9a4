//! The `rooster` binary: command-line parsing, log set-up and dispatch only (SPEC §7).
//! Every command lives in the library (`rooster::commands`, `rooster::tring::cli`,
//! `rooster::demo`); errors come back as values and become one sentence and an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rooster::commands::{self, CommandError, EXIT_USAGE};
use rooster::logging::{self, LogFormat};

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
    /// Read-only first contact with Graph and TRiNG: a checklist, each failure with its fix
    /// (exit 0 nothing failed, 1 something failed, 2 invalid config)
    Doctor {
        /// Print the checklist as one JSON object
        #[arg(long)]
        json: bool,
        /// Save every answer into DIR, secrets removed and calendar text replaced
        #[arg(long, value_name = "DIR")]
        save_replies: Option<PathBuf>,
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
            eprintln!("rooster: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rooster: {e}");
            e.exit_code()
        }
    };
    // Do not wait for lingering tasks (signal listeners, servers) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
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
    if let Command::Doctor { json, save_replies } = cli.command {
        let opts = commands::doctor::DoctorOptions { save_replies };
        return commands::doctor::run(&path, &opts, json, out).await;
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
            let (queue, call, json) = match &action {
                QueueAction::List { queue, json } => (queue, commands::QueueCall::List, *json),
                QueueAction::Add {
                    queue,
                    member,
                    json,
                } => (queue, commands::QueueCall::Add(member), *json),
                QueueAction::Del {
                    queue,
                    member,
                    json,
                } => (queue, commands::QueueCall::Del(member), *json),
                QueueAction::Clean { queue, yes, json } => {
                    (queue, commands::QueueCall::Clean { yes: *yes }, *json)
                }
            };
            commands::queue(&cfg, &secrets, queue, call, json, out).await
        }
        Command::Agent {
            action: AgentAction::Queues { ext, json },
        } => commands::agent_queues(&cfg, &secrets, &ext, json, out).await,
        Command::CheckConfig | Command::Demo | Command::Sim { .. } | Command::Doctor { .. } => {
            unreachable!("handled above")
        }
    }
}
