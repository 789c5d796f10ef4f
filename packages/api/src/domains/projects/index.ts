/** The projects domain: projects and the kinds of database they hold. */
export { DatabaseKind, createProjectsService } from './projects.service.ts';
export type { ProjectsService } from './projects.service.ts';
