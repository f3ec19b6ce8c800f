//! The little SDP inspection the SFU needs before handing an offer to webrtc.
//!
//! It reads the offer with the parser webrtc itself uses (`rtc::sdp`, re-exported
//! `rtc-sdp`) and takes a section's direction the way webrtc does
//! (`get_peer_direction`: the *first* direction attribute wins). An earlier
//! line-by-line reading took the last one, so an offer carrying `a=sendrecv` and then
//! `a=recvonly` passed as receive-only while webrtc accepted a track from it.

use std::io::Cursor;

use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::sdp::SessionDescription;

/// Whether an offer asks to *send* audio or video: some non-rejected audio/video
/// m-section whose direction is `sendrecv` or `sendonly` (RFC 4566: no direction
/// attribute means `sendrecv`). Used to refuse publishing by roles that may not.
/// An offer that does not parse is an error (webrtc would refuse it too).
pub fn offer_sends_media(sdp: &str) -> Result<bool, String> {
    let parsed = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| e.to_string())?;
    Ok(parsed.media_descriptions.iter().any(|m| {
        let kind = m.media_name.media.as_str();
        if (kind != "audio" && kind != "video") || m.media_name.port.value == 0 {
            return false;
        }
        let first = m
            .attributes
            .iter()
            .map(|a| RTCRtpTransceiverDirection::from(a.key.as_str()))
            .find(|d| *d != RTCRtpTransceiverDirection::Unspecified);
        matches!(
            first,
            None | Some(RTCRtpTransceiverDirection::Sendrecv)
                | Some(RTCRtpTransceiverDirection::Sendonly)
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECV: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n";

    fn sends(sdp: &str) -> bool {
        offer_sends_media(sdp).expect("parses")
    }

    #[test]
    fn recvonly_offer_does_not_send() {
        assert!(!sends(RECV));
    }

    #[test]
    fn sendrecv_or_default_direction_sends() {
        assert!(sends(&RECV.replacen("a=recvonly", "a=sendrecv", 1)));
        assert!(sends(&RECV.replacen("a=recvonly\r\n", "", 1)));
        assert!(sends(&RECV.replace("a=recvonly", "a=sendonly")));
    }

    /// The bypass found in the hardening review: two direction attributes in one
    /// section. webrtc takes the first, so this offer sends.
    #[test]
    fn the_first_direction_attribute_decides_like_webrtc() {
        let two = RECV.replace("a=recvonly", "a=sendrecv\r\na=recvonly");
        assert!(sends(&two));
        let two_other_way = RECV.replace("a=recvonly", "a=recvonly\r\na=sendrecv");
        assert!(!sends(&two_other_way));
    }

    #[test]
    fn rejected_and_non_media_sections_are_ignored() {
        let rejected =
            RECV.replacen("m=audio 9", "m=audio 0", 1)
                .replacen("a=recvonly", "a=sendrecv", 1);
        assert!(!sends(&rejected));
        let app = format!(
            "{RECV}m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
        );
        assert!(!sends(&app));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(offer_sends_media("garbage").is_err());
        assert!(offer_sends_media("").is_err());
        for cut in [5, 17, 40, 80, 120] {
            let _ = offer_sends_media(&RECV[..cut.min(RECV.len())]);
        }
    }
}
