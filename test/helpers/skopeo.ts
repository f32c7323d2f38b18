// skopeo kept away from any credentials or trust policy of the machine running the tests.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SkopeoSandbox {
  /** Environment with its own homes and an empty auth file under `work`. */
  readonly env: NodeJS.ProcessEnv;
  /** A signature policy that accepts anything (`--policy`): the tests are about transport, not signing. */
  readonly policy: string;
}

export async function skopeoSandbox(work: string): Promise<SkopeoSandbox> {
  for (const d of ['home', 'xdg-runtime', 'xdg-config', 'docker-config']) await mkdir(join(work, d));
  const policy = join(work, 'policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  return {
    env: {
      ...process.env,
      HOME: join(work, 'home'),
      XDG_RUNTIME_DIR: join(work, 'xdg-runtime'),
      XDG_CONFIG_HOME: join(work, 'xdg-config'),
      DOCKER_CONFIG: join(work, 'docker-config'),
      REGISTRY_AUTH_FILE: join(work, 'auth.json'),
    },
    policy,
  };
}
