//! Command-line interface.

use std::ffi::OsStr;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::audit::run_cycle;
use crate::build_info;
use crate::clock::unix_now;
use crate::collect::Collector;
use crate::collect::client::ClientMetrics;
use crate::config::{Config, ConfigError, ServerOverrides};
use crate::daemon::{self, Counters, Runtime};
use crate::error::{AppError, EXIT_CONFIG};
use crate::logging::{self, LogFormat};
use crate::report::Report;
use crate::state::Published;

#[derive(Debug, Parser)]
#[command(
    name = "binauthz-auditor",
    version,
    long_version = build_info::LONG_VERSION,
    // Each command's man page names the version it documents.
    propagate_version = true,
    about = "Audits Cloud Run workloads for Binary Authorization"
)]
pub struct Cli {
    /// Log format (RUST_LOG sets the level, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a daemon: audit on the schedule and serve /metrics and /report.
    ///
    /// The listen address is, first to last: --web.listen-address, then $PORT (every IPv4
    /// address on that port, as Cloud Run expects), then the config file's [server] listen.
    Run {
        /// The configuration file (TOML; example.toml documents every key).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Address to serve on, over $PORT and [server] listen: HOST:PORT, [IPV6]:PORT, or
        /// :PORT for every IPv4 address.
        #[arg(long = "web.listen-address", value_name = "ADDRESS", value_parser = parse_listen_address)]
        web_listen_address: Option<SocketAddr>,
        /// Web config file (TLS, basic auth; exporter-toolkit format), over [server] web_config.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Audit once and print the report. Exit 0: complete and compliant; 1: violations;
    /// 2: incomplete; 78: the configuration (or a file it names) is wrong, nothing audited.
    Audit {
        /// The configuration file (TOML; example.toml documents every key).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// How the report is printed on stdout.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also exit 1 for project-level findings (permissive or dry-run policy, broad allowlist).
        #[arg(long)]
        fail_on_findings: bool,
        /// Exit 0 when the audit is complete, violations or not (a scheduler that retries
        /// failed runs, such as a Cloud Run job, then retries only an incomplete audit).
        #[arg(long, conflicts_with = "fail_on_findings")]
        exit_zero: bool,
    },
    /// Validate the configuration and the credentials, print which identity API calls will use,
    /// then exit (78 when something is wrong).
    CheckConfig {
        /// The configuration file (TOML; example.toml documents every key).
        #[arg(long, short, value_name = "FILE")]
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
    /// for people at a terminal
    Table,
    /// the whole report as one JSON document
    Json,
    /// one JSON object per line: each resource, project and suppression, then a summary
    JsonLines,
}

pub async fn run(cli: Cli) -> ExitCode {
    let log_format = logging::init(cli.log_format);
    match cli.command {
        Command::Run { config, web_listen_address, web_config_file } => {
            let port = std::env::var_os("PORT");
            let started = server_overrides(web_listen_address, web_config_file, port.as_deref())
                .map_err(|e| AppError::Config(ConfigError(e)));
            let result = match started {
                Ok(overrides) => daemon::run(&config, overrides).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Audit { config, format, fail_on_findings, exit_zero } => {
            audit(&config, format, ExitRules { fail_on_findings, exit_zero }, log_format).await
        }
        Command::CheckConfig { config } => check_config(&config),
        Command::Allowlist { add, remove } => allowlist(&add, &remove),
    }
}

/// `--web.listen-address`: what Prometheus exporters accept, `:PORT` included.
fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    match text.strip_prefix(':') {
        Some(port) => parse_port(port).map(|port| SocketAddr::from(([0, 0, 0, 0], port))),
        None => {
            text.parse().map_err(|_| format!("{text:?} is not HOST:PORT, [IPV6]:PORT or :PORT (HOST an IP address)"))
        }
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse::<u16>().map_err(|_| format!("{text:?} is not a port number (0-65535)"))
}

/// The `[server]` settings the command line and the environment decide: the flag's address,
/// else `$PORT` on every IPv4 address (Cloud Run's contract), else the file's.
pub fn server_overrides(
    listen: Option<SocketAddr>,
    web_config: Option<PathBuf>,
    port_env: Option<&OsStr>,
) -> Result<ServerOverrides, String> {
    let listen = match (listen, port_env) {
        (Some(addr), _) => Some(addr),
        (None, Some(port)) if !port.is_empty() => {
            let port = port.to_str().ok_or_else(|| "$PORT is not UTF-8".to_owned())?;
            Some(SocketAddr::from(([0, 0, 0, 0], parse_port(port).map_err(|e| format!("$PORT: {e}"))?)))
        }
        (None, _) => None,
    };
    Ok(ServerOverrides { listen, web_config })
}

/// How `audit` turns the report into its exit status.
#[derive(Debug, Clone, Copy)]
struct ExitRules {
    fail_on_findings: bool,
    exit_zero: bool,
}

impl ExitRules {
    fn exit_code(self, report: &Report) -> u8 {
        match report.exit_code(self.fail_on_findings) {
            1 if self.exit_zero => 0,
            code => code,
        }
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

async fn audit(path: &std::path::Path, format: Format, exit_rules: ExitRules, log_format: LogFormat) -> ExitCode {
    let prepared = Config::load(path).map_err(AppError::from).and_then(|config| {
        // Counted but not exported: a one-shot audit has no /metrics.
        let source = Collector::from_config(&config, ClientMetrics::new()).map_err(AppError::Setup)?;
        Ok((config, source))
    });
    let (config, source) = match prepared {
        Ok(p) => p,
        Err(e) => {
            logging::fatal(log_format, &e);
            return ExitCode::from(e.exit_code());
        }
    };
    let outcome = run_cycle(&source, &config.rules, &config.scope, config.gcp.concurrency).await;
    let mut published = Published::default().merge(outcome, unix_now(), &config.suppressions);
    published.metrics = config.metrics.clone();
    let report = Report::from_published(&published);
    let code = exit_rules.exit_code(&report);
    // Streamed, not built in memory first: at 100k workloads the report is tens of MiB. A
    // closed pipe (`| head`) is the reader's choice, not an error worth a panic.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from).and_then(|()| writeln!(out))
        }
        Format::JsonLines => report.write_json_lines(&mut out, code),
        Format::Table => report.write_table(&mut out),
    };
    let _ = written.and_then(|()| out.flush());
    ExitCode::from(code)
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Runtime::load(path, &ServerOverrides::default(), &Counters::default()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn listen_addresses_are_read_as_exporters_read_them() {
        assert_eq!(parse_listen_address(":10293"), Ok(addr("0.0.0.0:10293")));
        assert_eq!(parse_listen_address("127.0.0.1:8080"), Ok(addr("127.0.0.1:8080")));
        assert_eq!(parse_listen_address("[::1]:8080"), Ok(addr("[::1]:8080")));
        for bad in ["localhost:80", ":", ":http", ":70000", "10293", ""] {
            let e = parse_listen_address(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")) || e.contains("port"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_flag_wins_over_port_which_wins_over_the_file() {
        let flag = Some(addr("127.0.0.1:1"));
        let port = Some(OsStr::new("8080"));
        assert_eq!(server_overrides(flag, None, port).unwrap().listen, flag);
        assert_eq!(server_overrides(None, None, port).unwrap().listen, Some(addr("0.0.0.0:8080")));
        assert_eq!(server_overrides(None, None, None).unwrap(), ServerOverrides::default());
        // Set but empty is unset, as a shell's `PORT=` means.
        assert_eq!(server_overrides(None, None, Some(OsStr::new(""))).unwrap().listen, None);
        let web = Some(PathBuf::from("web.yml"));
        assert_eq!(server_overrides(None, web.clone(), None).unwrap().web_config, web);
    }

    #[test]
    fn a_bad_port_variable_is_named() {
        let e = server_overrides(None, None, Some(OsStr::new("eighty"))).unwrap_err();
        assert_eq!(e, "$PORT: \"eighty\" is not a port number (0-65535)");
        // The flag makes $PORT irrelevant, even a bad one.
        assert!(server_overrides(Some(addr("127.0.0.1:1")), None, Some(OsStr::new("eighty"))).is_ok());
    }
}
