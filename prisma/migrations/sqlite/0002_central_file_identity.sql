-- AlterTable
ALTER TABLE "Database" ADD COLUMN "fileIdentity" TEXT;
