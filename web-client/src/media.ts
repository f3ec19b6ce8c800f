// Local camera/microphone: acquisition, device lists, level meter.

/** `AcquireResult.error` when the page cannot use media at all (not https). */
export const INSECURE_CONTEXT = 'insecure-context';

export interface DeviceChoice {
  cameraId?: string;
  micId?: string;
  /** The loudspeaker or headset (audio output) picked in the speaker test. */
  speakerId?: string;
}

/**
 * Plays `el` through the output device `id` where the browser can choose one
 * (`setSinkId`); elsewhere, and for the default device, the system's output.
 */
export async function useSpeaker(el: HTMLMediaElement, id: string | undefined): Promise<void> {
  const sink = el as HTMLMediaElement & { setSinkId?: (id: string) => Promise<void> };
  if (!id || typeof sink.setSinkId !== 'function') return;
  try {
    await sink.setSinkId(id);
  } catch {
    // A device gone since it was picked: the default output plays.
  }
}

export interface AcquireResult {
  stream: MediaStream | null;
  /** Why some or all media failed (DOMException name/message), if any. */
  error: string | null;
}

const VIDEO: MediaTrackConstraints = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 25, max: 30 },
};

/**
 * The camera's simulcast encodings, lowest resolution first. The rids follow the
 * server's naming rule (src/sfu/simulcast.rs): `q`, `h`, `f` are a quarter, half and
 * the full resolution; the server picks one per receiver from its bandwidth.
 */
export function cameraEncodings(temporalLayers: boolean): RTCRtpEncodingParameters[] {
  const layers: RTCRtpEncodingParameters[] = [
    { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
    { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
  ];
  // Three temporal layers (full, half, quarter frame rate) let the server also thin a
  // layer's frame rate. `scalabilityMode` is not in every TypeScript DOM version.
  return temporalLayers ? layers.map((l) => ({ ...l, scalabilityMode: 'L1T3' }) as RTCRtpEncodingParameters) : layers;
}

/**
 * Simulcast is on unless the join link says `?simulcast=0` (a diagnosis aid: the page
 * then sends one encoding, as a browser without simulcast would).
 */
export function simulcastEnabled(): boolean {
  return typeof location === 'undefined' || new URLSearchParams(location.search).get('simulcast') !== '0';
}

/** This browser's video send capabilities (null where it cannot say). */
export function videoSendCapabilities(): RTCRtpCapabilities | null {
  return typeof RTCRtpSender !== 'undefined' ? (RTCRtpSender.getCapabilities?.('video') ?? null) : null;
}

/** Whether `caps` (by default this browser's) can send VP8 with three temporal layers (`L1T3`). */
export function canSendL1T3(caps: RTCRtpCapabilities | null = videoSendCapabilities()): boolean {
  return (caps?.codecs ?? []).some(
    (c) => c.mimeType.toLowerCase() === 'video/vp8' && ((c as { scalabilityModes?: string[] }).scalabilityModes ?? []).includes('L1T3'),
  );
}

/** A screen share's frame rate: a document changes seldom; its detail matters. */
export const SCREEN_MAX_FRAMERATE = 5;
/** A screen share's bitrate ceiling (bits/s): room for sharp text at full resolution. */
export const SCREEN_MAX_BITRATE = 1_500_000;

/**
 * How a screen share is sent: ONE encoding at the captured resolution (never scaled
 * down), at most 5 frames/s and about 1.5 Mbit/s, with three temporal layers where
 * `caps` lists `L1T3` for VP8 (the server may then thin its frame rate, never its
 * resolution). Send-only: the connection already receives on its other sections.
 */
export function screenShareInit(caps: RTCRtpCapabilities | null, stream: MediaStream | undefined): RTCRtpTransceiverInit {
  const encoding = {
    scaleResolutionDownBy: 1,
    maxFramerate: SCREEN_MAX_FRAMERATE,
    maxBitrate: SCREEN_MAX_BITRATE,
    ...(canSendL1T3(caps) ? { scalabilityMode: 'L1T3' } : {}),
  } as RTCRtpEncodingParameters;
  return { direction: 'sendonly', streams: stream ? [stream] : [], sendEncodings: [encoding] };
}

/**
 * Adds a screen share (a track whose contentHint is `detail`) to `pc` as one
 * high-resolution, low-frame-rate encoding (`screenShareInit`), falling back as the
 * camera does: without the scalability mode, then a plain track. The encoder is asked
 * to keep the resolution and drop frames when short of bandwidth. Returns the sender.
 */
export function addScreenTrack(pc: RTCPeerConnection, track: MediaStreamTrack, stream: MediaStream): RTCRtpSender {
  const caps = videoSendCapabilities();
  let sender: RTCRtpSender;
  try {
    sender = pc.addTransceiver(track, screenShareInit(caps, stream)).sender;
  } catch {
    try {
      sender = pc.addTransceiver(track, screenShareInit(null, stream)).sender;
    } catch {
      sender = pc.addTrack(track, stream);
    }
  }
  void keepResolution(sender);
  return sender;
}

/** `degradationPreference: 'maintain-resolution'` where the browser takes it. */
async function keepResolution(sender: RTCRtpSender): Promise<void> {
  try {
    const params = sender.getParameters() as RTCRtpSendParameters & { degradationPreference?: string };
    params.degradationPreference = 'maintain-resolution';
    await sender.setParameters(params);
  } catch {
    // Not supported here: the content hint `detail` asks the same of the encoder.
  }
}

/**
 * Adds a local video track to `pc`: a camera as simulcast encodings (with temporal
 * layers where the browser accepts them) when simulcast is enabled, anything else (a
 * screen) and every track without simulcast as one encoding.
 */
export function addVideoTrack(pc: RTCPeerConnection, track: MediaStreamTrack, stream: MediaStream): void {
  if (track.contentHint === 'detail' || track.contentHint === 'text') {
    addScreenTrack(pc, track, stream);
    return;
  }
  if (!simulcastEnabled()) {
    pc.addTrack(track, stream);
    return;
  }
  const init = (temporal: boolean): RTCRtpTransceiverInit => ({
    direction: 'sendrecv',
    streams: [stream],
    sendEncodings: cameraEncodings(temporal),
  });
  try {
    pc.addTransceiver(track, init(canSendL1T3()));
  } catch {
    // A browser that refuses the scalability mode (or lists it but rejects it).
    try {
      pc.addTransceiver(track, init(false));
    } catch {
      pc.addTrack(track, stream);
    }
  }
}

/**
 * Puts RED (RFC 2198, `audio/red`: each Opus frame repeated in the next packet) first
 * in the codec preferences of `pc`'s audio transceivers when this browser offers it,
 * so the server's answer leads with RED and the browser sends it: one lost packet
 * then costs no audio. Opus itself stays next, with its in-band FEC. A browser
 * without RED, or one that refuses the preferences, keeps its defaults.
 */
export function preferRed(pc: RTCPeerConnection): void {
  const caps = typeof RTCRtpReceiver !== 'undefined' ? RTCRtpReceiver.getCapabilities?.('audio') : null;
  const codecs = caps?.codecs ?? [];
  const red = codecs.filter((c) => c.mimeType.toLowerCase() === 'audio/red');
  if (red.length === 0) return;
  const opus = codecs.filter((c) => c.mimeType.toLowerCase() === 'audio/opus');
  const rest = codecs.filter((c) => !red.includes(c) && !opus.includes(c));
  for (const t of pc.getTransceivers()) {
    if (t.receiver.track.kind !== 'audio' || typeof t.setCodecPreferences !== 'function') continue;
    try {
      t.setCodecPreferences([...red, ...opus, ...rest]);
    } catch {
      // Keep the browser's defaults.
    }
  }
}

/**
 * Gets camera + microphone, falling back to whichever of the two works, and to the
 * default devices when a chosen device is gone.
 */
export async function acquireMedia(choice: DeviceChoice): Promise<AcquireResult> {
  const r = await acquireWith(choice);
  if (r.error === null || (!choice.cameraId && !choice.micId)) return r;
  const fallback = await acquireWith({});
  const count = (x: AcquireResult) => x.stream?.getTracks().length ?? 0;
  if (count(fallback) > count(r)) {
    stopStream(r.stream);
    return fallback;
  }
  stopStream(fallback.stream);
  return r;
}

async function acquireWith(choice: DeviceChoice): Promise<AcquireResult> {
  if (!navigator.mediaDevices?.getUserMedia) {
    return { stream: null, error: INSECURE_CONTEXT };
  }
  const video: MediaTrackConstraints = choice.cameraId
    ? { ...VIDEO, deviceId: { exact: choice.cameraId } }
    : VIDEO;
  const audio: MediaTrackConstraints = {
    echoCancellation: true,
    noiseSuppression: true,
    autoGainControl: true,
    ...(choice.micId ? { deviceId: { exact: choice.micId } } : {}),
  };
  let firstError: unknown = null;
  for (const c of [{ audio, video }, { audio, video: false }, { audio: false, video }] as MediaStreamConstraints[]) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(c);
      return { stream, error: c.audio && c.video ? null : describe(firstError) };
    } catch (e) {
      firstError ??= e;
    }
  }
  return { stream: null, error: describe(firstError) };
}

function describe(e: unknown): string | null {
  if (!e) return null;
  if (e instanceof DOMException) return `${e.name}${e.message ? ': ' + e.message : ''}`;
  return String(e);
}

export function stopStream(stream: MediaStream | null): void {
  stream?.getTracks().forEach((t) => t.stop());
}

export interface DeviceLists {
  cameras: MediaDeviceInfo[];
  mics: MediaDeviceInfo[];
  speakers: MediaDeviceInfo[];
}

export async function listDevices(): Promise<DeviceLists> {
  if (!navigator.mediaDevices?.enumerateDevices) return { cameras: [], mics: [], speakers: [] };
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === 'videoinput'),
    mics: all.filter((d) => d.kind === 'audioinput'),
    speakers: all.filter((d) => d.kind === 'audiooutput'),
  };
}

/** Microphone level (0..1) from a WebAudio AnalyserNode, reported once per frame. */
export class LevelMeter {
  private ctx: AudioContext | null = null;
  private raf = 0;

  constructor(stream: MediaStream, onLevel: (level: number) => void) {
    if (stream.getAudioTracks().length === 0 || typeof AudioContext === 'undefined') return;
    const ctx = new AudioContext();
    this.ctx = ctx;
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let smooth = 0;
    const tick = () => {
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
      const rms = Math.sqrt(sum / buf.length);
      // Map roughly -60..0 dBFS onto 0..1.
      const db = 20 * Math.log10(rms + 1e-9);
      const level = Math.min(1, Math.max(0, (db + 60) / 60));
      smooth = Math.max(level, smooth * 0.85);
      onLevel(smooth);
      this.raf = requestAnimationFrame(tick);
    };
    void ctx.resume().catch(() => undefined);
    this.raf = requestAnimationFrame(tick);
  }

  stop(): void {
    cancelAnimationFrame(this.raf);
    void this.ctx?.close().catch(() => undefined);
    this.ctx = null;
  }
}
