// The processes a benchmark run starts (registry, nginx, Caddy, gateway) and the commands it runs
// (curl, wrk), all on 127.0.0.1, all tracked so that every one is stopped on exit, failure or Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../test/helpers/tools.js';

/** Services run detached, each in its own process group, so a group kill also reaches their children. */
const services = new Set<ChildProcess>();
const commands = new Set<ChildProcess>();

export interface Service {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  readonly logFile: string;
  log(): string;
  stop(): Promise<void>;
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command (no shell), bounded in time; resolves with its output whatever the exit status. */
export function exec(file: string, args: readonly string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    commands.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      commands.delete(child);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      commands.delete(child);
      if (signal === 'SIGKILL' && code === null) stderr += `\n(killed after ${timeoutMs} ms)`;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like exec(), but a non-zero exit is an error with the command's output. */
export async function execOk(file: string, args: readonly string[], timeoutMs: number): Promise<CommandResult> {
  const r = await exec(file, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited with ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Kills every running command and service group at once (SIGKILL); used when exiting. */
export function killEverything(): void {
  for (const c of commands) c.kill('SIGKILL');
  for (const s of services) {
    try {
      if (s.pid !== undefined) process.kill(-s.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Starts a detached service logging to `logFile`, then waits until `ready()` is true (checked every
 * 100 ms, for at most 20 s) or the process exits.
 */
async function startService(
  name: string,
  port: number,
  file: string,
  args: readonly string[],
  options: { logFile: string; env?: NodeJS.ProcessEnv; ready: () => Promise<boolean> },
): Promise<Service> {
  const fd = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(file, args, { stdio: ['ignore', fd, fd], detached: true, env: options.env ?? process.env });
  } finally {
    closeSync(fd);
  }
  services.add(child);
  let exited = false;
  const gone = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      services.delete(child);
      resolve();
    });
    child.once('error', () => {
      exited = true;
      services.delete(child);
      resolve();
    });
  });
  const log = () => {
    try {
      return readFileSync(options.logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const service: Service = {
    name,
    pid: child.pid ?? -1,
    port,
    logFile: options.logFile,
    log,
    async stop() {
      if (exited || child.pid === undefined) return;
      const group = -child.pid;
      try {
        process.kill(group, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(group, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }, 5_000);
      await gone;
      clearTimeout(timer);
      try {
        process.kill(group, 'SIGKILL'); // any child left behind by the group leader
      } catch {
        // none left
      }
    },
  };
  const deadline = Date.now() + 20_000;
  while (!(await options.ready().catch(() => false))) {
    if (exited) throw new Error(`${name} stopped while starting; its log:\n${log()}`);
    if (Date.now() > deadline) {
      await service.stop();
      throw new Error(`${name} was not ready within 20 s; its log:\n${log()}`);
    }
    await sleep(100);
  }
  return service;
}

/** Status code of `curl URL` (any answer at all), or 0 when nothing answered. */
async function statusOf(url: string, caFile?: string): Promise<number> {
  const tls = caFile === undefined ? [] : ['--cacert', caFile];
  const r = await exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', ...tls, url], 5_000);
  return Number(r.stdout) || 0;
}

export interface RegistryOptions {
  /** Storage folder; another registry's to serve what it holds (default: `dir/storage`). */
  readonly storage?: string;
  /** The registry's own sign-in (`auth: htpasswd`, which reads bcrypt lines only) with this file. */
  readonly htpasswd?: string;
}

/**
 * The distribution registry (Debian's docker-registry) on plain HTTP, filesystem storage in `dir`.
 * It logs warnings only, so its own logging costs the same (nothing) behind every front.
 */
export async function startRegistry(dir: string, options: RegistryOptions = {}): Promise<Service> {
  const port = await freePort();
  const config = join(dir, 'registry.yml');
  const auth = options.htpasswd === undefined ? [] : ['auth:', '  htpasswd:', '    realm: registry-gateway-bench', `    path: ${JSON.stringify(options.htpasswd)}`];
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${JSON.stringify(options.storage ?? join(dir, 'storage'))}`,
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: registry-gateway-bench',
      ...auth,
      '',
    ].join('\n'),
  );
  const ready = options.htpasswd === undefined ? 200 : 401;
  return startService('docker-registry', port, 'docker-registry', ['serve', config], {
    logFile: join(dir, 'registry.log'),
    ready: async () => (await statusOf(`http://127.0.0.1:${port}/v2/`)) === ready,
  });
}

export interface FrontFiles {
  readonly cert: string;
  readonly key: string;
  readonly caFile: string;
  readonly htpasswd: string;
}

/**
 * Who signs users in behind a front. `basic`: the front, against the htpasswd file. `upstream`: the
 * registry itself; the front passes Authorization on, and the registry's 401 and challenge back.
 */
export type FrontAuth = 'basic' | 'upstream';

/**
 * nginx as in the distribution documentation's recipe "Authenticate proxy with nginx"
 * (docs/content/recipes/nginx.md: TLS settings, auth_basic, the API-version header map, the proxy
 * headers, proxy_read_timeout 900), plus what a streaming deployment of it adds: no request or
 * response buffering, a keep-alive upstream, worker_processes auto. No access log (see run.ts).
 * With `auth: 'upstream'`, the recipe without its auth_basic lines.
 */
export function nginxConfig(o: FrontFiles & { dir: string; port: number; upstreamPort: number; auth: FrontAuth }): string {
  return `# nginx for the registry-gateway benchmark; started with: nginx -p ${o.dir} -c nginx.conf -e error.log
worker_processes auto;
daemon off;
pid ${o.dir}/nginx.pid;
error_log ${o.dir}/error.log warn;

events {
  worker_connections 1024;
}

http {
  access_log off;
  client_body_temp_path ${o.dir}/client_body;
  proxy_temp_path ${o.dir}/proxy;
  fastcgi_temp_path ${o.dir}/fastcgi;
  uwsgi_temp_path ${o.dir}/uwsgi;
  scgi_temp_path ${o.dir}/scgi;

  upstream docker-registry {
    server 127.0.0.1:${o.upstreamPort};
    keepalive 32;
  }

  ## Set a variable to help us decide if we need to add the
  ## 'Docker-Distribution-Api-Version' header.
  ## The registry always sets this header.
  ## In the case of nginx performing auth, the header is unset
  ## since nginx is auth-ing before proxying.
  map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {
    '' 'registry/2.0';
  }

  server {
    listen 127.0.0.1:${o.port} ssl;
    server_name localhost;

    # SSL
    ssl_certificate ${o.cert};
    ssl_certificate_key ${o.key};

    # Recommendations from https://raymii.org/s/tutorials/Strong_SSL_Security_On_nginx.html
    ssl_protocols TLSv1.1 TLSv1.2;
    ssl_ciphers 'EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH';
    ssl_prefer_server_ciphers on;
    ssl_session_cache shared:SSL:10m;

    # disable any limits to avoid HTTP 413 for large image uploads
    client_max_body_size 0;

    # required to avoid HTTP 411: see Issue #1486 (https://github.com/moby/moby/issues/1486)
    chunked_transfer_encoding on;

    location /v2/ {
      # Do not allow connections from docker 1.5 and earlier
      # docker pre-1.6.0 did not properly set the user agent on ping, catch "Go *" user agents
      if ($http_user_agent ~ "^(docker\\/1\\.(3|4|5(?!\\.[0-9]-dev))|Go ).*$" ) {
        return 404;
      }

${o.auth === 'basic' ? nginxBasicAuth(o.htpasswd) : nginxUpstreamAuth}

      ## If $docker_distribution_api_version is empty, the header is not added.
      ## See the map directive above where this variable is defined.
      add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;

      proxy_pass                          http://docker-registry;
      proxy_set_header  Host              $http_host;   # required for docker client's sake
      proxy_set_header  X-Real-IP         $remote_addr; # pass on real client's IP
      proxy_set_header  X-Forwarded-For   $proxy_add_x_forwarded_for;
      proxy_set_header  X-Forwarded-Proto $scheme;
      proxy_read_timeout                  900;

      # Streaming, and keep-alive connections to the registry.
      proxy_http_version 1.1;
      proxy_set_header  Connection        "";
      proxy_request_buffering off;
      proxy_buffering off;
    }
  }
}
`;
}

const nginxBasicAuth = (htpasswd: string) => `      # To add basic authentication to v2 use auth_basic setting.
      auth_basic "Registry realm";
      auth_basic_user_file ${htpasswd};`;

const nginxUpstreamAuth = `      # No auth_basic: the registry signs users in itself. nginx passes every request header on,
      # Authorization included, and the registry's 401 with its challenge back.`;

/** nginx as its own master, in the foreground, everything (pid, logs, temp files) under `dir`. */
export async function startNginx(dir: string, files: FrontFiles, upstreamPort: number, auth: FrontAuth = 'basic'): Promise<Service> {
  const port = await freePort();
  await writeFile(join(dir, 'nginx.conf'), nginxConfig({ ...files, dir, port, upstreamPort, auth }));
  return startService('nginx', port, 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
    logFile: join(dir, 'nginx.out'),
    ready: async () => (await statusOf(`https://127.0.0.1:${port}/v2/`, files.caFile)) === 401,
  });
}

/** The bcrypt lines of an htpasswd file's text, as `[user, hash]`: the only hashes Caddy reads. */
export function bcryptAccounts(htpasswdText: string): [string, string][] {
  return htpasswdText
    .split('\n')
    .map((line) => line.trim().split(':'))
    .filter((f): f is [string, string] => f.length === 2 && /^\$2[aby]\$/.test(f[1]!));
}

/**
 * Caddy (JSON configuration, no Caddyfile) as the same front as nginxConfig()'s recipe: TLS from the
 * same certificate files and no certificate management at all (automatic HTTPS off, no ACME, admin
 * endpoint off, nothing persisted), HTTP/1.1 as nginx and the gateway serve it, Basic auth against
 * the htpasswd file's bcrypt users with Caddy's cache of verified passwords, a streaming keep-alive
 * reverse_proxy on /v2/ only, the API-version header on Caddy's own answers. Warnings only, no
 * access log. With `auth: 'upstream'`, no authentication handler: Caddy passes Authorization on.
 * `htpasswdText` is the htpasswd file's content (its apr1 lines are left out: Caddy has no apr1).
 */
export function caddyConfig(o: FrontFiles & { dir: string; port: number; upstreamPort: number; auth: FrontAuth; htpasswdText: string }): string {
  const accounts = bcryptAccounts(o.htpasswdText);
  if (o.auth === 'basic' && accounts.length === 0) throw new Error(`caddyConfig: no bcrypt user in the htpasswd file ${o.htpasswd}`);
  const authentication = {
    handler: 'authentication',
    providers: {
      http_basic: {
        // Caddy 2.6 takes a hash starting with '$' as it stands (a base64 of it works too, the
        // older form it still reads); Go's bcrypt reads Apache's $2y$ hashes.
        accounts: accounts.map(([username, password]) => ({ username, password })),
        hash: { algorithm: 'bcrypt' },
        // Remembers the passwords it has verified: a bcrypt user costs one verification, not one a request.
        hash_cache: {},
        realm: 'Registry realm',
      },
    },
  };
  const config = {
    admin: { disabled: true, config: { persist: false } },
    logging: { logs: { default: { writer: { output: 'file', filename: join(o.dir, 'caddy.log') }, level: 'WARN' } } },
    storage: { module: 'file_system', root: join(o.dir, 'storage') },
    apps: {
      tls: { certificates: { load_files: [{ certificate: o.cert, key: o.key }] } },
      http: {
        servers: {
          bench: {
            listen: [`127.0.0.1:${o.port}`],
            // h1 only: curl would otherwise pick h2 (nginx's recipe and the gateway serve HTTP/1.1),
            // and the default h3 would open a UDP listener too.
            protocols: ['h1'],
            automatic_https: { disable: true },
            tls_connection_policies: [{}],
            routes: [
              {
                match: [{ path: ['/v2/*'] }],
                terminal: true,
                handle: [
                  ...(o.auth === 'basic' ? [authentication] : []),
                  {
                    handler: 'reverse_proxy',
                    upstreams: [{ dial: `127.0.0.1:${o.upstreamPort}` }],
                    // Streams both ways; Host goes on as the client sent it (Caddy's default).
                    flush_interval: -1,
                    transport: { protocol: 'http', keep_alive: { enabled: true, max_idle_conns_per_host: 32 } },
                  },
                ],
              },
              // Only /v2/ is routed, as nginx's location; Caddy would answer anything else with an empty 200.
              { handle: [{ handler: 'static_response', status_code: 404 }] },
            ],
            // The registry sets Docker-Distribution-Api-Version on all its answers; the ones without
            // it are Caddy's own (authentication's 401, a 502), which go through these error routes.
            // A `headers` handler cannot do it: its deferred (or `require`) ops run only on answers
            // written through the handler chain, and the server writes a handler's error status
            // after the chain has returned, so the 401 would go without; a non-deferred `set`
            // would double the registry's own header, since reverse_proxy adds the upstream's
            // headers to those already set.
            errors: {
              routes: [
                {
                  handle: [{ handler: 'static_response', status_code: '{http.error.status_code}', headers: { 'Docker-Distribution-Api-Version': ['registry/2.0'] } }],
                },
              ],
            },
          },
        },
      },
    },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/**
 * Caddy as its own process, `caddy run` on caddyConfig()'s JSON, with HOME and the XDG folders it
 * would write to (its trust store, autosave) under `dir`, so that nothing outside it is touched.
 */
export async function startCaddy(dir: string, files: FrontFiles, upstreamPort: number, auth: FrontAuth = 'basic'): Promise<Service> {
  const port = await freePort();
  const config = join(dir, 'caddy.json');
  await writeFile(config, caddyConfig({ ...files, dir, port, upstreamPort, auth, htpasswdText: readFileSync(files.htpasswd, 'utf8') }));
  const home = join(dir, 'home');
  const env = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CACHE_HOME: join(home, 'cache'),
  };
  return startService('caddy', port, 'caddy', ['run', '--config', config, '--adapter', ''], {
    logFile: join(dir, 'caddy.out'),
    env,
    ready: async () => (await statusOf(`https://127.0.0.1:${port}/v2/`, files.caFile)) === 401,
  });
}

/** `--auth token`: the gateway issues bearer tokens at /token to the htpasswd users, and checks them. */
export interface GatewayTokenAuth {
  /** `--token-key`: made there on first start (not in the working folder's certs/). */
  readonly keyFile: string;
  /** `--token-service`: the `service` a token request names. */
  readonly service: string;
  /** `--token-ttl`: an access token's lifetime, in seconds. */
  readonly ttlSeconds: number;
}

/**
 * The gateway from dist/, with the same certificate, users and upstream; warnings-only logging.
 * With `auth: 'upstream'`, `--auth upstream` and no htpasswd file: the registry signs users in.
 * With `token`, `--auth token` for the same htpasswd users.
 */
export async function startGateway(
  dir: string,
  files: FrontFiles,
  upstreamPort: number,
  options: {
    cli: string;
    workers: string | null;
    auth?: FrontAuth;
    token?: GatewayTokenAuth;
    /** Node flags (`--cpu-prof ...`): then `node FLAGS BIN-FLAGS cli ...`, the bin's own flags kept. */
    nodeArgs?: readonly string[];
  },
): Promise<Service> {
  const port = await freePort();
  // GATEWAY_* variables from the caller's environment must not change what is measured.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEWAY_')));
  const args = [
    'serve',
    '--listen', `127.0.0.1:${port}`,
    '--upstream', `http://127.0.0.1:${upstreamPort}`,
    '--tls-cert', files.cert,
    '--tls-key', files.key,
    ...(options.auth === 'upstream' ? ['--auth', 'upstream'] : ['--htpasswd', files.htpasswd]),
    ...(options.token === undefined
      ? []
      : ['--auth', 'token', '--token-key', options.token.keyFile, '--token-service', options.token.service, '--token-ttl', String(options.token.ttlSeconds)]),
    '--log-level', 'warn',
    ...(options.workers === null ? [] : ['--workers', options.workers]),
  ];
  // Run as installed (`registry-gateway serve`): through its first line, with the V8 flag it sets.
  // With more Node flags, node is started here instead, with that line's flags as well.
  const [file, argv] =
    options.nodeArgs === undefined ? [options.cli, args] : [process.execPath, [...options.nodeArgs, ...binNodeFlags(options.cli), options.cli, ...args]];
  return startService('registry-gateway', port, file, argv, {
    logFile: join(dir, 'gateway.log'),
    env,
    ready: async () => (await statusOf(`https://127.0.0.1:${port}/v2/`, files.caFile)) === 401,
  });
}

/** The Node flags on a bin's first line, `#!/usr/bin/env -S node FLAGS`. */
function binNodeFlags(cli: string): string[] {
  const first = readFileSync(cli, 'utf8').split('\n', 1)[0] ?? '';
  const flags = /^#!.*\bnode((?:\s+-\S+)*)\s*$/.exec(first);
  if (!flags) throw new Error(`${cli} does not start with a #! line running node: ${first}`);
  return flags[1]!.trim().split(/\s+/).filter((f) => f !== '');
}

/** The PIDs of a process and all its descendants, from the parent PIDs in /proc/N/stat. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so cut after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0 && out.length < 10_000) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU seconds (user + system) used so far by a process tree's live processes, from /proc/N/stat. */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited meanwhile
    }
  }
  // USER_HZ is 100 on every Linux this runs on.
  return ticks / 100;
}

export interface Memory {
  /** Sum of VmRSS, the target's measure: pages shared by several processes count once per process. */
  readonly rssMiB: number;
  /** Sum of Pss (smaps_rollup): shared pages split between the processes sharing them. */
  readonly pssMiB: number;
}

/** Memory of a process tree, in MiB. */
export function treeMemory(root: number): Memory {
  let rss = 0;
  let pss = 0;
  for (const pid of processTree(root)) {
    try {
      rss += Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      pss += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return { rssMiB: rss / 1024, pssMiB: pss / 1024 };
}

/** Samples treeMemory every 100 ms while `work` runs; returns its result and the peaks seen. */
export async function withPeakMemory<T>(root: number, work: () => Promise<T>): Promise<{ result: T; peak: Memory }> {
  let peak = treeMemory(root);
  const sample = () => {
    const m = treeMemory(root);
    peak = { rssMiB: Math.max(peak.rssMiB, m.rssMiB), pssMiB: Math.max(peak.pssMiB, m.pssMiB) };
  };
  const timer = setInterval(sample, 100);
  try {
    const result = await work();
    sample();
    return { result, peak };
  } finally {
    clearInterval(timer);
  }
}
