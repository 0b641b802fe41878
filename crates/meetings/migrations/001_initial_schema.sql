-- Step 1 of the seed's migration strategy: every CREATE TABLE, as the seed writes them.
-- Runs inside the `meet` schema (search_path set by the migrator), hence unqualified names.
-- Only difference from the seed: audit_logs is a partitioned table (see the crate docs).

CREATE TABLE users (
    user_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email VARCHAR(255) UNIQUE NOT NULL,
    display_name VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255),  -- NULL for OAuth users
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_login_at TIMESTAMPTZ,
    is_active BOOLEAN NOT NULL DEFAULT true,
    metadata JSONB DEFAULT '{}'::jsonb
);

CREATE TABLE oauth_providers (
    id BIGSERIAL PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    provider VARCHAR(50) NOT NULL,  -- 'google', 'github', etc.
    provider_user_id VARCHAR(255) NOT NULL,
    access_token_encrypted BYTEA,
    refresh_token_encrypted BYTEA,
    token_expires_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    UNIQUE(provider, provider_user_id)
);

CREATE TABLE meetings (
    meeting_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    created_by_user_id UUID REFERENCES users(user_id) ON DELETE SET NULL,
    display_name VARCHAR(255) NOT NULL,
    meeting_code VARCHAR(20) UNIQUE NOT NULL,  -- Short human-readable code
    max_participants INTEGER NOT NULL DEFAULT 100,

    -- Settings
    enable_e2e_encryption BOOLEAN NOT NULL DEFAULT true,
    require_auth BOOLEAN NOT NULL DEFAULT false,
    allow_recording BOOLEAN NOT NULL DEFAULT false,
    waiting_room_enabled BOOLEAN NOT NULL DEFAULT false,

    -- State
    status VARCHAR(20) NOT NULL DEFAULT 'scheduled',  -- 'scheduled', 'active', 'ended'
    scheduled_start_time TIMESTAMPTZ,
    actual_start_time TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,

    -- Assignment
    assigned_controller_id VARCHAR(255),  -- Which meeting controller is handling this
    assigned_region VARCHAR(50),

    -- Metadata
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    metadata JSONB DEFAULT '{}'::jsonb
);

CREATE TABLE meeting_participants (
    id BIGSERIAL PRIMARY KEY,
    meeting_id UUID NOT NULL REFERENCES meetings(meeting_id) ON DELETE CASCADE,
    participant_id UUID NOT NULL,  -- Generated session ID
    user_id UUID REFERENCES users(user_id) ON DELETE SET NULL,  -- NULL for guests
    display_name VARCHAR(255) NOT NULL,

    -- Session info
    joined_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    left_at TIMESTAMPTZ,
    leave_reason VARCHAR(50),  -- 'voluntary', 'kicked', 'connection_lost', 'meeting_ended'

    -- Connection details
    ip_address INET,
    user_agent TEXT,
    client_version VARCHAR(50),

    -- Stats (updated periodically)
    total_duration_seconds INTEGER DEFAULT 0,

    UNIQUE(meeting_id, participant_id)
);

CREATE TABLE recordings (
    recording_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    meeting_id UUID NOT NULL REFERENCES meetings(meeting_id) ON DELETE CASCADE,
    started_by_user_id UUID REFERENCES users(user_id) ON DELETE SET NULL,

    -- Recording info
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    duration_seconds INTEGER,
    file_size_bytes BIGINT,

    -- Storage
    storage_path TEXT NOT NULL,  -- S3/object storage path
    storage_bucket VARCHAR(255) NOT NULL,

    -- Format
    video_codec VARCHAR(50),
    audio_codec VARCHAR(50),
    resolution VARCHAR(20),  -- e.g., "1920x1080"

    -- Status
    status VARCHAR(20) NOT NULL DEFAULT 'recording',  -- 'recording', 'processing', 'ready', 'failed'
    error_message TEXT,

    -- Access
    is_public BOOLEAN NOT NULL DEFAULT false,
    access_token VARCHAR(255),  -- For sharing

    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE meeting_controllers (
    controller_id VARCHAR(255) PRIMARY KEY,
    region VARCHAR(50) NOT NULL,
    endpoint TEXT NOT NULL,

    -- Capacity
    max_meetings INTEGER NOT NULL,
    current_meetings INTEGER NOT NULL DEFAULT 0,
    max_participants INTEGER NOT NULL,
    current_participants INTEGER NOT NULL DEFAULT 0,

    -- Health
    health_status VARCHAR(20) NOT NULL DEFAULT 'healthy',  -- 'healthy', 'degraded', 'unhealthy'
    last_heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Metadata
    version VARCHAR(50),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    metadata JSONB DEFAULT '{}'::jsonb
);

CREATE TABLE media_handlers (
    handler_id VARCHAR(255) PRIMARY KEY,
    region VARCHAR(50) NOT NULL,
    endpoint TEXT NOT NULL,

    -- Capacity
    max_streams INTEGER NOT NULL,
    current_streams INTEGER NOT NULL DEFAULT 0,
    max_bitrate_mbps INTEGER NOT NULL,
    current_bitrate_mbps INTEGER NOT NULL DEFAULT 0,

    -- Health
    health_status VARCHAR(20) NOT NULL DEFAULT 'healthy',
    last_heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Capabilities
    supports_transcoding BOOLEAN NOT NULL DEFAULT true,
    supports_mixing BOOLEAN NOT NULL DEFAULT true,
    supported_codecs TEXT[] DEFAULT ARRAY['VP9', 'AV1', 'H264', 'Opus'],

    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    metadata JSONB DEFAULT '{}'::jsonb
);

-- The seed partitions audit_logs by month (it creates `audit_logs_y2025m01 PARTITION OF
-- audit_logs`), which PostgreSQL allows only on a partitioned table, and a partitioned
-- table's primary key must contain the partition key: hence PARTITION BY RANGE
-- (created_at) and PRIMARY KEY (id, created_at). Every other column is as the seed wrote.
CREATE TABLE audit_logs (
    id BIGSERIAL,
    event_type VARCHAR(50) NOT NULL,  -- 'user_login', 'meeting_created', 'participant_joined', etc.
    actor_user_id UUID REFERENCES users(user_id) ON DELETE SET NULL,
    actor_type VARCHAR(50) NOT NULL,  -- 'user', 'system', 'api'

    -- Target
    target_type VARCHAR(50),  -- 'meeting', 'user', 'recording', etc.
    target_id VARCHAR(255),

    -- Details
    action VARCHAR(100) NOT NULL,
    result VARCHAR(20) NOT NULL,  -- 'success', 'failure'
    error_message TEXT,

    -- Context
    ip_address INET,
    user_agent TEXT,
    metadata JSONB DEFAULT '{}'::jsonb,

    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

-- Partition by month for better performance. Month bounds are UTC midnights, whatever
-- the session's TimeZone.
CREATE TABLE audit_logs_y2025m01 PARTITION OF audit_logs
    FOR VALUES FROM ('2025-01-01 00:00:00+00') TO ('2025-02-01 00:00:00+00');
-- Rows of a month without its own partition land here, so an insert never fails;
-- audit_logs_ensure_partition (step 3) moves them into their month's partition.
CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;

CREATE TABLE api_keys (
    key_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    key_hash VARCHAR(255) NOT NULL UNIQUE,  -- Hashed API key
    key_prefix VARCHAR(20) NOT NULL,  -- First few chars for identification

    name VARCHAR(255) NOT NULL,
    scopes TEXT[] NOT NULL,  -- ['meetings:create', 'meetings:read', etc.]

    is_active BOOLEAN NOT NULL DEFAULT true,
    last_used_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ,

    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
