/** The transport-neutral request/response the Function URL handlers and the local server share. */
export interface ControlResponse {
  status: number;
  body: Record<string, unknown>;
}

export function reply(status: number, body: Record<string, unknown>): ControlResponse {
  return { status, body };
}

/** Webhook and node API bodies are small JSON documents; anything bigger is refused unread. */
export const MAX_BODY_BYTES = 256 * 1024;
