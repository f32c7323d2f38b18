// `npm run profile`: where the gateway's CPU goes. Runs the gateway (one process) under
// `node --cpu-prof` in front of the registry, once per scenario, and writes the split of its main
// thread's CPU time into categories (bench/profile.md) and a flame graph per scenario
// (bench/profiles/SCENARIO.svg). Rules for the categories: bench/flamegraph.ts.
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { breakdown, buildTree, CATEGORIES, CATEGORY_LABELS, foldedText, foldProfile, pruneTree, renderSvg, type Breakdown, type CpuProfile, type Stack } from './flamegraph.js';
import { makeBlob, pull, push, seed, wrk, type Target } from './measure.js';
import { startGateway, startRegistry, treeCpuSeconds, type Service } from './services.js';
import { ensureTools, frontFiles, logger, machineAndNode, scratch } from './setup.js';

const USAGE = `Usage: npm run profile -- [options]
  --scenario NAME   small, push, pull or all (default all)
  --seconds N       duration of the small scenario's wrk run (default 20)
  --push-mib N      size of the blob pushed and pulled (default 512)
  --out FILE        where to write the tables (default bench/profile.md); flame graphs go to bench/profiles/
  --keep DIR        also keep each scenario's .cpuprofile (it opens in Chrome DevTools) and what was measured
  --from DIR        start nothing: make the tables and flame graphs again from what --keep kept
Quick run: npm run profile -- --seconds 8 --push-mib 128`;

const { values: flags } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'all' },
    seconds: { type: 'string', default: '20' },
    'push-mib': { type: 'string', default: '512' },
    out: { type: 'string', default: 'bench/profile.md' },
    keep: { type: 'string' },
    from: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
function positive(name: 'seconds' | 'push-mib', max: number): number {
  const n = Number(flags[name]);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    console.error(`--${name} must be a whole number from 1 to ${max}\n${USAGE}`);
    process.exit(2);
  }
  return n;
}
const SCENARIOS = ['small', 'push', 'pull'] as const;
type Scenario = (typeof SCENARIOS)[number];
if (flags.scenario !== 'all' && !(SCENARIOS as readonly string[]).includes(flags.scenario!)) {
  console.error(`--scenario must be small, push, pull or all\n${USAGE}`);
  process.exit(2);
}
const opts = {
  scenarios: flags.scenario === 'all' ? [...SCENARIOS] : [flags.scenario as Scenario],
  seconds: positive('seconds', 600),
  pushMib: positive('push-mib', 8192),
  out: resolve(flags.out!),
  keep: flags.keep === undefined ? null : resolve(flags.keep),
  from: flags.from === undefined ? null : resolve(flags.from),
};

const TOOLS: Record<string, string> = { wrk: 'wrk', 'docker-registry': 'docker-registry', htpasswd: 'apache2-utils', curl: 'curl', openssl: 'openssl' };
const REPO = 'bench/seed';
const USER = { user: 'apr1', password: 'bench-apr1-password', algorithm: 'apr1' } as const;
// As run.ts's "every request to the registry" rows: the gateway skips its manifest cache.
const FRESH = 'Cache-Control: no-cache';
const TRANSFERS = 3;
const PROFILES = resolve('bench/profiles');
/** Frames narrower than this share of a flame graph's total are merged into their caller. */
const MIN_FRAME = 0.001;
const MAX_FOLDED = 300 * 1024;

const log = logger('profile');
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

/** What a scenario did while it was profiled; `--keep` writes these, `--from` reads them. */
interface Measured {
  readonly scenario: Scenario;
  readonly title: string;
  /** What was done, in a sentence. */
  readonly detail: string;
  readonly requests?: number;
  readonly bytes?: number;
  /** The window of the profile that counts, on the profile's clock (µs). */
  readonly fromUs: number;
  readonly toUs: number;
  /** User + system CPU of the whole gateway process (all threads) over the window, from /proc. */
  readonly processCpuS: number;
  /** The same, of its main thread alone. */
  readonly mainThreadCpuS: number;
  /** The other threads' CPU over the window, by thread name, most first. */
  readonly otherThreadsCpu: { name: string; threads: number; s: number }[];
  /** The .cpuprofile of the main thread. */
  readonly profile: string;
  /** .cpuprofile files of other threads in the same folder (not analysed). */
  readonly otherThreads: number;
}

interface Run {
  readonly date: string;
  readonly command: string;
  readonly machine: string;
  readonly node: string;
  readonly scenarios: Measured[];
}

const TITLES: Record<Scenario, string> = {
  small: 'small: uncached manifest GETs',
  push: 'push: monolithic blob uploads',
  pull: 'pull: blob downloads',
};

/** CPU seconds (user + system) so far of each thread of a process, with its name, from /proc/PID/task. */
function threadCpu(pid: number): Map<number, { name: string; s: number }> {
  const out = new Map<number, { name: string; s: number }>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      // USER_HZ is 100, as in services.ts.
      out.set(Number(tid), { name, s: (Number(fields[11]) + Number(fields[12])) / 100 });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** What each thread spent between two threadCpu() readings: the main thread's, and the others' by name. */
function threadsBetween(pid: number, before: Map<number, { name: string; s: number }>, after: Map<number, { name: string; s: number }>) {
  const spent = (tid: number) => after.get(tid)!.s - (before.get(tid)?.s ?? 0);
  const others = new Map<string, { name: string; threads: number; s: number }>();
  for (const [tid, t] of after) {
    if (tid === pid) continue;
    const entry = others.get(t.name) ?? { name: t.name, threads: 0, s: 0 };
    entry.threads += 1;
    entry.s += spent(tid);
    others.set(t.name, entry);
  }
  return { mainThreadCpuS: after.has(pid) ? spent(pid) : 0, otherThreadsCpu: [...others.values()].sort((a, b) => b.s - a.s) };
}

/** The main thread's profile among what `node --cpu-prof` wrote: CPU.DATE.TIME.PID.THREAD.SEQ.cpuprofile, thread 0. */
async function profileOf(dir: string, pid: number, gateway: Service): Promise<{ file: string; otherThreads: number }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
    const main = files.find((f) => new RegExp(`^CPU\\.\\d+\\.\\d+\\.${pid}\\.0\\.\\d+\\.cpuprofile$`).test(f));
    if (main !== undefined) return { file: join(dir, main), otherThreads: files.length - 1 };
    if (Date.now() > deadline) throw new Error(`the gateway (pid ${pid}) wrote no CPU profile to ${dir} (${files.join(', ') || 'nothing there'}); its log:\n${gateway.log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function measure(): Promise<Run> {
  await ensureTools(TOOLS, log);
  const cli = resolve('dist/cli/main.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first (npm run profile does)`);
  const { machine, node } = machineAndNode();
  const run: Run = {
    date: new Date().toISOString().slice(0, 10),
    command: `npm run profile -- --scenario ${flags.scenario} --seconds ${opts.seconds} --push-mib ${opts.pushMib}`,
    machine,
    node,
    scenarios: [],
  };
  const { dir: tmp, started, cleanup } = await scratch('rgw-profile-', log);
  try {
    const files = await frontFiles(tmp, [USER]);
    await mkdir(join(tmp, 'registry'));
    const registry = await startRegistry(join(tmp, 'registry'));
    started.push(registry);
    // The small scenario alone needs a manifest, not a big blob.
    const mib = opts.scenarios.some((s) => s !== 'small') ? opts.pushMib : 1;
    log(`registry on ${registry.port}; seeding a ${mib} MiB blob and a manifest`);
    const blob = await makeBlob(join(tmp, 'blob.bin'), mib);
    await seed({ base: `http://127.0.0.1:${registry.port}` }, REPO, blob, tmp);

    for (const scenario of opts.scenarios) {
      const dir = join(tmp, scenario);
      const cpuDir = join(dir, 'cpu');
      await mkdir(cpuDir, { recursive: true });
      const gateway = await startGateway(dir, files, registry.port, { cli, workers: '1', nodeArgs: ['--cpu-prof', '--cpu-prof-dir', cpuDir] });
      started.push(gateway);
      const target: Target = { base: `https://127.0.0.1:${gateway.port}`, caFile: files.caFile, credentials: `${USER.user}:${USER.password}` };
      log(`${scenario}: gateway (pid ${gateway.pid}) on ${gateway.port}, under --cpu-prof`);

      let fromUs = 0;
      let cpu = 0;
      let threads = new Map<number, { name: string; s: number }>();
      const begin = () => {
        cpu = treeCpuSeconds(gateway.pid);
        threads = threadCpu(gateway.pid);
        fromUs = nowUs();
      };
      const end = () => {
        const toUs = nowUs();
        const after = threadCpu(gateway.pid);
        return { toUs, processCpuS: treeCpuSeconds(gateway.pid) - cpu, ...threadsBetween(gateway.pid, threads, after) };
      };
      let done: Pick<Measured, 'detail' | 'requests' | 'bytes' | 'toUs' | 'processCpuS' | 'mainThreadCpuS' | 'otherThreadsCpu'>;
      if (scenario === 'small') {
        await wrk(target, REPO, 2, { headers: [FRESH] });
        begin();
        const r = await wrk(target, REPO, opts.seconds, { headers: [FRESH] });
        const window = end();
        done = {
          ...window,
          requests: r.requests,
          detail: `\`wrk -c 32 -t 2 -d ${opts.seconds}s\` GETs of \`/v2/${REPO}/manifests/latest\` with \`${FRESH}\` (every one to the registry) as the apr1 user, after a 2 s warm-up: ${r.requests} requests, ${r.rps.toFixed(0)} req/s, p99 ${r.p99ms} ms`,
        };
      } else {
        const mbps: number[] = [];
        begin();
        for (let i = 1; i <= TRANSFERS; i++) {
          const t = scenario === 'push' ? await push(target, `bench/push-${i}`, blob) : await pull(target, REPO, blob);
          mbps.push(t.mbps);
        }
        const window = end();
        done = {
          ...window,
          bytes: TRANSFERS * blob.bytes,
          detail:
            scenario === 'push'
              ? `${TRANSFERS} monolithic pushes (POST, then a PUT of the whole blob) of a ${mib} MiB blob to new repositories with curl, as the apr1 user: ${mbps.map((m) => m.toFixed(0)).join(', ')} MB/s`
              : `${TRANSFERS} pulls of a ${mib} MiB blob with curl, as the apr1 user: ${mbps.map((m) => m.toFixed(0)).join(', ')} MB/s`,
        };
      }
      // SIGTERM: the gateway closes and exits on its own, and Node writes the profile as it exits.
      await gateway.stop();
      const found = await profileOf(cpuDir, gateway.pid, gateway);
      let profile = found.file;
      if (opts.keep !== null) {
        await mkdir(opts.keep, { recursive: true });
        profile = join(opts.keep, `${scenario}.cpuprofile`);
        copyFileSync(found.file, profile);
      }
      run.scenarios.push({ scenario, title: TITLES[scenario], fromUs, ...done, profile, otherThreads: found.otherThreads });
      // The report is made after cleanup, which removes the scratch folder: read it now.
      if (opts.keep === null) analysed.set(scenario, analyse(run.scenarios.at(-1)!));
      log(`${scenario}: ${done.detail}`);
    }
    if (opts.keep !== null) await writeFile(join(opts.keep, 'run.json'), `${JSON.stringify(run, null, 2)}\n`);
    return run;
  } finally {
    await cleanup();
  }
}

interface Analysis {
  readonly stacks: Stack[];
  readonly b: Breakdown;
}
const analysed = new Map<Scenario, Analysis>();

function analyse(m: Measured): Analysis {
  const profile = JSON.parse(readFileSync(m.profile, 'utf8')) as CpuProfile;
  const stacks = foldProfile(profile, { root: process.cwd(), fromUs: m.fromUs, toUs: m.toUs });
  return { stacks, b: breakdown(stacks) };
}

/** `µs per request` or `ms per GB`, and the divisor that turns µs into it. */
function unitOf(m: Measured): { label: string; perUs: number } {
  if (m.requests !== undefined) return { label: 'µs per request', perUs: 1 / m.requests };
  return { label: 'ms per GB', perUs: 1 / 1000 / (m.bytes! / 1e9) };
}

const pct = (part: number, whole: number) => (whole > 0 ? ((part / whole) * 100).toFixed(1) : '0.0');
const num = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

async function report(run: Run): Promise<void> {
  await mkdir(PROFILES, { recursive: true });
  await mkdir(dirname(opts.out), { recursive: true });
  const sections: string[] = [];
  for (const m of run.scenarios) {
    const { stacks, b } = analysed.get(m.scenario) ?? analyse(m);
    const unit = unitOf(m);
    const seconds = (m.toUs - m.fromUs) / 1e6;
    const per = (us: number) => num(us * unit.perUs);
    const moved = m.requests !== undefined ? `${m.requests} requests` : `${(m.bytes! / 1e9).toFixed(2)} GB`;

    const svgFile = join(PROFILES, `${m.scenario}.svg`);
    const tree = pruneTree(buildTree(stacks), MIN_FRAME);
    await writeFile(
      svgFile,
      renderSvg(tree, {
        title: `registry-gateway, main thread CPU: ${m.title}`,
        subtitle: `${(b.busyUs / 1000).toFixed(0)} ms busy in ${seconds.toFixed(1)} s (idle left out) for ${moved}: ${per(b.busyUs)} ${unit.label}; ${run.node}, ${run.date}. Hover a frame for its time.`,
        byCategory: b.byCategory,
      }),
    );
    const foldedFile = join(PROFILES, `${m.scenario}.folded`);
    const folded = foldedText(stacks);
    if (Buffer.byteLength(folded) <= MAX_FOLDED) await writeFile(foldedFile, folded);
    else rmSync(foldedFile, { force: true });

    const categories = [
      `| category | % of busy CPU | ${unit.label} |`,
      '| --- | ---: | ---: |',
      ...CATEGORIES.map((c) => `| ${CATEGORY_LABELS[c]} | ${pct(b.byCategory[c], b.busyUs)} | ${per(b.byCategory[c])} |`),
      `| **busy CPU of the main thread, from the profile** | 100.0 | ${per(b.busyUs)} |`,
      `| the main thread's CPU from /proc over the same window: also its native I/O callbacks, sampled as idle | | ${per(m.mainThreadCpuS * 1e6)} |`,
      `| the whole process's CPU from /proc (all threads) | | ${per(m.processCpuS * 1e6)} |`,
    ];
    const others = m.otherThreadsCpu.filter((t) => t.s > 0).map((t) => `${t.name}${t.threads > 1 ? ` (${t.threads} threads)` : ''} ${(t.s * 1000).toFixed(0)} ms`);
    const files = [...b.gatewayFiles.entries()].sort((x, y) => y[1].selfUs - x[1].selfUs).slice(0, 15);
    const fileTable = [
      `| file | own code: % of busy CPU | own code: ${unit.label} | with what it calls: % of busy CPU |`,
      '| --- | ---: | ---: | ---: |',
      ...files.map(([file, t]) => `| ${file} | ${pct(t.selfUs, b.busyUs)} | ${per(t.selfUs)} | ${pct(t.inclusiveUs, b.busyUs)} |`),
    ];
    const link = (file: string) => `[${relative(PROFILES, file)}](${relative(dirname(opts.out), file)})`;
    sections.push(`## ${m.title}

${m.detail}.

Over those ${seconds.toFixed(1)} s (${moved}), the gateway's main thread was busy for ${(b.busyUs / 1000).toFixed(0)} ms in the profile, ${per(b.busyUs)} ${unit.label}. From /proc: its main thread ${(m.mainThreadCpuS * 1000).toFixed(0)} ms, the whole process ${(m.processCpuS * 1000).toFixed(0)} ms (other threads: ${others.length === 0 ? 'none' : others.join(', ')}).${m.otherThreads > 0 ? ` ${m.otherThreads} other thread(s) wrote profiles too, not counted here.` : ''}

${categories.join('\n')}

The gateway's own files, top ${files.length} by the time in their own code (the "gateway's own code" row, split):

${fileTable.join('\n')}

Flame graph: ${link(svgFile)}${existsSync(foldedFile) ? `; folded stacks (µs): ${link(foldedFile)}` : ''}.
`);
    console.log(`\n${m.title}\n${categories.join('\n')}\n\n${fileTable.join('\n')}`);
  }

  const text = `# Where the gateway's CPU goes

${run.date}, \`${run.command}\`

- machine: ${run.machine}; Node ${run.node}
- gateway: \`node --cpu-prof --max-semi-space-size=4 dist/cli/main.js serve --workers 1 --log-level warn\` (one process, which serves alone), a new one for each scenario, stopped with SIGTERM so that Node writes the profile
- registry: Debian's docker-registry on the same machine, filesystem storage, plain HTTP

${sections.join('\n')}
## How to read it

- Only the gateway's main thread is profiled, and only the samples taken during the measured
  requests count (not the start, the warm-up or the shutdown). \`(idle)\`, left out, is the
  thread waiting for work, but also the native work of libuv's I/O callbacks done before any
  JavaScript runs: reading the sockets and decrypting TLS records. The main thread's CPU from
  /proc, beside the profile's busy time, shows how much that is; the other threads (V8's compiler
  and GC helpers, libuv's pool, password-hash workers, which a remembered user does not wake) are
  in the whole process's row and nowhere else.
- The profile's busy time is wall time between samples that found the thread working: where it
  waited for a core (on a small machine it shares them with the registry and the load), that runs
  above the CPU it really got, which the /proc rows give. The shares are the profile's; the
  profiler costs CPU of its own, on its \`v8:ProfEvntProc\` thread.
- Each sample's time goes to one category: from the innermost frame outwards, the first frame a
  rule names decides (rules and reasons in \`bench/flamegraph.ts\`). Native functions count with
  the JavaScript that called them (llhttp's \`execute\` with socketOnData), except the sockets' own
  calls.
  - TLS and crypto: \`node:_tls_wrap\`, \`node:_tls_common\`, \`node:tls\`, \`node:crypto\` and
    their internals: handshakes, session set-up, hashes and HMACs. Encrypting TLS records happens
    inside the native write of the TLS socket (the native socket calls row), decrypting them in
    the I/O callbacks the profile counts as idle: neither is in this row.
  - HTTP server: \`node:_http_server\`, and the server's parser callbacks; HTTP client to the
    registry: \`node:_http_client\`, \`node:_http_agent\`. Code both use (\`_http_common\`,
    \`_http_incoming\`, \`_http_outgoing\`) goes with the nearest of those frames above it; when the
    nearest is the gateway's code, the stack says which socket's event the gateway was handling,
    not which message it writes (a pull's response is written from the registry's 'data' events,
    a push's body from the client's), so that time has its own row: HTTP code called by the relay.
  - Native socket calls: \`writev\`, \`writeBuffer\`, \`writeLatin1String\`, \`readStart\` and
    the like: the write syscalls (on loopback they also carry the receiving side's TCP work), and
    for the client's socket, TLS encryption. In a pull they are mostly writes to the client, in a
    push to the registry; the flame graph shows which.
  - Streams and sockets: the JavaScript of \`node:net\`, \`node:stream\`, Node's stream internals
    and \`stream_base_commons\`. The gateway's own code: any file under \`dist/\` (split by file in
    the second table). Logging: pino, sonic-boom, thread-stream. Events, timers and other Node
    internals: any other \`node:\` code. \`(program)\`: native work with no JavaScript on the stack
    outside I/O callbacks. Other: anything else.
- The flame graphs (icicles: callers above callees, widths by time) colour each frame by the
  category of its own time and merge frames under ${MIN_FRAME * 100}% of the total into their
  caller; hovering a frame shows its function, file and line, time and share. The \`.folded\`
  files (when under ${MAX_FOLDED / 1024} KB) are the same stacks for flamegraph.pl or speedscope.
`;
  await writeFile(opts.out, text);
  console.log(`\nwritten to ${opts.out} and ${PROFILES}/`);
}

async function main(): Promise<void> {
  const run = opts.from === null ? await measure() : (JSON.parse(readFileSync(join(opts.from, 'run.json'), 'utf8')) as Run);
  await report(run);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`profile failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
