//! Stream partitions: which partition a room's events travel on, and the hash tag of each
//! partition's key.
//!
//! Rooms map to a fixed number of partitions by a stable hash of their name, so that every
//! process agrees without asking anyone. On a Redis Cluster a key lives in the slot its
//! hash tag (the part between `{` and `}`) hashes to, and each master serves ranges of the
//! 16,384 slots. Tags such as `{0}`, `{1}`, … hash to slots that fall unevenly over those
//! ranges (CRC16 of a short decimal number clusters), so one master would carry several
//! times another's share. Instead each partition's tag is chosen so that its slot falls in
//! its own equal slice of the slot space: partition `i` of `n` lands in slots
//! `[i·16384/n, (i+1)·16384/n)`, and masters that split the slots evenly (what
//! `redis-cli --cluster create` does) get their even share, give or take the partition
//! whose slice straddles each of their two boundaries: within two of each other.

use chat_domain::RoomName;

/// The slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// Most partitions: each must get a slice of at least 16 slots, and finding the tags stays
/// instant (about a thousand hashes per partition).
pub const MAX_PARTITIONS: u32 = 1024;

/// The partition of a room's stream: FNV-1a of its name, so that every process, every
/// version, puts a room on the same partition.
pub fn partition_of(room: &RoomName, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in room.as_str().bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// The hash tag of partition `index` of `partitions` (without braces): the first of
/// `<index>.0`, `<index>.1`, … whose slot falls in the partition's slice.
pub fn hash_tag(index: u32, partitions: u32) -> String {
    let partitions = partitions.clamp(1, MAX_PARTITIONS);
    let low = u32::from(SLOTS) * index / partitions;
    let high = u32::from(SLOTS) * (index + 1) / partitions;
    (0u32..)
        .map(|n| format!("{index}.{n}"))
        .find(|tag| (low..high).contains(&u32::from(slot(tag.as_bytes()))))
        .expect("every slice holds slots, and CRC16 reaches them all")
}

/// The Redis Cluster slot of a key's hash tag (or of a whole key without one):
/// CRC16-CCITT (XMODEM) modulo 16,384, as the cluster specification defines it.
pub fn slot(tag: &[u8]) -> u16 {
    crc16(tag) % SLOTS
}

/// The slot of a whole key, honouring a `{tag}` in it as Redis Cluster does.
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    if let Some(open) = bytes.iter().position(|&b| b == b'{')
        && let Some(len) = bytes[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return slot(&bytes[open + 1..open + 1 + len]);
    }
    slot(bytes)
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_in_range() {
        let room = RoomName::parse("lobby").unwrap();
        // Pinned: every process, every version, must put a room on the same partition.
        assert_eq!(partition_of(&room, 1_000_000), 475_664_083 % 1_000_000);
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let p = partition_of(&RoomName::parse(&format!("room-{i}")).unwrap(), 8);
            assert!(p < 8);
            seen.insert(p);
        }
        assert_eq!(seen.len(), 8, "200 rooms should spread over all 8 partitions");
    }

    #[test]
    fn slots_match_the_cluster_specification() {
        // The specification's own check value, and slots `CLUSTER KEYSLOT` gives.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot("foo"), 12_182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
        assert_eq!(key_slot("{user1000}.following"), 3443);
        assert_eq!(
            key_slot("foo{}{bar}"),
            slot(b"foo{}{bar}"),
            "an empty tag hashes the whole key"
        );
    }

    /// Masters of a cluster that split the slots evenly, as `redis-cli --cluster create`.
    fn per_master(tags: &[String], masters: u32) -> Vec<u32> {
        let mut counts = vec![0; masters as usize];
        for tag in tags {
            let slot = u32::from(slot(tag.as_bytes()));
            counts[(slot * masters / u32::from(SLOTS)) as usize] += 1;
        }
        counts
    }

    #[test]
    fn chosen_tags_spread_evenly_over_masters_where_plain_numbers_do_not() {
        for (partitions, masters) in [(64, 3), (64, 6), (16, 3), (16, 8), (32, 6), (256, 7), (1024, 3)] {
            let tags: Vec<String> = (0..partitions).map(|i| hash_tag(i, partitions)).collect();
            let counts = per_master(&tags, masters);
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(
                max - min <= 2,
                "{partitions} partitions on {masters} masters: {counts:?}"
            );
            let distinct: std::collections::HashSet<u16> = tags.iter().map(|t| slot(t.as_bytes())).collect();
            assert_eq!(distinct.len(), partitions as usize, "each partition its own slot");
        }
        // What the chosen tags avoid: `{0}` … `{15}` leave half of 8 masters empty, and
        // `{0}` … `{31}` put four times as many on one of 6 masters as on another.
        let plain = |n: u32| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(per_master(&plain(16), 8), [4, 0, 4, 0, 4, 0, 4, 0]);
        assert_eq!(per_master(&plain(32), 6), [8, 5, 3, 8, 2, 6]);
    }
}
