/** The one HTTP error type: a project error code mapped to a 4xx/5xx status. */
export class HttpError extends Error {
  readonly status: 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 502 | 503;
  readonly code: string;
  constructor(status: HttpError["status"], code: string, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
  }
}
