// Unit tests of health.ts (pure): the matrix layout, alert texts and the suspension's
// pre-filled reason, and whether this participant gets the presiding judge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alertKey, alertText, applyAlert, cellGrade, localLoss, matrixLayout, ownReception, suspendReason } from '../build-unit/health.js';
import { emptyCounters } from '../build-unit/reception.js';

const person = (id, name, role, site) => ({
  id, name, role, site, site_kind: 'remote', present: true, admission: 'admitted',
  audio: true, video: true, muted: false, connection: 'connected',
});
const JUDGE = person('j', 'Nguyễn Văn A', 'presiding_judge', 'Phòng xử án 1');
const DEF = person('d', 'Trần Văn B', 'defendant', 'Trại tạm giam số 1');
const people = [JUDGE, DEF];

const alert = (over) => ({
  participant_id: 'd', publisher: 'j', subscriber: 'd', kind: 'audio', state: 'raised',
  since: '2026-03-01T08:00:00Z', cause: 'reports_stopped', ...over,
});

test('alerts name the site and what is lost, in Vietnamese and English', () => {
  assert.equal(alertText(alert(), people, 'vi'), 'Mất kết nối với Trại tạm giam số 1: Trại tạm giam số 1 không nghe được chủ tọa');
  assert.equal(
    alertText(alert({ publisher: 'd', subscriber: 'j', kind: 'video' }), people, 'vi'),
    'Mất kết nối với Trại tạm giam số 1: chủ tọa không thấy Trại tạm giam số 1',
  );
  assert.equal(alertText(alert({ state: 'cleared' }), people, 'en'), 'Contact with Trại tạm giam số 1 restored');
  assert.equal(suspendReason(alert(), people, 'vi'), 'Mất kết nối với Trại tạm giam số 1');
  // A participant without a site is named by name.
  assert.equal(suspendReason(alert(), [JUDGE, { ...DEF, site: ' ' }], 'vi'), 'Mất kết nối với Trần Văn B');
});

test('raised alerts are kept per pair and kind until cleared', () => {
  const m = new Map();
  applyAlert(m, alert());
  applyAlert(m, alert({ kind: 'video' }));
  assert.equal(m.size, 2);
  applyAlert(m, alert({ state: 'cleared' }));
  assert.deepEqual([...m.keys()], [alertKey(alert({ kind: 'video' }))]);
});

test('the matrix lays out publishers by rows and subscribers by columns in court order', () => {
  const cells = [
    { publisher: 'd', subscriber: 'j', audio: 'ok', video: 'lost' },
    { publisher: 'j', subscriber: 'd', audio: 'degraded' },
  ];
  const m = matrixLayout(cells, ['j', 'd']);
  assert.deepEqual(m.publishers, ['j', 'd']);
  assert.deepEqual(m.subscribers, ['j', 'd']);
  assert.equal(cellGrade(m.cell('d', 'j'), 'video'), 'lost');
  assert.equal(cellGrade(m.cell('j', 'd'), 'video'), 'none');
  assert.equal(cellGrade(m.cell('j', 'j'), 'audio'), 'none');
});

test('own reception of the judge: from the server cells or the page counters', () => {
  const cells = [{ publisher: 'j', subscriber: 'd', audio: 'lost', video: 'ok' }];
  assert.deepEqual(ownReception(cells, 'd', 'j'), { cannotHear: true, cannotSee: false });
  assert.deepEqual(ownReception(cells, 'x', 'j'), { cannotHear: false, cannotSee: false });
  const prev = emptyCounters();
  const cur = emptyCounters();
  cur.audio.packetsReceived = 50;
  assert.deepEqual(localLoss(prev, cur, { audio: true, video: true }), { cannotHear: false, cannotSee: true });
  // Nothing expected (camera off, court mute) is not a loss.
  assert.deepEqual(localLoss(prev, cur, { audio: false, video: false }), { cannotHear: false, cannotSee: false });
});
