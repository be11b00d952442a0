-- The arrival quote's spread (ask - bid) of each order, for the spread paid
-- in the daily report. NULL for orders logged before it was recorded.
ALTER TABLE orders ADD COLUMN arrival_spread TEXT;
