-- The kill switch is read from the audit log itself (the last release and the
-- first engagement after it), not from its projection table, so an edit of
-- the table cannot release it. This index makes those two look-ups O(log n)
-- at any log length.
CREATE INDEX audit_by_kind ON audit (kind, seq);
