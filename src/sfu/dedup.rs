//! Packets a publisher sent twice, dropped before anything counts or forwards them.
//!
//! A browser whose uplink estimate holds its upper simulcast layers back pads its
//! sending up towards the next layer's rate to probe for more, and with RTX
//! negotiated that padding is **old media packets resent** on a layer's repair flow
//! (libwebrtc's redundant payloads). `rtx.rs` turns every repair back into the
//! packet it repeats, so these arrived as media a second time: at 10 % loss the
//! defendant's quarter-size layer (125–150 kbit/s from its encoder) measured 420–560
//! kbit/s at the SFU, more than its half-size layer, the allocator ranked it as the
//! best picture and the court received the defendant at 320 px, and every
//! subscriber's link carried the padding on. A genuine repair is of a packet the SFU
//! never got, so it is always a first arrival; a packet seen already (padding, a
//! repair that crossed a late original, a network duplicate) is dropped here.
//!
//! [`SeenWindow`] remembers which of an SSRC's last [`WINDOW`] sequence numbers
//! arrived; [`SeenBySsrc`] holds one per SSRC of a track. Pure; the track reader
//! (`forward.rs`) owns one [`SeenBySsrc`].

/// How many sequence numbers back a duplicate is recognised: several seconds of a
/// full-size layer, more than any repair or padding reaches back.
pub const WINDOW: u16 = 2048;

const WORDS: usize = WINDOW as usize / 64;

/// The sequence numbers of one SSRC seen in the last [`WINDOW`].
#[derive(Debug, Clone)]
pub struct SeenWindow {
    highest: Option<u16>,
    bits: [u64; WORDS],
}

impl Default for SeenWindow {
    fn default() -> Self {
        SeenWindow {
            highest: None,
            bits: [0; WORDS],
        }
    }
}

impl SeenWindow {
    fn bit(seq: u16) -> (usize, u64) {
        let i = usize::from(seq % WINDOW);
        (i / 64, 1 << (i % 64))
    }

    fn set(&mut self, seq: u16) {
        let (w, b) = Self::bit(seq);
        self.bits[w] |= b;
    }

    fn clear(&mut self, seq: u16) {
        let (w, b) = Self::bit(seq);
        self.bits[w] &= !b;
    }

    fn restart(&mut self, seq: u16) {
        self.bits = [0; WORDS];
        self.highest = Some(seq);
        self.set(seq);
    }

    /// Whether `seq` arrives for the first time (and notes it). A sequence number
    /// further than [`WINDOW`] from the highest seen, either way, restarts the window
    /// there (the stream jumped: a new sender, a long gap) and counts as first.
    pub fn first_time(&mut self, seq: u16) -> bool {
        let Some(highest) = self.highest else {
            self.restart(seq);
            return true;
        };
        let ahead = seq.wrapping_sub(highest);
        if ahead == 0 {
            return false;
        }
        if ahead < 0x8000 {
            if ahead >= WINDOW {
                self.restart(seq);
                return true;
            }
            // Forget what the window's far end held before the new numbers take it.
            for s in 1..=ahead {
                self.clear(highest.wrapping_add(s));
            }
            self.set(seq);
            self.highest = Some(seq);
            return true;
        }
        let behind = highest.wrapping_sub(seq);
        if behind >= WINDOW {
            self.restart(seq);
            return true;
        }
        let (w, b) = Self::bit(seq);
        if self.bits[w] & b != 0 {
            return false;
        }
        self.bits[w] |= b;
        true
    }
}

/// The windows of one track's SSRCs: one, or one per simulcast layer; a few more are
/// kept, the oldest forgotten.
#[derive(Debug, Default)]
pub struct SeenBySsrc(Vec<(u32, SeenWindow)>);

impl SeenBySsrc {
    const SSRCS: usize = 8;

    /// Whether `seq` of `ssrc` arrives for the first time (and notes it).
    pub fn first_time(&mut self, ssrc: u32, seq: u16) -> bool {
        if let Some((_, w)) = self.0.iter_mut().find(|(s, _)| *s == ssrc) {
            return w.first_time(seq);
        }
        if self.0.len() == Self::SSRCS {
            self.0.remove(0);
        }
        let mut w = SeenWindow::default();
        w.first_time(seq);
        self.0.push((ssrc, w));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_counts_once_in_any_order_and_across_the_wrap() {
        let mut w = SeenWindow::default();
        let start = 65_500u16;
        // 100 packets from 65,500 across the wrap, every fifth held back and sent
        // late, then all of them again (padding of old packets).
        let order: Vec<u16> = (0..100u16)
            .filter(|i| i % 5 != 0)
            .chain((0..100u16).filter(|i| i % 5 == 0))
            .map(|i| start.wrapping_add(i))
            .collect();
        for &seq in &order {
            assert!(w.first_time(seq), "{seq} is new");
        }
        for &seq in &order {
            assert!(!w.first_time(seq), "{seq} was seen");
        }
        assert!(w.first_time(start.wrapping_add(100)));
    }

    #[test]
    fn each_ssrc_has_its_own_window() {
        let mut seen = SeenBySsrc::default();
        assert!(seen.first_time(1, 100));
        assert!(seen.first_time(2, 100), "another layer's 100");
        assert!(!seen.first_time(1, 100));
        assert!(!seen.first_time(2, 100));
        // Past the few SSRCs kept, the oldest is forgotten (its numbers are new again).
        for ssrc in 3..=9 {
            assert!(seen.first_time(ssrc, 100));
        }
        assert!(seen.first_time(1, 100));
        assert!(!seen.first_time(9, 100));
    }

    #[test]
    fn the_window_forgets_what_it_has_passed_and_a_jump_restarts_it() {
        let mut w = SeenWindow::default();
        assert!(w.first_time(10));
        // 10 + WINDOW shares 10's bit: the old mark must not make it a duplicate.
        for seq in 11..=10 + WINDOW {
            assert!(w.first_time(seq), "{seq}");
        }
        // Now 10 is beyond the window: a restart, not a duplicate.
        assert!(w.first_time(10));
        assert!(!w.first_time(10));
        // A jump far ahead restarts too; what was seen before is forgotten.
        assert!(w.first_time(30_000));
        assert!(w.first_time(29_999));
        assert!(!w.first_time(29_999));
    }
}
