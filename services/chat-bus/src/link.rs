//! Whether a reader reaches the bus. The reader records each read's outcome; the gateway
//! asks how long the bus has been out of reach and, past a bound, stops pretending to
//! serve: it fails `/readyz` and sends its clients to a gateway that can deliver. The
//! reader also counts what it met on the way, for the gateway's metrics: connections lost
//! mid-read (a node killed, failed over or cut off) and redirects followed on a cluster,
//! and says how many reads it keeps in flight.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Link {
    /// When reads began to fail, `None` while they succeed.
    lost_at: Mutex<Option<Instant>>,
    connections_lost: AtomicU64,
    redirects: AtomicU64,
    /// Reads the reader keeps in flight now; 0 for one that has none of its own.
    reads: AtomicU64,
}

impl Link {
    /// A read succeeded: the bus is in reach.
    pub fn up(&self) {
        *self.lost_at.lock().expect("link lock") = None;
    }

    /// A read failed; the first failure of a run is when the bus was lost.
    pub fn down(&self) {
        self.lost_at.lock().expect("link lock").get_or_insert_with(Instant::now);
    }

    /// How long the bus has been out of reach, `None` while it is in reach.
    pub fn down_for(&self) -> Option<Duration> {
        self.lost_at.lock().expect("link lock").map(|at| at.elapsed())
    }

    /// A connection broke under a read (entries may have been missed).
    pub fn connection_lost(&self) {
        self.connections_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// A cluster node answered `MOVED` or `ASK` for a slot whose master had changed.
    pub fn redirected(&self) {
        self.redirects.fetch_add(1, Ordering::Relaxed);
    }

    /// The reader keeps `reads` reads in flight from now on.
    pub fn set_reads(&self, reads: usize) {
        self.reads.store(reads as u64, Ordering::Relaxed);
    }

    /// The reads the reader keeps in flight now.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Connections lost and redirects followed so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.connections_lost.load(Ordering::Relaxed),
            self.redirects.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_counts_from_the_first_failure_until_a_read_succeeds() {
        let link = Link::default();
        assert_eq!(link.down_for(), None);
        link.down();
        let first = link.down_for().unwrap();
        link.down();
        assert!(
            link.down_for().unwrap() >= first,
            "a later failure does not restart the count"
        );
        link.up();
        assert_eq!(link.down_for(), None);
    }
}
