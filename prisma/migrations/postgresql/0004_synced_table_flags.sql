-- AlterTable
ALTER TABLE "SyncedTable" ADD COLUMN     "flags" INTEGER NOT NULL DEFAULT 0;
