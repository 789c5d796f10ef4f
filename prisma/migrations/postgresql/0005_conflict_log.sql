-- AlterTable
ALTER TABLE "Database" ADD COLUMN     "conflictLog" BOOLEAN NOT NULL DEFAULT true;
