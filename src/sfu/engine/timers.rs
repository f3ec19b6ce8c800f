//! A worker's timer heap: one live deadline per connection (what its
//! `poll_timeout` said last), so a wake-up touches only the connections whose time
//! has come. Rescheduling pushes a new entry and leaves the old one to be skipped
//! when it surfaces (lazy deletion); the heap is rebuilt when stale entries pile up.
//! Pure: `now` is always an argument.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::demux::ConnId;

#[derive(Debug, Default)]
pub struct TimerHeap {
    heap: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// The live deadline of each connection.
    live: HashMap<ConnId, Instant>,
}

impl TimerHeap {
    pub fn new() -> TimerHeap {
        TimerHeap::default()
    }

    /// Sets `conn`'s deadline (`None`: it wants no timeout). A no-op if unchanged.
    pub fn schedule(&mut self, conn: ConnId, deadline: Option<Instant>) {
        match deadline {
            None => {
                self.live.remove(&conn);
            }
            Some(d) => {
                if self.live.insert(conn, d) != Some(d) {
                    self.heap.push(Reverse((d, conn)));
                }
            }
        }
        if self.heap.len() > 2 * self.live.len() + 64 {
            self.compact();
        }
    }

    /// Forgets `conn` (closed).
    pub fn remove(&mut self, conn: ConnId) {
        self.schedule(conn, None);
    }

    /// The earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse((d, _))| *d)
    }

    /// Pops the connections whose deadline is at or before `now` (each once; its live
    /// deadline is cleared: the caller runs `handle_timeout` and schedules it again).
    pub fn expired(&mut self, now: Instant, out: &mut Vec<ConnId>) {
        loop {
            self.drop_stale_top();
            match self.heap.peek() {
                Some(Reverse((d, _))) if *d <= now => {}
                _ => return,
            }
            if let Some(Reverse((_, c))) = self.heap.pop() {
                self.live.remove(&c);
                out.push(c);
            }
        }
    }

    fn drop_stale_top(&mut self) {
        while let Some(Reverse((d, c))) = self.heap.peek() {
            if self.live.get(c) == Some(d) {
                return;
            }
            self.heap.pop();
        }
    }

    fn compact(&mut self) {
        self.heap = self.live.iter().map(|(c, d)| Reverse((*d, *c))).collect();
    }

    /// Connections with a deadline.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Entries in the heap, stale ones included (bounded by `2 * len() + 64`).
    pub fn entries(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_only_what_is_due_in_order_once() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut h = TimerHeap::new();
        h.schedule(ConnId(1), Some(t0 + ms * 30));
        h.schedule(ConnId(2), Some(t0 + ms * 10));
        h.schedule(ConnId(3), Some(t0 + ms * 20));
        h.schedule(ConnId(4), None);
        assert_eq!(h.next_deadline(), Some(t0 + ms * 10));
        let mut out = Vec::new();
        h.expired(t0 + ms * 5, &mut out);
        assert!(out.is_empty());
        h.expired(t0 + ms * 20, &mut out);
        assert_eq!(out, vec![ConnId(2), ConnId(3)]);
        out.clear();
        h.expired(t0 + ms * 20, &mut out);
        assert!(out.is_empty(), "each once");
        assert_eq!(h.next_deadline(), Some(t0 + ms * 30));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn a_rescheduled_or_removed_connection_fires_at_its_new_time_only() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut h = TimerHeap::new();
        h.schedule(ConnId(1), Some(t0 + ms * 10));
        h.schedule(ConnId(1), Some(t0 + ms * 50));
        h.schedule(ConnId(2), Some(t0 + ms * 10));
        h.remove(ConnId(2));
        assert_eq!(h.next_deadline(), Some(t0 + ms * 50));
        let mut out = Vec::new();
        h.expired(t0 + ms * 40, &mut out);
        assert!(out.is_empty(), "the old deadline is stale, 2 is gone");
        // Earlier again.
        h.schedule(ConnId(1), Some(t0 + ms * 45));
        h.expired(t0 + ms * 60, &mut out);
        assert_eq!(out, vec![ConnId(1)]);
        assert!(h.is_empty());
        assert_eq!(h.next_deadline(), None);
    }

    #[test]
    fn stale_entries_stay_bounded() {
        let t0 = Instant::now();
        let mut h = TimerHeap::new();
        for i in 0..10_000u32 {
            // Ten connections rescheduled over and over (every packet does this).
            h.schedule(
                ConnId(i % 10),
                Some(t0 + Duration::from_micros(u64::from(i))),
            );
            assert!(h.entries() <= 2 * h.len() + 65, "at {i}: {}", h.entries());
        }
        assert_eq!(h.len(), 10);
        let mut out = Vec::new();
        h.expired(t0 + Duration::from_secs(1), &mut out);
        out.sort();
        assert_eq!(out, (0..10).map(ConnId).collect::<Vec<_>>());
    }
}
