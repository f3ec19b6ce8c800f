//! The little SDP inspection the SFU needs before handing an offer to webrtc.

/// Whether an offer asks to *send* audio or video: some non-rejected audio/video
/// m-section whose direction is `sendrecv` or `sendonly` (RFC 4566: no direction
/// attribute means `sendrecv`). Used to refuse publishing by roles that may not.
pub fn offer_sends_media(sdp: &str) -> bool {
    let mut sends = false;
    let mut in_media = false;
    let mut section_sends = false;
    let mut section_rejected = false;
    let mut finish = |in_media: bool, section_sends: bool, section_rejected: bool| {
        if in_media && section_sends && !section_rejected {
            sends = true;
        }
    };
    for raw in sdp.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            finish(in_media, section_sends, section_rejected);
            let mut parts = rest.split_whitespace();
            let kind = parts.next().unwrap_or("");
            let port = parts.next().unwrap_or("0");
            in_media = kind == "audio" || kind == "video";
            section_rejected = port == "0";
            section_sends = true; // default direction: sendrecv
        } else if in_media {
            match line {
                "a=recvonly" | "a=inactive" => section_sends = false,
                "a=sendrecv" | "a=sendonly" => section_sends = true,
                _ => {}
            }
        }
    }
    finish(in_media, section_sends, section_rejected);
    sends
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECV: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n";

    #[test]
    fn recvonly_offer_does_not_send() {
        assert!(!offer_sends_media(RECV));
    }

    #[test]
    fn sendrecv_or_default_direction_sends() {
        assert!(offer_sends_media(&RECV.replacen(
            "a=recvonly",
            "a=sendrecv",
            1
        )));
        assert!(offer_sends_media(&RECV.replacen("a=recvonly\r\n", "", 1)));
        assert!(offer_sends_media(&RECV.replace("a=recvonly", "a=sendonly")));
    }

    #[test]
    fn rejected_and_non_media_sections_are_ignored() {
        let rejected =
            RECV.replacen("m=audio 9", "m=audio 0", 1)
                .replacen("a=recvonly", "a=sendrecv", 1);
        assert!(!offer_sends_media(&rejected));
        let app = format!("{RECV}m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
        assert!(!offer_sends_media(&app));
        assert!(!offer_sends_media("garbage"));
    }
}
