#!/usr/bin/env node
/**
 * CPU µs per event of the worker's event check and normalisation
 * (normalizeEvent of each event of a batch job, with the job's enqueue time as
 * the receive time, as the worker's parseJob calls it), this
 * checkout's against another built checkout's, in one process on the same
 * generated events, rounds alternating between the two (the machine is shared
 * and noisy: a ratio measured side by side is what counts).
 *
 *   node scripts/normalize-bench.mjs [--against <checkout>] [--events N] [--rounds N]
 *
 * Jobs are batch jobs of 100 events as the bench's endToEnd sends them; their
 * data goes through JSON as BullMQ's does, so each round parses fresh objects.
 * Prints the median µs per event of each side and the ratio.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { against: { type: 'string' }, events: { type: 'string', default: '50000' }, rounds: { type: 'string', default: '7' } },
});
const here = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const events = Number(values.events);
const rounds = Number(values.rounds);

const load = async (checkout) => {
  const mod = (rel) => import(pathToFileURL(path.join(checkout, 'dist', rel)).href);
  const { normalizeEvent } = await mod('event/normalize.js');
  return { name: path.relative(process.cwd(), checkout) || '.', normalizeEvent };
};

const { generateEvents } = await import(pathToFileURL(path.join(here, 'dist/generate/model.js')).href);
const generated = generateEvents({ sessions: Math.ceil(events / 8.4), seed: 42 }).slice(0, events);
const jobs = [];
for (let i = 0; i < generated.length; i += 100) {
  const at = Date.parse(generated[Math.min(i + 99, generated.length - 1)].createdAt) + 5;
  jobs.push({ id: String(jobs.length + 1), name: 'batch', timestamp: at, text: JSON.stringify({ events: generated.slice(i, i + 100) }) });
}

const sides = [await load(here)];
if (values.against) sides.push(await load(path.resolve(values.against)));

/** One pass over every job: µs of CPU per event (job data parsed from JSON outside the timed part). */
function pass(side) {
  const parsed = jobs.map((j) => ({ id: j.id, name: j.name, timestamp: j.timestamp, data: JSON.parse(j.text) }));
  const t0 = process.cpuUsage();
  let valid = 0;
  for (const job of parsed) {
    const options = { receivedAtMs: job.timestamp, maxFutureMs: 3_600_000 };
    job.data.events.forEach((event, index) => {
      side.normalizeEvent(event, options, () => `job-${job.id}-${index}`);
      valid += 1;
    });
  }
  const t = process.cpuUsage(t0);
  if (valid !== generated.length) throw new Error(`${side.name}: ${valid} of ${generated.length} events valid`);
  return (t.user + t.system) / generated.length;
}

for (const side of sides) pass(side); // warm-up: JIT and inline caches
const samples = sides.map(() => []);
for (let r = 0; r < rounds; r += 1) sides.forEach((side, i) => samples[i].push(pass(side)));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const medians = samples.map(median);
sides.forEach((side, i) => console.log(`${side.name}: normalizeEvent ${medians[i].toFixed(2)} µs/event (rounds: ${samples[i].map((x) => x.toFixed(2)).join(', ')})`));
if (sides.length === 2) console.log(`this ÷ against: ${(medians[0] / medians[1]).toFixed(3)}`);
