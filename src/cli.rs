//! Command-line interface.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::audit::run_cycle;
use crate::clock::unix_now;
use crate::collect::Collector;
use crate::collect::client::ClientMetrics;
use crate::config::Config;
use crate::daemon::{self, Counters, Runtime};
use crate::error::{AppError, EXIT_CONFIG};
use crate::logging::{self, LogFormat};
use crate::report::Report;
use crate::state::Published;

#[derive(Debug, Parser)]
#[command(name = "binauthz-auditor", version, about = "Audits Cloud Run workloads for Binary Authorization")]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a daemon: audit on the schedule and serve /metrics and /report.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Audit once and print the report. Exit 0: complete and compliant; 1: violations;
    /// 2: incomplete; 78: the configuration (or a file it names) is wrong, nothing audited.
    Audit {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also exit 1 for project-level findings (permissive or dry-run policy, broad allowlist).
        #[arg(long)]
        fail_on_findings: bool,
    },
    /// Validate the configuration and the credentials, print which identity API calls will use,
    /// then exit (78 when something is wrong).
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Edit a Binary Authorization policy's allowlist: reads the policy `gcloud container
    /// binauthz policy export` prints on stdin, writes it back with patterns added or removed
    /// (for `gcloud container binauthz policy import`).
    Allowlist {
        /// A `namePattern` to add (once).
        #[arg(long, value_name = "PATTERN")]
        add: Vec<String>,
        /// A `namePattern` to remove.
        #[arg(long, value_name = "PATTERN")]
        remove: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub async fn run(cli: Cli) -> ExitCode {
    logging::init(cli.log_format);
    match cli.command {
        Command::Run { config } => match daemon::run(&config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::from(e.exit_code())
            }
        },
        Command::Audit { config, format, fail_on_findings } => audit(&config, format, fail_on_findings).await,
        Command::CheckConfig { config } => check_config(&config),
        Command::Allowlist { add, remove } => allowlist(&add, &remove),
    }
}

fn allowlist(add: &[String], remove: &[String]) -> ExitCode {
    let mut input = String::new();
    let edited = std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
        .map_err(|e| format!("cannot read standard input: {e}"))
        .and_then(|_| crate::policy_edit::edit(&input, add, remove));
    match edited {
        Ok(policy) => {
            print!("{policy}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn audit(path: &std::path::Path, format: Format, fail_on_findings: bool) -> ExitCode {
    let prepared = Config::load(path).map_err(AppError::from).and_then(|config| {
        // Counted but not exported: a one-shot audit has no /metrics.
        let source = Collector::from_config(&config, ClientMetrics::new()).map_err(AppError::Setup)?;
        Ok((config, source))
    });
    let (config, source) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let outcome = run_cycle(&source, &config.rules, &config.scope, config.gcp.concurrency).await;
    let mut published = Published::default().merge(outcome, unix_now(), &config.suppressions);
    published.metrics = config.metrics.clone();
    let report = Report::from_published(&published);
    // Streamed, not built in memory first: at 100k workloads the report is tens of MiB. A
    // closed pipe (`| head`) is the reader's choice, not an error worth a panic.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from).and_then(|()| writeln!(out))
        }
        Format::Table => report.write_table(&mut out),
    };
    let _ = written.and_then(|()| out.flush());
    ExitCode::from(report.exit_code(fail_on_findings))
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Runtime::load(path, &Counters::default()) {
        Ok(Runtime { config, .. }) => {
            println!(
                "{}: ok ({} projects{}, kinds {}, schedule {:?}, listen {})",
                path.display(),
                config.scope.projects.len(),
                config.scope.project_query.as_ref().map(|q| format!(" + query {q:?}")).unwrap_or_default(),
                config.scope.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","),
                config.schedule.to_string(),
                config.server.listen
            );
            // Which identity and which source API calls will use; resolved again, without
            // network I/O, exactly as the source just did.
            if !matches!(config.source, crate::config::Source::Gcp | crate::config::Source::AssetInventory { .. }) {
                return ExitCode::SUCCESS;
            }
            match crate::collect::auth::describe(&config.gcp) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
