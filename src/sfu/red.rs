//! RED (RFC 2198) audio: reading a redundant packet, never trusting it.
//!
//! A publisher that negotiated `red/48000/2` sends each Opus frame together with the
//! previous one(s), so one lost packet costs nothing. The SFU forwards such packets as
//! they are to subscribers that accepted RED, and gives everyone else — and the
//! recorder, whose archive must stay plain Opus — the primary (newest) block as an
//! ordinary Opus packet ([`primary`]). Payload types inside a RED payload name the
//! *publisher's* Opus payload type; [`with_block_payload_type`] renumbers them for a
//! subscriber that numbered Opus differently.
//!
//! RED payloads come from the network: every function here returns an error rather
//! than panicking on a truncated or inconsistent header, and nothing is copied until a
//! payload has been checked whole.
//!
//! ```text
//!  redundant block header (4 bytes)          primary block header (1 byte)
//!  |1| block PT | timestamp offset | length |   |0| block PT |
//!   1     7             14             10        1     7
//! ```
//! followed by the redundant blocks' data in header order, then the primary's data.

use bytes::Bytes;
use rtc::rtp;

/// The most blocks one RED packet may carry (libwebrtc sends 2; RFC 2198 sets no
/// limit, the header bytes do).
pub const MAX_BLOCKS: usize = 16;

/// What is wrong with a RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedError {
    #[error("empty RED payload")]
    Empty,
    #[error("RED header ends inside a block header")]
    TruncatedHeader,
    #[error("RED block lengths exceed the payload")]
    BlocksExceedPayload,
    #[error("more than {MAX_BLOCKS} RED blocks")]
    TooManyBlocks,
}

/// One block of a RED payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub payload_type: u8,
    /// How much earlier than the packet's timestamp this block's media starts
    /// (0 for the primary).
    pub timestamp_offset: u16,
    pub data: Bytes,
}

/// Splits a RED payload into its blocks, oldest first; the last is the primary.
pub fn parse(payload: &Bytes) -> Result<Vec<Block>, RedError> {
    let mut headers = Vec::new();
    let mut at = 0usize;
    loop {
        let first = *payload.get(at).ok_or(if at == 0 {
            RedError::Empty
        } else {
            RedError::TruncatedHeader
        })?;
        let payload_type = first & 0x7f;
        if first & 0x80 == 0 {
            headers.push((payload_type, 0u16, None));
            at += 1;
            break;
        }
        if headers.len() + 1 >= MAX_BLOCKS {
            return Err(RedError::TooManyBlocks);
        }
        let h = payload
            .get(at + 1..at + 4)
            .ok_or(RedError::TruncatedHeader)?;
        let timestamp_offset = (u16::from(h[0]) << 6) | (u16::from(h[1]) >> 2);
        let length = (usize::from(h[1] & 0x03) << 8) | usize::from(h[2]);
        headers.push((payload_type, timestamp_offset, Some(length)));
        at += 4;
    }
    let redundant: usize = headers.iter().filter_map(|(_, _, len)| *len).sum();
    if at + redundant > payload.len() {
        return Err(RedError::BlocksExceedPayload);
    }
    let mut blocks = Vec::with_capacity(headers.len());
    for (payload_type, timestamp_offset, length) in headers {
        let end = length.map_or(payload.len(), |len| at + len);
        blocks.push(Block {
            payload_type,
            timestamp_offset,
            data: payload.slice(at..end),
        });
        at = end;
    }
    Ok(blocks)
}

/// The primary block of a RED packet as a plain packet of the block's payload type:
/// same SSRC, sequence number, timestamp and marker.
pub fn primary(packet: &rtp::Packet) -> Result<rtp::Packet, RedError> {
    let blocks = parse(&packet.payload)?;
    let primary = blocks.into_iter().last().ok_or(RedError::Empty)?;
    let mut plain = packet.clone();
    plain.header.payload_type = primary.payload_type;
    plain.header.padding = false;
    plain.payload = primary.data;
    Ok(plain)
}

/// The same RED payload with every block's payload type set to `payload_type` (a
/// subscriber's Opus number). Returns the payload itself, uncopied, when nothing
/// changes.
pub fn with_block_payload_type(payload: &Bytes, payload_type: u8) -> Result<Bytes, RedError> {
    let blocks = parse(payload)?;
    if blocks.iter().all(|b| b.payload_type == payload_type) {
        return Ok(payload.clone());
    }
    let mut out = payload.to_vec();
    let mut at = 0;
    for _ in &blocks {
        // `parse` checked every header byte is there.
        let redundant = out[at] & 0x80;
        out[at] = redundant | (payload_type & 0x7f);
        at += if redundant != 0 { 4 } else { 1 };
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RED payload of `blocks` (payload type, timestamp offset, data), the last the
    /// primary — what libwebrtc's encoder writes.
    fn red(blocks: &[(u8, u16, &[u8])]) -> Bytes {
        let (last, redundant) = blocks.split_last().expect("a primary");
        let mut out = Vec::new();
        for (pt, offset, data) in redundant {
            out.push(0x80 | pt);
            out.push((offset >> 6) as u8);
            out.push((((offset & 0x3f) << 2) as u8) | ((data.len() >> 8) as u8 & 0x03));
            out.push(data.len() as u8);
        }
        out.push(last.0);
        for (_, _, data) in blocks {
            out.extend_from_slice(data);
        }
        out.into()
    }

    fn packet(payload: Bytes) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.ssrc = 7;
        p.header.payload_type = 63;
        p.header.sequence_number = 100;
        p.header.timestamp = 48_000;
        p.header.marker = true;
        p.payload = payload;
        p
    }

    #[test]
    fn parses_blocks_oldest_first() {
        let payload = red(&[
            (111, 1920, b"older"),
            (111, 960, b"old"),
            (111, 0, b"newest"),
        ]);
        let blocks = parse(&payload).expect("parses");
        assert_eq!(blocks.len(), 3);
        assert_eq!(
            blocks
                .iter()
                .map(|b| (b.timestamp_offset, &b.data[..]))
                .collect::<Vec<_>>(),
            vec![(1920, &b"older"[..]), (960, b"old"), (0, b"newest")]
        );
        assert!(blocks.iter().all(|b| b.payload_type == 111));
    }

    #[test]
    fn the_primary_is_a_plain_opus_packet() {
        let p = packet(red(&[(111, 960, b"prev"), (111, 0, b"now")]));
        let plain = primary(&p).expect("unwraps");
        assert_eq!(plain.header.payload_type, 111);
        assert_eq!(&plain.payload[..], b"now");
        assert_eq!(
            (
                plain.header.ssrc,
                plain.header.sequence_number,
                plain.header.timestamp
            ),
            (7, 100, 48_000)
        );
        assert!(plain.header.marker);
        // A RED packet without redundancy (the first of a stream, or after silence).
        let only = primary(&packet(red(&[(111, 0, b"alone")]))).expect("unwraps");
        assert_eq!(&only.payload[..], b"alone");
    }

    #[test]
    fn long_blocks_and_the_largest_offset() {
        let long = vec![0xab; 1023];
        let payload = red(&[(111, 0x3fff, &long), (111, 0, b"p")]);
        let blocks = parse(&payload).expect("parses");
        assert_eq!(blocks[0].timestamp_offset, 0x3fff);
        assert_eq!(blocks[0].data.len(), 1023);
        assert_eq!(&blocks[1].data[..], b"p");
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        assert_eq!(parse(&Bytes::new()), Err(RedError::Empty));
        // A redundant block header cut short, at every length.
        for cut in 1..4 {
            let b = Bytes::from(vec![0x80 | 111, 0, 4, 5][..cut].to_vec());
            assert_eq!(parse(&b), Err(RedError::TruncatedHeader), "cut at {cut}");
        }
        // Only redundant headers, no primary header.
        assert_eq!(
            parse(&Bytes::from_static(&[0xef, 0, 4, 0])),
            Err(RedError::TruncatedHeader)
        );
        // A block length beyond the payload.
        let b = Bytes::from_static(&[0xef, 0, 4, 200, 111, 1, 2, 3]);
        assert_eq!(parse(&b), Err(RedError::BlocksExceedPayload));
        // Endless redundant headers.
        let b = Bytes::from([0xef, 0, 0, 0].repeat(40));
        assert_eq!(parse(&b), Err(RedError::TooManyBlocks));
        assert!(primary(&packet(Bytes::from_static(&[0xef]))).is_err());
        assert!(with_block_payload_type(&Bytes::from_static(&[0xef, 0, 4]), 109).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        // Every short byte string, and pseudo-random longer ones.
        let mut seed = 0x2545_f491_u32;
        for n in 0..5000u32 {
            let len = (n % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let b = Bytes::from(bytes);
            if let Ok(blocks) = parse(&b) {
                let total: usize = blocks.iter().map(|x| x.data.len()).sum();
                assert!(total <= b.len());
            }
            let _ = primary(&packet(b.clone()));
            let _ = with_block_payload_type(&b, 109);
        }
    }

    #[test]
    fn block_payload_types_are_renumbered_for_a_subscriber() {
        let payload = red(&[(111, 960, b"prev"), (111, 0, b"now")]);
        let same = with_block_payload_type(&payload, 111).expect("ok");
        assert_eq!(
            same.as_ptr(),
            payload.as_ptr(),
            "unchanged payload is not copied"
        );
        let other = with_block_payload_type(&payload, 109).expect("ok");
        let blocks = parse(&other).expect("parses");
        assert!(blocks.iter().all(|b| b.payload_type == 109));
        assert_eq!(&blocks[0].data[..], b"prev");
        assert_eq!(&blocks[1].data[..], b"now");
        assert_eq!(blocks[0].timestamp_offset, 960);
    }
}
