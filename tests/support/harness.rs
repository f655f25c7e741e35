//! The set-up most integration tests share: a world, the fake Google serving it, a scratch
//! folder, and configs pointing at the fake; then the real binary's `audit`, or the daemon
//! in-process, on one of them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::TestConfig;
use super::daemon::InProcess;
use super::fake_google::FakeGoogle;
use super::fake_google::world::World;
use super::run::audit_json;

pub struct Harness {
    pub fake: FakeGoogle,
    dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(world: World) -> Harness {
        Harness { fake: FakeGoogle::start(world).await, dir: tempfile::tempdir().unwrap() }
    }

    /// The scratch folder, removed with the harness.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The live Google source on the fake, auditing `projects` (see `TestConfig::gcp`).
    pub fn config(&self, projects: &[&str]) -> TestConfig {
        TestConfig::gcp(self.dir.path(), &self.fake, projects)
    }

    /// Writes `config` as `name` in the scratch folder.
    pub fn write(&self, config: &TestConfig, name: &str) -> PathBuf {
        config.write(&self.path(name))
    }

    /// `audit --format json` on `config` (written as `config.toml`): (exit code, report, stderr).
    pub async fn audit(&self, config: &TestConfig) -> (i32, Value, String) {
        audit_json(&self.write(config, "config.toml")).await
    }

    /// The daemon in-process on `config` (written as `config.toml`; see `TestConfig::in_process`).
    pub async fn daemon(&self, config: &TestConfig) -> InProcess {
        InProcess::start(&self.write(config, "config.toml")).await
    }
}
