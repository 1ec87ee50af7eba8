// Campaigns (活动): fission, group-buy, coupon, check-in and lottery campaigns.
CREATE CONSTRAINT campaign_id IF NOT EXISTS FOR (n:Campaign) REQUIRE n.id IS UNIQUE;
CREATE INDEX campaign_tenant_starts IF NOT EXISTS FOR (n:Campaign) ON (n.tenantId, n.startsAt);
