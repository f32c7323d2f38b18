import { describe, expect, it } from 'vitest';
import { createAuthenticator, formatHtpasswdProblem, readHtpasswdFile } from '../../../src/auth/index.js';
import { basic, fixturePath, fixtureUser } from '../../helpers/htpasswd-fixtures.js';

describe('the auth module entry point', () => {
  it('takes a file written by htpasswd to a working login', async () => {
    const { users, problems } = await readHtpasswdFile(fixturePath('users.htpasswd'));
    expect(problems.map(formatHtpasswdProblem)).toEqual([]);
    const auth = createAuthenticator({ users });
    try {
      const { password } = fixtureUser('users.htpasswd', 'erin');
      expect(await auth.authenticate(basic('erin', password))).toEqual({ ok: true, user: 'erin', cached: false });
    } finally {
      await auth.close();
    }
  });
});
