import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  type Attributes,
  type Context,
  INVALID_SPAN_CONTEXT,
  type Span,
  type SpanOptions,
  SpanStatusCode,
  trace,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import { configureTracing, TRACER_NAME, tracingEnabled, withSpan } from "./tracing.ts";

interface Recorded {
  tracer: string;
  name: string;
  attributes: Attributes;
  status: number;
  exceptions: number;
  ended: boolean;
}

/** A minimal provider that records what withSpan does (no SDK in this project). */
function recordingProvider(spans: Recorded[]): TracerProvider {
  return {
    getTracer(tracerName: string): Tracer {
      const start = (name: string, options: SpanOptions = {}): Span => {
        const rec: Recorded = {
          tracer: tracerName,
          name,
          attributes: { ...options.attributes },
          status: SpanStatusCode.UNSET,
          exceptions: 0,
          ended: false,
        };
        spans.push(rec);
        const span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
        span.setStatus = (s) => ((rec.status = s.code), span);
        span.recordException = () => void rec.exceptions++;
        span.end = () => void (rec.ended = true);
        return span;
      };
      return {
        startSpan: start,
        // deno-lint-ignore no-explicit-any
        startActiveSpan(name: string, ...args: any[]): any {
          const fn = args[args.length - 1] as (span: Span) => unknown;
          const options = (args.length > 1 ? args[0] : {}) as SpanOptions;
          return fn(start(name, options));
        },
      } as Tracer & { startSpan(n: string, o?: SpanOptions, c?: Context): Span };
    },
  };
}

Deno.test("withSpan only runs the function when tracing is disabled", async () => {
  const spans: Recorded[] = [];
  trace.setGlobalTracerProvider(recordingProvider(spans));
  try {
    const status = configureTracing({ enabled: false, component: "node" });
    strictEqual(status.enabled, false);
    strictEqual(tracingEnabled(), false);
    strictEqual(await withSpan("actors.flush", {}, () => Promise.resolve(7)), 7);
    deepStrictEqual(spans, []);
  } finally {
    trace.disable();
  }
});

Deno.test("withSpan records one ended span per stage with the component and attributes", async () => {
  const spans: Recorded[] = [];
  trace.setGlobalTracerProvider(recordingProvider(spans));
  try {
    const status = configureTracing({
      enabled: true,
      component: "actors",
      env: { OTEL_DENO: "true", OTEL_SERVICE_NAME: "254carbon-data-processing-actors" },
    });
    deepStrictEqual(status, {
      enabled: true,
      serviceName: "254carbon-data-processing-actors",
      warnings: [],
    });
    const value = await withSpan(
      "actors.batch",
      { "messaging.batch.message_count": 3 },
      () => Promise.resolve("done"),
    );
    strictEqual(value, "done");
    deepStrictEqual(spans, [{
      tracer: TRACER_NAME,
      name: "actors.batch",
      attributes: { "service.component": "actors", "messaging.batch.message_count": 3 },
      status: SpanStatusCode.UNSET,
      exceptions: 0,
      ended: true,
    }]);
  } finally {
    configureTracing({ enabled: false, component: "node" });
    trace.disable();
  }
});

Deno.test("withSpan marks a failing stage as an error, ends the span and rethrows", async () => {
  const spans: Recorded[] = [];
  trace.setGlobalTracerProvider(recordingProvider(spans));
  try {
    configureTracing({ enabled: true, component: "node", env: {} });
    await rejects(
      withSpan("actors.flush", {}, () => Promise.reject(new Error("sink down"))),
      /sink down/,
    );
    strictEqual(spans.length, 1);
    strictEqual(spans[0]!.status, SpanStatusCode.ERROR);
    strictEqual(spans[0]!.exceptions, 1);
    strictEqual(spans[0]!.ended, true);
  } finally {
    configureTracing({ enabled: false, component: "node" });
    trace.disable();
  }
});

Deno.test("configureTracing warns when spans would not be exported", () => {
  const status = configureTracing({ enabled: true, component: "normalizer", env: {} });
  try {
    strictEqual(status.serviceName, "254carbon-data-processing-normalizer");
    strictEqual(status.warnings.length, 2);
    ok(status.warnings.some((w) => w.includes("OTEL_DENO")));
    ok(status.warnings.some((w) => w.includes("254carbon-data-processing-normalizer")));
  } finally {
    configureTracing({ enabled: false, component: "node" });
  }
});

Deno.test("spans carry DATA_PROC_ENV as deployment.environment.name", async () => {
  const spans: Recorded[] = [];
  trace.setGlobalTracerProvider(recordingProvider(spans));
  try {
    configureTracing({ enabled: true, component: "node", environment: "staging", env: {} });
    await withSpan("actors.flush", { snapshot: true }, () => Promise.resolve());
    deepStrictEqual(spans[0]!.attributes, {
      "service.component": "node",
      "deployment.environment.name": "staging",
      snapshot: true,
    });
  } finally {
    configureTracing({ enabled: false, component: "node" });
    trace.disable();
  }
});
