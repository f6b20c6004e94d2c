/**
 * The seed's Part 4 curl commands exactly as printed there ("Provision Test Account", "Upload Test File",
 * "Check Quota"). Tests substitute only the host, the port and the credentials.
 */

export const SEED_PROVISION = `curl -X POST https://jettythunder.app/api/agentcache/provision \\
  -H "Authorization: Bearer shared_secret_123" \\
  -H "Content-Type: application/json" \\
  -d '{
    "agentcache_user_id": "test-user-123",
    "agentcache_email": "test@example.com",
    "tier": "pro"
  }'`;

export const SEED_UPLOAD = `curl -X POST https://jettythunder.app/api/storage/upload \\
  -H "Authorization: Bearer jt_live_xxxxxxxx" \\
  -H "X-API-Secret: jts_xxxxxxxx" \\
  -F "file=@test-image.jpg" \\
  -F "cache_key=dalle_image_sunset_beach"`;

export const SEED_QUOTA = `curl -X GET https://jettythunder.app/api/agentcache/quota \\
  -H "Authorization: Bearer jt_live_xxxxxxxx" \\
  -H "X-API-Secret: jts_xxxxxxxx"`;
