/** Projects (workspaces) hold databases of one kind. */
import type { ServiceDeps } from '../../deps.ts';
import { generateId } from '../../crypto.ts';
import { ApiError } from '../../errors.ts';
import { validateName } from '../../validation.ts';
import type { DatabasesService } from '../databases/databases.service.ts';

export const DatabaseKind = { SQLITE: 'SQLITE', POSTGRES: 'POSTGRES' } as const;
export type DatabaseKind = (typeof DatabaseKind)[keyof typeof DatabaseKind];

export function createProjectsService(deps: ServiceDeps, databases: DatabasesService) {
  const { prisma } = deps;
  return {
    /**
     * Deletes a project and every database in it (each as `deleteDatabase` does: control-plane
     * rows, live sessions ended, central files removed). Returns the ids of the deleted databases.
     */
    async deleteProject(id: string): Promise<string[]> {
      const project = await prisma.project.findUnique({ where: { id }, include: { databases: { select: { id: true } } } });
      if (project === null) throw new ApiError('NOT_FOUND', `Project ${id} not found`, { details: { projectId: id } });
      const deleted: string[] = [];
      for (const d of project.databases) deleted.push(await databases.deleteDatabase(d.id));
      await prisma.project.delete({ where: { id } });
      return deleted;
    },
    async createProject(input: { name: string; kind: DatabaseKind }) {
      const name = validateName('name', input.name);
      if (!Object.values(DatabaseKind).includes(input.kind)) {
        throw new ApiError('VALIDATION_FAILED', 'kind: must be SQLITE or POSTGRES', { details: { field: 'kind' } });
      }
      return prisma.project.create({ data: { id: generateId('prj'), name, kind: input.kind, createdAt: new Date(deps.clock.now()) } });
    },
    listProjects() {
      return prisma.project.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
    },
    async getProject(id: string) {
      const project = await prisma.project.findUnique({ where: { id } });
      if (project === null) throw new ApiError('NOT_FOUND', `Project ${id} not found`, { details: { projectId: id } });
      return project;
    },
  };
}
export type ProjectsService = ReturnType<typeof createProjectsService>;
