/** Tiers count storage and bandwidth in GB of 2^30 bytes (the seed's figures); accounts count bytes. */
export const GIB = 1024 ** 3;

/** Bytes as GB rounded to 2 decimals, the precision every GB figure in a response carries. */
export function bytesToGb(bytes: number): number {
  return Math.round((bytes / GIB) * 100) / 100;
}

/** used as a percentage of quota, to 1 decimal; a zero quota is 0 % used when empty and 100 % otherwise. */
export function percentUsed(usedBytes: number, quotaBytes: number): number {
  if (quotaBytes <= 0) return usedBytes > 0 ? 100 : 0;
  return Math.round((usedBytes / quotaBytes) * 1000) / 10;
}
