#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target into fuzz/seeds/<target>/.

Why generated rather than hand-edited files: the seeds follow the formats the targets
read (length prefixes, the journal's hash chain), which are easy to get wrong by hand.
Each seed is a well-formed input as a real client, publisher or archive would give,
so libFuzzer starts from deep inside each parser. `make fuzz` runs this first.
"""
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# -- signaling: one of each message shape a client sends.
for i, msg in enumerate([
    {"type": "join", "v": 1, "token": "eyJhbGciOiJIUzI1NiJ9.e30.sig"},
    {"type": "offer", "sdp": "v=0\r\n"},
    {"type": "answer", "sdp": "v=0\r\n"},
    {"type": "ice_candidate", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host",
                                             "sdpMid": "0", "sdpMLineIndex": 0}},
    {"type": "leave"},
    {"type": "set_state", "state": "open", "reason": "start"},
    {"type": "admit", "participant_id": "67e55044-10b1-426f-9247-bb680e5fe0c8"},
    {"type": "mute", "participant_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "kind": "audio"},
    {"type": "nope"},
]):
    put("signaling_decode", f"msg{i}", json.dumps(msg))

# -- SDP: a browser-like offer, receive-only and publishing.
SDP = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
       "a=group:BUNDLE 0 1\r\na=msid-semantic: WMS\r\n"
       "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n"
       "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 "
       + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\n"
       "a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
       "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n"
       "a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n")
put("sdp_offer", "publish", SDP)
put("sdp_offer", "receive", SDP.replace("a=sendrecv", "a=recvonly"))
put("sdp_offer", "two_directions", SDP.replace("a=sendrecv", "a=sendrecv\r\na=recvonly"))

# -- VP8: rewrite values, then descriptors with every optional field.
KEY = bytes([0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01])
put("vp8_descriptor", "minimal", b"\x12\x34\x56" + KEY)
put("vp8_descriptor", "long_pid_tl0_tid", b"\x12\x34\x56" + bytes([0x90, 0xe0, 0x81, 0x23, 0x07, 0x60]) + KEY[1:])
put("vp8_descriptor", "short_pid_keyidx", b"\x00\x01\x02" + bytes([0x80, 0x90, 0x05, 0x1f, 0x01, 0x02]))

# -- RTCP: a timestamp, then compound packets (SR + SDES, RR + PLI, FIR).
SR = struct.pack("!BBHIQIII", 0x80, 200, 6, 0x1234, 0xE8F0_0000_8000_0000, 90000, 10, 1000)
SDES = struct.pack("!BBHI", 0x81, 202, 2, 0x1234) + b"\x01\x02ab\x00\x00"
RR = struct.pack("!BBHI", 0x80, 201, 1, 0x5678)
PLI = struct.pack("!BBHII", 0x81, 206, 2, 0x5678, 0x1234)
FIR = struct.pack("!BBHIIIBBBB", 0x84, 206, 4, 0x5678, 0, 0x1234, 1, 0, 0, 0)
NACK = struct.pack("!BBHIIHH", 0x81, 205, 3, 0x5678, 0x1234, 10, 0)
put("rtcp", "sr_sdes", struct.pack("!I", 93000) + SR + SDES)
put("rtcp", "rr_pli", struct.pack("!I", 1) + RR + PLI)
put("rtcp", "fir_nack", struct.pack("!I", 2) + FIR + NACK)


# -- depack: codec byte, then (seq step, ts step, flags, len, payload) packets.
def pkt(payload, marker, seq_step=1, ts_step=0, ms=10):
    return bytes([seq_step & 0xff, ts_step & 0xff, (ms << 1) | int(marker), len(payload)]) + payload


vp8_frame = pkt(bytes([0x10]) + KEY[1:] + b"\x00" * 20, False) + pkt(bytes([0x00]) + b"\x11" * 30, True)
put("depack", "vp8", b"\x01" + vp8_frame + pkt(b"\x10\x01\x02\x03", True, 1, 3))
put("depack", "vp8_reordered", b"\x01" + pkt(bytes([0x10]) + KEY[1:], False, 2) + pkt(b"\x00\x22", True, -1 & 0xff))
put("depack", "opus", b"\x00" + pkt(b"\xfc\xff\xfe", True, 1, 1) + pkt(b"\x78\x01", True, 1, 1))
SPS = bytes([0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04])
PPS = bytes([0x68, 0xce, 0x3c, 0x80])
IDR = bytes([0x65, 0x88, 0x84]) + b"\x00" * 10
stap = bytes([0x78]) + struct.pack("!H", len(SPS)) + SPS + struct.pack("!H", len(PPS)) + PPS
fu_start = bytes([0x7c, 0x85]) + IDR[1:8]
fu_end = bytes([0x7c, 0x45]) + IDR[8:]
put("depack", "h264", b"\x02" + pkt(stap, False) + pkt(fu_start, False) + pkt(fu_end, True)
    + pkt(bytes([0x41, 0x9a, 0x00]), True, 1, 3))


# -- journal and archive: a closed archive with a hash chain, as the recorder writes it.
def canonical(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def journal():
    T = "2026-05-01T09:00:00Z"
    hearing = {"hearing_id": "67e55044", "case_number": "HS-1/2026", "title": "Demo"}
    track = {"track_id": "t1", "participant_id": "p1", "name": "A", "role": "presiding_judge",
             "site": "Room 1", "kind": "video", "codec": "vp8", "clock_rate": 90000}
    entries = [
        {"type": "archive_opened", "hearing": hearing, "recorder_version": "0.1.0",
         "public_key": "ab" * 32, "segment_seconds": 10},
        {"type": "track_added", "track": track},
        {"type": "segment", "file": "p1/t1-00001.webm", "track_id": "t1", "participant_id": "p1",
         "role": "presiding_judge", "site": "Room 1", "start": T, "end": "2026-05-01T09:00:10Z",
         "duration_ms": 10000, "frames": 300, "size": 12345, "sha256": "cd" * 32,
         "discontinuity": False},
        {"type": "gap", "track_id": "t1", "from": T, "to": T, "cause": "packet_loss", "count": 3},
        {"type": "paused", "reason": "recess"},
        {"type": "resumed"},
        {"type": "event", "event": {"at": T, "kind": "joined", "actor": "p1", "details": {"n": 1}}},
        {"type": "track_removed", "track_id": "t1", "reason": "left"},
        {"type": "archive_closed", "summary": {"reason": "hearing_closed", "details": None}},
    ]
    prev, lines = "0" * 64, []
    for seq, e in enumerate(entries):
        obj = dict(e, seq=seq, prev_hash=prev, at=T)
        obj["hash"] = hashlib.sha256(canonical(obj).encode()).hexdigest()
        prev = obj["hash"]
        lines.append(canonical(obj))
    return ("\n".join(lines) + "\n").encode(), hearing, prev, len(entries)


jl, hearing, head, n = journal()
put("journal", "closed", jl)
put("journal", "torn", jl + b'{"seq":9,"prev')
manifest = canonical({
    "format": "openhearing-archive/1", "hearing": hearing, "public_key": "ab" * 32,
    "opened_at": "2026-05-01T09:00:00Z", "closed_at": "2026-05-01T09:00:00Z",
    "interrupted": False, "participants": [], "tracks": [], "segments": [], "gaps": [],
    "partial_files": [], "journal": {"entries": n, "head_hash": head},
}).encode() + b"0" * 128
put("archive", "closed", struct.pack("!H", len(jl)) + jl + manifest)
put("archive", "no_manifest", struct.pack("!H", len(jl)) + jl)
print(f"seeds written under {ROOT}", file=sys.stderr)
