// podman for tests, run as root without systemd and kept away from the machine's images, logins and
// settings: its own storage (vfs, no overlay mounts), run state and network configuration in a
// folder of the test, cgroupfs and a file for events (no systemd, no journald), its own auth file,
// registries.conf and signature policy. It trusts a test CA the way users do: /etc/containers/certs.d/HOST:PORT/ca.crt.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, run, runOk, type RunResult } from './tools.js';

const CERTS_ROOT = '/etc/containers/certs.d';

export interface PodmanCli {
  /** The environment podman runs with: homes, auth file and configuration files under the test's folder. */
  readonly env: NodeJS.ProcessEnv;
  /** The flags put before every command: storage, run state, cgroup manager, events. */
  readonly globalArgs: readonly string[];
  /** Where `podman login` keeps credentials (REGISTRY_AUTH_FILE). */
  readonly authFile: string;
  /** Runs podman; a non-zero exit is returned, not thrown. */
  run(args: string[], input?: string): Promise<RunResult>;
  /** Runs podman and throws with its output on a non-zero exit. */
  ok(args: string[], input?: string): Promise<RunResult>;
  /** Removes the folder with podman's storage (its images) and state. Idempotent. */
  remove(): Promise<void>;
}

/**
 * podman with everything it keeps under `dir` (created; `remove()` deletes it). A missing podman is
 * an error naming the Debian package, never a skipped test.
 */
export async function podmanCli(dir: string): Promise<PodmanCli> {
  const podman = requireTool('podman');
  for (const d of ['root', 'runroot', 'tmp', 'networks', 'home', 'xdg-runtime', 'xdg-config', 'docker-config']) await mkdir(join(dir, d), { recursive: true });
  const storageConf = join(dir, 'storage.conf');
  const registriesConf = join(dir, 'registries.conf');
  const authFile = join(dir, 'auth.json');
  // Written where containers/image looks before /etc/containers/policy.json: $HOME/.config/containers.
  await mkdir(join(dir, 'home', '.config', 'containers'), { recursive: true });
  await writeFile(join(dir, 'home', '.config', 'containers', 'policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  // The machine's storage.conf (a mount program, additional image stores) must not apply.
  await writeFile(storageConf, `[storage]\ndriver = "vfs"\ngraphroot = ${JSON.stringify(join(dir, 'root'))}\nrunroot = ${JSON.stringify(join(dir, 'runroot'))}\n`);
  // Image names are always fully qualified here: no search registries, mirrors or blocks.
  await writeFile(registriesConf, 'unqualified-search-registries = []\n');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: join(dir, 'home'),
    XDG_RUNTIME_DIR: join(dir, 'xdg-runtime'),
    XDG_CONFIG_HOME: join(dir, 'xdg-config'),
    DOCKER_CONFIG: join(dir, 'docker-config'),
    REGISTRY_AUTH_FILE: authFile,
    CONTAINERS_STORAGE_CONF: storageConf,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    TMPDIR: join(dir, 'tmp'),
  };
  const globalArgs = [
    '--root', join(dir, 'root'),
    '--runroot', join(dir, 'runroot'),
    '--tmpdir', join(dir, 'tmp'),
    // Else podman makes /etc/containers/networks (netavark's lock) on its first run.
    '--network-config-dir', join(dir, 'networks'),
    '--storage-driver', 'vfs',
    '--cgroup-manager', 'cgroupfs',
    '--events-backend', 'file',
  ];
  const options = (input?: string) => ({ env, timeoutMs: 180_000, ...(input === undefined ? {} : { input }) });
  let removed = false;
  return {
    env,
    globalArgs,
    authFile,
    run: (args, input) => run(podman, [...globalArgs, ...args], options(input)),
    ok: (args, input) => runOk(podman, [...globalArgs, ...args], options(input)),
    async remove() {
      if (removed) return;
      removed = true;
      // vfs mounts nothing, but a layer or container podman left mounted would stop rm.
      const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
      const mounts = mountinfo.split('\n').map((line) => line.split(' ')[4] ?? '').filter((m) => m.startsWith(`${dir}/`));
      for (const mount of mounts.sort().reverse()) await run('umount', ['-l', mount]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Installs `caPem` as the CA podman, skopeo and buildah trust for `hostPort`
 * (/etc/containers/certs.d/HOST:PORT/ca.crt); the returned function removes it again, and the
 * certs.d folder when this made it.
 */
export async function trustCaForContainers(hostPort: string, caPem: string): Promise<() => Promise<void>> {
  const createdRoot = !existsSync(CERTS_ROOT);
  const createdParent = !existsSync(join(CERTS_ROOT, '..'));
  const dir = join(CERTS_ROOT, hostPort);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'ca.crt'), caPem);
  return async () => {
    await rm(dir, { recursive: true, force: true });
    if (createdRoot) await rmdir(CERTS_ROOT).catch(() => undefined); // only if still empty
    if (createdParent) await rmdir(join(CERTS_ROOT, '..')).catch(() => undefined);
  };
}

/**
 * What a user does with podman once logged in: an image from an OCI layout (`oci:DIR:TAG`) tagged
 * `image`, pushed, removed and pulled back; throws unless the pull gives the same image (id and
 * digest). Returns the id and the digest the push reported.
 */
export async function podmanPushPull(podman: PodmanCli, source: string, image: string, work: string): Promise<{ id: string; digest: string }> {
  const id = (await podman.ok(['pull', '--quiet', source])).stdout.trim().split('\n').at(-1)!;
  if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`podman pull ${source} printed no image id: ${id}`);
  await podman.ok(['tag', id, image]);
  const digestFile = join(work, 'podman-digest');
  await podman.ok(['push', '--digestfile', digestFile, image]);
  const digest = (await readFile(digestFile, 'utf8')).trim();
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`podman push ${image} wrote no digest: ${digest}`);
  await podman.ok(['rmi', '--force', id]);
  if ((await podman.run(['image', 'exists', image])).code !== 1) throw new Error(`${image} is still in podman's storage after rmi`);
  await podman.ok(['pull', '--quiet', image]);
  const [pulled] = JSON.parse((await podman.ok(['image', 'inspect', image])).stdout) as Array<{ Id: string; Digest: string }>;
  if (pulled?.Digest !== digest || pulled.Id !== id) throw new Error(`pulled ${image} as ${pulled?.Id} ${pulled?.Digest}, pushed ${id} ${digest}`);
  return { id, digest };
}
