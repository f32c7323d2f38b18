// The profile reading behind `npm run profile`: which category a stack's time goes to, how samples
// fold into stacks, and what the flame graph shows.
import { describe, expect, it } from 'vitest';
import { breakdown, buildTree, classify, foldedText, foldProfile, pruneTree, renderSvg, type CpuProfile, type Frame } from '../../../bench/flamegraph.js';

const f = (name: string, url = '', line = 1): Frame => ({ name, url, line: url === '' ? 0 : line });
const category = (...frames: Frame[]) => classify(frames).category;

describe('category of a stack', () => {
  it('puts native leaves with the JavaScript that called them', () => {
    expect(category(f('socketOnData', 'node:_http_server'), f('execute'))).toBe('server');
    expect(category(f('socketOnData', 'node:_http_client'), f('execute'))).toBe('upstream');
    expect(category(f('onStreamRead', 'node:internal/stream_base_commons'), f('push', 'node:internal/streams/readable'))).toBe('streams');
  });

  it("counts the sockets' own native calls apart from their JavaScript", () => {
    const write = [f('Socket._writeGeneric', 'node:net'), f('writeGeneric', 'node:internal/stream_base_commons')];
    expect(category(...write)).toBe('streams');
    expect(category(...write, f('writeBuffer'))).toBe('sockets');
    expect(category(f('onStreamRead', 'node:internal/stream_base_commons'), f('push', 'node:internal/streams/readable'), f('readStart'))).toBe('sockets');
  });

  it('gives shared HTTP code the side of the nearest owner above it, and the relay row when that is the gateway', () => {
    const fromUpstreamData = [f('socketOnData', 'node:_http_client'), f('parserOnBody', 'node:_http_common'), f('emit', 'node:events')];
    expect(category(...fromUpstreamData.slice(0, 2))).toBe('upstream');
    // A pull's response written to the client from the registry's 'data' event: not the upstream's.
    expect(category(...fromUpstreamData, f('(anonymous)', 'dist/proxy/forward.js'), f('write', 'node:_http_outgoing'))).toBe('relay');
    expect(category(f('parserOnIncoming', 'node:_http_server'), f('writeHead', 'node:_http_server'), f('_storeHeader', 'node:_http_outgoing'))).toBe('server');
    // The socket write under it is a socket write, whoever asked.
    expect(category(...fromUpstreamData, f('(anonymous)', 'dist/proxy/forward.js'), f('write', 'node:_http_outgoing'), f('writeGeneric', 'node:internal/stream_base_commons'), f('writeBuffer'))).toBe('sockets');
    expect(category(f('(anonymous)', 'dist/proxy/forward.js'), f('request', 'node:http'))).toBe('upstream');
  });

  it("takes parser callbacks with nothing above them for the server's: its parser reads the socket in C++", () => {
    expect(category(f('parserOnHeadersComplete', 'node:_http_common'))).toBe('server');
    expect(category(f('parserOnBody', 'node:_http_common'), f('push', 'node:internal/streams/readable'))).toBe('streams');
    expect(category(f('endReadableNT', 'node:internal/streams/readable'), f('end', 'node:_http_outgoing'))).toBe('relay');
  });

  it('counts TLS, logging, the gateway and V8 by their own frames', () => {
    expect(category(f('onhandshakedone', 'node:_tls_wrap'))).toBe('tls');
    expect(category(f('tlsConnectionListener', 'node:_tls_wrap'), f('Socket', 'node:net'))).toBe('tls');
    expect(category(f('handle', 'dist/server/gateway.js'), f('write', 'node_modules/pino/lib/proto.js'), f('write', 'node_modules/sonic-boom/index.js'), f('writeSync'))).toBe('logging');
    expect(category(f('handle', 'dist/server/gateway.js'), f('isAuthorized', 'dist/auth/basic.js'))).toBe('gateway');
    expect(classify([f('handle', 'dist/server/gateway.js'), f('isAuthorized', 'dist/auth/basic.js'), f('timingSafeEqual')]).by?.url).toBe('dist/auth/basic.js');
    expect(category(f('(garbage collector)'))).toBe('gc');
    expect(category(f('(program)'))).toBe('program');
    expect(category(f('processTicksAndRejections', 'node:internal/process/task_queues'))).toBe('node');
    expect(category(f('parse', 'node_modules/yaml/dist/index.js'))).toBe('other');
  });
});

/** root -> (idle), (program), handle (dist) -> parse (node:url); handle -> <a & "b"> (dist). */
const PROFILE: CpuProfile = {
  nodes: [
    { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 3, 4] },
    { id: 2, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
    { id: 3, callFrame: { functionName: '(program)', url: '', lineNumber: -1 } },
    { id: 4, callFrame: { functionName: 'handle', url: 'file:///srv/gw/dist/server/gateway.js', lineNumber: 9 }, children: [5, 6] },
    { id: 5, callFrame: { functionName: 'parse', url: 'node:internal/url', lineNumber: 99 } },
    { id: 6, callFrame: { functionName: '<a & "b">', url: 'file:///srv/gw/dist/x.js', lineNumber: 0 } },
  ],
  startTime: 1_000,
  // Sample i lasts until sample i+1; the last one until endTime.
  samples: [2, 5, 5, 3, 4, 2, 6],
  timeDeltas: [0, 1_000, 400, 400, 200, 100, 900],
  endTime: 1_000 + 3_000 + 10,
};

describe('folding a profile', () => {
  const stacks = foldProfile(PROFILE, { root: '/srv/gw' });

  it('leaves out idle time, merges equal stacks and makes paths relative to the project', () => {
    const byLeaf = Object.fromEntries(stacks.map((s) => [s.frames.at(-1)!.name, s]));
    expect(Object.keys(byLeaf).sort()).toEqual(['(program)', '<a & "b">', 'handle', 'parse']);
    expect(byLeaf.parse!.us).toBe(800);
    expect(byLeaf.parse!.frames).toEqual([{ name: 'handle', url: 'dist/server/gateway.js', line: 10 }, { name: 'parse', url: 'node:internal/url', line: 100 }]);
    expect(byLeaf['<a & "b">']!.us).toBe(10);
    expect(breakdown(stacks).busyUs).toBe(800 + 200 + 100 + 10);
  });

  it('counts only the samples in a window', () => {
    const windowed = foldProfile(PROFILE, { root: '/srv/gw', fromUs: 2_000, toUs: 2_500 });
    expect(windowed.map((s) => [s.frames.at(-1)!.name, s.us])).toEqual([['parse', 500]]);
  });

  it('writes the folded format flamegraph.pl reads', () => {
    expect(foldedText(stacks)).toContain('handle dist/server/gateway.js:10;parse node:internal/url:100 800\n');
    expect(foldedText(stacks)).toContain('(program) 200\n');
  });

  it('splits the time by category and the gateway own time by file', () => {
    const b = breakdown(stacks);
    expect(b.byCategory).toMatchObject({ gateway: 110, node: 800, program: 200, other: 0 });
    expect(b.gatewayFiles.get('dist/server/gateway.js')).toEqual({ selfUs: 100, inclusiveUs: 910 });
    expect(b.gatewayFiles.get('dist/x.js')).toEqual({ selfUs: 10, inclusiveUs: 10 });
  });
});

describe('flame graph', () => {
  const stacks = foldProfile(PROFILE, { root: '/srv/gw' });
  const tree = buildTree(stacks);
  const svg = (minFraction: number) =>
    renderSvg(pruneTree(tree, minFraction), { title: 'test & <check>', subtitle: '', byCategory: breakdown(stacks).byCategory, width: 1110 + 20 });
  const frames = (text: string) => [...text.matchAll(/<rect class="frame" x="([\d.]+)" y="\d+" width="([\d.]+)"[^>]*><title>([^<]*)<\/title>/g)];

  it('draws one rect per frame, widths by time, narrow frames merged into their caller', () => {
    const all = frames(svg(0));
    // all, (program), handle, parse, <a & "b">
    expect(all).toHaveLength(5);
    const width = (name: string) => Number(all.find((m) => m[3]!.startsWith(`${name}\n`))![2]);
    // 1110 µs over 1110 px: a frame's width is its time (less the half-pixel gap between frames).
    expect(width('all')).toBeCloseTo(1109.5, 0);
    expect(width('handle')).toBeCloseTo(909.5, 0);
    expect(width('parse')).toBeCloseTo(799.5, 0);
    // 10 µs of 1110 is under 1%: gone, its time left in handle's width.
    const pruned = frames(svg(0.01));
    expect(pruned).toHaveLength(4);
    expect(pruned.some((m) => m[3]!.includes('dist/x.js'))).toBe(false);
    expect(Number(pruned.find((m) => m[3]!.startsWith('handle\n'))![2])).toBeCloseTo(909.5, 0);
  });

  it('says on hover where a frame is, how long it ran and in which category, with names escaped', () => {
    const text = svg(0);
    const handle = frames(text).find((m) => m[3]!.startsWith('handle\n'))![3];
    expect(handle).toBe("handle\ndist/server/gateway.js:10\n0.9 ms, 81.98% (in itself, or in callees too narrow to draw: 0.1 ms)\nthe gateway's own code (dist/)".replace("'", '&apos;'));
    expect(text).toContain('&lt;a &amp; &quot;b&quot;&gt;');
    expect(text).toContain('test &amp; &lt;check&gt;');
    expect(text).not.toMatch(/<a &|"b"/);
    expect(text).not.toContain('(idle)');
  });
});
