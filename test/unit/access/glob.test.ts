import { describe, expect, it } from 'vitest';
import { compilePattern, patternProblem } from '../../../src/access/glob.js';

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
