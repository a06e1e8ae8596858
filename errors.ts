/**
 * The project's error types. `code` is stable and machine-readable; `retriable` tells a
 * supervisor whether to back off and retry (keeping the offset) or to give up on the input.
 */
export class DataProcError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  constructor(
    code: string,
    message: string,
    options: { retriable?: boolean; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "DataProcError";
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** Poison input: send it to the DLQ with this code as the reason, then move on. */
export class TerminalError extends DataProcError {
  constructor(code: string, message: string) {
    super(code, message, { retriable: false });
    this.name = "TerminalError";
  }
}

/** A store or broker hiccup: back off and retry without committing. */
export class RetryableError extends DataProcError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { retriable: true, cause });
    this.name = "RetryableError";
  }
}
