//! Remembers basic-auth outcomes, failures included, so a repeated attempt costs no bcrypt.
//! Attempts are named by an HMAC of user, password and hash under a key drawn at start: the
//! cache never holds a password, and its entries mean nothing outside this process.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use ring::hmac;
use ring::rand::SystemRandom;

pub type Tag = hmac::Tag;

/// Entries kept per kind; the oldest goes first. Separate sets, so a flood of failures
/// cannot push out the successes.
const SUCCESSES: usize = 256;
const FAILURES: usize = 16_384;

pub struct Attempts {
    key: hmac::Key,
    succeeded: Mutex<Bounded>,
    failed: Mutex<Bounded>,
    /// user+password pairs that were right once (whatever the hash): their checks after a
    /// reload that changed the hash go first.
    known_good: Mutex<Bounded>,
}

impl Default for Attempts {
    fn default() -> Self {
        // ring fails only where the OS has no random source, where TLS could not work either.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the operating system provides random bytes");
        Attempts {
            key,
            succeeded: Mutex::new(Bounded::new(SUCCESSES)),
            failed: Mutex::new(Bounded::new(FAILURES)),
            known_good: Mutex::new(Bounded::new(SUCCESSES)),
        }
    }
}

impl Attempts {
    /// Names an attempt; `hash` is the bcrypt hash it is checked against ("" for known_good).
    pub fn tag(&self, user: &str, password: &str, hash: &str) -> Tag {
        let mut context = hmac::Context::with_key(&self.key);
        // Length prefixes: ("ab", "c") and ("a", "bc") must not collide.
        for part in [user, password] {
            context.update(&(part.len() as u64).to_le_bytes());
            context.update(part.as_bytes());
        }
        context.update(hash.as_bytes());
        context.sign()
    }

    /// The remembered outcome of an attempt, if any.
    pub fn outcome(&self, tag: &Tag) -> Option<bool> {
        if lock(&self.succeeded).contains(tag) {
            Some(true)
        } else if lock(&self.failed).contains(tag) {
            Some(false)
        } else {
            None
        }
    }

    pub fn record(&self, tag: Tag, ok: bool, good: Tag) {
        if ok {
            lock(&self.succeeded).insert(tag);
            lock(&self.known_good).insert(good);
        } else {
            lock(&self.failed).insert(tag);
        }
    }

    pub fn was_good(&self, good: &Tag) -> bool {
        lock(&self.known_good).contains(good)
    }
}

fn lock(m: &Mutex<Bounded>) -> std::sync::MutexGuard<'_, Bounded> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A set that forgets its oldest entry when full.
struct Bounded {
    set: HashSet<Vec<u8>>,
    order: VecDeque<Vec<u8>>,
    cap: usize,
}

impl Bounded {
    fn new(cap: usize) -> Bounded {
        Bounded { set: HashSet::new(), order: VecDeque::new(), cap }
    }

    fn contains(&self, tag: &Tag) -> bool {
        self.set.contains(tag.as_ref())
    }

    fn insert(&mut self, tag: Tag) {
        let key = tag.as_ref().to_vec();
        if self.set.contains(&key) {
            return;
        }
        if self.order.len() >= self.cap
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_remembered_under_a_keyed_tag() {
        let attempts = Attempts::default();
        let right = attempts.tag("prom", "s3cret", "$2y$hash");
        let wrong = attempts.tag("prom", "guess", "$2y$hash");
        assert_ne!(right.as_ref(), attempts.tag("prom", "s3cret", "$2y$other").as_ref(), "the hash is part of it");
        assert_ne!(attempts.tag("ab", "c", "").as_ref(), attempts.tag("a", "bc", "").as_ref());
        assert_ne!(right.as_ref(), Attempts::default().tag("prom", "s3cret", "$2y$hash").as_ref(), "per-process key");
        assert_eq!(attempts.outcome(&right), None);
        attempts.record(right, true, attempts.tag("prom", "s3cret", ""));
        attempts.record(wrong, false, attempts.tag("prom", "guess", ""));
        assert_eq!(attempts.outcome(&attempts.tag("prom", "s3cret", "$2y$hash")), Some(true));
        assert_eq!(attempts.outcome(&attempts.tag("prom", "guess", "$2y$hash")), Some(false));
        assert!(attempts.was_good(&attempts.tag("prom", "s3cret", "")));
        assert!(!attempts.was_good(&attempts.tag("prom", "guess", "")));
    }

    #[test]
    fn a_full_set_forgets_its_oldest_entry() {
        let attempts = Attempts::default();
        let mut set = Bounded::new(2);
        let tags: Vec<Tag> = (0..3).map(|i| attempts.tag("u", &i.to_string(), "")).collect();
        for tag in &tags {
            set.insert(*tag);
        }
        assert!(!set.contains(&tags[0]));
        assert!(set.contains(&tags[1]) && set.contains(&tags[2]));
    }
}
