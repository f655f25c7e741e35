//! Password checks one at a time, on one blocking thread: a flood of wrong passwords costs at
//! most one core, whatever its size. Checks of credentials that were right before go first;
//! the others queue, a few per client address and a bounded number in all, and the excess is
//! turned away at once (429) instead of waiting behind the flood.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

/// Checks waiting for credentials that were right before (at most one per scraper, really).
const KNOWN_QUEUE: usize = 16;
/// Checks waiting for anything else, in all and per client address: at ~70 ms a check (cost
/// 10), a login from an address of its own waits at most PER_PEER checks per flooding address.
const OTHER_QUEUE: usize = 64;
const PER_PEER: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// The user+password pair succeeded before (against an earlier hash, say).
    KnownGood,
    Other,
}

/// Too many checks are waiting: the request is refused without one.
#[derive(Debug)]
pub struct Busy;

pub struct BcryptGate {
    known: mpsc::Sender<Job>,
    other: mpsc::Sender<Job>,
    waiting: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

struct Job {
    password: String,
    hash: String,
    reply: oneshot::Sender<bool>,
}

impl BcryptGate {
    /// Starts the checking task (it ends when the gate is dropped). Needs a tokio runtime.
    pub fn start() -> BcryptGate {
        let (known, known_jobs) = mpsc::channel(KNOWN_QUEUE);
        let (other, other_jobs) = mpsc::channel(OTHER_QUEUE);
        tokio::spawn(check_one_at_a_time(known_jobs, other_jobs));
        BcryptGate { known, other, waiting: Arc::default() }
    }

    pub async fn verify(&self, password: &str, hash: &str, priority: Priority, peer: IpAddr) -> Result<bool, Busy> {
        let (queue, _slot) = match priority {
            Priority::KnownGood => (&self.known, None),
            Priority::Other => (&self.other, Some(PeerSlot::take(&self.waiting, peer)?)),
        };
        let (reply, answer) = oneshot::channel();
        queue.try_send(Job { password: password.to_owned(), hash: hash.to_owned(), reply }).map_err(|_| Busy)?;
        answer.await.map_err(|_| Busy)
    }
}

async fn check_one_at_a_time(mut known: mpsc::Receiver<Job>, mut other: mpsc::Receiver<Job>) {
    loop {
        let job = tokio::select! {
            biased;
            Some(job) = known.recv() => job,
            Some(job) = other.recv() => job,
            else => return,
        };
        if job.reply.is_closed() {
            // Its client gave up (timed out, disconnected): spend nothing on it.
            continue;
        }
        let Job { password, hash, reply } = job;
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        let _ = reply.send(ok);
    }
}

/// One queued check of a client address; released when the check ends or is abandoned.
struct PeerSlot {
    waiting: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer: IpAddr,
}

impl PeerSlot {
    fn take(waiting: &Arc<Mutex<HashMap<IpAddr, usize>>>, peer: IpAddr) -> Result<PeerSlot, Busy> {
        let mut counts = waiting.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(peer).or_insert(0);
        if *count >= PER_PEER {
            return Err(Busy);
        }
        *count += 1;
        Ok(PeerSlot { waiting: Arc::clone(waiting), peer })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flooding_address_is_turned_away_past_its_share() {
        let gate = Arc::new(BcryptGate::start());
        let hash = bcrypt::hash("right", 4).unwrap();
        let flood: IpAddr = "192.0.2.1".parse().unwrap();
        let mut checks = Vec::new();
        for _ in 0..PER_PEER + 3 {
            let (gate, hash) = (Arc::clone(&gate), hash.clone());
            checks.push(tokio::spawn(async move { gate.verify("wrong", &hash, Priority::Other, flood).await }));
        }
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(gate.verify("right", &hash, Priority::Other, other).await.unwrap(), "another address gets in");
        let mut busy = 0;
        for check in checks {
            match check.await.unwrap() {
                Ok(ok) => assert!(!ok),
                Err(Busy) => busy += 1,
            }
        }
        assert!(busy >= 1, "past PER_PEER waiting checks, an address is refused");
        assert!(gate.waiting.lock().unwrap().is_empty(), "every slot was released");
    }
}
