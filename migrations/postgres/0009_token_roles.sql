-- Least privilege: every token has a role. Existing API tokens keep what they could do
-- (admin); host tokens never reach the API, and get the least.
ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
    CHECK (role IN ('viewer', 'operator', 'admin'));
UPDATE tokens SET role = 'viewer' WHERE kind = 'host';
