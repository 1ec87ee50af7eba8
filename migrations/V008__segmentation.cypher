// Segmentation (用户分层): layer and lifecycle filters per tenant, interest circles, and one
// segmentation config (windows + last run's summary) per tenant.
CREATE INDEX member_tenant_lifecycle IF NOT EXISTS FOR (n:Member) ON (n.tenantId, n.lifecycle);
CREATE INDEX member_tenant_layer IF NOT EXISTS FOR (n:Member) ON (n.tenantId, n.layer);
CREATE INDEX member_tenant_value_tier IF NOT EXISTS FOR (n:Member) ON (n.tenantId, n.valueTier);
CREATE INDEX member_tenant_circle IF NOT EXISTS FOR (n:Member) ON (n.tenantId, n.circleId);
CREATE CONSTRAINT interest_circle_id IF NOT EXISTS FOR (n:InterestCircle) REQUIRE n.id IS UNIQUE;
CREATE INDEX interest_circle_tenant IF NOT EXISTS FOR (n:InterestCircle) ON (n.tenantId);
CREATE CONSTRAINT segmentation_config_tenant IF NOT EXISTS FOR (n:SegmentationConfig) REQUIRE n.tenantId IS UNIQUE;
