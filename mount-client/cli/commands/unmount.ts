import type { RegisterCommand } from '../context.ts';

export const register: RegisterCommand = (program, ctx) => {
  program
    .command('unmount')
    .description('unmount a Strata mount; its `strata mount` process notices and exits cleanly')
    .argument('<mountpoint>', 'where `strata mount` mounted the index')
    .option('--lazy', 'detach even while files are open (fusermount -uz); also clears a stale mount')
    .action(async (mountpoint: string, flags: { lazy?: boolean }) => {
      const { execFile } = await import('node:child_process');
      const { promisify } = await import('node:util');
      const { forceUnmount, isMounted } = await import('../../mount.ts');
      if (!isMounted(mountpoint)) {
        ctx.print({ mountpoint, unmounted: false }, () => `${mountpoint} is not mounted`);
        return;
      }
      if (flags.lazy) {
        await forceUnmount(mountpoint);
      } else {
        try {
          await promisify(execFile)('fusermount', ['-u', mountpoint]);
        } catch (err) {
          const stderr = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
          throw new Error(`cannot unmount ${mountpoint}: ${stderr}; close open files or use --lazy`);
        }
      }
      ctx.print({ mountpoint, unmounted: true }, () => `unmounted ${mountpoint}`);
    });
};
