// Unit tests of the ICE-restart policy (recovery.ts) with a fake clock, and of the
// uplink grade (reception.ts). `npm run test:unit` compiles src/ to build-unit/ first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IceRecovery } from '../build-unit/recovery.js';
import { emptyOutbound, gradeUplink } from '../build-unit/reception.js';

/** A clock whose timers run only when `advance` passes them. */
function fakeClock() {
  let now = 0;
  let timers = [];
  let nextId = 1;
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.push({ id, at: now + ms, fn });
      return id;
    },
    clearTimeout(id) {
      timers = timers.filter((t) => t.id !== id);
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const t = timers[0];
        if (!t || t.at > end) break;
        timers.shift();
        now = t.at;
        t.fn();
      }
      now = end;
    },
  };
}

function recovery(policy = { graceMs: 2000, retryMs: 4000, maxRestarts: 3 }) {
  const clock = fakeClock();
  const log = [];
  const r = new IceRecovery(
    {
      restart: (n) => log.push(`restart ${n}`),
      giveUp: () => log.push('give up'),
      recovered: (n) => log.push(`back after ${n}`),
    },
    policy,
    clock,
  );
  return { r, clock, log };
}

test('a short disconnection that ICE heals by itself restarts nothing', () => {
  const { r, clock, log } = recovery();
  r.onState('connected');
  r.onState('disconnected');
  clock.advance(1500);
  r.onState('connected');
  clock.advance(60_000);
  assert.deepEqual(log, ['back after 0']);
  assert.equal(r.totalRestarts, 0);
});

test('a disconnection past the grace restarts ICE, then again while it stays down', () => {
  const { r, clock, log } = recovery();
  r.onState('connected');
  r.onState('disconnected');
  clock.advance(2000);
  assert.deepEqual(log, ['restart 1']);
  clock.advance(4000);
  assert.deepEqual(log, ['restart 1', 'restart 2']);
  r.onState('connected');
  clock.advance(60_000);
  assert.deepEqual(log, ['restart 1', 'restart 2', 'back after 2']);
  // A later outage starts counting afresh.
  r.onState('failed');
  assert.deepEqual(log.slice(3), ['restart 1']);
  assert.equal(r.totalRestarts, 3);
});

test('failed restarts at once, and the restarts are bounded: then it gives up, once', () => {
  const { r, clock, log } = recovery();
  r.onState('connected');
  r.onState('failed');
  assert.deepEqual(log, ['restart 1']);
  // Going through disconnected/failed again meanwhile does not add restarts beyond the bound.
  r.onState('disconnected');
  clock.advance(4000);
  r.onState('failed');
  clock.advance(60_000);
  assert.equal(log.filter((l) => l === 'give up').length, 1, log.join(', '));
  assert.equal(log.filter((l) => l.startsWith('restart')).length, 3, log.join(', '));
  assert.equal(r.recovering, false);
  r.onState('failed');
  clock.advance(60_000);
  assert.equal(log.length, 4, 'nothing after giving up');
});

test('stop() cancels a pending restart', () => {
  const { r, clock, log } = recovery();
  r.onState('connected');
  r.onState('disconnected');
  r.stop();
  clock.advance(60_000);
  assert.deepEqual(log, []);
});

test('the uplink grade follows the server-reported loss, round trip and limitation', () => {
  const at = (sent, lost, rtt, limitation = 'none') => ({ packetsSent: sent, packetsLost: lost, roundTripTime: rtt, limitation });
  assert.equal(gradeUplink(emptyOutbound(), at(1000, 5, 0.02)).quality, 'good');
  assert.equal(gradeUplink(at(1000, 5, 0.02), at(2000, 55, 0.02)).quality, 'fair');
  assert.equal(gradeUplink(at(1000, 5, 0.02), at(2000, 205, 0.02)).quality, 'poor');
  assert.equal(gradeUplink(emptyOutbound(), at(1000, 0, 1.5)).quality, 'poor');
  assert.equal(gradeUplink(emptyOutbound(), at(1000, 0, 0.02, 'bandwidth')).quality, 'fair');
  assert.equal(gradeUplink(at(1000, 0, 0.02), at(1000, 0, 0.02)).quality, 'none');
  const g = gradeUplink(at(1000, 0, null), at(1900, 100, null));
  assert.equal(g.lossPercent, 10);
  assert.equal(g.rttMs, null);
});
