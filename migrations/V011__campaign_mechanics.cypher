// Campaign mechanics: group-buys (拼团), coupons (优惠券) and the points ledger (积分).
CREATE CONSTRAINT group_buy_id IF NOT EXISTS FOR (n:GroupBuy) REQUIRE n.id IS UNIQUE;
// the sweep finds OPEN groups past their expiry
CREATE INDEX group_buy_status_expires IF NOT EXISTS FOR (n:GroupBuy) ON (n.status, n.expiresAt);
CREATE INDEX group_buy_tenant_campaign IF NOT EXISTS FOR (n:GroupBuy) ON (n.tenantId, n.campaignId);
CREATE CONSTRAINT coupon_id IF NOT EXISTS FOR (n:Coupon) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT coupon_idempotency_key IF NOT EXISTS FOR (n:Coupon) REQUIRE (n.tenantId, n.idempotencyKey) IS UNIQUE;
CREATE INDEX coupon_tenant_campaign IF NOT EXISTS FOR (n:Coupon) ON (n.tenantId, n.campaignId);
CREATE CONSTRAINT points_entry_id IF NOT EXISTS FOR (n:PointsEntry) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT points_entry_idempotency_key IF NOT EXISTS FOR (n:PointsEntry) REQUIRE (n.tenantId, n.idempotencyKey) IS UNIQUE;
// the sweep finds lots past their expiry
CREATE INDEX points_entry_expires IF NOT EXISTS FOR (n:PointsEntry) ON (n.expiresAt);
