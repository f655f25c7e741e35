//! Binary Authorization allowlist (`admissionWhitelistPatterns`) semantics.
//!
//! Google's patterns are literal or end in `*` (any characters except `/`) or `**` (any
//! characters). The matcher here accepts wildcards anywhere, a superset of Google's rule, so that
//! an odd pattern such as `*-docker.pkg.dev/**` is judged by what it would match rather than
//! silently ignored.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Literal(&'a str),
    /// `*`: any run of characters without `/`.
    Star,
    /// `**`: any run of characters.
    DoubleStar,
}

fn tokenize(pattern: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("**") {
            // `***` and longer behave like `**`.
            if tokens.last() != Some(&Token::DoubleStar) {
                tokens.push(Token::DoubleStar);
            }
            rest = after.trim_start_matches('*');
        } else if let Some(after) = rest.strip_prefix('*') {
            tokens.push(Token::Star);
            rest = after;
        } else {
            let end = rest.find('*').unwrap_or(rest.len());
            tokens.push(Token::Literal(&rest[..end]));
            rest = &rest[end..];
        }
    }
    tokens
}

/// Does `pattern` match the whole of `image` (a full reference, tag or digest included)?
///
/// Dynamic programming over (token, position): linear in pattern length times image length,
/// whatever the number of wildcards.
pub fn matches(pattern: &str, image: &str) -> bool {
    let tokens = tokenize(pattern);
    let text = image.as_bytes();
    // reachable[i]: the tokens so far can consume exactly text[..i].
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for token in &tokens {
        let mut next = vec![false; text.len() + 1];
        match token {
            Token::Literal(lit) => {
                let lit = lit.as_bytes();
                for i in 0..=text.len() {
                    if reachable[i] && text[i..].starts_with(lit) {
                        next[i + lit.len()] = true;
                    }
                }
            }
            Token::Star | Token::DoubleStar => {
                let crosses_slash = *token == Token::DoubleStar;
                let mut carrying = false;
                for i in 0..=text.len() {
                    carrying |= reachable[i];
                    next[i] = carrying;
                    if !crosses_slash && i < text.len() && text[i] == b'/' {
                        carrying = false;
                    }
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

/// Is every image in `repository` (`HOST/PROJECT/REPO`) exempted by `pattern`?
///
/// True iff the pattern ends in `**` and what precedes it matches some prefix of
/// `repository/`: then whatever follows (image name, tag, digest) is swallowed by `**`.
pub fn exempts_repository(pattern: &str, repository: &str) -> bool {
    let Some(head) = pattern.strip_suffix("**") else {
        return false;
    };
    let target = format!("{}/", repository.trim_end_matches('/'));
    target.char_indices().map(|(i, _)| i).chain([target.len()]).any(|end| matches(head, &target[..end]))
}

/// Is `repository` exempted by any of `patterns`?
pub fn repository_exempted(patterns: &[String], repository: &str) -> bool {
    patterns.iter().any(|p| exempts_repository(p, repository))
}

/// Does `pattern` exempt the images stored directly in `repository` (`REPO/*`) without being
/// the `REPO/**` Google documents? Such an entry covers `REPO/IMAGE:TAG` but no nested path.
pub fn exempts_top_level_only(pattern: &str, repository: &str) -> bool {
    !exempts_repository(pattern, repository)
        && matches(pattern, &format!("{}/image", repository.trim_end_matches('/')))
        && matches(pattern, &format!("{}/image:tag", repository.trim_end_matches('/')))
}

/// `REGION-docker.pkg.dev/PROJECT/gcf-artifacts/**` or `.../cloud-run-source-deploy/**`: the
/// entries Google documents for functions to deploy under an enforcing policy.
pub fn is_documented_function_pattern(pattern: &str) -> bool {
    let Some(repository) = pattern.strip_suffix("/**") else { return false };
    match repository.split('/').collect::<Vec<_>>().as_slice() {
        [host, project, repo] => {
            host.ends_with("-docker.pkg.dev")
                && !host.contains('*')
                && !project.is_empty()
                && !project.contains('*')
                && matches!(*repo, "gcf-artifacts" | "cloud-run-source-deploy")
        }
        _ => false,
    }
}

/// Does `pattern` exempt more than one repository (`**`, `host/**`, `host/project/**`,
/// `*-docker.pkg.dev/**`, `host/project/repo**` ...)?
///
/// A pattern pins a single repository only when its literal text, before any wildcard, spells
/// out the whole repository path and its closing `/`: `HOST/PROJECT/REPO/` on Artifact Registry
/// (`*.pkg.dev`), `HOST/PROJECT/` on Container Registry and other hosts.
pub fn exempts_more_than_one_repository(pattern: &str) -> bool {
    // Without `**` a pattern cannot reach past one path segment, so cannot span repositories.
    if !pattern.contains("**") {
        return false;
    }
    let literal = &pattern[..pattern.find('*').unwrap_or(pattern.len())];
    let Some((host, _)) = literal.split_once('/') else {
        return true;
    };
    let separators_needed = if host.ends_with("pkg.dev") { 3 } else { 2 };
    literal.matches('/').count() < separators_needed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious recursive reading of the glob rules, to check the fast matcher against.
    fn reference_matches(pattern: &[u8], text: &[u8]) -> bool {
        match pattern {
            [] => text.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=text.len()).any(|i| reference_matches(rest, &text[i..])),
            [b'*', rest @ ..] => (0..=text.len())
                .take_while(|&i| i == 0 || text[i - 1] != b'/')
                .any(|i| reference_matches(rest, &text[i..])),
            [c, rest @ ..] => text.first() == Some(c) && reference_matches(rest, &text[1..]),
        }
    }

    #[test]
    fn single_star_stops_at_slashes_but_covers_tags_and_digests() {
        assert!(matches("gcr.io/p/app*", "gcr.io/p/app:v1"));
        assert!(matches("gcr.io/p/app*", "gcr.io/p/app@sha256:abc"));
        assert!(!matches("gcr.io/p/*", "gcr.io/p/nested/app:v1"));
        assert!(matches("gcr.io/p/**", "gcr.io/p/nested/app:v1"));
        assert!(matches("gcr.io/p/app", "gcr.io/p/app"));
        assert!(!matches("gcr.io/p/app", "gcr.io/p/app:v1"));
    }

    #[test]
    fn a_repository_is_exempted_only_by_a_double_star_over_its_whole_path() {
        let repo = "us-central1-docker.pkg.dev/p/gcf-artifacts";
        assert!(exempts_repository("us-central1-docker.pkg.dev/p/gcf-artifacts/**", repo));
        assert!(exempts_repository("us-central1-docker.pkg.dev/p/**", repo));
        assert!(exempts_repository("**", repo));
        assert!(exempts_repository("*-docker.pkg.dev/**", repo));
        assert!(!exempts_repository("us-central1-docker.pkg.dev/p/gcf-artifacts/*", repo));
        assert!(!exempts_repository("us-central1-docker.pkg.dev/p/gcf-artifacts", repo));
        assert!(!exempts_repository("us-central1-docker.pkg.dev/p/gcf-artifacts/app/**", repo));
        assert!(!exempts_repository("europe-west1-docker.pkg.dev/p/gcf-artifacts/**", repo));
        assert!(exempts_repository("us-central1-docker.pkg.dev/p/gcf**", repo));
    }

    #[test]
    fn a_single_star_over_a_repository_is_recognised_as_top_level_only() {
        let repo = "us-central1-docker.pkg.dev/p/gcf-artifacts";
        assert!(exempts_top_level_only("us-central1-docker.pkg.dev/p/gcf-artifacts/*", repo));
        assert!(!exempts_top_level_only("us-central1-docker.pkg.dev/p/gcf-artifacts/**", repo));
        assert!(!exempts_top_level_only("us-central1-docker.pkg.dev/p/gcf-artifacts/app*", repo));
        assert!(!exempts_top_level_only("us-central1-docker.pkg.dev/p/other/*", repo));
    }

    #[test]
    fn the_documented_function_entries_are_recognised() {
        assert!(is_documented_function_pattern("us-central1-docker.pkg.dev/p/gcf-artifacts/**"));
        assert!(is_documented_function_pattern("europe-west1-docker.pkg.dev/p/cloud-run-source-deploy/**"));
        assert!(!is_documented_function_pattern("us-central1-docker.pkg.dev/p/apps/**"));
        assert!(!is_documented_function_pattern("*-docker.pkg.dev/p/gcf-artifacts/**"));
        assert!(!is_documented_function_pattern("us-central1-docker.pkg.dev/p/gcf-artifacts/*"));
    }

    #[test]
    fn broad_patterns_are_recognised_and_narrow_ones_are_not() {
        for broad in [
            "**",
            "us-docker.pkg.dev/**",
            "us-docker.pkg.dev/p/**",
            "*-docker.pkg.dev/**",
            "us-docker.pkg.dev/p/repo**",
            "us-docker.pkg.dev/p/*/**",
            "gcr.io/**",
        ] {
            assert!(exempts_more_than_one_repository(broad), "{broad} should be too broad");
        }
        for narrow in [
            "us-docker.pkg.dev/p/repo/**",
            "us-docker.pkg.dev/p/repo/app*",
            "us-docker.pkg.dev/p/repo/app:v1",
            "gcr.io/p/**",
            "gcr.io/p/*",
        ] {
            assert!(!exempts_more_than_one_repository(narrow), "{narrow} should be narrow");
        }
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop_oneof!["[ab/:@]{1,3}", Just("*".to_string()), Just("**".to_string())], 0..6)
            .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn the_matcher_agrees_with_the_reference(pattern in pattern_strategy(), text in "[ab/:@]{0,10}") {
            let normalised = tokenize(&pattern).iter().map(|t| match t {
                Token::Literal(l) => l.to_string(),
                Token::Star => "*".into(),
                Token::DoubleStar => "**".into(),
            }).collect::<String>();
            prop_assert_eq!(matches(&pattern, &text), reference_matches(normalised.as_bytes(), text.as_bytes()));
        }

        #[test]
        fn an_exempted_repository_exempts_every_image_in_it(
            pattern in pattern_strategy(),
            repo in "[ab]{1,2}/[ab]{1,2}/[ab]{1,2}",
            image in "[ab/]{1,6}(:v1|@sha256:ab)?",
        ) {
            if exempts_repository(&pattern, &repo) {
                let full = format!("{repo}/{image}");
                prop_assert!(matches(&pattern, &full), "{} exempts {} but not {}", pattern, repo, full);
            }
        }

        #[test]
        fn coverage_is_monotonic_in_the_pattern_list(
            patterns in proptest::collection::vec(pattern_strategy(), 0..4),
            extra in pattern_strategy(),
            repo in "[ab]{1,2}/[ab]{1,2}/[ab]{1,2}",
        ) {
            let before = repository_exempted(&patterns, &repo);
            let mut more = patterns.clone();
            more.push(extra);
            prop_assert!(!before || repository_exempted(&more, &repo));
        }
    }
}
