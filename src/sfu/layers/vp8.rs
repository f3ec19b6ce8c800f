//! The VP8 RTP payload descriptor (RFC 7741 §4.2): parse it, find keyframes, and
//! rewrite picture id and TL0PICIDX in place.
//!
//! Why it is shaped so: the SFU parses each packet **once** (on the publisher's reader)
//! and rewrites it **per subscriber**, so [`Vp8Descriptor::parse`] records where the
//! rewritable fields sit and [`Vp8Descriptor::rewrite`] only overwrites those bytes —
//! the descriptor never changes length, so the payload is never moved or reallocated.
//! The buffer type is `&mut [u8]`, which `bytes::BytesMut` and `Vec<u8>` both deref to.
//! Everything here is network input: every read is bounds-checked and a malformed
//! descriptor is an error, never a panic.
//!
//! ```text
//!       0 1 2 3 4 5 6 7
//!      +-+-+-+-+-+-+-+-+
//!      |X|R|N|S|R| PID | (required)
//!      +-+-+-+-+-+-+-+-+
//! X:   |I|L|T|K| RSV   | (present if X)
//!      +-+-+-+-+-+-+-+-+
//! I:   |M| PictureID   | (present if I; M = 15-bit form, one more byte follows)
//!      +-+-+-+-+-+-+-+-+
//! L:   |   TL0PICIDX   | (present if L)
//!      +-+-+-+-+-+-+-+-+
//! T/K: |TID|Y| KEYIDX  | (present if T or K)
//!      +-+-+-+-+-+-+-+-+
//! ```
//!
//! After the descriptor comes the VP8 payload; the first packet of a frame (S set,
//! PID 0) starts with the frame tag, whose lowest bit P is 0 for a keyframe, and a
//! keyframe's tag is followed by the start code `9d 01 2a` (RFC 6386 §9.1). Both are
//! checked, so a damaged packet is not taken for a decoder refresh point.

/// Errors reading or rewriting a VP8 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Vp8Error {
    #[error("VP8 payload is empty")]
    Empty,
    #[error("VP8 payload descriptor truncated: needs {needed} bytes, packet has {len}")]
    Truncated { needed: usize, len: usize },
    #[error("VP8 packet has a payload descriptor but no payload")]
    NoPayload,
    #[error("buffer does not hold the descriptor that was parsed")]
    BufferMismatch,
}

/// A picture id as carried: the 7-bit or the 15-bit form (M bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureId {
    /// 7-bit form (0..=127).
    Short(u8),
    /// 15-bit form (0..=32767).
    Long(u16),
}

impl PictureId {
    /// The value, whatever the width.
    pub fn value(self) -> u16 {
        match self {
            PictureId::Short(v) => u16::from(v),
            PictureId::Long(v) => v,
        }
    }

    /// How many bits the value wraps at (7 or 15).
    pub fn bits(self) -> u32 {
        match self {
            PictureId::Short(_) => 7,
            PictureId::Long(_) => 15,
        }
    }
}

/// The temporal-layer byte (T/K).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Temporal {
    /// Temporal layer index (TID), 0 = base layer. Only meaningful when T is set.
    pub tid: u8,
    /// Layer sync (Y): this frame depends only on the base layer, so a receiver may
    /// start taking layer `tid` from here.
    pub layer_sync: bool,
}

/// One parsed VP8 payload descriptor, with the offsets of its rewritable fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// N: a non-reference frame (no other frame depends on it).
    pub non_reference: bool,
    /// S: this packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: the partition index.
    pub partition_index: u8,
    pub picture_id: Option<PictureId>,
    pub tl0_pic_idx: Option<u8>,
    /// Present when the T bit is set.
    pub temporal: Option<Temporal>,
    /// KEYIDX, present when the K bit is set.
    pub key_idx: Option<u8>,
    /// Whether this packet is the first packet of a keyframe.
    pub keyframe: bool,
    /// Length of the descriptor; the VP8 payload starts here.
    pub header_len: usize,
    picture_id_at: usize,
    tl0_at: usize,
}

/// The values to write into a descriptor; `None` leaves the field as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vp8Rewrite {
    /// Written in the form the packet carries: all 15 bits in the long form, the low 7
    /// bits in the short form.
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
}

/// Reads byte `at` or reports how much was needed.
fn byte(buf: &[u8], at: usize) -> Result<u8, Vp8Error> {
    buf.get(at).copied().ok_or(Vp8Error::Truncated {
        needed: at + 1,
        len: buf.len(),
    })
}

impl Vp8Descriptor {
    /// Parses the descriptor at the start of an RTP payload.
    pub fn parse(payload: &[u8]) -> Result<Vp8Descriptor, Vp8Error> {
        let first = *payload.first().ok_or(Vp8Error::Empty)?;
        let extended = first & 0x80 != 0;
        let mut d = Vp8Descriptor {
            non_reference: first & 0x20 != 0,
            start_of_partition: first & 0x10 != 0,
            partition_index: first & 0x0f,
            picture_id: None,
            tl0_pic_idx: None,
            temporal: None,
            key_idx: None,
            keyframe: false,
            header_len: 1,
            picture_id_at: 0,
            tl0_at: 0,
        };
        let mut at = 1;
        if extended {
            let x = byte(payload, at)?;
            at += 1;
            if x & 0x80 != 0 {
                let p = byte(payload, at)?;
                d.picture_id_at = at;
                if p & 0x80 != 0 {
                    let low = byte(payload, at + 1)?;
                    d.picture_id =
                        Some(PictureId::Long((u16::from(p & 0x7f) << 8) | u16::from(low)));
                    at += 2;
                } else {
                    d.picture_id = Some(PictureId::Short(p));
                    at += 1;
                }
            }
            if x & 0x40 != 0 {
                d.tl0_at = at;
                d.tl0_pic_idx = Some(byte(payload, at)?);
                at += 1;
            }
            let (t, k) = (x & 0x20 != 0, x & 0x10 != 0);
            if t || k {
                let tk = byte(payload, at)?;
                at += 1;
                if t {
                    d.temporal = Some(Temporal {
                        tid: tk >> 6,
                        layer_sync: tk & 0x20 != 0,
                    });
                }
                if k {
                    d.key_idx = Some(tk & 0x1f);
                }
            }
        }
        d.header_len = at;
        let frame = &payload[at.min(payload.len())..];
        if frame.is_empty() {
            return Err(Vp8Error::NoPayload);
        }
        d.keyframe = d.start_of_partition
            && d.partition_index == 0
            && frame[0] & 0x01 == 0
            && frame.get(3..6) == Some(&[0x9d, 0x01, 0x2a][..]);
        Ok(d)
    }

    /// The temporal layer of this packet: its TID, or 0 when the stream has no
    /// temporal layering (T clear).
    pub fn tid(&self) -> u8 {
        self.temporal.map_or(0, |t| t.tid)
    }

    /// Overwrites picture id and TL0PICIDX in `payload`, the buffer this descriptor
    /// was parsed from (or a copy of it). A value for a field the packet does not
    /// carry is ignored: the descriptor never changes length.
    pub fn rewrite(&self, payload: &mut [u8], values: Vp8Rewrite) -> Result<(), Vp8Error> {
        if payload.len() <= self.header_len
            || payload[0] & 0x80 != u8::from(self.header_len > 1) << 7
        {
            return Err(Vp8Error::BufferMismatch);
        }
        if let (Some(pid), Some(form)) = (values.picture_id, self.picture_id) {
            let at = self.picture_id_at;
            match form {
                PictureId::Long(_) => {
                    if payload[at] & 0x80 == 0 {
                        return Err(Vp8Error::BufferMismatch);
                    }
                    payload[at] = 0x80 | ((pid >> 8) as u8 & 0x7f);
                    payload[at + 1] = pid as u8;
                }
                PictureId::Short(_) => {
                    if payload[at] & 0x80 != 0 {
                        return Err(Vp8Error::BufferMismatch);
                    }
                    payload[at] = pid as u8 & 0x7f;
                }
            }
        }
        if let (Some(tl0), Some(_)) = (values.tl0_pic_idx, self.tl0_pic_idx) {
            payload[self.tl0_at] = tl0;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A VP8 RTP payload as libwebrtc sends it: X, I (15-bit), L, T set.
    pub(crate) fn payload(
        start: bool,
        picture_id: u16,
        tl0: u8,
        tid: u8,
        sync: bool,
        keyframe: bool,
    ) -> Vec<u8> {
        let mut p = vec![
            0x80 | if start { 0x10 } else { 0 },
            0xe0,
            0x80 | (picture_id >> 8) as u8 & 0x7f,
            picture_id as u8,
            tl0,
            (tid << 6) | if sync { 0x20 } else { 0 },
        ];
        if start && keyframe {
            // Frame tag with P = 0, then the keyframe start code and a 640x360 size.
            p.extend_from_slice(&[0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
        } else {
            p.extend_from_slice(&[0x31, 0x42, 0x00, 0xaa, 0xbb]);
        }
        p
    }

    #[test]
    fn parses_every_field_of_a_full_descriptor() {
        let p = payload(true, 0x1234, 0x56, 2, true, false);
        let d = Vp8Descriptor::parse(&p).expect("valid");
        assert!(d.start_of_partition);
        assert_eq!(d.partition_index, 0);
        assert_eq!(d.picture_id, Some(PictureId::Long(0x1234)));
        assert_eq!(d.tl0_pic_idx, Some(0x56));
        assert_eq!(
            d.temporal,
            Some(Temporal {
                tid: 2,
                layer_sync: true
            })
        );
        assert_eq!(d.key_idx, None);
        assert_eq!(d.header_len, 6);
        assert!(!d.keyframe);
    }

    #[test]
    fn detects_keyframes_only_at_the_start_of_partition_zero() {
        let kf = payload(true, 1, 0, 0, false, true);
        assert!(Vp8Descriptor::parse(&kf).expect("valid").keyframe);
        // Same bytes, but not the start of a partition: a continuation packet.
        let mut cont = kf.clone();
        cont[0] &= !0x10;
        assert!(!Vp8Descriptor::parse(&cont).expect("valid").keyframe);
        // Partition 1.
        let mut pid1 = kf.clone();
        pid1[0] |= 0x01;
        assert!(!Vp8Descriptor::parse(&pid1).expect("valid").keyframe);
        // P bit set: an interframe.
        let mut inter = kf.clone();
        inter[6] |= 0x01;
        assert!(!Vp8Descriptor::parse(&inter).expect("valid").keyframe);
        // No start code: damaged, not a refresh point.
        let mut damaged = kf;
        damaged[9] = 0;
        assert!(!Vp8Descriptor::parse(&damaged).expect("valid").keyframe);
    }

    #[test]
    fn minimal_and_short_forms() {
        // No X: a one-byte descriptor.
        let d = Vp8Descriptor::parse(&[0x10, 0x50, 0, 0, 0x9d, 0x01, 0x2a]).expect("valid");
        assert_eq!(d.header_len, 1);
        assert_eq!(d.picture_id, None);
        assert!(d.keyframe);
        assert_eq!(d.tid(), 0);
        // 7-bit picture id and K without T.
        let d = Vp8Descriptor::parse(&[0x90, 0x90, 0x05, 0x03, 0x01]).expect("valid");
        assert_eq!(d.picture_id, Some(PictureId::Short(5)));
        assert_eq!(d.temporal, None);
        assert_eq!(d.key_idx, Some(3));
        assert_eq!(d.header_len, 4);
    }

    #[test]
    fn rewrites_in_place_keeping_the_form() {
        let mut p = payload(true, 0x7fff, 0xff, 1, false, false);
        let before = p.clone();
        let d = Vp8Descriptor::parse(&p).expect("valid");
        d.rewrite(
            &mut p,
            Vp8Rewrite {
                picture_id: Some(0x0102),
                tl0_pic_idx: Some(7),
            },
        )
        .expect("rewrite");
        let after = Vp8Descriptor::parse(&p).expect("still valid");
        assert_eq!(after.picture_id, Some(PictureId::Long(0x0102)));
        assert_eq!(after.tl0_pic_idx, Some(7));
        assert_eq!(after.temporal, d.temporal);
        assert_eq!(
            &p[d.header_len..],
            &before[d.header_len..],
            "payload untouched"
        );

        // 7-bit input: the low 7 bits are written, the form stays short.
        let mut short = vec![0x90, 0x80, 0x05, 0x01];
        let d = Vp8Descriptor::parse(&short).expect("valid");
        d.rewrite(
            &mut short,
            Vp8Rewrite {
                picture_id: Some(0x0183),
                tl0_pic_idx: Some(9),
            },
        )
        .expect("rewrite");
        assert_eq!(short, vec![0x90, 0x80, 0x03, 0x01], "no TL0PICIDX to write");
    }

    #[test]
    fn rewrite_works_on_bytes_mut() {
        let mut p = bytes::BytesMut::from(&payload(false, 10, 3, 0, false, false)[..]);
        let d = Vp8Descriptor::parse(&p).expect("valid");
        d.rewrite(
            &mut p,
            Vp8Rewrite {
                picture_id: Some(11),
                tl0_pic_idx: None,
            },
        )
        .expect("rewrite");
        let after = Vp8Descriptor::parse(&p).expect("valid");
        assert_eq!(after.picture_id.map(PictureId::value), Some(11));
        assert_eq!(after.tl0_pic_idx, Some(3));
    }

    #[test]
    fn rewrite_refuses_a_buffer_of_another_shape() {
        let p = payload(true, 10, 3, 0, false, false);
        let d = Vp8Descriptor::parse(&p).expect("valid");
        let mut other = vec![0x10, 0x31, 0x00];
        assert_eq!(
            d.rewrite(&mut other, Vp8Rewrite::default()),
            Err(Vp8Error::BufferMismatch)
        );
        let mut short = p[..3].to_vec();
        assert_eq!(
            d.rewrite(&mut short, Vp8Rewrite::default()),
            Err(Vp8Error::BufferMismatch)
        );
    }

    #[test]
    fn truncated_descriptors_are_errors() {
        assert_eq!(Vp8Descriptor::parse(&[]), Err(Vp8Error::Empty));
        let full = payload(true, 300, 4, 1, false, false);
        for len in 1..=6 {
            let err = Vp8Descriptor::parse(&full[..len]).expect_err("truncated");
            assert!(
                matches!(err, Vp8Error::Truncated { .. } | Vp8Error::NoPayload),
                "{len}: {err:?}"
            );
        }
    }

    /// xorshift64*: a fixed-seed generator, so a failure reproduces.
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn random_and_truncated_input_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = (rng.next() % 24) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Ok(d) = Vp8Descriptor::parse(&buf) {
                parsed += 1;
                assert!(d.header_len < buf.len());
                let values = Vp8Rewrite {
                    picture_id: Some(rng.next() as u16),
                    tl0_pic_idx: Some(rng.next() as u8),
                };
                d.rewrite(&mut buf, values).expect("own buffer");
                let again = Vp8Descriptor::parse(&buf).expect("rewriting keeps it valid");
                assert_eq!(again.header_len, d.header_len);
                // Rewriting into a truncated or garbled copy must fail cleanly.
                let cut = (rng.next() as usize) % buf.len();
                let _ = d.rewrite(&mut buf[..cut], values);
                let mut garbled = buf.clone();
                garbled[0] ^= 0x80;
                let _ = d.rewrite(&mut garbled, values);
            }
        }
        assert!(
            parsed > 1000,
            "the generator exercises the parser ({parsed})"
        );
    }
}
