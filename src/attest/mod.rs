//! Continuous validation: does an image that is serving carry valid attestations for the
//! project's policy today? Pure: keys, occurrences and the policy in, a verdict out.

pub mod pkix;
