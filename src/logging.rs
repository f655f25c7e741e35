//! Log output: colours for a terminal, plain lines for journald, JSON for collectors, and
//! Google Cloud Logging's structured JSON on Cloud Run (and GKE).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

mod cloud_logging;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// gcp on Cloud Run (K_SERVICE or CLOUD_RUN_JOB set), plain under systemd (journald),
    /// human otherwise
    Auto,
    Human,
    /// no colours, no timestamps (journald adds its own)
    Plain,
    /// one JSON object per line (tracing's field names: `level`, `fields`...)
    Json,
    /// one JSON object per line as Google Cloud Logging reads it: `severity`, `message`,
    /// `time`, `logging.googleapis.com/sourceLocation`
    Gcp,
}

impl LogFormat {
    /// What `auto` means here, from the environment the process was started in.
    pub fn resolve(self, env_set: impl Fn(&str) -> bool) -> LogFormat {
        match self {
            // Cloud Run sets K_SERVICE in services and CLOUD_RUN_JOB in jobs; its log agent
            // reads JSON lines on stdout and stderr as structured entries.
            LogFormat::Auto if env_set("K_SERVICE") || env_set("CLOUD_RUN_JOB") => LogFormat::Gcp,
            LogFormat::Auto if env_set("JOURNAL_STREAM") => LogFormat::Plain,
            LogFormat::Auto => LogFormat::Human,
            other => other,
        }
    }

    /// Lines a log collector parses as JSON: errors go through the logger, not `eprintln!`.
    pub fn is_structured(self) -> bool {
        matches!(self, LogFormat::Json | LogFormat::Gcp)
    }
}

/// Installs the process's logger (once; later calls keep the first) and returns the format
/// `auto` resolved to.
pub fn init(format: LogFormat) -> LogFormat {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = format.resolve(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Gcp => builder.event_format(cloud_logging::CloudLogging).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Plain => builder.with_ansi(false).without_time().with_target(false).try_init(),
        _ => builder.with_ansi(std::io::stderr().is_terminal()).with_target(false).try_init(),
    };
    // Already initialised (tests): keep the first subscriber.
    let _ = result;
    format
}

/// A fatal error for whoever reads stderr: `error: ...` for people, a log entry of severity
/// ERROR where a collector parses the lines.
pub fn fatal(format: LogFormat, error: &dyn std::fmt::Display) {
    if format.is_structured() {
        tracing::error!("{error}");
    } else {
        eprintln!("error: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(format: LogFormat, set: &[&str]) -> LogFormat {
        format.resolve(|name| set.contains(&name))
    }

    #[test]
    fn auto_follows_where_the_process_runs() {
        assert_eq!(resolve(LogFormat::Auto, &[]), LogFormat::Human);
        assert_eq!(resolve(LogFormat::Auto, &["JOURNAL_STREAM"]), LogFormat::Plain);
        assert_eq!(resolve(LogFormat::Auto, &["K_SERVICE"]), LogFormat::Gcp);
        assert_eq!(resolve(LogFormat::Auto, &["CLOUD_RUN_JOB"]), LogFormat::Gcp);
        // Cloud Run wins: its log agent, not journald, reads the lines.
        assert_eq!(resolve(LogFormat::Auto, &["CLOUD_RUN_JOB", "JOURNAL_STREAM"]), LogFormat::Gcp);
    }

    #[test]
    fn an_explicit_format_is_kept_anywhere() {
        for format in [LogFormat::Human, LogFormat::Plain, LogFormat::Json, LogFormat::Gcp] {
            assert_eq!(resolve(format, &["K_SERVICE", "JOURNAL_STREAM"]), format);
        }
    }
}
