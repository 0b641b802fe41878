-- Step 2 of the seed's migration strategy: every CREATE INDEX, with the seed's names.
-- On the partitioned audit_logs each index is a partitioned index: PostgreSQL creates it
-- on every partition, present and future.

CREATE INDEX idx_users_email ON users(email);
CREATE INDEX idx_users_created_at ON users(created_at);

CREATE INDEX idx_oauth_user_id ON oauth_providers(user_id);

CREATE INDEX idx_meetings_created_by ON meetings(created_by_user_id);
CREATE INDEX idx_meetings_meeting_code ON meetings(meeting_code);
CREATE INDEX idx_meetings_status ON meetings(status);
CREATE INDEX idx_meetings_scheduled_start ON meetings(scheduled_start_time);
CREATE INDEX idx_meetings_controller ON meetings(assigned_controller_id);

CREATE INDEX idx_participants_meeting_id ON meeting_participants(meeting_id);
CREATE INDEX idx_participants_user_id ON meeting_participants(user_id);
CREATE INDEX idx_participants_joined_at ON meeting_participants(joined_at);

CREATE INDEX idx_recordings_meeting_id ON recordings(meeting_id);
CREATE INDEX idx_recordings_started_by ON recordings(started_by_user_id);
CREATE INDEX idx_recordings_status ON recordings(status);

CREATE INDEX idx_controllers_region ON meeting_controllers(region);
CREATE INDEX idx_controllers_health ON meeting_controllers(health_status);
CREATE INDEX idx_controllers_heartbeat ON meeting_controllers(last_heartbeat_at);

CREATE INDEX idx_handlers_region ON media_handlers(region);
CREATE INDEX idx_handlers_health ON media_handlers(health_status);

CREATE INDEX idx_audit_event_type ON audit_logs(event_type);
CREATE INDEX idx_audit_actor ON audit_logs(actor_user_id);
CREATE INDEX idx_audit_target ON audit_logs(target_type, target_id);
CREATE INDEX idx_audit_created_at ON audit_logs(created_at);

CREATE INDEX idx_api_keys_user_id ON api_keys(user_id);
CREATE INDEX idx_api_keys_hash ON api_keys(key_hash);
