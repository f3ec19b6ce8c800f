// The pre-join network test in the browser (PROTOCOL.md, *Self-test*): a socket of
// its own sends `self_test` with the join token, a connection of its own publishes a
// test stream (the camera when it is allowed, else an animated canvas), the server
// sends it straight back, and getStats() is sampled until the server's report. Never
// joins the hearing; everything it opens is closed when it ends, whatever happens.
import { measure, type LoopSample, type Measurement } from './selftest';
import type { SelfTestReport, ServerMessage } from './protocol';
import { PROTOCOL_VERSION } from './protocol';

export const TEST_SECONDS = 8;
/** How often the connection's counters are read. */
const SAMPLE_MS = 500;
/** How long before the report the page stops sending, so that in-flight packets
 * arrive and both sides' counters cover the same packets. */
const STOP_BEFORE_END_MS = 1200;
/** How long past the test's seconds to wait for the report before giving up. */
const GRACE_MS = 12_000;

export interface NetworkTestResult {
  measurement: Measurement;
  report: SelfTestReport;
  /** Whether the test stream was a canvas (no camera allowed). */
  canvas: boolean;
}

/** Why the test could not give a result: a server error code, or `closed`/`timeout`. */
export class NetworkTestError extends Error {
  constructor(
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface NetworkTestOptions {
  url: string;
  token: string;
  /** The camera stream of the pre-join screen, if any. */
  camera: MediaStream | null;
  /** Where the stream that comes back is shown (optional). */
  loopView?: HTMLVideoElement;
  onProgress?: (fraction: number) => void;
  seconds?: number;
}

/** An animated canvas stream (noise blocks, so the encoder has work to do). */
function canvasStream(): { stream: MediaStream; stop: () => void } {
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 360;
  const ctx = canvas.getContext('2d');
  let frame = 0;
  const draw = () => {
    if (!ctx) return;
    frame++;
    for (let i = 0; i < 120; i++) {
      const v = Math.floor(Math.random() * 255);
      ctx.fillStyle = `rgb(${v},${(v * 7 + frame) % 255},${(v * 13) % 255})`;
      ctx.fillRect(Math.floor(Math.random() * 40) * 16, Math.floor(Math.random() * 23) * 16, 16, 16);
    }
  };
  const timer = setInterval(draw, 1000 / 15);
  draw();
  const stream = canvas.captureStream(15);
  return {
    stream,
    stop: () => {
      clearInterval(timer);
      stream.getTracks().forEach((t) => t.stop());
    },
  };
}

async function sample(pc: RTCPeerConnection, at: number): Promise<LoopSample> {
  const s: LoopSample = { at, sent: 0, received: 0, bytes: 0, rttMs: null, lost: 0, remoteLost: null };
  const stats = await pc.getStats();
  let selectedPair: string | undefined;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) selectedPair = r.selectedCandidatePairId;
  });
  let remoteRtt: number | null = null;
  stats.forEach((r) => {
    if (r.type === 'outbound-rtp' && r.kind === 'video') s.sent += r.packetsSent ?? 0;
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      s.received += r.packetsReceived ?? 0;
      s.bytes += r.bytesReceived ?? 0;
      s.lost = (s.lost ?? 0) + Math.max(0, r.packetsLost ?? 0);
    }
    if (r.type === 'remote-inbound-rtp' && r.kind === 'video' && typeof r.packetsLost === 'number') {
      s.remoteLost = (s.remoteLost ?? 0) + Math.max(0, r.packetsLost);
    }
    if (r.type === 'candidate-pair' && (r.id === selectedPair || (!selectedPair && r.nominated))) {
      if (typeof r.currentRoundTripTime === 'number') s.rttMs = r.currentRoundTripTime * 1000;
      if (typeof r.availableOutgoingBitrate === 'number') s.estimateKbps = r.availableOutgoingBitrate / 1000;
    }
    if (r.type === 'remote-inbound-rtp' && typeof r.roundTripTime === 'number') remoteRtt = r.roundTripTime * 1000;
  });
  s.rttMs ??= remoteRtt;
  return s;
}

/** Runs the test; resolves with its result, rejects with a [`NetworkTestError`]. */
export function runNetworkTest(opts: NetworkTestOptions): Promise<NetworkTestResult> {
  const seconds = opts.seconds ?? TEST_SECONDS;
  const cameraTrack = opts.camera?.getVideoTracks().find((t) => t.readyState === 'live');
  const canvas = cameraTrack ? null : canvasStream();
  const track = cameraTrack ? cameraTrack.clone() : canvas!.stream.getVideoTracks()[0];
  const stream = new MediaStream([track]);
  const ws = new WebSocket(opts.url);
  let pc: RTCPeerConnection | null = null;
  let started = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  let bound: ReturnType<typeof setTimeout> | undefined;
  const samples: LoopSample[] = [];
  let done = false;

  return new Promise<NetworkTestResult>((resolve, reject) => {
    const cleanup = () => {
      done = true;
      clearInterval(timer);
      clearTimeout(bound);
      pc?.close();
      track.stop();
      canvas?.stop();
      if (opts.loopView) opts.loopView.srcObject = null;
      try {
        ws.close();
      } catch {
        /* closed already */
      }
    };
    const fail = (code: string, message: string) => {
      if (done) return;
      cleanup();
      reject(new NetworkTestError(code, message));
    };
    const send = (m: object) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m));
    };
    bound = setTimeout(() => fail('timeout', 'no report from the server'), seconds * 1000 + GRACE_MS);

    const start = async (granted: number) => {
      const conn = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
      pc = conn;
      conn.onicecandidate = (e) => {
        if (e.candidate) send({ type: 'candidate', candidate: e.candidate.toJSON() });
      };
      conn.ontrack = (e) => {
        if (opts.loopView) opts.loopView.srcObject = e.streams[0] ?? new MediaStream([e.track]);
      };
      const { sender } = conn.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      const offer = await conn.createOffer();
      await conn.setLocalDescription(offer);
      send({ type: 'offer', sdp: offer.sdp });
      started = performance.now();
      let stopped = false;
      timer = setInterval(() => {
        if (done || !pc) return;
        const at = performance.now() - started;
        opts.onProgress?.(Math.min(1, at / (granted * 1000)));
        const wasStopped = stopped;
        if (!stopped && at >= granted * 1000 - STOP_BEFORE_END_MS) {
          stopped = true;
          void sender.replaceTrack(null).catch(() => undefined);
        }
        void sample(pc, at).then((s) => samples.push({ ...s, stopped: wasStopped }), () => undefined);
      }, SAMPLE_MS);
    };

    ws.onopen = () => send({ type: 'self_test', v: PROTOCOL_VERSION, token: opts.token, seconds });
    ws.onerror = () => fail('closed', 'the connection to the server failed');
    ws.onclose = () => fail('closed', 'the server closed the connection before its report');
    ws.onmessage = async (ev) => {
      let m: ServerMessage;
      try {
        m = JSON.parse(String(ev.data)) as ServerMessage;
      } catch {
        return;
      }
      try {
        switch (m.type) {
          case 'self_test_ready':
            await start(m.seconds);
            break;
          case 'answer':
            await pc?.setRemoteDescription({ type: 'answer', sdp: m.sdp });
            break;
          case 'offer': {
            if (!pc) break;
            await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
            const answer = await pc.createAnswer();
            await pc.setLocalDescription(answer);
            send({ type: 'answer', sdp: answer.sdp });
            break;
          }
          case 'candidate':
            await pc?.addIceCandidate(m.candidate).catch(() => undefined);
            break;
          case 'self_test_report': {
            if (done) break;
            const { type: _type, ...report } = m;
            if (pc) samples.push({ ...(await sample(pc, performance.now() - started)), stopped: true });
            const measurement = measure(report, samples);
            cleanup();
            resolve({ measurement, report, canvas: canvas !== null });
            break;
          }
          case 'error':
            if (m.fatal) fail(m.code, m.message);
            break;
          default:
            break;
        }
      } catch (e) {
        fail('internal', String(e));
      }
    };
  });
}
