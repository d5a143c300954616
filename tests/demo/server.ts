/** A tiny static file server for the demo and consumer tests: the built site plus the test models. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wgsl': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.safetensors': 'application/octet-stream',
};

/**
 * What the network does to a request for `path`: 'cut' resets the connection (a network that
 * went away), a number sends the body at that many bytes per second, undefined sends it whole.
 */
export type Network = (path: string) => 'cut' | number | undefined;

/** Serve `mounts` (URL prefix -> directory) on 127.0.0.1 at a free port, through `network`. */
export async function serveStatic(
  mounts: Record<string, string>,
  network: Network = () => undefined,
): Promise<{ url: string; close(): Promise<void> }> {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const rate = network(path);
    if (rate === 'cut') {
      req.socket.destroy();
      return;
    }
    const prefix = prefixes.find((p) => path.startsWith(p));
    let file =
      prefix === undefined
        ? undefined
        : join(mounts[prefix], normalize(path.slice(prefix.length)).replace(/^(\.\.[/\\])+/, ''));
    const info = file ? await stat(file).catch(() => undefined) : undefined;
    if (file && info?.isDirectory()) file = join(file, 'index.html');
    const found = file ? await stat(file).catch(() => undefined) : undefined;
    if (!file || !found?.isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': found.size,
      'cache-control': 'no-store',
    });
    if (rate === undefined) {
      createReadStream(file).pipe(res);
      return;
    }
    for await (const chunk of createReadStream(file, { highWaterMark: 16 * 1024 }) as AsyncIterable<Buffer>) {
      if (res.destroyed) return;
      res.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, (1000 * chunk.length) / rate));
    }
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
