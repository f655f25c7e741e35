//! Test configurations as typed TOML: set or remove a key by its dotted path, and a path that
//! does not exist where it should is a test failure, never a silent no-op (string `replace`
//! edits were).

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::fake_google::FakeGoogle;

#[derive(Debug, Clone)]
pub struct TestConfig(Table);

impl TestConfig {
    /// The live Google source auditing `projects`, every API endpoint on `fake`, short timeouts
    /// and retries, and no credentials of its own (Application Default Credentials decide).
    pub fn on(fake: &FakeGoogle, projects: &[&str]) -> TestConfig {
        let url = fake.base_url.as_str();
        let mut config = TestConfig(Table::new())
            .set("scope.projects", projects.iter().map(|p| Value::from(*p)).collect::<Vec<_>>())
            .set("gcp.request_timeout", "2s")
            .set("gcp.retry_min_delay", "10ms")
            .set("gcp.retry_max_delay", "50ms")
            .set("gcp.max_retries", 3);
        for api in ["run", "functions", "binaryauthorization", "resourcemanager", "asset", "containeranalysis"] {
            config = config.set(&format!("gcp.endpoints.{api}"), url);
        }
        config
    }

    /// `on`, with a service-account key (written in `dir`) whose token endpoint is the fake.
    pub fn gcp(dir: &Path, fake: &FakeGoogle, projects: &[&str]) -> TestConfig {
        TestConfig::on(fake, projects).set("gcp.credentials_file", fake.write_key_file(dir).display().to_string())
    }

    /// A snapshot source reading `path` (a folder or an asset export).
    pub fn snapshot(path: &Path) -> TestConfig {
        TestConfig(Table::new()).set("source.kind", "snapshot").set("source.path", path.display().to_string())
    }

    /// The daemon's part for running it in-process: a port the system chooses, and a schedule
    /// that never fires during a test (the test sends its own ticks); an audit at start if
    /// `run_on_start`.
    pub fn in_process(self, run_on_start: bool) -> TestConfig {
        self.set("schedule.cron", "0 0 1 1 *")
            .set("schedule.run_on_start", run_on_start)
            .set("server.listen", "127.0.0.1:0")
    }

    /// The file at `path`, to edit.
    pub fn load(path: &Path) -> TestConfig {
        TestConfig(std::fs::read_to_string(path).unwrap().parse().unwrap())
    }

    /// Sets `path` (`gcp.endpoints.run`), creating the tables on the way.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> TestConfig {
        let (tables, key) = path.rsplit_once('.').map_or(("", path), |(t, k)| (t, k));
        let mut table = &mut self.0;
        for name in tables.split('.').filter(|n| !n.is_empty()) {
            table = table
                .entry(name)
                .or_insert_with(|| Value::Table(Table::new()))
                .as_table_mut()
                .unwrap_or_else(|| panic!("{name} in {path} is not a table"));
        }
        table.insert(key.to_owned(), value.into());
        self
    }

    /// Removes `path`, which must be there.
    pub fn remove(mut self, path: &str) -> TestConfig {
        let (tables, key) = path.rsplit_once('.').map_or(("", path), |(t, k)| (t, k));
        let mut table = &mut self.0;
        for name in tables.split('.').filter(|n| !n.is_empty()) {
            table = table
                .get_mut(name)
                .and_then(Value::as_table_mut)
                .unwrap_or_else(|| panic!("no table {name} in {path}"));
        }
        table.remove(key).unwrap_or_else(|| panic!("no key {path} to remove"));
        self
    }

    /// Adds the keys of a TOML fragment (`[schedule]\ncron = "..."`), which must parse.
    pub fn merge(mut self, fragment: &str) -> TestConfig {
        let extra: Table = fragment.parse().unwrap_or_else(|e| panic!("test config fragment {fragment:?}: {e}"));
        merge(&mut self.0, extra);
        self
    }

    /// The value at `path`, if every table on the way is there.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let (tables, key) = path.rsplit_once('.').map_or(("", path), |(t, k)| (t, k));
        let mut table = &self.0;
        for name in tables.split('.').filter(|n| !n.is_empty()) {
            table = table.get(name)?.as_table()?;
        }
        table.get(key)
    }

    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, toml::to_string(&self.0).unwrap()).unwrap();
        path.to_owned()
    }
}

fn merge(into: &mut Table, from: Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(existing)), Value::Table(more)) => merge(existing, more),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}
