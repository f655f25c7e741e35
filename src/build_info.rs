//! What this binary was built from (see build.rs): `--version` and `binauthz_build_info`.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit (40 hex digits), `BINAUTHZ_REVISION` at build time, or `unknown`.
pub const REVISION: &str = env!("BINAUTHZ_REVISION");
/// The compiler's version number (`1.95.0`), as the metric's `rustc` label.
pub const RUSTC_VERSION: &str = env!("BINAUTHZ_RUSTC_VERSION");

/// `--version`: what a bug report needs to name the build.
pub const LONG_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), "\nrevision: ", env!("BINAUTHZ_REVISION"), "\nrustc: ", env!("BINAUTHZ_RUSTC"));
