// Reading passwords: from a terminal without echo, or as the first line of standard input.

import { StringDecoder } from 'node:string_decoder';
import { GatewayError } from '../errors.js';

/** A terminal's input side: what tty.ReadStream offers that the prompt needs. */
export interface TtyInput extends NodeJS.ReadableStream {
  isRaw?: boolean;
  setRawMode(mode: boolean): unknown;
}

const ENTER = new Set(['\r', '\n']);
const BACKSPACE = new Set(['\x7f', '\b']);
const CTRL_C = '\x03';
const CTRL_D = '\x04';
const CTRL_U = '\x15';
const ESC = '\x1b';
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Shows each prompt in turn and reads one hidden line for it. The terminal is in raw mode for
 * the whole exchange (nothing is echoed, not even '*', so the length stays private) and is
 * restored afterwards whatever happens. Ctrl-C, or Ctrl-D on an empty line, cancels.
 */
export function promptHidden(input: TtyInput, output: NodeJS.WritableStream, prompts: readonly string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const wasRaw = input.isRaw === true;
    const editor = lineEditor();
    const answers: string[] = [];
    const decoder = new StringDecoder('utf8');

    const finish = (err?: Error) => {
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      input.removeListener('error', finish);
      input.setRawMode(wasRaw);
      input.pause();
      if (err === undefined) resolve(answers);
      else reject(err);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of typeof chunk === 'string' ? chunk : decoder.write(chunk)) {
        const event = editor.key(ch);
        if (event === 'cancel') {
          output.write('\n');
          return finish(cancelled());
        }
        if (event !== 'enter') continue;
        output.write('\n');
        answers.push(editor.take());
        if (answers.length === prompts.length) return finish();
        output.write(prompts[answers.length]!);
      }
    };
    const onEnd = () => {
      output.write('\n');
      finish(cancelled());
    };

    input.setRawMode(true);
    output.write(prompts[0] ?? '');
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', finish);
    input.resume();
  });
}

/** The line being typed: enough editing for a password, and escape sequences ignored. */
function lineEditor() {
  let line = '';
  let lastWasCr = false;
  let escape: 'none' | 'start' | 'sequence' = 'none';
  return {
    key(ch: string): 'enter' | 'cancel' | null {
      const afterCr = lastWasCr;
      lastWasCr = ch === '\r';
      // Arrow and function keys send ESC [ ... final or ESC O final: skip the whole sequence.
      if (escape === 'start') {
        escape = ch === '[' || ch === 'O' ? 'sequence' : 'none';
        return null;
      }
      if (escape === 'sequence') {
        if (/[@-~]/.test(ch)) escape = 'none';
        return null;
      }
      if (ENTER.has(ch)) return ch === '\n' && afterCr ? null : 'enter';
      if (ch === CTRL_C || (ch === CTRL_D && line === '')) return 'cancel';
      if (BACKSPACE.has(ch)) line = Array.from(line).slice(0, -1).join('');
      else if (ch === CTRL_U) line = '';
      else if (ch === ESC) escape = 'start';
      else if (ch >= ' ') line += ch;
      return null;
    },
    take(): string {
      const taken = line;
      line = '';
      return taken;
    },
  };
}

function cancelled(): GatewayError {
  return new GatewayError('PASSWORD_PROMPT_CANCELLED', 'cancelled; nothing was changed');
}

/** The first line of a stream, without its line break; reading stops there. */
export function readFirstLine(input: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const done = (err?: Error) => {
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      input.removeListener('error', done);
      input.pause();
      if (err !== undefined) return reject(err);
      const bytes = Buffer.concat(chunks);
      const newline = bytes.indexOf(0x0a);
      try {
        const line = STRICT_UTF8.decode(newline < 0 ? bytes : bytes.subarray(0, newline));
        resolve(line.endsWith('\r') ? line.slice(0, -1) : line);
      } catch {
        // Decoding loosely would quietly set a password nobody can type.
        reject(new GatewayError('PASSWORD_REFUSED', 'the password on standard input is not valid UTF-8'));
      }
    };
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      chunks.push(bytes);
      if (bytes.includes(0x0a)) done();
    };
    const onEnd = () => done();
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', done);
    input.resume();
  });
}
