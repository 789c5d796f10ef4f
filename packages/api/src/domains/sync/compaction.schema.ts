/** GraphQL `compactDatabase` (docs/PROTOCOL.md "Compaction and the resync horizon"; compaction.ts). */
import { builder } from '../../builder.ts';
import { ApiError } from '../../errors.ts';
import { SyncError } from './sync-errors.ts';
import { toApiError } from './graphql/caller.ts';
import { compactDatabase, compactionOf } from './compaction.ts';
import type { DatabaseCompaction } from './compaction.ts';

const CompactionRef = builder.objectRef<DatabaseCompaction>('DatabaseCompaction').implement({
  description: 'What one compaction of a central database removed',
  fields: (t) => ({
    databaseId: t.exposeID('databaseId'),
    upTo: t.exposeFloat('upTo', { description: 'The version compacted up to: the smallest one acknowledged by the devices within the resync horizon' }),
    floor: t.exposeFloat('floor', { description: 'Download cursors below this version must resync from 0 (resync_required)' }),
    rows: t.exposeInt('rows', { description: 'Deleted rows whose records were removed' }),
    cells: t.exposeInt('cells', { description: 'Cell clocks (and block cells) of those rows removed' }),
    tombstones: t.exposeInt('tombstones', { description: 'Last values and compensation marks of deleted rows removed' }),
    evictions: t.exposeInt('evictions', { description: 'Removals addressed to one user removed' }),
    devicesCounted: t.exposeInt('devicesCounted', { description: 'Devices whose acknowledged version bounded upTo' }),
    devicesPastHorizon: t.exposeInt('devicesPastHorizon', { description: 'Devices not seen within the resync horizon, left out (they must resync)' }),
  }),
});

builder.mutationFields((t) => ({
  compactDatabase: t.field({
    type: CompactionRef,
    authScopes: { admin: true },
    description:
      'Forgets the tombstones of a SQLITE central database that every device within the resync horizon has downloaded past (POSTGRES: not_supported). Devices past the horizon get resync_required until they download from 0',
    args: { databaseId: t.arg.id({ required: true }) },
    resolve: async (_r, a, ctx) => {
      const databaseId = String(a.databaseId);
      await ctx.services.databases.getDatabase(databaseId);
      try {
        return await (compactionOf(ctx.sync)?.compact(databaseId) ?? compactDatabase(ctx.sync, databaseId, ctx.services.prisma));
      } catch (e) {
        if (e instanceof SyncError && e.code === 'not_supported') throw new ApiError('NOT_SUPPORTED_YET', e.message, { details: { syncCode: e.code } });
        throw toApiError(e);
      }
    },
  }),
}));
