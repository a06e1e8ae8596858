/**
 * Who is in the node's consumer groups now, as Kafka sees it: each member's client id and
 * the address it connects from. The node registry in Redis is only a claim (anyone who can
 * write Redis can write a `node:*` key); a peer is reached only when Kafka confirms a member
 * of that node id connecting from the address its URL names.
 */
import type { Admin } from "kafkajs";
import type { NodeRecord } from "../messages/node_record.ts";

/** The Kafka client id of a node (node_supervisor names its client so). */
export function clientIdOf(nodeId: string): string {
  return `254carbon-dp-${nodeId}`;
}

export interface GroupMembersOptions {
  admin: Admin;
  groupIds: string[];
  /** How long one look at the groups is used before a new one is taken (ms). */
  cacheMs?: number;
  /** How old a look may be and still be used while a new one is taken (ms). */
  maxAgeMs?: number;
  resolve?: (host: string) => Promise<string[]>;
}

export class GroupMembers {
  readonly #o: GroupMembersOptions;
  /** The last look at the groups and when it was taken. */
  #known: { at: number; members: Map<string, Set<string>> } | null = null;
  #looking: Promise<void> | null = null;

  constructor(options: GroupMembersOptions) {
    this.#o = options;
  }

  /**
   * client id -> the addresses its members connect from. A look older than `cacheMs` is
   * refreshed in the background and used meanwhile (asking Kafka can take seconds while a
   * group rebalances, and every HTTP read of the registry waits on this); a look older than
   * `maxAgeMs` is not trusted at all (this waits for a new one).
   */
  async #members(): Promise<Map<string, Set<string>>> {
    const now = Date.now();
    const known = this.#known;
    if (known && now - known.at < (this.#o.cacheMs ?? 2000)) return known.members;
    const look = this.#looking ??= this.#look().finally(() => (this.#looking = null));
    if (known && now - known.at < (this.#o.maxAgeMs ?? 30_000)) {
      look.catch(() => {}); // reported by the next caller that must wait for a look
      return known.members;
    }
    await look;
    return this.#known!.members;
  }

  async #look(): Promise<void> {
    await this.#o.admin.connect(); // no-op once connected
    const { groups } = await this.#o.admin.describeGroups(this.#o.groupIds);
    const byClient = new Map<string, Set<string>>();
    for (const group of groups) {
      for (const m of group.members) {
        const hosts = byClient.get(m.clientId) ?? new Set<string>();
        hosts.add(m.clientHost.replace(/^\//, ""));
        byClient.set(m.clientId, hosts);
      }
    }
    this.#known = { at: Date.now(), members: byClient };
  }

  /**
   * The records whose node is a member of a group now and whose URL names an address that
   * member connects from; the others are dropped (fail closed while Kafka cannot say).
   */
  async confirmed(records: readonly NodeRecord[], selfId: string): Promise<NodeRecord[]> {
    let members: Map<string, Set<string>>;
    try {
      members = await this.#members();
    } catch {
      return records.filter((r) => r.node_id === selfId);
    }
    const out: NodeRecord[] = [];
    for (const record of records) {
      if (record.node_id === selfId) {
        out.push(record);
        continue;
      }
      const hosts = members.get(clientIdOf(record.node_id));
      if (!hosts) continue;
      if (await this.#addressMatches(record.url, hosts)) out.push(record);
    }
    return out;
  }

  async #addressMatches(url: string, hosts: ReadonlySet<string>): Promise<boolean> {
    let hostname: string;
    try {
      hostname = new URL(url).hostname.replace(/^\[|\]$/g, "");
    } catch {
      return false;
    }
    if (hosts.has(hostname)) return true;
    const resolve = this.#o.resolve ?? resolveHost;
    try {
      return (await resolve(hostname)).some((ip) => hosts.has(ip));
    } catch {
      return false;
    }
  }
}

async function resolveHost(host: string): Promise<string[]> {
  if (host === "localhost") return ["127.0.0.1", "::1"];
  const [v4, v6] = await Promise.allSettled([
    Deno.resolveDns(host, "A"),
    Deno.resolveDns(host, "AAAA"),
  ]);
  return [
    ...(v4.status === "fulfilled" ? v4.value : []),
    ...(v6.status === "fulfilled" ? v6.value : []),
  ];
}
