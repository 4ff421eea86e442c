//! The accounting of a run, on hand-made client outcomes.

use super::*;
use crate::accounting::Tally;

fn placement(room: usize, member: usize, sends: bool) -> Placement {
    Placement {
        room,
        member,
        gateway: 0,
        sends,
    }
}

/// Room 0: sender 0 (seqs 1, 3, 5 as its n = 0, 1, 2) and sender 1 (seqs 2, 4 as n =
/// 0, 1), plus a receiver. Room 1: one sender whose single message reached nobody else.
fn room_outcomes() -> Vec<Outcome> {
    let mut s0 = Outcome::new(placement(0, 0, true), Some(0), 1);
    let mut s1 = Outcome::new(placement(0, 1, true), Some(1), 1);
    let receiver = Outcome::new(placement(0, 2, false), None, 1);
    for (n, seq) in [(0, 1), (1, 3), (2, 5)] {
        s0.acked_ns.insert(n);
        s0.acked_seqs.insert(seq);
    }
    for (n, seq) in [(0, 2), (1, 4)] {
        s1.acked_ns.insert(n);
        s1.acked_seqs.insert(seq);
    }
    let mut lonely = Outcome::new(placement(1, 0, true), Some(2), 1);
    let mut lonely_receiver = Outcome::new(placement(1, 1, false), None, 1);
    lonely.acked_ns.insert(0);
    lonely.acked_seqs.insert(1);
    deliver(&mut lonely, &[(1, 2, 0)]);
    deliver(&mut lonely_receiver, &[]);
    vec![s0, s1, receiver, lonely, lonely_receiver]
}

/// Feeds `(seq, sender, n)` deliveries into a member's checks, as `Client::handle` does.
fn deliver(o: &mut Outcome, deliveries: &[(u64, u32, u64)]) {
    for (seq, sender, n) in deliveries {
        o.by_seq.observe(*seq);
        o.by_sender
            .entry(*sender)
            .or_insert_with(|| StreamCheck::starting_at(0))
            .observe(*n);
    }
}

const ALL: [(u64, u32, u64); 5] = [(1, 0, 0), (2, 1, 0), (3, 0, 1), (4, 1, 1), (5, 0, 2)];

#[test]
fn a_clean_run_accounts_every_acked_message_to_every_member() {
    let mut outcomes = room_outcomes();
    for o in outcomes.iter_mut().take(3) {
        deliver(o, &ALL);
    }
    // Only room 1's receiver missed its message.
    let (by_seq, by_sender) = account(&mut outcomes, 2);
    assert_eq!(
        by_seq,
        Tally {
            delivered: 16,
            duplicates: 0,
            out_of_order: 0,
            lost: 1
        }
    );
    assert_eq!(by_seq, by_sender);
}

#[test]
fn loss_duplicates_and_reordering_show_by_seq_and_by_sender() {
    let mut outcomes = room_outcomes();
    deliver(&mut outcomes[0], &ALL);
    deliver(&mut outcomes[1], &ALL);
    // The receiver: seq 3 lost, seq 2 twice, seq 5 before seq 4.
    deliver(
        &mut outcomes[2],
        &[(1, 0, 0), (2, 1, 0), (2, 1, 0), (5, 0, 2), (4, 1, 1)],
    );
    let (by_seq, by_sender) = account(&mut outcomes, 2);
    let expected = Tally {
        delivered: 10 + 4 + 1,
        duplicates: 1,
        out_of_order: 1,
        lost: 1 + 1,
    };
    assert_eq!(by_seq, expected);
    // 5 before 4 crosses senders: each sender's own messages still came in order.
    assert_eq!(
        by_sender,
        Tally {
            out_of_order: 0,
            ..expected
        }
    );
}

#[test]
fn a_renumbering_server_is_caught_by_the_sender_counter_only() {
    let mut outcomes = room_outcomes();
    deliver(&mut outcomes[0], &ALL);
    deliver(&mut outcomes[1], &ALL);
    // Seqs in order, but sender 0's messages 1 and 2 were swapped before numbering.
    deliver(
        &mut outcomes[2],
        &[(1, 0, 0), (2, 1, 0), (3, 0, 2), (4, 1, 1), (5, 0, 1)],
    );
    let (by_seq, by_sender) = account(&mut outcomes, 2);
    assert_eq!(by_seq.out_of_order, 0);
    assert_eq!(by_sender.out_of_order, 1);
}
