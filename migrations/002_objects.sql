-- Buckets belong to an account: two accounts may both own "images".
CREATE TABLE buckets (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id UUID NOT NULL REFERENCES agentcache_accounts (id) ON DELETE CASCADE,
  name TEXT COLLATE "C" NOT NULL,
  is_default BOOLEAN NOT NULL DEFAULT false,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (account_id, name)
);
CREATE UNIQUE INDEX idx_buckets_one_default ON buckets (account_id) WHERE is_default;

-- One row per stored content of an account. backend_key is chosen by the gateway, never by a tenant.
CREATE TABLE blobs (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id UUID NOT NULL REFERENCES agentcache_accounts (id) ON DELETE CASCADE,
  sha256 CHAR(64) NOT NULL,
  md5 CHAR(32) NOT NULL,
  size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
  backend_key TEXT NOT NULL UNIQUE,
  refcount INTEGER NOT NULL DEFAULT 0 CHECK (refcount >= 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (account_id, sha256)
);

-- Backend objects no committed blob points at: bytes of an upload in flight, a duplicate of an existing
-- blob, or a blob whose last reference went. The writer removes its row once the object is committed or
-- deleted; a row left behind by a crash tells the collector which backend object to delete.
-- A blob row is deleted in the same transaction that drops its refcount to 0, so no new reference can
-- reach bytes that are about to be deleted.
CREATE TABLE staged_writes (
  backend_key TEXT PRIMARY KEY,
  account_id UUID NOT NULL REFERENCES agentcache_accounts (id) ON DELETE CASCADE,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_staged_writes_created ON staged_writes (created_at);

-- One row per tenant key (the seed's assets), pointing at a blob.
CREATE TABLE agentcache_assets (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id UUID NOT NULL REFERENCES agentcache_accounts (id) ON DELETE CASCADE,
  bucket_id UUID NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
  object_key TEXT COLLATE "C" NOT NULL,
  blob_id UUID NOT NULL REFERENCES blobs (id),

  filename TEXT NOT NULL,
  size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
  content_hash CHAR(64) NOT NULL,
  etag TEXT NOT NULL,
  content_type VARCHAR(255),
  content_encoding VARCHAR(255),
  content_disposition TEXT,
  content_language VARCHAR(255),
  cache_control TEXT,
  expires_header TEXT,
  user_metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
  -- Checksums the client asked for (algorithm -> base64 value), returned on GET/HEAD when asked.
  checksums JSONB NOT NULL DEFAULT '{}'::jsonb,
  -- For multipart objects: the part count, for the "-N" ETag and composite checksums.
  parts_count INTEGER,

  cache_key TEXT,
  agentcache_pipeline_id TEXT,
  hit_count INTEGER NOT NULL DEFAULT 0,
  last_accessed TIMESTAMPTZ,
  expires_at TIMESTAMPTZ,
  uploaded_via VARCHAR(20) NOT NULL DEFAULT 's3' CHECK (uploaded_via IN ('s3', 'api', 'jettyspeed')),
  upload_speed_mbps NUMERIC(10, 2),

  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_modified TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (bucket_id, object_key)
);
CREATE INDEX idx_assets_account ON agentcache_assets (account_id);
CREATE INDEX idx_assets_blob ON agentcache_assets (blob_id);
CREATE INDEX idx_assets_cache_key ON agentcache_assets (account_id, cache_key) WHERE cache_key IS NOT NULL;
CREATE INDEX idx_assets_expires ON agentcache_assets (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX idx_assets_account_created ON agentcache_assets (account_id, created_at DESC);

CREATE TABLE multipart_uploads (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  -- The UploadId handed to the client (opaque, random).
  upload_id TEXT NOT NULL UNIQUE,
  account_id UUID NOT NULL REFERENCES agentcache_accounts (id) ON DELETE CASCADE,
  bucket_id UUID NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
  object_key TEXT COLLATE "C" NOT NULL,
  backend_key TEXT NOT NULL,
  backend_upload_id TEXT NOT NULL,
  content_type VARCHAR(255),
  content_encoding VARCHAR(255),
  content_disposition TEXT,
  content_language VARCHAR(255),
  cache_control TEXT,
  expires_header TEXT,
  user_metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
  checksum_algorithm VARCHAR(16),
  state VARCHAR(16) NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'completing', 'completed', 'aborted')),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_multipart_uploads_listing ON multipart_uploads (bucket_id, object_key, created_at) WHERE state = 'open';
CREATE INDEX idx_multipart_uploads_age ON multipart_uploads (created_at) WHERE state = 'open';

CREATE TABLE multipart_parts (
  upload_id UUID NOT NULL REFERENCES multipart_uploads (id) ON DELETE CASCADE,
  part_number INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
  size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
  etag TEXT NOT NULL,
  backend_etag TEXT NOT NULL,
  checksums JSONB NOT NULL DEFAULT '{}'::jsonb,
  -- Digest state to chain the object's SHA-256 across in-order parts is kept by the upload, not here.
  sha256 CHAR(64),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (upload_id, part_number)
);
