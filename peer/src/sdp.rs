//! Just enough SDP reading to know which remote tracks are still being sent.
//!
//! webrtc 0.21 does not tell the receiving side that a remote track went away on
//! renegotiation (see [`crate::stats::EndSignal`]), so after every remote description
//! the peer compares the tracks it has seen with the ones the description still sends.

use std::collections::HashSet;

/// `(stream id, track id)` of every m-section the author of `sdp` sends on: port not 0,
/// direction `sendrecv` (the default) or `sendonly`, with an `a=msid:` line.
pub fn sending_tracks(sdp: &str) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    let mut section: Option<Section> = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            if let Some(s) = section.take() {
                s.finish(&mut out);
            }
            let port = rest.split_whitespace().nth(1).unwrap_or("0");
            section = Some(Section {
                rejected: port == "0",
                sends: true,
                msids: Vec::new(),
            });
            continue;
        }
        let Some(s) = section.as_mut() else { continue };
        match line {
            "a=recvonly" | "a=inactive" => s.sends = false,
            "a=sendrecv" | "a=sendonly" => s.sends = true,
            _ => {
                if let Some(msid) = line.strip_prefix("a=msid:") {
                    let mut parts = msid.split_whitespace();
                    if let (Some(stream), Some(track)) = (parts.next(), parts.next()) {
                        s.msids.push((stream.to_owned(), track.to_owned()));
                    }
                }
            }
        }
    }
    if let Some(s) = section.take() {
        s.finish(&mut out);
    }
    out
}

struct Section {
    rejected: bool,
    sends: bool,
    msids: Vec<(String, String)>,
}

impl Section {
    fn finish(self, out: &mut HashSet<(String, String)>) {
        if !self.rejected && self.sends {
            out.extend(self.msids);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_and_ports() {
        let sdp = "v=0\r\na=msid-semantic: WMS *\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\na=msid:s1 a1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=msid:s1 v1\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=msid:s2 v2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=msid:s3 v3\r\na=sendonly\r\n";
        let live = sending_tracks(sdp);
        assert_eq!(live.len(), 2, "{live:?}");
        assert!(live.contains(&("s1".into(), "a1".into())));
        assert!(live.contains(&("s3".into(), "v3".into())));
    }
}
