// Lookups and keyset pagination: each list is read in (tenantId, sort key) order.
CREATE INDEX member_tenant_joined IF NOT EXISTS FOR (n:Member) ON (n.tenantId, n.joinedAt);
CREATE INDEX member_tenant_level IF NOT EXISTS FOR (n:Member) ON (n.tenantId, n.level);
CREATE INDEX member_tenant_channel IF NOT EXISTS FOR (n:Member) ON (n.tenantId, n.channel);
CREATE INDEX member_tenant_name IF NOT EXISTS FOR (n:Member) ON (n.tenantId, n.displayName);
CREATE INDEX community_tenant_created IF NOT EXISTS FOR (n:Community) ON (n.tenantId, n.createdAt);
CREATE INDEX community_tenant_name IF NOT EXISTS FOR (n:Community) ON (n.tenantId, n.name);
CREATE INDEX content_tenant_created IF NOT EXISTS FOR (n:Content) ON (n.tenantId, n.createdAt);
CREATE INDEX comment_tenant_created IF NOT EXISTS FOR (n:Comment) ON (n.tenantId, n.createdAt);
CREATE INDEX purchase_tenant_at IF NOT EXISTS FOR (n:Purchase) ON (n.tenantId, n.at);
CREATE INDEX product_tenant_category IF NOT EXISTS FOR (n:Product) ON (n.tenantId, n.category);
