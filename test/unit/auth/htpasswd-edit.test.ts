import { describe, expect, it } from 'vitest';
import { listUsers, removeUser, upsertUser, validateUserName } from '../../../src/auth/htpasswd-edit.js';
import { parseHtpasswd } from '../../../src/auth/htpasswd.js';
import { fixtureText } from '../../helpers/htpasswd-fixtures.js';

// Real hashes (password "x"), so the results can be checked with the gateway's own parser.
const APR1 = '$apr1$CQlx.B7T$jX.rqCksdiTqOKf6gfzUQ/';
const BCRYPT = '$2y$05$J9Rt33485o6zt60yqV.6meBwj5.gbQ1ylU9eNDlWgTCZ5D45i6hh.';
const NEW = '$2y$05$RCCXu1dt/fUJ154ig1vEM.TyCwPqC39h0HKeWUNFLsJ.ZQJo2nD7q';

const FILE = ['# team registry users', `alice:${APR1}`, '', '# CI robots', `bot:${BCRYPT}`, `carol:${APR1}`, ''].join('\n');

describe('upsertUser', () => {
  it('replaces the user on its own line and keeps comments, blank lines and order', () => {
    const out = upsertUser(FILE, 'bot', NEW);
    expect(out).toBe(FILE.replace(`bot:${BCRYPT}`, `bot:${NEW}`));
    expect(parseHtpasswd(out, 'f').users.get('bot')?.hash).toBe(NEW);
  });

  it('appends a new user after the last line', () => {
    expect(upsertUser(FILE, 'dave', NEW)).toBe(`${FILE}dave:${NEW}\n`);
  });

  it('keeps CRLF line endings, for the changed line and a new one', () => {
    const crlf = FILE.replace(/\n/g, '\r\n');
    expect(upsertUser(crlf, 'alice', NEW)).toBe(crlf.replace(`alice:${APR1}`, `alice:${NEW}`));
    expect(upsertUser(crlf, 'dave', NEW)).toBe(`${crlf}dave:${NEW}\r\n`);
  });

  it('keeps an Apache-written CRLF file CRLF', () => {
    const text = fixtureText('crlf.htpasswd');
    const out = upsertUser(text, 'erin', NEW);
    expect(out.startsWith(text)).toBe(true);
    expect(out.split('\r\n')).toHaveLength(text.split('\r\n').length + 1);
    expect(out.replace(/\r\n/g, '')).not.toMatch(/\n/);
  });

  it('adds the missing final newline before appending, and to a replaced last line', () => {
    expect(upsertUser(`alice:${APR1}`, 'bob', NEW)).toBe(`alice:${APR1}\nbob:${NEW}\n`);
    expect(upsertUser(`alice:${APR1}`, 'alice', NEW)).toBe(`alice:${NEW}\n`);
  });

  it('creates the first line of an empty file', () => {
    expect(upsertUser('', 'alice', NEW)).toBe(`alice:${NEW}\n`);
  });

  it('keeps a byte order mark in front of the first line and finds the user behind it', () => {
    const text = fixtureText('bom.htpasswd');
    const out = upsertUser(text, 'alice', NEW);
    expect(out.charCodeAt(0)).toBe(0xfeff);
    expect(parseHtpasswd(out, 'f').users.get('alice')?.hash).toBe(NEW);
    expect(listUsers(out)).toEqual(['alice', 'dave']);
  });

  it('finds a user on an indented line, as the gateway reads it', () => {
    expect(upsertUser(`  alice:${APR1}  \nbob:${APR1}\n`, 'alice', NEW)).toBe(`alice:${NEW}\nbob:${APR1}\n`);
  });

  it('leaves lines the gateway cannot use alone', () => {
    const text = fixtureText('malformed.htpasswd');
    const out = upsertUser(text, 'newcomer', NEW);
    expect(out).toBe(`${text}newcomer:${NEW}\n`);
  });

  it('keeps the first line of a duplicated user and drops the later ones, so the file becomes usable', () => {
    const text = fixtureText('duplicates.htpasswd');
    const out = upsertUser(text, 'alice', NEW);
    const lines = out.split('\n');
    expect(lines[1]).toBe(`alice:${NEW}`);
    expect(lines.filter((l) => l.startsWith('alice:'))).toHaveLength(1);
    expect(lines[3]).toBe('# again:');
    expect(parseHtpasswd(out, 'f').problems).toEqual([]);
  });

  it('does not take a comment that mentions the user for the user', () => {
    const text = `#alice:${APR1}\n`;
    expect(upsertUser(text, 'alice', NEW)).toBe(`${text}alice:${NEW}\n`);
  });

  it('refuses names and hashes that would break the file structure', () => {
    expect(() => upsertUser(FILE, 'a:b', NEW)).toThrow(TypeError);
    expect(() => upsertUser(FILE, 'a\nb', NEW)).toThrow(TypeError);
    expect(() => upsertUser(FILE, 'ab', `${NEW}\nmallory:${APR1}`)).toThrow(TypeError);
  });
});

describe('removeUser', () => {
  it('removes just that line', () => {
    expect(removeUser(FILE, 'bot')).toEqual({ text: FILE.replace(`bot:${BCRYPT}\n`, ''), removed: true });
  });

  it('keeps CRLF and the lines around', () => {
    const crlf = FILE.replace(/\n/g, '\r\n');
    expect(removeUser(crlf, 'alice').text).toBe(crlf.replace(`alice:${APR1}\r\n`, ''));
  });

  it('returns the text unchanged when the user is not there', () => {
    const noNewline = `alice:${APR1}`;
    expect(removeUser(noNewline, 'bob')).toEqual({ text: noNewline, removed: false });
  });

  it('removes every line of a duplicated user', () => {
    const { text, removed } = removeUser(fixtureText('duplicates.htpasswd'), 'alice');
    expect(removed).toBe(true);
    expect(listUsers(text)).toEqual(['bob']);
    expect(text).toContain('# A user defined twice.\n');
    expect(text).toContain('# again:\n');
  });

  it('removes the last line without a final newline', () => {
    expect(removeUser(`alice:${APR1}\nbob:${APR1}`, 'bob').text).toBe(`alice:${APR1}\n`);
  });
});

describe('listUsers', () => {
  it('lists users in file order', () => {
    expect(listUsers(FILE)).toEqual(['alice', 'bot', 'carol']);
  });

  it('lists users whose lines the gateway cannot use, once each', () => {
    expect(listUsers(fixtureText('unsupported.htpasswd'))).toEqual([
      'des', 'nginxplain', 'failed', 'plain', 'md5crypt', 'ssha', 'bcrypt2x', 'argon', 'yes', 'ldapmd5', 'ok',
    ]);
    expect(listUsers(fixtureText('duplicates.htpasswd'))).toEqual(['alice', 'bob']);
  });
});

describe('validateUserName', () => {
  it('accepts ordinary, spaced, UTF-8 and 255-byte names', () => {
    for (const name of ['alice', 'ci-bot.prod_1', 'john doe', 'jürgen', '山田', 'a'.repeat(255), 'ü'.repeat(127)]) {
      expect(validateUserName(name)).toBeNull();
    }
  });

  it('says why a name cannot be used', () => {
    expect(validateUserName('')).toMatch(/empty/);
    expect(validateUserName('a:b')).toMatch(/contains ":"/);
    expect(validateUserName('a\tb')).toMatch(/control characters/);
    expect(validateUserName('a\u0085b')).toMatch(/control characters/);
    expect(validateUserName(' alice')).toMatch(/whitespace/);
    expect(validateUserName('alice ')).toMatch(/whitespace/);
    expect(validateUserName('alice\u00a0')).toMatch(/whitespace/);
    expect(validateUserName('#alice')).toMatch(/comment/);
    expect(validateUserName('a\ud800b')).toMatch(/Unicode/);
  });

  it('counts the 255-byte limit in UTF-8 bytes, as Apache does', () => {
    expect(validateUserName('a'.repeat(256))).toMatch(/256 bytes long; htpasswd allows at most 255/);
    expect(validateUserName('ü'.repeat(128))).toMatch(/256 bytes long/);
  });
});
