/**
 * fauxqs S3 in its own process for benchmarks, so the server and the client under test run on
 * different cores (in-process, they would share one event loop and the client would look slower).
 * Prints `{"endpoint": ...}` on stdout once listening; exits when its parent closes stdin.
 */
import { buildApp } from 'fauxqs';

const app = buildApp({ logger: false });
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
if (!addr || typeof addr === 'string') throw new Error('fauxqs did not bind a TCP port');
process.stdout.write(`${JSON.stringify({ endpoint: `http://127.0.0.1:${addr.port}` })}\n`);
process.stdin.resume();
process.stdin.on('end', () => void app.close().then(() => process.exit(0)));
