/**
 * Spans per coarse stage (a fetched batch, a flush) through `@opentelemetry/api`. Deno's
 * built-in OpenTelemetry exports them when the process runs with `OTEL_DENO=true` (and
 * `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`); no SDK is loaded. With
 * `DATA_PROC_TRACE_ENABLED=false` (the default) `withSpan` calls its function directly.
 */
import { type Attributes, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";

export const TRACER_NAME = "254carbon-data-processing";

let tracer: Tracer | undefined;
let component = "node";
/** DATA_PROC_ENV, on every span as `deployment.environment.name` (OTel semantic conventions). */
let environment: string | undefined;

export interface TracingStatus {
  enabled: boolean;
  /** The `service.name` the process should export under (set it as OTEL_SERVICE_NAME). */
  serviceName: string;
  /** Why spans will not leave the process although tracing is enabled, if they will not. */
  warnings: string[];
}

/**
 * Turns span creation on or off for the process. `componentName` names the node's role
 * (`node` for both stages, `normalizer`, `actors`): spans carry it as `service.component`
 * and the suggested `service.name` is `254carbon-data-processing-<component>`.
 * `environment` (DATA_PROC_ENV) goes on every span as `deployment.environment.name`; Deno
 * takes resource attributes only from OTEL_RESOURCE_ATTRIBUTES, which a deployment may set
 * to the same value.
 */
export function configureTracing(
  options: {
    enabled: boolean;
    component: string;
    environment?: string;
    env?: Record<string, string | undefined>;
  },
): TracingStatus {
  component = options.component;
  environment = options.environment;
  tracer = options.enabled ? trace.getTracer(TRACER_NAME) : undefined;
  const serviceName = `${TRACER_NAME}-${options.component}`;
  const warnings: string[] = [];
  if (options.enabled) {
    const env = options.env ?? otelEnv();
    if (env.OTEL_DENO !== "true" && env.OTEL_DENO !== "1") {
      warnings.push("OTEL_DENO is not true: spans are created but Deno does not export them");
    }
    if (!env.OTEL_SERVICE_NAME) {
      warnings.push(`OTEL_SERVICE_NAME is not set: set it to ${serviceName}`);
    }
  }
  return { enabled: options.enabled, serviceName, warnings };
}

function otelEnv(): Record<string, string | undefined> {
  try {
    return {
      OTEL_DENO: Deno.env.get("OTEL_DENO"),
      OTEL_SERVICE_NAME: Deno.env.get("OTEL_SERVICE_NAME"),
    };
  } catch {
    return {}; // no env permission: the warnings say what to check
  }
}

export function tracingEnabled(): boolean {
  return tracer !== undefined;
}

/**
 * Runs `fn` inside an active span named `stage` (so spans and fetches inside it become its
 * children); an error is recorded on the span and rethrown. Disabled: calls `fn` only.
 */
export function withSpan<T>(
  stage: string,
  attributes: Attributes,
  fn: () => Promise<T>,
): Promise<T> {
  if (tracer === undefined) return fn();
  return tracer.startActiveSpan(
    stage,
    {
      attributes: {
        "service.component": component,
        ...(environment === undefined ? {} : { "deployment.environment.name": environment }),
        ...attributes,
      },
    },
    async (span) => {
      try {
        return await fn();
      } catch (err) {
        span.recordException(err instanceof Error ? err : String(err));
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: err instanceof Error ? err.message : String(err),
        });
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

/** The active span's ids for log correlation, when tracing is on and a span is active. */
export function activeTraceIds(): { trace_id: string; span_id: string } | undefined {
  if (tracer === undefined) return undefined;
  const ctx = trace.getActiveSpan()?.spanContext();
  if (!ctx || !trace.isSpanContextValid(ctx)) return undefined;
  return { trace_id: ctx.traceId, span_id: ctx.spanId };
}
