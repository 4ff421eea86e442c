//! A finished run judged: loss per member against what was acked, and the report's warnings.

use super::Outcome;
use crate::accounting::{SeqSet, StreamCheck, Tally};
use crate::report::LoadReport;
use std::collections::HashMap;

/// Loss is judged per member against what its room's senders had acked (by seq) and what
/// each sender had acked (by counter); returns the sums over all members.
pub(super) fn account(outcomes: &mut [Outcome], rooms: usize) -> (Tally, Tally) {
    let mut room_acked = vec![SeqSet::new(); rooms];
    let mut sender_acked: HashMap<u32, (usize, SeqSet)> = HashMap::new();
    for o in outcomes.iter() {
        if let Some(s) = o.sender {
            room_acked[o.placement.room].extend(&o.acked_seqs);
            sender_acked.insert(s, (o.placement.room, o.acked_ns.clone()));
        }
    }
    let (mut by_seq, mut by_sender) = (Tally::default(), Tally::default());
    for o in outcomes.iter_mut() {
        o.by_seq.count_lost(&room_acked[o.placement.room], o.first_seq);
        by_seq += o.by_seq.tally;
        for (s, (room, acked)) in &sender_acked {
            if *room == o.placement.room {
                o.by_sender
                    .entry(*s)
                    .or_insert_with(|| StreamCheck::starting_at(0))
                    .count_lost(acked, 0);
            }
        }
        for check in o.by_sender.values() {
            by_sender += check.tally;
        }
    }
    (by_seq, by_sender)
}

pub(super) fn warnings(report: &LoadReport) -> Vec<String> {
    let mut w = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if let Some(me) = report.processes.first()
        && me.cpu_percent >= 50.0 * cores
    {
        w.push(format!(
            "the load generator used {:.0}% CPU (of {} cores): figures may be limited by the generator, not the server",
            me.cpu_percent, cores
        ));
    }
    let t = &report.throughput;
    if t.sends_per_second < 0.95 * t.target_sends_per_second {
        w.push(format!(
            "sent {:.1} msg/s of a target {:.1}: the pace was not kept",
            t.sends_per_second, t.target_sends_per_second
        ));
    }
    if report.totals.skipped_window_full > 0 {
        w.push(format!(
            "{} sends skipped with {} already unacked: acks are slower than the send rate",
            report.totals.skipped_window_full, report.config.max_in_flight
        ));
    }
    if !report.drain.completed {
        w.push("the drain timed out: acks or deliveries were still missing at the end".into());
    }
    if !report.totals.disconnects.is_empty() {
        w.push(format!("connections ended early: {:?}", report.totals.disconnects));
    }
    w
}
