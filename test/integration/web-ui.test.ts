// The web UI over HTTPS, as a browser speaks to it: sign-in with the htpasswd users (same throttle
// as /v2/), the session cookie and what it is locked to, the headers every page carries, forms
// that another site cannot post, and the record of what was done through it. (In a real browser:
// test/browser/.)
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestResponse, type TestStack } from '../helpers/gateway.js';
import { writeHtpasswd, type HtpasswdUser } from '../helpers/htpasswd.js';
import { pushImage } from '../helpers/registry-api.js';
import { eventually } from '../helpers/wait.js';

const user = (name: string): HtpasswdUser => ({ user: name, password: `${name}-pw`, algorithm: 'bcrypt', cost: 4 });
const ACCESS = `rules:
  - users: [alice]
    repositories: ["*"]
    actions: [pull, push, delete]
  - users: [bob]
    repositories: ["team-a/*"]
    actions: [pull]
`;
const FORM = 'application/x-www-form-urlencoded';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** The name=value pairs a response's Set-Cookie headers set, as a browser would send them back. */
function cookiesOf(res: TestResponse): string[] {
  const set = res.headers['set-cookie'];
  return (Array.isArray(set) ? set : set === undefined ? [] : [set]).map((c) => c.split(';')[0]!);
}

function setCookie(res: TestResponse, name: string): string | undefined {
  const set = res.headers['set-cookie'];
  return (Array.isArray(set) ? set : set === undefined ? [] : [set]).find((c) => c.startsWith(`${name}=`));
}

function csrfOf(html: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(html);
  if (m === null) throw new Error(`no csrf field in the page:\n${html.slice(0, 2000)}`);
  return m[1]!;
}

describe('the web UI over HTTPS', { timeout: 60_000 }, () => {
  let stack: TestStack;
  let origin: string;

  const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
    stack.request(path, { method: 'POST', auth: false, headers: { 'content-type': FORM, origin, ...headers }, body: new URLSearchParams(form).toString() });

  /** Signs in through the login form; the Cookie header of the session, and the page's CSRF token. */
  async function signIn(name: string, password = stack.users.find((u) => u.user === name)!.password): Promise<{ cookie: string; csrf: string }> {
    const form = await stack.request('/ui/login', { auth: false });
    const res = await post('/ui/login', { username: name, password, csrf: csrfOf(form.text), next: '/' }, { cookie: cookiesOf(form).join('; ') });
    expect(res.status, res.text).toBe(303);
    const cookie = cookiesOf(res).filter((c) => c.startsWith('__Host-registry-session='))[0]!;
    const home = await stack.request('/', { auth: false, headers: { cookie } });
    expect(home.status).toBe(200);
    return { cookie, csrf: csrfOf(home.text) };
  }

  const eventsFile = () => join(stack.pki.dir, 'events.jsonl');
  const recorded = async () => (await readFile(eventsFile(), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

  beforeAll(async () => {
    stack = await startTestStack({ users: ['bob', 'mallory'].map(user), access: ACCESS, extraArgs: ['--login-attempts', '2', '--login-backoff-max', '30'] });
    origin = stack.url;
    await pushImage(stack, 'team-a/app', '1');
    await pushImage(stack, 'team-b/secret', '1');
  });
  afterAll(() => stack?.stop());

  it('sends a browser without a session to the sign-in form, and back where it was going after', async () => {
    const res = await stack.request('/ui/repository?name=team-a%2Fapp', { auth: false });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/ui/login?next=${encodeURIComponent('/ui/repository?name=team-a%2Fapp')}`);
    const form = await stack.request(res.headers.location as string, { auth: false });
    expect(form.text).toContain('name="next" value="/ui/repository?name=team-a%2Fapp"');
    const signedIn = await post('/ui/login', { username: 'bob', password: 'bob-pw', csrf: csrfOf(form.text), next: '/ui/repository?name=team-a%2Fapp' }, { cookie: cookiesOf(form).join('; ') });
    expect(signedIn.headers.location).toBe('/ui/repository?name=team-a%2Fapp');
    // Never to another site.
    const away = await post('/ui/login', { username: 'bob', password: 'bob-pw', csrf: csrfOf(form.text), next: '//evil.example/x' }, { cookie: cookiesOf(form).join('; ') });
    expect(away.headers.location).toBe('/');
  });

  it('locks the session cookie to this host, HTTPS and this site, out of reach of scripts', async () => {
    const form = await stack.request('/ui/login', { auth: false });
    const res = await post('/ui/login', { username: 'alice', password: 'alice-secret', csrf: csrfOf(form.text), next: '/' }, { cookie: cookiesOf(form).join('; ') });
    const session = setCookie(res, '__Host-registry-session')!;
    expect(session.split('; ')).toEqual(expect.arrayContaining(['Path=/', 'Secure', 'HttpOnly', 'SameSite=Strict', 'Max-Age=43200']));
    expect(session).not.toMatch(/Domain=/i);
  });

  it('serves every page with a strict Content-Security-Policy and no inline script', async () => {
    const { cookie } = await signIn('alice');
    for (const path of ['/ui/login', '/', '/ui/repository?name=team-a%2Fapp']) {
      const res = await stack.request(path, { auth: false, headers: path === '/ui/login' ? {} : { cookie } });
      const csp = String(res.headers['content-security-policy']);
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
      expect(res.text).not.toMatch(/\son[a-z]+=/i);
    }
  });

  it('shows each user only the repositories they may pull', async () => {
    const bob = await signIn('bob');
    const page = await stack.request('/', { auth: false, headers: { cookie: bob.cookie } });
    expect(page.text).toContain('team-a/app');
    expect(page.text).not.toContain('team-b/secret');
    const hidden = await stack.request('/ui/repository?name=team-b%2Fsecret', { auth: false, headers: { cookie: bob.cookie } });
    expect(hidden.status).toBe(404);
    const alice = await signIn('alice');
    expect((await stack.request('/', { auth: false, headers: { cookie: alice.cookie } })).text).toContain('team-b/secret');
  });

  it('answers a wrong password with the form again and 401, recorded as a refusal naming the user', async () => {
    const form = await stack.request('/ui/login', { auth: false });
    const res = await post('/ui/login', { username: 'bob', password: 'wrong', csrf: csrfOf(form.text), next: '/' }, { cookie: cookiesOf(form).join('; ') });
    expect(res.status).toBe(401);
    expect(res.text).toContain('name="password"');
    expect(setCookie(res, '__Host-registry-session')).toBeUndefined();
    expect(await eventually(async () => (await recorded()).some((e) => e.action === 'denied' && e.user === 'bob' && e.via === 'ui'), 5_000)).toBe(true);
  });

  it('throttles repeated wrong passwords like /v2/ does: 429, with the wait shown', async () => {
    let last: TestResponse | null = null;
    for (let i = 0; i < 4; i++) {
      const form = await stack.request('/ui/login', { auth: false });
      last = await post('/ui/login', { username: 'mallory', password: 'guess', csrf: csrfOf(form.text), next: '/' }, { cookie: cookiesOf(form).join('; ') });
      if (last.status === 429) break;
    }
    expect(last!.status).toBe(429);
    const wait = Number(last!.headers['retry-after']);
    expect(wait).toBeGreaterThan(0);
    expect(last!.text).toContain(`try again in ${wait} s`);
    // The same throttle as /v2/: the registry API refuses mallory from here too, even the right password.
    const api = await stack.request('/v2/', { auth: 'mallory' });
    expect(api.status).toBe(429);
  });

  it('refuses a form posted from another site, or without the page\'s CSRF token', async () => {
    const { cookie, csrf } = await signIn('alice');
    const fromElsewhere = await post('/ui/logout', { csrf }, { cookie, origin: 'https://evil.example' });
    expect(fromElsewhere.status).toBe(403);
    const noOrigin = await stack.request('/ui/logout', { method: 'POST', auth: false, headers: { 'content-type': FORM, cookie }, body: `csrf=${csrf}` });
    expect(noOrigin.status).toBe(403);
    const crossSite = await post('/ui/logout', { csrf }, { cookie, 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    const wrongToken = await post('/ui/delete', { csrf: 'x'.repeat(csrf.length), name: 'team-a/app', reference: '1', what: 'tag' }, { cookie });
    expect(wrongToken.status).toBe(403);
    // The session still works: none of those did anything.
    expect((await stack.request('/', { auth: false, headers: { cookie } })).status).toBe(200);
    expect((await stack.request('/v2/team-a/app/manifests/1', { method: 'HEAD', headers: { accept: OCI_MANIFEST } })).status).toBe(200);
  });

  it('lets only a user with delete delete, recording who did', async () => {
    const bob = await signIn('bob');
    expect((await stack.request('/ui/delete?name=team-a%2Fapp&reference=1', { auth: false, headers: { cookie: bob.cookie } })).status).toBe(403);
    const refused = await post('/ui/delete', { csrf: bob.csrf, name: 'team-a/app', reference: '1', what: 'manifest' }, { cookie: bob.cookie });
    expect(refused.status).toBe(403);
    expect((await stack.request('/v2/team-a/app/manifests/1', { method: 'HEAD', headers: { accept: OCI_MANIFEST } })).status).toBe(200);

    await pushImage(stack, 'team-a/app', 'old');
    // Pulled just before: the gateway's manifest cache holds a copy the delete must drop.
    expect((await stack.request('/v2/team-a/app/manifests/old', { headers: { accept: OCI_MANIFEST } })).status).toBe(200);
    const alice = await signIn('alice');
    const confirm = await stack.request('/ui/delete?name=team-a%2Fapp&reference=old', { auth: false, headers: { cookie: alice.cookie } });
    expect(confirm.status).toBe(200);
    const done = await post('/ui/delete', { csrf: alice.csrf, name: 'team-a/app', reference: 'old', what: 'manifest' }, { cookie: alice.cookie });
    expect(done.status, done.text).toBe(303);
    expect((await stack.request('/v2/team-a/app/manifests/old', { method: 'HEAD', headers: { accept: OCI_MANIFEST } })).status).toBe(404);
    expect((await stack.request('/v2/team-a/app/manifests/old', { headers: { accept: OCI_MANIFEST } })).status).toBe(404);
    expect(await eventually(async () => (await recorded()).some((e) => e.action === 'delete' && e.user === 'alice' && e.repository === 'team-a/app' && e.via === 'ui'), 5_000)).toBe(true);
  });

  it('records pushes through /v2/ with the user, and shows who pushed each tag', async () => {
    const pushed = await pushImage(stack, 'team-a/app', '2');
    expect(await eventually(async () => (await recorded()).some((e) => e.action === 'push' && e.user === 'alice' && e.tag === '2' && e.digest === pushed.manifestDigest), 5_000)).toBe(true);
    const { cookie } = await signIn('bob');
    const page = await stack.request('/ui/repository?name=team-a%2Fapp', { auth: false, headers: { cookie } });
    expect(page.text).toContain(pushed.manifestDigest);
    expect(page.text).toContain('alice');
  });

  it('ends a session at sign-out, and when the password changes', async () => {
    const { cookie, csrf } = await signIn('bob');
    const out = await post('/ui/logout', { csrf }, { cookie });
    expect(out.status).toBe(303);
    expect(setCookie(out, '__Host-registry-session')).toContain('Max-Age=0');

    const again = await signIn('bob');
    await writeHtpasswd(stack.htpasswdFile, [{ user: 'alice', password: 'alice-secret', algorithm: 'bcrypt', cost: 4 }, { ...user('bob'), password: 'a-new-password' }, user('mallory')]);
    expect(await eventually(async () => (await stack.request('/', { auth: false, headers: { cookie: again.cookie } })).status === 303, 10_000)).toBe(true);
  });

  it('keeps the session secret and the record beside the certificate, readable by the gateway alone', async () => {
    expect((await stat(join(stack.pki.dir, 'session.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(eventsFile())).mode & 0o777).toBe(0o600);
  });
});

describe('--no-ui', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ extraArgs: ['--no-ui'] });
  });
  afterAll(() => stack?.stop());

  it('answers / and /ui/ with 404, and serves the registry as before', async () => {
    expect((await stack.request('/', { auth: false })).status).toBe(404);
    expect((await stack.request('/ui/login', { auth: false })).status).toBe(404);
    expect((await stack.request('/v2/')).status).toBe(200);
  });
});

