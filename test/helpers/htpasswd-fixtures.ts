// Reads the htpasswd fixtures written by test/fixtures/htpasswd/make-fixtures.sh. Each user line
// there is preceded by `# password: "<JSON string>"`, the password Apache's htpasswd was given.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const FIXTURES = fileURLToPath(new URL('../fixtures/htpasswd/', import.meta.url));

export function fixturePath(name: string): string {
  return FIXTURES + name;
}

export function fixtureText(name: string): string {
  return readFileSync(fixturePath(name), 'utf8');
}

export interface FixtureUser {
  user: string;
  hash: string;
  password: string;
}

/** The users of a fixture file with the passwords from the comments above them. */
export function fixtureUsers(name: string): Map<string, FixtureUser> {
  const users = new Map<string, FixtureUser>();
  let password: string | null = null;
  for (const line of fixtureText(name).replace(/^\uFEFF/, '').split(/\r?\n/)) {
    const comment = /^# password: (".*")$/.exec(line);
    if (comment !== null) {
      password = JSON.parse(comment[1]!) as string;
    } else if (password !== null && line.includes(':')) {
      const colon = line.indexOf(':');
      users.set(line.slice(0, colon), { user: line.slice(0, colon), hash: line.slice(colon + 1), password });
      password = null;
    }
  }
  return users;
}

export function fixtureUser(name: string, user: string): FixtureUser {
  const found = fixtureUsers(name).get(user);
  if (found === undefined) throw new Error(`fixture ${name} has no user ${user}`);
  return found;
}

/** An Authorization header value for these credentials. */
export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}
