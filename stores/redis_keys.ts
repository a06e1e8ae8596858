/** Every Redis key the service writes, in one place (CONTRACT.md names the projection keys). */
export function redisKeys(prefix: string, groupId: string) {
  return {
    projectionLatest: (instrumentId: string) => `${prefix}projection:latest:${instrumentId}`,
    projectionBar: (resolution: string, instrumentId: string) =>
      `${prefix}projection:bar:${resolution}:${instrumentId}`,
    projectionCurve: (curveId: string) => `${prefix}projection:curve:${curveId}`,
    /** Raw suffix form used by actor outputs (`projection:...`). */
    prefixed: (suffix: string) => `${prefix}${suffix}`,
    snapshot: (kind: string, key: string) => `${prefix}snapshot:${kind}:${key}`,
    snapshotPattern: (kind: string) => `${prefix}snapshot:${kind}:*`,
    fence: (topic: string, partition: number) => `${prefix}fence:${groupId}:${topic}:${partition}`,
    /** A normalized partition's event-time clock and keys with open bars. */
    partitionState: (topic: string, partition: number) =>
      `${prefix}partition:${groupId}:${topic}:${partition}`,
    /** Checkpoints of that clock by offset (a sorted set), where replays start from. */
    clockHistory: (topic: string, partition: number) =>
      `${prefix}clock:${groupId}:${topic}:${partition}`,
    node: (nodeId: string) => `${prefix}node:${groupId}:${nodeId}`,
    nodePattern: () => `${prefix}node:${groupId}:*`,
    /** The ids of announced nodes, scored by when their entry expires (a sorted set). */
    nodeIndex: () => `${prefix}nodes:${groupId}`,
    replayJob: (id: string) => `${prefix}replay:${groupId}:${id}`,
    /** Held while a replay job is created, so overlapping jobs of a kind cannot both start. */
    replayLock: (kind: string) => `${prefix}replay-lock:${groupId}:${kind}`,
    /** Job ids whose share a node has still to take (a list). */
    replayInbox: (nodeId: string) => `${prefix}replay-inbox:${groupId}:${nodeId}`,
    /** Recent replay job ids by creation time (a sorted set), for the status page. */
    replayJobIndex: () => `${prefix}replays:${groupId}`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
