// Runs inside a headless Chromium page driven by mock-openhearing.mjs: a toy SFU
// made of browser RTCPeerConnections, so the client's media path (offer/answer,
// server-initiated renegotiation, msid = publisher id, trickle ICE) can be exercised
// before the Rust server exists. Not production code.
(() => {
  const ws = new WebSocket(`ws://${location.host}/ws/__sfu`);
  const peers = new Map(); // pid -> peer
  const send = (to, msg) => ws.send(JSON.stringify({ to, msg }));

  let audioCtx = null;
  function tone(n) {
    audioCtx = audioCtx || new AudioContext();
    audioCtx.resume();
    const osc = audioCtx.createOscillator();
    osc.frequency.value = 300 + 100 * n;
    const dest = audioCtx.createMediaStreamDestination();
    osc.connect(dest);
    osc.start();
    return dest.stream.getAudioTracks()[0];
  }

  function peer(pid) {
    let p = peers.get(pid);
    if (p) return p;
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    p = { pid, pc, tracks: [], stream: new MediaStream(), senders: new Map(), busy: false, again: false, pending: [], answerWait: null };
    peers.set(pid, p);
    pc.onicecandidate = (e) => {
      if (e.candidate && e.candidate.candidate) send(pid, { type: 'candidate', candidate: e.candidate.toJSON() });
    };
    pc.ontrack = (e) => {
      // Chrome does not re-send a remote audio track that nobody plays out, so the toy
      // SFU forwards a tone per publisher instead of the publisher's real audio.
      p.tracks.push(e.track.kind === 'audio' ? tone(peers.size) : e.track);
      for (const other of peers.values()) if (other !== p) forward(p, other);
    };
    return p;
  }

  // Publisher `from`'s tracks onto subscriber `to`.
  function forward(from, to) {
    let added = false;
    for (const track of from.tracks) {
      const key = track.id;
      if (to.senders.has(key)) continue;
      let stream = to.streams?.get(from.pid);
      if (!to.streams) to.streams = new Map();
      if (!stream) { stream = new MediaStream(); to.streams.set(from.pid, stream); }
      to.senders.set(key, { sender: to.pc.addTrack(track, stream), from: from.pid });
      added = true;
    }
    if (added && to.ready) renegotiate(to);
  }

  function munge(p, sdp) {
    for (const [pid, stream] of p.streams ?? []) sdp = sdp.split(stream.id).join(pid);
    return sdp;
  }

  async function renegotiate(p) {
    if (p.busy) { p.again = true; return; }
    p.busy = true;
    try {
      do {
        p.again = false;
        const offer = await p.pc.createOffer();
        await p.pc.setLocalDescription(offer);
        const answered = new Promise((res) => (p.answerWait = res));
        send(p.pid, { type: 'offer', sdp: munge(p, p.pc.localDescription.sdp) });
        await answered;
      } while (p.again);
    } finally {
      p.busy = false;
    }
  }

  async function addCand(p, c) {
    try { await p.pc.addIceCandidate(c); } catch (e) { console.warn('cand', e); }
  }

  ws.onmessage = async (ev) => {
    const { pid, msg } = JSON.parse(ev.data);
    if (msg.type === 'gone') {
      const p = peers.get(pid);
      if (!p) return;
      peers.delete(pid);
      p.pc.close();
      for (const other of peers.values()) {
        let removed = false;
        for (const [key, s] of other.senders) {
          if (s.from === pid) { other.pc.removeTrack(s.sender); other.senders.delete(key); removed = true; }
        }
        other.streams?.delete(pid);
        if (removed && other.ready) renegotiate(other);
      }
      return;
    }
    const p = peer(pid);
    if (msg.type === 'offer') {
      await p.pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
      for (const c of p.pending.splice(0)) await addCand(p, c);
      const answer = await p.pc.createAnswer();
      await p.pc.setLocalDescription(answer);
      send(pid, { type: 'answer', sdp: p.pc.localDescription.sdp });
      p.ready = true;
      // Give the newcomer everything already published.
      let any = false;
      for (const other of peers.values()) if (other !== p && other.tracks.length) { forward(other, p); any = true; }
      if (any && !p.busy) renegotiate(p);
    } else if (msg.type === 'answer') {
      await p.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      for (const c of p.pending.splice(0)) await addCand(p, c);
      const w = p.answerWait; p.answerWait = null; w && w();
    } else if (msg.type === 'candidate') {
      if (!p.pc.remoteDescription) p.pending.push(msg.candidate); else await addCand(p, msg.candidate);
    }
  };
  ws.onopen = () => { document.title = 'sfu-ready'; };
})();
