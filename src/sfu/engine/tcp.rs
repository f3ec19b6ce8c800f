//! ICE-TCP's byte stream (RFC 6544 uses RFC 4571 framing: each packet preceded by its
//! length, 2 bytes big-endian), and the first-bytes test that tells an accepted TCP
//! connection on the HTTPS port apart: TLS ClientHello, or ICE-TCP (a framed STUN
//! binding request). Pure: bytes in, frames out; no socket.

use bytes::{Buf, BytesMut};

/// RFC 4571 length prefix.
pub const HEADER: usize = 2;

/// Why a stream is not valid RFC 4571 for us (the connection is closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("frame of {len} bytes announced, at most {max} accepted")]
    Oversize { len: usize, max: usize },
    #[error("empty frame")]
    Empty,
}

/// Splits a TCP byte stream into frames. Accepts any split of the stream into reads
/// (one byte at a time, several frames at once); never buffers more than one
/// header and one frame of at most `max_frame` bytes: a larger announced length is
/// an error as soon as its header is read, before its bytes arrive.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: usize,
    failed: Option<FramingError>,
}

impl FrameDecoder {
    /// `max_frame`: the largest packet accepted (at most 65535, what 2 bytes can say).
    pub fn new(max_frame: usize) -> FrameDecoder {
        let max_frame = max_frame.min(usize::from(u16::MAX));
        FrameDecoder {
            buf: BytesMut::with_capacity(HEADER + max_frame),
            max_frame,
            failed: None,
        }
    }

    /// How many bytes the decoder can take now without exceeding its bound; read at
    /// most this much from the socket (a full frame plus the next header never needs
    /// more than `HEADER + max_frame`).
    pub fn room(&self) -> usize {
        (HEADER + self.max_frame).saturating_sub(self.buf.len())
    }

    /// Appends bytes read from the stream. Bytes beyond [`room`](Self::room) are
    /// refused (returns how many were taken): the caller reads frames out first.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.room());
        self.buf.extend_from_slice(&data[..n]);
        n
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed. After an error
    /// every call returns it again: the stream cannot be resynchronised.
    pub fn next_frame(&mut self) -> Result<Option<BytesMut>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        let err = if len == 0 {
            Some(FramingError::Empty)
        } else if len > self.max_frame {
            Some(FramingError::Oversize {
                len,
                max: self.max_frame,
            })
        } else {
            None
        };
        if let Some(e) = err {
            self.failed = Some(e.clone());
            return Err(e);
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        self.buf.advance(HEADER);
        Ok(Some(self.buf.split_to(len)))
    }

    /// Bytes held that are not yet a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Appends `packet` framed (length prefix, then the packet) to `out`.
pub fn encode_frame(packet: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
    let len = u16::try_from(packet.len()).map_err(|_| FramingError::Oversize {
        len: packet.len(),
        max: usize::from(u16::MAX),
    })?;
    if len == 0 {
        return Err(FramingError::Empty);
    }
    out.reserve(HEADER + packet.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Ok(())
}

/// The largest first frame taken for a STUN binding request: browsers' are ~100-200
/// bytes. It also keeps the test unambiguous with TLS, whose first byte 0x16 read as
/// a length would announce at least 0x1600 = 5632 bytes.
pub const MAX_FIRST_STUN: usize = 1024;

/// What an accepted TCP connection speaks, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstBytes {
    /// A TLS handshake record carrying a ClientHello: HTTPS.
    TlsClientHello,
    /// An RFC 4571 frame of `frame_len` bytes starting with a STUN binding request
    /// header: ICE-TCP. Decode the frame with a [`FrameDecoder`] from the bytes peeked.
    IceTcp { frame_len: usize },
    /// Neither: close it.
    Unknown,
    /// Too few bytes to tell; read (peek) more.
    NeedMore,
}

/// The bytes [`classify_first_bytes`] needs at most to decide.
pub const FIRST_BYTES: usize = 10;

/// Classifies the first bytes of a TCP connection (give it what a `peek` returned).
///
/// * TLS: record type 0x16 (handshake), version major 3, minor 0..=4, then the
///   handshake type 0x01 (ClientHello) at offset 5.
/// * ICE-TCP: a length in `20..=MAX_FIRST_STUN` that is 20 plus a multiple of 4,
///   then a STUN header of type 0x0001 (binding request) whose length field is the
///   frame length minus 20, and the magic cookie.
pub fn classify_first_bytes(b: &[u8]) -> FirstBytes {
    let Some(&first) = b.first() else {
        return FirstBytes::NeedMore;
    };
    if first == 0x16 {
        // Checked byte by byte as they arrive, so a short peek can already say no.
        let tls = [Some(0x16), Some(0x03), None, None, None, Some(0x01)];
        for (i, want) in tls.iter().enumerate() {
            let Some(&got) = b.get(i) else {
                return FirstBytes::NeedMore;
            };
            let ok = match (i, want) {
                (2, _) => got <= 0x04,
                (_, Some(w)) => got == *w,
                (_, None) => true,
            };
            if !ok {
                return FirstBytes::Unknown;
            }
        }
        return FirstBytes::TlsClientHello;
    }
    // RFC 4571 + STUN: [len 2][type 2][msg len 2][cookie 4].
    let Some(h) = b.get(..2) else {
        return FirstBytes::NeedMore;
    };
    let frame_len = usize::from(u16::from_be_bytes([h[0], h[1]]));
    if !(20..=MAX_FIRST_STUN).contains(&frame_len) || (frame_len - 20) % 4 != 0 {
        return FirstBytes::Unknown;
    }
    let want: [Option<u8>; 8] = [
        Some(0x00),
        Some(0x01),
        // The STUN length: frame_len - 20, big-endian.
        Some(((frame_len - 20) >> 8) as u8),
        Some((frame_len - 20) as u8),
        Some(0x21),
        Some(0x12),
        Some(0xA4),
        Some(0x42),
    ];
    for (i, w) in want.iter().enumerate() {
        let Some(&got) = b.get(2 + i) else {
            return FirstBytes::NeedMore;
        };
        if Some(got) != *w {
            return FirstBytes::Unknown;
        }
    }
    FirstBytes::IceTcp { frame_len }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::engine::demux::binding_username;
    use rtc::stun::message::{Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
    use rtc::stun::textattrs::TextAttribute;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut m = Message::new();
        m.build(&[
            Box::new(BINDING_REQUEST) as Box<dyn Setter>,
            Box::new(TextAttribute::new(
                rtc::stun::attributes::ATTR_USERNAME,
                username.to_owned(),
            )),
        ])
        .expect("builds");
        m.raw
    }

    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in packets {
            encode_frame(p, &mut out).expect("frames");
        }
        out
    }

    #[test]
    fn frames_come_out_whole_whatever_the_reads() {
        let a = vec![1u8; 100];
        let b = vec![2u8; 1];
        let c = vec![3u8; 1500];
        let stream = framed(&[&a, &b, &c]);
        // Every read size from 1 byte to the whole stream.
        for chunk in [1, 2, 3, 7, 101, 1000, stream.len()] {
            let mut d = FrameDecoder::new(1500);
            let mut got = Vec::new();
            let mut rest = &stream[..];
            let mut rounds = 0;
            while !rest.is_empty() || d.buffered() > 0 {
                rounds += 1;
                assert!(rounds < 10_000, "bounded");
                let n = d.feed(&rest[..chunk.min(rest.len())]);
                rest = &rest[n..];
                while let Some(f) = d.next_frame().expect("valid stream") {
                    got.push(f.to_vec());
                }
                if rest.is_empty() && d.buffered() > 0 {
                    panic!("{} bytes left over with chunk {chunk}", d.buffered());
                }
            }
            assert_eq!(got, vec![a.clone(), b.clone(), c.clone()], "chunk {chunk}");
        }
    }

    #[test]
    fn the_decoder_never_holds_more_than_one_frame() {
        let mut d = FrameDecoder::new(200);
        let stream = framed(&[&[9u8; 200], &[8u8; 200], &[7u8; 200]]);
        let n = d.feed(&stream);
        assert_eq!(n, 202, "one header and one frame");
        assert_eq!(d.room(), 0);
        assert_eq!(d.next_frame().expect("ok").map(|f| f.len()), Some(200));
        assert_eq!(d.room(), 202);
        assert_eq!(d.feed(&stream[n..]), 202);
    }

    #[test]
    fn an_oversize_frame_fails_at_its_header() {
        let mut d = FrameDecoder::new(1500);
        assert_eq!(d.feed(&[0x05]), 1);
        assert_eq!(d.next_frame(), Ok(None), "half a header");
        assert_eq!(d.feed(&[0xDD]), 1);
        let e = Err(FramingError::Oversize {
            len: 0x05DD,
            max: 1500,
        });
        assert_eq!(d.next_frame(), e);
        assert_eq!(d.feed(&[0u8; 10]), 10);
        assert_eq!(d.next_frame(), e, "and stays failed");
        let mut d = FrameDecoder::new(1500);
        d.feed(&[0, 0, 1, 2]);
        assert_eq!(d.next_frame(), Err(FramingError::Empty));
        let mut d = FrameDecoder::new(1500);
        d.feed(&[0x05, 0xDC]);
        assert_eq!(d.next_frame(), Ok(None), "1500 is allowed");
        assert_eq!(FrameDecoder::new(1_000_000).room(), 65_537);
    }

    #[test]
    fn encoding_refuses_what_two_bytes_cannot_say() {
        let mut out = Vec::new();
        assert_eq!(
            encode_frame(&vec![0u8; 65_536], &mut out),
            Err(FramingError::Oversize {
                len: 65_536,
                max: 65_535
            })
        );
        assert_eq!(encode_frame(&[], &mut out), Err(FramingError::Empty));
        assert!(out.is_empty());
        encode_frame(&vec![0xAB; 65_535], &mut out).expect("largest");
        assert_eq!(&out[..2], &[0xFF, 0xFF]);
        assert_eq!(out.len(), 65_537);
    }

    #[test]
    fn a_framed_binding_request_is_ice_tcp_and_decodes() {
        let req = binding_request("w01c00000002abcdefgh:remote");
        let stream = framed(&[&req, b"next frame"]);
        assert_eq!(
            classify_first_bytes(&stream),
            FirstBytes::IceTcp {
                frame_len: req.len()
            }
        );
        for n in 0..FIRST_BYTES {
            assert_eq!(
                classify_first_bytes(&stream[..n]),
                FirstBytes::NeedMore,
                "{n} bytes"
            );
        }
        let mut d = FrameDecoder::new(MAX_FIRST_STUN);
        d.feed(&stream);
        let first = d.next_frame().expect("ok").expect("whole");
        assert_eq!(
            binding_username(&first),
            Ok(Some("w01c00000002abcdefgh:remote"))
        );
    }

    #[test]
    fn a_tls_client_hello_is_https() {
        // The first bytes of a real TLS 1.3 ClientHello (record version 3.1).
        let hello = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        assert_eq!(classify_first_bytes(&hello), FirstBytes::TlsClientHello);
        for n in 0..6 {
            assert_eq!(classify_first_bytes(&hello[..n]), FirstBytes::NeedMore);
        }
        // A TLS alert, or version 2.x, or an SSLv2-style hello: not a ClientHello.
        assert_eq!(
            classify_first_bytes(&[0x16, 0x03, 0x01, 0x00, 0x02, 0x02]),
            FirstBytes::Unknown
        );
        assert_eq!(classify_first_bytes(&[0x16, 0x02]), FirstBytes::Unknown);
        assert_eq!(
            classify_first_bytes(&[0x16, 0x03, 0x09]),
            FirstBytes::Unknown
        );
    }

    #[test]
    fn anything_else_is_unknown() {
        assert_eq!(
            classify_first_bytes(b"GET / HTTP/1.1\r\n"),
            FirstBytes::Unknown
        );
        assert_eq!(classify_first_bytes(b"PRI * HTTP/2.0"), FirstBytes::Unknown);
        assert_eq!(classify_first_bytes(b"SSH-2.0-x"), FirstBytes::Unknown);
        // A framed STUN response is not what a client opens with.
        let mut m = Message::new();
        m.build(&[Box::new(BINDING_SUCCESS) as Box<dyn Setter>])
            .expect("builds");
        assert_eq!(
            classify_first_bytes(&framed(&[&m.raw])),
            FirstBytes::Unknown
        );
        // A frame length that disagrees with the STUN length.
        let req = binding_request("a:b");
        let mut bad = framed(&[&req]);
        bad[1] = bad[1].wrapping_add(4);
        assert_eq!(classify_first_bytes(&bad), FirstBytes::Unknown);
        // Too long for a first binding request, or not 20 + 4k.
        assert_eq!(
            classify_first_bytes(&[0x04, 0x04, 0, 1]),
            FirstBytes::Unknown
        );
        assert_eq!(
            classify_first_bytes(&[0x00, 0x15, 0, 1]),
            FirstBytes::Unknown
        );
        // Framed DTLS or RTP: a flow must open with STUN.
        assert_eq!(
            classify_first_bytes(&[0x00, 0x20, 22, 0xfe, 0xfd]),
            FirstBytes::Unknown
        );
        assert_eq!(classify_first_bytes(&[]), FirstBytes::NeedMore);
    }
}
