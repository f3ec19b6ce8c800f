//! The VP8 payload descriptor parser and in-place rewriter the SFU runs on every
//! relayed video packet (`sfu::layers::vp8`). Input: two bytes of rewrite values
//! (picture id, TL0PICIDX), then the RTP payload. Checks, besides "never panics":
//! the rewrite never changes the descriptor's shape (the same parse, new values).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openhearing::sfu::layers::vp8::{PictureId, Vp8Descriptor, Vp8Rewrite};

fuzz_target!(|data: &[u8]| {
    let [pid_hi, pid_lo, tl0, payload @ ..] = data else {
        return;
    };
    let Ok(d) = Vp8Descriptor::parse(payload) else {
        return;
    };
    let _ = d.tid();
    assert!(d.header_len < payload.len(), "descriptor past the payload");
    let values = Vp8Rewrite {
        picture_id: Some(u16::from_be_bytes([*pid_hi, *pid_lo])),
        tl0_pic_idx: Some(*tl0),
    };
    let mut buf = payload.to_vec();
    d.rewrite(&mut buf, values)
        .expect("rewrites the buffer it parsed");
    assert_eq!(
        buf[d.header_len..],
        payload[d.header_len..],
        "payload touched"
    );
    let after = Vp8Descriptor::parse(&buf).expect("still parses");
    assert_eq!(after.header_len, d.header_len);
    assert_eq!(after.keyframe, d.keyframe);
    assert_eq!(after.temporal, d.temporal);
    let pid = u16::from_be_bytes([*pid_hi, *pid_lo]);
    match (d.picture_id, after.picture_id) {
        (None, None) => {}
        (Some(PictureId::Long(_)), Some(PictureId::Long(v))) => assert_eq!(v, pid & 0x7fff),
        (Some(PictureId::Short(_)), Some(PictureId::Short(v))) => assert_eq!(v, pid as u8 & 0x7f),
        other => panic!("picture id form changed: {other:?}"),
    }
    assert_eq!(after.tl0_pic_idx, d.tl0_pic_idx.map(|_| *tl0));
    // A buffer that is not the one parsed is refused, not misread.
    let _ = d.rewrite(&mut buf[..d.header_len], values);
});
