// Webhooks: integrators' URLs that receive signed POSTs of committed events.
CREATE CONSTRAINT webhook_id IF NOT EXISTS FOR (n:Webhook) REQUIRE n.id IS UNIQUE;
CREATE INDEX webhook_tenant IF NOT EXISTS FOR (n:Webhook) ON (n.tenantId);
