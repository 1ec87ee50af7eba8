// Privacy (PIPL): consent records per member and purpose, and the audit log of sensitive
// reads and writes. Both are append-mostly; lists are read newest first per tenant.
CREATE CONSTRAINT consent_id IF NOT EXISTS FOR (n:Consent) REQUIRE n.id IS UNIQUE;
CREATE INDEX consent_tenant_member IF NOT EXISTS FOR (n:Consent) ON (n.tenantId, n.memberId);
CREATE CONSTRAINT audit_id IF NOT EXISTS FOR (n:Audit) REQUIRE n.id IS UNIQUE;
CREATE INDEX audit_tenant_at IF NOT EXISTS FOR (n:Audit) ON (n.tenantId, n.at);
CREATE INDEX audit_tenant_action_at IF NOT EXISTS FOR (n:Audit) ON (n.tenantId, n.action, n.at);
