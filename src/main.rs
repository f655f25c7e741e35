use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = binauthz_auditor::cli::Cli::parse();
    // One TLS stack for every client: rustls with ring (see Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(binauthz_auditor::cli::run(cli))
}
