-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_Database" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "projectId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "offSyncEnabled" BOOLEAN NOT NULL DEFAULT false,
    "offSyncEnabledAt" DATETIME,
    "rlsMode" TEXT NOT NULL DEFAULT 'BYPASS',
    "serviceKeyHash" TEXT,
    "serviceKeyUpdatedAt" DATETIME,
    "pgHost" TEXT,
    "pgPort" INTEGER,
    "pgDatabase" TEXT,
    "pgUser" TEXT,
    "pgPasswordEnc" TEXT,
    "pgSsl" BOOLEAN NOT NULL DEFAULT false,
    "expoAccessTokenEnc" TEXT,
    "expoAccessTokenUpdatedAt" DATETIME,
    "fileIdentity" TEXT,
    "conflictLog" BOOLEAN NOT NULL DEFAULT true,
    CONSTRAINT "Database_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_Database" ("createdAt", "expoAccessTokenEnc", "expoAccessTokenUpdatedAt", "fileIdentity", "id", "kind", "name", "offSyncEnabled", "offSyncEnabledAt", "pgDatabase", "pgHost", "pgPasswordEnc", "pgPort", "pgSsl", "pgUser", "projectId", "rlsMode", "serviceKeyHash", "serviceKeyUpdatedAt") SELECT "createdAt", "expoAccessTokenEnc", "expoAccessTokenUpdatedAt", "fileIdentity", "id", "kind", "name", "offSyncEnabled", "offSyncEnabledAt", "pgDatabase", "pgHost", "pgPasswordEnc", "pgPort", "pgSsl", "pgUser", "projectId", "rlsMode", "serviceKeyHash", "serviceKeyUpdatedAt" FROM "Database";
DROP TABLE "Database";
ALTER TABLE "new_Database" RENAME TO "Database";
CREATE UNIQUE INDEX "Database_projectId_name_key" ON "Database"("projectId", "name");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
