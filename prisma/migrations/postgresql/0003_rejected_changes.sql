-- AlterTable
ALTER TABLE "TrafficBucket" ADD COLUMN     "rejectedChanges" INTEGER NOT NULL DEFAULT 0;
