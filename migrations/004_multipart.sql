-- Multipart uploads (issue 5).

-- A completed multipart object's SHA-256 and MD5 are learnt by reading it back from the backend
-- (src/jobs/hash-pending.ts). Until then its blob carries NULL there, so nothing can link to it by
-- content, and the hashing pass either fills them in or folds the blob into the account's blob with
-- the same content. UNIQUE (account_id, sha256) still holds: NULLs never collide.
ALTER TABLE blobs ALTER COLUMN sha256 DROP NOT NULL;
ALTER TABLE blobs ALTER COLUMN md5 DROP NOT NULL;
-- A hashing pass claims a blob until this time, so N gateway processes hash each blob once; a pass that
-- died leaves a claim that simply expires.
ALTER TABLE blobs ADD COLUMN hash_claimed_until TIMESTAMPTZ;
CREATE INDEX idx_blobs_unhashed ON blobs (created_at) WHERE sha256 IS NULL;

ALTER TABLE agentcache_assets ALTER COLUMN content_hash DROP NOT NULL;
-- The UploadId that produced the object: a retried CompleteMultipartUpload answers what the first one did
-- while the object it made is still there (S3 treats Complete as idempotent).
ALTER TABLE agentcache_assets ADD COLUMN multipart_upload_id TEXT;
-- Each part's size, in order: GetObject / HeadObject ?partNumber=N serve that part's byte range.
ALTER TABLE agentcache_assets ADD COLUMN part_sizes BIGINT[];

-- An upload's backend_key is registered in staged_writes from CreateMultipartUpload until the completed
-- object's blob row takes it over, so a crash at any point leaves a row naming it. Whoever collects
-- staged_writes must leave alone a key that a multipart_uploads row still names: the backend writes it
-- only when the upload completes.
-- COMPOSITE (checksum of the parts' checksums, "-N") or FULL_OBJECT (CRC of the whole object).
ALTER TABLE multipart_uploads ADD COLUMN checksum_type VARCHAR(16) CHECK (checksum_type IN ('COMPOSITE', 'FULL_OBJECT'));
-- When the state last changed: a 'completing' upload whose process died is recognised by its age.
ALTER TABLE multipart_uploads ADD COLUMN state_changed_at TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX idx_multipart_uploads_account_open ON multipart_uploads (account_id) WHERE state = 'open';
CREATE INDEX idx_multipart_uploads_unfinished ON multipart_uploads (state_changed_at) WHERE state IN ('completing', 'aborted');

-- A part being streamed to the backend. One writer per part number at a time: two writers of the same
-- part number would race on the backend's part slot, and the row that commits last might not describe
-- the bytes that landed last. The writer renews expires_at while it streams; a writer whose process died
-- stops renewing and its claim lapses. size_bytes counts toward the tier's largest object while in flight.
CREATE TABLE multipart_part_writes (
  writer_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  upload_id UUID NOT NULL REFERENCES multipart_uploads (id) ON DELETE CASCADE,
  part_number INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
  size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
  expires_at TIMESTAMPTZ NOT NULL,
  UNIQUE (upload_id, part_number)
);
