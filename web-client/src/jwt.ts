// Join-link parsing and JWT payload decoding (display only: the server verifies
// the signature). Pure functions, unit-tested without a browser.
import type { Role } from './protocol';

export interface TokenPayload {
  sub: string;
  hearing_id: string;
  role: Role;
  name: string;
  site: string;
  case_number: string;
  title: string;
  iat: number;
  exp: number;
}

export type TokenProblem = 'missing' | 'malformed' | 'expired' | 'wrong_hearing';

export type TokenCheck =
  | { ok: true; token: string; payload: TokenPayload }
  | { ok: false; problem: TokenProblem; payload?: TokenPayload };

export interface JoinLink {
  hearingId: string | null;
  token: string | null;
}

/** Reads `/join/{hearing_id}#token={jwt}`. */
export function parseJoinLink(pathname: string, hash: string): JoinLink {
  const m = /^\/join\/([^/?#]+)\/?$/.exec(pathname);
  const hearingId = m ? decodeURIComponent(m[1]) : null;
  const params = new URLSearchParams(hash.startsWith('#') ? hash.slice(1) : hash);
  const token = params.get('token');
  return { hearingId, token: token && token.trim() ? token.trim() : null };
}

/** Where a tab keeps its join token once it is out of the address bar. */
export interface TokenStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

const tokenKey = (hearingId: string) => `openhearing.token.${hearingId}`;

/**
 * The join token for this page: the one in the link if there is one (remembered for
 * this tab, so a reload still joins once it has left the address bar), otherwise the
 * one this tab remembered for the hearing. The address bar, the history and
 * screenshots then never show it (`history.replaceState` in main.ts).
 */
export function takeToken(link: JoinLink, store: TokenStore | null): string | null {
  if (!link.hearingId) return link.token;
  if (link.token) {
    try {
      store?.setItem(tokenKey(link.hearingId), link.token);
    } catch {
      // Storage refused (private mode, quota): the token still works for this load.
    }
    return link.token;
  }
  try {
    return store?.getItem(tokenKey(link.hearingId)) ?? null;
  } catch {
    return null;
  }
}

/** base64url → UTF-8 string; throws on invalid input. */
export function base64UrlDecode(s: string): string {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('not base64url');
  let b64 = s.replace(/-/g, '+').replace(/_/g, '/');
  if (b64.length % 4 === 1) throw new Error('bad base64 length');
  while (b64.length % 4) b64 += '=';
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

/** Decodes the middle part of a JWT; null when it is not a readable JWT. */
export function decodeTokenPayload(token: string): TokenPayload | null {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) return null;
  try {
    const header = JSON.parse(base64UrlDecode(parts[0]));
    if (!header || typeof header !== 'object') return null;
    const p = JSON.parse(base64UrlDecode(parts[1]));
    if (!p || typeof p !== 'object') return null;
    const str = (k: string) => typeof p[k] === 'string';
    const num = (k: string) => typeof p[k] === 'number' && Number.isFinite(p[k]);
    if (!str('sub') || !str('hearing_id') || !str('role') || !str('name')) return null;
    if (!num('exp')) return null;
    return {
      sub: p.sub,
      hearing_id: p.hearing_id,
      role: p.role,
      name: p.name,
      site: str('site') ? p.site : '',
      case_number: str('case_number') ? p.case_number : '',
      title: str('title') ? p.title : '',
      iat: num('iat') ? p.iat : 0,
      exp: p.exp,
    };
  } catch {
    return null;
  }
}

/**
 * Checks a token for display purposes. `nowSeconds` is Unix time; `hearingId`
 * (from the URL path), when given, must match the token's hearing.
 */
export function checkToken(
  token: string | null,
  nowSeconds: number,
  hearingId?: string | null,
): TokenCheck {
  if (!token) return { ok: false, problem: 'missing' };
  const payload = decodeTokenPayload(token);
  if (!payload) return { ok: false, problem: 'malformed' };
  if (payload.exp <= nowSeconds) return { ok: false, problem: 'expired', payload };
  if (hearingId && payload.hearing_id !== hearingId) {
    return { ok: false, problem: 'wrong_hearing', payload };
  }
  return { ok: true, token, payload };
}

/** ws(s)://host/ws/hearings/{id} for the page's origin. */
export function signalingUrl(protocol: string, host: string, hearingId: string): string {
  const scheme = protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${host}/ws/hearings/${encodeURIComponent(hearingId)}`;
}
