/**
 * CPU time of this process's main thread, where the worker's JavaScript runs
 * (validation, normalisation, the script calls' encoding, the flusher). The
 * process total (process.cpuUsage) would also count embedded ClickHouse's
 * threads, which run inside the same process. Linux: /proc/self/task/<pid>/stat
 * (utime + stime in clock ticks of 10 ms); null elsewhere.
 */
import { readFileSync } from 'node:fs';

const TICK_MS = 10;

export function mainThreadCpuMs(): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces: count fields after its closing parenthesis
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return null;
  }
}
