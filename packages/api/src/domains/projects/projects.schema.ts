import { builder } from '../../builder.ts';
import { DatabaseKind } from './projects.service.ts';

export const DatabaseKindEnum = builder.enumType('DatabaseKind', { values: Object.values(DatabaseKind) });

export const ProjectRef = builder.prismaObject('Project', {
  description: 'A workspace holding databases of one kind',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    kind: t.field({ type: DatabaseKindEnum, resolve: (p) => (p.kind === 'POSTGRES' ? 'POSTGRES' : 'SQLITE') }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const DeleteProjectPayload = builder.objectRef<{ id: string; deletedDatabaseIds: string[] }>('DeleteProjectPayload').implement({
  fields: (t) => ({ id: t.exposeID('id'), deletedDatabaseIds: t.exposeStringList('deletedDatabaseIds') }),
});

builder.queryFields((t) => ({
  projects: t.field({ type: [ProjectRef], resolve: (_r, _a, ctx) => ctx.services.projects.listProjects() }),
  project: t.field({
    type: ProjectRef,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, { id }, ctx) => ctx.services.projects.getProject(String(id)),
  }),
}));

builder.mutationFields((t) => ({
  createProject: t.field({
    type: ProjectRef,
    args: { name: t.arg.string({ required: true }), kind: t.arg({ type: DatabaseKindEnum, required: true }) },
    resolve: (_r, args, ctx) => ctx.services.projects.createProject(args),
  }),
  deleteProject: t.field({
    type: DeleteProjectPayload,
    description: 'Deletes the project and every database in it (control-plane records and central files); devices of those databases are refused from now on',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_r, { id }, ctx) => ({ id: String(id), deletedDatabaseIds: await ctx.services.projects.deleteProject(String(id)) }),
  }),
}));
