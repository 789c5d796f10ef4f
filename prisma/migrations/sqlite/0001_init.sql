-- CreateTable
CREATE TABLE "AdminKey" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "hash" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" DATETIME
);

-- CreateTable
CREATE TABLE "Project" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "Database" (
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
    CONSTRAINT "Database_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "SyncedTable" (
    "databaseId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "algorithm" TEXT NOT NULL DEFAULT 'cls',
    "deployedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,

    PRIMARY KEY ("databaseId", "name"),
    CONSTRAINT "SyncedTable_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "RlsPolicy" (
    "databaseId" TEXT NOT NULL,
    "tableName" TEXT NOT NULL,
    "operation" TEXT NOT NULL,
    "expression" TEXT NOT NULL,
    "updatedAt" DATETIME NOT NULL,

    PRIMARY KEY ("databaseId", "tableName", "operation"),
    CONSTRAINT "RlsPolicy_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "ApiKey" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "databaseId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" DATETIME,
    "revokedAt" DATETIME,
    CONSTRAINT "ApiKey_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "AccessToken" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "databaseId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "attributes" TEXT NOT NULL DEFAULT '{}',
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" DATETIME,
    "revokedAt" DATETIME,
    CONSTRAINT "AccessToken_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "JwtProvider" (
    "databaseId" TEXT NOT NULL PRIMARY KEY,
    "method" TEXT NOT NULL,
    "secretEnc" TEXT,
    "issuer" TEXT,
    "audience" TEXT,
    "jwksUri" TEXT,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "JwtProvider_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Device" (
    "databaseId" TEXT NOT NULL,
    "siteId" TEXT NOT NULL,
    "userId" TEXT,
    "credentialKind" TEXT NOT NULL,
    "clientVersion" TEXT,
    "schemaHash" TEXT,
    "firstSeenAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastSyncAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "uploadBytes" BIGINT NOT NULL DEFAULT 0,
    "downloadBytes" BIGINT NOT NULL DEFAULT 0,

    PRIMARY KEY ("databaseId", "siteId"),
    CONSTRAINT "Device_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "TrafficBucket" (
    "databaseId" TEXT NOT NULL,
    "siteId" TEXT NOT NULL,
    "bucketStart" DATETIME NOT NULL,
    "uploadBytes" BIGINT NOT NULL DEFAULT 0,
    "downloadBytes" BIGINT NOT NULL DEFAULT 0,
    "requests" INTEGER NOT NULL DEFAULT 0,

    PRIMARY KEY ("databaseId", "siteId", "bucketStart"),
    CONSTRAINT "TrafficBucket_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "PushToken" (
    "databaseId" TEXT NOT NULL,
    "expoToken" TEXT NOT NULL,
    "deviceId" TEXT NOT NULL,
    "siteId" TEXT NOT NULL,
    "platform" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,

    PRIMARY KEY ("databaseId", "expoToken"),
    CONSTRAINT "PushToken_databaseId_fkey" FOREIGN KEY ("databaseId") REFERENCES "Database" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE UNIQUE INDEX "AdminKey_hash_key" ON "AdminKey"("hash");

-- CreateIndex
CREATE UNIQUE INDEX "Database_projectId_name_key" ON "Database"("projectId", "name");

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_hash_key" ON "ApiKey"("hash");

-- CreateIndex
CREATE INDEX "ApiKey_databaseId_idx" ON "ApiKey"("databaseId");

-- CreateIndex
CREATE UNIQUE INDEX "AccessToken_hash_key" ON "AccessToken"("hash");

-- CreateIndex
CREATE INDEX "AccessToken_databaseId_idx" ON "AccessToken"("databaseId");

-- CreateIndex
CREATE INDEX "Device_databaseId_lastSyncAt_idx" ON "Device"("databaseId", "lastSyncAt");

-- CreateIndex
CREATE INDEX "TrafficBucket_databaseId_bucketStart_idx" ON "TrafficBucket"("databaseId", "bucketStart");
