//! The SDP inspection the SFU runs on every client offer before webrtc sees it
//! (`sfu::sdp::offer_sends_media`: may this role publish?). The offer arrives as a
//! JSON string, so it is always UTF-8.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openhearing::sfu::sdp::offer_sends_media;

fuzz_target!(|data: &[u8]| {
    if let Ok(sdp) = std::str::from_utf8(data) {
        let _ = offer_sends_media(sdp);
    }
});
