//! The `rooster` binary: command-line parsing, log set-up and dispatch only (SPEC §7).
//! The command line itself is defined in `rooster::cli` (so tests, completions and the man
//! page see the same definition); every command lives in the library (`rooster::commands`,
//! `rooster::tring::cli`, `rooster::demo`); errors come back as values and become one
//! sentence and an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use rooster::cli::{AgentAction, Cli, Command, QueueAction};
use rooster::commands::{self, CommandError, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use rooster::logging;
use rooster::model::{Extension, Member, QueueNo};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Generated text only: no logging, no runtime, nothing read.
    match &cli.command {
        Command::Completions { shell } => {
            let mut text = Vec::new();
            rooster::cli::completions(*shell, &mut text);
            return print(&text);
        }
        Command::Man => {
            let mut text = Vec::new();
            return match rooster::cli::man(&mut text) {
                Ok(()) => print(&text),
                Err(e) => {
                    eprintln!("rooster: man page: {e}");
                    ExitCode::from(EXIT_FAILED)
                }
            };
        }
        _ => {}
    }
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

/// Writes generated text to stdout; a closed pipe (`rooster man | head`) is not an error.
fn print(text: &[u8]) -> ExitCode {
    match std::io::stdout().lock().write_all(text) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("rooster: stdout: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn usage(e: impl std::fmt::Display) -> CommandError {
    CommandError::Usage(e.to_string())
}

async fn dispatch(cli: Cli) -> Result<u8, CommandError> {
    let config_flag = cli.config_flag().map_err(CommandError::Usage)?;
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
    let path = commands::config_path(config_flag);
    if let Command::CheckConfig { .. } = cli.command {
        return commands::check_config(&path, out);
    }
    let (cfg, secrets) = commands::load(&path)?;
    match cli.command {
        Command::Run { dry_run, .. } => commands::run(cfg, &secrets, dry_run).await,
        Command::Once { dry_run, .. } => commands::once(cfg, &secrets, dry_run).await,
        Command::Plan { at, json, .. } => {
            commands::plan(cfg, &secrets, at.as_deref(), json, out).await
        }
        Command::Status { json, .. } => commands::status(cfg, &secrets, json, out).await,
        Command::Explain { queue, at, .. } => {
            commands::explain(cfg, &secrets, &queue, at.as_deref(), out).await
        }
        Command::Calendar {
            mailbox,
            name,
            from,
            to,
            json,
            ..
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
        Command::Queue { action, .. } => {
            let client = rooster::tring::TringClient::new(&cfg.tring, secrets.tring_key.clone())
                .map_err(|e| CommandError::Failed(e.to_string()))?;
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
            ..
        } => {
            let client = rooster::tring::TringClient::new(&cfg.tring, secrets.tring_key.clone())
                .map_err(|e| CommandError::Failed(e.to_string()))?;
            let ext = Extension::parse(&ext).map_err(usage)?;
            match rooster::tring::cli::agent_queues(&client, &ext, json, &mut stdout).await {
                Ok(()) => Ok(EXIT_OK),
                Err(e) => {
                    eprintln!("rooster: {e}");
                    Ok(EXIT_FAILED)
                }
            }
        }
        Command::CheckConfig { .. }
        | Command::Demo
        | Command::Sim { .. }
        | Command::Completions { .. }
        | Command::Man => unreachable!("handled above"),
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
