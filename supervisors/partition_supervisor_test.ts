/**
 * Partition supervisor behaviour with a real Redis actor store: poison events, one-for-one
 * restarts that rebuild a crashed actor exactly, and neighbours that keep running.
 */
import assert from "node:assert/strict";
import type { KafkaMessage } from "kafkajs";
import { assertEvent, createActor, setup } from "xstate";
import { instrumentAdapter, type KindAdapter } from "../actors/actor_kinds.ts";
import {
  applyTicks,
  initialInstrumentContext,
  type InstrumentContext,
} from "../actors/instrument_aggregate.ts";
import type { InstrumentEvent, InstrumentInput } from "../actors/instrument_machine.ts";
import { NormalizedTick } from "../messages/normalized_tick.ts";
import { createLogger } from "../observability/logger.ts";
import { ActorStore } from "../stores/actor_store.ts";
import { createRedis } from "../stores/redis.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import { uniqueId } from "../tests/support.ts";
import { PartitionSupervisor } from "./partition_supervisor.ts";

const PARAMS = {
  windows: [{ name: "1m", ms: 60_000 }],
  allowedLatenessMs: 5000,
  idleCloseMs: 60_000,
};

/** An instrument machine that throws on any event whose id starts with "poison". */
const fragileMachine = setup({
  types: {
    context: {} as InstrumentContext,
    events: {} as InstrumentEvent,
    input: {} as InstrumentInput,
  },
  actions: {
    apply: ({ context, event }) => {
      assertEvent(event, "EVENTS");
      if (event.inputs.some((i) => i.tick.event_id.startsWith("poison"))) {
        throw new Error("machine cannot digest this event");
      }
      applyTicks(context, event.inputs);
    },
  },
}).createMachine({
  context: ({ input }) => initialInstrumentContext(input.instrumentId, input.params),
  on: { EVENTS: { actions: "apply" } },
});

function fragileAdapter(): KindAdapter<NormalizedTick> {
  const base = instrumentAdapter(PARAMS);
  return {
    ...base,
    spawn(key, persisted) {
      const input = { instrumentId: key, params: PARAMS };
      return (persisted === undefined
        ? createActor(fragileMachine, { input })
        : createActor(fragileMachine, { input, snapshot: persisted as never })).start();
    },
  };
}

function message(offset: number, instrument: string, eventId: string, price: number): KafkaMessage {
  const tick: NormalizedTick = {
    event_id: eventId,
    instrument_id: instrument,
    event_time_ms: 1_700_000_000_000 + offset * 1000,
    price,
    size: 1,
    source: "test",
    symbol: instrument,
    commodity: null,
    region: null,
    currency: null,
    unit: null,
    ingest_time_ms: 0,
  };
  const value = new TextEncoder().encode(JSON.stringify(tick));
  return {
    key: null,
    value: value as unknown as KafkaMessage["value"],
    timestamp: String(Date.now()),
    attributes: 0,
    offset: String(offset),
    headers: {},
  } as KafkaMessage;
}

Deno.test({
  name: "a poison event is retried, then sent to the DLQ, while its key and neighbours keep going",
  // ioredis may leave its own connect timer pending for a moment after quit().
  sanitizeOps: false,
  fn: async () => {
    const redis = createRedis("redis://127.0.0.1:6379/0");
    const prefix = `t${uniqueId()}:`;
    try {
      const store = new ActorStore(redis, redisKeys(prefix, "g"));
      const p = new PartitionSupervisor({
        topic: "normalized.market.ticks.v1",
        partition: 0,
        epoch: 1,
        adapter: fragileAdapter(),
        schema: NormalizedTick,
        keyOf: (t) => t.instrument_id,
        store,
        historySize: 5,
        now: () => Date.now(),
        logger: createLogger("test"),
        poisonRetries: 2,
      });
      await p.handle([message(0, "A", "a0", 10), message(1, "B", "b1", 20)]);
      await p.handle([
        message(2, "A", "a2", 11),
        message(3, "A", "poison-3", 99),
        message(4, "B", "b4", 21),
        message(5, "A", "a5", 12),
      ]);
      const plan = await p.plan({ snapshot: true });
      assert.deepEqual(
        plan.dlq.map((d) => [d.reason, d.source_offset]),
        [["poison_event", "3"]],
      );
      const latest = (key: string) =>
        JSON.parse(
          plan.outputs.projections.find((x) => x.key === `projection:latest:${key}`)!.value,
        );
      assert.equal(latest("A").event_id, "a5");
      assert.equal(latest("B").event_id, "b4");
      const bar = JSON.parse(
        plan.outputs.projections.find((x) => x.key === "projection:bar:1m:A")!.value,
      );
      assert.equal(bar.count, 3); // a0, a2, a5: rebuilt exactly, the poison event left out
      assert.equal(p.actor("A")!.restarts, 1);
      assert.equal(plan.commitOffset, 6);
      await p.stop();
    } finally {
      await redis.quit();
    }
  },
});
