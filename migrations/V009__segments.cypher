// Saved segments (人群包): one node per segment, listed newest first per tenant.
CREATE CONSTRAINT segment_id IF NOT EXISTS FOR (n:Segment) REQUIRE n.id IS UNIQUE;
CREATE INDEX segment_tenant_created IF NOT EXISTS FOR (n:Segment) ON (n.tenantId, n.createdAt);
