import { describe, expect, it } from 'vitest';
import { parseBasicAuthorization } from '../../../src/auth/basic.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const ok = (user: string, password: string) => ({ ok: true, credentials: { user, password } });
const malformed = { ok: false, reason: 'malformed', user: null };

describe('parseBasicAuthorization accepts', () => {
  it('a plain Basic credential', () => {
    expect(parseBasicAuthorization(`Basic ${b64('alice:secret')}`)).toEqual(ok('alice', 'secret'));
  });

  it('the scheme in any case, after any number of spaces', () => {
    for (const scheme of ['basic', 'BASIC', 'bAsIc']) {
      expect(parseBasicAuthorization(`${scheme}   ${b64('alice:secret')}`)).toEqual(ok('alice', 'secret'));
    }
  });

  it('passwords with colons and spaces, split at the first colon', () => {
    expect(parseBasicAuthorization(`Basic ${b64('erin: a: b :c: ')}`)).toEqual(ok('erin', ' a: b :c: '));
  });

  it('an empty password', () => {
    expect(parseBasicAuthorization(`Basic ${b64('alice:')}`)).toEqual(ok('alice', ''));
  });

  it('UTF-8 user names and passwords', () => {
    expect(parseBasicAuthorization(`Basic ${b64('josé:pässwörd 🔑')}`)).toEqual(ok('josé', 'pässwörd 🔑'));
  });

  it('a byte order mark as part of the user name rather than dropping it', () => {
    expect(parseBasicAuthorization(`Basic ${b64('\uFEFFalice:pw')}`)).toEqual(ok('\uFEFFalice', 'pw'));
  });
});

describe('parseBasicAuthorization rejects', () => {
  it('a missing or empty header as missing', () => {
    expect(parseBasicAuthorization(undefined)).toEqual({ ok: false, reason: 'missing', user: null });
    expect(parseBasicAuthorization('')).toEqual({ ok: false, reason: 'missing', user: null });
    expect(parseBasicAuthorization('   ')).toEqual({ ok: false, reason: 'missing', user: null });
  });

  it('other schemes and a scheme without credentials', () => {
    for (const value of [`Bearer ${b64('a:b')}`, 'Basic', 'Basic ', `Basicx ${b64('a:b')}`, `Basic\t${b64('a:b')}`, b64('a:b')]) {
      expect(parseBasicAuthorization(value), value).toEqual(malformed);
    }
  });

  it('anything that is not strict base64', () => {
    expect(parseBasicAuthorization('Basic YTp+fn4/Pz8=')).toEqual(ok('a', '~~~???'));
    const good = b64('alice:secret!'); // 'YWxpY2U6c2VjcmV0IQ=='
    const bad = [
      good.replace(/=+$/, ''), // padding missing
      `${good}=`, // padding extra
      `${good.slice(0, 4)} ${good.slice(4)}`, // space inside
      'YTp+fn4/Pz8='.replace('+', '-'), // base64url spellings of 'a:~~~???'
      'YTp+fn4/Pz8='.replace('/', '_'),
      'YWxp*2U6c2VjcmV0IQ==',
      'YR==', // 'a' with unused bits set: a second spelling of 'YQ=='
      '====',
    ];
    for (const token of bad) expect(parseBasicAuthorization(`Basic ${token}`), token).toEqual(malformed);
  });

  it('bytes that are not UTF-8', () => {
    const latin1 = Buffer.from('jos\xe9:pw', 'latin1').toString('base64');
    expect(parseBasicAuthorization(`Basic ${latin1}`)).toEqual(malformed);
  });

  it('no colon, an empty user, or control characters in the user', () => {
    for (const decoded of ['alice', ':secret', 'al\u0000ice:pw', 'al\nice:pw', 'al\u007fice:pw', 'al\u0085ice:pw']) {
      expect(parseBasicAuthorization(`Basic ${b64(decoded)}`), JSON.stringify(decoded)).toEqual(malformed);
    }
  });

  it('two Authorization headers joined into one value', () => {
    const value = `Basic ${b64('alice:secret')}, Basic ${b64('mallory:guess')}`;
    expect(parseBasicAuthorization(value)).toEqual(malformed);
  });

  it('without throwing, whatever it is given', () => {
    const samples = ['\u0000', 'Basic \uD800', 'Basic ' + 'A'.repeat(100_000), 'Basic ====', ' Basic  ', '\uFEFFBasic YQ=='];
    for (let i = 0; i < 2000; i++) {
      samples.push(Array.from({ length: i % 40 }, () => String.fromCharCode(Math.floor(Math.random() * 0x3000))).join(''));
    }
    for (const value of samples) expect(() => parseBasicAuthorization(value)).not.toThrow();
    expect(parseBasicAuthorization(['Basic YTpi'] as unknown as string)).toEqual(malformed);
  });
});
