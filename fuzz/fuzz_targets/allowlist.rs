//! Allowlist patterns against images and repositories: no panic on any pattern, and an
//! exempted repository exempts the images in it.
//!
//! Input: `pattern \0 image` (the image doubles as the repository); without a 0 byte the
//! whole input is the pattern and the image is empty.
#![no_main]

use binauthz_auditor::evaluate::allowlist::{exempts_more_than_one_repository, exempts_repository, matches};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (pattern, image) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(pattern), Ok(image)) = (std::str::from_utf8(pattern), std::str::from_utf8(image)) else { return };
    // Bound the quadratic matcher so the fuzzer explores inputs instead of timing out.
    if pattern.len() > 512 || image.len() > 512 {
        return;
    }

    let _ = matches(pattern, image);
    let _ = exempts_more_than_one_repository(pattern);

    let repository = image;
    if exempts_repository(pattern, repository) {
        let full = format!("{repository}/x:1");
        assert!(
            matches(pattern, &full),
            "{pattern:?} exempts repository {repository:?} but does not match {full:?}"
        );
    }
});
