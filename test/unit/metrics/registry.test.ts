import { describe, expect, it } from 'vitest';
import { upstreamErrorOf } from '../../../src/metrics/gateway-metrics.js';
import { createMetricRegistry, labels, mergeSamples, renderPrometheus } from '../../../src/metrics/registry.js';
import { failure } from '../../../src/registry/failure.js';
import type { RequestContext } from '../../../src/registry/context.js';

describe('metric registry', () => {
  it('renders counters with HELP and TYPE, zero before the first increment', () => {
    const r = createMetricRegistry();
    const c = r.counter('x_total', 'Things.');
    expect(renderPrometheus(r.families, r.samples())).toBe('# HELP x_total Things.\n# TYPE x_total counter\nx_total 0\n');
    c.inc();
    c.inc('', 2);
    expect(renderPrometheus(r.families, r.samples())).toContain('\nx_total 3\n');
  });

  it('shows preset label sets at zero and adds new ones as they come', () => {
    const r = createMetricRegistry();
    const c = r.counter('y_total', 'Y.', [labels({ kind: 'a' })]);
    c.inc(labels({ kind: 'b' }));
    expect(r.samples()).toEqual([['y_total{kind="a"}', 0], ['y_total{kind="b"}', 1]]);
  });

  it('keeps histogram buckets cumulative, with sum and count, per label set', () => {
    const r = createMetricRegistry();
    const h = r.histogram('t_seconds', 'T.', [0.1, 1]);
    h.observe(0.05, labels({ m: 'GET' }));
    h.observe(0.5, labels({ m: 'GET' }));
    h.observe(5, labels({ m: 'GET' }));
    const text = renderPrometheus(r.families, r.samples());
    expect(text).toContain('t_seconds_bucket{m="GET",le="0.1"} 1\n');
    expect(text).toContain('t_seconds_bucket{m="GET",le="1"} 2\n');
    expect(text).toContain('t_seconds_bucket{m="GET",le="+Inf"} 3\n');
    expect(text).toContain('t_seconds_sum{m="GET"} 5.55\n');
    expect(text).toContain('t_seconds_count{m="GET"} 3\n');
    // Every line of the family comes after its TYPE line.
    expect(text.indexOf('# TYPE t_seconds histogram')).toBeLessThan(text.indexOf('t_seconds_bucket'));
  });

  it('escapes label values as the text format requires', () => {
    expect(labels({ a: 'q"b\\c\nd' })).toBe('{a="q\\"b\\\\c\\nd"}');
    expect(labels({})).toBe('');
  });

  it('adds up the samples of several processes series by series', () => {
    expect(mergeSamples([[['a', 1], ['b', 2]], [['b', 3], ['c', 4]]])).toEqual([['a', 1], ['b', 5], ['c', 4]]);
  });
});

describe('upstreamErrorOf', () => {
  const ctx = (over: Partial<RequestContext> & { status: number }): RequestContext =>
    ({ forwarded: true, failure: failure('internal', 'x'), upstreamStatus: null, ...over, res: { statusCode: over.status } }) as unknown as RequestContext;

  it('tells an unreachable upstream (502) from a silent one (504)', () => {
    expect(upstreamErrorOf(ctx({ status: 502, failure: failure('upstream-unavailable', 'ECONNREFUSED') }))).toBe('unavailable');
    expect(upstreamErrorOf(ctx({ status: 504, failure: failure('upstream-timeout', 'upstream timed out') }))).toBe('timeout');
  });

  it('names a response that broke off or could not be relayed', () => {
    expect(upstreamErrorOf(ctx({ status: 200, upstreamStatus: 200, failure: failure('upstream-interrupted', 'response interrupted: the upstream closed before the end of the body') }))).toBe('interrupted');
    expect(upstreamErrorOf(ctx({ status: 502, upstreamStatus: 200, failure: failure('upstream-bad-response', 'unusable upstream response: bad header') }))).toBe('bad_response');
  });

  it('does not blame the upstream for the client or for requests never forwarded', () => {
    expect(upstreamErrorOf(ctx({ status: 408, failure: failure('client-timeout', 'request body stalled') }))).toBeNull();
    expect(upstreamErrorOf(ctx({ status: 200, upstreamStatus: 200, failure: failure('connection-closed', 'connection closed before the end of the response') }))).toBeNull();
    expect(upstreamErrorOf(ctx({ status: 401, forwarded: false, failure: failure('auth', 'authentication mismatch') }))).toBeNull();
    expect(upstreamErrorOf(ctx({ status: 200, upstreamStatus: 200, failure: null }))).toBeNull();
  });
});
