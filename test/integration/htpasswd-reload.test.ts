// Users added, removed or broken in the htpasswd file while the gateway runs.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/gateway.js';
import { runOk, requireTool } from '../helpers/tools.js';
import { eventually, eventuallyValue, sleep } from '../helpers/wait.js';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ users: [{ user: 'bob', password: 'bob-secret', algorithm: 'apr1' }] });
});
afterAll(() => stack.stop());

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function statusWithin(ms: number, authorization: string, want: number): Promise<number> {
  let status = 0;
  await eventually(async () => (status = (await stack.request('/v2/', { auth: false, headers: { authorization } })).status) === want, ms, 100);
  return status;
}

describe('htpasswd changes while the gateway runs', () => {
  it('lets a user added with Apache htpasswd in within 2 seconds', async () => {
    const carol = basic('carol', 'carol: new secret');
    expect((await stack.request('/v2/', { auth: false, headers: { authorization: carol } })).status).toBe(401);
    await runOk(requireTool('htpasswd'), ['-b', '-B', '-C', '5', stack.htpasswdFile, 'carol', 'carol: new secret']);
    expect(await statusWithin(2500, carol, 200)).toBe(200);
  });

  it('fails no request of other users while the file is rewritten again and again', async () => {
    let stop = false;
    const statuses: number[] = [];
    const load = (async () => {
      while (!stop) statuses.push((await stack.request('/v2/', { auth: 'alice' })).status);
    })();
    const htpasswd = requireTool('htpasswd');
    for (let i = 0; i < 5; i++) {
      await runOk(htpasswd, ['-b', '-B', '-C', '4', stack.htpasswdFile, `temp${i}`, 'pw']);
      await sleep(300);
      await runOk(htpasswd, ['-D', stack.htpasswdFile, `temp${i}`]);
    }
    await sleep(1200);
    stop = true;
    await load;
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(stack.logLines().filter((l) => l.msg === 'htpasswd file reloaded').length).toBeGreaterThan(1);
  });

  it('shuts out a removed user at once after the reload, although the login was remembered', async () => {
    const bob = stack.authorization('bob');
    expect((await stack.request('/v2/', { auth: false, headers: { authorization: bob } })).status).toBe(200);
    await runOk(requireTool('htpasswd'), ['-D', stack.htpasswdFile, 'bob']);
    expect(await statusWithin(2500, bob, 401)).toBe(401);
  });

  it('keeps the last users while the file is empty only for a moment, as when it is caught between truncation and rewrite', async () => {
    const before = await readFile(stack.htpasswdFile, 'utf8');
    stack.clearLogs();
    await writeFile(stack.htpasswdFile, '');
    await sleep(2_500); // past the next poll
    expect((await stack.request('/v2/', { auth: 'alice' })).status).toBe(200);
    expect(stack.logLines().some((l) => l.msg === 'htpasswd file is empty: keeping the previous users unless it stays empty for 5 s')).toBe(true);
    await writeFile(stack.htpasswdFile, before);
    // Written again in time: the users never went away.
    await sleep(5_000);
    expect((await stack.request('/v2/', { auth: 'alice' })).status).toBe(200);
    expect(stack.logLines().some((l) => String(l.msg).includes('no user can log in'))).toBe(false);
  });

  for (const how of ['emptied', 'deleted'] as const) {
    it(`lets nobody in once the file stays ${how} for 5 seconds, says so loudly, and lets users in again when they are back`, async () => {
      const before = await readFile(stack.htpasswdFile, 'utf8');
      const alice = stack.authorization('alice');
      expect((await stack.request('/v2/', { auth: false, headers: { authorization: alice } })).status).toBe(200); // remembered
      stack.clearLogs();
      if (how === 'emptied') await writeFile(stack.htpasswdFile, '# nobody\n');
      else await rm(stack.htpasswdFile);
      const state = how === 'emptied' ? 'empty' : 'missing';
      // Revoking everyone must not fail open: the remembered login goes too.
      expect(await statusWithin(9_000, alice, 401)).toBe(401);
      const loud = stack.logLines().find((l) => l.msg === `htpasswd file is ${state}: no user can log in until it has users again`);
      expect(loud?.level).toBe(50); // error
      await writeFile(stack.htpasswdFile, before);
      expect(await statusWithin(2_500, alice, 200)).toBe(200);
    }, 20_000);
  }

  it('keeps the last good users when the file breaks, and logs the line at fault', async () => {
    const before = await readFile(stack.htpasswdFile, 'utf8');
    await writeFile(stack.htpasswdFile, `${before}mallory:$6$rounds=5000$salt$hash\n`);
    await sleep(100);
    const logged = await eventuallyValue(() => stack.logLines().find((l) => l.msg === 'htpasswd file not reloaded: keeping the previous users'), 2_900, 100);
    expect(JSON.stringify(logged?.problems)).toMatch(/:\d+: user \\"mallory\\"/);
    expect((await stack.request('/v2/', { auth: 'alice' })).status).toBe(200);
  });
});
