// Every node id is unique. Ids are globally unique strings ("mem_…"), so a single-property
// constraint also backs the (tenantId, id) lookups every query makes.
CREATE CONSTRAINT migration_id IF NOT EXISTS FOR (n:Migration) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT tenant_id IF NOT EXISTS FOR (n:Tenant) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT member_id IF NOT EXISTS FOR (n:Member) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT community_id IF NOT EXISTS FOR (n:Community) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT content_id IF NOT EXISTS FOR (n:Content) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT comment_id IF NOT EXISTS FOR (n:Comment) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT tag_id IF NOT EXISTS FOR (n:Tag) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT product_id IF NOT EXISTS FOR (n:Product) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT purchase_id IF NOT EXISTS FOR (n:Purchase) REQUIRE n.id IS UNIQUE;
// Keys clients send or type: unique within a tenant.
CREATE CONSTRAINT member_invite_code IF NOT EXISTS FOR (n:Member) REQUIRE (n.tenantId, n.inviteCode) IS UNIQUE;
CREATE CONSTRAINT purchase_idempotency_key IF NOT EXISTS FOR (n:Purchase) REQUIRE (n.tenantId, n.idempotencyKey) IS UNIQUE;
CREATE CONSTRAINT product_sku IF NOT EXISTS FOR (n:Product) REQUIRE (n.tenantId, n.sku) IS UNIQUE;
CREATE CONSTRAINT tag_name IF NOT EXISTS FOR (n:Tag) REQUIRE (n.tenantId, n.kind, n.name) IS UNIQUE;
