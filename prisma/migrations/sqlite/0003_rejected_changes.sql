-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_TrafficBucket" (
    "databaseId" TEXT NOT NULL,
    "siteId" TEXT NOT NULL,
    "bucketStart" DATETIME NOT NULL,
    "uploadBytes" BIGINT NOT NULL DEFAULT 0,
    "downloadBytes" BIGINT NOT NULL DEFAULT 0,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "rejectedChanges" INTEGER NOT NULL DEFAULT 0,

    PRIMARY KEY ("databaseId", "siteId", "bucketStart"),
    CONSTRAINT "TrafficBucket_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_TrafficBucket" ("bucketStart", "databaseId", "downloadBytes", "requests", "siteId", "uploadBytes") SELECT "bucketStart", "databaseId", "downloadBytes", "requests", "siteId", "uploadBytes" FROM "TrafficBucket";
DROP TABLE "TrafficBucket";
ALTER TABLE "new_TrafficBucket" RENAME TO "TrafficBucket";
CREATE INDEX "TrafficBucket_databaseId_bucketStart_idx" ON "TrafficBucket"("databaseId", "bucketStart");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
