// Bulk imports (quanzi import): one ImportJob node per (tenant, file set) holds the
// checkpoint of the run, written in the same transaction as each imported batch.
CREATE CONSTRAINT import_job_id IF NOT EXISTS FOR (n:ImportJob) REQUIRE n.id IS UNIQUE;
