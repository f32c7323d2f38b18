// `npm run soak`: the gateway as installed (one process) in front of the real registry, under a
// steady mix of what registry clients do for --minutes (10), with its RSS and open descriptors
// sampled throughout. Writes bench/soak-results.md and exits 1 when the gateway's memory grew by
// more than 20 MB, it holds more descriptors than at the start, or any request got an answer a
// client would not expect (2 when the run itself fails).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { makeBlob, seed, wrk, type Target } from './measure.js';
import { startGateway, startRegistry, treeMemory, type Service } from './services.js';
import { ensureTools, firstLine, frontFiles, logger, machineAndNode, scratch } from './setup.js';
import { makePushPool, MIX, pick, type SoakClient, type SoakContext } from './soak-requests.js';

const USAGE = `Usage: npm run soak -- [options]
  --minutes N   how long the clients keep at it, warm-up included (default 10; at least 1)
  --clients N   keep-alive clients running the mix at once (default 16)
  --out FILE    where to write the results (default bench/soak-results.md)
Quick run: npm run soak -- --minutes 1`;

const { values: flags } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    clients: { type: 'string', default: '16' },
    out: { type: 'string', default: 'bench/soak-results.md' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
function whole(name: 'minutes' | 'clients', min: number, max: number): number {
  const n = Number(flags[name]);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name} must be a whole number from ${min} to ${max}\n${USAGE}`);
    process.exit(2);
  }
  return n;
}
const opts = { minutes: whole('minutes', 1, 24 * 60), clients: whole('clients', 1, 256), out: resolve(flags.out!) };

const TOOLS: Record<string, string> = { wrk: 'wrk', 'docker-registry': 'docker-registry', htpasswd: 'apache2-utils', curl: 'curl', openssl: 'openssl' };
const REPO = 'soak/seed';
const USERS = [
  { user: 'bcrypt10', password: 'soak-bcrypt-password', algorithm: 'bcrypt' as const, cost: 10 },
  { user: 'apr1', password: 'soak-apr1-password', algorithm: 'apr1' as const },
];
const BLOB_MIB = 4;
const WARM_UP_MS = 30_000;
// Long enough for the gateway's idle keep-alive connections to the registry (closed after 30 s)
// and its idle bcrypt threads (10 s) to go: baseline and final reading are of the same idle state.
const QUIET_MS = 35_000;
const SAMPLE_EVERY_MS = 5_000;
const PAUSE_MS = 10;
const WRK_EVERY_MS = 60_000;
const WRK_SECONDS = 5;
const MAX_GROWTH_MIB = 20e6 / 2 ** 20; // 20 MB
const LIMIT_NOTE = '20 MB (19.1 MiB)';

const log = logger('soak');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Sample {
  readonly atS: number;
  readonly rssMiB: number;
  readonly fds: number;
}

interface Tally {
  done: number;
  errors: number;
}

/** The gateway's RSS and open descriptors, sampled every few seconds from /proc. */
function sampler(pid: number) {
  const t0 = Date.now();
  const samples: Sample[] = [];
  const take = (): Sample => {
    if (!existsSync(`/proc/${pid}`)) throw new Error(`the gateway (pid ${pid}) is gone`);
    const s = { atS: Math.round((Date.now() - t0) / 1000), rssMiB: treeMemory(pid).rssMiB, fds: readdirSync(`/proc/${pid}/fd`).length };
    samples.push(s);
    return s;
  };
  const timer = setInterval(() => {
    try {
      take();
    } catch {
      // reported by the next explicit take()
    }
  }, SAMPLE_EVERY_MS);
  return { samples, take, stop: () => clearInterval(timer) };
}

/** Counts per kind of request, and the first errors in full. */
function tallies() {
  const byKind = new Map<string, Tally>([...MIX.map((m) => [m.kind, { done: 0, errors: 0 }] as const), ['wrk burst: manifest GET', { done: 0, errors: 0 }]]);
  const firstErrors: string[] = [];
  return {
    byKind,
    firstErrors,
    done: (kind: string, n = 1) => (byKind.get(kind)!.done += n),
    failed(kind: string, err: unknown) {
      byKind.get(kind)!.errors++;
      if (firstErrors.length < 10) firstErrors.push(`${kind}: ${err instanceof Error ? err.message : String(err)}`);
    },
    total: (key: keyof Tally) => [...byKind.values()].reduce((sum, t) => sum + t[key], 0),
  };
}
type Tallies = ReturnType<typeof tallies>;

/** One client running the mix until `until`, on its own keep-alive connection. */
async function clientLoop(ctx: SoakContext, client: SoakClient, until: number, tally: Tallies): Promise<void> {
  while (Date.now() < until) {
    const m = pick();
    try {
      await m.run(ctx, client);
      tally.done(m.kind);
    } catch (err) {
      tally.failed(m.kind, err);
    }
    await sleep(PAUSE_MS);
  }
}

/** wrk bursts (as many connections as there are clients) every minute, none starting in the last 10 s. */
async function wrkBursts(target: Target, connections: number, until: number, tally: Tallies): Promise<void> {
  for (let next = Date.now() + 10_000; next + WRK_SECONDS * 1000 + 10_000 < until; next += WRK_EVERY_MS) {
    await sleep(next - Date.now());
    try {
      tally.done('wrk burst: manifest GET', (await wrk(target, REPO, WRK_SECONDS, { connections })).requests);
    } catch (err) {
      tally.failed('wrk burst: manifest GET', err);
    }
  }
}

/** Runs the clients and the wrk bursts for `ms`; every client connection is closed when it returns. */
async function load(ctx: SoakContext, wrkTarget: Target, ms: number, tally: Tallies): Promise<void> {
  const until = Date.now() + ms;
  const clients: SoakClient[] = Array.from({ length: opts.clients }, (_, id) => {
    const u = USERS[id % USERS.length]!;
    return { id, agent: new Agent({ keepAlive: true, maxSockets: 1 }), authorization: `Basic ${Buffer.from(`${u.user}:${u.password}`).toString('base64')}` };
  });
  await Promise.all([...clients.map((c) => clientLoop(ctx, c, until, tally)), wrkBursts(wrkTarget, opts.clients, until, tally)]);
  for (const c of clients) c.agent.destroy();
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const signed = (n: number) => `${n >= 0 ? '+' : ''}${n.toFixed(1)}`;

interface Outcome {
  baseline: Sample;
  final: Sample;
  samples: readonly Sample[];
  /** When the main load started and ended, in the samples' seconds. */
  loadFromS: number;
  loadToS: number;
  tally: Tallies;
  seconds: number;
}

function verdicts(o: Outcome) {
  const growth = o.final.rssMiB - o.baseline.rssMiB;
  return [
    { what: 'RSS growth, idle after the warm-up → idle at the end', ok: growth <= MAX_GROWTH_MIB, detail: `${signed(growth)} MiB, limit ${LIMIT_NOTE}` },
    { what: 'open descriptors back at baseline', ok: o.final.fds <= o.baseline.fds, detail: `${o.baseline.fds} → ${o.final.fds}` },
    { what: 'every answer the one a client expects', ok: o.tally.total('errors') === 0, detail: `${o.tally.total('errors')} unexpected` },
  ];
}

function table(o: Outcome): string[] {
  const during = o.samples.filter((s) => s.atS >= o.loadFromS && s.atS <= o.loadToS);
  const firstMinute = during.filter((s) => s.atS < o.loadFromS + 60).map((s) => s.rssMiB);
  const lastMinute = during.filter((s) => s.atS > o.loadToS - 60).map((s) => s.rssMiB);
  const requests = o.tally.total('done');
  const v = verdicts(o);
  return [
    '| measure | value | limit | |',
    '| --- | ---: | --- | --- |',
    `| gateway RSS, idle after the 30 s warm-up (baseline), MiB | ${o.baseline.rssMiB.toFixed(1)} | | |`,
    `| gateway RSS, peak under load, MiB | ${Math.max(...during.map((s) => s.rssMiB)).toFixed(1)} | | |`,
    `| gateway RSS under load, mean of the first → last minute, MiB | ${mean(firstMinute).toFixed(1)} → ${mean(lastMinute).toFixed(1)} | | |`,
    `| gateway RSS, idle at the end (final), MiB | ${o.final.rssMiB.toFixed(1)} | | |`,
    `| RSS growth, final − baseline, MiB | ${signed(o.final.rssMiB - o.baseline.rssMiB)} | ≤ ${LIMIT_NOTE} | ${v[0]!.ok ? 'met' : '**MISSED**'} |`,
    `| open descriptors, baseline → peak under load → final | ${o.baseline.fds} → ${Math.max(...during.map((s) => s.fds))} → ${o.final.fds} | final ≤ baseline | ${v[1]!.ok ? 'met' : '**MISSED**'} |`,
    `| requests answered as expected (per second) | ${requests} (${(requests / o.seconds).toFixed(0)}) | | |`,
    `| unexpected answers or errors | ${o.tally.total('errors')} | 0 | ${v[2]!.ok ? 'met' : '**MISSED**'} |`,
  ];
}

function kindsTable(t: Tallies): string[] {
  return ['| request | done | unexpected |', '| --- | ---: | ---: |', ...[...t.byKind].map(([kind, x]) => `| ${kind} | ${x.done} | ${x.errors} |`)];
}

async function report(o: Outcome, gateway: Service, loadAtStart: number): Promise<string> {
  const { machine, node } = machineAndNode();
  const registry = await firstLine('docker-registry', ['--version']);
  const wrkVersion = (await firstLine('wrk', ['-v'])).split(' ').slice(0, 2).join(' ');
  const gatewayLog = gateway.log().trim();
  const logLines = gatewayLog === '' ? [] : gatewayLog.split('\n');
  const v = verdicts(o);
  const missed = v.filter((c) => !c.ok);
  return `# registry-gateway soak

${new Date().toISOString().slice(0, 10)}, \`npm run soak -- --minutes ${opts.minutes} --clients ${opts.clients}\`

- machine: ${machine}; Node ${node}; ${registry}; ${wrkVersion}
- gateway: \`dist/cli/main.js serve --workers 1 --log-level warn\` (run as installed), users bcrypt (cost 10) and apr1
- 1-minute load average ${loadAtStart.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end (anything else running shares the cores)

${table(o).join('\n')}

${missed.length === 0 ? 'Every limit is met.' : `Missed: ${missed.map((c) => `${c.what} (${c.detail})`).join('; ')}.`}

${kindsTable(o.tally).join('\n')}

${o.tally.firstErrors.length === 0 ? 'No request got an unexpected answer.' : `First unexpected answers:\n\n${o.tally.firstErrors.map((e) => `- ${e}`).join('\n')}`}

The gateway logged ${logLines.length} line(s) at warn level or above${logLines.length === 0 ? '.' : `; the first:\n\n\`\`\`\n${logLines.slice(0, 5).join('\n')}\n\`\`\``}

Gateway RSS (MiB) / open descriptors every 30 s (seconds since the start; load from ${o.loadFromS} s to ${o.loadToS} s):
${o.samples.filter((s, i) => i % 6 === 0 || s === o.samples.at(-1)).map((s) => `${s.atS} s: ${s.rssMiB.toFixed(1)} / ${s.fds}`).join(', ')}.

## How it is measured

- On 127.0.0.1: the registry (Debian's docker-registry, filesystem storage in a temporary folder)
  holding a ${BLOB_MIB} MiB blob, a config and a manifest pushed straight to it; the gateway in front
  (\`dist/cli/main.js serve --workers 1\`, run as installed), with an htpasswd file written by Apache's
  \`htpasswd -B -C 10\` and \`-m\`.
- ${opts.clients} keep-alive clients (Node's https, one connection each, half as the bcrypt user and
  half as the apr1 user) each run the mix one request after another, ${PAUSE_MS} ms apart, drawn at
  random by weight: ${MIX.map((m) => `${m.kind} ${m.weight}`).join(', ')} (out of
  ${MIX.reduce((s, m) => s + m.weight, 0)}). Pulls are streamed and hashed, never kept; pushes send
  one of 32 random 256 KiB blobs, so storage stays bounded; a client leaving mid-way closes its
  connection after a quarter of the blob; wrong passwords are for a new unknown user each time
  (one user guessed again and again is throttled to 429, by design).
- Every minute, a ${WRK_SECONDS} s \`wrk -c ${opts.clients}\` burst of manifest GETs joins them.
- Every answer is checked (status, and digest, length, Range or Docker-Content-Digest where a client
  relies on it); anything else, a reset included, counts as unexpected.
- The gateway's VmRSS (/proc/PID/status) and the entries of /proc/PID/fd are sampled every
  ${SAMPLE_EVERY_MS / 1000} s. The baseline is read after a ${WARM_UP_MS / 1000} s warm-up under the
  same load, the final reading after the load, each once the clients have closed their connections
  and ${QUIET_MS / 1000} s have passed: by then the gateway has closed its idle keep-alive
  connections to the registry (after 30 s) and its idle bcrypt threads (after 10 s), so both
  readings are of the same idle state.
`;
}

async function seedRegistry(dir: string, registry: Service): Promise<Omit<SoakContext, 'port' | 'ca'>> {
  const blob = await makeBlob(join(dir, 'blob.bin'), BLOB_MIB);
  await seed({ base: `http://127.0.0.1:${registry.port}` }, REPO, blob, dir);
  const manifestDigest = `sha256:${createHash('sha256').update(readFileSync(join(dir, 'manifest.json'))).digest('hex')}`;
  return { repo: REPO, manifestDigest, blobDigest: blob.digest, blobBytes: blob.bytes, pushPool: makePushPool(32, 256 * 1024) };
}

async function main(): Promise<number> {
  await ensureTools(TOOLS, log);
  const loadAtStart = loadavg()[0]!;
  const cli = resolve('dist/cli/main.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first (npm run soak does)`);
  const { dir, started, cleanup } = await scratch('rgw-soak-', log);
  try {
    const files = await frontFiles(dir, USERS);
    for (const d of ['registry', 'gateway']) await mkdir(join(dir, d));
    const registry = await startRegistry(join(dir, 'registry'));
    started.push(registry);
    const seeded = await seedRegistry(dir, registry);
    const gateway = await startGateway(join(dir, 'gateway'), files, registry.port, { cli, workers: '1' });
    started.push(gateway);
    const ctx: SoakContext = { ...seeded, port: gateway.port, ca: readFileSync(files.caFile) };
    const wrkTarget: Target = { base: `https://127.0.0.1:${gateway.port}`, caFile: files.caFile, credentials: `${USERS[1]!.user}:${USERS[1]!.password}` };
    const tally = tallies();
    const proc = sampler(gateway.pid);
    const startedAt = Date.now();
    try {
      log(`gateway pid ${gateway.pid} on ${gateway.port}; ${WARM_UP_MS / 1000} s warm-up with ${opts.clients} clients, then ${QUIET_MS / 1000} s quiet`);
      await load(ctx, wrkTarget, WARM_UP_MS, tally);
      await sleep(QUIET_MS);
      const baseline = proc.take();
      log(`baseline: RSS ${baseline.rssMiB.toFixed(1)} MiB, ${baseline.fds} descriptors; load for ${opts.minutes * 60 - WARM_UP_MS / 1000} s more`);
      const loadFromS = baseline.atS;
      const progress = setInterval(() => {
        const s = proc.samples.at(-1)!;
        log(`  ${tally.total('done')} requests, ${tally.total('errors')} unexpected; RSS ${s.rssMiB.toFixed(1)} MiB, ${s.fds} descriptors`);
      }, 60_000);
      await load(ctx, wrkTarget, opts.minutes * 60_000 - WARM_UP_MS, tally).finally(() => clearInterval(progress));
      const loadToS = proc.take().atS;
      log(`load over; ${QUIET_MS / 1000} s quiet`);
      await sleep(QUIET_MS);
      const final = proc.take();
      const outcome: Outcome = { baseline, final, samples: proc.samples, loadFromS, loadToS, tally, seconds: opts.minutes * 60 };
      await writeFile(opts.out, await report(outcome, gateway, loadAtStart));
      console.log(`\n${table(outcome).join('\n')}\n\n${kindsTable(tally).join('\n')}\n`);
      for (const e of tally.firstErrors) console.log(`unexpected: ${e}`);
      const v = verdicts(outcome);
      for (const c of v) console.log(`${c.ok ? 'met   ' : 'MISSED'}  ${c.what}: ${c.detail}`);
      console.log(`\nwritten to ${opts.out} (${Math.round((Date.now() - startedAt) / 1000)} s)`);
      return v.every((c) => c.ok) ? 0 : 1;
    } finally {
      proc.stop();
    }
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`soak failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
