-- Severity changes (SPEC section 12): the highest severity the incident held (P1 highest). Tier, summary and
-- digests use it. NULL for rows written before this column or by code that does not know it: read as
-- COALESCE(peak_severity, severity).
ALTER TABLE incidents ADD COLUMN peak_severity TEXT;
