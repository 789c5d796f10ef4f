/** Side-effect imports of every domain schema, then the executable schema. */
import { builder } from '../builder.ts';
import './scalars.ts';
import '../domains/projects/projects.schema.ts';
import '../domains/databases/databases.schema.ts';
import '../domains/tables/tables.schema.ts';
import '../domains/auth/auth.schema.ts';
import '../domains/devices/devices.schema.ts';
import '../domains/metrics/metrics.schema.ts';
import '../domains/push/push.schema.ts';
import '../domains/sync/sync.schema.ts';
import '../domains/sync/rejections.schema.ts';
import '../domains/sync/conflicts.schema.ts';
import '../domains/sync/compaction.schema.ts';

export const schema = builder.toSchema();
