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
    // Read only the state: they need no secrets, so they work for any user who can read it.
    if let Command::History {
        queue,
        member,
        person,
        since,
        until,
        json,
        ..
    } = cli.command
    {
        let cfg = rooster::config::Config::load(&path)?;
        let args = commands::history::HistoryArgs {
            queue,
            member,
            person,
            since,
            until,
        };
        return commands::history::run(&cfg, &args, json, out).await;
    }
    if let Command::Coverage {
        days, queue, json, ..
    } = cli.command
    {
        let cfg = rooster::config::Config::load(&path)?;
        return commands::coverage::run(&cfg, days, queue.as_deref(), json, out).await;
    }
    if let Command::Doctor {
        json, save_replies, ..
    } = cli.command
    {
        let opts = commands::doctor::DoctorOptions { save_replies };
        return commands::doctor::run(&path, &opts, json, out).await;
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
            ..
        } => commands::agent_queues(&cfg, &secrets, &ext, json, out).await,
        Command::CheckConfig { .. }
        | Command::Demo
        | Command::Sim { .. }
        | Command::Doctor { .. }
        | Command::History { .. }
        | Command::Coverage { .. }
        | Command::Completions { .. }
        | Command::Man => unreachable!("handled above"),
    }
}
