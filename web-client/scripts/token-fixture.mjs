// A join-token payload and an unsigned JWT around it, for tests of the client's
// display-only token decoding (the client never verifies signatures; the server does).
export const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

export const HEARING_ID = '0b6c2a36-8a55-4c8e-9a53-1f6f3c1f2d10';

/** The claims the server puts in a join token (see src/auth.rs `JoinClaims`). */
export const samplePayload = (extra = {}) => ({
  sub: 'aaaaaaaa-0000-0000-0000-000000000001',
  hearing_id: HEARING_ID,
  role: 'defendant',
  name: 'Trần Văn B',
  site: 'Trại tạm giam số 1',
  case_number: 'HS-123/2026',
  title: 'Phiên tòa thử nghiệm',
  iat: 1000,
  exp: 2000,
  ...extra,
});

/** header.payload.signature with a signature nobody checks client-side. */
export const unsignedJwt = (payload) => `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}.c2lnbmF0dXJl`;
