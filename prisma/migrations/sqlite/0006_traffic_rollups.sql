-- CreateTable
CREATE TABLE "TrafficHour" (
    "databaseId" TEXT NOT NULL,
    "siteId" TEXT NOT NULL,
    "bucketStart" DATETIME NOT NULL,
    "uploadBytes" BIGINT NOT NULL DEFAULT 0,
    "downloadBytes" BIGINT NOT NULL DEFAULT 0,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "rejectedChanges" INTEGER NOT NULL DEFAULT 0,

    PRIMARY KEY ("databaseId", "siteId", "bucketStart"),
    CONSTRAINT "TrafficHour_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "TrafficDay" (
    "databaseId" TEXT NOT NULL,
    "siteId" TEXT NOT NULL,
    "bucketStart" DATETIME NOT NULL,
    "uploadBytes" BIGINT NOT NULL DEFAULT 0,
    "downloadBytes" BIGINT NOT NULL DEFAULT 0,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "rejectedChanges" INTEGER NOT NULL DEFAULT 0,

    PRIMARY KEY ("databaseId", "siteId", "bucketStart"),
    CONSTRAINT "TrafficDay_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE INDEX "TrafficHour_databaseId_bucketStart_idx" ON "TrafficHour"("databaseId", "bucketStart");

-- CreateIndex
CREATE INDEX "TrafficDay_databaseId_bucketStart_idx" ON "TrafficDay"("databaseId", "bucketStart");

-- Backfill: the hours and days of the minute buckets recorded so far (same text form as Prisma writes).
INSERT INTO "TrafficHour" ("databaseId", "siteId", "bucketStart", "uploadBytes", "downloadBytes", "requests", "rejectedChanges")
SELECT "databaseId", "siteId", strftime('%Y-%m-%dT%H:00:00.000+00:00', "bucketStart"), SUM("uploadBytes"), SUM("downloadBytes"), SUM("requests"), SUM("rejectedChanges")
FROM "TrafficBucket" GROUP BY 1, 2, 3;
INSERT INTO "TrafficDay" ("databaseId", "siteId", "bucketStart", "uploadBytes", "downloadBytes", "requests", "rejectedChanges")
SELECT "databaseId", "siteId", strftime('%Y-%m-%dT00:00:00.000+00:00', "bucketStart"), SUM("uploadBytes"), SUM("downloadBytes"), SUM("requests"), SUM("rejectedChanges")
FROM "TrafficBucket" GROUP BY 1, 2, 3;
