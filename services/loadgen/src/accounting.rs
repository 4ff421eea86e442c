//! Loss, duplicate and order accounting.
//!
//! Every member checks two streams independently: the room's `seq` (what the server
//! promises: gapless, once, increasing per connection) and, per sender, the counter the
//! sender wrote into the message text (what a person sees: my messages arrive in the order
//! I sent them). The second catches a server that renumbers or reorders before assigning
//! `seq`, which the first cannot see.
//!
//! Loss can only be judged at the end, against what was acknowledged: a message that was
//! never acked may or may not have been committed, so it is not expected.

use serde::Serialize;

/// A set of `u64` numbers that are dense from some base (room seqs, sender counters): a
/// bitmap, so that a member of a 2,000-member room costs bits, not a hash entry, per message.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    /// The number the first bit stands for; fixed at the first insert.
    base: Option<u64>,
    bits: Vec<u64>,
    len: u64,
}

impl SeqSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts `n`; returns false when it was already there. Numbers below the first one
    /// inserted move the base down, which is rare (a late message) and cheap enough.
    pub fn insert(&mut self, n: u64) -> bool {
        let base = *self.base.get_or_insert(n);
        if n < base {
            self.rebase(n);
        }
        let base = self.base.expect("set above");
        let offset = n - base;
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        if self.bits[word] & mask != 0 {
            return false;
        }
        self.bits[word] |= mask;
        self.len += 1;
        true
    }

    fn rebase(&mut self, new_base: u64) {
        let old: Vec<u64> = self.iter().collect();
        self.base = Some(new_base);
        self.bits.clear();
        self.len = 0;
        for n in old {
            self.insert(n);
        }
    }

    pub fn contains(&self, n: u64) -> bool {
        let Some(base) = self.base else { return false };
        if n < base {
            return false;
        }
        let offset = n - base;
        let word = (offset / 64) as usize;
        word < self.bits.len() && self.bits[word] & (1 << (offset % 64)) != 0
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max(&self) -> Option<u64> {
        let base = self.base?;
        let (word, bits) = self.bits.iter().enumerate().rev().find(|(_, w)| **w != 0)?;
        Some(base + word as u64 * 64 + 63 - u64::from(bits.leading_zeros()))
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let base = self.base.unwrap_or(0);
        self.bits.iter().enumerate().flat_map(move |(word, bits)| {
            (0..64)
                .filter(move |bit| bits & (1 << bit) != 0)
                .map(move |bit| base + word as u64 * 64 + bit)
        })
    }

    /// Adds every number of `other`.
    pub fn extend(&mut self, other: &SeqSet) {
        for n in other.iter() {
            self.insert(n);
        }
    }
}

/// How one delivery relates to the ones before it on the same stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// New and higher than everything before it (gaps allowed: they may be losses, counted
    /// at the end).
    InOrder,
    /// Seen before.
    Duplicate,
    /// New, but lower than one already seen.
    OutOfOrder,
}

/// One ordered stream as one member sees it.
#[derive(Debug, Clone, Default)]
pub struct StreamCheck {
    seen: SeqSet,
    highest: Option<u64>,
    /// The highest `n` such that every number from the first one expected up to it has
    /// arrived; the drain phase waits on this.
    contiguous: Option<u64>,
    pub tally: Tally,
}

/// Counts for one stream (or, summed, for a run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Distinct deliveries.
    pub delivered: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Acked but never delivered; filled in by [`StreamCheck::count_lost`].
    pub lost: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.lost += other.lost;
    }
}

impl StreamCheck {
    /// A stream whose first expected number is `first` (a room member: the seq after
    /// `joined.last_seq`; a sender's counter: 0).
    pub fn starting_at(first: u64) -> Self {
        Self {
            contiguous: first.checked_sub(1),
            ..Self::default()
        }
    }

    pub fn observe(&mut self, n: u64) -> Arrival {
        if !self.seen.insert(n) {
            self.tally.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.tally.delivered += 1;
        let next = self.contiguous.map_or(0, |c| c + 1);
        if n == next {
            let mut c = n;
            while self.seen.contains(c + 1) {
                c += 1;
            }
            self.contiguous = Some(c);
        }
        match self.highest {
            Some(h) if n < h => {
                self.tally.out_of_order += 1;
                Arrival::OutOfOrder
            }
            _ => {
                self.highest = Some(n);
                Arrival::InOrder
            }
        }
    }

    /// Every number up to this one has arrived (`None`: not even the first).
    pub fn contiguous(&self) -> Option<u64> {
        self.contiguous
    }

    /// Counts the numbers of `expected` at or above `from` that never arrived, into
    /// `tally.lost`, and returns them.
    pub fn count_lost(&mut self, expected: &SeqSet, from: u64) -> u64 {
        let lost = expected
            .iter()
            .filter(|n| *n >= from && !self.seen.contains(*n))
            .count() as u64;
        self.tally.lost = lost;
        lost
    }
}

/// The longest [`Stamp::encode`] can be: `lg:` + u32 + `:` + u64 + `:` + u64.
pub const STAMP_MAX_BYTES: usize = 3 + 10 + 1 + 20 + 1 + 20;

/// What a message's text carries: who sent it, the sender's counter, and the send time,
/// so that any member can compute latency and check order without shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u32,
    pub n: u64,
    /// Unix nanoseconds when the send frame was written.
    pub sent_at_nanos: u64,
}

impl Stamp {
    const PREFIX: &'static str = "lg:";

    /// `lg:<sender>:<n>:<unix_nanos>`, then optional padding after a space (ignored).
    pub fn encode(&self) -> String {
        format!("{}{}:{}:{}", Self::PREFIX, self.sender, self.n, self.sent_at_nanos)
    }

    /// [`Stamp::encode`], padded with a space and `x`s to `len` bytes (never shorter than
    /// the stamp), so that message size is a parameter of the run.
    pub fn encode_padded(&self, len: usize) -> String {
        let mut text = self.encode();
        if text.len() + 1 < len {
            text.push(' ');
            text.extend(std::iter::repeat_n('x', len - text.len()));
        }
        text
    }

    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(Self::PREFIX)?;
        let rest = rest.split(' ').next()?;
        let mut parts = rest.split(':');
        let stamp = Self {
            sender: parts.next()?.parse().ok()?,
            n: parts.next()?.parse().ok()?,
            sent_at_nanos: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_set_inserts_once_and_knows_its_members() {
        let mut set = SeqSet::new();
        assert!(set.is_empty());
        assert_eq!(set.max(), None);
        for n in [100, 101, 165, 300] {
            assert!(set.insert(n));
        }
        assert!(!set.insert(165));
        assert_eq!(set.len(), 4);
        assert!(set.contains(300) && !set.contains(299) && !set.contains(5));
        assert_eq!(set.max(), Some(300));
        assert!(set.insert(3), "below the base");
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![3, 100, 101, 165, 300]);
        let mut other = SeqSet::new();
        other.insert(101);
        other.insert(400);
        set.extend(&other);
        assert_eq!(set.len(), 6);
    }

    #[test]
    fn an_in_order_stream_counts_deliveries_only() {
        let mut check = StreamCheck::starting_at(1);
        for n in 1..=5 {
            assert_eq!(check.observe(n), Arrival::InOrder);
        }
        assert_eq!(check.contiguous(), Some(5));
        let expected: SeqSet = {
            let mut s = SeqSet::new();
            (1..=5).for_each(|n| {
                s.insert(n);
            });
            s
        };
        assert_eq!(check.count_lost(&expected, 1), 0);
        assert_eq!(
            check.tally,
            Tally {
                delivered: 5,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn duplicates_and_reordering_are_told_apart() {
        let mut check = StreamCheck::starting_at(1);
        assert_eq!(check.observe(1), Arrival::InOrder);
        assert_eq!(check.observe(3), Arrival::InOrder, "a gap is not an error yet");
        assert_eq!(check.contiguous(), Some(1));
        assert_eq!(check.observe(2), Arrival::OutOfOrder);
        assert_eq!(check.contiguous(), Some(3), "the late one closes the gap");
        assert_eq!(check.observe(3), Arrival::Duplicate);
        assert_eq!(check.observe(1), Arrival::Duplicate);
        assert_eq!(
            check.tally,
            Tally {
                delivered: 3,
                duplicates: 2,
                out_of_order: 1,
                lost: 0
            }
        );
    }

    #[test]
    fn loss_is_what_was_acked_after_the_join_point_and_never_arrived() {
        let mut acked = SeqSet::new();
        for n in 1..=10 {
            acked.insert(n);
        }
        // This member joined after seq 2 and missed 5 and 9.
        let mut check = StreamCheck::starting_at(3);
        for n in [3, 4, 6, 7, 8, 10, 11] {
            check.observe(n);
        }
        assert_eq!(check.contiguous(), Some(4));
        assert_eq!(check.count_lost(&acked, 3), 2);
        assert_eq!(check.tally.lost, 2);
        assert_eq!(
            check.tally.delivered, 7,
            "11 was delivered though never acked: not an error"
        );
    }

    #[test]
    fn a_sender_counter_stream_starts_at_zero() {
        let mut check = StreamCheck::starting_at(0);
        assert_eq!(check.contiguous(), None);
        check.observe(0);
        check.observe(1);
        assert_eq!(check.contiguous(), Some(1));
    }

    #[test]
    fn tallies_add_up() {
        let mut total = Tally::default();
        total += Tally {
            delivered: 2,
            duplicates: 1,
            out_of_order: 0,
            lost: 3,
        };
        total += Tally {
            delivered: 1,
            duplicates: 0,
            out_of_order: 4,
            lost: 0,
        };
        assert_eq!(
            total,
            Tally {
                delivered: 3,
                duplicates: 1,
                out_of_order: 4,
                lost: 3
            }
        );
    }

    #[test]
    fn stamps_round_trip_and_reject_foreign_text() {
        let stamp = Stamp {
            sender: 12,
            n: 345,
            sent_at_nanos: 1_700_000_000_123_456_789,
        };
        let text = stamp.encode();
        assert_eq!(text, "lg:12:345:1700000000123456789");
        assert_eq!(Stamp::parse(&text), Some(stamp));
        assert_eq!(
            Stamp::parse(&format!("{text} xxxxxxxx")),
            Some(stamp),
            "padding is ignored"
        );
        let padded = stamp.encode_padded(100);
        assert_eq!(padded.len(), 100);
        assert_eq!(Stamp::parse(&padded), Some(stamp));
        assert_eq!(stamp.encode_padded(5), text, "never cut");
        let longest = Stamp {
            sender: u32::MAX,
            n: u64::MAX,
            sent_at_nanos: u64::MAX,
        };
        assert_eq!(longest.encode().len(), STAMP_MAX_BYTES);
        assert_eq!(Stamp::parse("hello"), None);
        assert_eq!(Stamp::parse("lg:1:2"), None);
        assert_eq!(Stamp::parse("lg:1:2:3:4"), None);
        assert_eq!(Stamp::parse("lg:a:2:3"), None);
    }
}
