-- A target set can be closed as `superseded` when a newer one is queued.
ALTER TABLE target_sets DROP CONSTRAINT IF EXISTS target_sets_status_check;
ALTER TABLE target_sets ADD CONSTRAINT target_sets_status_check
    CHECK (status IN ('queued', 'executing', 'completed', 'superseded'));
