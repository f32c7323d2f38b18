// Reading an htpasswd file for editing and replacing it atomically, so the gateway (which reloads
// the file when it changes) and the registry never see half a file.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, open, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { GatewayError } from '../errors.js';

const NEW_FILE_MODE = 0o600;
const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export interface EditableFile {
  /** The path as given, for messages. */
  readonly path: string;
  /** The file written: the target of a symbolic link, so the link itself stays in place. */
  readonly target: string;
  readonly exists: boolean;
  /** The file's text, in the form the htpasswd-edit functions take. */
  readonly text: string;
  /** A user name as it appears in `text`. */
  toText(user: string): string;
  /** A user name from `text` as it really is. */
  fromText(name: string): string;
  /** Writes new text in place of the file: same folder, mode kept less any access for others (0600 for a new file). */
  replace(text: string): Promise<void>;
}

export async function openForEdit(path: string): Promise<EditableFile> {
  const target = await resolveTarget(path);
  let bytes: Buffer | null;
  try {
    bytes = await readFile(target);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw unreadable(path, err);
    bytes = null;
  }
  const codec = bytes === null ? UTF8 : pickCodec(bytes);
  return {
    path,
    target,
    exists: bytes !== null,
    text: bytes === null ? '' : codec.decode(bytes),
    toText: codec.toText,
    fromText: codec.fromText,
    replace: (text) => replaceFile(path, target, codec.encode(text)),
  };
}

async function resolveTarget(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return path;
    throw unreadable(path, err);
  }
}

interface Codec {
  decode(bytes: Buffer): string;
  encode(text: string): Buffer;
  toText(user: string): string;
  fromText(name: string): string;
}

const UTF8: Codec = {
  decode: (bytes) => bytes.toString('utf8'),
  encode: (text) => Buffer.from(text, 'utf8'),
  toText: (user) => user,
  fromText: (name) => name,
};

/**
 * A file with lines that are not UTF-8 (a Latin-1 name, say) is edited byte for byte: one
 * character per byte, with user names turned into their UTF-8 bytes the same way. Decoding it as
 * UTF-8 would turn those lines into U+FFFD on the way back out.
 */
const BYTES: Codec = {
  decode: (bytes) => (bytes.subarray(0, 3).equals(UTF8_BOM) ? `\uFEFF${bytes.subarray(3).toString('latin1')}` : bytes.toString('latin1')),
  encode: (text) => (text.startsWith('\uFEFF') ? Buffer.concat([UTF8_BOM, Buffer.from(text.slice(1), 'latin1')]) : Buffer.from(text, 'latin1')),
  toText: (user) => Buffer.from(user, 'utf8').toString('latin1'),
  fromText: (name) => Buffer.from(name, 'latin1').toString('utf8'),
};

function pickCodec(bytes: Buffer): Codec {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return UTF8;
  } catch {
    return BYTES;
  }
}

/** Fails early, before anyone types a password, when the file could not be written. */
export async function checkWritable(file: EditableFile): Promise<void> {
  const folder = dirname(file.target);
  try {
    await access(folder, constants.W_OK);
  } catch (err) {
    // A file bind-mounted on its own into a container sits in a folder we may not write to;
    // it can still be rewritten in place.
    if (!file.exists || !(await canWrite(file.target))) throw unwritable(file.path, folder, err);
  }
}

function canWrite(file: string): Promise<boolean> {
  return access(file, constants.W_OK).then(
    () => true,
    () => false,
  );
}

// Why a temporary file cannot be put in place by rename: a file bind-mounted on its own (EBUSY,
// EXDEV), or a folder we may not write to (EACCES, EPERM).
const IN_PLACE_CODES = new Set(['EBUSY', 'EXDEV', 'EACCES', 'EPERM']);

/** Rewrites the file through its own inode; not atomic, but the gateway keeps its last good users meanwhile. */
async function rewriteInPlace(target: string, bytes: Buffer): Promise<void> {
  const handle = await open(target, 'r+');
  try {
    await handle.truncate(0);
    await handle.write(bytes, 0, bytes.length, 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function replaceFile(path: string, target: string, bytes: Buffer): Promise<void> {
  try {
    await replaceByRename(path, target, bytes);
  } catch (err) {
    const code = errnoCode((err as Error).cause);
    if (code === undefined || !IN_PLACE_CODES.has(code) || !(await canWrite(target))) throw err;
    await rewriteInPlace(target, bytes).catch((inPlace: unknown) => {
      throw unwritable(path, dirname(target), inPlace);
    });
  }
}

async function replaceByRename(path: string, target: string, bytes: Buffer): Promise<void> {
  const folder = dirname(target);
  const old = await stat(target).catch(() => null);
  const temp = join(folder, `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', NEW_FILE_MODE);
    try {
      await handle.writeFile(bytes);
      // open() applies the umask; chmod sets the mode exactly.
      // An existing file keeps its owner and group access (a gateway may read it through its
      // group), but password hashes are never left readable by everyone.
      await handle.chmod(old === null ? NEW_FILE_MODE : old.mode & 0o7770);
      if (old !== null) await keepOwner(handle, old);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw unwritable(path, folder, err);
  }
  await syncFolder(folder);
}

/**
 * When root edits a file owned by the gateway's user, the new file must stay that user's, or a
 * 0600 file would lock the gateway out. Others cannot give files away; for them this is a no-op.
 */
async function keepOwner(handle: { chown(uid: number, gid: number): Promise<void> }, old: { uid: number; gid: number }): Promise<void> {
  if (old.uid === process.getuid?.() && old.gid === process.getgid?.()) return;
  await handle.chown(old.uid, old.gid).catch(() => undefined);
}

/** Makes the rename itself durable. Best effort: some file systems cannot sync a folder. */
async function syncFolder(folder: string): Promise<void> {
  try {
    const handle = await open(folder, 'r');
    await handle.sync().finally(() => handle.close());
  } catch {
    // the data is already on disk; only the rename might be lost in a crash
  }
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function describe(err: unknown): string {
  switch (errnoCode(err)) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    case 'ENOENT':
      return 'it does not exist';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOSPC':
      return 'the disk is full';
    default:
      return errnoCode(err) ?? String(err);
  }
}

export function unreadable(path: string, err: unknown): GatewayError {
  return new GatewayError('HTPASSWD_UNREADABLE', `cannot read ${path}: ${describe(err)}`, { cause: err });
}

function unwritable(path: string, folder: string, err: unknown): GatewayError {
  const code = errnoCode(err);
  const why =
    code === 'ENOENT' || code === 'ENOTDIR'
      ? `the folder ${folder} does not exist`
      : code === 'EACCES' || code === 'EPERM'
        ? `the folder ${folder} is not writable (permission denied); the file is replaced by a new one written there`
        : describe(err);
  return new GatewayError('HTPASSWD_UNWRITABLE', `cannot write ${path}: ${why}`, { cause: err });
}
