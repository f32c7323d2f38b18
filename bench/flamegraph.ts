// What a V8 CPU profile (`node --cpu-prof`) of the gateway says: the samples folded into stacks,
// each stack's time put in one category, and a flame graph as a self-contained SVG. Pure functions,
// no I/O: profile.ts reads and writes the files.
import { pathToFileURL } from 'node:url';

/** A V8 `.cpuprofile`, as Node writes it. */
export interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
    readonly children?: readonly number[];
  }[];
  /** µs, on the same clock as process.hrtime(). */
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface Frame {
  /** The function's name; `(anonymous)` for one without, `(program)` and such for V8's own. */
  readonly name: string;
  /** `dist/...` and `node_modules/...` relative to the project, `node:...`, or '' for native code. */
  readonly url: string;
  /** 1-based; 0 when unknown (native code). */
  readonly line: number;
}

/** One distinct call stack, outermost frame first, and the time sampled in it. */
export interface Stack {
  readonly frames: readonly Frame[];
  readonly us: number;
}

/**
 * Folds a profile's samples into stacks, without `(idle)` (the thread waiting for work) and
 * without V8's `(root)`. Each sample counts for the time until the next one (the last, until the
 * profile's end). With `fromUs`/`toUs`, only the samples taken in that window (same clock as the
 * profile's timestamps). URLs under `root` (a folder's path; ES modules' URLs are file: URLs of
 * it, CommonJS ones may be plain paths) are made relative to it.
 */
export function foldProfile(profile: CpuProfile, options: { root?: string; fromUs?: number; toUs?: number } = {}): Stack[] {
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const root = options.root?.replace(/\/$/, '');
  const prefixes = root === undefined ? [] : [`${pathToFileURL(root).href}/`, `${root}/`];
  const framesOf = new Map<number, Frame[] | null>();
  const frames = (id: number): Frame[] | null => {
    const known = framesOf.get(id);
    if (known !== undefined) return known;
    const out: Frame[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { functionName, url, lineNumber } = byId.get(at)!.callFrame;
      if (functionName === '(root)' && url === '') continue;
      const prefix = prefixes.find((p) => url.startsWith(p));
      const relative = prefix === undefined ? url : url.slice(prefix.length);
      out.push({ name: functionName === '' ? '(anonymous)' : functionName, url: relative, line: lineNumber + 1 });
    }
    out.reverse();
    const result = out.length === 1 && out[0]!.name === '(idle)' && out[0]!.url === '' ? null : out;
    framesOf.set(id, result);
    return result;
  };

  const from = options.fromUs ?? -Infinity;
  const to = options.toUs ?? Infinity;
  const stacks = new Map<string, { frames: Frame[]; us: number }>();
  const { samples, timeDeltas } = profile;
  let t = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i] ?? 0;
    if (t < from || t >= to) continue;
    const next = i + 1 < samples.length ? t + (timeDeltas[i + 1] ?? 0) : profile.endTime;
    // V8 now and then records a sample out of order; it counts for nothing rather than negative time.
    const us = Math.max(0, Math.min(next, to) - t);
    const f = frames(samples[i]!);
    if (f === null || us === 0) continue;
    const key = f.map(frameKey).join('\n');
    const entry = stacks.get(key);
    if (entry) entry.us += us;
    else stacks.set(key, { frames: f, us });
  }
  return [...stacks.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, s]) => s);
}

const frameKey = (f: Frame) => `${f.name}\t${f.url}\t${f.line}`;

/** `name file:line`, or the name alone for native code. */
export function frameLabel(f: Frame): string {
  return f.url === '' ? f.name : `${f.name} ${f.url}:${f.line}`;
}

/**
 * Brendan Gregg's folded format (`a;b;c 123`, µs), which flamegraph.pl and speedscope read; a `;`
 * in a name becomes `,`.
 */
export function foldedText(stacks: readonly Stack[]): string {
  return stacks.map((s) => `${s.frames.map((f) => frameLabel(f).replaceAll(';', ',')).join(';')} ${Math.round(s.us)}\n`).join('');
}

export const CATEGORIES = ['tls', 'server', 'upstream', 'relay', 'gateway', 'logging', 'sockets', 'streams', 'node', 'gc', 'program', 'other'] as const;
export type Category = (typeof CATEGORIES)[number];

export const CATEGORY_LABELS: Readonly<Record<Category, string>> = {
  tls: 'TLS and crypto: their JavaScript (handshakes, node:crypto calls)',
  server: 'HTTP server: parsing requests, writing responses',
  upstream: 'HTTP client to the registry',
  relay: "HTTP code of either side, called by the gateway's relay (or with no side on the stack)",
  gateway: "the gateway's own code (dist/)",
  logging: 'logging (pino, sonic-boom, thread-stream)',
  sockets: 'native socket calls: writes (TLS encryption included), read start/stop',
  streams: 'streams and sockets: their JavaScript',
  node: 'events, timers, other Node internals',
  gc: 'garbage collector',
  program: '(program): native code with no JavaScript on the stack',
  other: 'other (libraries, unknown)',
};

/*
 * The category of a stack's time: walking from the leaf towards the root, the first frame a rule
 * below names decides. Native frames (url '', such as writev, writeBuffer, readStart, or llhttp's
 * execute) have no rule: the JavaScript that called them decides, so parsing counts where
 * socketOnData does, except for socket calls (below).
 *
 *   gateway   a url under dist/
 *   logging   a url in node_modules/ of pino (and pino-*), sonic-boom, thread-stream or their helpers
 *   tls       node:_tls_wrap, node:_tls_common, node:tls, node:internal/tls/*, node:crypto,
 *             node:internal/crypto/*
 *   server    node:_http_server (parserOnIncoming, writeHead, the server's socketOnData)
 *   upstream  node:_http_client, node:_http_agent (parserOnIncomingClient, the client's
 *             socketOnData), and node:http's request and get
 *   shared HTTP code (node:_http_common, node:_http_incoming, node:_http_outgoing, node:internal/http,
 *             the rest of node:http): server or upstream by the nearest "owner" frame above it (one
 *             of the five rules above). With no owner above at all, and an HTTP parser callback
 *             (parserOn*, onParserExecute) outermost, server: the server's parser reads straight
 *             from its socket in C++ (parser.consume), so nothing is above its callbacks, while the
 *             client's runs under its socketOnData. Otherwise (the owner is the gateway, or there
 *             is none) `relay`.
 *   sockets   a native leaf right under a streams frame (below): the socket's own calls (writev,
 *             writeBuffer, writeLatin1String, readStart, ...), `tls` when under a TLS frame
 *   streams   node:net, node:stream, node:internal/streams/*, node:internal/stream_base_commons,
 *             node:internal/net: `tls` when the nearest owner above is a TLS frame
 *   node      any other node:* url (events, timers, task queues, buffers, URL parsing, ...)
 *   gc, program  V8's (garbage collector) and (program) leaves
 *   other     anything else (another library, eval'd code), or no rule met at all
 *
 * Why the nearest owner and not any frame above: above the gateway's code, a stack says which
 * socket's event the gateway was handling, not which message it writes. A pull's response is
 * written to the client from the registry's 'data' events (_http_client frames near the root, none
 * of _http_server's), a push's body to the registry from the client's: taken from those frames,
 * each would count on the wrong side. So HTTP code the gateway's relay calls (res.write and end,
 * upstreamReq.write) is `relay`, and the socket writes under it are `sockets` for either side.
 *
 * What no stack shows: Node encrypts TLS records inside the native write of the TLS socket, which
 * looks the same as a plain TCP write (so a response's encryption is in `sockets`), and decrypts
 * them in libuv's read callback before any JavaScript runs, which the profiler samples as
 * `(idle)`: that work is in no category (profile.ts sets /proc's CPU of the thread beside the
 * profile's). The `tls` row is TLS's JavaScript: handshakes, session set-up, and node:crypto.
 */
type Owner = 'gateway' | 'logging' | 'tls' | 'server' | 'upstream';
type Kind = Owner | 'http' | 'streams' | 'node' | 'other';

const LOGGING = /(^|\/)node_modules\/(pino[^/]*|sonic-boom|thread-stream|quick-format-unescaped|fast-redact|safe-stable-stringify|on-exit-leak-free|atomic-sleep|real-require)\//;
const TLS = /^node:(_tls_wrap|_tls_common|tls|crypto|internal\/tls\/.*|internal\/crypto\/.*)$/;
const SHARED_HTTP = /^node:(_http_common|_http_incoming|_http_outgoing|internal\/http|http)$/;
const STREAMS = /^node:(net|stream|internal\/net|internal\/stream_base_commons|internal\/streams\/.*)$/;
const PARSER_CALLBACK = /^(parserOn\w+|onParserExecute)$/;
const OWNERS: ReadonlySet<Kind> = new Set<Owner>(['gateway', 'logging', 'tls', 'server', 'upstream']);

function kindOf(f: Frame): Kind | null {
  const u = f.url;
  if (u === '') return null;
  if (u.startsWith('dist/')) return 'gateway';
  if (LOGGING.test(u)) return 'logging';
  if (TLS.test(u)) return 'tls';
  if (u === 'node:_http_server') return 'server';
  if (u === 'node:_http_client' || u === 'node:_http_agent' || (u === 'node:http' && (f.name === 'request' || f.name === 'get'))) return 'upstream';
  if (SHARED_HTTP.test(u)) return 'http';
  if (STREAMS.test(u)) return 'streams';
  if (u.startsWith('node:')) return 'node';
  return 'other';
}

function ownerAbove(frames: readonly Frame[], index: number): Owner | null {
  for (let j = index - 1; j >= 0; j--) {
    const k = kindOf(frames[j]!);
    if (k !== null && OWNERS.has(k)) return k as Owner;
  }
  return null;
}

/** The category of a stack (outermost frame first), and the frame that decided it, if any. */
export function classify(frames: readonly Frame[]): { category: Category; by: Frame | null } {
  const leaf = frames.at(-1);
  if (leaf?.url === '' && leaf.name === '(garbage collector)') return { category: 'gc', by: leaf };
  if (leaf?.url === '' && leaf.name === '(program)') return { category: 'program', by: leaf };
  for (let i = frames.length - 1; i >= 0; i--) {
    const f = frames[i]!;
    const k = kindOf(f);
    if (k === null) continue;
    if (k === 'http') {
      const owner = ownerAbove(frames, i);
      if (owner === 'server' || owner === 'upstream') return { category: owner, by: f };
      const outermost = frames[0]!;
      const consumed = owner === null && kindOf(outermost) !== null && PARSER_CALLBACK.test(outermost.name);
      return { category: consumed ? 'server' : 'relay', by: f };
    }
    if (k === 'streams') {
      if (ownerAbove(frames, i) === 'tls') return { category: 'tls', by: f };
      return { category: i < frames.length - 1 ? 'sockets' : 'streams', by: f };
    }
    return { category: k, by: f };
  }
  return { category: 'other', by: null };
}

export interface Breakdown {
  /** All the stacks' time: the thread's busy CPU time, µs. */
  readonly busyUs: number;
  readonly byCategory: Readonly<Record<Category, number>>;
  /** Per file of dist/: time decided by a frame of it (self), and time with it anywhere on the stack. */
  readonly gatewayFiles: ReadonlyMap<string, { selfUs: number; inclusiveUs: number }>;
}

export function breakdown(stacks: readonly Stack[]): Breakdown {
  const byCategory = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
  const files = new Map<string, { selfUs: number; inclusiveUs: number }>();
  const file = (name: string) => {
    let entry = files.get(name);
    if (!entry) files.set(name, (entry = { selfUs: 0, inclusiveUs: 0 }));
    return entry;
  };
  let busyUs = 0;
  for (const s of stacks) {
    busyUs += s.us;
    const { category, by } = classify(s.frames);
    byCategory[category] += s.us;
    if (category === 'gateway') file(by!.url).selfUs += s.us;
    for (const url of new Set(s.frames.filter((f) => kindOf(f) === 'gateway').map((f) => f.url))) file(url).inclusiveUs += s.us;
  }
  return { busyUs, byCategory, gatewayFiles: files };
}

/** A frame in the merged call tree; `us` includes its callees. */
export interface FlameNode {
  readonly frame: Frame;
  us: number;
  readonly children: Map<string, FlameNode>;
}

/** The stacks merged into one tree under a root frame `all`, children in the order first met. */
export function buildTree(stacks: readonly Stack[]): FlameNode {
  const root: FlameNode = { frame: { name: 'all', url: '', line: 0 }, us: 0, children: new Map() };
  for (const s of stacks) {
    root.us += s.us;
    let node = root;
    for (const f of s.frames) {
      const key = frameKey(f);
      let child = node.children.get(key);
      if (!child) node.children.set(key, (child = { frame: f, us: 0, children: new Map() }));
      child.us += s.us;
      node = child;
    }
  }
  return root;
}

/**
 * A copy of the tree without the frames narrower than `minFraction` of the root: their time stays
 * in their caller's width, drawn as its own.
 */
export function pruneTree(root: FlameNode, minFraction: number): FlameNode {
  const min = root.us * minFraction;
  const copy = (n: FlameNode): FlameNode => {
    const children = new Map<string, FlameNode>();
    for (const [key, child] of n.children) if (child.us >= min && child.us > 0) children.set(key, copy(child));
    return { frame: n.frame, us: n.us, children };
  };
  return copy(root);
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Hue and saturation per category; each frame's lightness varies a little with its name. */
const COLORS: Readonly<Record<Category, [number, number]>> = {
  tls: [0, 70],
  server: [30, 85],
  upstream: [200, 70],
  relay: [265, 45],
  gateway: [120, 55],
  logging: [300, 60],
  sockets: [15, 90],
  streams: [50, 85],
  node: [180, 35],
  gc: [0, 0],
  program: [220, 15],
  other: [30, 20],
};

function colorOf(category: Category, name: string): string {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  const [hue, sat] = COLORS[category];
  return `hsl(${hue},${sat}%,${62 + (h % 16)}%)`;
}

const ROW = 17;
const CHAR = 6.6;

/**
 * An icicle graph (callers above their callees) of the tree: every node a <rect> as wide as its
 * time, with a <title> (function, file:line, time, share, category) shown on hover, colored by the
 * category of the node's own time, and labelled when wide enough; a legend with each category's
 * share (`byCategory`, µs) below. No script: any SVG viewer shows it.
 */
export function renderSvg(root: FlameNode, options: { title: string; subtitle: string; byCategory: Readonly<Record<Category, number>>; width?: number }): string {
  const width = options.width ?? 1200;
  const pad = 10;
  const scale = root.us > 0 ? (width - 2 * pad) / root.us : 0;
  const top = 50;
  const rects: string[] = [];
  const labels: string[] = [];
  let depth = 0;
  const draw = (node: FlameNode, path: Frame[], x: number, level: number) => {
    depth = Math.max(depth, level + 1);
    const w = node.us * scale;
    const y = top + level * ROW;
    const category: Category = path.length === 0 ? 'other' : classify(path).category;
    const childUs = [...node.children.values()].reduce((sum, c) => sum + c.us, 0);
    const where = node.frame.url === '' ? (path.length === 0 ? '' : 'native') : `${node.frame.url}:${node.frame.line}`;
    const title = [
      node.frame.name,
      ...(where === '' ? [] : [where]),
      `${(node.us / 1000).toFixed(1)} ms, ${((node.us / root.us) * 100).toFixed(2)}% (in itself, or in callees too narrow to draw: ${((node.us - childUs) / 1000).toFixed(1)} ms)`,
      ...(path.length === 0 ? [] : [CATEGORY_LABELS[category]]),
    ].join('\n');
    const fill = path.length === 0 ? '#ddd' : colorOf(category, node.frame.name);
    rects.push(
      `<rect class="frame" x="${(pad + x).toFixed(1)}" y="${y}" width="${Math.max(w - 0.5, 0.1).toFixed(1)}" height="${ROW - 1}" fill="${fill}"><title>${escapeXml(title)}</title></rect>`,
    );
    const chars = Math.floor((w - 6) / CHAR);
    if (chars >= 3) {
      const name = node.frame.name.length <= chars ? node.frame.name : `${node.frame.name.slice(0, chars - 2)}..`;
      labels.push(`<text x="${(pad + x + 3).toFixed(1)}" y="${y + ROW - 5}">${escapeXml(name)}</text>`);
    }
    let at = x;
    for (const child of node.children.values()) {
      draw(child, [...path, child.frame], at, level + 1);
      at += child.us * scale;
    }
  };
  draw(root, [], 0, 0);

  const legendTop = top + depth * ROW + 20;
  const total = CATEGORIES.reduce((sum, c) => sum + options.byCategory[c], 0) || 1;
  const legend = CATEGORIES.map((c, i) => {
    const x = pad + (i % 2) * Math.floor((width - 2 * pad) / 2);
    const y = legendTop + Math.floor(i / 2) * ROW;
    const share = ((options.byCategory[c] / total) * 100).toFixed(1);
    return `<rect x="${x}" y="${y}" width="12" height="12" fill="${colorOf(c, '')}"/><text x="${x + 17}" y="${y + 10}">${escapeXml(`${share}% ${CATEGORY_LABELS[c]}`)}</text>`;
  });
  const height = legendTop + Math.ceil(CATEGORIES.length / 2) * ROW + pad;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Verdana, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${pad}" y="20" font-size="15">${escapeXml(options.title)}</text>`,
    `<text x="${pad}" y="38" fill="#555">${escapeXml(options.subtitle)}</text>`,
    ...rects,
    // Labels let the pointer through to their frame's <title>.
    `<g pointer-events="none">`,
    ...labels,
    `</g>`,
    ...legend,
    `</svg>`,
    '',
  ].join('\n');
}
