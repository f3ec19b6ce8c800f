// Unit tests of the court-workflow logic (no browser): grouping by site, permission-
// gated controls, lifecycle buttons, the state banner, and the client's knowledge of
// every error code / role / lifecycle move declared in signaling/src/protocol/*.rs.
// `npm run test:unit` compiles src/ to build-unit/ first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  awayList,
  consoleSections,
  consultationPartners,
  consultationRequestEntries,
  deliberationWaiting,
  elapsedMs,
  formatDuration,
  pendingConsultation,
  privateRoomBanner,
  roomControls,
  roomNotice,
  roomOf,
  sameRoom,
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
// The protocol module's files (signaling/src/protocol/), read as one text.
const PROTOCOL_DIR = join(REPO, 'signaling', 'src', 'protocol');
const PROTOCOL_RS = readdirSync(PROTOCOL_DIR)
  .filter((f) => f.endsWith('.rs'))
  .sort()
  .map((f) => readFileSync(join(PROTOCOL_DIR, f), 'utf8'))
  .join('\n');
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
  assert.deepEqual(consoleSections(PERMS.presiding_judge), { lobby: true, lifecycle: true, lock: true, muteAll: true, rooms: true, participants: true });
  assert.deepEqual(consoleSections(PERMS.clerk), { lobby: true, lifecycle: false, lock: false, muteAll: false, rooms: false, participants: true });
  // A deployment that gives only the rooms to someone still gives them a console.
  assert.deepEqual(consoleSections(['deliberate']).participants, true);
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

// ---------------------------------------------------------------- private rooms

test('default permissions: who may request, approve and deliberate (config/default.toml)', () => {
  const with_ = (a) => Object.keys(PERMS).filter((r) => PERMS[r].includes(a)).sort();
  assert.deepEqual(with_('request_consultation'), ['defence_counsel', 'defendant']);
  assert.deepEqual(with_('approve_consultation'), ['presiding_judge']);
  assert.deepEqual(with_('deliberate'), ['presiding_judge']);
  // The Rust wire structs the client reads: field names as in protocol.rs.
  for (const [type, fields] of [
    ['RoomInfo', ['id', 'kind', 'members', 'since']],
    ['ConsultationRequest', ['id', 'from', 'with', 'since']],
  ]) {
    const body = new RegExp(`pub struct ${type} \\{([\\s\\S]*?)\\n\\}`).exec(PROTOCOL_RS)[1];
    assert.deepEqual([...body.matchAll(/pub (\w+):/g)].map((m) => m[1]), fields, type);
  }
  for (const f of ['rooms', 'consultation_requests']) assert.match(PROTOCOL_RS, new RegExp(`pub ${f}: Vec<`), f);
  assert.match(PROTOCOL_RS, /pub party: Option<String>/);
});

test('consultation partners: a defendant and a defence counsel of the same party, both in the room', () => {
  const d1 = person('defendant', 'Trại tạm giam số 1', { party: 'Bị cáo 1' });
  const c1 = person('defence_counsel', 'Văn phòng A', { party: 'Bị cáo 1' });
  const c1b = person('defence_counsel', 'Văn phòng B', { party: 'Bị cáo 1' });
  const d2 = person('defendant', 'Trại tạm giam số 1', { party: 'Bị cáo 2' });
  const c2 = person('defence_counsel', 'Văn phòng C', { party: 'Bị cáo 2' });
  const noParty = person('defence_counsel', 'Văn phòng D');
  const judge = person('presiding_judge', 'Phòng xử án 1');
  const victim = person('victim', 'Nhà riêng', { party: 'Bị cáo 1' });
  const everyone = [d1, c1, c1b, d2, c2, noParty, judge, victim];
  const others = (me) => everyone.filter((p) => p !== me);
  const none = { rooms: [] };
  const ids = (list) => list.map((p) => p.id).sort();
  assert.deepEqual(ids(consultationPartners(PERMS.defendant, d1, others(d1), none)), ids([c1, c1b]));
  assert.deepEqual(ids(consultationPartners(PERMS.defence_counsel, c1, others(c1), none)), [d1.id]);
  assert.deepEqual(ids(consultationPartners(PERMS.defence_counsel, c2, others(c2), none)), [d2.id]);
  // No party, or a role that has no partner, or no permission: nobody.
  assert.deepEqual(consultationPartners(PERMS.defence_counsel, noParty, others(noParty), none), []);
  assert.deepEqual(consultationPartners(PERMS.victim, victim, others(victim), none), []);
  assert.deepEqual(consultationPartners(PERMS.presiding_judge, judge, others(judge), none), []);
  assert.deepEqual(consultationPartners([], d1, others(d1), none), []);
  assert.deepEqual(consultationPartners(PERMS.defendant, null, everyone, none), []);
  // The partner must be admitted, connected, and not already in a private room.
  const lobby = { ...c1, admission: 'lobby' };
  const gone = { ...c1b, present: false };
  assert.deepEqual(consultationPartners(PERMS.defendant, d1, [lobby, gone, d2, c2], none), []);
  const busy = { rooms: [{ id: 'r1', kind: 'consultation', members: [c1b.id, 'x'], since: '2026-03-01T09:00:00Z' }] };
  assert.deepEqual(ids(consultationPartners(PERMS.defendant, d1, others(d1), busy)), [c1.id]);
  // Nor may oneself be in the lobby or in a private room.
  assert.deepEqual(consultationPartners(PERMS.defendant, { ...d1, admission: 'lobby' }, others(d1), none), []);
  const mine = { rooms: [{ id: 'r2', kind: 'deliberation', members: [d1.id], since: '2026-03-01T09:00:00Z' }] };
  assert.deepEqual(consultationPartners(PERMS.defendant, d1, others(d1), mine), []);
  // A missing rooms field (older server) counts as none.
  assert.deepEqual(ids(consultationPartners(PERMS.defence_counsel, c1, others(c1), {})), [d1.id]);
});

test('rooms: who is where, who is away and for how long', () => {
  const judge = person('presiding_judge', 'Phòng xử án 1', { name: 'Nguyễn Văn A' });
  const d = person('defendant', 'Trại', { name: 'Trần Văn B', party: 'P' });
  const c = person('defence_counsel', 'VP', { name: 'Lê Thị C', party: 'P' });
  const pros = person('prosecutor', 'VKS');
  const room = { id: 'room-1', kind: 'consultation', members: [d.id, c.id], since: '2026-03-01T09:00:00Z' };
  const st = { state: 'in_session', since: '2026-03-01T08:00:00Z', locked: false, rooms: [room], consultation_requests: [] };
  const people = [judge, d, c, pros];
  assert.equal(roomOf(st, d.id).id, 'room-1');
  assert.equal(roomOf(st, judge.id), null);
  assert.equal(roomOf(null, d.id), null);
  assert.equal(roomOf(st, null), null);
  assert.ok(sameRoom(st, d.id, c.id));
  assert.ok(sameRoom(st, judge.id, pros.id));
  assert.ok(!sameRoom(st, judge.id, d.id));
  assert.ok(!sameRoom(st, c.id, pros.id));

  const now = Date.parse('2026-03-01T09:02:05Z');
  // From the hearing room: both members are away, in court order, 02:05 so far.
  const fromJudge = awayList(st, people, judge.id, now);
  assert.deepEqual(fromJudge.map((a) => a.participant.id), [d.id, c.id]);
  assert.deepEqual(fromJudge.map((a) => [a.kind, a.duration, a.ms]), [['consultation', '02:05', 125000], ['consultation', '02:05', 125000]]);
  // From inside the room: nobody is away (the hearing room is not a private room).
  assert.deepEqual(awayList(st, people, d.id, now), []);
  // From another private room: the first room's members are away.
  const second = { id: 'room-2', kind: 'deliberation', members: [judge.id], since: '2026-03-01T09:01:00Z' };
  const st2 = { ...st, rooms: [room, second] };
  assert.deepEqual(awayList(st2, people, judge.id, now).map((a) => a.participant.id), [d.id, c.id]);
  assert.deepEqual(awayList(st2, people, pros.id, now).map((a) => [a.participant.id, a.kind, a.duration]), [
    [judge.id, 'deliberation', '01:05'],
    [d.id, 'consultation', '02:05'],
    [c.id, 'consultation', '02:05'],
  ]);
  assert.deepEqual(awayList({ rooms: [] }, people, judge.id, now), []);

  assert.equal(formatDuration(0), '00:00');
  assert.equal(formatDuration(59_999), '00:59');
  assert.equal(formatDuration(61_000), '01:01');
  assert.equal(formatDuration(3_600_000 + 62_000), '1:01:02');
  assert.equal(formatDuration(-5), '00:00');
  assert.equal(elapsedMs('not a date', now), 0);
  assert.equal(elapsedMs('2026-03-01T09:03:00Z', now), 0, 'a clock ahead of ours is not negative');
});

test('banners: the members see a private banner, everyone else sees the panel deliberating', () => {
  const judge = person('presiding_judge', 'Phòng xử án 1', { name: 'Nguyễn Văn A' });
  const d = person('defendant', 'Trại', { name: 'Trần Văn B', party: 'P' });
  const c = person('defence_counsel', 'VP', { name: 'Lê Thị C', party: 'P' });
  const people = [judge, d, c];
  const consult = { id: 'r1', kind: 'consultation', members: [d.id, c.id], since: '2026-03-01T09:00:00Z' };
  const now = Date.parse('2026-03-01T09:00:42Z');
  const b = privateRoomBanner({ rooms: [consult] }, people, d.id, now, 'vi');
  assert.equal(b.title, 'Đang trao đổi riêng — không ai khác nghe được');
  assert.equal(b.with, 'Lê Thị C (Người bào chữa)');
  assert.equal(b.kind, 'consultation');
  assert.equal(b.roomId, 'r1');
  assert.equal(b.duration, '00:42');
  assert.equal(privateRoomBanner({ rooms: [consult] }, people, c.id, now, 'en').title, 'Private consultation — nobody else can hear you');
  assert.equal(privateRoomBanner({ rooms: [consult] }, people, judge.id, now, 'vi'), null);
  assert.equal(deliberationWaiting({ rooms: [consult] }, judge.id, now, 'vi'), null, 'a consultation is not a deliberation');

  const delib = { id: 'r2', kind: 'deliberation', members: [judge.id], since: '2026-03-01T09:00:02Z' };
  const panel = privateRoomBanner({ rooms: [delib] }, people, judge.id, now, 'en');
  assert.equal(panel.kind, 'deliberation');
  assert.match(panel.title, /^Deliberation — private/);
  assert.equal(panel.with, '');
  assert.equal(deliberationWaiting({ rooms: [delib] }, judge.id, now, 'vi'), null, 'the panel itself is not waiting');
  const w = deliberationWaiting({ rooms: [delib] }, d.id, now, 'vi');
  assert.deepEqual(w, { roomId: 'r2', text: 'Hội đồng xét xử đang nghị án', duration: '00:40' });
  assert.equal(deliberationWaiting({ rooms: [delib] }, d.id, now, 'en').text, 'The trial panel is deliberating');
  // Someone in the lobby (not even known to be in a room) waits as well.
  assert.ok(deliberationWaiting({ rooms: [delib] }, null, now, 'vi'));
});

test('console: room controls follow permissions and whether the panel deliberates', () => {
  const judge = PERMS.presiding_judge;
  const st = (rooms, state = 'in_session') => ({ state, rooms });
  const delib = { id: 'r', kind: 'deliberation', members: ['j'], since: '2026-03-01T09:00:00Z' };
  assert.deepEqual(roomControls(judge, st([])), { requests: true, recall: true, startDeliberation: true, endDeliberation: false });
  assert.deepEqual(roomControls(judge, st([delib])), { requests: true, recall: true, startDeliberation: false, endDeliberation: true });
  assert.equal(roomControls(judge, st([], 'closed')).startDeliberation, false);
  for (const role of ['clerk', 'judge', 'assessor', 'prosecutor', 'defendant', 'defence_counsel', 'observer']) {
    assert.deepEqual(roomControls(PERMS[role], st([delib])), { requests: false, recall: false, startDeliberation: false, endDeliberation: false }, role);
  }
});

test('consultation requests: pending pairs, the judge list and the notices', () => {
  const d = person('defendant', 'Trại', { name: 'Trần Văn B', party: 'Bị cáo 1' });
  const c = person('defence_counsel', 'VP', { name: 'Lê Thị C', party: 'Bị cáo 1' });
  const other = person('defence_counsel', 'VP2', { name: 'Phạm D', party: 'Bị cáo 2' });
  const r1 = { id: 'q1', from: d.id, with: c.id, since: '2026-03-01T09:05:00Z' };
  const r0 = { id: 'q0', from: other.id, with: 'x', since: '2026-03-01T09:01:00Z' };
  const st = { consultation_requests: [r1, r0] };
  assert.equal(pendingConsultation(st, d.id, c.id).id, 'q1');
  assert.equal(pendingConsultation(st, c.id, d.id).id, 'q1', 'either side asked');
  assert.equal(pendingConsultation(st, d.id, other.id), null);
  assert.equal(pendingConsultation({}, d.id, c.id), null);
  const entries = consultationRequestEntries(st, [d, c, other], 'vi');
  assert.deepEqual(entries.map((e) => e.request.id), ['q0', 'q1'], 'oldest first');
  assert.equal(entries[1].text, 'Trần Văn B (Bị cáo) đề nghị trao đổi riêng với Lê Thị C (Người bào chữa)');
  assert.equal(entries[1].party, 'Bị cáo 1');
  assert.match(consultationRequestEntries(st, [d, c], 'en')[1].text, /^Trần Văn B \(Defendant\) asks for a private consultation with Lê Thị C/);

  assert.match(roomNotice({ refused: true }, 'vi'), /không đồng ý/);
  assert.match(roomNotice({ reason: 'recalled', kind: 'consultation' }, 'en'), /recalled you/);
  assert.match(roomNotice({ reason: 'ended', kind: 'consultation' }, 'en'), /has ended/);
  assert.match(roomNotice({ reason: 'dissolved', kind: 'consultation' }, 'en'), /left the hearing room/);
  assert.match(roomNotice({ reason: 'ended', kind: 'deliberation' }, 'en'), /panel has returned/);
  assert.equal(roomNotice({ reason: 'hearing_closed', kind: 'deliberation' }, 'vi'), MESSAGES.vi['state.closed']);
  const texts = ['refused', 'recalled', 'ended', 'dissolved'].map((r) =>
    r === 'refused' ? roomNotice({ refused: true }, 'vi') : roomNotice({ reason: r, kind: 'consultation' }, 'vi'),
  );
  assert.equal(new Set(texts).size, texts.length, 'each reason has its own text');
  // room_ended's reasons in protocol.rs are the ones the client tells apart.
  const doc = /RoomEnded \{[\s\S]*?\}/.exec(PROTOCOL_RS)[0];
  assert.match(doc, /reason: String/);
  for (const r of ['ended', 'recalled', 'dissolved']) assert.match(PROTOCOL_RS, new RegExp(`\`${r}\``), r);
});
