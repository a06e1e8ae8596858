/**
 * The hot-key tracker alone (`deno bench observability/`): 100k records over 5000 keys,
 * Zipf-skewed as in `deno task bench`, into the node's default tracker (1000 slots), as the
 * actor stage records each key of each batch.
 */
import { HotKeys } from "./hot_keys.ts";

const KEYS = 5000;
const harmonic = Array.from({ length: KEYS }, (_, i) => 1 / (i + 1));
const total = harmonic.reduce((a, b) => a + b, 0);
let seed = 7;
const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
const sequence = Array.from({ length: 100_000 }, () => {
  let u = random() * total;
  let i = 0;
  while (i < KEYS - 1 && u > harmonic[i]!) u -= harmonic[i++]!;
  return `INST-${i}`;
});

Deno.bench("hot keys: 100k records over 5000 Zipf keys", () => {
  const hot = new HotKeys({ capacity: 1000, halfLifeMs: 60_000 });
  for (const key of sequence) hot.record("instrument", key, 3);
});
