//! The little SDP inspection the SFU needs before handing an offer to webrtc.
//!
//! It reads the offer with the parser webrtc itself uses (`rtc::sdp`, re-exported
//! `rtc-sdp`) and takes a section's direction the way webrtc does
//! (`get_peer_direction`: the *first* direction attribute wins). An earlier
//! line-by-line reading took the last one, so an offer carrying `a=sendrecv` and then
//! `a=recvonly` passed as receive-only while webrtc accepted a track from it.
//!
//! It also reads which repair formats a negotiation settled on ([`RepairFormats`]):
//! the RTX payload types and what each repairs, and the audio RED payload type.
//! webrtc 0.21 does not hand these to interceptors for simulcast layers, nor to the
//! application at all, and the SFU needs them to unwrap what publishers send.

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
    Ok(parsed.media_descriptions.iter().any(section_sends))
}

/// Whether an audio/video m-section sends: not rejected, and its first direction
/// attribute (none means `sendrecv`) is `sendrecv` or `sendonly`.
fn section_sends(m: &rtc::sdp::MediaDescription) -> bool {
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
}

/// The track ids (`a=msid:<stream> <track>`, or the `a=ssrc:<n> msid:` form) an
/// offer still sends. `None` when some sending section names no track: then what it
/// withdrew cannot be told, and nothing is taken as withdrawn.
///
/// webrtc 0.21 never ends a remote track when a renegotiation stops it (the browser
/// removed the track: its section turns `recvonly`, or is rejected), so the session
/// compares its published tracks with this after each offer (a stopped screen share).
pub fn sent_track_ids(sdp: &str) -> Result<Option<Vec<String>>, String> {
    let parsed = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for m in parsed
        .media_descriptions
        .iter()
        .filter(|m| section_sends(m))
    {
        let msid = m.attributes.iter().find_map(|a| {
            let v = a.value.as_deref()?;
            match a.key.as_str() {
                "msid" => v.split_whitespace().nth(1),
                "ssrc" => {
                    let rest = v.split_once(' ')?.1.strip_prefix("msid:")?;
                    rest.split_whitespace().nth(1)
                }
                _ => None,
            }
        });
        match msid {
            Some(id) => out.push(id.to_owned()),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The repair formats of one connection, as its last answer settled them. Payload
/// types are the publisher's: an answer repeats the offer's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairFormats {
    /// RTX payload type → the payload type it repairs (`apt`, RFC 4588 §8.1).
    pub rtx: Vec<(u8, u8)>,
    /// The audio RED payload type (RFC 2198), when RED was accepted.
    pub red: Option<u8>,
}

impl RepairFormats {
    /// What RTX payload type `pt` repairs, if it is one.
    pub fn apt(&self, pt: u8) -> Option<u8> {
        self.rtx
            .iter()
            .find(|(rtx, _)| *rtx == pt)
            .map(|(_, apt)| *apt)
    }

    /// Whether `pt` is an RTX payload type (never media of its own).
    pub fn is_rtx(&self, pt: u8) -> bool {
        self.apt(pt).is_some()
    }

    /// Reads them from an SDP answer: every accepted audio/video section's `rtpmap`
    /// and `fmtp` lines. An SDP that does not parse is an error.
    pub fn of_answer(sdp: &str) -> Result<RepairFormats, String> {
        let parsed = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
            .map_err(|e| e.to_string())?;
        let mut out = RepairFormats::default();
        for m in &parsed.media_descriptions {
            let kind = m.media_name.media.as_str();
            if (kind != "audio" && kind != "video") || m.media_name.port.value == 0 {
                continue;
            }
            let mut rtx_pts = Vec::new();
            let mut apts = Vec::new();
            for a in &m.attributes {
                let Some((pt, rest)) = a.value.as_deref().and_then(|v| v.split_once(' ')) else {
                    continue;
                };
                let Ok(pt) = pt.trim().parse::<u8>() else {
                    continue;
                };
                let name = rest.split('/').next().unwrap_or("").trim();
                match a.key.as_str() {
                    "rtpmap" if name.eq_ignore_ascii_case("rtx") => rtx_pts.push(pt),
                    "rtpmap" if name.eq_ignore_ascii_case("red") && kind == "audio" => {
                        out.red = Some(pt)
                    }
                    "fmtp" => {
                        let apt = rest
                            .split(';')
                            .filter_map(|p| p.trim().strip_prefix("apt="))
                            .find_map(|v| v.trim().parse::<u8>().ok());
                        if let Some(apt) = apt {
                            apts.push((pt, apt));
                        }
                    }
                    _ => {}
                }
            }
            for (pt, apt) in apts {
                if rtx_pts.contains(&pt) && !out.rtx.contains(&(pt, apt)) {
                    out.rtx.push((pt, apt));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(sections: &[&str]) -> String {
        let mut s = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".to_owned();
        for m in sections {
            s.push_str(m);
        }
        s
    }

    const CAM: &str = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=msid:s cam-id\r\n";
    const MIC: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=ssrc:7 msid:s mic-id\r\n";
    const SCREEN: &str = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sendonly\r\na=msid:s screen-id\r\n";

    #[test]
    fn sent_track_ids_lists_what_still_sends() {
        let ids = |sections: &[&str]| sent_track_ids(&offer(sections)).unwrap();
        assert_eq!(
            ids(&[MIC, CAM, SCREEN]),
            Some(vec!["mic-id".into(), "cam-id".into(), "screen-id".into()])
        );
        // The screen removed: its section turned receive-only, or was rejected.
        let recvonly = SCREEN.replace("a=sendonly", "a=recvonly");
        assert_eq!(
            ids(&[MIC, CAM, &recvonly]),
            Some(vec!["mic-id".into(), "cam-id".into()])
        );
        let rejected = SCREEN.replace("m=video 9", "m=video 0");
        assert_eq!(
            ids(&[MIC, CAM, &rejected]),
            Some(vec!["mic-id".into(), "cam-id".into()])
        );
        // A sending section without a track id: nothing can be told withdrawn.
        let anonymous = CAM.replace("a=msid:s cam-id\r\n", "");
        assert_eq!(ids(&[MIC, &anonymous]), None);
        assert!(sent_track_ids("not sdp").is_err());
    }

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

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 63 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:103 rtx/90000\r\na=fmtp:103 rtx-time=3000;apt=102\r\n";

    #[test]
    fn repair_formats_of_an_answer() {
        let f = RepairFormats::of_answer(ANSWER).expect("parses");
        assert_eq!(f.rtx, vec![(97, 96), (103, 102)]);
        assert_eq!(f.red, Some(63));
        assert_eq!(f.apt(97), Some(96));
        assert!(f.is_rtx(103) && !f.is_rtx(96) && !f.is_rtx(63));
    }

    #[test]
    fn no_repair_formats_without_rtx_or_red() {
        let f = RepairFormats::of_answer(RECV).expect("parses");
        assert_eq!(f, RepairFormats::default());
        // A rejected section counts for nothing; an fmtp apt without rtx rtpmap neither.
        let rejected = ANSWER.replacen("m=video 9", "m=video 0", 1);
        assert_eq!(
            RepairFormats::of_answer(&rejected).expect("parses").rtx,
            vec![]
        );
        let odd = ANSWER.replace("a=rtpmap:97 rtx/90000", "a=rtpmap:97 VP9/90000");
        assert_eq!(
            RepairFormats::of_answer(&odd).expect("parses").rtx,
            vec![(103, 102)]
        );
        assert!(RepairFormats::of_answer("garbage").is_err());
    }
}
