// The pre-join self-test panel: a speaker test (a tone through the picked output;
// the participant confirms they heard it) and the network test against this server
// (selftestRun.ts), with its verdict and advice. Part of the pre-join screen.
import { h } from '../dom';
import { errorText, t, type MessageKey } from '../i18n';
import { signalingUrl } from '../jwt';
import { listDevices, useSpeaker, type DeviceChoice } from '../media';
import { judge, percent } from '../selftest';
import { NetworkTestError, runNetworkTest } from '../selftestRun';
import { state } from '../state';
import { bind, relabel, tr } from '../ui';

/** How long the test tone plays. */
const TONE_MS = 1500;

/** Plays a 440 Hz tone (with a short fade) through the output `speakerId`. */
async function playTone(speakerId: string | undefined): Promise<void> {
  const ctx = new AudioContext();
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.frequency.value = 440;
  gain.gain.setValueAtTime(0, ctx.currentTime);
  gain.gain.linearRampToValueAtTime(0.3, ctx.currentTime + 0.05);
  gain.gain.setValueAtTime(0.3, ctx.currentTime + TONE_MS / 1000 - 0.1);
  gain.gain.linearRampToValueAtTime(0, ctx.currentTime + TONE_MS / 1000);
  // Through an <audio> element, which can be sent to a chosen output (setSinkId).
  const dest = ctx.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  const el = new Audio();
  el.srcObject = dest.stream;
  await useSpeaker(el, speakerId);
  await ctx.resume().catch(() => undefined);
  osc.start();
  // Not awaited: the tone lasts TONE_MS whatever the element reports.
  void el.play().catch(() => undefined);
  await new Promise((r) => setTimeout(r, TONE_MS));
  osc.stop();
  el.srcObject = null;
  await ctx.close().catch(() => undefined);
}

export function selfTestPanel(saveChoice: (c: DeviceChoice) => void): HTMLElement {
  // ---------------------------------------------------------------- speaker
  const speakerSel = h('select', { testid: 'speaker-select' });
  const speakerBtn = h('button', { class: 'btn', testid: 'speaker-test', attrs: { type: 'button' } });
  tr(speakerBtn, 'selftest.speaker.play');
  const heard = h('button', { class: 'btn primary', testid: 'speaker-heard', attrs: { type: 'button' } });
  tr(heard, 'selftest.speaker.heard');
  const notHeard = h('button', { class: 'btn', testid: 'speaker-not-heard', attrs: { type: 'button' } });
  tr(notHeard, 'selftest.speaker.notHeard');
  const confirm = h('div', { class: 'selftest-confirm' }, heard, notHeard);
  confirm.hidden = true;
  const speakerResult = h('p', { class: 'selftest-result', testid: 'speaker-result', attrs: { role: 'status' } });
  let speakerKey: MessageKey | null = null;
  bind(() => (speakerResult.textContent = speakerKey ? t(speakerKey) : ''));
  const setSpeaker = (state_: 'playing' | 'heard' | 'not_heard', key: MessageKey | null) => {
    speakerResult.dataset.state = state_;
    speakerKey = key;
    speakerResult.textContent = key ? t(key) : '';
  };
  speakerBtn.addEventListener('click', () => {
    speakerBtn.disabled = true;
    setSpeaker('playing', 'selftest.speaker.playing');
    void playTone(speakerSel.value || undefined).finally(() => {
      speakerBtn.disabled = false;
      confirm.hidden = false;
      setSpeaker('playing', 'selftest.speaker.question');
    });
  });
  heard.addEventListener('click', () => {
    confirm.hidden = true;
    setSpeaker('heard', 'selftest.speaker.ok');
  });
  notHeard.addEventListener('click', () => {
    confirm.hidden = true;
    setSpeaker('not_heard', 'selftest.speaker.advice');
  });
  speakerSel.addEventListener('change', () => {
    state.choice = { ...state.choice, speakerId: speakerSel.value || undefined };
    saveChoice(state.choice);
  });
  void listDevices().then(({ speakers }) => {
    bind(() => {
      speakerSel.replaceChildren(
        ...speakers.map((d, i) =>
          h('option', {
            text: d.label || (d.deviceId === 'default' || !d.deviceId ? t('prejoin.defaultDevice') : t('prejoin.device', { n: i + 1 })),
            attrs: { value: d.deviceId },
          }),
        ),
      );
      if (state.choice.speakerId) speakerSel.value = state.choice.speakerId;
      // Browsers that cannot pick an output play through the system's.
      speakerSel.disabled = speakers.length === 0 || typeof (HTMLMediaElement.prototype as { setSinkId?: unknown }).setSinkId !== 'function';
    });
  });

  // ---------------------------------------------------------------- network
  const netBtn = h('button', { class: 'btn primary', testid: 'network-test', attrs: { type: 'button' } });
  tr(netBtn, 'selftest.network.start');
  const progress = h('progress', { testid: 'network-progress', attrs: { max: '100', value: '0' } });
  progress.hidden = true;
  const loopView = h('video', {
    class: 'selftest-loop',
    testid: 'network-loop',
    attrs: { autoplay: '', playsinline: '', muted: '' },
  });
  loopView.muted = true;
  loopView.hidden = true;
  const verdictEl = h('strong', { testid: 'network-verdict' });
  const rtt = h('dd', { testid: 'network-rtt' });
  const loss = h('dd', { testid: 'network-loss' });
  const bitrate = h('dd', { testid: 'network-bitrate' });
  const advice = h('p', { testid: 'network-advice' });
  const reasons = h('ul', { class: 'selftest-reasons', testid: 'network-reasons' });
  const figures = h(
    'dl',
    { class: 'info selftest-figures' },
    tr(h('dt'), 'selftest.network.rtt'),
    rtt,
    tr(h('dt'), 'selftest.network.loss'),
    loss,
    tr(h('dt'), 'selftest.network.bitrate'),
    bitrate,
  );
  const result = h('div', { class: 'selftest-net', testid: 'network-result', attrs: { role: 'status' } }, verdictEl, figures, advice, reasons);
  result.hidden = true;
  const netError = h('p', { class: 'error', testid: 'network-error', attrs: { role: 'alert' } });
  netError.hidden = true;

  netBtn.addEventListener('click', () => {
    netBtn.disabled = true;
    result.hidden = true;
    netError.hidden = true;
    progress.hidden = false;
    progress.value = 0;
    loopView.hidden = false;
    void runNetworkTest({
      url: signalingUrl(location.protocol, location.host, state.hearingId),
      token: state.token,
      camera: state.localStream,
      loopView,
      onProgress: (f) => (progress.value = Math.round(f * 100)),
    })
      .then(({ measurement: m }) => {
        const j = judge(m);
        result.dataset.verdict = j.verdict;
        bind(() => {
          verdictEl.textContent = t(`selftest.verdict.${j.verdict}` as MessageKey);
          rtt.textContent = m.rttMs === null ? '—' : t('selftest.network.ms', { n: m.rttMs });
          loss.textContent = t('selftest.network.lossValue', { up: percent(m.upLoss), down: percent(m.downLoss) });
          bitrate.textContent =
            t('selftest.network.kbps', { n: m.kbps }) +
            (m.estimateKbps === null ? '' : ` (${t('selftest.network.estimate', { n: m.estimateKbps })})`);
          advice.textContent = t(j.advice);
          reasons.replaceChildren(...j.reasons.map((k) => h('li', { text: t(k) })));
        });
        result.hidden = false;
      })
      .catch((e: unknown) => {
        const code = e instanceof NetworkTestError ? e.code : 'internal';
        const message = e instanceof Error ? e.message : String(e);
        netError.dataset.code = code;
        bind(() => {
          netError.textContent =
            code === 'closed' || code === 'timeout' || code === 'unknown_message_type'
              ? t(`selftest.network.${code === 'unknown_message_type' ? 'unavailable' : code}` as MessageKey)
              : errorText(code, message);
        });
        netError.hidden = false;
      })
      .finally(() => {
        netBtn.disabled = false;
        progress.hidden = true;
        loopView.hidden = true;
        relabel();
      });
  });

  return h(
    'section',
    { class: 'selftest', testid: 'selftest' },
    tr(h('h2'), 'selftest.heading'),
    h(
      'div',
      { class: 'selftest-part', testid: 'speaker' },
      tr(h('h3'), 'selftest.speaker.heading'),
      h('label', { class: 'picker' }, tr(h('span'), 'selftest.speaker.output'), speakerSel),
      speakerBtn,
      confirm,
      speakerResult,
    ),
    h(
      'div',
      { class: 'selftest-part', testid: 'network' },
      tr(h('h3'), 'selftest.network.heading'),
      tr(h('p', { class: 'muted' }), 'selftest.network.explain'),
      netBtn,
      progress,
      loopView,
      result,
      netError,
    ),
  );
}
