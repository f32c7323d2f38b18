// In a container, ./htpasswd is bind-mounted on its own: renaming a new file over it fails
// (EBUSY), so the command must rewrite it in place. Reproduced with a private mount namespace.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_BIN as BIN } from '../helpers/gateway-process.js';
import { requireTool, run } from '../helpers/tools.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgw-bind-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('htpasswd add on a file bind-mounted on its own', () => {
  it('rewrites the file in place, keeping its comment, and Apache verifies the new user', async () => {
    const unshare = requireTool('unshare');
    const source = join(dir, 'host-htpasswd');
    const mountPoint = join(dir, 'container-htpasswd');
    await writeFile(source, '# users of the test registry\n');
    await writeFile(mountPoint, '');
    const script = `mount --bind '${source}' '${mountPoint}' && printf 'pw: with colon\\n' | '${process.execPath}' '${BIN}' htpasswd add alice --file '${mountPoint}' --password-stdin --cost 4`;
    const result = await run(unshare, ['--mount', 'sh', '-c', script]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const text = await readFile(source, 'utf8');
    expect(text).toMatch(/^# users of the test registry\nalice:\$2y\$04\$.{53}\n$/);
    expect((await run(requireTool('htpasswd'), ['-vb', source, 'alice', 'pw: with colon'])).code).toBe(0);
  });
});
