/**
 * `pgm convert <file.ckpt> <dir> --shard-size 1K` in this process, sent a real <signal>
 * (SIGINT or SIGTERM) as soon as the conversion has a temporary file in <dir>; exits with pgm's
 * exit code. Run by tests/convert/replace.test.ts.
 */
import { readdir } from 'node:fs/promises';
import { main } from '../../src/cli/main.js';

const [ckpt, dir, signal] = process.argv.slice(2) as [string, string, NodeJS.Signals];
const TEMPORARY = /^\..+\.[0-9a-f]{12}\.partial$/;
let sent = false;
void (async () => {
  while (!sent) {
    const temporaries = (await readdir(dir)).filter((f) => TEMPORARY.test(f));
    if (temporaries.length) {
      sent = true;
      console.log(
        `${signal} with ${temporaries.length} temporar${temporaries.length === 1 ? 'y' : 'ies'} in the directory`,
      );
      process.kill(process.pid, signal);
    }
    await new Promise(setImmediate);
  }
})();
process.exitCode = await main(['convert', ckpt, dir, '--shard-size', '1K']);
sent = true;
