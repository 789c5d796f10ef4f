/** The tables domain: synced tables of a database (deploy, alter, block columns), row-level security rules and their preview. */
export { RlsMode, createTablesService } from './tables.service.ts';
export type { DeployMode, DeployOptions, RlsConfig, RlsPolicyEntry, TableDeployOptions, TableFilter, TableList, TableNode, TablesService } from './tables.service.ts';
export type { TableColumn, TableInfo, TableIssue } from './table-engine.ts';
export { RlsOperation } from './rls-validate.ts';
