//! Build metadata for `--version` and `binauthz_build_info`: the git revision and the compiler.
//!
//! Two commands and two variables are all this needs, so no crate (vergen pulls in gix or
//! git2, built only pulls in its own git and chrono features). `BINAUTHZ_REVISION` wins over
//! git: a build from a source tree without `.git` (a container build context, a tarball)
//! passes the revision it was made from; without either it is `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=BINAUTHZ_REVISION");
    let revision = std::env::var("BINAUTHZ_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .map(|r| r.trim().to_owned())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let rustc_line = output(Command::new(rustc).arg("--version")).unwrap_or_else(|| "rustc unknown".to_owned());
    let rustc_version = rustc_line.split_whitespace().nth(1).unwrap_or("unknown").to_owned();
    println!("cargo:rustc-env=BINAUTHZ_REVISION={revision}");
    println!("cargo:rustc-env=BINAUTHZ_RUSTC={rustc_line}");
    println!("cargo:rustc-env=BINAUTHZ_RUSTC_VERSION={rustc_version}");
}

/// The commit checked out, and the files whose change means a new one: HEAD, the branch's
/// loose ref and packed-refs (only those that exist: cargo reruns a build script on every
/// build while a watched path is missing).
fn git_revision() -> Option<String> {
    let revision = output(Command::new("git").args(["rev-parse", "HEAD"]))?;
    let mut watched = vec![git_path("HEAD")?, git_path("packed-refs")?];
    if let Some(branch) = output(Command::new("git").args(["symbolic-ref", "-q", "HEAD"])) {
        watched.push(git_path(&branch)?);
    }
    for path in watched.iter().filter(|p| Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    Some(revision)
}

fn git_path(name: &str) -> Option<String> {
    output(Command::new("git").args(["rev-parse", "--git-path", name]))
}

fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}
