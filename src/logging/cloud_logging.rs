//! Log lines as Google Cloud Logging reads them from a container's stdout/stderr: one JSON
//! object per line whose special fields become the entry's own (`severity`, `message`,
//! `time`, `logging.googleapis.com/sourceLocation`); the event's other fields stay in
//! `jsonPayload`. Without `severity` every line would land as DEFAULT.

use std::fmt;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub struct CloudLogging;

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let spans: Vec<Value> =
            ctx.event_scope().into_iter().flat_map(|scope| scope.from_root()).map(|s| s.name().into()).collect();
        let line = entry(event.metadata(), fields.0, spans, &Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true));
        writeln!(writer, "{line}")
    }
}

/// One entry: the special fields first, then the event's own (which never replace them).
fn entry(meta: &tracing::Metadata<'_>, mut fields: Map<String, Value>, spans: Vec<Value>, time: &str) -> Value {
    let mut out = Map::new();
    out.insert("severity".into(), severity(meta.level()).into());
    out.insert("message".into(), fields.remove("message").unwrap_or_else(|| "".into()));
    out.insert("time".into(), time.into());
    if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
        // LogEntrySourceLocation.line is an int64, which proto3 JSON writes as a string.
        let location = json!({"file": file, "line": line.to_string(), "function": meta.target()});
        out.insert("logging.googleapis.com/sourceLocation".into(), location);
    }
    out.insert("target".into(), meta.target().into());
    if !spans.is_empty() {
        out.insert("spans".into(), spans.into());
    }
    for (key, value) in fields {
        out.entry(key).or_insert(value);
    }
    Value::Object(out)
}

/// Cloud Logging's LogSeverity names (it has no TRACE: that is DEBUG too).
fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// An event's fields as JSON values: numbers and booleans as such, the rest as text.
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), crate::error::error_chain(value).into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the formatter writes for the events `emit` logs, one parsed line each.
    fn lines(emit: impl FnOnce()) -> Vec<Value> {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .event_format(CloudLogging)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_level_has_a_cloud_logging_severity() {
        let out = lines(|| {
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
            tracing::trace!("t");
        });
        let severities: Vec<&str> = out.iter().map(|l| l["severity"].as_str().unwrap()).collect();
        assert_eq!(severities, ["ERROR", "WARNING", "INFO", "DEBUG", "DEBUG"]);
        assert_eq!(out[0]["message"], "e");
    }

    #[test]
    fn fields_source_location_and_time_are_where_cloud_logging_reads_them() {
        let out = lines(|| {
            let span = tracing::info_span!("cycle");
            let _entered = span.enter();
            tracing::warn!(project = "acme", attempts = 3_u64, complete = false, "project {} incomplete", "acme");
        });
        let line = &out[0];
        assert_eq!(line["message"], "project acme incomplete");
        assert_eq!(line["project"], "acme");
        assert_eq!(line["attempts"], 3);
        assert_eq!(line["complete"], false);
        assert_eq!(line["spans"], json!(["cycle"]));
        let location = &line["logging.googleapis.com/sourceLocation"];
        assert_eq!(location["file"], file!());
        assert!(location["line"].as_str().unwrap().parse::<u32>().unwrap() > 0, "{location}");
        let time = line["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
    }

    #[test]
    fn an_event_field_never_replaces_a_special_one() {
        let out = lines(|| tracing::info!(severity = "DEBUG", time = 0, "kept"));
        assert_eq!(out[0]["severity"], "INFO");
        assert_ne!(out[0]["time"], 0);
    }
}
