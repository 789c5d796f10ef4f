/** Monotonic UUIDv7 text for `cloudsync_uuid()`: within one millisecond the 12-bit `rand_a` field counts up. */
import { randomBytes } from 'node:crypto';
import { uuidText } from '@offsync/core';

let lastMs = -1;
let counter = 0;

export function uuidv7Text(now: number = Date.now()): string {
  let ms = Math.max(now, lastMs);
  if (ms === lastMs) {
    counter++;
    if (counter > 0xfff) {
      ms++;
      counter = 0;
    }
  } else counter = randomBytes(1)[0] ?? 0; // leave room to count up
  lastMs = ms;
  const b = new Uint8Array(randomBytes(16));
  let t = ms;
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  b[6] = 0x70 | ((counter >> 8) & 0x0f);
  b[7] = counter & 0xff;
  b[8] = 0x80 | ((b[8] ?? 0) & 0x3f);
  return uuidText(b);
}
