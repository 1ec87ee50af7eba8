// The transactional outbox: events recorded with their change, relayed after commit.
CREATE CONSTRAINT event_id IF NOT EXISTS FOR (n:Event) REQUIRE n.id IS UNIQUE;
CREATE INDEX event_pending IF NOT EXISTS FOR (n:Event) ON (n.pending);
CREATE INDEX event_tenant_at IF NOT EXISTS FOR (n:Event) ON (n.tenantId, n.at);
