//! Log output: colours for a terminal, plain lines for journald, JSON for collectors.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// plain under systemd (journald), human otherwise
    Auto,
    Human,
    /// no colours, no timestamps (journald adds its own)
    Plain,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Plain,
        LogFormat::Auto => LogFormat::Human,
        other => other,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Plain => builder.with_ansi(false).without_time().with_target(false).try_init(),
        _ => builder.with_ansi(std::io::stderr().is_terminal()).with_target(false).try_init(),
    };
    // Already initialised (tests): keep the first subscriber.
    let _ = result;
}
