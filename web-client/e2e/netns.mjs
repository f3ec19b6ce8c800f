// The impaired-link harness of the browser e2e tests (issue 13): a "site" network
// namespace joined to the test's namespace by a veth pair, a Chromium whose network is
// that namespace, and impairments (loss, bandwidth cap, UDP-blocking firewall, cut) put
// on the receiving end of each direction.
//
// Why it is shaped so:
// * This kernel has no netem. What works: nftables netdev `ingress` rules (random drop,
//   UDP drop, drop-all) and a tbf qdisc on an ifb device fed by `fwd to` from the
//   receiving veth end. Never a tbf on the sender's egress: that hands the sender
//   ENOBUFS, which a real bottleneck does not.
// * The network rule: only 127.0.0.0/8. The veth ends carry 127.0.30.1/32 (server side,
//   in the test's namespace) and 127.0.30.2/32 (site side). For loopback-range
//   addresses to cross a veth, each end needs `route_localnet`, `accept_local` and no
//   `rp_filter`, a static neighbour entry, and a /32 route to the other end *in the
//   local routing table*: `lo`'s 127.0.0.1/8 puts all of 127/8 there as local, and a
//   more specific route in that table wins without touching `lo`.
// * The site namespace is held by an `unshare --net cat` process reading a pipe from
//   this process, not named under /run/netns: when the test process dies however it
//   dies, the pipe closes, `cat` exits and the namespace goes with its last process;
//   `stop()` also tears everything down explicitly.
// * Chromium runs in the namespace through a wrapper script (`nsenter --net=… chromium
//   "$@"`) given to playwright-core as the executable; nsenter execs, so Playwright's
//   pipe to the browser and its process handling stay as they are.
//
// Usage: `const site = await createSite('network')` before `startHarness(tag, { host:
// site.serverAddr })`; `site.launchBrowser()`; `site.impair({...})`; `site.stop()` in
// `after` (it is idempotent and never throws).
import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, sleep } from './harness.mjs';

const execFileP = promisify(execFile);

/** The interface names: the server end (test namespace) and the site end. */
const SERVER_VETH = 'ohsrv0';
const SITE_VETH = 'ohsite0';
/** ifb devices, one per receiving side, that carry the bandwidth cap's tbf. */
const SERVER_IFB = 'ohifbsrv';
const SITE_IFB = 'ohifbsite';
/** The nftables table (netdev family) of the impairments, one per namespace. */
const TABLE = 'openhearing_impair';
const COMMAND_TIMEOUT_MS = 10_000;
const NS_READY_TIMEOUT_MS = 5_000;

/** Runs a command (bounded), failing with its stderr. */
async function run(cmd, args) {
  try {
    return (await execFileP(cmd, args, { timeout: COMMAND_TIMEOUT_MS })).stdout;
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

/** Like `run`, for teardown: failures are collected, never thrown. */
async function tryRun(errors, cmd, args) {
  try {
    await run(cmd, args);
  } catch (e) {
    errors.push(e.message);
  }
}

/** Feeds an nftables script to `nft -f -` in the namespace `exec` runs in. */
function nftScript(execArgs, script) {
  return new Promise((resolve, reject) => {
    const [cmd, ...pre] = [...execArgs, 'nft', '-f', '-'];
    const child = execFile(cmd, pre, { timeout: COMMAND_TIMEOUT_MS }, (err, _out, stderr) => {
      if (err) reject(new Error(`nft -f - failed: ${(stderr || err.message).trim()}\n${script}`));
      else resolve();
    });
    child.stdin.end(script);
  });
}

/**
 * The ingress rules of one receiving end, in order: drops first, then the cap. Each
 * counts what it matches, under a comment naming it (read back by `dropped()`).
 */
function ingressRules({ cut, blockUdp, lossPercent, kbit, ifb }) {
  const rules = [];
  if (cut) rules.push('counter drop comment "cut"');
  if (blockUdp) rules.push('ip protocol udp counter drop comment "udp"');
  if (lossPercent > 0) rules.push(`numgen random mod 100 < ${lossPercent} counter drop comment "loss"`);
  // A packet back from the ifb is seen again at this hook: the mark lets it pass.
  if (kbit > 0) rules.push(`meta mark != 0x4f48 meta mark set 0x4f48 counter fwd to "${ifb}" comment "cap"`);
  return rules;
}

/** `{ <comment>: packets }` of the impairment table's rules, from `nft -j` output. */
function ruleCounters(json) {
  const out = {};
  for (const item of JSON.parse(json).nftables ?? []) {
    const rule = item.rule;
    if (!rule?.comment) continue;
    const counter = rule.expr.find((e) => e.counter)?.counter;
    out[rule.comment] = counter?.packets ?? 0;
  }
  return out;
}

function checkPercent(name, v) {
  if (!Number.isInteger(v) || v < 0 || v > 100) throw new Error(`${name} must be an integer 0-100, not ${v}`);
}

/**
 * Creates the site namespace and the veth pair. Must be called from inside the e2e
 * namespace (run.sh), as root. Returns the site; see the module header.
 */
export async function createSite(tag, { serverAddr = '127.0.30.1', siteAddr = '127.0.30.2' } = {}) {
  const tmp = mkdtempSync(join(tmpdir(), `openhearing-site-${tag}-`));
  const holder = spawn('unshare', ['--net', '--', 'cat'], { stdio: ['pipe', 'ignore', 'inherit'] });
  const nsPath = `/proc/${holder.pid}/ns/net`;
  const siteExec = ['nsenter', `--net=${nsPath}`, '--'];
  const inSite = (cmd, args) => run(siteExec[0], [...siteExec.slice(1), cmd, ...args]);
  let browser = null;
  let stopped = false;
  /** The test namespace's `all.rp_filter` before we set it to 0 (null: untouched). */
  let rpFilterAll = null;

  const site = {
    serverAddr,
    siteAddr,
    nsPath,
    /** What `impair` last applied (for the test's messages). */
    impairment: null,

    /** Starts Chromium with its network in the site namespace. */
    async launchBrowser() {
      const wrapper = join(tmp, 'chromium-in-site.sh');
      writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=${nsPath} -- ${CHROMIUM} "$@"\n`);
      chmodSync(wrapper, 0o755);
      browser = await chromium.launch({ executablePath: wrapper, args: CHROMIUM_ARGS, timeout: 30_000 });
      return browser;
    },

    /**
     * Impairs the link, replacing any earlier impairment. `lossPercent`: random drop
     * both ways; `downlinkKbit` / `uplinkKbit`: a bandwidth cap on what the site
     * receives / sends; `blockUdp`: a firewall dropping all UDP both ways; `cut`: drop
     * everything both ways.
     */
    async impair({ lossPercent = 0, downlinkKbit = 0, uplinkKbit = 0, blockUdp = false, cut = false } = {}) {
      checkPercent('lossPercent', lossPercent);
      for (const [k, v] of Object.entries({ downlinkKbit, uplinkKbit })) {
        if (!Number.isInteger(v) || v < 0) throw new Error(`${k} must be a non-negative integer, not ${v}`);
      }
      await site.restore();
      const sides = [
        { exec: [], dev: SERVER_VETH, ifb: SERVER_IFB, kbit: uplinkKbit },
        { exec: siteExec, dev: SITE_VETH, ifb: SITE_IFB, kbit: downlinkKbit },
      ];
      for (const s of sides) {
        const rules = ingressRules({ cut, blockUdp, lossPercent, kbit: s.kbit, ifb: s.ifb });
        if (rules.length === 0) continue;
        if (s.kbit > 0) {
          const tc = ['qdisc', 'replace', 'dev', s.ifb, 'root', 'tbf', 'rate', `${s.kbit}kbit`, 'burst', '10kb', 'latency', '200ms'];
          if (s.exec.length) await inSite('tc', tc);
          else await run('tc', tc);
        }
        const script =
          `table netdev ${TABLE} {\n  chain in {\n    type filter hook ingress device "${s.dev}" priority 0;\n` +
          rules.map((r) => `    ${r}\n`).join('') +
          '  }\n}\n';
        await nftScript(s.exec, script);
      }
      site.impairment = { lossPercent, downlinkKbit, uplinkKbit, blockUdp, cut };
    },

    /**
     * Packets each impairment rule matched so far, per receiving end: `{ site: { udp,
     * loss, cut, cap }, server: {...} }` (only the rules in force).
     */
    async dropped() {
      const out = {};
      for (const [side, exec] of [['server', []], ['site', siteExec]]) {
        const cmd = [...exec, 'nft', '-j', 'list', 'table', 'netdev', TABLE];
        out[side] = await run(cmd[0], cmd.slice(1)).then(ruleCounters, () => ({}));
      }
      return out;
    },

    /** Removes every impairment (tables and caps); the link is clean again. */
    async restore() {
      const errors = [];
      for (const exec of [[], siteExec]) {
        const nft = [...exec, 'nft', 'list', 'tables', 'netdev'];
        let tables = '';
        try {
          tables = await run(nft[0], nft.slice(1));
        } catch (e) {
          errors.push(e.message);
        }
        if (tables.includes(`table netdev ${TABLE}`)) {
          const del = [...exec, 'nft', 'delete', 'table', 'netdev', TABLE];
          await tryRun(errors, del[0], del.slice(1));
        }
      }
      for (const [exec, ifb] of [[[], SERVER_IFB], [siteExec, SITE_IFB]]) {
        const show = [...exec, 'tc', 'qdisc', 'show', 'dev', ifb];
        const out = await run(show[0], show.slice(1)).catch(() => '');
        if (out.includes('tbf')) {
          const del = [...exec, 'tc', 'qdisc', 'del', 'dev', ifb, 'root'];
          await tryRun(errors, del[0], del.slice(1));
        }
      }
      site.impairment = null;
      if (errors.length) throw new Error(`restore: ${errors.join('; ')}`);
    },

    /** Tears everything down: browser, impairments, veth, ifb, the namespace. */
    async stop() {
      if (stopped) return;
      stopped = true;
      const errors = [];
      try {
        await browser?.close();
      } catch {
        /* already gone */
      }
      await site.restore().catch((e) => errors.push(e.message));
      // Deleting one end of a veth deletes both.
      await tryRun(errors, 'ip', ['link', 'del', SERVER_VETH]);
      await tryRun(errors, 'ip', ['link', 'del', SERVER_IFB]);
      if (rpFilterAll !== null) await tryRun(errors, 'sysctl', ['-qw', `net.ipv4.conf.all.rp_filter=${rpFilterAll}`]);
      holder.stdin.end();
      const deadline = Date.now() + 5000;
      while (holder.exitCode === null && holder.signalCode === null && Date.now() < deadline) await sleep(50);
      if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
      rmSync(tmp, { recursive: true, force: true });
      if (errors.length) console.warn(`netns: teardown: ${errors.join('; ')}`);
    },
  };

  try {
    // Wait until `unshare` has really moved into its own namespace.
    const own = readlinkSync('/proc/self/ns/net');
    const deadline = Date.now() + NS_READY_TIMEOUT_MS;
    for (;;) {
      let ns = null;
      try {
        ns = readlinkSync(nsPath);
      } catch {
        /* not started yet */
      }
      if (ns && ns !== own) break;
      if (holder.exitCode !== null || Date.now() > deadline) throw new Error(`unshare --net did not start (exit ${holder.exitCode})`);
      await sleep(20);
    }
    // Leftovers of an earlier run killed in this namespace.
    await run('ip', ['link', 'del', SERVER_VETH]).catch(() => {});
    await run('ip', ['link', 'del', SERVER_IFB]).catch(() => {});

    await run('ip', ['link', 'add', SERVER_VETH, 'type', 'veth', 'peer', 'name', SITE_VETH]);
    await run('ip', ['link', 'set', SITE_VETH, 'netns', nsPath]);
    await inSite('ip', ['link', 'set', 'lo', 'up']);
    const mac = async (inSiteNs, dev) => {
      const out = await (inSiteNs ? inSite('ip', ['-o', 'link', 'show', dev]) : run('ip', ['-o', 'link', 'show', dev]));
      const m = /link\/ether ([0-9a-f:]{17})/.exec(out);
      if (!m) throw new Error(`no MAC address for ${dev}: ${out}`);
      return m[1];
    };
    const ends = [
      { site: false, dev: SERVER_VETH, ifb: SERVER_IFB, own: serverAddr, peer: siteAddr },
      { site: true, dev: SITE_VETH, ifb: SITE_IFB, own: siteAddr, peer: serverAddr },
    ];
    for (const e of ends) {
      const x = (cmd, args) => (e.site ? inSite(cmd, args) : run(cmd, args));
      // The site's namespace is ours entirely; in the test's, touch only our devices
      // (`route_localnet` and `accept_local` are the OR of `all` and the device's).
      const confs = e.site ? ['all', 'default', 'lo', e.dev] : [e.dev];
      for (const c of confs) {
        await x('sysctl', ['-qw', `net.ipv4.conf.${c}.route_localnet=1`, `net.ipv4.conf.${c}.accept_local=1`, `net.ipv4.conf.${c}.rp_filter=0`]);
      }
      await x('sysctl', ['-qw', `net.ipv6.conf.${e.dev}.disable_ipv6=1`]);
      await x('ip', ['addr', 'add', `${e.own}/32`, 'dev', e.dev]);
      await x('ip', ['link', 'set', e.dev, 'up']);
      await x('ip', ['link', 'add', e.ifb, 'type', 'ifb']);
      await x('ip', ['link', 'set', e.ifb, 'up']);
    }
    for (const e of ends) {
      const x = (cmd, args) => (e.site ? inSite(cmd, args) : run(cmd, args));
      const other = ends.find((o) => o !== e);
      await x('ip', ['neigh', 'replace', e.peer, 'lladdr', await mac(other.site, other.dev), 'dev', e.dev, 'nud', 'permanent']);
      await x('ip', ['route', 'add', 'unicast', `${e.peer}/32`, 'dev', e.dev, 'src', e.own, 'table', 'local']);
    }
    // rp_filter is the max of `all` and the device's: the veth needs `all` at 0 too.
    const rp = (await run('sysctl', ['-n', 'net.ipv4.conf.all.rp_filter'])).trim();
    if (rp !== '0') {
      await run('sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=0']);
      rpFilterAll = rp;
    }
  } catch (e) {
    await site.stop();
    throw e;
  }
  return site;
}

/**
 * The selected ICE candidate pair of `page`'s peer connection (through the client's
 * `__openhearing.pc()` hook), from getStats(): `{ state, local: { address, port,
 * protocol, candidateType, tcpType }, remote: {...}, bytesSent, bytesReceived }`, or
 * null before one is selected.
 */
export function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = window.__openhearing?.pc();
    if (!pc) return null;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
    });
    if (!pair) return null;
    const cand = (id) => {
      const c = stats.get(id);
      return c && { address: c.address, port: c.port, protocol: c.protocol, candidateType: c.candidateType, tcpType: c.tcpType ?? null };
    };
    return {
      state: pair.state,
      local: cand(pair.localCandidateId),
      remote: cand(pair.remoteCandidateId),
      bytesSent: pair.bytesSent,
      bytesReceived: pair.bytesReceived,
    };
  });
}
