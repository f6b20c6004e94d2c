/**
 * Where an account's bytes live in the backend bucket. Everything it stores is under this prefix, so
 * listing or deleting the prefix covers the whole account.
 */
export function accountPrefix(agentcacheUserId: string): string {
  return `users/${agentcacheUserId}/`;
}

/** S3 has no folders; this empty object makes a fresh account's prefix visible to anyone browsing. */
export function prefixMarkerKey(agentcacheUserId: string): string {
  return `${accountPrefix(agentcacheUserId)}.keep`;
}
