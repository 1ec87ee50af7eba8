// Tenant-wide KOL ranks written back to members: read in rank order when Redis is unavailable.
CREATE INDEX member_tenant_kol_rank IF NOT EXISTS FOR (n:Member) ON (n.tenantId, n.kolRank);
CREATE INDEX member_tenant_koc_rank IF NOT EXISTS FOR (n:Member) ON (n.tenantId, n.kocRank);
