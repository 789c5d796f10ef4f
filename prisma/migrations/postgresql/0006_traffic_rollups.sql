-- CreateTable
CREATE TABLE "TrafficHour" (
    "databaseId" TEXT NOT NULL,
    "siteId" TEXT NOT NULL,
    "bucketStart" TIMESTAMP(3) NOT NULL,
    "uploadBytes" BIGINT NOT NULL DEFAULT 0,
    "downloadBytes" BIGINT NOT NULL DEFAULT 0,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "rejectedChanges" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "TrafficHour_pkey" PRIMARY KEY ("databaseId","siteId","bucketStart")
);

-- CreateTable
CREATE TABLE "TrafficDay" (
    "databaseId" TEXT NOT NULL,
    "siteId" TEXT NOT NULL,
    "bucketStart" TIMESTAMP(3) NOT NULL,
    "uploadBytes" BIGINT NOT NULL DEFAULT 0,
    "downloadBytes" BIGINT NOT NULL DEFAULT 0,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "rejectedChanges" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "TrafficDay_pkey" PRIMARY KEY ("databaseId","siteId","bucketStart")
);

-- CreateIndex
CREATE INDEX "TrafficHour_databaseId_bucketStart_idx" ON "TrafficHour"("databaseId", "bucketStart");

-- CreateIndex
CREATE INDEX "TrafficDay_databaseId_bucketStart_idx" ON "TrafficDay"("databaseId", "bucketStart");

-- AddForeignKey
ALTER TABLE "TrafficHour" ADD CONSTRAINT "TrafficHour_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "TrafficDay" ADD CONSTRAINT "TrafficDay_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Backfill: the hours and days of the minute buckets recorded so far.
INSERT INTO "TrafficHour" ("databaseId", "siteId", "bucketStart", "uploadBytes", "downloadBytes", "requests", "rejectedChanges")
SELECT "databaseId", "siteId", date_trunc('hour', "bucketStart"), SUM("uploadBytes"), SUM("downloadBytes"), SUM("requests"), SUM("rejectedChanges")
FROM "TrafficBucket" GROUP BY 1, 2, 3;
INSERT INTO "TrafficDay" ("databaseId", "siteId", "bucketStart", "uploadBytes", "downloadBytes", "requests", "rejectedChanges")
SELECT "databaseId", "siteId", date_trunc('day', "bucketStart"), SUM("uploadBytes"), SUM("downloadBytes"), SUM("requests"), SUM("rejectedChanges")
FROM "TrafficBucket" GROUP BY 1, 2, 3;
