// Writes and reads OCI image layouts (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
// with real gzip'd tar layers, so skopeo and docker can move genuine images through the gateway.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const MEDIA_TYPES = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/** Files of one layer: path inside the image (no leading slash needed) -> content. */
export type LayerFiles = Record<string, string | Buffer>;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface OciImageManifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface WrittenOciImage {
  manifestDigest: string;
  /** Digests of the compressed layer blobs, in manifest order. */
  layerDigests: string[];
  /** Digests of the uncompressed layer tars (the config's rootfs.diff_ids). */
  diffIds: string[];
  configDigest: string;
  /** Exact bytes of the manifest blob. */
  manifestBytes: Buffer;
  manifest: OciImageManifest;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * Writes a single-platform (linux/amd64) image tagged `tag` into the OCI layout at `dir`
 * (created when missing; an existing layout gains the image). Output is deterministic.
 */
export async function writeOciLayout(
  dir: string,
  image: { tag: string; layers: LayerFiles[]; created?: string; platform?: Platform },
): Promise<WrittenOciImage> {
  const blobDir = join(dir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  const putBlob = async (data: Buffer): Promise<string> => {
    const digest = sha256(data);
    await writeFile(join(blobDir, digest.slice('sha256:'.length)), data);
    return digest;
  };

  const layerDescriptors: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const files of image.layers) {
    const tar = makeTar(files);
    diffIds.push(sha256(tar));
    const gz = gzipLayer(tar);
    layerDescriptors.push({ mediaType: MEDIA_TYPES.layerGzip, digest: await putBlob(gz), size: gz.length });
  }
  const created = image.created ?? '2024-01-01T00:00:00Z';
  const config = {
    created,
    architecture: image.platform?.architecture ?? 'amd64',
    os: image.platform?.os ?? 'linux',
    ...(image.platform?.variant ? { variant: image.platform.variant } : {}),
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: image.layers.map((_, i) => ({ created, created_by: `registry-gateway test layer ${i + 1}` })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = await putBlob(configBytes);
  const manifest: OciImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: { mediaType: MEDIA_TYPES.config, digest: configDigest, size: configBytes.length },
    layers: layerDescriptors,
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = await putBlob(manifestBytes);

  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const indexFile = join(dir, 'index.json');
  let index: { schemaVersion: 2; mediaType?: string; manifests: Descriptor[] } = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: [],
  };
  try {
    index = JSON.parse(await readFile(indexFile, 'utf8'));
  } catch {
    // new layout
  }
  index.manifests = index.manifests.filter((d) => d.annotations?.['org.opencontainers.image.ref.name'] !== image.tag);
  index.manifests.push({
    mediaType: MEDIA_TYPES.manifest,
    digest: manifestDigest,
    size: manifestBytes.length,
    annotations: { 'org.opencontainers.image.ref.name': image.tag },
  });
  await writeFile(indexFile, JSON.stringify(index));

  return {
    manifestDigest,
    layerDigests: layerDescriptors.map((d) => d.digest),
    diffIds,
    configDigest,
    manifestBytes,
    manifest,
  };
}

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export interface WrittenOciIndex {
  readonly indexDigest: string;
  readonly images: ReadonlyArray<WrittenOciImage & { readonly platform: Platform }>;
}

/**
 * Writes a multi-platform image: one image per platform, and an OCI index naming them, tagged
 * `tag` (push it with `skopeo copy --all`).
 */
export async function writeOciIndex(dir: string, index: { tag: string; platforms: ReadonlyArray<{ platform: Platform; layers: LayerFiles[]; created?: string }> }): Promise<WrittenOciIndex> {
  const images = [];
  for (const [i, entry] of index.platforms.entries()) {
    const written = await writeOciLayout(dir, { tag: `${index.tag}-platform-${i}`, layers: entry.layers, created: entry.created, platform: entry.platform });
    images.push({ ...written, platform: entry.platform });
  }
  const indexJson = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: images.map((image) => ({ mediaType: MEDIA_TYPES.manifest, digest: image.manifestDigest, size: image.manifestBytes.length, platform: image.platform })),
  };
  const bytes = Buffer.from(JSON.stringify(indexJson));
  const indexDigest = sha256(bytes);
  await writeFile(join(dir, 'blobs', 'sha256', indexDigest.slice('sha256:'.length)), bytes);
  const indexFile = join(dir, 'index.json');
  const layout = JSON.parse(await readFile(indexFile, 'utf8')) as { manifests: Descriptor[] };
  layout.manifests = layout.manifests.filter((d) => !d.annotations?.['org.opencontainers.image.ref.name']?.startsWith(`${index.tag}-platform-`));
  layout.manifests.push({ mediaType: MEDIA_TYPES.index, digest: indexDigest, size: bytes.length, annotations: { 'org.opencontainers.image.ref.name': index.tag } });
  await writeFile(indexFile, JSON.stringify(layout));
  return { indexDigest, images };
}

export interface ReadOciImage {
  manifestDigest: string;
  manifestBytes: Buffer;
  manifest: OciImageManifest;
  configDigest: string;
  layerDigests: string[];
  /** Every blob file of the layout, by digest. */
  blobs: Map<string, Buffer>;
}

/**
 * Reads the image tagged `tag` from an OCI layout, checking that every blob file's content
 * matches its name and that every blob the manifest lists is present with the listed size.
 */
export async function readOciLayout(dir: string, tag: string): Promise<ReadOciImage> {
  const layout = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')) as { imageLayoutVersion?: string };
  if (layout.imageLayoutVersion !== '1.0.0') throw new Error(`${dir}: unexpected oci-layout ${JSON.stringify(layout)}`);
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const entry = index.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (entry === undefined) throw new Error(`${dir}: no image tagged ${tag} in index.json`);

  const blobDir = join(dir, 'blobs', 'sha256');
  const blobs = new Map<string, Buffer>();
  for (const name of await readdir(blobDir)) {
    const data = await readFile(join(blobDir, name));
    const digest = sha256(data);
    if (digest !== `sha256:${name}`) throw new Error(`${dir}: blob ${name} has content ${digest}`);
    blobs.set(digest, data);
  }
  const need = (d: Descriptor): Buffer => {
    const data = blobs.get(d.digest);
    if (data === undefined) throw new Error(`${dir}: blob ${d.digest} is missing`);
    if (data.length !== d.size) throw new Error(`${dir}: blob ${d.digest} is ${data.length} bytes, descriptor says ${d.size}`);
    return data;
  };
  const manifestBytes = need(entry);
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as OciImageManifest;
  need(manifest.config);
  manifest.layers.forEach(need);
  return {
    manifestDigest: entry.digest,
    manifestBytes,
    manifest,
    configDigest: manifest.config.digest,
    layerDigests: manifest.layers.map((d) => d.digest),
    blobs,
  };
}

/** Gzip with a fixed header (no name, mtime 0), so equal tars give equal blobs. */
export function gzipLayer(tar: Buffer): Buffer {
  return gzipSync(tar, { level: 6 });
}

/**
 * A POSIX ustar archive of the files, parent directories added as entries (mode 0755), files
 * mode 0644, owner root, mtime fixed. Paths may be nested; `..` and absolute paths are refused.
 */
export function makeTar(files: LayerFiles, mtime = 1_704_067_200): Buffer {
  const entries = new Map<string, Buffer | null>(); // null: directory
  for (const [rawPath, content] of Object.entries(files)) {
    const path = rawPath.replace(/^\/+/, '');
    const parts = path.split('/');
    if (path === '' || parts.some((p) => p === '' || p === '.' || p === '..')) {
      throw new Error(`makeTar: unusable path ${JSON.stringify(rawPath)}`);
    }
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (entries.get(dir) instanceof Buffer) throw new Error(`makeTar: ${dir} is both a file and a directory`);
      entries.set(dir, null);
    }
    if (entries.get(path) === null) throw new Error(`makeTar: ${path} is both a file and a directory`);
    entries.set(path, typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
  }
  const chunks: Buffer[] = [];
  for (const path of [...entries.keys()].sort()) {
    const content = entries.get(path) ?? null;
    const isDir = content === null;
    chunks.push(tarHeader(isDir ? `${path}/` : path, isDir ? 0 : content.length, isDir ? 0o755 : 0o644, isDir ? '5' : '0', mtime));
    if (!isDir) {
      chunks.push(content);
      const pad = (512 - (content.length % 512)) % 512;
      if (pad > 0) chunks.push(Buffer.alloc(pad));
    }
  }
  chunks.push(Buffer.alloc(1024)); // two zero blocks end the archive
  return Buffer.concat(chunks);
}

function tarHeader(path: string, size: number, mode: number, type: '0' | '5', mtime: number): Buffer {
  const header = Buffer.alloc(512);
  let name = path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    // ustar: split at a '/' so that name <= 100 and prefix <= 155 bytes
    const cut = path.lastIndexOf('/', path.length - 2);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
    if (cut <= 0 || Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) {
      throw new Error(`makeTar: path too long for ustar: ${path}`);
    }
  }
  const put = (value: string, offset: number, length: number): void => {
    header.write(value, offset, length, 'utf8');
  };
  const octal = (value: number, length: number): string => `${value.toString(8).padStart(length - 1, '0')}\0`;
  put(name, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(0, 8), 108, 8); // uid
  put(octal(0, 8), 116, 8); // gid
  put(octal(size, 12), 124, 12);
  put(octal(mtime, 12), 136, 12);
  put('        ', 148, 8); // checksum placeholder
  put(type, 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  put(octal(0, 8), 329, 8); // devmajor
  put(octal(0, 8), 337, 8); // devminor
  put(prefix, 345, 155);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return header;
}
