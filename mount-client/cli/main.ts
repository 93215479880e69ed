/**
 * `strata` — the command-line entry point. Each command lives in commands/<name>.ts and exports
 * `register(program, ctx)`; this file only wires them and turns errors into one clear line.
 */
import { Command, CommanderError } from 'commander';
import { commands } from './commands/index.ts';
import { CliContext, describeFailure } from './context.ts';

const program = new Command('strata')
  .description('Strata: an S3 bucket as an indexed, mountable filesystem')
  .version('0.1.0')
  .option('--api-url <url>', 'Strata API base URL (env STRATA_API_URL, else .strata/dev.json)')
  .option('--token <token>', 'API token (env STRATA_TOKEN, else .strata/dev.json)')
  .option('--json', 'print machine-readable JSON')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

const ctx = new CliContext(program);
for (const register of commands) register(program, ctx);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    const e = err as Error & { code?: string };
    process.stderr.write(`strata: ${describeFailure(e, ctx.loaded)}\n`);
    if (process.env.STRATA_DEBUG === '1' && e.stack) process.stderr.write(`${e.stack}\n`);
    process.exitCode = typeof process.exitCode === 'number' && process.exitCode !== 0 ? process.exitCode : 1;
  }
} finally {
  await ctx.close();
}
