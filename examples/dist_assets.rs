//! Writes what the packages ship beside the binary, generated from its clap definitions:
//! man pages (one per command, section 1, gzipped as Debian wants them) and bash, zsh and fish
//! completions, laid out as they are installed under /usr/share.
//!
//! Usage: cargo run --example dist_assets -- OUT_DIR (scripts/build-deb runs it).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use binauthz_auditor::cli::Cli;
use clap::CommandFactory;
use clap_complete::Shell;

const NAME: &str = "binauthz-auditor";

fn main() {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: dist_assets OUT_DIR");
        std::process::exit(2);
    };
    if let Err(e) = write_all(&out) {
        eprintln!("error: {}: {e}", out.display());
        std::process::exit(1);
    }
}

fn write_all(out: &Path) -> std::io::Result<()> {
    let man = out.join("man/man1");
    std::fs::create_dir_all(&man)?;
    // The pages' own clap_mangen rendering, then gzip -9n: no name or time in the header, so
    // the same sources give the same bytes.
    let staging = out.join("man-staging");
    std::fs::create_dir_all(&staging)?;
    clap_mangen::generate_to(Cli::command(), &staging)?;
    for page in std::fs::read_dir(&staging)? {
        let page = page?.path();
        let name = page.file_name().expect("a file").to_string_lossy().into_owned();
        let status = std::process::Command::new("gzip")
            .args(["-9n", "-c"])
            .stdin(File::open(&page)?)
            .stdout(File::create(man.join(format!("{name}.gz")))?)
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("gzip {name} failed: {status}")));
        }
    }
    std::fs::remove_dir_all(&staging)?;
    for (shell, dir, file) in [
        (Shell::Bash, "bash-completion/completions", NAME.to_owned()),
        (Shell::Zsh, "zsh/vendor-completions", format!("_{NAME}")),
        (Shell::Fish, "fish/vendor_completions.d", format!("{NAME}.fish")),
    ] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), NAME, &mut buf);
        File::create(dir.join(file))?.write_all(&buf)?;
    }
    Ok(())
}
