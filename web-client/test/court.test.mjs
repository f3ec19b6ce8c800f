// Unit tests of the court-workflow logic (no browser): grouping by site, permission-
// gated controls, lifecycle buttons, the state banner, and the client's knowledge of
// every error code / role / lifecycle move declared in signaling/src/protocol.rs.
// `npm run test:unit` compiles src/ to build-unit/ first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  consoleSections,
  groupBySite,
  lifecycleControls,
  lifecycleNeeds,
  lifecycleTarget,
  lobbyWaiting,
  participantControls,
  stateBanner,
  waitingSince,
} from '../build-unit/court.js';
import { MESSAGES, LANGS, errorText } from '../build-unit/i18n.js';
import {
  ALL_ACTIONS,
  ALL_ERROR_CODES,
  ALL_HEARING_STATES,
  ALL_ROLES,
  FINAL_CODES,
  NON_RETRYABLE_CODES,
  canMoveTo,
  mediaFlows,
} from '../build-unit/protocol.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PROTOCOL_RS = readFileSync(join(REPO, 'signaling', 'src', 'protocol.rs'), 'utf8');
const DEFAULT_TOML = readFileSync(join(REPO, 'config', 'default.toml'), 'utf8');

const snake = (camel) => camel.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();

/** `pub const ALL: [Type; N] = [ Type::A, ... ];` of `type` in protocol.rs, as wire names. */
function rustAll(type) {
  const m = new RegExp(`pub const ALL: \\[${type}; \\d+\\] = \\[([^\\]]*)\\]`).exec(PROTOCOL_RS);
  assert.ok(m, `protocol.rs declares ${type}::ALL`);
  return [...m[1].matchAll(new RegExp(`${type}::(\\w+)`, 'g'))].map((x) => snake(x[1]));
}

/** The `[permissions]` table of config/default.toml: role → actions. */
function defaultPermissions() {
  const section = DEFAULT_TOML.split(/^\[permissions\]$/m)[1].split(/^\[/m)[0];
  const out = {};
  for (const m of section.matchAll(/^(\w+) = \[([^\]]*)\]/gm)) {
    out[m[1]] = [...m[2].matchAll(/"(\w+)"/g)].map((x) => x[1]);
  }
  return out;
}
const PERMS = defaultPermissions();

let seq = 0;
function person(role, site, extra = {}) {
  seq++;
  return {
    id: `00000000-0000-0000-0000-${String(seq).padStart(12, '0')}`,
    name: `Người ${seq}`,
    role,
    site,
    site_kind: 'remote',
    present: true,
    admission: 'admitted',
    audio: true,
    video: true,
    muted: false,
    connection: 'connected',
    ...extra,
  };
}

test('protocol.rs and the client agree on error codes, roles, actions, states', () => {
  assert.deepEqual([...ALL_ERROR_CODES], rustAll('ErrorCode'));
  assert.deepEqual([...ALL_ROLES], rustAll('Role'));
  assert.deepEqual([...ALL_ACTIONS], rustAll('Action'));
  assert.deepEqual([...ALL_HEARING_STATES], rustAll('HearingState'));
});

test('every error code in protocol.rs has its own Vietnamese and English message', () => {
  for (const code of rustAll('ErrorCode')) {
    for (const lang of LANGS) {
      assert.ok(`error.${code}` in MESSAGES[lang], `${lang}: error.${code}`);
      const text = errorText(code, 'server text', lang);
      assert.ok(text.length > 10, `${lang}: ${code}`);
      // Not the generic "An error occurred: <server text>" fallback.
      assert.notEqual(text, errorText('no_such_code', 'server text', lang), `${lang}: ${code}`);
    }
    assert.notEqual(MESSAGES.vi[`error.${code}`], MESSAGES.en[`error.${code}`], code);
  }
});

test('final codes are fatal in protocol.rs, never retried, and have a final-screen heading', () => {
  const fatalBlock = /pub fn is_fatal\(self\) -> bool \{([\s\S]*?)\n    \}/.exec(PROTOCOL_RS)[1];
  const fatal = [...fatalBlock.matchAll(/ErrorCode::(\w+)/g)].map((x) => snake(x[1]));
  assert.deepEqual([...FINAL_CODES].sort(), ['admission_denied', 'hearing_closed', 'link_revoked', 'removed']);
  for (const c of FINAL_CODES) {
    assert.ok(fatal.includes(c), `${c} is fatal on the server`);
    assert.ok(NON_RETRYABLE_CODES.includes(c), `${c} is not retried`);
    for (const lang of LANGS) assert.ok(`final.${c}` in MESSAGES[lang], `${lang}: final.${c}`);
  }
});

test('every role, site kind and state has a label in both languages', () => {
  for (const lang of LANGS) {
    for (const r of rustAll('Role')) assert.ok(`role.${r}` in MESSAGES[lang], `${lang} role ${r}`);
    for (const k of rustAll('SiteKind')) assert.ok(`site.${k}` in MESSAGES[lang], `${lang} site ${k}`);
    for (const s of rustAll('HearingState')) assert.ok(`state.${s}` in MESSAGES[lang], `${lang} state ${s}`);
    for (const c of ['offline', 'connecting', 'connected', 'unstable']) assert.ok(`conn.${c}` in MESSAGES[lang]);
  }
});

test('lifecycle moves match HearingState::can_move_to (from the Rust test table)', () => {
  const table = /fn lifecycle_moves\(\)[\s\S]*?let allowed = \[([\s\S]*?)\];/.exec(PROTOCOL_RS)[1];
  const allowed = new Set([...table.matchAll(/\((\w+), (\w+)\)/g)].map((m) => `${snake(m[1])}>${snake(m[2])}`));
  assert.equal(allowed.size, 12);
  for (const from of ALL_HEARING_STATES) {
    for (const to of ALL_HEARING_STATES) {
      assert.equal(canMoveTo(from, to), allowed.has(`${from}>${to}`), `${from} -> ${to}`);
    }
  }
  assert.deepEqual(ALL_HEARING_STATES.filter(mediaFlows), ['open', 'in_session', 'suspended']);
});

test('lifecycle buttons: only the moves the state allows, only with control_lifecycle', () => {
  const judge = PERMS.presiding_judge;
  assert.deepEqual(lifecycleControls(judge, 'scheduled'), ['open', 'adjourn']);
  assert.deepEqual(lifecycleControls(judge, 'open'), ['start', 'adjourn', 'close']);
  assert.deepEqual(lifecycleControls(judge, 'in_session'), ['suspend', 'adjourn', 'close']);
  assert.deepEqual(lifecycleControls(judge, 'suspended'), ['resume', 'adjourn', 'close']);
  assert.deepEqual(lifecycleControls(judge, 'adjourned'), ['open']);
  assert.deepEqual(lifecycleControls(judge, 'closed'), []);
  for (const state of ALL_HEARING_STATES) {
    for (const c of lifecycleControls(judge, state)) assert.ok(canMoveTo(state, lifecycleTarget(c)), `${state} ${c}`);
    for (const role of ['clerk', 'judge', 'defendant', 'observer']) assert.deepEqual(lifecycleControls(PERMS[role], state), [], role);
  }
  assert.deepEqual(lifecycleNeeds('suspend'), { reason: true, date: false, confirm: false });
  assert.deepEqual(lifecycleNeeds('adjourn'), { reason: true, date: true, confirm: false });
  assert.deepEqual(lifecycleNeeds('close'), { reason: false, date: false, confirm: true });
  assert.deepEqual(lifecycleNeeds('resume'), { reason: false, date: false, confirm: false });
});

test('console sections follow the default permission table', () => {
  assert.deepEqual(consoleSections(PERMS.presiding_judge), { lobby: true, lifecycle: true, lock: true, muteAll: true, participants: true });
  assert.deepEqual(consoleSections(PERMS.clerk), { lobby: true, lifecycle: false, lock: false, muteAll: false, participants: true });
  for (const role of ['judge', 'assessor', 'prosecutor', 'defendant', 'defence_counsel', 'witness', 'observer']) {
    assert.equal(consoleSections(PERMS[role]).participants, false, role);
  }
});

test('participant controls are gated by permissions and admission', () => {
  const judge = PERMS.presiding_judge;
  const clerk = PERMS.clerk;
  const self = person('presiding_judge', 'Phòng xử án 1');
  const counsel = person('defence_counsel', 'Văn phòng luật sư', { admission: 'lobby' });
  const witness = person('witness', 'Nhà riêng', { admission: 'lobby' });
  assert.deepEqual(participantControls(judge, counsel, self.id), ['admit', 'deny', 'remove']);
  assert.deepEqual(participantControls(judge, witness, self.id), ['call-in', 'deny', 'remove']);
  assert.deepEqual(participantControls(clerk, counsel, self.id), ['admit', 'deny']);
  assert.deepEqual(participantControls(clerk, witness, self.id), ['call-in', 'deny']);
  const inRoom = { ...counsel, admission: 'admitted' };
  assert.deepEqual(participantControls(judge, inRoom, self.id), ['mute', 'spotlight', 'remove']);
  assert.deepEqual(participantControls(judge, { ...inRoom, muted: true }, self.id), ['request-unmute', 'spotlight', 'remove']);
  assert.deepEqual(participantControls(judge, { ...witness, admission: 'admitted' }, self.id), ['mute', 'spotlight', 'dismiss', 'remove']);
  assert.deepEqual(participantControls(clerk, { ...witness, admission: 'admitted' }, self.id), ['dismiss']);
  assert.deepEqual(participantControls(clerk, inRoom, self.id), []);
  // Observers publish nothing: nothing to mute.
  assert.deepEqual(participantControls(judge, person('observer', 'x'), self.id), ['spotlight', 'remove']);
  assert.deepEqual(participantControls(judge, { ...inRoom, admission: 'removed' }, self.id), []);
  // On oneself: only the floor.
  assert.deepEqual(participantControls(judge, self, self.id), ['spotlight']);
  for (const role of ['judge', 'defendant', 'witness', 'observer']) {
    assert.deepEqual(participantControls(PERMS[role], counsel, null), [], role);
    assert.deepEqual(participantControls(PERMS[role], inRoom, null), [], role);
  }
});

test('grouping by site: courtroom first, then kind, then rank; members in court order', () => {
  const list = [
    person('defence_counsel', 'Văn phòng luật sư X', { site_kind: 'office' }),
    person('detention_officer', 'Trại tạm giam số 1', { site_kind: 'detention' }),
    person('witness', 'Nhà riêng', { site_kind: 'remote' }),
    person('clerk', 'Phòng xử án 1', { site_kind: 'central' }),
    person('defendant', 'Trại tạm giam số 1', { site_kind: 'detention' }),
    person('presiding_judge', 'Phòng xử án 1', { site_kind: 'central' }),
    person('observer', 'Tòa án tỉnh B', { site_kind: 'court' }),
    person('prosecutor', 'Viện kiểm sát', { site_kind: 'remote' }),
  ];
  const groups = groupBySite(list);
  assert.deepEqual(
    groups.map((g) => [g.site, g.kind]),
    [
      ['Phòng xử án 1', 'central'],
      ['Trại tạm giam số 1', 'detention'],
      ['Văn phòng luật sư X', 'office'],
      ['Tòa án tỉnh B', 'court'],
      ['Viện kiểm sát', 'remote'],
      ['Nhà riêng', 'remote'],
    ],
  );
  assert.deepEqual(groups[0].members.map((p) => p.role), ['presiding_judge', 'clerk']);
  assert.deepEqual(groups[1].members.map((p) => p.role), ['defendant', 'detention_officer']);
  assert.equal(groups.reduce((n, g) => n + g.members.length, 0), list.length);
  assert.deepEqual(groupBySite([]), []);
});

test('lobby: present waiting participants, longest-waiting first', () => {
  const a = person('defendant', 's', { admission: 'lobby', lobby_since: '2026-03-01T09:05:00Z' });
  const b = person('defence_counsel', 's', { admission: 'lobby', lobby_since: '2026-03-01T09:01:00Z' });
  const gone = person('victim', 's', { admission: 'lobby', present: false, lobby_since: '2026-03-01T08:00:00Z' });
  const inRoom = person('judge', 's');
  assert.deepEqual(lobbyWaiting([a, gone, inRoom, b]).map((p) => p.id), [b.id, a.id]);
  const now = Date.parse('2026-03-01T09:17:30Z');
  assert.match(waitingSince('2026-03-01T09:05:00Z', now, 'vi'), /\(12 phút\)$/);
  assert.match(waitingSince('2026-03-01T09:05:00Z', now, 'en'), /\(12 min\)$/);
  assert.equal(waitingSince(undefined, now, 'en'), '');
});

test('state banner: state, reason, floor, details, in both languages', () => {
  const judge = person('presiding_judge', 'Phòng xử án 1', { name: 'Nguyễn Văn A' });
  const witness = person('witness', 'Nhà riêng', { name: 'Phạm Thị D' });
  const since = '2026-03-01T09:00:00Z';
  const suspended = stateBanner(
    { state: 'suspended', reason: 'mất kết nối với trại tạm giam', since, locked: false },
    {},
    [judge],
    'vi',
  );
  assert.equal(suspended.text, 'Phiên tòa tạm ngừng: mất kết nối với trại tạm giam');
  assert.equal(suspended.reason, 'mất kết nối với trại tạm giam');
  assert.equal(suspended.floor, null);
  const en = stateBanner({ state: 'in_session', since, locked: true, spotlight: witness.id }, {}, [judge, witness], 'en');
  assert.equal(en.text, 'The hearing is in session');
  assert.equal(en.floor, 'Phạm Thị D (Witness)');
  assert.ok(en.details.some((d) => /locked/.test(d)));
  const adj = stateBanner(
    { state: 'adjourned', reason: 'vắng bị hại', since, locked: false, adjourned_to: '2026-04-02T01:30:00Z' },
    {},
    [],
    'vi',
  );
  assert.equal(adj.text, 'Phiên tòa hoãn: vắng bị hại');
  assert.ok(adj.details.some((d) => d.startsWith('Mở lại vào ') && /2026/.test(d)), adj.details.join('|'));
  assert.ok(adj.details.some((d) => /chờ/.test(d)));
  const sched = stateBanner({ state: 'scheduled', since, locked: false }, { scheduled_at: '2026-03-01T02:00:00Z' }, [], 'en');
  assert.ok(sched.details.some((d) => d.startsWith('Scheduled to start:')));
  // A spotlight on someone unknown, or while no media flows, names nobody.
  assert.equal(stateBanner({ state: 'in_session', since, locked: false, spotlight: 'nobody' }, {}, [judge], 'vi').floor, null);
  assert.equal(stateBanner({ state: 'adjourned', since, locked: false, spotlight: judge.id }, {}, [judge], 'vi').floor, null);
  for (const state of ALL_HEARING_STATES) {
    for (const lang of LANGS) {
      const b = stateBanner({ state, since, locked: false }, {}, [], lang);
      assert.equal(b.text, MESSAGES[lang][`state.${state}`]);
    }
  }
});
