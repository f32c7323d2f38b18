// `npm run bench`: registry-gateway against nginx (the distribution docs' authenticating-proxy
// recipe) and Caddy, in front of the same registry, on loopback, in alternating rounds. Writes
// bench/results.md and exits 1 when a target is missed (2 when the run itself fails).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { get } from 'node:https';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { authorization, fetchToken, makeBlob, pull, push, seed, webPage, webSignIn, wrk, type Blob, type Target, type WrkOptions, type WrkResult } from './measure.js';
import { exec, processTree, startCaddy, startGateway, startNginx, startRegistry, treeCpuSeconds, treeMemory, withPeakMemory, type FrontFiles, type Memory, type Service } from './services.js';
import { ensureTools, firstLine, frontFiles, logger, machineAndNode, scratch } from './setup.js';
import { writeHtpasswd } from '../test/helpers/htpasswd.js';

const USAGE = `Usage: npm run bench -- [options]
  --blob-mib N         size of the blob pulled and pushed (default 512)
  --rounds N           alternating rounds per front (default 5)
  --wrk-seconds N      duration of each wrk run (default 10)
  --small-requests N   small requests between the two RSS readings (default 100000)
  --parallel-pulls N   simultaneous pulls while each front's peak RSS is sampled (default 8)
  --workers N          the gateway's --workers (default: its own default, one per CPU)
  --out FILE           where to write the results (default bench/results.md)
Quick run: npm run bench -- --blob-mib 64 --rounds 1 --wrk-seconds 3 --small-requests 20000`;

const { values: flags } = parseArgs({
  options: {
    'blob-mib': { type: 'string', default: '512' },
    rounds: { type: 'string', default: '5' },
    'wrk-seconds': { type: 'string', default: '10' },
    'small-requests': { type: 'string', default: '100000' },
    'parallel-pulls': { type: 'string', default: '8' },
    workers: { type: 'string' },
    out: { type: 'string', default: 'bench/results.md' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
function positive(name: keyof typeof flags, max: number): number {
  const n = Number(flags[name]);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    console.error(`--${name} must be a whole number from 1 to ${max}\n${USAGE}`);
    process.exit(2);
  }
  return n;
}
const opts = {
  blobMib: positive('blob-mib', 8192),
  rounds: positive('rounds', 50),
  wrkSeconds: positive('wrk-seconds', 600),
  smallRequests: positive('small-requests', 10_000_000),
  parallelPulls: positive('parallel-pulls', 64),
  workers: flags.workers ?? null,
  out: resolve(flags.out!),
};

const TOOLS: Record<string, string> = { nginx: 'nginx', caddy: 'caddy', wrk: 'wrk', 'docker-registry': 'docker-registry', htpasswd: 'apache2-utils', curl: 'curl', openssl: 'openssl' };
const REPO = 'bench/seed';
const USERS = {
  bcrypt: { user: 'bcrypt10', password: 'bench-bcrypt-password' },
  apr1: { user: 'apr1', password: 'bench-apr1-password' },
  /** A user of the registry's own htpasswd file, for `--auth upstream`. */
  registry: { user: 'bcrypt4', password: 'bench-registry-password' },
};
/**
 * The bcrypt cost of the registry's own users: distribution's htpasswd reads bcrypt only, and 4 is
 * the lowest cost Go's bcrypt (and Apache's htpasswd -C) accepts, so the registry spends the least
 * it can on every request's password.
 */
const REGISTRY_BCRYPT_COST = 4;
/** `--auth token`: the gateway's token service name, and what its bench token grants. */
const TOKEN_SERVICE = 'registry-gateway-bench';
const TOKEN_SCOPE = `repository:${REPO}:pull`;
/** `--token-ttl`, s: longer than any one wrk run (--wrk-seconds is at most 600), so no token expires under load. */
const TOKEN_TTL_S = 3600;
const FRONTS = ['gateway', 'nginx', 'caddy'] as const;
// Asks every front for a fresh answer: the gateway then skips its manifest cache, as nginx (the
// recipe has no cache) and Caddy (no cache either: the header changes nothing for it) always do.
const FRESH = 'Cache-Control: no-cache';
/** The web UI page the web UI rows GET, signed in: the seeded repository's tags. */
const WEB_PAGE = `/ui/repository?name=${encodeURIComponent(REPO)}`;
type Front = (typeof FRONTS)[number];
/**
 * The user of a front's apr1 rows. Caddy reads bcrypt hashes only, so it has the bcrypt-10 user
 * there: with its hash cache that costs it one verification, as with the gateway's cache.
 */
const apr1User = (front: Front): keyof typeof USERS => (front === 'caddy' ? 'bcrypt' : 'apr1');
/** Marks the rows where Caddy's values are the bcrypt-10 user's (apr1User()). */
const CADDY_BCRYPT = '†';
/** Peak RSS of the gateway's processes during the parallel pulls, MiB. */
const PEAK_RSS_MIB = 100;

const log = logger('bench');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** A full GET of the blob through a front, hashed: the front really serves the right bytes. */
function verifiedPull(t: Target, blob: Blob): Promise<void> {
  const url = `${t.base}/v2/${REPO}/blobs/${blob.digest}`;
  return new Promise((resolvePull, reject) => {
    const headers = { authorization: authorization(t)! };
    const req = get(url, { ca: readFileSync(t.caFile!), headers, agent: false, timeout: 60_000 }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      res.on('end', () => {
        const digest = `sha256:${hash.digest('hex')}`;
        if (res.statusCode === 200 && bytes === blob.bytes && digest === blob.digest) resolvePull();
        else reject(new Error(`GET ${url}: HTTP ${res.statusCode}, ${bytes} bytes, ${digest}`));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no data for 60 s`)));
    req.on('error', reject);
  });
}

async function tlsOf(port: number, caFile: string): Promise<string> {
  const r = await exec('openssl', ['s_client', '-brief', '-connect', `127.0.0.1:${port}`, '-CAfile', caFile], 10_000);
  const out = r.stdout + r.stderr;
  const version = /Protocol version: (\S+)/.exec(out)?.[1];
  const suite = /Ciphersuite: (\S+)/.exec(out)?.[1];
  return version && suite ? `${version} ${suite}` : 'unknown';
}

async function versions(): Promise<Record<string, string>> {
  return {
    ...machineAndNode(),
    nginx: (await firstLine('nginx', ['-v'])).replace('nginx version: ', ''),
    caddy: `caddy ${(await firstLine('caddy', ['version'])).split(' ')[0]}`,
    registry: await firstLine('docker-registry', ['--version']),
    openssl: await firstLine('openssl', ['version']),
    curl: (await firstLine('curl', ['--version'])).split(' ').slice(0, 2).join(' '),
    wrk: (await firstLine('wrk', ['-v'])).split(' ').slice(0, 2).join(' '),
  };
}

/** A wrk run through `service`, with the CPU its processes spent per request, in µs. */
async function wrkWithCpu(service: Service, t: Target, seconds: number, options: WrkOptions = {}): Promise<{ r: WrkResult; cpuUs: number }> {
  const cpu = treeCpuSeconds(service.pid);
  const r = await wrk(t, REPO, seconds, options);
  return { r, cpuUs: ((treeCpuSeconds(service.pid) - cpu) / r.requests) * 1e6 };
}

interface OwnAuth {
  /** The registry signing users in itself, on the first registry's storage. */
  readonly registry: Service;
  readonly fronts: Record<Front, Service>;
}

/**
 * For `--auth upstream`: a second registry on the first one's storage (so it serves the seeded
 * manifest) with `auth: htpasswd`, and every front in front of it, passing Authorization on. Each
 * service joins `started` as soon as it runs, for the cleanup.
 */
async function startOwnAuth(tmp: string, files: FrontFiles, o: { storage: string; cli: string }, started: Service[]): Promise<OwnAuth> {
  const dir = (d: string) => join(tmp, 'own-auth', d);
  for (const d of ['registry', 'nginx', 'caddy', 'gateway']) await mkdir(dir(d), { recursive: true });
  const htpasswd = dir('registry/htpasswd');
  await writeHtpasswd(htpasswd, [{ ...USERS.registry, algorithm: 'bcrypt', cost: REGISTRY_BCRYPT_COST }]);
  const registry = await startRegistry(dir('registry'), { storage: o.storage, htpasswd });
  started.push(registry);
  const gateway = await startGateway(dir('gateway'), files, registry.port, { cli: o.cli, workers: opts.workers, auth: 'upstream' });
  started.push(gateway);
  const nginx = await startNginx(dir('nginx'), files, registry.port, 'upstream');
  started.push(nginx);
  const caddy = await startCaddy(dir('caddy'), files, registry.port, 'upstream');
  started.push(caddy);
  return { registry, fronts: { gateway, nginx, caddy } };
}

interface Row {
  label: string;
  /** Each front's value in each round; empty for a front the row does not measure. */
  values: Record<Front, number[]>;
  unit: string;
  /** Minimum gateway/nginx ratio, when this row has a target. */
  minRatio?: number;
  /** Maximum gateway/nginx ratio, when this row has a target and less is better. */
  maxRatio?: number;
  /** Decimals shown (latencies). */
  digits?: number;
  /**
   * For a row of the gateway alone (nginx has no such mode): the row whose gateway values this
   * row's are set against, round by round, instead of nginx's; `name` says which in the table.
   */
  versus?: { row: Row; name: string };
}

const row = (label: string, unit: string, more: Pick<Row, 'minRatio' | 'maxRatio' | 'digits' | 'versus'> = {}): Row => ({
  label,
  unit,
  values: { gateway: [], nginx: [], caddy: [] },
  ...more,
});

async function main(): Promise<number> {
  await ensureTools(TOOLS, log);
  const loadAtStart = loadavg()[0]!;
  const cli = resolve('dist/cli/main.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first (npm run bench does)`);

  // When run as root, nginx's workers run as nobody and read the htpasswd file on every request:
  // scratch() and frontFiles() leave both readable.
  const { dir: tmp, started, cleanup } = await scratch('rgw-bench-', log);

  try {
    log('certificate (EC P-256), htpasswd (bcrypt cost 10 and apr1, by Apache htpasswd)');
    const files = await frontFiles(tmp, [
      { ...USERS.bcrypt, algorithm: 'bcrypt', cost: 10 },
      { ...USERS.apr1, algorithm: 'apr1' },
    ]);

    for (const d of ['registry', 'nginx', 'caddy', 'gateway', 'token']) await mkdir(join(tmp, d));
    const registry = await startRegistry(join(tmp, 'registry'));
    started.push(registry);
    const upstream: Target = { base: `http://127.0.0.1:${registry.port}` };
    log(`registry on ${upstream.base}; seeding a ${opts.blobMib} MiB blob and a manifest`);
    const blob = await makeBlob(join(tmp, 'blob.bin'), opts.blobMib);
    await seed(upstream, REPO, blob, tmp);

    const gateway = await startGateway(join(tmp, 'gateway'), files, registry.port, { cli, workers: opts.workers });
    started.push(gateway);
    const nginx = await startNginx(join(tmp, 'nginx'), files, registry.port);
    started.push(nginx);
    const caddy = await startCaddy(join(tmp, 'caddy'), files, registry.port);
    started.push(caddy);
    const services: Record<Front, Service> = { gateway, nginx, caddy };
    const serviceTarget = (service: Service, who: keyof typeof USERS): Target => ({
      base: `https://127.0.0.1:${service.port}`,
      caFile: files.caFile,
      credentials: `${USERS[who].user}:${USERS[who].password}`,
    });
    const target = (front: Front, who: keyof typeof USERS) => serviceTarget(services[front], who);
    const processes = (front: Front) => processTree(services[front].pid).length;
    log(`gateway on ${gateway.port} (${processes('gateway')} processes), nginx on ${nginx.port} (${processes('nginx')} processes), caddy on ${caddy.port} (${processes('caddy')} processes)`);

    log(`the registry's own auth: a second registry (auth: htpasswd, bcrypt cost ${REGISTRY_BCRYPT_COST}) on the same storage, a gateway with --auth upstream, nginx without auth_basic and Caddy without authentication`);
    const own = await startOwnAuth(tmp, files, { storage: join(tmp, 'registry', 'storage'), cli }, started);
    const ownTarget = (front: Front) => serviceTarget(own.fronts[front], 'registry');
    const ownUpstream: Target = { base: `http://127.0.0.1:${own.registry.port}`, credentials: `${USERS.registry.user}:${USERS.registry.password}` };

    log(`token mode: a third gateway with --auth token (--token-ttl ${TOKEN_TTL_S}) for the same users and registry`);
    const tokenGateway = await startGateway(join(tmp, 'token'), files, registry.port, {
      cli,
      workers: opts.workers,
      token: { keyFile: join(tmp, 'token', 'token.key'), service: TOKEN_SERVICE, ttlSeconds: TOKEN_TTL_S },
    });
    started.push(tokenGateway);
    // As docker does after the challenge: the apr1 user's Basic credentials for a pull token.
    const bearerTarget = async (): Promise<Target> => {
      const basic = serviceTarget(tokenGateway, 'apr1');
      return { ...basic, token: await fetchToken(basic, TOKEN_SERVICE, TOKEN_SCOPE) };
    };

    // Warm-up, as after a docker login: each front serves the whole blob, checked byte for byte.
    for (const front of FRONTS) await verifiedPull(target(front, 'bcrypt'), blob);
    await verifiedPull(await bearerTarget(), blob);
    const tls = { gateway: await tlsOf(gateway.port, files.caFile), nginx: await tlsOf(nginx.port, files.caFile), caddy: await tlsOf(caddy.port, files.caFile) };
    const idle = treeMemory(gateway.pid);

    // The web UI, signed in once as the apr1 user (as a browser: the form, its CSRF token and
    // cookie, the gateway's own Origin); its session cookie is all the page requests carry.
    log(`web UI: signing the apr1 user in to the gateway, then GET ${WEB_PAGE} with the session cookie`);
    const webTarget: Target = { base: `https://127.0.0.1:${gateway.port}`, caFile: files.caFile };
    const webCookie = await webSignIn(target('gateway', 'apr1'), join(tmp, 'web-cookies.txt'), WEB_PAGE);
    const webOptions: WrkOptions = { path: WEB_PAGE, accept: 'text/html', headers: [`Cookie: ${webCookie}`] };
    // A 303 to the sign-in form would pass wrk as a 3xx: each round first checks the page is the right one.
    const checkWebPage = () => webPage(webTarget, webCookie, WEB_PAGE, [REPO, 'latest']);
    await checkWebPage();

    // The cached Basic rows that the token-mode rows are set against.
    const apr1Rps = row('apr1 user, requests/s', 'req/s', { minRatio: 1.0 });
    const apr1P99 = row('apr1 user, p99 latency ms', 'ms', { digits: 2 });
    const apr1Cpu = row(`front CPU per apr1 request${CADDY_BCRYPT}, µs (less is better)`, 'µs');
    const cachedBasic = (r: Row) => ({ row: r, name: 'vs the apr1 (cached Basic) row' });
    // The every-request-to-the-registry rows that the web UI rows are set against.
    const freshRps = row(`apr1 user${CADDY_BCRYPT}, every request to the registry (${FRESH}), requests/s`, 'req/s', { minRatio: 1.0 });
    const freshP99 = row(`apr1 user${CADDY_BCRYPT}, every request to the registry, p99 latency ms`, 'ms', { digits: 2 });
    const freshCpu = row(`front CPU per apr1 request${CADDY_BCRYPT} to the registry, µs (less is better)`, 'µs', { maxRatio: 1.0 });
    const fresh = (r: Row) => ({ row: r, name: 'vs the every-request-to-the-registry row' });
    const rows = {
      pull: row('blob pull, MB/s', 'MB/s', { minRatio: 1.5 }),
      push: row('blob push, MB/s', 'MB/s', { minRatio: 1.0 }),
      bcryptRps: row('bcrypt-10 user, requests/s', 'req/s', { minRatio: 20 }),
      bcryptP50: row('bcrypt-10 user, p50 latency ms', 'ms', { digits: 2 }),
      bcryptP99: row('bcrypt-10 user, p99 latency ms', 'ms', { digits: 2 }),
      apr1Rps,
      apr1P50: row('apr1 user, p50 latency ms', 'ms', { digits: 2 }),
      apr1P99,
      // The apr1 requests in token mode (--auth token), with a bearer token instead of Basic:
      // the gateway alone, set against its cached Basic rows.
      tokenRps: row('bearer token (--auth token), requests/s', 'req/s', { versus: cachedBasic(apr1Rps) }),
      tokenP99: row('bearer token, p99 latency ms', 'ms', { digits: 2, versus: cachedBasic(apr1P99) }),
      freshRps,
      freshP99,
      // The gateway's web UI (nginx has none): a repository page, signed in, reads the tag list,
      // the manifest and its config from the registry, set against the gateway's fresh rows.
      webRps: row(`web UI repository page (GET ${WEB_PAGE}, signed in), requests/s`, 'req/s', { versus: fresh(freshRps) }),
      webP99: row('web UI repository page, p99 latency ms', 'ms', { digits: 2, versus: fresh(freshP99) }),
      // The front's own CPU time (all its processes, user + system) per unit of work: less noisy
      // than throughput on a machine whose cores the registry, curl and wrk share.
      pullCpu: row('front CPU per GB pulled, s (less is better)', 's', { digits: 2 }),
      pushCpu: row('front CPU per GB pushed, s (less is better)', 's', { digits: 2, maxRatio: 1.0 }),
      apr1Cpu,
      tokenCpu: row('front CPU per bearer-token request, µs (less is better)', 'µs', { versus: cachedBasic(apr1Cpu) }),
      freshCpu,
      webCpu: row('front CPU per web UI page, µs (less is better)', 'µs', { versus: fresh(freshCpu) }),
      // A second registry signing users in itself (at the least bcrypt cost it accepts), every
      // front passing Authorization on: the gateway with --auth upstream, nginx without auth_basic,
      // Caddy without its authentication handler.
      ownRps: row(`registry's own auth (--auth upstream; registry htpasswd, bcrypt cost ${REGISTRY_BCRYPT_COST}), requests/s`, 'req/s'),
      ownP99: row(`registry's own auth, p99 latency ms`, 'ms', { digits: 2 }),
      ownCpu: row(`registry's own auth, front CPU per request, µs (less is better)`, 'µs'),
    };
    const cpuOf = (front: Front) => treeCpuSeconds(services[front].pid);
    const ceiling = { pull: [] as number[], push: [] as number[], rps: [] as number[], ownRps: [] as number[] };
    const record = (r: Row, front: Front, value: number) => r.values[front].push(value);
    const recordWrk = (prefix: 'bcrypt' | 'apr1', front: Front, r: WrkResult) => {
      record(rows[`${prefix}Rps`], front, r.rps);
      record(rows[`${prefix}P50`], front, r.p50ms);
      record(rows[`${prefix}P99`], front, r.p99ms);
    };
    /** A wrk run through `service` with its CPU, into the rows `${prefix}Rps`, `${prefix}P99` and `${prefix}Cpu`. */
    const recordWrkWithCpu = async (prefix: 'fresh' | 'own' | 'token' | 'web', what: string, front: Front, service: Service, t: Target, options: WrkOptions = {}) => {
      const { r, cpuUs } = await wrkWithCpu(service, t, opts.wrkSeconds, options);
      record(rows[`${prefix}Rps`], front, r.rps);
      record(rows[`${prefix}P99`], front, r.p99ms);
      record(rows[`${prefix}Cpu`], front, cpuUs);
      log(`  wrk ${what}, ${front}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50ms} ms, p99 ${r.p99ms} ms, ${cpuUs.toFixed(0)} µs CPU per request`);
      await sleep(500);
    };

    let pushes = 0;
    for (let round = 1; round <= opts.rounds; round++) {
      log(`round ${round} of ${opts.rounds}`);
      for (const front of FRONTS) {
        const cpu = cpuOf(front);
        const r = await pull(target(front, 'bcrypt'), REPO, blob);
        record(rows.pullCpu, front, (cpuOf(front) - cpu) / (r.bytes / 1e9));
        log(`  pull  ${front}: ${r.mbps.toFixed(0)} MB/s`);
        record(rows.pull, front, r.mbps);
      }
      const up = await pull(upstream, REPO, blob);
      ceiling.pull.push(up.mbps);
      log(`  pull  upstream: ${up.mbps.toFixed(0)} MB/s`);
      for (const front of FRONTS) {
        const cpu = cpuOf(front);
        const r = await push(target(front, 'bcrypt'), `bench/push-${front}-${++pushes}`, blob);
        record(rows.pushCpu, front, (cpuOf(front) - cpu) / (r.bytes / 1e9));
        log(`  push  ${front}: ${r.mbps.toFixed(0)} MB/s`);
        record(rows.push, front, r.mbps);
      }
      const upPush = await push(upstream, `bench/push-upstream-${++pushes}`, blob);
      ceiling.push.push(upPush.mbps);
      log(`  push  upstream: ${upPush.mbps.toFixed(0)} MB/s`);
      for (const who of ['bcrypt', 'apr1'] as const) {
        for (const front of FRONTS) {
          // Caddy has no apr1 user: its bcrypt run gives the apr1 CPU row its value.
          if (who === 'apr1' && apr1User(front) !== 'apr1') continue;
          const cpu = cpuOf(front);
          const r = await wrk(target(front, who), REPO, opts.wrkSeconds);
          if (who === apr1User(front)) record(rows.apr1Cpu, front, ((cpuOf(front) - cpu) / r.requests) * 1e6);
          log(`  wrk ${who} ${front}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50ms} ms, p99 ${r.p99ms} ms`);
          recordWrk(who, front, r);
          await sleep(500);
        }
      }
      // The apr1 run again in token mode, with a token fetched just before it.
      await recordWrkWithCpu('token', 'apr1 with a bearer token (--auth token)', 'gateway', tokenGateway, await bearerTarget());
      for (const front of FRONTS) {
        await recordWrkWithCpu('fresh', `${apr1User(front)}, ${FRESH}`, front, services[front], target(front, apr1User(front)), { headers: [FRESH] });
      }
      // Right after the fresh runs it is set against: the web UI page, signed in.
      await checkWebPage();
      await recordWrkWithCpu('web', `web UI ${WEB_PAGE}, signed in`, 'gateway', gateway, webTarget, webOptions);
      const upWrk = await wrk(upstream, REPO, opts.wrkSeconds);
      ceiling.rps.push(upWrk.rps);
      log(`  wrk upstream: ${upWrk.rps.toFixed(0)} req/s, p50 ${upWrk.p50ms} ms, p99 ${upWrk.p99ms} ms`);
      for (const front of FRONTS) await recordWrkWithCpu('own', "registry's own auth", front, own.fronts[front], ownTarget(front));
      const upOwn = await wrk(ownUpstream, REPO, opts.wrkSeconds);
      ceiling.ownRps.push(upOwn.rps);
      log(`  wrk upstream with its own auth: ${upOwn.rps.toFixed(0)} req/s, p50 ${upOwn.p50ms} ms, p99 ${upOwn.p99ms} ms`);
    }

    log(`${opts.parallelPulls} parallel pulls through each front, RSS sampled every 100 ms`);
    const parallel = {} as Record<Front, { mbps: number; peak: Memory }>;
    for (const front of FRONTS) {
      const startedAt = Date.now();
      const { peak } = await withPeakMemory(services[front].pid, () =>
        Promise.all(Array.from({ length: opts.parallelPulls }, () => pull(target(front, 'bcrypt'), REPO, blob))),
      );
      const seconds = (Date.now() - startedAt) / 1000;
      parallel[front] = { mbps: (opts.parallelPulls * blob.bytes) / seconds / 1e6, peak };
      log(`  ${front}: ${parallel[front].mbps.toFixed(0)} MB/s in all, peak RSS ${peak.rssMiB.toFixed(1)} MiB (PSS ${peak.pssMiB.toFixed(1)})`);
    }

    log(`gateway RSS across ${opts.smallRequests} small requests (bcrypt-10 user, wrk -c 32 in 5 s runs, every other run ${FRESH})`);
    const small = target('gateway', 'bcrypt');
    await wrk(small, REPO, 2);
    await sleep(1000);
    const before = treeMemory(gateway.pid);
    let rssMax = before.rssMiB;
    let done = 0;
    const series: { done: number; rssMiB: number }[] = [];
    const deadline = Date.now() + 30 * 60_000;
    for (let i = 0; i < 1000 && done < opts.smallRequests && Date.now() < deadline; i++) {
      // Alternately answered from the manifest cache and by the registry: both paths must stay flat.
      done += (await wrk(small, REPO, 5, { headers: i % 2 === 0 ? [] : [FRESH] })).requests;
      series.push({ done, rssMiB: treeMemory(gateway.pid).rssMiB });
      rssMax = Math.max(rssMax, series.at(-1)!.rssMiB);
    }
    if (done < opts.smallRequests) throw new Error(`only ${done} of ${opts.smallRequests} small requests were done within 30 minutes`);
    await sleep(1000);
    const after = treeMemory(gateway.pid);
    // A leak keeps growing; warm-up growth (heaps, TLS buffers) stops: the second half tells them apart.
    const halfway = series.find((p) => p.done >= done / 2) ?? series[0]!;
    const secondHalf = after.rssMiB - halfway.rssMiB;
    log(`  ${done} requests: RSS ${before.rssMiB.toFixed(1)} -> ${after.rssMiB.toFixed(1)} MiB (max ${rssMax.toFixed(1)}), PSS ${before.pssMiB.toFixed(1)} -> ${after.pssMiB.toFixed(1)}`);

    // The table.
    const fmt = (n: number, digits = 0) => n.toFixed(digits);
    // Each round measures the fronts back to back: its ratio is what drift between rounds cannot
    // move, and the median of those is the run's ratio; the ratio of the medians goes beside it.
    const ratioCell = (values: readonly number[], basis: readonly number[]) => {
      const ratio = median(values.map((value, i) => value / basis[i]!));
      return { ratio, cell: `${ratio.toFixed(2)}× (${(median(values) / median(basis)).toFixed(2)}×)` };
    };
    const checks: { what: string; ok: boolean; detail: string }[] = [];
    const lines = [
      '| measure (median) | registry-gateway | nginx | Caddy | gateway / nginx: median of the rounds (ratio of the medians) | gateway / caddy | target | |',
      '| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |',
    ];
    for (const r of Object.values(rows)) {
      const g = r.values.gateway;
      // A row of the gateway alone is set against another of its rows (which has its own line).
      const basis = r.versus?.row.values.gateway ?? r.values.nginx;
      const { ratio, cell } = ratioCell(g, basis);
      const target = r.minRatio !== undefined ? `≥ ${r.minRatio}×` : r.maxRatio !== undefined ? `≤ ${r.maxRatio}×` : '';
      const ok = r.minRatio !== undefined ? ratio >= r.minRatio : r.maxRatio !== undefined ? ratio <= r.maxRatio : null;
      if (ok !== null) checks.push({ what: r.label, ok, detail: `${ratio.toFixed(2)}× nginx (ratio of the medians ${(median(g) / median(basis)).toFixed(2)}×), target ${target}` });
      const nginxCell = r.versus === undefined ? fmt(median(basis), r.digits) : '';
      const caddy = r.values.caddy;
      const [caddyCell, caddyRatio] = caddy.length === 0 ? ['', ''] : [fmt(median(caddy), r.digits), ratioCell(g, caddy).cell];
      const status = ok === null ? '' : ok ? 'met' : '**MISSED**';
      lines.push(`| ${r.label} | ${fmt(median(g), r.digits)} | ${nginxCell} | ${caddyCell} | ${cell}${r.versus === undefined ? '' : ` ${r.versus.name}`} | ${caddyRatio} | ${target} | ${status} |`);
    }
    const rssOk = parallel.gateway.peak.rssMiB <= PEAK_RSS_MIB;
    const growth = after.rssMiB - before.rssMiB;
    const growthOk = growth <= 20;
    checks.push({ what: `peak RSS, ${opts.parallelPulls} parallel pulls`, ok: rssOk, detail: `${fmt(parallel.gateway.peak.rssMiB, 1)} MiB, target ≤ ${PEAK_RSS_MIB} MiB` });
    checks.push({ what: `RSS growth over ${done} small requests`, ok: growthOk, detail: `${growth >= 0 ? '+' : ''}${fmt(growth, 1)} MiB, target ≤ +20 MiB` });
    const perFront = (value: (front: Front) => string) => FRONTS.map(value).join(' | ');
    const mbpsRatio = (other: Front) => `${(parallel.gateway.mbps / parallel[other].mbps).toFixed(2)}×`;
    lines.push(
      `| ${opts.parallelPulls} parallel pulls, MB/s in all | ${perFront((f) => fmt(parallel[f].mbps))} | ${mbpsRatio('nginx')} | ${mbpsRatio('caddy')} | | |`,
      `| peak RSS during ${opts.parallelPulls} parallel pulls, MiB (sum over all processes) | ${perFront((f) => fmt(parallel[f].peak.rssMiB, 1))} | | | gateway ≤ ${PEAK_RSS_MIB} | ${rssOk ? 'met' : '**MISSED**'} |`,
      `| peak PSS during ${opts.parallelPulls} parallel pulls, MiB (shared pages counted once) | ${perFront((f) => fmt(parallel[f].peak.pssMiB, 1))} | | | | |`,
      `| gateway RSS before → after ${done} small requests, MiB | ${fmt(before.rssMiB, 1)} → ${fmt(after.rssMiB, 1)} (max ${fmt(rssMax, 1)}) | | | | | growth ≤ +20 | ${growthOk ? 'met' : '**MISSED**'} |`,
      `| gateway PSS before → after ${done} small requests, MiB | ${fmt(before.pssMiB, 1)} → ${fmt(after.pssMiB, 1)} | | | | | | |`,
      `| gateway RSS growth over the last ${done - halfway.done} of them, MiB | ${secondHalf >= 0 ? '+' : ''}${fmt(secondHalf, 1)} | | | | | | |`,
      `| ceiling: pull straight from the registry (plain HTTP), MB/s | ${fmt(median(ceiling.pull))} | | | | | | |`,
      `| ceiling: push straight to the registry (plain HTTP), MB/s | ${fmt(median(ceiling.push))} | | | | | | |`,
      `| ceiling for requests that reach the registry: small requests straight to it (no TLS, no auth), req/s | ${fmt(median(ceiling.rps))} | | | | | | |`,
      `| ceiling for the registry's own auth: small requests straight to it (no TLS, its bcrypt cost ${REGISTRY_BCRYPT_COST} user), req/s | ${fmt(median(ceiling.ownRps))} | | | | | | |`,
    );
    const perRound = [
      '| per round | ' + Array.from({ length: opts.rounds }, (_, i) => `round ${i + 1}`).join(' | ') + ' |',
      '| --- |' + ' ---: |'.repeat(opts.rounds),
      ...Object.values(rows).flatMap((r) =>
        FRONTS.filter((front) => r.values[front].length > 0).map((front) => `| ${r.label}, ${front} | ${r.values[front].map((x) => fmt(x, r.digits)).join(' | ')} |`),
      ),
      `| pull straight from the registry, MB/s | ${ceiling.pull.map((x) => fmt(x)).join(' | ')} |`,
      `| push straight to the registry, MB/s | ${ceiling.push.map((x) => fmt(x)).join(' | ')} |`,
      `| small requests straight to the registry, req/s | ${ceiling.rps.map((x) => fmt(x)).join(' | ')} |`,
      `| small requests straight to the registry with its own auth, req/s | ${ceiling.ownRps.map((x) => fmt(x)).join(' | ')} |`,
    ];
    const v = await versions();
    const missed = checks.filter((c) => !c.ok);
    const report = `# registry-gateway against nginx and Caddy

${new Date().toISOString().slice(0, 10)}, \`npm run bench -- --blob-mib ${opts.blobMib} --rounds ${opts.rounds} --wrk-seconds ${opts.wrkSeconds} --small-requests ${opts.smallRequests} --parallel-pulls ${opts.parallelPulls}${opts.workers === null ? '' : ` --workers ${opts.workers}`}\`

- machine: ${v.machine}; Node ${v.node}; ${v.nginx}; ${v.caddy}; ${v.registry}; ${v.openssl}; ${v.curl}; ${v.wrk}
- gateway: \`serve --log-level warn\`, ${opts.workers === null ? 'default' : opts.workers} workers (${processes('gateway')} processes); RSS after the warm-up ${fmt(idle.rssMiB, 1)} MiB (PSS ${fmt(idle.pssMiB, 1)})
- nginx: the distribution docs' "Authenticate proxy with nginx" recipe, \`worker_processes auto\` (${processes('nginx')} processes), \`access_log off\`
- caddy: \`caddy run\` on a JSON configuration that mirrors the recipe (in \`bench/services.ts\`; ${processes('caddy')} processes), no access log; it reads bcrypt hashes only, so on the rows marked ${CADDY_BCRYPT} its values are the bcrypt-10 user's, which its hash cache verifies once, as the gateway's cache does
- registry's own auth rows: a second registry with \`auth: htpasswd\` (bcrypt cost ${REGISTRY_BCRYPT_COST}), behind a second gateway (\`serve --auth upstream --log-level warn\`, ${processTree(own.fronts.gateway.pid).length} processes), a second nginx (the recipe without \`auth_basic\`, ${processTree(own.fronts.nginx.pid).length} processes) and a second Caddy (without its authentication handler, ${processTree(own.fronts.caddy.pid).length} processes)
- web UI rows: the gateway's own web UI (nginx and Caddy have none), \`GET ${WEB_PAGE}\` with the apr1 user's session cookie; set against the gateway's every-request-to-the-registry rows
- token rows: a third gateway (\`serve --auth token --token-ttl ${TOKEN_TTL_S} --log-level warn\`, ${processTree(tokenGateway.pid).length} processes) with the same certificate, users and registry; nginx and Caddy have no such mode, so these rows are set against the gateway's apr1 rows
- 1-minute load average ${loadAtStart.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end (anything else running shares the cores)
- TLS as negotiated by OpenSSL's client: gateway ${tls.gateway}, nginx ${tls.nginx}, caddy ${tls.caddy}; the same EC P-256 certificate

${lines.join('\n')}

${CADDY_BCRYPT} Caddy's values are the bcrypt-10 user's (Caddy reads bcrypt hashes only): its CPU per cached request comes from its bcrypt-10 run, and its every-request-to-the-registry rows from a bcrypt-10 run with \`${FRESH}\`, which changes nothing for Caddy (it has no cache: every request reaches the registry). With its hash cache, a bcrypt user costs Caddy one verification, as with the gateway's cache.

${missed.length === 0 ? 'Every target is met.' : `Missed: ${missed.map((c) => `${c.what} (${c.detail})`).join('; ')}.`}

${perRound.join('\n')}

Gateway RSS (MiB) after each 5 s run of small requests, from ${fmt(before.rssMiB, 1)}: ${series.map((p) => `${fmt(p.rssMiB)} @ ${p.done}`).join(', ')}.

## How it is measured

- Everything runs on 127.0.0.1: the registry (Debian's docker-registry, filesystem storage in a
  temporary folder, logging warnings only), nginx as its own master (\`nginx -p TMP -c TMP/nginx.conf\`,
  configuration in \`bench/services.ts\`), Caddy (\`caddy run --config TMP/caddy.json\`, below), and
  the gateway (\`dist/cli/main.js serve\`, run as installed: its first line passes a V8 flag). All
  three fronts use the same certificate, htpasswd file (written by Apache's \`htpasswd -B -C 10\`
  and \`-m\`) and upstream; none writes an access log.
- Caddy: Debian's caddy, a JSON configuration (no Caddyfile) that mirrors the nginx recipe. TLS
  from the same certificate and key files (\`load_files\`), automatic HTTPS off, no ACME, admin
  endpoint off, HOME, XDG folders and storage in the temporary folder; HTTP/1.1 only, as nginx
  and the gateway serve it. On \`/v2/*\` only: \`http_basic\` authentication with the htpasswd
  file's bcrypt users (Caddy has no apr1), bcrypt hashes and Caddy's \`hash_cache\` of verified
  passwords, realm "Registry realm"; then \`reverse_proxy\` with \`flush_interval -1\` (streaming)
  over keep-alive connections (up to 32 idle), Host passed on as sent. Caddy's own answers (its
  401, a 502) get \`Docker-Distribution-Api-Version: registry/2.0\` from its error routes, as the
  recipe's map adds it to nginx's; the registry's answers carry their own. Warnings only, to a
  file. Caddy reads bcrypt hashes only, so where nginx has the apr1 user Caddy has the bcrypt-10
  user (the rows marked ${CADDY_BCRYPT}): with its hash cache that costs it one verification, as
  with the gateway's cache.
- Rounds alternate gateway, nginx, caddy, gateway, ... for each measure, so drift hits all three;
  the table shows each front's median, and as each ratio the median of the rounds' own ratios
  (each round measures the fronts back to back, so a slow patch of the machine moves all of its
  numbers), with the ratio of the two medians beside it. Targets are checked on the former, for
  the gateway against nginx; the gateway / caddy column has no target.
- Targets: blob pull ≥ 1.5× nginx, blob push ≥ 1×, bcrypt-10 user requests/s ≥ 20×, apr1 user
  requests/s ≥ 1×, every request to the registry requests/s ≥ 1×; front CPU per GB pushed and per
  apr1 request to the registry ≤ 1× nginx's (less is better); the gateway's peak RSS during the
  parallel pulls ≤ ${PEAK_RSS_MIB} MiB, and its RSS growth over the small requests ≤ +20 MiB.
- Pull: \`curl --cacert ... -u bcrypt10:... -o /dev/null\` of a ${opts.blobMib} MiB random blob;
  MB/s = 10^6 bytes per second over curl's total time; a wrong status or short transfer fails the run.
  Each front first serves the blob once, checked against its digest (a warm-up, as after \`docker login\`).
- Push: monolithic upload of the same blob to a new repository each time: POST for the upload URL,
  then \`curl -T\` PUT \`?digest=\` (no \`Expect: 100-continue\`); time is both requests together.
- Small requests: \`wrk -c 32 -t 2 -d ${opts.wrkSeconds}s --latency\` GET of a manifest by tag with an
  \`Authorization: Basic\` header, once per user; any non-2xx answer or socket error fails the run.
  The gateway answers most of them from its manifest cache (\`--manifest-cache-ttl\`, default 1 s:
  the registry sees about one request per second for the tag); nginx, as in the recipe, and Caddy
  send every one to the registry. The "every request to the registry" rows add \`${FRESH}\`, which
  the gateway honours by skipping its cache: that is the front's own cost against nginx's, request
  for request (the header changes nothing for nginx and Caddy, which have no cache).
- RSS: VmRSS summed over each front's process tree (the gateway's primary and cluster workers),
  from /proc, every 100 ms (PSS from smaps_rollup beside it, which counts pages the processes
  share, such as the node binary, once) during ${opts.parallelPulls} simultaneous pulls; then the
  gateway's before and after ${opts.smallRequests} small requests (wrk -c 32 in 5 s runs, after a
  2 s warm-up).
- Front CPU: user + system time of all the front's processes (from /proc/N/stat) across each pull,
  push and apr1 wrk run (Caddy's bcrypt-10 run), divided by the bytes or requests done: what each
  front costs per unit of work, whatever else the cores were doing.
- The ceiling rows are the same pull, push and wrk run straight to the registry over plain HTTP,
  without credentials: no front can pass them for what the registry itself must answer.
- Registry's own auth (\`--auth upstream\`): a second registry, on the first one's storage, signs
  users in itself (\`auth: htpasswd\`; distribution reads bcrypt only, and the user's cost
  ${REGISTRY_BCRYPT_COST} is the lowest it accepts, so the registry's own hash costs the least it
  can). In front of it a second gateway with \`--auth upstream\` (it checks no credentials and
  keeps no manifests), a second nginx, the recipe without \`auth_basic\` (nginx passes the
  Authorization header on by default), and a second Caddy without its authentication handler
  (Caddy passes it on too). The same wrk run of manifest GETs with the Basic header
  goes through each, then straight to that registry (its ceiling row); front CPU is measured as
  above. Every request reaches the registry, which checks the password each time.
- Token mode (\`--auth token\`): a third gateway, with the same certificate, users and registry,
  issues bearer tokens at /token and checks them on /v2/. Right after the apr1 runs of each round,
  one token is fetched as docker fetches it (\`GET /token?service=${TOKEN_SERVICE}&scope=${TOKEN_SCOPE}\`
  with the apr1 user's Basic credentials), then the same wrk run goes through that gateway with
  \`Authorization: Bearer TOKEN\` instead of Basic; front CPU is measured as above. The gateway
  verifies a token once (signature and claims) and recalls it from memory until it expires
  (\`--token-ttl ${TOKEN_TTL_S}\`, longer than any run), as it recalls a Basic user once verified, and
  answers from the same manifest cache: a small GET with a token should cost no more than a cached
  Basic one. nginx and Caddy have no token mode, so the ratio of these rows is token / cached Basic (the
  gateway's apr1 rows), round by round.
- Web UI: once per run the apr1 user signs in to the gateway's web UI with curl, as a browser does
  (GET /ui/login for the form's CSRF token and its cookie, then POST /ui/login with the form, that
  cookie and the gateway's own \`Origin\`, answered 303 with the session cookie). Each round, right
  after the "every request to the registry" runs, curl checks that \`${WEB_PAGE}\` answers 200
  with the repository's tag (a lost session would answer a 303 that wrk counts as a success), then
  the same wrk run GETs that page with \`Cookie: __Host-registry-session=...\` and
  \`Accept: text/html\` (no Authorization); front CPU is measured as above. The gateway checks the
  session's signature and renders the page from the registry each time: the tag list, the tag's
  manifest and its config blob, three registry requests per page. nginx and Caddy have no web UI, so the
  ratio of these rows is page / request to the registry (the gateway's fresh rows), round by round.
`;
    await writeFile(opts.out, report);
    console.log(`\n${lines.join('\n')}\n`);
    for (const c of checks) console.log(`${c.ok ? 'met   ' : 'MISSED'}  ${c.what}: ${c.detail}`);
    console.log(`\nwritten to ${opts.out}`);
    return missed.length === 0 ? 0 : 1;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
