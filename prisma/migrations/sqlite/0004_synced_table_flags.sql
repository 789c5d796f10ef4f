-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_SyncedTable" (
    "databaseId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "algorithm" TEXT NOT NULL DEFAULT 'cls',
    "flags" INTEGER NOT NULL DEFAULT 0,
    "deployedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,

    PRIMARY KEY ("databaseId", "name"),
    CONSTRAINT "SyncedTable_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_SyncedTable" ("algorithm", "databaseId", "deployedAt", "name") SELECT "algorithm", "databaseId", "deployedAt", "name" FROM "SyncedTable";
DROP TABLE "SyncedTable";
ALTER TABLE "new_SyncedTable" RENAME TO "SyncedTable";
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
