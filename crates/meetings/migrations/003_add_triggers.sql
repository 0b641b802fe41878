-- Step 3 of the seed's migration strategy: "triggers for updated_at timestamps, etc.".

-- Every table with an updated_at column keeps it current on UPDATE, so no writer has to
-- remember to set it.
CREATE FUNCTION set_updated_at() RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := NOW();
    RETURN NEW;
END;
$$;

CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER oauth_providers_set_updated_at BEFORE UPDATE ON oauth_providers
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER meetings_set_updated_at BEFORE UPDATE ON meetings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER recordings_set_updated_at BEFORE UPDATE ON recordings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER meeting_controllers_set_updated_at BEFORE UPDATE ON meeting_controllers
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER media_handlers_set_updated_at BEFORE UPDATE ON media_handlers
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER api_keys_set_updated_at BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The seed's "add more partitions as needed", as a function: creates the audit_logs
-- partition of the month containing `for_month` (bounds at UTC midnights) unless it
-- exists, moving any rows of that month out of audit_logs_default first (PostgreSQL
-- refuses a new partition whose rows still sit in the default partition). Returns the
-- partition's name. Called ahead of time by the meetings feature (start-up and a daily
-- job). `SET search_path FROM CURRENT` pins this schema, so callers need not set it.
CREATE FUNCTION audit_logs_ensure_partition(for_month DATE) RETURNS TEXT
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    first_day DATE := make_date(extract(year FROM for_month)::int, extract(month FROM for_month)::int, 1);
    next_first_day DATE := (first_day + INTERVAL '1 month')::date;
    lower_bound TIMESTAMPTZ := make_timestamptz(extract(year FROM first_day)::int, extract(month FROM first_day)::int, 1, 0, 0, 0, 'UTC');
    upper_bound TIMESTAMPTZ := make_timestamptz(extract(year FROM next_first_day)::int, extract(month FROM next_first_day)::int, 1, 0, 0, 0, 'UTC');
    partition_name TEXT := 'audit_logs_y' || to_char(first_day, 'YYYY') || 'm' || to_char(first_day, 'MM');
BEGIN
    -- Two replicas ensuring the same month at once: the second waits, then finds it.
    PERFORM pg_advisory_xact_lock(hashtext('audit_logs_ensure_partition'));
    IF EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_logs'::regclass AND c.relname = partition_name
    ) THEN
        RETURN partition_name;
    END IF;
    -- Parent first, as inserts lock it: no deadlock with a concurrent insert.
    LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE;
    CREATE TEMP TABLE audit_logs_moving ON COMMIT DROP AS
        SELECT * FROM audit_logs_default
        WHERE created_at >= lower_bound AND created_at < upper_bound;
    DELETE FROM audit_logs_default
        WHERE created_at >= lower_bound AND created_at < upper_bound;
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF audit_logs FOR VALUES FROM (%L) TO (%L)',
        partition_name, lower_bound, upper_bound
    );
    INSERT INTO audit_logs SELECT * FROM audit_logs_moving;
    DROP TABLE audit_logs_moving;
    RETURN partition_name;
END;
$$;
