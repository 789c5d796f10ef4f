import { CoreError, CoreErrorCode } from '../errors.ts';
import type { CrdtAlgorithm } from '../types.ts';

const ALIASES: Record<string, CrdtAlgorithm> = {
  cls: 'cls',
  causallengthset: 'cls',
  gos: 'gos',
  growonlyset: 'gos',
};
const NOT_YET = new Set(['dws', 'deletewinsset', 'aws', 'addwinsset']);

/** Maps an algorithm name (§P5, case-insensitive, aliases allowed) to cls/gos; dws/aws are refused. */
export function resolveAlgorithm(name: string | undefined | null): CrdtAlgorithm {
  if (name == null || name === '') return 'cls';
  const key = name.toLowerCase();
  const algo = ALIASES[key];
  if (algo !== undefined) return algo;
  if (NOT_YET.has(key)) throw new CoreError(CoreErrorCode.ALGORITHM_UNSUPPORTED, `CRDT algorithm ${name} is not yet supported`);
  throw new CoreError(CoreErrorCode.ALGORITHM_UNSUPPORTED, `Unknown CRDT algorithm name ${name}`);
}
