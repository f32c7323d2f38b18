// The web UI in a real browser (Debian's chromium), as a new user meets it: images pushed with
// skopeo by several users under access rules, then signing in with wrong and right passwords,
// seeing only what one may pull, tags and sizes as pushed, deleting with and without the right, a
// forged cross-site form, markup in what users and images carry, signing out; and a webhook
// receiver that hears each push, delete and refusal by name, in order, also after it was down.
// Screenshots of each page are kept as test artifacts (test/helpers/browser.ts artifactsDir).
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactsDir, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import type { HtpasswdUser } from '../helpers/htpasswd.js';
import { writeOciIndex, writeOciLayout, type WrittenOciImage, type WrittenOciIndex } from '../helpers/oci-layout.js';
import { skopeoSandbox } from '../helpers/skopeo.js';
import { requireTool, run, type RunResult } from '../helpers/tools.js';
import { eventually } from '../helpers/wait.js';
import { expectedSignature, startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

// A user name that is markup: it must show as text wherever the UI names who pushed.
// (The access file allows no spaces in a name; an HTML parser needs none between attributes.)
const MARKUP_USER = "<img/src=x/onerror=document.title='pwned'>";
const user = (name: string, password = `${name.replace(/\W/g, '')}-pw-1`): HtpasswdUser => ({ user: name, password, algorithm: 'bcrypt', cost: 4 });
const USERS = [user('bob'), user(MARKUP_USER)];
const ACCESS = `rules:
  - users: [alice]
    repositories: ["*"]
    actions: [pull, push, delete]
  - users: [bob]
    repositories: ["team-a/*"]
    actions: [pull]
  - users: ['${MARKUP_USER.replace(/'/g, "''")}']
    repositories: ["team-a/*"]
    actions: [pull, push]
`;
const SECRET = randomBytes(24).toString('hex');

describe('the web UI in chromium', { timeout: 120_000 }, () => {
  let work: string;
  let stack: TestStack;
  let receiver: WebhookReceiver;
  let browser: TestBrowser;
  let shots: string;
  let skopeo: string;
  let skopeoEnv: NodeJS.ProcessEnv;
  let policy: string;
  let layout: string;
  let single: WrittenOciImage;
  let markupImage: WrittenOciImage;
  let multi: WrittenOciIndex;

  const password = (name: string) => (name === 'alice' ? 'alice-secret' : stack.users.find((u) => u.user === name)!.password);
  const sk = (args: string[]): Promise<RunResult> => run(skopeo, ['--policy', policy, ...args], { env: skopeoEnv, timeoutMs: 60_000 });
  const push = async (name: string, from: string, to: string, all = false): Promise<RunResult> =>
    sk(['copy', ...(all ? ['--all'] : []), '--dest-cert-dir', stack.pki.trustDir, '--dest-creds', `${name}:${password(name)}`, `oci:${layout}:${from}`, `docker://${stack.host}/${to}`]);
  const pushOk = async (...args: Parameters<typeof push>) => {
    const r = await push(...args);
    if (r.code !== 0) throw new Error(`skopeo push failed (${r.code}):\n${r.stderr}`);
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  async function signIn(context: BrowserContext, name: string, secret = password(name)): Promise<Page> {
    const page = await context.newPage();
    await page.goto(`${stack.url}/`);
    expect(new URL(page.url()).pathname).toBe('/ui/login');
    await page.getByLabel('User name').fill(name);
    await page.getByLabel('Password').fill(secret);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForLoadState();
    return page;
  }

  beforeAll(async () => {
    skopeo = requireTool('skopeo');
    work = await mkdtemp(join(tmpdir(), 'rgw-browser-'));
    shots = await artifactsDir();
    receiver = await startWebhookReceiver();
    stack = await startTestStack({ users: USERS, access: ACCESS, extraArgs: ['--webhook', receiver.url, '--webhook-secret', SECRET, '--login-attempts', '2', '--login-backoff-max', '60'] });
    await mkdir(join(work, 'skopeo'));
    ({ env: skopeoEnv, policy } = await skopeoSandbox(join(work, 'skopeo')));
    layout = join(work, 'layout');
    single = await writeOciLayout(layout, { tag: 'single', layers: [{ 'app/data.bin': randomBytes(300_000) }, { 'app/VERSION': '1\n' }], created: '2026-05-04T03:02:01Z' });
    markupImage = await writeOciLayout(layout, { tag: 'markup', layers: [{ 'x.txt': 'x' }], created: '<script>document.title="pwned"</script>' });
    multi = await writeOciIndex(layout, {
      tag: 'multi',
      platforms: [
        { platform: { os: 'linux', architecture: 'amd64' }, layers: [{ 'bin/app': randomBytes(200_000) }] },
        { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, layers: [{ 'bin/app': randomBytes(150_000) }] },
      ],
    });
    await pushOk('alice', 'single', 'team-a/app:1.0');
    await pushOk('alice', 'single', 'team-a/app:to-delete');
    await pushOk('alice', 'multi', 'team-a/multi:latest', true);
    await pushOk('alice', 'single', 'team-b/secret:1');
    await pushOk(MARKUP_USER, 'markup', 'team-a/markup:v1');
    browser = await launchBrowser(work);
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await receiver?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('refuses a wrong password on the sign-in form, then signs in with the right one', async () => {
    const context = await browser.context();
    const page = await signIn(context, 'bob', 'not-his-password');
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/wrong user name or password/i);
    await shot(page, '01-sign-in-refused');
    await page.getByLabel('Password').fill(password('bob'));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${stack.url}/`);
    expect(await page.getByRole('link', { name: 'team-a/app' }).count()).toBe(1);
    await context.close();
  });

  it('shows each user only the repositories they may pull', async () => {
    const bob = await browser.context();
    const page = await signIn(bob, 'bob');
    const names = await page.locator('main table a').allTextContents();
    expect(names.sort()).toEqual(['team-a/app', 'team-a/markup', 'team-a/multi']);
    await shot(page, '02-repositories-bob');
    const alice = await browser.context();
    const all = await signIn(alice, 'alice');
    expect((await all.locator('main table a').allTextContents()).sort()).toEqual(['team-a/app', 'team-a/markup', 'team-a/multi', 'team-b/secret']);
    await all.getByLabel(/search/i).fill('secret');
    await all.getByRole('button', { name: /search/i }).click();
    await all.waitForLoadState();
    expect(await all.locator('main table a').allTextContents()).toEqual(['team-b/secret']);
    await bob.close();
    await alice.close();
  });

  it('shows tags with the digest, size and platforms skopeo pushed, and who pushed them', async () => {
    const context = await browser.context();
    const page = await signIn(context, 'bob');
    await page.getByRole('link', { name: 'team-a/app' }).click();
    await page.waitForLoadState();
    const row = page.locator('tbody tr', { hasText: '1.0' });
    expect(await row.locator('code').getAttribute('title')).toBe(single.manifestDigest);
    const bytes = single.manifest.config.size + single.manifest.layers.reduce((n, l) => n + l.size, 0);
    // Shown in kB to three digits, as docker shows sizes.
    const shown = /([\d.]+) kB/.exec((await row.locator('[data-label="Size"]').textContent()) ?? '');
    expect(Math.abs(Number(shown?.[1]) * 1000 - bytes)).toBeLessThanOrEqual(bytes * 0.005);
    expect(await row.locator('[data-label="Created"]').textContent()).toContain('2026-05-04 03:02 UTC');
    expect(await row.locator('[data-label="Pushed by"]').textContent()).toContain('alice');
    expect(await row.locator('input').first().inputValue()).toBe(`docker pull ${stack.host}/team-a/app:1.0`);
    await shot(page, '03-repository-tags');

    await page.goto(`${stack.url}/ui/repository?name=team-a%2Fmulti`);
    const platforms = await page.locator('tbody tr', { hasText: 'latest' }).locator('[data-label="Size"]').textContent();
    expect(platforms).toContain('linux/amd64');
    expect(platforms).toContain('linux/arm64/v8');
    expect(await page.locator('tbody tr code').first().getAttribute('title')).toBe(multi.indexDigest);
    await shot(page, '04-multi-platform');
    await context.close();
  });

  it('shows markup in a user name and in an image as text, running none of it', async () => {
    const context = await browser.context();
    const page = await signIn(context, 'bob');
    await page.goto(`${stack.url}/ui/repository?name=team-a%2Fmarkup`);
    const row = page.locator('tbody tr', { hasText: 'v1' });
    expect(await row.locator('[data-label="Pushed by"]').textContent()).toContain(MARKUP_USER);
    // A `created` that is no time is shown as unknown, and runs nothing.
    expect(await row.locator('[data-label="Created"]').textContent()).toContain('unknown');
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.title()).not.toBe('pwned');
    expect(markupImage.manifestDigest).toBe(await row.locator('code').getAttribute('title'));
    await shot(page, '05-markup-as-text');
    await context.close();
  });

  it('offers no delete to a user without the right, and refuses one forced through', async () => {
    const context = await browser.context();
    const page = await signIn(context, 'bob');
    await page.goto(`${stack.url}/ui/repository?name=team-a%2Fapp`);
    expect(await page.getByRole('link', { name: /delete/i }).count()).toBe(0);
    const response = await page.goto(`${stack.url}/ui/delete?name=team-a%2Fapp&reference=1.0`);
    expect(response?.status()).toBe(403);
    await context.close();
  });

  it('deletes with the right, after a confirmation', async () => {
    const context = await browser.context();
    const page = await signIn(context, 'alice');
    await page.goto(`${stack.url}/ui/repository?name=team-a%2Fapp`);
    await page.locator('tbody tr', { hasText: 'to-delete' }).getByRole('link', { name: /delete/i }).click();
    await page.waitForLoadState();
    // Both tags point at one manifest: the confirmation says deleting it removes the other too.
    expect(await page.locator('main').textContent()).toContain('1.0');
    await shot(page, '06-confirm-delete');
    await page.getByRole('button', { name: /delete manifest/i }).click();
    await page.waitForLoadState();
    expect(await page.getByRole('status').textContent()).toMatch(/deleted/i);
    expect(await page.locator('tbody tr').count()).toBe(0);
    await shot(page, '07-deleted');
    const gone = await stack.request('/v2/team-a/app/manifests/to-delete', { method: 'HEAD', headers: { accept: single.manifest.mediaType } });
    expect(gone.status).toBe(404);
    await context.close();
  });

  it('refuses a form another site makes the browser post', async () => {
    await pushOk('alice', 'single', 'team-a/app:kept');
    const context = await browser.context();
    const page = await signIn(context, 'alice');
    // A page on another origin (localhost, not 127.0.0.1) that posts a delete to the gateway.
    const evil: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><form id="f" method="post" action="${stack.url}/ui/delete">
        <input name="name" value="team-a/app"><input name="reference" value="kept"><input name="what" value="manifest"><input name="csrf" value="guess">
        </form><script>document.getElementById('f').submit()</script>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    try {
      const answered = page.waitForResponse((r) => r.url().startsWith(`${stack.url}/ui/delete`));
      await page.goto(`http://localhost:${(evil.address() as AddressInfo).port}/`);
      expect((await answered).status()).toBe(403);
      await page.waitForLoadState();
      await shot(page, '08-forged-post-refused');
    } finally {
      evil.close();
    }
    const kept = await stack.request('/v2/team-a/app/manifests/kept', { method: 'HEAD', headers: { accept: single.manifest.mediaType } });
    expect(kept.status).toBe(200);
    await context.close();
  });

  it('signs out: the next page asks for a sign-in again', async () => {
    const context = await browser.context();
    const page = await signIn(context, 'bob');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/ui\/login/);
    await page.goto(`${stack.url}/ui/repository?name=team-a%2Fapp`);
    expect(new URL(page.url()).pathname).toBe('/ui/login');
    expect((await context.cookies()).some((c) => c.name === '__Host-registry-session')).toBe(false);
    await context.close();
  });

  it('reads well on a phone', async () => {
    const context = await browser.context({ viewport: { width: 390, height: 844 } });
    const page = await signIn(context, 'alice');
    await page.goto(`${stack.url}/ui/repository?name=team-a%2Fmulti`);
    // Nothing wider than the screen: the table turns into cards.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot(page, '09-phone');
    await context.close();
  });

  it('is usable from the keyboard alone', async () => {
    const context = await browser.context();
    const page = await context.newPage();
    await page.goto(`${stack.url}/ui/login`);
    // Tab from the top of the page to the user name field: the skip link and the header come first.
    for (let i = 0; i < 6 && (await page.evaluate(() => document.activeElement?.id)) !== 'username'; i++) await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('username');
    await page.keyboard.type('bob');
    await page.keyboard.press('Tab');
    await page.keyboard.type(password('bob'));
    await page.keyboard.press('Enter');
    await page.waitForURL(`${stack.url}/`);
    expect(await page.locator('main table a').count()).toBeGreaterThan(0);
    await context.close();
  });

  it('sends each push, delete and refusal to the webhook, naming the user, in order and signed', async () => {
    const pushed = (name: string, repository: string, tag: string) => (e: Record<string, any>) => e.action === 'push' && e.actor?.name === name && e.target?.repository === repository && e.target?.tag === tag;
    const events = () => receiver.deliveries.map((d) => d.event);
    expect(await eventually(() => events().some((e) => e.action === 'delete' && e.actor?.name === 'alice' && e.via === 'ui'), 10_000)).toBe(true);
    const all = events();
    const at = (match: (e: Record<string, any>) => boolean) => all.findIndex(match);
    expect(at(pushed('alice', 'team-a/app', '1.0'))).toBeGreaterThanOrEqual(0);
    expect(at(pushed(MARKUP_USER, 'team-a/markup', 'v1'))).toBeGreaterThan(at(pushed('alice', 'team-b/secret', '1')));
    expect(at((e) => e.action === 'delete' && e.actor?.name === 'alice')).toBeGreaterThan(at(pushed('alice', 'team-a/app', 'to-delete')));
    expect(at((e) => e.action === 'denied' && e.actor?.name === 'bob')).toBeGreaterThanOrEqual(0); // the wrong password
    for (const delivery of receiver.deliveries) {
      expect(delivery.headers['x-registry-gateway-signature']).toBe(expectedSignature(delivery.body, SECRET));
      expect(delivery.headers['content-type']).toBe('application/vnd.docker.distribution.events.v1+json');
    }
  });

  it('delivers what happened while the webhook receiver was down, in order, once it is back', async () => {
    await receiver.stop();
    const before = receiver.deliveries.length;
    await pushOk('alice', 'single', 'team-a/app:while-down-1');
    const refused = await push('bob', 'single', 'team-a/app:bob-may-not');
    expect(refused.code).not.toBe(0);
    await pushOk('alice', 'single', 'team-a/app:while-down-2');
    await new Promise((r) => setTimeout(r, 3_000));
    expect(receiver.deliveries.length).toBe(before);
    await receiver.start();
    const later = () => receiver.deliveries.slice(before).map((d) => d.event);
    expect(await eventually(() => later().some((e) => e.target?.tag === 'while-down-2'), 30_000)).toBe(true);
    const tags = later().filter((e) => e.action === 'push').map((e) => e.target.tag);
    expect(tags).toEqual(['while-down-1', 'while-down-2']);
    const denied = later().findIndex((e) => e.action === 'denied' && e.actor?.name === 'bob');
    expect(denied).toBeGreaterThan(later().findIndex((e) => e.target?.tag === 'while-down-1'));
    expect(denied).toBeLessThan(later().findIndex((e) => e.target?.tag === 'while-down-2'));
    expect(new Set(receiver.deliveries.map((d) => d.event.id)).size).toBe(receiver.deliveries.length);
  });
});
