import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileGlob, compilePattern, matchGlob, patternProblem, type MatchMeter } from '../../../src/access/glob.js';

const matches = (pattern: string, repository: string, user = 'alice') => compilePattern(pattern).matches(repository, user);

describe('repository patterns', () => {
  it('"*" matches any repository, "/" included', () => {
    for (const repo of ['app', 'team-a/app', 'a/b/c/d']) expect(matches('*', repo)).toBe(true);
  });

  it('"team-a/*" covers the namespace at any depth, not its neighbours', () => {
    expect(matches('team-a/*', 'team-a/app')).toBe(true);
    expect(matches('team-a/*', 'team-a/tools/ci')).toBe(true);
    expect(matches('team-a/*', 'team-a')).toBe(false);
    expect(matches('team-a/*', 'team-ab/app')).toBe(false);
    expect(matches('team-a/*', 'x/team-a/app')).toBe(false);
  });

  it('a pattern without "*" matches that repository only', () => {
    expect(matches('library/alpine', 'library/alpine')).toBe(true);
    expect(matches('library/alpine', 'library/alpine2')).toBe(false);
    expect(matches('library/alpine', 'library/alpin')).toBe(false);
  });

  it('"." is literal, not any character', () => {
    expect(matches('a.b/*', 'a.b/x')).toBe(true);
    expect(matches('a.b/*', 'axb/x')).toBe(false);
  });

  it('"*" inside a name: "*-dev" and "team-*/app"', () => {
    expect(matches('*-dev', 'team/app-dev')).toBe(true);
    expect(matches('*-dev', 'team/app-prod')).toBe(false);
    expect(matches('team-*/app', 'team-b/app')).toBe(true);
    expect(matches('team-*/app', 'team-b/other')).toBe(false);
  });

  it('${user} is the asking user, taken literally', () => {
    expect(matches('${user}/*', 'alice/app', 'alice')).toBe(true);
    expect(matches('${user}/*', 'bob/app', 'alice')).toBe(false);
    expect(matches('${user}/*', 'alice/app', 'bob')).toBe(false);
    expect(matches('${user}/*', 'alice/app', 'al*')).toBe(false);
    expect(matches('${user}/*', 'al*/app', 'al*')).toBe(false);
    expect(matches('${user}/*', 'jxdoe/app', 'j.doe')).toBe(false);
    expect(matches('${user}/*', 'j.doe/app', 'j.doe')).toBe(true);
    expect(matches('home/${user}', 'home/alice', 'alice')).toBe(true);
    // The same compiled pattern serves every user.
    const p = compilePattern('${user}/*');
    expect([p.matches('a/x', 'a'), p.matches('b/x', 'a'), p.matches('b/x', 'b')]).toEqual([true, false, true]);
  });

  it('${user} matches nothing for a user whose name is not one repository path component', () => {
    // "team-a/x" would otherwise get team-a/x/* inside team-a's namespace.
    expect(matches('${user}/*', 'team-a/x/app', 'team-a/x')).toBe(false);
    expect(matches('${user}/*', 'Alice/app', 'Alice')).toBe(false);
    expect(matches('${user}/*', 'a..b/app', 'a..b')).toBe(false);
    expect(matches('*', 'team-a/x/app', 'team-a/x')).toBe(true);
    expect(matches('${user}/*', 'team-a.x/app', 'team-a.x')).toBe(true);
  });

  it.each([
    ['', /empty/],
    ['Team/*', /upper-case/],
    ['team a/*', /characters/],
    ['team/?', /characters/],
    ['${USER}/*', /unknown placeholder \$\{USER\}/],
    ['${group}/*', /unknown placeholder/],
    ['/team/*', /starts or ends with "\/"/],
    ['team/', /starts or ends/],
  ])('refuses %j', (pattern, why) => {
    expect(patternProblem(pattern)).toMatch(why);
  });

  it.each(['*', 'team-a/*', '${user}/*', 'library/alpine', 'a_b.c-d/*/x'])('accepts %j', (pattern) => {
    expect(patternProblem(pattern)).toBeNull();
  });
});

/** The matcher before it was made linear: one ".*" per star. The reference for its semantics. */
function regexMatches(pattern: string, repository: string, user: string): boolean {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  if (pattern.includes('${user}') && !/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/.test(user)) return false;
  const body = pattern
    .split('${user}')
    .map((part) => part.split('*').map(escape).join('.*'))
    .join(escape(user));
  return new RegExp(`^${body}$`).test(repository);
}

describe('matching is the same as before, without backtracking', () => {
  // Small alphabets make matches and near-misses frequent.
  const nameChar = fc.constantFrom('a', 'b', '-', '/', '.');
  const patternPart = fc.oneof(nameChar, fc.constant('*'), fc.constant('${user}'));
  const pattern = fc.array(patternPart, { minLength: 1, maxLength: 8 }).map((parts) => parts.join(''));
  const name = fc.array(nameChar, { maxLength: 12 }).map((chars) => chars.join(''));
  const user = fc.constantFrom('a', 'ab', 'a-b', 'b.a', 'A', 'a/b', '*', 'a*');

  it('agrees with the regular expression on random patterns, names and users', () => {
    fc.assert(
      fc.property(pattern, name, user, (p, n, u) => {
        expect(compilePattern(p).matches(n, u)).toBe(regexMatches(p, n, u));
      }),
      { numRuns: 20_000 },
    );
  });

  it('agrees on names built from the pattern itself, which match more often', () => {
    const filled = fc.tuple(pattern, fc.array(name, { minLength: 8, maxLength: 8 }), user).map(([p, fills, u]) => {
      let i = 0;
      const n = p.replaceAll('${user}', u).replace(/\*/g, () => fills[i++ % fills.length]!);
      return [p, n, u] as const;
    });
    fc.assert(
      fc.property(filled, ([p, n, u]) => {
        expect(compilePattern(p).matches(n, u)).toBe(regexMatches(p, n, u));
      }),
      { numRuns: 20_000 },
    );
  });
});

describe('matching work is linear in the name, for every pattern', () => {
  const MAX_NAME = 255;
  /** Comparisons one match takes: at most two per name character, plus the pattern's length. */
  const bound = (pattern: string, name: string) => 2 * name.length + pattern.length + 2;

  // The old regular expressions took seconds to minutes on the first two: no reference run here.
  it.each([
    ['*a*a*a*a*b', '"a" x 255', 'a'.repeat(MAX_NAME), false],
    ['*a*a*a*a*a*a*a*a*a*a*a*a*b', '"a" x 255', 'a'.repeat(MAX_NAME), false],
    ['team-*/*/*-prod', '"team-" "x/" x 124 "x-pro"', `team-${'x/'.repeat(124)}x-pro`, false],
    ['team-*/*/*-prod', '"team-" "/" x 245 "-prox"', `team-${'/'.repeat(MAX_NAME - 10)}-prox`, false],
    ['team-*/*/*-prod', '"team-" "-prod/" x 50', `team-${'-prod/'.repeat(50)}`, false],
    ['team-*/*/*-prod', '"team-" "a/" x 120 "-prod"', `team-${'a/'.repeat(120)}-prod`, true],
    ['*aaaaaaaaab*', '"a" x 255', 'a'.repeat(MAX_NAME), false],
    ['*abababababc*', '"ab" x 127', 'ab'.repeat(127), false],
    ['a*', '"a" "b" x 254', `a${'b'.repeat(MAX_NAME - 1)}`, true],
    ['*', '"a" x 255', 'a'.repeat(MAX_NAME), true],
    ['${user}/*a*a*a*b', '"alice/" "a" x 249', `alice/${'a'.repeat(MAX_NAME - 6)}`, false],
    ['${user}/*a*a*a*b', '"alice/" "a" x 248 "b"', `alice/${'a'.repeat(MAX_NAME - 7)}b`, true],
  ])('%s against %s', (pattern, _shown, name, want) => {
    const glob = compileGlob(pattern, 'alice');
    const meter: MatchMeter = { steps: 0 };
    expect(matchGlob(glob, name, meter)).toBe(want);
    expect(meter.steps).toBeLessThanOrEqual(bound(pattern, name));
  });

  it('stays within the bound on random adversarial inputs', () => {
    const a = fc.constantFrom('a', 'b');
    const pattern = fc.array(fc.oneof(a, a, fc.constant('*')), { minLength: 1, maxLength: 40 }).map((p) => p.join(''));
    const name = fc.array(a, { minLength: 200, maxLength: MAX_NAME }).map((n) => n.join(''));
    fc.assert(
      fc.property(pattern, name, (p, n) => {
        const meter: MatchMeter = { steps: 0 };
        matchGlob(compileGlob(p, null), n, meter);
        expect(meter.steps).toBeLessThanOrEqual(bound(p, n));
      }),
      { numRuns: 2_000 },
    );
  });
});
